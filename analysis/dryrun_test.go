package analysis

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/aurum/canary/rules"
)

// parsePolicy loads one policy from YAML text.
func parsePolicy(t interface {
	require.TestingT
	Helper()
}, text string) *rules.Policy {
	t.Helper()
	pols, err := rules.Parse("policy.yaml", []byte(text))
	require.NoError(t, err)
	require.Len(t, pols, 1)
	return pols[0]
}

const dryPolicy = `
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: shadow}
spec:
  %s
  params: {name: {}}
  queries:
    error_rate: {prometheus: 'error_rate{app="{{ .name }}"}'}
    p99_ms: {prometheus: 'p99{app="{{ .name }}"}'}
  rules:
    - {name: error-rate, expr: error_rate <= 0.01}
    - {name: latency-on-trial, expr: p99_ms < 300, dryRun: true}
  decision:
    rules:
      - {name: strict-on-trial, expr: error_rate > 0.005, action: rollback, dryRun: true}
`

// TestDryRun: a dry-run rule, decision rule or policy is evaluated and
// shown, and changes nothing; DryRun says what it would have decided.
func TestDryRun(t *testing.T) {
	tests := []struct {
		name             string
		spec             string
		errorRate, p99   float64
		verdict          Verdict
		decision         Decision
		reason           string
		wouldVerdict     Verdict
		wouldDecision    Decision
		wouldReason      string
		changed          bool
		wouldDecisions   []string
		dryRuleVerdict   rules.Outcome
		everyRuleMarkDry bool
	}{
		{name: "a failing dry-run rule changes nothing", errorRate: 0.001, p99: 450,
			verdict: VerdictPass, decision: DecisionContinue, reason: "1 rule passed",
			wouldVerdict: VerdictFail, wouldDecision: DecisionRollback, wouldReason: "latency-on-trial: 450 >= 300", changed: true,
			dryRuleVerdict: rules.OutcomeFail},
		{name: "a dry-run decision rule that holds changes nothing", errorRate: 0.008, p99: 120,
			verdict: VerdictPass, decision: DecisionContinue, reason: "1 rule passed",
			wouldVerdict: VerdictFail, wouldDecision: DecisionRollback, changed: true, wouldDecisions: []string{"strict-on-trial"},
			wouldReason:    "decision rule strict-on-trial holds (error_rate > 0.005)",
			dryRuleVerdict: rules.OutcomePass},
		{name: "a live failure fails whatever the dry-run parts say", errorRate: 0.02, p99: 120,
			verdict: VerdictFail, decision: DecisionRollback, reason: "error-rate: 0.02 > 0.01",
			wouldVerdict: VerdictFail, wouldDecision: DecisionRollback, wouldDecisions: []string{"strict-on-trial"},
			dryRuleVerdict: rules.OutcomePass},
		{name: "all agree", errorRate: 0.001, p99: 120,
			verdict: VerdictPass, decision: DecisionContinue, reason: "1 rule passed",
			wouldVerdict: VerdictPass, wouldDecision: DecisionContinue, wouldReason: "all 2 rules passed",
			dryRuleVerdict: rules.OutcomePass},
		{name: "a dryRun policy always passes", spec: "dryRun: true", errorRate: 0.02, p99: 450,
			verdict: VerdictPass, decision: DecisionContinue,
			reason:       "dry run: would have decided rollback (fail): error-rate: 0.02 > 0.01; latency-on-trial: 450 >= 300",
			wouldVerdict: VerdictFail, wouldDecision: DecisionRollback, changed: true, wouldDecisions: []string{"strict-on-trial"},
			dryRuleVerdict: rules.OutcomeFail, everyRuleMarkDry: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := parsePolicy(t, fmt.Sprintf(dryPolicy, tt.spec))
			require.True(t, pol.HasDryRun())
			res := Decide(pol, map[string]string{"name": "lmp"}, results(t, pol, map[string]any{"error_rate": tt.errorRate, "p99_ms": tt.p99}), time.Now())
			require.Equal(t, tt.verdict, res.Verdict, res.Reason)
			require.Equal(t, tt.decision, res.Decision)
			require.Equal(t, tt.reason, res.Reason)
			require.Empty(t, res.Decisions, "a dry-run decision rule forces nothing")
			require.NotNil(t, res.DryRun)
			require.Equal(t, tt.wouldVerdict, res.DryRun.Verdict)
			require.Equal(t, tt.wouldDecision, res.DryRun.Decision)
			require.Equal(t, tt.changed, res.DryRun.Changed)
			require.Equal(t, tt.wouldDecisions, res.DryRun.Decisions)
			if tt.wouldReason != "" {
				require.Equal(t, tt.wouldReason, res.DryRun.Reason)
			}
			require.Len(t, res.Rules, 2, "dry-run rules are evaluated and shown")
			require.Equal(t, tt.dryRuleVerdict, res.Rules[1].Verdict)
			require.True(t, res.Rules[1].DryRun)
			require.Equal(t, tt.everyRuleMarkDry, res.Rules[0].DryRun)
		})
	}
	t.Run("a policy with no dry-run part shows no DryRun", func(t *testing.T) {
		pol := loadPolicy(t, "testdata/market-hours.yaml", "market-hours")
		require.False(t, pol.HasDryRun())
		res := Decide(pol, map[string]string{"name": "lmp"}, results(t, pol, map[string]any{"error_rate": 0.001}), time.Now())
		require.Nil(t, res.DryRun)
	})
}

