// Package notify tells people what canary serve did: a rollback latched at
// 3 a.m., a rollout completed, a rule drifting towards its threshold. It
// subscribes to the runs' events and the orchestrator's, turns them into
// notifications with a kind and a severity, and delivers them through
// routes: a real Alertmanager (canary's own alerts, resolved when their
// condition clears), Slack and Microsoft Teams incoming webhooks, signed
// JSON webhooks, and Go Notifiers for programs that embed the orchestrator.
//
// Delivery never delays an answer: a notification is put in an outbox in
// the run store and sent by a worker per route, retried with backoff on
// server errors and connection failures (never on 4xx), rate limited, and
// sent once however often its event is seen.
package notify

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Kind is what happened.
type Kind string

// Kinds of notifications.
const (
	// KindAnalysisFailed: an analysis of a run failed (once per failing
	// streak).
	KindAnalysisFailed Kind = "analysis_failed"
	// KindInconclusive: analyses of a run were inconclusive several times
	// in a row (the policy's inconclusiveAfter).
	KindInconclusive Kind = "inconclusive"
	// KindRollbackLatched: a rollback latched on a run, by an alert, a
	// person or a failed analysis (Source).
	KindRollbackLatched Kind = "rollback_latched"
	// KindRollbackDone: a rollback ended with the canary's traffic at 0.
	KindRollbackDone Kind = "rollback_done"
	// KindPaused and KindResumed: a run or a rollout was paused, and
	// resumed.
	KindPaused  Kind = "paused"
	KindResumed Kind = "resumed"
	// KindPromoted: a run or a rollout was promoted.
	KindPromoted Kind = "promoted"
	// KindRolloutCompleted and KindRolloutFailed: the orchestrator's
	// rollout ended well, or failed (a router refused a weight).
	KindRolloutCompleted Kind = "rollout_completed"
	KindRolloutFailed    Kind = "rollout_failed"
	// KindGroupMemberFailed: a member of a rollout group failed; Reason
	// says what the group does about it.
	KindGroupMemberFailed Kind = "group_member_failed"
	// KindDegraded: a rule kept passing close to its threshold (within
	// the policy's margin) for several analyses in a row.
	KindDegraded Kind = "degraded"
)

// Kinds lists every kind.
var Kinds = []Kind{KindAnalysisFailed, KindInconclusive, KindRollbackLatched, KindRollbackDone, KindPaused, KindResumed,
	KindPromoted, KindRolloutCompleted, KindRolloutFailed, KindGroupMemberFailed, KindDegraded}

// Severity is how urgent a notification is.
type Severity string

// Severities, lowest first.
const (
	SeverityInfo     Severity = "info"
	SeverityWarning  Severity = "warning"
	SeverityCritical Severity = "critical"
)

// Severities lists the severities, lowest first.
var Severities = []Severity{SeverityInfo, SeverityWarning, SeverityCritical}

// rank orders severities.
func (s Severity) rank() int {
	for i, x := range Severities {
		if x == s {
			return i
		}
	}
	return -1
}

// DefaultSeverity is each kind's severity unless a policy says otherwise.
var DefaultSeverity = map[Kind]Severity{
	KindAnalysisFailed:    SeverityWarning,
	KindInconclusive:      SeverityWarning,
	KindRollbackLatched:   SeverityCritical,
	KindRollbackDone:      SeverityWarning,
	KindPaused:            SeverityWarning,
	KindResumed:           SeverityInfo,
	KindPromoted:          SeverityInfo,
	KindRolloutCompleted:  SeverityInfo,
	KindRolloutFailed:     SeverityCritical,
	KindGroupMemberFailed: SeverityCritical,
	KindDegraded:          SeverityWarning,
}

// Notification is one thing to tell.
type Notification struct {
	// ID identifies the notification: the same event seen twice (a
	// redelivery, a restart) has the same ID and is sent once.
	ID       string   `json:"id"`
	Kind     Kind     `json:"kind"`
	Severity Severity `json:"severity"`
	// Resolved marks the end of the condition a notification of the same
	// Condition reported (a latch lifted, analyses passing again).
	Resolved bool `json:"resolved,omitempty"`
	// Condition names what a firing notification and its resolution are
	// about, such as "rollback_latched caiso/lmp-ingest@v2": Alertmanager
	// alerts are keyed by it. Empty for one-off events.
	Condition string `json:"condition,omitempty"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Revision  string `json:"revision,omitempty"`
	Policy    string `json:"policy,omitempty"`
	// Rollout names the orchestrator's rollout (namespace/name), and Group
	// its group, when the event is about one.
	Rollout string `json:"rollout,omitempty"`
	Group   string `json:"group,omitempty"`
	// Summary is one line: what happened to which canary.
	Summary string `json:"summary"`
	// Reason is the one-line reason of the verdict, latch or transition.
	Reason string `json:"reason"`
	// Source says who latched a rollback or a pause: alert, manual,
	// analysis.
	Source string `json:"source,omitempty"`
	// By names who made a manual change.
	By string `json:"by,omitempty"`
	// Rules are the rule values that decided.
	Rules []RuleValue `json:"rules,omitempty"`
	// Link points at the run or rollout in canary serve's API.
	Link string    `json:"link,omitempty"`
	At   time.Time `json:"at"`
}

// ConditionKind is the kind of notification that fired the condition n is
// about ("rollback_latched" for a lifted rollback), or empty for a one-off
// event.
func (n Notification) ConditionKind() Kind {
	if n.Condition == "" {
		return ""
	}
	k, _, _ := strings.Cut(n.Condition, " ")
	return Kind(k)
}

// RuleValue is one rule's outcome in a notification.
type RuleValue struct {
	Name      string   `json:"name"`
	Verdict   string   `json:"verdict"`
	Value     *float64 `json:"value,omitempty"`
	Threshold *float64 `json:"threshold,omitempty"`
	Reason    string   `json:"reason"`
}

// Target is the canary a notification is about: namespace/name, with the
// revision when there is one.
func (n Notification) Target() string {
	t := n.Namespace + "/" + n.Name
	if n.Revision != "" {
		t += "@" + n.Revision
	}
	return t
}

// Notifier delivers notifications; programs that embed the orchestrator
// plug their own in (the design's alert callback). Notify must honour ctx.
// An error is retried, with backoff; one wrapping ErrPermanent is not.
type Notifier interface {
	Notify(ctx context.Context, n Notification) error
}

// NotifierFunc adapts a function to Notifier.
type NotifierFunc func(ctx context.Context, n Notification) error

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, n Notification) error { return f(ctx, n) }

// ErrPermanent marks a delivery that retrying cannot fix, such as a 4xx
// answer: it is dropped, and the error kept as the route's last.
var ErrPermanent = permanent{}

type permanent struct{}

func (permanent) Error() string { return "permanent failure" }

// Permanent wraps err so that it is not retried.
func Permanent(err error) error { return fmt.Errorf("%w: %w", ErrPermanent, err) }
