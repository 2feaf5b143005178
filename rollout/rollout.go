// Package rollout is the standalone orchestrator: for teams that run plain
// Deployments behind ingress-nginx or Gateway API with neither Argo
// Rollouts nor Flagger, it drives a canary itself. It starts the canary at
// a small share of traffic, evaluates the policy at every interval, steps
// the weight up while the rules pass, holds at the top for the promotion
// period, and completes, or rolls back (at once or stepping down).
//
// Every transition is written to the store before the traffic change that
// follows it, and the weight actually applied is written after: a process
// killed at any point resumes where it was, re-applying the new weight if
// it may not have reached the router, never an old one.
package rollout

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/rollout/deploy"
	"github.com/aurum/canary/rules"
)

// Phase is where a rollout is.
type Phase string

// Phases. A rollout goes pending → warmup → progressing → promoting →
// completed, or on to rolling_back → rolled_back; paused and failed wait
// for a person (resume). A rollout that manages Deployments goes through
// deploying (the canary Deployment is made and becomes available) before
// warmup, and finalising (the stable Deployment takes the canary's
// template, traffic goes back to it, the canary is scaled to 0) before
// completed.
const (
	PhasePending     Phase = "pending"
	PhaseDeploying   Phase = "deploying"
	PhaseFinalising  Phase = "finalising"
	PhaseWarmup      Phase = "warmup"
	PhaseProgressing Phase = "progressing"
	PhasePromoting   Phase = "promoting"
	PhaseCompleted   Phase = "completed"
	PhaseRollingBack Phase = "rolling_back"
	PhaseRolledBack  Phase = "rolled_back"
	PhasePaused      Phase = "paused"
	PhaseFailed      Phase = "failed"
)

// Key identifies the rollout in the store and the API: namespace/name.
func (s Spec) Key() string { return s.Namespace + "/" + s.Name }

// Terminal reports whether the rollout is over.
func (p Phase) Terminal() bool { return p == PhaseCompleted || p == PhaseRolledBack }

// Sentinel errors.
var (
	// ErrNotFound marks an unknown rollout or group.
	ErrNotFound = errors.New("rollout not found")
	// ErrConflict marks a start that names an existing rollout with
	// another version still in progress.
	ErrConflict = errors.New("rollout conflict")
	// ErrBadSpec marks a start request that cannot be run.
	ErrBadSpec = errors.New("bad rollout spec")
	// ErrBadAction marks a manual action that does not apply.
	ErrBadAction = errors.New("bad action")
)

// Spec is what a caller starts.
type Spec struct {
	// Namespace and Name identify the rollout, as they do the canary
	// Deployment: two teams' lmp-ingest are two rollouts. Starting the
	// same namespace, name and version again returns the existing
	// rollout. An empty Namespace is the policy param "namespace".
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Version labels the canary version, e.g. an image tag.
	Version string `json:"version"`
	// Policy and Params name the analysis; Params must include what the
	// policy's traffic section needs (usually namespace and name).
	Policy string            `json:"policy"`
	Params map[string]string `json:"params"`
	// Group, when set, makes this rollout a member of a group.
	Group string `json:"group,omitempty"`
	// Schedule overrides the policy's rollout section.
	Schedule *Override `json:"schedule,omitempty"`
	// Deployment, when set, makes the orchestrator manage the
	// Deployments too: it makes the canary Deployment from the stable one
	// with the new version, and promotes the stable one at the end. An
	// empty namespace is the rollout's.
	Deployment *deploy.Spec `json:"deployment,omitempty"`
	// Shadow names dryRun policies evaluated beside Policy at every
	// analysis: recorded, shown and counted, never acted on.
	Shadow []string `json:"shadow,omitempty"`
}

// maxShadows bounds a rollout's shadow policies: each one is an analysis
// more at every interval.
const maxShadows = 4