const holdPolicy = `
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: quota}
spec:
  params: {name: {}}
  queries:
    error_rate: {prometheus: 'error_rate{app="{{ .name }}"}'}
    quota_used: {prometheus: 'quota_used{app="{{ .name }}"}'}
  rules:
    - {name: error-rate, expr: error_rate <= 0.01}
  decision:
    rules:
      - {name: quota, expr: quota_used > 0.8, action: cap, weight: 5}
      - {name: quota-high, expr: quota_used > 0.9, action: cap, weight: 2, maxHold: 10m}
      - {name: quota-warm, expr: quota_used > 0.6, action: hold, maxHold: 30m}
      - {name: quota-gone, expr: quota_used > 0.99, action: rollback}
`

// TestHoldAndCap: hold and cap rules hold the decision, never the
// verdict; the lowest cap and the shortest maxHold win; a rollback or a
// failure beats a hold.
func TestHoldAndCap(t *testing.T) {
	pol := parsePolicy(t, holdPolicy)
	cap := func(w int) *int { return &w }
	tests := []struct {
		name      string
		errorRate float64
		quota     any
		verdict   Verdict
		decision  Decision
		hold      *Hold
		reason    string
	}{
		{name: "under quota", errorRate: 0.001, quota: 0.5, verdict: VerdictPass, decision: DecisionContinue},
		{name: "a hold", errorRate: 0.001, quota: 0.7, verdict: VerdictPass, decision: DecisionHold,
			hold:   &Hold{Rules: []string{"quota-warm"}, MaxHold: Seconds(30 * time.Minute)},
			reason: "decision rule quota-warm holds (quota_used > 0.6): hold"},
		{name: "a cap and a hold", errorRate: 0.001, quota: 0.85, verdict: VerdictPass, decision: DecisionHold,
			hold:   &Hold{Rules: []string{"quota", "quota-warm"}, Cap: cap(5), MaxHold: Seconds(30 * time.Minute)},
			reason: "decision rule quota-warm holds (quota_used > 0.6): hold; decision rule quota holds (quota_used > 0.8): cap at 5%"},
		{name: "the lowest cap and the shortest maxHold", errorRate: 0.001, quota: 0.95, verdict: VerdictPass, decision: DecisionHold,
			hold: &Hold{Rules: []string{"quota", "quota-high", "quota-warm"}, Cap: cap(2), MaxHold: Seconds(10 * time.Minute)}},
		{name: "a rollback beats a hold", errorRate: 0.001, quota: 0.995, verdict: VerdictFail, decision: DecisionRollback,
			hold: &Hold{Rules: []string{"quota", "quota-high", "quota-warm"}, Cap: cap(2), MaxHold: Seconds(10 * time.Minute)}},
		{name: "a failure beats a hold", errorRate: 0.02, quota: 0.85, verdict: VerdictFail, decision: DecisionRollback,
			hold: &Hold{Rules: []string{"quota", "quota-warm"}, Cap: cap(5), MaxHold: Seconds(30 * time.Minute)}},
		{name: "without data a hold rule does not apply", errorRate: 0.001, quota: nil, verdict: VerdictPass, decision: DecisionContinue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Decide(pol, map[string]string{"name": "lmp"}, results(t, pol, map[string]any{"error_rate": tt.errorRate, "quota_used": tt.quota}), time.Now())
			require.Equal(t, tt.verdict, res.Verdict, res.Reason)
			require.Equal(t, tt.decision, res.Decision, res.Reason)
			require.Equal(t, tt.hold, res.Hold)
			if tt.reason != "" {
				require.Equal(t, tt.reason, res.Reason)
			}
		})
	}
}

