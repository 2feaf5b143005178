package analysis

import (
	"fmt"
	"math"
	"strconv"

	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/stats"
)

// compare runs one of the policy's statistical comparisons on the points
// its two range queries returned, and renders it as a rule's result so
// that it is scored, reported and read like any rule.
func compare(c *rules.Comparison, qs QueryResults) RuleResult {
	rr := RuleResult{
		Name: c.Name, Critical: c.Critical, Weight: c.Weight, Group: c.Group,
		Inputs: []string{c.Canary.Name, c.Baseline.Name},
		Expr:   fmt.Sprintf("mann-whitney(%s vs %s), direction %s", c.Canary.Name, c.Baseline.Name, direction(c)),
	}
	get := func(q *rules.Query) *QueryResult {
		if q.Index < len(qs) {
			return &qs[q.Index]
		}
		return nil
	}
	canary, baseline := get(c.Canary), get(c.Baseline)
	for _, qr := range []*QueryResult{canary, baseline} {
		if qr != nil && qr.err != nil {
			rr.Verdict = rules.OutcomeError
			rr.Reason = "query " + qr.Name + " failed: " + qr.Error
			rr.Comparison = &ComparisonResult{Class: string(stats.ClassError), Direction: direction(c)}
			return rr
		}
	}
	points := func(qr *QueryResult) []float64 {
		if qr == nil {
			return nil
		}
		return qr.Points
	}
	out := stats.Compare(points(canary), points(baseline), c.Config)
	t := out.Result
	rr.Comparison = &ComparisonResult{
		Class: string(out.Class), Direction: direction(c),
		PValue: Float(t.PValue), Estimate: Float(t.Estimate),
		CILow: Float(t.CILow), CIHigh: Float(t.CIHigh), Confidence: Float(t.ConfidenceLevel),
		CanaryMean: Float(t.MeanX), BaselineMean: Float(t.MeanY), Ratio: Float(out.Ratio),
		CanarySamples: t.NX, BaselineSamples: t.NY,
	}
	if !math.IsNaN(out.Ratio) {
		rr.Value = floatPtr(out.Ratio)
	}
	rr.Reason = out.Reason
	switch out.Class {
	case stats.ClassPass:
		rr.Verdict = rules.OutcomePass
	case stats.ClassHigh, stats.ClassLow:
		rr.Verdict = rules.OutcomeFail
		rr.Critical = c.Critical || out.Critical
	case stats.ClassNoDataFail:
		rr.Verdict = rules.OutcomeFail
		rr.NoData = true
	case stats.ClassNoData:
		rr.Verdict, rr.NoData = rules.OutcomeInconclusive, true
	default:
		rr.Verdict = rules.OutcomeError
	}
	return rr
}

func direction(c *rules.Comparison) string {
	if c.Config.Direction == "" {
		return string(stats.Either)
	}
	return string(c.Config.Direction)
}

// scoreKayenta scores the rules and comparisons as Kayenta's judge does:
// each group scores the share of its results that passed (results without
// data left out), groups are weighed, and the score out of 100 is held
// against the policy's pass and marginal thresholds. A critical failure
// fails the analysis whatever the score, and so does having no data for
// half of the results or more.
func (res *Result) scoreKayenta(pol *rules.Policy) {
	type tally struct{ passed, counted float64 }
	groups := map[string]*tally{}
	var noData, total int
	criticalFailed := false
	for i := range res.Rules {
		rr := &res.Rules[i]
		if !res.counts(rr) {
			continue
		}
		total++
		g := rr.Group
		if g == "" {
			g = rr.Name
		}
		if groups[g] == nil {
			groups[g] = &tally{}
		}
		switch {
		case rr.NoData && rr.Verdict != rules.OutcomeFail:
			noData++
			continue
		case rr.Verdict == rules.OutcomeError:
			continue
		case rr.Verdict == rules.OutcomePass:
			groups[g].passed++
		case rr.Verdict == rules.OutcomeFail:
			criticalFailed = criticalFailed || rr.Critical
		}
		groups[g].counted++
	}
	var sum, weights float64
	for name, t := range groups {
		if t.counted == 0 {
			continue
		}
		w, ok := pol.Scoring.Groups[name]
		if !ok {
			w = 1
		}
		sum += w * t.passed / t.counted
		weights += w
	}
	score := 0.0
	if weights > 0 {
		score = 100 * sum / weights
	}
	res.Score = score / 100
	verdict := func(v Verdict, d Decision, reason string) {
		res.Verdict, res.Decision, res.Reason = v, d, reason
	}
	switch {
	case criticalFailed:
		verdict(VerdictFail, DecisionRollback, "critical: "+res.summarize(rules.OutcomeFail))
	case total > 0 && 2*noData >= total:
		verdict(VerdictFail, Decision(pol.Decision.OnFail),
			fmt.Sprintf("no data for %d of %d rules and comparisons: too little to judge", noData, total))
	case score >= pol.Scoring.Pass:
		verdict(VerdictPass, DecisionContinue, "score "+scoreSides(score, ">=", pol.Scoring.Pass))
	case score >= pol.Scoring.Marginal:
		verdict(VerdictInconclusive, Decision(pol.Decision.OnInconclusive),
			"score "+scoreSides(score, "<", pol.Scoring.Pass)+" is marginal: "+res.summarize(rules.OutcomeFail))
	default:
		verdict(VerdictFail, Decision(pol.Decision.OnFail),
			"score "+scoreSides(score, "<", pol.Scoring.Marginal)+": "+res.summarize(rules.OutcomeFail))
	}
}

// scoreSides writes "score op limit" for a reason: the score with one
// decimal, as a person reads a percentage, unless that would read false
// (94.96 written "95.0 < 95"); then both with the digits it takes
// (rules.AppendSides).
func scoreSides(score float64, op string, limit float64) string {
	b := strconv.AppendFloat(nil, score, 'f', 1, 64)
	mid := len(b)
	b = append(b, ' ')
	b = append(b, op...)
	b = append(b, ' ')
	rs := len(b)
	b = rules.AppendValue(b, limit)
	if rules.Misleads(b[:mid], op, b[rs:]) {
		return string(rules.AppendSides(nil, score, op, limit))
	}
	return string(b)
}