// Override changes parts of a policy's schedule for one rollout. Zero
// fields keep the policy's value.
type Override struct {
	InitialWeight     int             `json:"initialWeight,omitempty"`
	StepWeight        int             `json:"stepWeight,omitempty"`
	MaxWeight         int             `json:"maxWeight,omitempty"`
	Steps             []Step          `json:"steps,omitempty"`
	Warmup            *Duration       `json:"warmup,omitempty"`
	Interval          *Duration       `json:"interval,omitempty"`
	StepDuration      *Duration       `json:"stepDuration,omitempty"`
	Promotion         *Duration       `json:"promotion,omitempty"`
	FailureLimit      *int            `json:"failureLimit,omitempty"`
	InconclusiveLimit *int            `json:"inconclusiveLimit,omitempty"`
	AutoRollback      *bool           `json:"autoRollback,omitempty"`
	StepDown          *StepDownConfig `json:"stepDown,omitempty"`
	// ProgressDeadline bounds how long a managed Deployment may take to
	// roll out; the stable Deployment's progressDeadlineSeconds when nil.
	ProgressDeadline *Duration `json:"progressDeadline,omitempty"`
}

// StepDownConfig is a rollback's graceful schedule.
type StepDownConfig struct {
	Weights  []int    `json:"weights"`
	Interval Duration `json:"interval"`
}

// Step is one weight of a schedule, held for Duration while the rules
// pass; Rules, when set, are the only rules that gate it.
type Step struct {
	Weight   int      `json:"weight"`
	Duration Duration `json:"duration,omitempty"`
	Rules    []string `json:"rules,omitempty"`
}

// Schedule is a rollout's resolved plan.
type Schedule struct {
	Steps             []Step   `json:"steps"`
	Warmup            Duration `json:"warmup"`
	Interval          Duration `json:"interval"`
	Promotion         Duration `json:"promotion"`
	FailureLimit      int      `json:"failureLimit"`
	InconclusiveLimit int      `json:"inconclusiveLimit"`
	AutoRollback      bool     `json:"autoRollback"`
	StepDown          []int    `json:"stepDown,omitempty"`
	StepDownInterval  Duration `json:"stepDownInterval,omitempty"`
	// ProgressDeadline bounds how long the canary Deployment may take to
	// become available, and the stable one to roll out the promoted
	// template; set for rollouts that manage Deployments.
	ProgressDeadline Duration `json:"progressDeadline,omitempty"`
}

// Defaults of a schedule when neither the policy nor the override sets
// them.
const (
	DefaultInterval     = time.Minute
	DefaultStepDuration = 5 * time.Minute
	DefaultStepWeight   = 10
)

