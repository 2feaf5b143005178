package rollout

import (
	"context"
	"time"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/runs"
)

// shadowResult is one shadow policy's analysis at a tick.
type shadowResult struct {
	policy string
	res    *analysis.Result
}

// shadows evaluates the rollout's shadow policies. They belong to no run:
// their analyses are published (so counted) but latch nothing, and a
// shadow that is no longer loaded, or no longer dryRun, is skipped rather
// than let act.
func (o *Orchestrator) shadows(ctx context.Context, r *Rollout) []shadowResult {
	if len(r.Spec.Shadow) == 0 {
		return nil
	}
	set := o.o.Policies()
	if set == nil {
		return nil
	}
	var out []shadowResult
	for _, name := range r.Spec.Shadow {
		pol, err := set.Get(name)
		if err != nil || !pol.DryRun {
			o.o.Logger.Warn("shadow policy skipped: not loaded, or no longer dryRun", "rollout", r.Spec.Key(), "policy", name)
			continue
		}
		a, err := o.o.Runs.Analyze(ctx, o.o.Evaluator, pol, runs.Ref{}, r.Spec.Params, time.Time{}, runs.OriginRollout)
		if err != nil {
			o.o.Logger.Warn("shadow analysis did not run", "rollout", r.Spec.Key(), "policy", name, "err", err)
			continue
		}
		out = append(out, shadowResult{policy: name, res: a.Result})
	}
	return out
}

// countDryRuns counts what the policy's dry-run parts and the shadow
// policies would have decided. It changes nothing else.
func (o *Orchestrator) countDryRuns(r *Rollout, now time.Time, a *runs.Answer, shadows []shadowResult) {
	var live analysis.Verdict
	if a != nil && a.Latched == "" {
		live = a.Verdict
		if d := a.DryRun; d != nil {
			o.tally(r, now, r.Spec.Policy, false, a.Result, d.Changed)
		}
	}
	for _, s := range shadows {
		if d := s.res.DryRun; d != nil {
			o.tally(r, now, s.policy, true, s.res, live != "" && d.Verdict != live)
		}
	}
}

func (o *Orchestrator) tally(r *Rollout, now time.Time, policy string, shadow bool, res *analysis.Result, changed bool) {
	i := -1
	for j := range r.DryRuns {
		if r.DryRuns[j].Policy == policy && r.DryRuns[j].Shadow == shadow {
			i = j
		}
	}
	if i < 0 {
		if len(r.DryRuns) > maxShadows {
			return // bounded: the policy and its shadows
		}
		r.DryRuns = append(r.DryRuns, DryRunSummary{Policy: policy, Shadow: shadow})
		i = len(r.DryRuns) - 1
	}
	s, d := &r.DryRuns[i], res.DryRun
	switch d.Verdict {
	case analysis.VerdictPass:
		s.Pass++
	case analysis.VerdictFail:
		s.Fail++
	default:
		s.Inconclusive++
	}
	if changed {
		s.Changed++
	}
	e := summarise(res, nil)
	e.At = now
	e.Verdict, e.Decision, e.Reason, e.Score, e.Hold, e.DryRun = d.Verdict, d.Decision, d.Reason, d.Score, d.Hold, d
	s.Last = e
}
