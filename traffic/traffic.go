// Package traffic moves traffic between a stable version and its canary.
// A Router applies a Step: a share of requests by weight, or a routing
// match that sends chosen requests (a header, a cookie, a share of user IDs,
// a set of countries) to the canary. Each router lives in its own
// sub-package: traffic/nginx writes ingress-nginx canary annotations,
// traffic/gatewayapi writes HTTPRoute backend weights and matches.
//
// The package knows nothing of policies or HTTP: it is given objects to
// change, and it changes them.
package traffic

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Sentinel errors, tested with errors.Is.
var (
	// ErrUnsupported marks a step the router cannot express faithfully;
	// it is refused rather than approximated.
	ErrUnsupported = errors.New("not supported by this router")
	// ErrNotOwned marks an object another controller (Argo Rollouts,
	// Flagger) manages; routers refuse to change it unless told to take
	// it over.
	ErrNotOwned = errors.New("object is managed by another controller")
	// ErrNotFound marks a stable object (Ingress, HTTPRoute) that does not
	// exist.
	ErrNotFound = errors.New("object not found")
)

// Router applies traffic steps to one canary. Implementations are safe for
// concurrent use and take the caller's context for every API call.
type Router interface {
	// Apply makes step the canary's traffic: its weight and its routing
	// match, replacing what was there.
	Apply(ctx context.Context, step Step) error
	// State reads the canary's current traffic back from the cluster.
	State(ctx context.Context) (State, error)
	// Reset sends all traffic to the stable version: weight 0 and no
	// routing match. The canary objects stay in place, so the next
	// rollout does not have to recreate them.
	Reset(ctx context.Context) error
}

// Step is what traffic the canary gets.
type Step struct {
	// Weight is the canary's share of requests, out of Total.
	Weight int
	// Total is the weight that means "all traffic"; 0 means 100. Larger
	// totals give finer steps (1000: tenths of a percent).
	Total int
	// Match, when set, routes matching requests to the canary.
	Match *Match
}

// Percent is the step's weight as a percentage.
func (s Step) Percent() float64 {
	total := s.Total
	if total == 0 {
		total = 100
	}
	return 100 * float64(s.Weight) / float64(total)
}

// Validate checks what holds for every router.
func (s Step) Validate() error {
	total := s.Total
	if total == 0 {
		total = 100
	}
	if total < 100 {
		// ingress-nginx ignores totals below 100, and a total below 100
		// cannot be a finer step anyway.
		return fmt.Errorf("weight total %d: must be at least 100", s.Total)
	}
	if s.Weight < 0 || s.Weight > total {
		return fmt.Errorf("weight %d: must be between 0 and %d", s.Weight, total)
	}
	if s.Match != nil {
		if err := s.Match.Validate(); err != nil {
			return err
		}
		if s.Match.Strategy.consistent() && s.Weight > 0 {
			return fmt.Errorf("%w: a %s match selects a fixed set of requests; a weight beside it would send random other requests to the canary as well, which breaks that guarantee: use one or the other",
				ErrUnsupported, s.Match.Strategy)
		}
	}
	return nil
}

// Strategy names how a Match selects requests.
type Strategy string

// Routing strategies.
const (
	// StrategyHeader matches a header's value exactly, or by a regex.
	StrategyHeader Strategy = "header"
	// StrategyUserID matches a stable share of user IDs carried in a
	// header, with a regex from UserIDPattern.
	StrategyUserID Strategy = "user-id"
	// StrategyCookie sends requests carrying a cookie set to "always" to
	// the canary (ingress-nginx's only cookie semantics), with session
	// affinity so a user stays on the version that served them.
	StrategyCookie Strategy = "cookie"
	// StrategyGeo matches a country or region header set by the edge
	// (such as CF-IPCountry) against a list of codes.
	StrategyGeo Strategy = "geo"
)

// consistent reports whether the strategy promises a fixed set of
// requests, which a weight beside it would break.
func (s Strategy) consistent() bool { return s == StrategyUserID || s == StrategyGeo }

// Match selects requests for the canary.
type Match struct {
	Strategy Strategy
	// Header names the header to match (header, user-id, geo).
	Header string
	// Value matches the header exactly; Pattern by a regular expression.
	// One of them is set.
	Value, Pattern string
	// Cookie names the cookie (cookie strategy).
	Cookie string
}

// Validate checks the match is complete and consistent.
func (m *Match) Validate() error {
	switch m.Strategy {
	case StrategyHeader, StrategyUserID, StrategyGeo:
		if m.Header == "" {
			return fmt.Errorf("%s match needs a header", m.Strategy)
		}
		if (m.Value == "") == (m.Pattern == "") {
			return fmt.Errorf("%s match needs exactly one of a value and a pattern", m.Strategy)
		}
		if m.Cookie != "" {
			return fmt.Errorf("%s match takes no cookie", m.Strategy)
		}
	case StrategyCookie:
		if m.Cookie == "" {
			return errors.New("cookie match needs a cookie name")
		}
		if m.Header != "" || m.Value != "" || m.Pattern != "" {
			return errors.New("cookie match takes only a cookie name")
		}
	default:
		return fmt.Errorf("unknown strategy %q (known: header, user-id, cookie, geo)", m.Strategy)
	}
	return nil
}

// State is a canary's traffic as read from the cluster.
type State struct {
	Step
	// Enabled is false when no traffic can reach the canary at all (no
	// canary object, or one switched off).
	Enabled bool
	// Objects names what was read, e.g. "ingress caiso/lmp-canary".
	Objects []string
}

// GeoPattern is the regex matching any of the country or region codes,
// exactly, as an edge writes them in a header such as CF-IPCountry.
func GeoPattern(codes []string) (string, error) {
	if len(codes) == 0 {
		return "", errors.New("geo match needs at least one code")
	}
	clean := make([]string, 0, len(codes))
	for _, c := range codes {
		c = strings.ToUpper(strings.TrimSpace(c))
		if c == "" || strings.IndexFunc(c, func(r rune) bool { return !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') }) >= 0 {
			return "", fmt.Errorf("geo code %q: want letters, digits and '-' (US, GB, US-CA)", c)
		}
		if !slices.Contains(clean, c) {
			clean = append(clean, c)
		}
	}
	sort.Strings(clean)
	return "^(" + strings.Join(clean, "|") + ")$", nil
}

// StepDown lowers a canary's weight along a schedule, one weight per
// interval, ending at 0 whatever the schedule says: the graceful way out of
// a rollback, where cutting a busy canary at once would shift its load onto
// the stable version in one go. An empty schedule resets at once. It stops
// when ctx is done, leaving the last weight applied.
func StepDown(ctx context.Context, r Router, weights []int, interval time.Duration) error {
	for _, w := range weights {
		if w <= 0 {
			break
		}
		if err := r.Apply(ctx, Step{Weight: w}); err != nil {
			return fmt.Errorf("step down to %d: %w", w, err)
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-t.C:
		}
	}
	return r.Reset(ctx)
}