// resolve builds a rollout's schedule from its policy and override.
func resolve(pol *rules.Policy, o *Override) (Schedule, error) {
	base := rules.Rollout{MaxWeight: 100, AutoRollback: true}
	if pol.Rollout != nil {
		base = *pol.Rollout
	}
	if o == nil {
		o = &Override{}
	}
	pick := func(v, dflt int) int {
		if v != 0 {
			return v
		}
		return dflt
	}
	pickDur := func(d *Duration, dflt time.Duration) Duration {
		if d != nil {
			return *d
		}
		return Duration(dflt)
	}
	s := Schedule{
		Warmup:       pickDur(o.Warmup, base.Warmup),
		Interval:     pickDur(o.Interval, base.Interval),
		Promotion:    pickDur(o.Promotion, base.Promotion),
		FailureLimit: base.FailureLimit, InconclusiveLimit: base.InconclusiveLimit, AutoRollback: base.AutoRollback,
	}
	if s.Interval <= 0 {
		s.Interval = Duration(DefaultInterval)
	}
	if o.FailureLimit != nil {
		s.FailureLimit = *o.FailureLimit
	}
	if o.InconclusiveLimit != nil {
		s.InconclusiveLimit = *o.InconclusiveLimit
	}
	if o.AutoRollback != nil {
		s.AutoRollback = *o.AutoRollback
	}
	stepDuration := pickDur(o.StepDuration, base.StepDuration)
	if stepDuration <= 0 {
		stepDuration = Duration(DefaultStepDuration)
	}
	maxWeight := pick(o.MaxWeight, base.MaxWeight)
	switch {
	case len(o.Steps) > 0:
		s.Steps = slices.Clone(o.Steps)
	case o.StepWeight == 0 && o.InitialWeight == 0 && len(base.Steps) > 0:
		for _, st := range base.Steps {
			s.Steps = append(s.Steps, Step{Weight: st.Weight, Duration: Duration(st.Duration), Rules: st.Rules})
		}
	default:
		initial := pick(o.InitialWeight, base.InitialWeight)
		step := pick(o.StepWeight, base.StepWeight)
		if step == 0 {
			step = DefaultStepWeight
		}
		if initial == 0 {
			initial = step
		}
		for w := initial; ; w += step {
			s.Steps = append(s.Steps, Step{Weight: min(w, maxWeight)})
			if w >= maxWeight {
				break
			}
		}
	}
	for i := range s.Steps {
		if s.Steps[i].Duration == 0 {
			s.Steps[i].Duration = stepDuration
		}
		if s.Steps[i].Weight < 0 || s.Steps[i].Weight > 100 {
			return s, fmt.Errorf("%w: step %d weight %d is not between 0 and 100", ErrBadSpec, i+1, s.Steps[i].Weight)
		}
		if i > 0 && s.Steps[i].Weight < s.Steps[i-1].Weight {
			return s, fmt.Errorf("%w: step %d lowers the weight", ErrBadSpec, i+1)
		}
		for _, r := range s.Steps[i].Rules {
			if !slices.ContainsFunc(pol.Rules, func(x *rules.Rule) bool { return x.Name == r }) {
				return s, fmt.Errorf("%w: step %d gates on unknown rule %q", ErrBadSpec, i+1, r)
			}
		}
	}
	if len(s.Steps) == 0 {
		return s, fmt.Errorf("%w: the schedule has no steps", ErrBadSpec)
	}
	if pol.Traffic != nil && pol.Traffic.OnRollback == rules.OnRollbackStepDown {
		s.StepDown, s.StepDownInterval = pol.Traffic.StepDown, Duration(pol.Traffic.StepDownInterval)
	}
	if o.StepDown != nil {
		s.StepDown, s.StepDownInterval = o.StepDown.Weights, o.StepDown.Interval
	}
	return s, nil
}

// Rollout is a rollout as stored: its spec, its schedule, where it is and
// what happened.
type Rollout struct {
	Spec     Spec     `json:"spec"`
	Schedule Schedule `json:"schedule"`
	Phase    Phase    `json:"phase"`
	// ResumeTo is the phase a paused or failed rollout resumes to.
	ResumeTo Phase `json:"resumeTo,omitempty"`
	// Step indexes Schedule.Steps.
	Step int `json:"step"`
	// TargetWeight is the weight the rollout wants; AppliedWeight the last
	// one the router confirmed. They differ only while a change is in
	// flight, or after a crash in the middle of one.
	TargetWeight  int       `json:"targetWeight"`
	AppliedWeight int       `json:"appliedWeight"`
	PhaseSince    time.Time `json:"phaseSince"`
	StepSince     time.Time `json:"stepSince"`
	// Failures and Inconclusives count analyses against the limits.
	Failures      int `json:"failures"`
	Inconclusives int `json:"inconclusives"`
	// Ready marks a lockstep group member waiting for the others to
	// finish the step.
	Ready          bool        `json:"ready,omitempty"`
	LastEvaluation *Evaluation `json:"lastEvaluation,omitempty"`
	// History keeps the newest maxHistory events; Events counts them all.
	History   []Event      `json:"history"`
	Events    uint64       `json:"events"`
	Reason    string       `json:"reason,omitempty"`
	CreatedAt time.Time    `json:"createdAt"`
	UpdatedAt time.Time    `json:"updatedAt"`
	NextAt    time.Time    `json:"nextAt,omitzero"`
	Traffic   *TrafficInfo `json:"traffic,omitempty"`
	// Hold is set while the policy's hold or cap decision rules hold the
	// rollout: the step does not advance, the weight does not rise.
	Hold *Hold `json:"hold,omitempty"`
	// Deploy is where the work on the Deployments is, for a rollout that
	// manages them.
	Deploy *DeployState `json:"deploy,omitempty"`
	// DryRuns count what the dry-run parts of the policy, and each shadow
	// policy, would have decided.
	DryRuns []DryRunSummary `json:"dryRuns,omitempty"`
}

