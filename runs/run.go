// Package runs keeps canary runs: for each canary (a namespace and a name)
// one run per revision, the analyses recorded for it and the latches
// (rollback, pause, promote) that override them, set by Alertmanager
// alerts, manual calls or failed analyses.
//
// Runs is the only writer of the store (the Store seam; runs/bolt is its
// embedded implementation) and holds every canary in memory, so answering
// from a latch costs no read. What it answers as latched is on disk first.
// It publishes what happened (an analysis recorded, a latch set or lifted,
// a revision switched) to subscribers: metrics, the kill switch and
// anything later react there, whichever path (HTTP, the orchestrator, a
// failed analysis) caused it.
package runs

import (
	"errors"
	"slices"
	"time"

	"github.com/aurum/canary/analysis"
)

// Sentinel errors, tested with errors.Is.
var (
	// ErrRunNotFound marks a lookup of a run that does not exist.
	ErrRunNotFound = errors.New("run not found")
	// ErrStore marks a failure to read or write the store: a fault to
	// retry, not a bad request.
	ErrStore = errors.New("store")
	// ErrUnknownAction marks a manual action that does not exist.
	ErrUnknownAction = errors.New("unknown action")
	// ErrBadRequest marks input a caller must fix: a name that is not a
	// Kubernetes-style name, a missing or oversized reason.
	ErrBadRequest = errors.New("bad request")
	// ErrFull marks a change refused because a bound was reached: too many
	// canaries, or a canary with too many revisions that all hold latches.
	// Nothing was lost; retention frees room.
	ErrFull = errors.New("run store full")
	// ErrReaction marks a change that was stored but that a subscriber
	// failed to react to (the kill switch could not cut traffic). The
	// change stands; the caller may retry to retry the reaction.
	ErrReaction = errors.New("reaction failed")
)

// Bounds on what callers can grow.
const (
	// MaxLatches is how many latches of one kind a run keeps. A latch
	// beyond it is refused and counted (Run.Refused), never made room
	// for: a flood of pause alerts must not push a rollback out.
	MaxLatches = 32
	// MaxReason is the longest latch or override reason, in bytes. A
	// manual reason beyond it is refused; an alert's summary is cut.
	MaxReason = 1024
	// MaxOverrides is how many manual actions a run remembers.
	MaxOverrides = 32
)

// A Canary is one canary target, namespace/name, and its runs: one per
// revision, the newest last. Current is the revision analyses that name
// none go to.
type Canary struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Current   string    `json:"current"`
	Runs      []*Run    `json:"runs"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Key is the canary's key: namespace/name.
func (c *Canary) Key() string { return key(c.Namespace, c.Name) }

func key(namespace, name string) string { return namespace + "/" + name }

// Run returns the run of a revision, or nil.
func (c *Canary) Run(revision string) *Run {
	for _, r := range c.Runs {
		if r.Revision == revision {
			return r
		}
	}
	return nil
}

// CurrentRun returns the run of the current revision, or nil.
func (c *Canary) CurrentRun() *Run { return c.Run(c.Current) }

// with returns a copy of c in which run replaces the run of its revision,
// or is added; the other runs are shared, since stored runs are never
// changed in place.
func (c *Canary) with(run *Run) *Canary {
	out := *c
	out.Runs = slices.Clone(c.Runs)
	for i, r := range out.Runs {
		if r.Revision == run.Revision {
			out.Runs[i] = run
			return &out
		}
	}
	out.Runs = append(out.Runs, run)
	return &out
}

// A Run is one revision of one canary: the analyses of it, in order, and
// the latches that override them. A new revision starts a new run with no
// latches and no history; the old run keeps its own.
type Run struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Revision identifies the canary version: Flagger's checksum, Argo's
	// revision param, the orchestrator's version, or one assigned on the
	// first call that named none.
	Revision string `json:"revision"`
	// Current is set in answers when this is its canary's current run.
	Current bool `json:"current,omitempty"`
	// Policy and Params are those of the latest analysis; alerts are
	// matched against them.
	Policy string            `json:"policy,omitempty"`
	Params map[string]string `json:"params,omitempty"`
	// Phase is the last phase Flagger reported, if any.
	Phase     string    `json:"phase,omitempty"`
	StartedAt time.Time `json:"startedAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// Latches in the order they were set; only active ones are kept.
	Latches []Latch `json:"latches"`
	// Refused counts latches not kept because the run already held
	// MaxLatches of their kind.
	Refused int `json:"refusedLatches,omitempty"`
	// Overrides are the latest manual actions, newest last: who did what,
	// when and why.
	Overrides []Override `json:"overrides,omitempty"`
	// Evaluations counts every analysis of this run, including those no
	// longer kept in the history.
	Evaluations  uint64            `json:"evaluations"`
	LastVerdict  analysis.Verdict  `json:"lastVerdict,omitempty"`
	LastDecision analysis.Decision `json:"lastDecision,omitempty"`
	LastReason   string            `json:"lastReason,omitempty"`
}

// ID names the run in results and logs: namespace/name@revision.
func (r *Run) ID() string { return r.Namespace + "/" + r.Name + "@" + r.Revision }

