package gatewayapi

import (
	"fmt"
	"slices"
	"strings"

	"github.com/aurum/canary/traffic"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// MatchRulePrefix begins the name of every rule the router generates for a
// Match. Rule names are Gateway API's own way to address a rule (SectionName,
// standard since v1.2), so the generated rules are found again by name, and
// their only backendRef being the canary guards against a user's rule that
// happens to share the prefix.
const MatchRulePrefix = "canary-match-"

// Limits of the HTTPRoute CRD (v1.6, both channels). The router checks them
// before writing, so a step that would not fit is refused with a message
// that says why instead of the API server's validation error.
const (
	maxRules       = 16        // rules per route
	maxMatches     = 128       // matches across all rules
	maxHeaders     = 16        // header matches per match
	maxBackendRefs = 16        // backendRefs per rule
	maxWeight      = 1_000_000 // a backendRef's weight
)

// edit is one route being read or changed for the router's Services.
type edit struct {
	route *gwv1.HTTPRoute
	cfg   Config
}

func (r *Router) edit(route *gwv1.HTTPRoute) edit { return edit{route: route, cfg: r.cfg} }

// isService reports whether ref is the Service name in the route's
// namespace. Group and kind may be unset (the API server defaults them to
// the core group and Service, the fake clientset does not); a namespace is
// either unset or the route's own.
func (e edit) isService(ref gwv1.BackendObjectReference, name string) bool {
	return (ref.Group == nil || *ref.Group == "") &&
		(ref.Kind == nil || *ref.Kind == "Service") &&
		string(ref.Name) == name &&
		(ref.Namespace == nil || string(*ref.Namespace) == e.cfg.Namespace)
}

// generated reports whether rule is a match rule the router wrote.
func (e edit) generated(rule gwv1.HTTPRouteRule) bool {
	return rule.Name != nil && strings.HasPrefix(string(*rule.Name), MatchRulePrefix) &&
		len(rule.BackendRefs) == 1 && e.isService(rule.BackendRefs[0].BackendObjectReference, e.cfg.CanaryService)
}

// refs finds the stable and canary backendRefs of a rule, -1 when absent.
// Two of either is refused: which one to weight would be a guess.
func (e edit) refs(rule gwv1.HTTPRouteRule) (stable, canary int, err error) {
	stable, canary = -1, -1
	for i, ref := range rule.BackendRefs {
		switch {
		case e.isService(ref.BackendObjectReference, e.cfg.StableService):
			if stable >= 0 {
				return 0, 0, fmt.Errorf("more than one backendRef to stable service %q", e.cfg.StableService)
			}
			stable = i
		case e.isService(ref.BackendObjectReference, e.cfg.CanaryService):
			if canary >= 0 {
				return 0, 0, fmt.Errorf("more than one backendRef to canary service %q", e.cfg.CanaryService)
			}
			canary = i
		}
	}
	return stable, canary, nil
}

// split separates the route's rules into the user's rules, in order, and the
// generated match rules, and lists which of the user's rules are stable rules.
func (e edit) split() (rules, generated []gwv1.HTTPRouteRule, stable []int) {
	for _, rule := range e.route.Spec.Rules {
		if e.generated(rule) {
			generated = append(generated, rule)
			continue
		}
		if e.hasStable(rule) {
			stable = append(stable, len(rules))
		}
		rules = append(rules, rule)
	}
	return rules, generated, stable
}

// hasStable reports whether any backendRef of rule is the stable Service.
// A rule refs refuses as ambiguous is still a stable rule: the refusal
// belongs to whoever changes or reads its weights.
func (e edit) hasStable(rule gwv1.HTTPRouteRule) bool {
	for _, ref := range rule.BackendRefs {
		if e.isService(ref.BackendObjectReference, e.cfg.StableService) {
			return true
		}
	}
	return false
}

// apply sets the step's weights on every stable rule and puts a generated
// match rule before each when header is set, replacing earlier ones.
func (e edit) apply(step traffic.Step, header *gwv1.HTTPHeaderMatch) error {
	rules, _, stable := e.split()
	if len(stable) == 0 {
		return fmt.Errorf("no rule has a backendRef to stable service %q", e.cfg.StableService)
	}
	total := total(step)
	for _, i := range stable {
		rule := &rules[i]
		s, c, err := e.refs(*rule)
		if err != nil {
			return fmt.Errorf("rule %s: %w", ruleName(*rule, i), err)
		}
		for j, ref := range rule.BackendRefs {
			if j != s && j != c && weight(ref) > 0 {
				// The canary's share would be Weight over Total plus
				// this backend's weight, not the share the step asks.
				return fmt.Errorf("rule %s also sends traffic to %s, so a canary weight would not be its share of the rule: %w",
					ruleName(*rule, i), ref.Name, traffic.ErrUnsupported)
			}
		}
		if c < 0 {
			// The canary is the stable backend under another name:
			// same group, kind, namespace, port and backend filters.
			canary := *rule.BackendRefs[s].DeepCopy()
			canary.Name = gwv1.ObjectName(e.cfg.CanaryService)
			if e.cfg.Port != 0 {
				canary.Port = new(e.cfg.Port)
			}
			c = s + 1
			rule.BackendRefs = slices.Insert(rule.BackendRefs, c, canary)
		} else if e.cfg.Port != 0 {
			rule.BackendRefs[c].Port = new(e.cfg.Port)
		}
		rule.BackendRefs[s].Weight = new(int32(total - step.Weight))
		rule.BackendRefs[c].Weight = new(int32(step.Weight))
	}
	if header != nil {
		var err error
		if rules, err = e.withMatchRules(rules, stable, *header); err != nil {
			return err
		}
	}
	if err := checkLimits(rules); err != nil {
		return err
	}
	e.route.Spec.Rules = rules
	return nil
}

// withMatchRules returns rules with a generated match rule before each stable
// rule: the stable rule's matches, each with header added, to the canary.
// The generated rule keeps the stable rule's filters and timeouts (a path
// rewrite, say), so the canary sees requests as the stable version does.
func (e edit) withMatchRules(rules []gwv1.HTTPRouteRule, stable []int, header gwv1.HTTPHeaderMatch) ([]gwv1.HTTPRouteRule, error) {
	out := make([]gwv1.HTTPRouteRule, 0, len(rules)+len(stable))
	n := 0
	for i, rule := range rules {
		if n < len(stable) && stable[n] == i {
			gen := rule.DeepCopy()
			gen.Name = new(gwv1.SectionName(fmt.Sprintf("%s%d", MatchRulePrefix, n)))
			matches := gen.Matches
			if len(matches) == 0 {
				// What the API server defaults an empty list to, made
				// explicit because the header needs a match to go in.
				matches = []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{
					Type: new(gwv1.PathMatchPathPrefix), Value: new("/"),
				}}}
			}
			for k := range matches {
				for _, h := range matches[k].Headers {
					if strings.EqualFold(string(h.Name), string(header.Name)) {
						// A second match on the same header would be
						// ignored or contradict the first.
						return nil, fmt.Errorf("rule %s already matches header %s: %w", ruleName(rule, i), h.Name, traffic.ErrUnsupported)
					}
				}
				if len(matches[k].Headers) >= maxHeaders {
					return nil, fmt.Errorf("rule %s has a match with %d headers, the most a match takes, so the canary header does not fit: %w",
						ruleName(rule, i), len(matches[k].Headers), traffic.ErrUnsupported)
				}
				matches[k].Headers = append(matches[k].Headers, *header.DeepCopy())
			}
			gen.Matches = matches
			_, c, _ := e.refs(rule)
			canary := *rule.BackendRefs[c].DeepCopy()
			// The only backend takes all the rule's traffic at any weight
			// above 0; 1 is what the API server defaults to.
			canary.Weight = new(int32(1))
			gen.BackendRefs = []gwv1.HTTPBackendRef{canary}
			out = append(out, *gen)
			n++
		}
		out = append(out, rule)
	}
	seen := map[string]bool{}
	for i, rule := range out {
		if rule.Name == nil {
			continue
		}
		if seen[string(*rule.Name)] {
			return nil, fmt.Errorf("rule %d: name %q is taken by another rule; rename the route's rule to free it", i, *rule.Name)
		}
		seen[string(*rule.Name)] = true
	}
	return out, nil
}

