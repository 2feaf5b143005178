package gatewayapi

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/aurum/canary/traffic"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// The cookie strategy matches the Cookie header, since HTTPRoute has no
// cookie match. The expression is anchored at both ends and lets anything
// come before and after the cookie, because implementations disagree on
// what a header regex must match: Envoy-based ones (Envoy Gateway, Istio,
// Contour) take RE2 full matches of the whole value, nginx-based ones search
// in it. An unanchored "(^|;\s*)name=always(;|$)" finds the cookie for the
// latter but, as a full match, only when it is the sole cookie.
const (
	cookieHeader = "Cookie"
	cookiePrefix = `^(.*;)?\s*`
	cookieSuffix = `=always(;.*)?$`
	// maxValue is the longest header match value the CRD takes.
	maxValue = 4096
)

var (
	// token is an HTTP token (RFC 9110), which is what the CRD takes as a
	// header name and RFC 6265 as a cookie name.
	token = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+\\-.^_`|~]{1,256}$")
	// printable is the experimental channel's pattern for a header match
	// value; the standard channel takes anything, so meeting it keeps a
	// route valid under either CRD.
	printable = regexp.MustCompile(`^[!-~]+([\t ]?[!-~]+)*$`)
)

// headerFor checks what this router needs of a step beyond Step.Validate,
// and returns the header match its Match becomes: nil without a Match.
func headerFor(step traffic.Step) (*gwv1.HTTPHeaderMatch, error) {
	if t := total(step); t > maxWeight {
		return nil, fmt.Errorf("weight total %d: more than %d, the largest backendRef weight: %w", t, maxWeight, traffic.ErrUnsupported)
	}
	m := step.Match
	if m == nil {
		return nil, nil
	}
	if m.Strategy == traffic.StrategyCookie {
		if step.Weight > 0 {
			// The cookie strategy keeps users on the version that served
			// them; HTTPRoute's session persistence is experimental and
			// not in the standard channel, so the weighted users would
			// flip between versions from one request to the next.
			return nil, fmt.Errorf("%w: a cookie match promises session affinity for the weighted users, which an HTTPRoute cannot give (session persistence is experimental): use the cookie with weight 0, or a weight alone",
				traffic.ErrUnsupported)
		}
		if !token.MatchString(m.Cookie) {
			return nil, fmt.Errorf("cookie name %q: want a token of letters, digits and !#$%%&'*+-.^_`|~", m.Cookie)
		}
		return &gwv1.HTTPHeaderMatch{
			Type:  new(gwv1.HeaderMatchRegularExpression),
			Name:  cookieHeader,
			Value: cookiePrefix + regexp.QuoteMeta(m.Cookie) + cookieSuffix,
		}, nil
	}
	// Header, user-id and geo all match a header; Validate has checked
	// the strategy is known and exactly one of Value and Pattern is set.
	if !token.MatchString(m.Header) {
		return nil, fmt.Errorf("header name %q: want a token of letters, digits and !#$%%&'*+-.^_`|~", m.Header)
	}
	h := &gwv1.HTTPHeaderMatch{Type: new(gwv1.HeaderMatchExact), Name: gwv1.HTTPHeaderName(m.Header), Value: m.Value}
	if m.Pattern != "" {
		// Implementations that support regex header matches (an
		// implementation-specific feature) are mostly Envoy-based and use
		// RE2; a pattern RE2 does not take would leave the route
		// unaccepted at the gateway, long after this call succeeded.
		if _, err := regexp.Compile(m.Pattern); err != nil {
			return nil, fmt.Errorf("header pattern %q is not RE2, which gateways use (%v): %w", m.Pattern, err, traffic.ErrUnsupported)
		}
		h.Type, h.Value = new(gwv1.HeaderMatchRegularExpression), m.Pattern
	}
	if len(h.Value) > maxValue {
		return nil, fmt.Errorf("header match of %d bytes: more than the %d a match value takes: %w", len(h.Value), maxValue, traffic.ErrUnsupported)
	}
	if !printable.MatchString(h.Value) {
		return nil, fmt.Errorf("header match %q: want printable ASCII, with single spaces or tabs between words", h.Value)
	}
	return h, nil
}

// anchored reports whether a pattern matches whole values whether the
// gateway searches with it or full-matches it.
func anchored(pattern string) bool {
	return strings.HasPrefix(pattern, "^") && strings.HasSuffix(pattern, "$")
}

// matchOf reads the Match back from a generated rule: the header match the
// router appended, last in the rule's first match.
func matchOf(rule gwv1.HTTPRouteRule) (*traffic.Match, error) {
	if len(rule.Matches) == 0 || len(rule.Matches[0].Headers) == 0 {
		return nil, errors.New("generated rule has no header match")
	}
	h := rule.Matches[0].Headers[len(rule.Matches[0].Headers)-1]
	regex := h.Type != nil && *h.Type == gwv1.HeaderMatchRegularExpression
	if regex && strings.EqualFold(string(h.Name), cookieHeader) {
		if name, ok := cookieName(h.Value); ok {
			return &traffic.Match{Strategy: traffic.StrategyCookie, Cookie: name}, nil
		}
	}
	m := &traffic.Match{Strategy: traffic.StrategyHeader, Header: string(h.Name)}
	if regex {
		m.Pattern = h.Value
	} else {
		m.Value = h.Value
	}
	return m, nil
}

// cookieName undoes the cookie strategy's expression. QuoteMeta only puts
// backslashes before characters, and a token has none of its own, so
// dropping every backslash restores the name.
func cookieName(pattern string) (string, bool) {
	quoted, ok := strings.CutPrefix(pattern, cookiePrefix)
	if !ok {
		return "", false
	}
	if quoted, ok = strings.CutSuffix(quoted, cookieSuffix); !ok {
		return "", false
	}
	name := strings.ReplaceAll(quoted, `\`, "")
	return name, token.MatchString(name)
}
