package analysis

import (
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/aurum/canary/rules"
)

// decider is the working memory of one Decide call. It is pooled because
// Decide runs for every analysis, backtest step and policy test case: the
// VM, the env map and the reasons' buffer then keep their storage from one
// call to the next instead of growing it again each time.
type decider struct {
	// vm keeps its stack between runs. Programs are shared between
	// goroutines; VMs are not.
	vm vm.VM
	// env is what programs read: the queries' values and the params.
	// The map's storage is kept between calls; its entries are not. It
	// is filled on the first program a call runs (see run): rules
	// compiled to Go read qs and params instead, and a call that runs
	// no program then spends nothing on boxing values into it.
	env    map[string]any
	filled bool
	// qs and params are the call's, for the rules compiled to Go
	// (rules.Values).
	qs     QueryResults
	params map[string]string
	// buf holds the rules' reasons back to back and ends where each one
	// ends, so that a call converts them to a string once rather than
	// once per rule.
	buf  []byte
	ends []int
	// written are the first numbers that are not whole in this call's
	// reasons, and where in buf each is (see appendValue).
	written  [8]writtenValue
	nwritten int
}

// writtenValue is a number at buf[start:end].
type writtenValue struct {
	bits       uint64
	start, end int
}

var deciders = sync.Pool{New: func() any { return &decider{env: map[string]any{}} }}

// release returns d to the pool with its env cleared, so that the pooled
// map does not keep the call's query results and params alive.
func (d *decider) release() {
	clear(d.env)
	d.filled, d.qs, d.params = false, nil, nil
	d.buf, d.ends = d.buf[:0], d.ends[:0]
	d.nwritten = 0
	deciders.Put(d)
}

// floatSlab hands out the rules' Value and Threshold pointers from one
// backing array per Result, instead of one allocation each. Past its
// capacity append moves on to a new array; pointers already handed out
// still point to their values in the old one.
type floatSlab []Float

func (s *floatSlab) ptr(v float64) *Float {
	*s = append(*s, Float(v))
	return &(*s)[len(*s)-1]
}

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
	d := deciders.Get().(*decider)
	defer d.release()
	d.qs, d.params = qs, params

	// A rule has at most a value and a threshold.
	floats := make(floatSlab, 0, 2*len(pol.Rules))
	// The reasons are written through local slices, not d's fields: while
	// the GC marks, every store of a slice into the heap takes a write
	// barrier, and appends are many.
	buf, ends := d.buf, d.ends
	for i, r := range pol.Rules {
		buf = d.evalRule(buf, r, qs, &res.Rules[i], &floats)
		ends = append(ends, len(buf))
	}
	d.buf, d.ends = buf, ends
	// Each rule's reason is a slice of one string holding them all.
	reasons, start := string(buf), 0
	for i, end := range ends {
		res.Rules[i].Reason = reasons[start:end]
		start = end
	}
	for _, c := range pol.Comparisons {
		res.Rules = append(res.Rules, compare(c, qs))
	}
	if !pol.HasDryRun() {
		res.judge(d, pol, qs, at)
		return res
	}
	// What the analysis would have concluded counting its dry-run parts
	// is judged first, then what it concludes without them: the two
	// judge the same rule outcomes, so a dry-run part changes nothing
	// but what DryRun shows.
	if pol.DryRun {
		for i := range res.Rules {
			res.Rules[i].DryRun = true
		}
	}
	res.dry = true
	res.judge(d, pol, qs, at)
	would := &DryRun{Verdict: res.Verdict, Decision: res.Decision, Score: res.Score, Reason: res.Reason,
		Decisions: res.Decisions, Hold: res.Hold}
	res.dry, res.Decisions, res.Hold = false, nil, nil
	if pol.DryRun {
		res.Verdict, res.Decision, res.Score = VerdictPass, DecisionContinue, 1
		res.Reason = "dry run: would have decided " + string(would.Decision) + " (" + string(would.Verdict) + "): " + would.Reason
	} else {
		res.judge(d, pol, qs, at)
	}
	would.Changed = would.Verdict != res.Verdict || would.Decision != res.Decision
	res.DryRun = would
	return res
}