// dryRunCase is a random policy and the values its queries return.
type dryRunCase struct {
	rules    []genRule
	decision []genDecision
	dryRun   bool
	scoring  bool
	values   map[string]any
}

type genRule struct {
	query, op      string
	threshold      float64
	dryRun, crit   bool
	noData, weight string
}

type genDecision struct {
	query, action string
	threshold     float64
	weight        int
	dryRun        bool
}

const genQueries = 3

func drawCase(t *rapid.T) dryRunCase {
	c := dryRunCase{
		dryRun:  rapid.Bool().Draw(t, "policyDryRun"),
		scoring: rapid.Bool().Draw(t, "scoring"),
		values:  map[string]any{},
	}
	for i := range genQueries {
		if rapid.IntRange(0, 4).Draw(t, "nodata") == 0 {
			c.values[fmt.Sprint("q", i)] = nil
		} else {
			c.values[fmt.Sprint("q", i)] = float64(rapid.IntRange(0, 10).Draw(t, "value")) / 10
		}
	}
	n := rapid.IntRange(1, 5).Draw(t, "rules")
	for i := range n {
		c.rules = append(c.rules, genRule{
			query:     fmt.Sprint("q", rapid.IntRange(0, genQueries-1).Draw(t, "query")),
			op:        rapid.SampledFrom([]string{"<=", ">", "=="}).Draw(t, "op"),
			threshold: float64(rapid.IntRange(0, 10).Draw(t, "threshold")) / 10,
			// The first rule stays live, so the policy without its
			// dry-run rules still has one.
			dryRun: i > 0 && rapid.Bool().Draw(t, "dryRun"),
			crit:   rapid.Bool().Draw(t, "critical"),
			noData: rapid.SampledFrom([]string{"pass", "fail", "inconclusive"}).Draw(t, "noData"),
			weight: rapid.SampledFrom([]string{"1", "2", "0.5"}).Draw(t, "weight"),
		})
	}
	for range rapid.IntRange(0, 4).Draw(t, "decisionRules") {
		c.decision = append(c.decision, genDecision{
			query:     fmt.Sprint("q", rapid.IntRange(0, genQueries-1).Draw(t, "query")),
			action:    rapid.SampledFrom([]string{"rollback", "pause", "hold", "cap"}).Draw(t, "action"),
			threshold: float64(rapid.IntRange(0, 10).Draw(t, "threshold")) / 10,
			weight:    rapid.IntRange(0, 100).Draw(t, "capWeight"),
			dryRun:    rapid.Bool().Draw(t, "dryRun"),
		})
	}
	return c
}

