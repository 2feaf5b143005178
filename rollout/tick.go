package rollout

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/aurum/canary/analysis"
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
		if !ok {
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
	var analyzed *runs.Answer
	if r.Phase == PhaseProgressing || r.Phase == PhasePromoting {
		if analyzed, err = o.analyze(ctx, r); err != nil {
			o.o.Logger.Warn("rollout analysis did not run", "rollout", key, "err", err)
		}
	}
	group := o.groupState(ctx, r)
	r, err = o.update(ctx, key, func(cur *Rollout) error {
		o.step(cur, now, analyzed, group)
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

// step is the state machine: given the rollout, the time, the analysis
// that just ran (nil when none did) and its group's state, it changes the
// rollout in place. It does no I/O, so it runs again unchanged if the
// store retries the write.
func (o *Orchestrator) step(r *Rollout, now time.Time, res *runs.Answer, g groupState) {
	interval := time.Duration(r.Schedule.Interval)
	switch r.Phase {
	case PhasePending:
		r.Step = 0
		r.TargetWeight = r.Schedule.Steps[0].Weight
		if r.Schedule.Warmup > 0 {
			o.enter(r, PhaseWarmup, now, fmt.Sprintf("warming up at %d%% for %s; metrics ignored", r.TargetWeight, time.Duration(r.Schedule.Warmup)))
			r.NextAt = now.Add(time.Duration(r.Schedule.Warmup))
			return
		}
		o.enter(r, PhaseProgressing, now, fmt.Sprintf("step 1 at %d%%", r.TargetWeight))
		r.StepSince = now
		r.NextAt = now.Add(interval)
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
	if res != nil {
		o.judge(r, now, res)
		if r.Phase != PhaseProgressing && r.Phase != PhasePromoting {
			return
		}
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
			o.enter(r, PhaseCompleted, now, promotedReason)
			return
		}
		r.TargetWeight = 100
	}
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
	r.record(Event{At: now, Type: "evaluation", Step: r.Step, Weight: r.TargetWeight, Verdict: res.Verdict, Reason: res.Reason})

	decision, why := res.Decision, res.Reason
	if o.o.Decide != nil && a.Latched == "" {
		if d, reason := o.o.Decide(r, res); d != "" {
			decision, why = d, reason
		}
	}
	switch {
	case decision == analysis.DecisionPromote:
		if r.Phase != PhasePromoting {
			r.Step = len(r.Schedule.Steps) - 1
			r.TargetWeight = r.Schedule.Steps[r.Step].Weight
			o.enter(r, PhasePromoting, now, why)
		}
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
	}
}

// gate re-judges an analysis on the step's own rules only. A latched
// answer is never re-judged: a latch acts at once, whatever the limits.
func gate(res *analysis.Result, names []string) *analysis.Result {
	g := *res
	g.Rules = slices.DeleteFunc(slices.Clone(res.Rules), func(rr analysis.RuleResult) bool { return !slices.Contains(names, rr.Name) })
	g.Verdict, g.Decision, g.Reason = analysis.VerdictPass, analysis.DecisionContinue, "step rules passed"
	for _, rr := range g.Rules {
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
	UpdatedAt          time.Time    `json:"updatedAt"`
}

// Status renders the rollout for the API: step is 1-based.
func (r *Rollout) Status() Status {
	s := Status{
		Namespace: r.Spec.Namespace, Name: r.Spec.Name, Version: r.Spec.Version, Group: r.Spec.Group, Policy: r.Spec.Policy,
		Status: r.Phase, Step: r.Step + 1, Steps: len(r.Schedule.Steps), CurrentWeight: r.AppliedWeight,
		TargetWeight: r.TargetWeight, HealthStatus: r.Health(), Reason: r.Reason, LastEvaluation: r.LastEvaluation,
		History: r.History, Traffic: r.Traffic, UpdatedAt: r.UpdatedAt,
	}
	if e := r.LastEvaluation; e != nil && e.ErrorRatePercent != nil {
		s.ErrorRatePercent = e.ErrorRatePercent
		success := 100 - *e.ErrorRatePercent
		s.SuccessRatePercent = &success
		s.AvgLatencyMs = e.LatencyMs
	}
	return s
}