// judge derives the verdict, score, decision and reason from the rules'
// outcomes, then applies the decision rules.
func (res *Result) judge(d *decider, pol *rules.Policy, qs QueryResults, at time.Time) {
	if pol.Scoring != nil {
		res.scoreKayenta(pol)
	} else {
		res.aggregate(pol)
	}
	if len(pol.Decision.Rules) > 0 {
		res.applyDecisionRules(d, pol, qs, at)
	}
}

// applyDecisionRules runs the policy's own decision rules. One that holds
// forces its action, and the verdict that goes with it, so that an Argo
// Rollouts condition on the verdict acts on it too: a rollback fails the
// analysis, a pause makes it inconclusive. A rule that lacks data for one
// of its queries does not apply.
func (res *Result) applyDecisionRules(d *decider, pol *rules.Policy, qs QueryResults, at time.Time) {
	local := at.In(pol.Decision.Location)
	d.fill()
	d.env[rules.HourVar], d.env[rules.MinuteVar], d.env[rules.WeekdayVar] = local.Hour(), local.Minute(), int(local.Weekday())
	for _, dr := range pol.Decision.Rules {
		if dr.DryRun && !res.dry {
			continue
		}
		usable := true
		for _, q := range dr.Inputs {
			qr := &qs[q.Index]
			usable = usable && qr.err == nil && !qr.NoData
		}
		if !usable {
			continue
		}
		out, err := d.run(dr.Program)
		if held, _ := out.(bool); err != nil || !held {
			continue
		}
		res.Decisions = append(res.Decisions, dr.Name)
		why := "decision rule " + dr.Name + " holds (" + dr.Expr + ")"
		switch {
		case dr.Action == rules.ActionRollback && res.Decision != DecisionRollback:
			res.Decision, res.Verdict = DecisionRollback, VerdictFail
			res.Reason = joinReason(why, res.Reason)
		case dr.Action == rules.ActionPause && (res.Decision == DecisionContinue || res.Decision == DecisionHold):
			res.Decision, res.Verdict = DecisionPause, VerdictInconclusive
			res.Reason = joinReason(why, res.Reason)
		case dr.Action == rules.ActionHold || dr.Action == rules.ActionCap:
			res.hold(dr, why)
		}
	}
}

