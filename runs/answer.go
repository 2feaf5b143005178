package runs

import (
	"fmt"
	"time"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/rules"
)

// Answer is an analysis as a run answers it: the evaluation (or the
// latch's forced verdict), the run it belongs to, and the latch that
// answered, with how to lift it.
type Answer struct {
	*analysis.Result
	// Run identifies the run: namespace/name@revision; empty for an
	// analysis that named no canary.
	Run string `json:"run,omitempty"`
	// Latched names the latch kind that answered instead of the rules.
	Latched LatchKind `json:"latched,omitempty"`
	// Latch is that latch, with the revision holding it and how to lift
	// it.
	Latch *LatchInfo `json:"latch,omitempty"`
}

// LatchInfo is a latch as an answer shows it.
type LatchInfo struct {
	Latch
	// Revision is the revision whose run holds the latch; it differs from
	// the answer's run when a call that named no revision was answered
	// from another revision's rollback.
	Revision string `json:"revision"`
	// Lift says how to lift it: a canary command and an API call.
	Lift Lift `json:"lift"`
}

// Lift is how to lift a latch.
type Lift struct {
	Command string `json:"command"`
	API     string `json:"api"`
}

// liftOf tells how to lift the latches of a run: resume lifts every latch.
func liftOf(run *Run) Lift {
	return Lift{
		Command: fmt.Sprintf(`canary runs resume %s/%s --revision %s --reason "…"`, run.Namespace, run.Name, run.Revision),
		API:     fmt.Sprintf(`POST /v1/runs/%s/%s/resume?revision=%s {"reason": "…"}`, run.Namespace, run.Name, run.Revision),
	}
}

// latchAnswer is the answer a latch forces for an analysis of pol. holder
// is the run that holds the latch; for names the run being answered
// when that is another (a call without a revision answered from another
// revision's rollback).
func latchAnswer(pol *rules.Policy, params map[string]string, holder *Run, l Latch, at time.Time, forID string) *Answer {
	res := &analysis.Result{Policy: pol.Name, Params: params, EvaluatedAt: at, Rules: []analysis.RuleResult{}, Queries: analysis.QueryResults{}}
	reason := string(l.Kind) + " latched by " + string(l.Source)
	if l.Reason != "" {
		reason += ": " + l.Reason
	}
	if forID != holder.ID() {
		reason = fmt.Sprintf("revision %s has a %s; this call names no revision, so it cannot be told apart: %s (pass the revision, or lift it)",
			holder.Revision, string(l.Kind)+" latch", reason)
	}
	res.Reason = reason
	switch l.Kind {
	case LatchRollback:
		res.Verdict, res.Decision = analysis.VerdictFail, analysis.DecisionRollback
	case LatchPause:
		res.Verdict, res.Decision = analysis.VerdictInconclusive, analysis.DecisionPause
	case LatchPromote:
		res.Verdict, res.Decision, res.Score = analysis.VerdictPass, analysis.DecisionPromote, 1
	}
	return &Answer{Result: res, Run: forID, Latched: l.Kind,
		Latch: &LatchInfo{Latch: l, Revision: holder.Revision, Lift: liftOf(holder)}}
}

// latchFor finds the latch that answers an analysis of run (nil when the
// rules do): the run's own, or, for a call that named no revision, a
// rollback held by another revision of the canary. A caller that names no
// revision cannot be told apart from the revision that was rolled back,
// so a gate answers it as rolled back until the rollback is lifted.
func latchFor(c *Canary, run *Run, namedRevision bool) (*Run, Latch, bool) {
	if run != nil {
		if l, ok := run.Latch(); ok {
			return run, l, true
		}
	}
	if namedRevision {
		return nil, Latch{}, false
	}
	for _, other := range c.Runs {
		if other == run {
			continue
		}
		for _, l := range other.Latches {
			if l.Kind == LatchRollback {
				return other, l, true
			}
		}
	}
	return nil, Latch{}, false
}

// record is the history entry of an answer.
func record(seq uint64, a *Answer) *Evaluation {
	res := a.Result
	e := &Evaluation{
		Seq: seq, At: res.EvaluatedAt, Policy: res.Policy, Verdict: res.Verdict,
		Decision: res.Decision, Score: res.Score, Reason: res.Reason,
		Rules: make([]RuleRecord, len(res.Rules)), Hold: res.Hold, DryRun: res.DryRun,
	}
	for i, rr := range res.Rules {
		e.Rules[i] = RuleRecord{Name: rr.Name, Verdict: string(rr.Verdict), Value: rr.Value, Threshold: rr.Threshold,
			NoData: rr.NoData, Reason: rr.Reason, Comparison: rr.Comparison, DryRun: rr.DryRun}
	}
	return e
}
