package nginx

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/aurum/canary/traffic"
)

// ingress-nginx annotation names, without the prefix.
const (
	annCanary        = "canary"
	annWeight        = "canary-weight"
	annWeightTotal   = "canary-weight-total"
	annHeader        = "canary-by-header"
	annHeaderValue   = "canary-by-header-value"
	annHeaderPattern = "canary-by-header-pattern"
	annCookie        = "canary-by-cookie"

	// Session affinity, which a canary Ingress honours although it
	// ignores most other annotations (they come from the stable Ingress).
	annAffinity               = "affinity"
	annSessionCookieName      = "session-cookie-name"
	annAffinityCanaryBehavior = "affinity-canary-behavior"
)

// routingKeys are the canary annotations the router always owns: whatever a
// step does not set among them is removed.
var routingKeys = []string{annCanary, annWeight, annWeightTotal, annHeader, annHeaderValue, annHeaderPattern, annCookie}

// affinityKeys are the session-affinity annotations the cookie strategy
// sets. They are the router's only while StrategyAnnotation says cookie:
// session affinity is a feature people also set on canary Ingresses by
// hand, and that setting must survive every other step.
var affinityKeys = []string{annAffinity, annSessionCookieName, annAffinityCanaryBehavior}

// AffinityCookie is the session cookie nginx sets for the cookie strategy,
// named after the routing cookie so that two canaries on one host do not
// share one.
func AffinityCookie(cookie string) string { return cookie + "-affinity" }

// annotations returns every annotation step needs, by full key.
//
// For the cookie strategy nginx routes on the cookie's value alone: a
// request whose cookie is "always" goes to the canary and "never" stays on
// stable; there is no custom value. Whoever picks the users (the
// application, or the edge) sets <cookie>=always on them. The router adds
// session affinity with affinity-canary-behavior "sticky", nginx's sticky
// canary behaviour: a user the canary has served gets a session cookie
// (AffinityCookie) and stays on the canary, and a request already pinned
// to a backend by that cookie skips the canary rules altogether, so a
// user does not flap between versions mid-session. Removing the affinity
// annotations (any other step, or Reset) releases the pinned users.
func (r *Router) annotations(step traffic.Step) map[string]string {
	a := map[string]string{
		r.key(annCanary): "true",
		r.key(annWeight): strconv.Itoa(step.Weight),
		// Re-asserted on every write: it is how a later call, or a
		// router configured for another stable Ingress, knows whose
		// canary Ingress this is.
		StableIngressAnnotation: r.cfg.StableIngress,
	}
	if step.Total != 0 && step.Total != 100 {
		a[r.key(annWeightTotal)] = strconv.Itoa(step.Total)
	}
	m := step.Match
	if m == nil {
		return a
	}
	a[StrategyAnnotation] = string(m.Strategy)
	switch m.Strategy {
	case traffic.StrategyHeader, traffic.StrategyUserID, traffic.StrategyGeo:
		a[r.key(annHeader)] = m.Header
		// Never both: ingress-nginx ignores the pattern when a value is
		// set, so writing both would silently drop the pattern.
		if m.Value != "" {
			a[r.key(annHeaderValue)] = m.Value
		} else {
			a[r.key(annHeaderPattern)] = m.Pattern
		}
	case traffic.StrategyCookie:
		a[r.key(annCookie)] = m.Cookie
		a[r.key(annAffinity)] = "cookie"
		a[r.key(annSessionCookieName)] = AffinityCookie(m.Cookie)
		a[r.key(annAffinityCanaryBehavior)] = "sticky"
	}
	return a
}

// managedKeys are the keys the router may delete from an Ingress whose
// annotations are current: the routing keys and its strategy record
// always, the affinity keys only if the router set them.
func (r *Router) managedKeys(current map[string]string) []string {
	keys := make([]string, 0, len(routingKeys)+len(affinityKeys)+1)
	for _, k := range routingKeys {
		keys = append(keys, r.key(k))
	}
	keys = append(keys, StrategyAnnotation)
	if current[StrategyAnnotation] == string(traffic.StrategyCookie) {
		for _, k := range affinityKeys {
			keys = append(keys, r.key(k))
		}
	}
	return keys
}

