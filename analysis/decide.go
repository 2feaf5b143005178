package analysis

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/aurum/canary/rules"
)

// vms reuses expression VMs: a VM keeps its stack between runs, and a fresh
// one per rule would be most of an evaluation's allocations. Programs are
// shared; VMs are not, hence the pool.
var vms = sync.Pool{New: func() any { return new(vm.VM) }}

// Decide evaluates pol's rules over query results that are already in and
// returns the complete result: rule outcomes, verdict, score, decision and
// reason. It does no I/O. qs must be in the policy's query order, as
// Evaluate produces them.
func Decide(pol *rules.Policy, params map[string]string, qs QueryResults, at time.Time) *Result {
	res := &Result{
		Policy:      pol.Name,
		Params:      params,
		Queries:     qs,
		EvaluatedAt: at,
		Rules:       make([]RuleResult, len(pol.Rules), len(pol.Rules)+len(pol.Comparisons)),
	}
	env := make(map[string]any, len(qs)+1)
	for i := range qs {
		if v, ok := qs[i].envValue(); ok {
			env[qs[i].Name] = v
		}
	}
	env[rules.ParamsVar] = params

	machine := vms.Get().(*vm.VM)
	defer vms.Put(machine)
	var buf []byte
	for i, r := range pol.Rules {
		res.Rules[i], buf = evalRule(machine, r, qs, env, buf[:0])
	}
	for _, c := range pol.Comparisons {
		res.Rules = append(res.Rules, compare(c, qs))
	}
	if pol.Scoring != nil {
		res.scoreKayenta(pol)
	} else {
		res.aggregate(pol)
	}
	if len(pol.Decision.Rules) > 0 {
		res.applyDecisionRules(machine, pol, qs, env, at)
	}
	return res
}

// applyDecisionRules runs the policy's own decision rules. One that holds
// forces its action, and the verdict that goes with it, so that an Argo
// Rollouts condition on the verdict acts on it too: a rollback fails the
// analysis, a pause makes it inconclusive. A rule that lacks data for one
// of its queries does not apply.
func (res *Result) applyDecisionRules(machine *vm.VM, pol *rules.Policy, qs QueryResults, env map[string]any, at time.Time) {
	local := at.In(pol.Decision.Location)
	env[rules.HourVar], env[rules.MinuteVar], env[rules.WeekdayVar] = local.Hour(), local.Minute(), int(local.Weekday())
	defer func() {
		delete(env, rules.HourVar)
		delete(env, rules.MinuteVar)
		delete(env, rules.WeekdayVar)
	}()
	for _, d := range pol.Decision.Rules {
		usable := true
		for _, q := range d.Inputs {
			qr := &qs[q.Index]
			usable = usable && qr.err == nil && !qr.NoData
		}
		if !usable {
			continue
		}
		out, err := machine.Run(d.Program, env)
		if held, _ := out.(bool); err != nil || !held {
			continue
		}
		res.Decisions = append(res.Decisions, d.Name)
		why := "decision rule " + d.Name + " holds (" + d.Expr + ")"
		switch {
		case d.Action == rules.ActionRollback && res.Decision != DecisionRollback:
			res.Decision, res.Verdict = DecisionRollback, VerdictFail
			res.Reason = joinReason(why, res.Reason)
		case d.Action == rules.ActionPause && res.Decision == DecisionContinue:
			res.Decision, res.Verdict = DecisionPause, VerdictInconclusive
			res.Reason = joinReason(why, res.Reason)
		}
	}
}

// joinReason puts a decision rule's reason first, keeping the rules' own
// reason unless it only said that all rules passed.
func joinReason(why, prev string) string {
	if prev == "" || strings.HasSuffix(prev, "passed") {
		return why
	}
	return why + "; " + prev
}

// envValue is what rule expressions see for this query.
func (qr *QueryResult) envValue() (any, bool) {
	switch {
	case qr.err != nil || qr.NoData:
		return nil, false
	case qr.Value != nil:
		return float64(*qr.Value), true
	case qr.Points != nil:
		return qr.Points, true
	case qr.Samples != nil:
		return qr.Samples, true
	case qr.record != nil:
		return rules.NewRecord(qr.Kind, qr.record), true
	}
	return nil, false
}

func evalRule(machine *vm.VM, r *rules.Rule, qs QueryResults, env map[string]any, buf []byte) (RuleResult, []byte) {
	rr := RuleResult{Name: r.Name, Expr: r.Expr, Critical: r.Critical, Weight: r.Weight, Group: r.Group}
	rr.Inputs = r.InputNames

	// A failed query makes the rule an error and missing data takes the
	// rule's noData outcome; neither is evaluated, so an expression never
	// sees a NaN or an absent value and quietly passes.
	var noData string
	for _, q := range r.Inputs {
		qr := &qs[q.Index]
		if qr.err != nil {
			rr.Verdict = rules.OutcomeError
			rr.Reason = "query " + q.Name + " failed: " + qr.Error
			return rr, buf
		}
		if noData == "" && (qr.NoData || recordNoData(qr, r.RecordFields[q.Name])) {
			noData = q.Name
		}
	}
	if noData != "" {
		rr.Verdict, rr.NoData = r.NoData, true
		rr.Reason = "no data for " + noData + " (noData: " + string(r.NoData) + ")"
		return rr, buf
	}

	out, err := machine.Run(r.Program, env)
	if err != nil {
		rr.Verdict = rules.OutcomeError
		rr.Reason = "expression error: " + firstLine(err.Error())
		return rr, buf
	}
	ok, _ := out.(bool)
	rr.Verdict = rules.OutcomeFail
	if ok {
		rr.Verdict = rules.OutcomePass
	}
	buf = explainRule(machine, r, ok, env, qs, &rr, buf)
	rr.Reason = string(buf)
	return rr, buf
}