// yaml writes the policy: keepDry writes its dry-run rules and decision
// rules, marks writes the dryRun flags.
func (c dryRunCase) yaml(keepDry, marks bool) string {
	var b strings.Builder
	b.WriteString("apiVersion: canary.aurum.dev/v1\nkind: Policy\nmetadata: {name: gen}\nspec:\n")
	if c.dryRun && marks {
		b.WriteString("  dryRun: true\n")
	}
	b.WriteString("  queries:\n")
	for i := range genQueries {
		fmt.Fprintf(&b, "    q%d: {prometheus: 'q%d'}\n", i, i)
	}
	if c.scoring {
		b.WriteString("  scoring: {pass: 75, marginal: 50}\n")
	}
	b.WriteString("  rules:\n")
	for i, r := range c.rules {
		if r.dryRun && !keepDry {
			continue
		}
		fmt.Fprintf(&b, "    - {name: r%d, expr: '%s %s %g', critical: %t, noData: %s, weight: %s, dryRun: %t}\n",
			i, r.query, r.op, r.threshold, r.crit, r.noData, r.weight, r.dryRun && marks)
	}
	header := "  decision:\n    rules:\n"
	for i, d := range c.decision {
		if d.dryRun && !keepDry {
			continue
		}
		b.WriteString(header)
		header = ""
		fmt.Fprintf(&b, "      - {name: d%d, expr: '%s > %g', action: %s, dryRun: %t", i, d.query, d.threshold, d.action, d.dryRun && marks)
		if d.action == "cap" {
			fmt.Fprintf(&b, ", weight: %d", d.weight)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// judged is what an analysis concludes, for comparing two of them.
type judged struct {
	Verdict   Verdict
	Decision  Decision
	Score     float64
	Reason    string
	Decisions []string
	Hold      *Hold
}

func judgedOf(res *Result) judged {
	return judged{res.Verdict, res.Decision, res.Score, res.Reason, res.Decisions, res.Hold}
}

// TestDryRunNeverChangesAVerdictProperty: over random policies and query
// values, an analysis concludes exactly what the same policy without its
// dry-run rules and decision rules concludes (pass and continue for a
// dryRun policy), and its DryRun shows exactly what the policy with every
// dry-run mark removed concludes.
func TestDryRunNeverChangesAVerdictProperty(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	rapid.Check(t, func(rt *rapid.T) {
		c := drawCase(rt)
		pol := parsePolicy(rt, c.yaml(true, true))
		live := parsePolicy(rt, c.yaml(false, false))
		counted := parsePolicy(rt, c.yaml(true, false))
		res := Decide(pol, nil, results(rt, pol, c.values), at)
		want := Decide(live, nil, results(rt, live, c.values), at)
		wouldBe := Decide(counted, nil, results(rt, counted, c.values), at)

		if c.dryRun {
			require.Equal(rt, VerdictPass, res.Verdict)
			require.Equal(rt, DecisionContinue, res.Decision)
			require.Empty(rt, res.Decisions)
			require.Nil(rt, res.Hold)
		} else {
			require.Equal(rt, judgedOf(want), judgedOf(res), "the dry-run parts changed the analysis")
		}
		if !pol.HasDryRun() {
			require.Nil(rt, res.DryRun)
			return
		}
		require.NotNil(rt, res.DryRun)
		got := judged{res.DryRun.Verdict, res.DryRun.Decision, res.DryRun.Score, res.DryRun.Reason, res.DryRun.Decisions, res.DryRun.Hold}
		require.Equal(rt, judgedOf(wouldBe), got, "DryRun is not what the policy would have decided")
		require.Equal(rt, res.DryRun.Verdict != res.Verdict || res.DryRun.Decision != res.Decision, res.DryRun.Changed)
		for i, rr := range res.Rules {
			require.Equal(rt, wouldBe.Rules[i].Verdict, rr.Verdict, "a dry-run rule is evaluated as any other")
		}
	})
}