// What ingress-nginx's annotation validation (on by default since v1.9)
// accepts. A value it rejects is not an error anywhere: the controller logs
// a warning and drops the annotation, so a header match would quietly turn
// into nginx's bare-header "always"/"never" rule. The router refuses such
// values instead.
var (
	// headerName is what nginx can match: it reads the header from
	// $http_<name>, and by default drops header names with anything but
	// letters, digits and '-' (ignore_invalid_headers); '_' passes only
	// with the enable-underscores-in-headers ConfigMap key, and nginx
	// cannot tell it from '-' in the variable name anyway.
	headerName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	// basicChars is ingress-nginx's BasicCharsRegex, which checks
	// canary-by-header-value (spaces removed first) and canary-by-cookie.
	basicChars = regexp.MustCompile(`^[-._~a-zA-Z0-9/:]+$`)
	// cookieName is basicChars without '/' and ':', which a cookie name
	// cannot contain (RFC 6265 token).
	cookieName = regexp.MustCompile(`^[-._~a-zA-Z0-9]+$`)
	// regexChars is ingress-nginx's IsValidRegex, which checks
	// canary-by-header-pattern. traffic.UserIDPattern and
	// traffic.GeoPattern only produce these characters.
	regexChars = regexp.MustCompile(`^[-._~a-zA-Z0-9/:^$\[\](){}*+?|&=\\]+$`)
)

// checkMatch refuses, with traffic.ErrUnsupported, a match ingress-nginx
// cannot carry out as asked. The match is already valid by
// traffic.Match.Validate.
func checkMatch(m *traffic.Match) error {
	if m == nil {
		return nil
	}
	if m.Strategy == traffic.StrategyCookie {
		if !cookieName.MatchString(m.Cookie) {
			return fmt.Errorf("%w: cookie %q: ingress-nginx matches only cookie names of letters, digits and -._~",
				traffic.ErrUnsupported, m.Cookie)
		}
		return nil
	}
	if !headerName.MatchString(m.Header) {
		return fmt.Errorf("%w: header %q: nginx matches only header names of letters, digits, '-' and '_'",
			traffic.ErrUnsupported, m.Header)
	}
	if m.Value != "" {
		// nginx trims surrounding whitespace from header values, so a
		// value with some could never match.
		if strings.TrimSpace(m.Value) != m.Value || !basicChars.MatchString(strings.ReplaceAll(m.Value, " ", "")) {
			return fmt.Errorf("%w: header value %q: ingress-nginx accepts only letters, digits, inner spaces and -._~/: in canary-by-header-value and drops anything else",
				traffic.ErrUnsupported, m.Value)
		}
	}
	if m.Pattern != "" && !regexChars.MatchString(m.Pattern) {
		return fmt.Errorf("%w: header pattern %q: ingress-nginx accepts only letters, digits and -._~/:^$[](){}*+?|&=\\ in canary-by-header-pattern and drops anything else",
			traffic.ErrUnsupported, m.Pattern)
	}
	return nil
}

// stateOf reads canary annotations as ingress-nginx reads them.
func (r *Router) stateOf(ann map[string]string) traffic.State {
	var st traffic.State
	if on, _ := strconv.ParseBool(ann[r.key(annCanary)]); !on {
		return st
	}
	st.Enabled = true
	// ingress-nginx reads a weight it cannot parse as 0, and a total it
	// cannot parse or below 100 as 100 (which Step spells 0).
	st.Weight, _ = strconv.Atoi(ann[r.key(annWeight)])
	if total, err := strconv.Atoi(ann[r.key(annWeightTotal)]); err == nil && total > 100 {
		st.Total = total
	}
	if h := ann[r.key(annHeader)]; h != "" {
		m := &traffic.Match{Strategy: traffic.StrategyHeader, Header: h}
		switch {
		case ann[r.key(annHeaderValue)] != "":
			m.Value = ann[r.key(annHeaderValue)]
		case ann[r.key(annHeaderPattern)] != "":
			m.Pattern = ann[r.key(annHeaderPattern)]
		default:
			// A bare canary-by-header, written by someone else: nginx
			// sends "always" to the canary (and keeps "never" off it).
			m.Value = "always"
		}
		// nginx sees a pattern; the record says where it came from.
		if s := traffic.Strategy(ann[StrategyAnnotation]); s == traffic.StrategyUserID || s == traffic.StrategyGeo {
			m.Strategy = s
		}
		st.Match = m
	} else if c := ann[r.key(annCookie)]; c != "" {
		st.Match = &traffic.Match{Strategy: traffic.StrategyCookie, Cookie: c}
	}
	return st
}
