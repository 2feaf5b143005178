package rollout

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/rollout/deploy"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs"
)

// newEvents returns the events after has that before did not, for
// callbacks.
func newEvents(before, after *Rollout) []Event {
	for i, e := range after.History {
		if e.Seq > before.Events {
			return after.History[i:]
		}
	}
	return nil
}

// Tick advances one rollout by what is due now: it finishes a traffic
// change a crash interrupted, ends the warmup, runs an analysis and acts on
// it, steps up, promotes, completes or steps down a rollback. It returns
// the rollout as stored; its NextAt says when to tick again.
func (o *Orchestrator) Tick(ctx context.Context, namespace, name string) (*Rollout, error) {
	return o.tick(ctx, namespace+"/"+name)
}

func (o *Orchestrator) tick(ctx context.Context, key string) (*Rollout, error) {
	unlock := o.lock(key)
	defer unlock()
	r, err := o.get(ctx, key)
	if err != nil {
		return nil, err
	}
	if r.Phase.Terminal() {
		return r, nil
	}
	if r.Phase == PhasePaused || r.Phase == PhaseFailed {
		// Held for a person, but not against a rollback: one latched on
		// the rollout's run meanwhile (an alert, a manual call) rolls it
		// back all the same.
		l, ok := o.o.Runs.RollbackLatch(r.Spec.Namespace, r.Spec.Name, r.Spec.Version)
		if !ok || r.stableWritten() {
			// Once the stable Deployment runs the new version, moving
			// traffic back to it rolls nothing back.
			return r, nil
		}
		before := r
		if r, err = o.update(ctx, key, func(cur *Rollout) error {
			o.enterRollback(cur, o.o.Now(), "rollback latched by "+string(l.Source)+": "+l.Reason)
			return nil
		}); err != nil {
			return nil, err
		}
		for _, e := range newEvents(before, r) {
			o.emit(r, e)
		}
	}
	// A weight decided but perhaps never applied (a crash between the
	// two writes), or a rollback in progress: see to the traffic first.
	if r.AppliedWeight != r.TargetWeight || r.Phase == PhaseRollingBack {
		if r, err = o.applyTraffic(ctx, r); err != nil || r.Phase == PhaseFailed {
			return r, err
		}
	}
	now := o.o.Now()
	if now.Before(r.NextAt) {
		return r, nil
	}
	before := r
	var seen observed
	if r.Phase == PhaseProgressing || r.Phase == PhasePromoting {
		if seen.answer, err = o.analyze(ctx, r); err != nil {
			o.o.Logger.Warn("rollout analysis did not run", "rollout", key, "err", err)
		}
		seen.shadows = o.shadows(ctx, r)
	}
	if r.Deploy != nil {
		if seen.deploy, err = o.deployWork(ctx, r); err != nil {
			// Retried with backoff; the progress deadline still runs.
			return r, fmt.Errorf("deployments: %w", err)
		}
	}
	seen.group = o.groupState(ctx, r)
	r, err = o.update(ctx, key, func(cur *Rollout) error {
		o.step(cur, now, seen)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, e := range newEvents(before, r) {
		o.emit(r, e)
	}
	if r, err = o.applyTraffic(ctx, r); err != nil {
		return r, err
	}
	o.schedule(key, r.NextAt)
	return r, nil
}

// observed is what a tick saw before changing the rollout: the analysis
// that just ran (nil when none did), the shadow policies' analyses, the
// Deployments (nil for a rollout that manages none) and the group.
type observed struct {
	answer  *runs.Answer
	shadows []shadowResult
	deploy  *deployObserved
	group   groupState
}

// step is the state machine: given the rollout, the time and what the
// tick observed, it changes the rollout in place. It does no I/O, so it
// runs again unchanged if the store retries the write.
func (o *Orchestrator) step(r *Rollout, now time.Time, seen observed) {
	interval := time.Duration(r.Schedule.Interval)
	res, g := seen.answer, seen.group
	if seen.deploy != nil && r.Deploy != nil {
		r.Deploy.State, r.Deploy.At = seen.deploy.state, now
	}
	switch r.Phase {
	case PhasePending:
		if r.Deploy != nil {
			// No traffic reaches the canary before its Deployment is
			// available.
			r.TargetWeight = 0
			r.Deploy.Stage = ""
			o.enter(r, PhaseDeploying, now, "deploying canary "+r.Spec.Deployment.CanaryName())
			r.NextAt = now
			return
		}
		o.begin(r, now)
		return
	case PhaseDeploying:
		o.deploying(r, now, seen.deploy)
		return
	case PhaseFinalising:
		o.finalising(r, now, seen.deploy)
		return
	case PhaseWarmup:
		if now.Before(r.PhaseSince.Add(time.Duration(r.Schedule.Warmup))) {
			r.NextAt = r.PhaseSince.Add(time.Duration(r.Schedule.Warmup))
			return
		}
		o.advance(r, now, "warmup over")
		r.NextAt = now.Add(interval)
		return
	case PhaseRollingBack:
		// The traffic engine lowers the weight; applyTraffic follows it.
		return
	}

	// Progressing or promoting: a lockstep group rolls back together.
	if g.rolledBack != "" {
		o.enterRollback(r, now, "group member "+g.rolledBack+" rolled back")
		return
	}
	r.NextAt = now.Add(interval)
	if res != nil || len(seen.shadows) > 0 {
		o.countDryRuns(r, now, res, seen.shadows)
	}
	if res != nil {
		o.judge(r, now, res)
		if r.Phase != PhaseProgressing && r.Phase != PhasePromoting {
			return
		}
	}
	if h := r.Hold; h != nil {
		// Held: no step, no promotion, until the rules clear or the
		// hold outlasts its maxHold.
		if !now.Before(h.Until()) {
			o.enterRollback(r, now, fmt.Sprintf("held by %s for %s (maxHold) without clearing", strings.Join(h.Rules, ", "), time.Duration(h.MaxHold)))
			return
		}
		if h.Until().Before(r.NextAt) {
			r.NextAt = h.Until()
		}
		return
	}
	switch r.Phase {
	case PhaseProgressing:
		stepEnd := r.StepSince.Add(time.Duration(r.Schedule.Steps[r.Step].Duration))
		if now.Before(stepEnd) || r.LastEvaluation == nil || r.LastEvaluation.Verdict != analysis.VerdictPass {
			if !now.Before(stepEnd) {
				r.NextAt = now.Add(interval)
			} else if stepEnd.Before(r.NextAt) {
				r.NextAt = stepEnd
			}
			return
		}
		if g.lockstep {
			r.Ready = true
			if !g.allReady(r) {
				r.NextAt = now.Add(min(interval, time.Second))
				return
			}
		}
		o.advance(r, now, fmt.Sprintf("step %d passed", r.Step+1))
	case PhasePromoting:
		if now.Before(r.PhaseSince.Add(time.Duration(r.Schedule.Promotion))) {
			return
		}
		if r.LastEvaluation != nil && r.LastEvaluation.Verdict == analysis.VerdictFail {
			return
		}
		// Completed means the canary has all traffic: the phase changes
		// once the router confirms it (applyTraffic), not before.
		if r.AppliedWeight == 100 {
			o.finish(r, now)
			return
		}
		r.TargetWeight = 100
	}
}

// begin starts the schedule at its first step: a warmup, or the first
// step's analyses.
func (o *Orchestrator) begin(r *Rollout, now time.Time) {
	r.Step = 0
	r.TargetWeight = r.Schedule.Steps[0].Weight
	if r.Schedule.Warmup > 0 {
		o.enter(r, PhaseWarmup, now, fmt.Sprintf("warming up at %d%% for %s; metrics ignored", r.TargetWeight, time.Duration(r.Schedule.Warmup)))
		r.NextAt = now.Add(time.Duration(r.Schedule.Warmup))
		return
	}
	o.enter(r, PhaseProgressing, now, fmt.Sprintf("step 1 at %d%%", r.TargetWeight))
	r.StepSince = now
	r.NextAt = now.Add(time.Duration(r.Schedule.Interval))
}

// finish ends a promotion once the canary has all the traffic: completed,
// or, for a rollout that manages Deployments, on to finalising them.
func (o *Orchestrator) finish(r *Rollout, now time.Time) {
	if r.Deploy == nil {
		o.enter(r, PhaseCompleted, now, promotedReason)
		return
	}
	r.Deploy.Stage = ""
	o.enter(r, PhaseFinalising, now, "the canary takes all traffic: promoting stable deployment "+r.Spec.Deployment.Name)
	r.NextAt = now
}

// judge acts on one analysis: latches first, then the decision, against
// the failure and inconclusive limits.
func (o *Orchestrator) judge(r *Rollout, now time.Time, a *runs.Answer) {
	res := a.Result
	stepRules := r.Schedule.Steps[r.Step].Rules
	if r.Phase == PhaseProgressing && len(stepRules) > 0 && a.Latched == "" {
		res = gate(res, stepRules)
	}
	r.LastEvaluation = summarise(res, o.policy(r))
	r.LastEvaluation.Hold, r.LastEvaluation.DryRun = res.Hold, res.DryRun
	r.record(Event{At: now, Type: "evaluation", Step: r.Step, Weight: r.TargetWeight, Verdict: res.Verdict, Reason: res.Reason})

	decision, why := res.Decision, res.Reason
	if o.o.Decide != nil && a.Latched == "" {
		if d, reason := o.o.Decide(r, res); d != "" {
			decision, why = d, reason
		}
	}
	switch {
	case decision == analysis.DecisionPromote:
		o.promote(r, now, why)
	case decision == analysis.DecisionRollback && a.Latched != "":
		o.enterRollback(r, now, why)
	case res.Verdict == analysis.VerdictFail || decision == analysis.DecisionRollback:
		r.Failures++
		if r.Failures <= r.Schedule.FailureLimit {
			return
		}
		if r.Schedule.AutoRollback && decision == analysis.DecisionRollback {
			o.enterRollback(r, now, why)
			return
		}
		r.ResumeTo = r.Phase
		o.enter(r, PhasePaused, now, why)
	case decision == analysis.DecisionPause:
		if a.Latched != "" || res.Verdict != analysis.VerdictInconclusive {
			r.ResumeTo = r.Phase
			o.enter(r, PhasePaused, now, why)
			return
		}
		r.Inconclusives++
		if r.Inconclusives > r.Schedule.InconclusiveLimit {
			r.ResumeTo = r.Phase
			o.enter(r, PhasePaused, now, why)
		}
	case decision == analysis.DecisionHold:
		o.hold(r, now, res.Hold, why)
	case decision == analysis.DecisionContinue && res.Verdict == analysis.VerdictPass && r.Hold != nil:
		o.release(r, now)
	}
}

// promote moves r to the promotion phase at its top weight. A held
// rollout keeps its weight: the top one is where the hold, once released,
// takes it.
func (o *Orchestrator) promote(r *Rollout, now time.Time, why string) {
	if r.Phase == PhasePromoting {
		return
	}
	r.Step = len(r.Schedule.Steps) - 1
	if h := r.Hold; h != nil {
		h.Weight, h.Elapsed = r.Schedule.Steps[r.Step].Weight, 0
	} else {
		r.TargetWeight = r.Schedule.Steps[r.Step].Weight
	}
	o.enter(r, PhasePromoting, now, why)
}

// hold holds r for the hold or cap decision rules that held: it records
// where the rollout was when the hold began, and lowers the weight to the
// cap; it never raises it. h is nil when a custom decision asked for the
// hold: a plain hold for rules.DefaultMaxHold.
func (o *Orchestrator) hold(r *Rollout, now time.Time, h *analysis.Hold, why string) {
	if h == nil {
		h = &analysis.Hold{Rules: []string{"decide"}, MaxHold: analysis.Seconds(rules.DefaultMaxHold)}
	}
	if r.Hold == nil {
		since := r.StepSince
		if r.Phase == PhasePromoting {
			since = r.PhaseSince
		}
		r.Hold = &Hold{Since: now, Weight: r.TargetWeight, Elapsed: Duration(max(now.Sub(since), 0))}
		r.record(Event{At: now, Type: "transition", From: r.Phase, To: r.Phase, Step: r.Step, Weight: r.TargetWeight, Reason: "held: " + why})
	}
	r.Hold.Rules, r.Hold.MaxHold, r.Hold.Cap = slices.Clone(h.Rules), Duration(h.MaxHold), nil
	if h.Cap != nil {
		c := *h.Cap
		r.Hold.Cap = &c
		if c < r.TargetWeight {
			r.TargetWeight = c
			r.record(Event{At: now, Type: "transition", From: r.Phase, To: r.Phase, Step: r.Step, Weight: c, Reason: fmt.Sprintf("capped at %d%%: %s", c, why)})
		}
	}
	r.Reason = why
}

// release ends r's hold: the rollout goes back to the weight it had and
// its step's (or promotion's) clock goes on from where the hold stopped it.
func (o *Orchestrator) release(r *Rollout, now time.Time) {
	h := r.Hold
	r.Hold = nil
	r.TargetWeight = h.Weight
	since := now.Add(-time.Duration(h.Elapsed))
	if r.Phase == PhasePromoting {
		r.PhaseSince = since
	} else {
		r.StepSince = since
	}
	r.Reason = fmt.Sprintf("hold by %s released after %s", strings.Join(h.Rules, ", "), now.Sub(h.Since).Round(time.Second))
	r.record(Event{At: now, Type: "transition", From: r.Phase, To: r.Phase, Step: r.Step, Weight: r.TargetWeight, Reason: r.Reason})
}

// gate re-judges an analysis on the step's own rules only. A latched
// answer is never re-judged: a latch acts at once, whatever the limits.
func gate(res *analysis.Result, names []string) *analysis.Result {
	g := *res
	g.Rules = slices.DeleteFunc(slices.Clone(res.Rules), func(rr analysis.RuleResult) bool { return !slices.Contains(names, rr.Name) })
	g.Verdict, g.Decision, g.Reason = analysis.VerdictPass, analysis.DecisionContinue, "step rules passed"
	if res.Decision == analysis.DecisionHold {
		// A hold is the decision rules', not the step's rules': it stands.
		g.Decision, g.Reason = analysis.DecisionHold, res.Reason
	}
	for _, rr := range g.Rules {
		if rr.DryRun {
			continue
		}
		switch rr.Verdict {
		case rules.OutcomeFail:
			g.Verdict, g.Decision, g.Reason = analysis.VerdictFail, analysis.DecisionRollback, rr.Name+": "+rr.Reason
			return &g
		case rules.OutcomeInconclusive, rules.OutcomeError:
			g.Verdict, g.Decision, g.Reason = analysis.VerdictInconclusive, analysis.DecisionPause, rr.Name+": "+rr.Reason
		}
	}
	return &g
}

func (o *Orchestrator) policy(r *Rollout) *rules.Policy {
	set := o.o.Policies()
	if set == nil {
		return nil
	}
	pol, _ := set.Get(r.Spec.Policy)
	return pol
}

// summarise keeps what a status shows of an analysis.
func summarise(res *analysis.Result, pol *rules.Policy) *Evaluation {
	e := &Evaluation{At: res.EvaluatedAt, Verdict: res.Verdict, Decision: res.Decision, Reason: res.Reason,
		Score: res.Score, Rules: res.Rules}
	if pol == nil || pol.Rollout == nil {
		return e
	}
	value := func(name string) *float64 {
		if name == "" {
			return nil
		}
		if q := res.Queries.Get(name); q != nil && q.Value != nil {
			v := float64(*q.Value)
			return &v
		}
		return nil
	}
	if v := value(pol.Rollout.Report.ErrorRate); v != nil {
		pct := *v * 100
		e.ErrorRatePercent = &pct
	}
	e.LatencyMs = value(pol.Rollout.Report.LatencyMs)
	return e
}

// analyze runs the rollout's policy as an analysis of its run, so that
// latches from alerts and the runs API apply, and the history is kept.
func (o *Orchestrator) analyze(ctx context.Context, r *Rollout) (*runs.Answer, error) {
	pol := o.policy(r)
	if pol == nil {
		return nil, fmt.Errorf("policy %s is not loaded", r.Spec.Policy)
	}
	return o.o.Runs.Analyze(ctx, o.o.Evaluator, pol, ref(r), r.Spec.Params, time.Time{}, runs.OriginRollout)
}

// Status is a rollout as the API shows it.
type Status struct {
	Namespace          string       `json:"namespace"`
	Name               string       `json:"name"`
	Version            string       `json:"version"`
	Group              string       `json:"group,omitempty"`
	Policy             string       `json:"policy"`
	Status             Phase        `json:"status"`
	Step               int          `json:"step"`
	Steps              int          `json:"steps"`
	CurrentWeight      int          `json:"currentWeight"`
	TargetWeight       int          `json:"targetWeight"`
	HealthStatus       string       `json:"healthStatus"`
	SuccessRatePercent *float64     `json:"successRatePercent"`
	ErrorRatePercent   *float64     `json:"errorRatePercent"`
	AvgLatencyMs       *float64     `json:"avgLatencyMs"`
	Reason             string       `json:"reason,omitempty"`
	LastEvaluation     *Evaluation  `json:"lastEvaluation,omitempty"`
	History            []Event      `json:"history"`
	Traffic            *TrafficInfo `json:"traffic,omitempty"`
	Hold               *Hold        `json:"hold,omitempty"`
	// Deployments are the Deployments as last read, for a rollout that
	// manages them.
	Deployments *deploy.State   `json:"deployments,omitempty"`
	Shadow      []string        `json:"shadow,omitempty"`
	DryRuns     []DryRunSummary `json:"dryRuns,omitempty"`
	UpdatedAt   time.Time       `json:"updatedAt"`
}

// Status renders the rollout for the API: step is 1-based.
func (r *Rollout) Status() Status {
	s := Status{
		Namespace: r.Spec.Namespace, Name: r.Spec.Name, Version: r.Spec.Version, Group: r.Spec.Group, Policy: r.Spec.Policy,
		Status: r.Phase, Step: r.Step + 1, Steps: len(r.Schedule.Steps), CurrentWeight: r.AppliedWeight,
		TargetWeight: r.TargetWeight, HealthStatus: r.Health(), Reason: r.Reason, LastEvaluation: r.LastEvaluation,
		History: r.History, Traffic: r.Traffic, Hold: r.Hold, Shadow: r.Spec.Shadow, DryRuns: r.DryRuns, UpdatedAt: r.UpdatedAt,
	}
	if r.Deploy != nil {
		st := r.Deploy.State
		s.Deployments = &st
	}
	if e := r.LastEvaluation; e != nil && e.ErrorRatePercent != nil {
		s.ErrorRatePercent = e.ErrorRatePercent
		success := 100 - *e.ErrorRatePercent
		s.SuccessRatePercent = &success
		s.AvgLatencyMs = e.LatencyMs
	}
	return s
}