// explainRule sets the rule's value and writes its reason: for a comparison
// both sides, with the operator that held ("0.034 > 0.01" when the rule
// said `error_rate <= 0.01`); otherwise the inputs' values.
func explainRule(machine *vm.VM, r *rules.Rule, ok bool, env map[string]any, qs QueryResults, rr *RuleResult, buf []byte) []byte {
	if c := r.Explain; c != nil {
		left, lok := operandValue(machine, c.Left, env)
		right, rok := operandValue(machine, c.Right, env)
		if lok && rok {
			rr.Value, rr.Threshold = floatPtr(left), floatPtr(right)
			op := c.Op
			if !ok {
				op = rules.Negate(op)
			}
			buf = appendValue(buf, left)
			buf = append(buf, ' ')
			buf = append(buf, op...)
			buf = append(buf, ' ')
			return appendValue(buf, right)
		}
	}
	for i, q := range r.Inputs {
		if i > 0 {
			buf = append(buf, ", "...)
		}
		buf = append(buf, q.Name...)
		buf = append(buf, '=')
		switch v := env[q.Name].(type) {
		case float64:
			if rr.Value == nil {
				rr.Value = floatPtr(v)
			}
			buf = appendValue(buf, v)
		case []float64:
			buf = append(buf, fmt.Sprintf("%d points", len(v))...)
		case []rules.Sample:
			buf = append(buf, fmt.Sprintf("%d series", len(v))...)
		default:
			// A record: the fields the rule reads.
			buf = buf[:len(buf)-1]
			for j, f := range r.RecordFields[q.Name] {
				if j > 0 {
					buf = append(buf, ' ')
				} else {
					buf = append(buf, '.')
				}
				buf = append(buf, f...)
				buf = append(buf, '=')
				buf = appendValue(buf, qs[q.Index].record[f])
			}
		}
	}
	if ok {
		return append(buf, " (holds)"...)
	}
	return append(buf, " (does not hold)"...)
}

func operandValue(machine *vm.VM, o rules.Operand, env map[string]any) (float64, bool) {
	switch {
	case o.IsConst:
		return o.Const, true
	case o.Ident != "":
		v, ok := env[o.Ident].(float64)
		return v, ok
	case o.Program != nil:
		out, err := machine.Run(o.Program, env)
		if err != nil {
			return 0, false
		}
		v, ok := out.(float64)
		return v, ok
	}
	return 0, false
}

// aggregate derives verdict, score, decision and reason from rule outcomes.
// The verdict is fail if any rule failed, else inconclusive if any was
// inconclusive or errored, else pass.
func (res *Result) aggregate(pol *rules.Policy) {
	var total, passed float64
	var failed, unsure int
	criticalFailed := false
	for i := range res.Rules {
		rr := &res.Rules[i]
		total += rr.Weight
		switch rr.Verdict {
		case rules.OutcomePass:
			passed += rr.Weight
		case rules.OutcomeFail:
			failed++
			criticalFailed = criticalFailed || rr.Critical
		default:
			unsure++
		}
	}
	if total > 0 {
		res.Score = passed / total
	}
	switch {
	case failed > 0:
		res.Verdict = VerdictFail
		res.Decision = Decision(pol.Decision.OnFail)
		if criticalFailed {
			res.Decision = DecisionRollback
		}
		res.Reason = res.summarize(rules.OutcomeFail)
	case unsure > 0:
		res.Verdict = VerdictInconclusive
		res.Decision = Decision(pol.Decision.OnInconclusive)
		res.Reason = res.summarize(rules.OutcomeInconclusive, rules.OutcomeError)
	default:
		res.Verdict = VerdictPass
		res.Decision = DecisionContinue
		if len(res.Rules) == 1 {
			res.Reason = "1 rule passed"
		} else {
			res.Reason = fmt.Sprintf("all %d rules passed", len(res.Rules))
		}
	}
}

// summarize joins "rule: reason" for the rules with the given outcomes.
func (res *Result) summarize(outcomes ...rules.Outcome) string {
	var b strings.Builder
	for _, rr := range res.Rules {
		for _, o := range outcomes {
			if rr.Verdict != o {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(rr.Name)
			b.WriteString(": ")
			b.WriteString(rr.Reason)
		}
	}
	return b.String()
}

// recordNoData reports whether a record lacks a field the rule reads, or
// holds NaN there (a probe that could not read its JSON value, a NULL),
// while its target was up.
func recordNoData(qr *QueryResult, fields []string) bool {
	if qr.record == nil {
		return false
	}
	// A probe that found its target down measured that (up = 0): its
	// other fields are NaN, but the rule is judged, and fails.
	if up, ok := qr.record["up"]; ok && up == 0 {
		return false
	}
	for _, f := range fields {
		v, ok := qr.record[f]
		if !ok || math.IsNaN(v) {
			return true
		}
	}
	return false
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