// clone returns a copy to change; the slices and map are copied so that
// the stored run stays as it was.
func (r *Run) clone() *Run {
	c := *r
	c.Latches = slices.Clone(r.Latches)
	c.Overrides = slices.Clone(r.Overrides)
	c.Current = false
	return &c
}

// Latch returns the run's overriding latch: a rollback before a pause
// before a promotion, so that no override can hide a rollback.
func (r *Run) Latch() (Latch, bool) {
	for _, kind := range []LatchKind{LatchRollback, LatchPause, LatchPromote} {
		for _, l := range r.Latches {
			if l.Kind == kind {
				return l, true
			}
		}
	}
	return Latch{}, false
}

// Has reports whether the run holds a latch of the kind.
func (r *Run) Has(kind LatchKind) bool {
	return slices.ContainsFunc(r.Latches, func(l Latch) bool { return l.Kind == kind })
}

// addLatch adds l unless the run holds it already (a redelivered alert, a
// repeated failure) or holds MaxLatches of its kind. It reports whether
// the latch is there now (added or held before) and whether it was added.
func (r *Run) addLatch(l Latch) (held, added bool) {
	n := 0
	for _, x := range r.Latches {
		if x.Kind != l.Kind {
			continue
		}
		if x.Source == l.Source && x.Alert == l.Alert && (l.Alert != "" || x.Reason == l.Reason) {
			return true, false
		}
		n++
	}
	if n >= MaxLatches {
		r.Refused++
		return false, false
	}
	r.Latches = append(r.Latches, l)
	return true, true
}

// override records a manual action, keeping the newest MaxOverrides.
func (r *Run) override(o Override) {
	r.Overrides = append(r.Overrides, o)
	if len(r.Overrides) > MaxOverrides {
		r.Overrides = slices.Delete(r.Overrides, 0, len(r.Overrides)-MaxOverrides)
	}
}

// LatchKind is what a latch forces.
type LatchKind string

// Latch kinds. A rollback latch makes every analysis of the run fail with
// decision rollback; a pause latch makes them inconclusive with decision
// pause; a promote latch (a manual override) makes them pass with decision
// promote.
const (
	LatchRollback LatchKind = "rollback"
	LatchPause    LatchKind = "pause"
	LatchPromote  LatchKind = "promote"
)

// LatchKinds lists the kinds, rollback first.
var LatchKinds = []LatchKind{LatchRollback, LatchPause, LatchPromote}

// LatchSource says who set a latch.
type LatchSource string

// Latch sources.
const (
	SourceAlert    LatchSource = "alert"
	SourceManual   LatchSource = "manual"
	SourceAnalysis LatchSource = "analysis"
)

// Latch overrides the analyses of a run until it is lifted.
type Latch struct {
	Kind   LatchKind   `json:"kind"`
	Source LatchSource `json:"source"`
	Reason string      `json:"reason"`
	At     time.Time   `json:"at"`
	// Alert identifies the alert that set the latch (Alertmanager's
	// fingerprint), so a redelivery is a no-op and a resolution finds it.
	Alert string `json:"alert,omitempty"`
	// By names who set a manual latch: the token entry that authenticated
	// the call.
	By string `json:"by,omitempty"`
}

// Override is one manual action on a run.
type Override struct {
	Action string    `json:"action"`
	Reason string    `json:"reason"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
}

// Evaluation is one analysis of a run as kept in its history: every rule's
// value and outcome, without the rendered queries.
type Evaluation struct {
	// Seq numbers the run's analyses from 1.
	Seq      uint64            `json:"seq"`
	At       time.Time         `json:"at"`
	Policy   string            `json:"policy"`
	Verdict  analysis.Verdict  `json:"verdict"`
	Decision analysis.Decision `json:"decision"`
	Score    float64           `json:"score"`
	Reason   string            `json:"reason"`
	Rules    []RuleRecord      `json:"rules"`
	// Hold is what hold and cap decision rules asked for.
	Hold *analysis.Hold `json:"hold,omitempty"`
	// DryRun is what the analysis would have concluded with its dry-run
	// parts counted.
	DryRun *analysis.DryRun `json:"dryRun,omitempty"`
}

// RuleRecord is one rule's outcome in a stored evaluation: enough to chart
// the rule over a run's analyses (value against threshold, canary against
// baseline, no data marked) without the rendered queries.
type RuleRecord struct {
	Name    string          `json:"name"`
	Verdict string          `json:"verdict"`
	Value   *analysis.Float `json:"value,omitempty"`
	// Threshold is the right side of a comparison rule.
	Threshold *analysis.Float `json:"threshold,omitempty"`
	// NoData marks a rule that took its noData outcome.
	NoData bool   `json:"noData,omitempty"`
	Reason string `json:"reason"`
	// Comparison holds a statistical comparison's figures: both sides'
	// means, the p-value and the interval.
	Comparison *analysis.ComparisonResult `json:"comparison,omitempty"`
	// DryRun marks a rule that ran without effect on the verdict.
	DryRun bool `json:"dryRun,omitempty"`
}