// reset zeroes the canary weight of every stable rule and drops the
// generated rules. The stable weight takes the canary's, so the rule's total
// stays what it was.
func (e edit) reset() error {
	rules, _, stable := e.split()
	if len(stable) == 0 {
		return fmt.Errorf("no rule has a backendRef to stable service %q", e.cfg.StableService)
	}
	for _, i := range stable {
		rule := &rules[i]
		s, c, err := e.refs(*rule)
		if err != nil {
			return fmt.Errorf("rule %s: %w", ruleName(*rule, i), err)
		}
		if c < 0 {
			continue
		}
		sum := weight(rule.BackendRefs[s]) + weight(rule.BackendRefs[c])
		if sum == 0 {
			// Weights all 0 send the rule's requests nowhere; give the
			// stable backend something to take them with.
			sum = 100
		}
		rule.BackendRefs[s].Weight = new(sum)
		rule.BackendRefs[c].Weight = new(int32(0))
	}
	e.route.Spec.Rules = rules
	return nil
}

// state reads the step back from the route: weights from the first stable
// rule, the match from the first generated rule. Without a canary backendRef
// Weight and Total stay 0: the stable weight alone is the user's, and says
// nothing about a total.
func (e edit) state() (traffic.State, error) {
	rules, generated, stable := e.split()
	if len(stable) == 0 {
		return traffic.State{}, fmt.Errorf("no rule has a backendRef to stable service %q", e.cfg.StableService)
	}
	var st traffic.State
	for n, i := range stable {
		s, c, err := e.refs(rules[i])
		if err != nil {
			return traffic.State{}, fmt.Errorf("rule %s: %w", ruleName(rules[i], i), err)
		}
		if c < 0 {
			continue
		}
		cw := weight(rules[i].BackendRefs[c])
		if n == 0 {
			st.Weight = int(cw)
			st.Total = int(weight(rules[i].BackendRefs[s]) + cw)
		}
		if cw > 0 {
			st.Enabled = true
		}
	}
	if len(generated) > 0 {
		st.Enabled = true
		m, err := matchOf(generated[0])
		if err != nil {
			return traffic.State{}, fmt.Errorf("rule %s: %w", *generated[0].Name, err)
		}
		st.Match = m
	}
	return st, nil
}

