package rules

import (
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// NotificationKinds are the kinds of notifications canary serve sends
// about a policy's runs and rollouts, as a policy names them.
var NotificationKinds = []string{"analysis_failed", "inconclusive", "rollback_latched", "rollback_done", "paused", "resumed",
	"promoted", "rollout_completed", "rollout_failed", "group_member_failed", "degraded"}

// NotificationSeverities are the severities a policy may give a kind,
// lowest first.
var NotificationSeverities = []string{"info", "warning", "critical"}

// DefaultInconclusiveAfter is how many inconclusive analyses in a row are
// worth a notification.
const DefaultInconclusiveAfter = 3

// Notifications tune what canary serve tells about a policy's runs.
type Notifications struct {
	// Severity overrides the severity of notification kinds.
	Severity map[string]string
	// InconclusiveAfter is how many inconclusive analyses of a run in a
	// row make an inconclusive notification.
	InconclusiveAfter int
	// DegradedMargin, when above 0, makes a rule that passes within this
	// share of its threshold (0.1: within 10%) for DegradedAnalyses
	// analyses in a row a degraded notification.
	DegradedMargin   float64
	DegradedAnalyses int
}

func defaultNotifications() Notifications {
	return Notifications{InconclusiveAfter: DefaultInconclusiveAfter, DegradedAnalyses: 3}
}

func (p *parser) notifications(n *yaml.Node, pol *Policy, s scope) {
	no := &pol.Notifications
	p.fields(n, s, "notifications", map[string]func(k, v *yaml.Node){
		"severity": func(_, v *yaml.Node) {
			no.Severity = map[string]string{}
			p.entries(v, s, "notifications.severity", "kind", func(k, v *yaml.Node) {
				if !slices.Contains(NotificationKinds, k.Value) {
					p.errorf(k, s, "notifications.severity: unknown kind %q (known: %s)", k.Value, strings.Join(NotificationKinds, ", "))
					return
				}
				sev, ok := p.str(v, s, "notifications.severity."+k.Value)
				if ok && !slices.Contains(NotificationSeverities, sev) {
					p.errorf(v, s, "notifications.severity.%s must be one of %s, got %q", k.Value, strings.Join(NotificationSeverities, ", "), sev)
					return
				}
				no.Severity[k.Value] = sev
			})
		},
		"inconclusiveAfter": func(_, v *yaml.Node) {
			no.InconclusiveAfter = p.integer(v, s, "notifications.inconclusiveAfter", 1, 1000)
		},
		"degraded": func(_, v *yaml.Node) {
			p.fields(v, s, "notifications.degraded", map[string]func(k, v *yaml.Node){
				"margin": func(_, v *yaml.Node) {
					if no.DegradedMargin = p.number(v, s, "notifications.degraded.margin"); no.DegradedMargin <= 0 || no.DegradedMargin >= 1 {
						p.errorf(v, s, "notifications.degraded.margin must be above 0 and below 1 (0.1: within 10%% of the threshold), got %v", no.DegradedMargin)
					}
				},
				"analyses": func(_, v *yaml.Node) {
					no.DegradedAnalyses = p.integer(v, s, "notifications.degraded.analyses", 1, 1000)
				},
			})
			if no.DegradedMargin == 0 {
				p.errorf(v, s, "notifications.degraded needs a margin")
			}
		},
	})
}