// Stages of the work on a rollout's Deployments, each recorded once done,
// so that a restart goes on from the next one.
const (
	// StageCanaryApplied: the canary Deployment was written (deploying).
	StageCanaryApplied = "canary-applied"
	// StageStableUpdated: the stable Deployment took the canary's pod
	// template (finalising).
	StageStableUpdated = "stable-updated"
	// StageStableReady: the stable Deployment rolled it out; traffic goes
	// back to it (finalising).
	StageStableReady = "stable-ready"
	// StageCanaryRetired: the canary Deployment is scaled to 0
	// (finalising, rolling back).
	StageCanaryRetired = "canary-retired"
)

// DeployState is the work on a rollout's Deployments.
type DeployState struct {
	// Stage is the last stage of the current phase done; empty before
	// the first.
	Stage string `json:"stage,omitempty"`
	// StableGeneration is the stable Deployment's generation once it took
	// the canary's template: the one whose rollout promotion waits for.
	// Once set, the stable runs the new version, and a rollback can no
	// longer undo the rollout.
	StableGeneration int64 `json:"stableGeneration,omitempty"`
	// State is the Deployments as last read, and At when.
	State deploy.State `json:"state"`
	At    time.Time    `json:"at"`
}

// stableWritten reports whether the stable Deployment took the canary's
// template: from then on, traffic going back to the stable is no
// rollback.
func (r *Rollout) stableWritten() bool { return r.Deploy != nil && r.Deploy.StableGeneration > 0 }

// Replicas are the Deployments' replica counts when an event happened.
type Replicas struct {
	Stable deploy.Counts `json:"stable"`
	Canary deploy.Counts `json:"canary"`
}

// DryRunSummary counts, for the policy's own dry-run parts or for a
// shadow policy, the verdicts they would have given, as Argo Rollouts'
// dryRunSummary does.
type DryRunSummary struct {
	Policy string `json:"policy"`
	// Shadow is set for a shadow policy, unset for the rollout's policy.
	Shadow       bool `json:"shadow,omitempty"`
	Pass         int  `json:"pass"`
	Fail         int  `json:"fail"`
	Inconclusive int  `json:"inconclusive"`
	// Changed counts the analyses whose verdict or decision the dry-run
	// parts would have changed; for a shadow policy, those whose verdict
	// differs from the rollout's policy's.
	Changed int `json:"changed"`
	// Last is the latest: the verdict and decision the policy would have
	// given, and its rules.
	Last *Evaluation `json:"last,omitempty"`
}

// Hold is a rollout held by hold or cap decision rules. It ends when an
// analysis passes without them, and the rollout then continues where it
// was: the weight it had, the step and the time into it it had. A hold
// that lasts MaxHold rolls the rollout back.
type Hold struct {
	// Rules name the decision rules that held at the latest analysis.
	Rules []string `json:"rules"`
	// Cap is the weight the cap rules among them lower the canary to;
	// nil when only hold rules held.
	Cap     *int      `json:"cap,omitempty"`
	Since   time.Time `json:"since"`
	MaxHold Duration  `json:"maxHold"`
	// Weight is the weight the rollout had when the hold began, to go
	// back to when it ends.
	Weight int `json:"weight"`
	// Elapsed is how long the rollout had been at its step (or promoting)
	// when the hold began: its clock goes on from there.
	Elapsed Duration `json:"elapsed"`
}