// hold adds a hold or cap rule that holds to the analysis's hold: the
// lowest cap and the shortest maxHold win. It holds a decision that would
// go on; it changes neither the verdict nor a rollback or a pause.
func (res *Result) hold(dr *rules.DecisionRule, why string) {
	h := res.Hold
	if h == nil {
		h = &Hold{MaxHold: Seconds(dr.MaxHold)}
		res.Hold = h
	}
	h.Rules = append(h.Rules, dr.Name)
	h.MaxHold = min(h.MaxHold, Seconds(dr.MaxHold))
	if dr.Action == rules.ActionCap {
		why += ": cap at " + strconv.Itoa(dr.Weight) + "%"
		if h.Cap == nil || dr.Weight < *h.Cap {
			w := dr.Weight
			h.Cap = &w
		}
	} else {
		why += ": hold"
	}
	if res.Decision == DecisionContinue || res.Decision == DecisionHold {
		res.Decision = DecisionHold
		res.Reason = joinReason(why, res.Reason)
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

// fill puts the call's query values and params into the env, once.
func (d *decider) fill() {
	if d.filled {
		return
	}
	d.filled = true
	for i := range d.qs {
		if v, ok := d.qs[i].envValue(); ok {
			d.env[d.qs[i].Name] = v
		}
	}
	d.env[rules.ParamsVar] = d.params
}

// run runs one of the policy's programs over the call's env.
func (d *decider) run(p *vm.Program) (any, error) {
	d.fill()
	return d.vm.Run(p, d.env)
}

// Scalar is rules.Values' view of query i: the float64 its program would
// see, as in envValue.
func (d *decider) Scalar(i int) (float64, bool) { return d.qs[i].scalar() }

// Param is rules.Values' view of a param: what params.name reads.
func (d *decider) Param(name string) (string, bool) {
	v, ok := d.params[name]
	return v, ok
}

// scalar is what rule expressions see for this query when that is a
// number.
func (qr *QueryResult) scalar() (float64, bool) {
	if qr.err != nil || qr.NoData || qr.Value == nil {
		return 0, false
	}
	return float64(*qr.Value), true
}

// envValue is what rule expressions see for this query.
func (qr *QueryResult) envValue() (any, bool) {
	if v, ok := qr.scalar(); ok {
		return v, true
	}
	switch {
	case qr.err != nil || qr.NoData:
		return nil, false
	case qr.Points != nil:
		return qr.Points, true
	case qr.Samples != nil:
		return qr.Samples, true
	case qr.record != nil:
		return rules.NewRecord(qr.Kind, qr.record), true
	}
	return nil, false
}

// evalRule judges r into rr, which is zero, and appends its reason to
// buf. The fields are set one by one rather than by assigning a
// RuleResult literal: that built the struct and then copied it into the
// heap, write barriers and all, and was a sixth of Decide's time.
func (d *decider) evalRule(buf []byte, r *rules.Rule, qs QueryResults, rr *RuleResult, floats *floatSlab) []byte {
	rr.Name, rr.Expr, rr.Critical, rr.Weight, rr.Group, rr.DryRun = r.Name, r.Expr, r.Critical, r.Weight, r.Group, r.DryRun
	rr.Inputs = r.InputNames

	// A failed query makes the rule an error and missing data takes the
	// rule's noData outcome; neither is evaluated, so an expression never
	// sees a NaN or an absent value and quietly passes.
	var noData string
	for _, q := range r.Inputs {
		qr := &qs[q.Index]
		if qr.err != nil {
			rr.Verdict = rules.OutcomeError
			buf = append(buf, "query "...)
			buf = append(buf, q.Name...)
			buf = append(buf, " failed: "...)
			return append(buf, qr.Error...)
		}
		if noData == "" && (qr.NoData || recordNoData(qr, r.RecordFields[q.Name])) {
			noData = q.Name
		}
	}
	if noData != "" {
		rr.Verdict, rr.NoData = r.NoData, true
		buf = append(buf, "no data for "...)
		buf = append(buf, noData...)
		buf = append(buf, " (noData: "...)
		buf = append(buf, r.NoData...)
		return append(buf, ')')
	}

	// Most rules compare two numbers, and their reason shows both sides.
	// Such a rule is judged from its sides rather than by running its
	// program and then each side again for the reason, which computed
	// every side twice (TestDecideSidesAgreeWithProgram holds the two
	// ways to the same verdicts). Any other rule compiled to Go is judged
	// by its Condition, which holds when the program does; what that
	// cannot tell is left to the program
	// (TestDecideGoCompiledAgreesWithPrograms).
	left, right, sided := d.sides(r, qs)
	var ok, known bool
	switch {
	case sided:
		ok, known = rules.Holds(r.Explain.Op, left, right), true
	case r.Condition != nil:
		ok, known = r.Condition(d)
	}
	if !known {
		out, err := d.run(r.Program)
		if err != nil {
			rr.Verdict = rules.OutcomeError
			buf = append(buf, "expression error: "...)
			return append(buf, firstLine(err.Error())...)
		}
		ok, _ = out.(bool)
	}
	rr.Verdict = rules.OutcomeFail
	if ok {
		rr.Verdict = rules.OutcomePass
	}
	if sided {
		return d.explainSides(buf, r.Explain, ok, left, right, rr, floats)
	}
	return d.explainRule(buf, r, ok, qs, rr, floats)
}

// sides evaluates both sides of a rule that compares two numbers, when
// each can be judged on its own (see standalone): expr then compares them
// as Go compares two float64s, which holds does. Any other rule is left to
// its program, and so is one with a side that fails: the program's own
// error is the reason.
func (d *decider) sides(r *rules.Rule, qs QueryResults) (left, right float64, ok bool) {
	c := r.Explain
	if c == nil || !alone(&c.Left) || !alone(&c.Right) {
		return 0, 0, false
	}
	switch c.Op {
	case "<", "<=", ">", ">=", "==", "!=":
	default:
		return 0, 0, false
	}
	left, ok = d.operandValue(&c.Left, r, qs)
	if !ok {
		return 0, 0, false
	}
	right, ok = d.operandValue(&c.Right, r, qs)
	return left, right, ok
}

// standalone reports whether an operand evaluated on its own gives what
// the rule's program sees. It must be a float64 before any conversion: a
// scalar query, a constant (which expr compares with a float64 as a
// float64, whatever its literal) or a float64 expression; an int side
// (len(x)) is compared as an int by the program. And an expression must
// spend none of expr's memory budget, which the whole program shares: two
// sides each within it could exceed it together.
func standalone(o rules.Operand) bool {
	// A side compiled to Go is a float64 expression that spends no
	// budget.
	if o.Program == nil || o.Number != nil {
		return true
	}
	if t := o.Program.Node().Type(); t == nil || t.Kind() != reflect.Float64 {
		return false
	}
	return !slices.ContainsFunc(o.Program.Bytecode, spendsBudget)
}

// alone is standalone, with its first answer inlined: most sides are a
// query, a constant or compiled to Go, and those need neither a copy of
// the operand nor a look at a program.
func alone(o *rules.Operand) bool {
	return o.Program == nil || o.Number != nil || standalone(*o)
}

// spendsBudget reports whether an instruction counts against expr's
// memory budget (the ones that call VM.memGrow in expr v1.17).
func spendsBudget(op vm.Opcode) bool {
	switch op {
	case vm.OpRange, vm.OpArray, vm.OpMap, vm.OpSort, vm.OpCallSafe:
		return true
	}
	return false
}

// explainRule sets the rule's value and writes its reason: for a comparison
// both sides, with the operator that held ("0.034 > 0.01" when the rule
// said `error_rate <= 0.01`); otherwise the inputs' values.
func (d *decider) explainRule(buf []byte, r *rules.Rule, ok bool, qs QueryResults, rr *RuleResult, floats *floatSlab) []byte {
	if c := r.Explain; c != nil {
		left, lok := d.operandValue(&c.Left, r, qs)
		right, rok := d.operandValue(&c.Right, r, qs)
		if lok && rok {
			return d.explainSides(buf, c, ok, left, right, rr, floats)
		}
	}
	for i, q := range r.Inputs {
		if i > 0 {
			buf = append(buf, ", "...)
		}
		buf = append(buf, q.Name...)
		buf = append(buf, '=')
		// What the program sees for the query (envValue; it neither
		// failed nor lacks data here), read from its result: the env
		// may not be filled.
		switch qr := &qs[q.Index]; {
		case qr.Value != nil:
			v := float64(*qr.Value)
			if rr.Value == nil {
				rr.Value = floats.ptr(v)
			}
			buf = d.appendValue(buf, v)
		case qr.Points != nil:
			buf = strconv.AppendInt(buf, int64(len(qr.Points)), 10)
			buf = append(buf, " points"...)
		case qr.Samples != nil:
			buf = strconv.AppendInt(buf, int64(len(qr.Samples)), 10)
			buf = append(buf, " series"...)
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
				buf = d.appendValue(buf, qs[q.Index].record[f])
			}
		}
	}
	if ok {
		return append(buf, " (holds)"...)
	}
	return append(buf, " (does not hold)"...)
}

// explainSides sets a comparison's value and threshold and writes its
// reason. The values keep full precision; the reason shows what a person
// reads (rules.AppendSides): a measured side that is a negligible share of
// the other reads 0, and where four digits would make the comparison read
// false ("25 > 25") both sides get more.
func (d *decider) explainSides(buf []byte, c *rules.Sides, ok bool, left, right float64, rr *RuleResult, floats *floatSlab) []byte {
	rr.Value, rr.Threshold = floats.ptr(left), floats.ptr(right)
	op := c.Op
	if !ok {
		op = rules.Negate(op)
	}
	measured := left
	if !c.Left.IsConst {
		left = rules.Readable(left, right)
	}
	if !c.Right.IsConst {
		right = rules.Readable(right, measured)
	}
	start := len(buf)
	buf = d.appendSide(buf, &c.Left, left)
	mid := len(buf)
	buf = append(buf, ' ')
	buf = append(buf, op...)
	buf = append(buf, ' ')
	rs := len(buf)
	buf = d.appendSide(buf, &c.Right, right)
	if whole(left) && whole(right) || !rules.Misleads(buf[start:mid], op, buf[rs:]) {
		return buf
	}
	return rules.AppendSides(buf[:start], left, op, right)
}

// appendSide writes a side's value v. A constant's value is its Const,
// which the policy wrote when it loaded.
func (d *decider) appendSide(buf []byte, o *rules.Operand, v float64) []byte {
	if o.IsConst {
		start := len(buf)
		buf = append(buf, o.Written...)
		d.remember(v, start, len(buf))
		return buf
	}
	return d.appendValue(buf, v)
}

// appendValue is rules.AppendValue for this call's reasons. The same
// number recurs in them: a query's value in each rule that reads it, a
// threshold in several rules. A whole number is quick to write; any other
// takes strconv's float formatting, the slowest step of writing a reason,
// so those are remembered and copied from where the call first wrote
// them. The same bits give the same text, so the copy is what AppendValue
// would write.
func (d *decider) appendValue(buf []byte, v float64) []byte {
	if whole(v) {
		return rules.AppendValue(buf, v)
	}
	bits := math.Float64bits(v)
	for _, w := range d.written[:d.nwritten] {
		if w.bits == bits {
			return append(buf, buf[w.start:w.end]...)
		}
	}
	start := len(buf)
	buf = rules.AppendValue(buf, v)
	d.remember(v, start, len(buf))
	return buf
}

// remember notes that buf[start:end] holds v, unless v is whole.
func (d *decider) remember(v float64, start, end int) {
	if !whole(v) && d.nwritten < len(d.written) {
		d.written[d.nwritten] = writtenValue{bits: math.Float64bits(v), start: start, end: end}
		d.nwritten++
	}
}

// whole reports whether AppendValue writes v as an integer, quickly.
func whole(v float64) bool { return v == math.Trunc(v) && math.Abs(v) < 1e15 }

func (d *decider) operandValue(o *rules.Operand, r *rules.Rule, qs QueryResults) (float64, bool) {
	switch {
	case o.IsConst:
		return o.Const, true
	case o.Number != nil:
		return o.Number(d)
	case o.Ident != "":
		// The query is one of the rule's inputs: reading its result
		// is quicker than hashing its name into the env, and gives
		// the number the env holds.
		for _, q := range r.Inputs {
			if q.Name == o.Ident {
				return qs[q.Index].scalar()
			}
		}
		return 0, false
	case o.Program != nil:
		out, err := d.run(o.Program)
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
	counted := 0
	for i := range res.Rules {
		rr := &res.Rules[i]
		if !res.counts(rr) {
			continue
		}
		counted++
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
		res.Reason = allPassed(counted)
	}
}

// allPassedReasons are allPassed's answers for policies of up to 64
// rules, made once: most analyses pass, and each one built its reason.
var allPassedReasons = func() (r [65]string) {
	for n := range r {
		r[n] = "all " + strconv.Itoa(n) + " rules passed"
	}
	r[1] = "1 rule passed"
	return r
}()

// allPassed is the reason of an analysis whose n rules all passed.
func allPassed(n int) string {
	if n < len(allPassedReasons) {
		return allPassedReasons[n]
	}
	return "all " + strconv.Itoa(n) + " rules passed"
}

// summarize joins "rule: reason" for the rules with the given outcomes.
func (res *Result) summarize(outcomes ...rules.Outcome) string {
	// Sized first: a builder that grows copies the reasons as many times.
	n := 0
	for i := range res.Rules {
		if rr := &res.Rules[i]; res.counts(rr) && slices.Contains(outcomes, rr.Verdict) {
			n += len(rr.Name) + len(": ") + len(rr.Reason) + len("; ")
		}
	}
	var b strings.Builder
	b.Grow(n)
	for i := range res.Rules {
		rr := &res.Rules[i]
		if !res.counts(rr) {
			continue
		}
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