// checkLimits refuses rules the HTTPRoute CRD would reject.
func checkLimits(rules []gwv1.HTTPRouteRule) error {
	if len(rules) > maxRules {
		return fmt.Errorf("the route would have %d rules, more than the %d an HTTPRoute takes: %w", len(rules), maxRules, traffic.ErrUnsupported)
	}
	matches := 0
	for i, rule := range rules {
		// The API server defaults an empty match list to one match, and
		// counts it.
		matches += max(1, len(rule.Matches))
		if len(rule.BackendRefs) > maxBackendRefs {
			return fmt.Errorf("rule %s would have %d backendRefs, more than the %d a rule takes: %w",
				ruleName(rule, i), len(rule.BackendRefs), maxBackendRefs, traffic.ErrUnsupported)
		}
	}
	if matches > maxMatches {
		return fmt.Errorf("the route would have %d matches, more than the %d an HTTPRoute takes: %w", matches, maxMatches, traffic.ErrUnsupported)
	}
	return nil
}

// weight is a backendRef's weight, with the API's default of 1.
func weight(ref gwv1.HTTPBackendRef) int32 {
	if ref.Weight == nil {
		return 1
	}
	return *ref.Weight
}

// ruleName names a rule for errors: its name, or its index.
func ruleName(rule gwv1.HTTPRouteRule, i int) string {
	if rule.Name != nil {
		return fmt.Sprintf("%q", *rule.Name)
	}
	return fmt.Sprint(i)
}