// Until is when the hold rolls the rollout back.
func (h *Hold) Until() time.Time { return h.Since.Add(time.Duration(h.MaxHold)) }

// TrafficInfo names the objects a rollout moves traffic on.
type TrafficInfo struct {
	Router    string `json:"router"`
	Namespace string `json:"namespace"`
	Object    string `json:"object"`
}

// Evaluation summarises the latest analysis of a rollout.
type Evaluation struct {
	At       time.Time             `json:"at"`
	Verdict  analysis.Verdict      `json:"verdict"`
	Decision analysis.Decision     `json:"decision"`
	Reason   string                `json:"reason"`
	Score    float64               `json:"score"`
	Rules    []analysis.RuleResult `json:"rules"`
	// ErrorRatePercent and LatencyMs come from the queries the policy's
	// rollout.report names; nil when it names none or they had no data.
	ErrorRatePercent *float64 `json:"errorRatePercent,omitempty"`
	LatencyMs        *float64 `json:"latencyMs,omitempty"`
	// Hold is what hold and cap decision rules asked for.
	Hold *analysis.Hold `json:"hold,omitempty"`
	// DryRun is what the policy would have concluded counting its
	// dry-run parts.
	DryRun *analysis.DryRun `json:"dryRun,omitempty"`
}

// Event is one thing that happened to a rollout.
type Event struct {
	// Seq numbers the rollout's events from 1.
	Seq     uint64           `json:"seq"`
	At      time.Time        `json:"at"`
	Type    string           `json:"type"` // transition, evaluation, traffic, action
	From    Phase            `json:"from,omitempty"`
	To      Phase            `json:"to,omitempty"`
	Step    int              `json:"step"`
	Weight  int              `json:"weight"`
	Verdict analysis.Verdict `json:"verdict,omitempty"`
	Reason  string           `json:"reason,omitempty"`
	// By names who made a manual action.
	By string `json:"by,omitempty"`
	// Replicas are the Deployments' counts, for a rollout that manages
	// them.
	Replicas *Replicas `json:"replicas,omitempty"`
}

// maxHistory bounds a rollout's events: a long promotion evaluated every
// minute must not grow its record without limit.
const maxHistory = 300

func (r *Rollout) record(e Event) {
	if r.Deploy != nil && !r.Deploy.At.IsZero() {
		e.Replicas = &Replicas{Stable: r.Deploy.State.Stable.Counts(), Canary: r.Deploy.State.Canary.Counts()}
	}
	r.Events++
	e.Seq = r.Events
	r.History = append(r.History, e)
	if len(r.History) > maxHistory {
		r.History = slices.Delete(r.History, 0, len(r.History)-maxHistory)
	}
}

// Health sums a rollout up as a deployment status does.
func (r *Rollout) Health() string {
	switch {
	case r.Phase == PhaseRolledBack || r.Phase == PhaseRollingBack || r.Phase == PhaseFailed:
		return "unhealthy"
	case r.LastEvaluation == nil:
		return "unknown"
	case r.LastEvaluation.Verdict == analysis.VerdictPass:
		return "healthy"
	case r.LastEvaluation.Verdict == analysis.VerdictFail:
		return "unhealthy"
	}
	return "degraded"
}

// Duration is a time.Duration written as "1m30s" in JSON.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

// UnmarshalJSON reads "90s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		v, err := time.ParseDuration(string(b[1 : len(b)-1]))
		if err != nil {
			return fmt.Errorf("bad duration %s: %w", b, err)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if _, err := fmt.Sscan(string(b), &secs); err != nil {
		return fmt.Errorf("bad duration %s", b)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}
