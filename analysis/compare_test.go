package analysis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/queries/embedded"
	"github.com/aurum/canary/rules"
)

// noisy writes n samples around mean in promtool's notation.
func noisy(rng *rand.Rand, mean, spread float64, n int) string {
	vals := make([]string, n)
	for i := range vals {
		vals[i] = fmt.Sprintf("%.2f", mean+spread*(rng.Float64()-0.5))
	}
	return strings.Join(vals, " ")
}

// evalCompare loads series for three apps into the embedded engine and
// evaluates a policy of testdata/compare.yaml for app at minute 30.
func evalCompare(t *testing.T, policy, app string, series map[string]string) *Result {
	t.Helper()
	engine, err := embedded.New(embedded.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { engine.Close() })
	var in []embedded.InputSeries
	for s, v := range series {
		in = append(in, embedded.InputSeries{Series: s, Values: v})
	}
	start := time.Unix(0, 0)
	require.NoError(t, engine.Load(start, time.Minute, in))
	pol := loadPolicy(t, "testdata/compare.yaml", policy)
	e := NewEvaluator(Options{Sources: queries.Registry{{Kind: "prometheus"}: engine}})
	res, err := e.Evaluate(context.Background(), pol, map[string]string{"app": app}, start.Add(30*time.Minute))
	require.NoError(t, err)
	return res
}

func ruleByName(t *testing.T, res *Result, name string) RuleResult {
	t.Helper()
	for _, r := range res.Rules {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no rule %s in %+v", name, res.Rules)
	return RuleResult{}
}

func TestComparisons(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	base := noisy(rng, 100, 20, 31)
	same := noisy(rng, 100, 20, 31)
	slow := noisy(rng, 140, 20, 31)
	verySlow := noisy(rng, 190, 20, 31)
	rps := noisy(rng, 50, 4, 31)
	lowRPS := noisy(rng, 30, 4, 31)
	tests := []struct {
		name     string
		series   map[string]string
		verdict  Verdict
		decision Decision
		classes  map[string]string
		critical bool
	}{
		{name: "canary like its baseline", verdict: VerdictPass, decision: DecisionContinue,
			series:  map[string]string{`lat_ms{app="a",track="canary"}`: same, `lat_ms{app="a",track="primary"}`: base, `rps{app="a",track="canary"}`: rps, `rps{app="a",track="primary"}`: rps},
			classes: map[string]string{"p99-latency": "pass", "throughput": "pass"}},
		{name: "canary 40% slower", verdict: VerdictFail, decision: DecisionRollback,
			series:  map[string]string{`lat_ms{app="a",track="canary"}`: slow, `lat_ms{app="a",track="primary"}`: base, `rps{app="a",track="canary"}`: rps, `rps{app="a",track="primary"}`: rps},
			classes: map[string]string{"p99-latency": "high", "throughput": "pass"}},
		{name: "canary 90% slower is critical", verdict: VerdictFail, decision: DecisionRollback, critical: true,
			series:  map[string]string{`lat_ms{app="a",track="canary"}`: verySlow, `lat_ms{app="a",track="primary"}`: base, `rps{app="a",track="canary"}`: rps, `rps{app="a",track="primary"}`: rps},
			classes: map[string]string{"p99-latency": "high"}},
		{name: "throughput drop, direction decrease", verdict: VerdictFail, decision: DecisionRollback,
			series:  map[string]string{`lat_ms{app="a",track="canary"}`: same, `lat_ms{app="a",track="primary"}`: base, `rps{app="a",track="canary"}`: lowRPS, `rps{app="a",track="primary"}`: rps},
			classes: map[string]string{"p99-latency": "pass", "throughput": "low"}},
		{name: "no throughput data must fail", verdict: VerdictFail, decision: DecisionRollback,
			series:  map[string]string{`lat_ms{app="a",track="canary"}`: same, `lat_ms{app="a",track="primary"}`: base},
			classes: map[string]string{"throughput": "nodatafail"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := evalCompare(t, "compare", "a", tt.series)
			require.Equal(t, tt.verdict, res.Verdict, res.Reason)
			require.Equal(t, tt.decision, res.Decision)
			for name, class := range tt.classes {
				r := ruleByName(t, res, name)
				require.NotNil(t, r.Comparison)
				require.Equal(t, class, r.Comparison.Class, r.Reason)
				if class == "high" {
					require.Greater(t, float64(r.Comparison.Ratio), 1.1)
					require.Less(t, float64(r.Comparison.PValue), 0.02)
					require.Greater(t, float64(r.Comparison.CILow), 0.0)
					require.Equal(t, tt.critical, r.Critical)
				}
			}
			// The comparison's queries are in the result like any other.
			require.NotNil(t, res.Queries.Get("p99-latency:canary"))
			require.Contains(t, res.Queries.Get("p99-latency:baseline").Query, `track="primary"`)
		})
	}

	t.Run("mannwhitney in an expression", func(t *testing.T) {
		res := evalCompare(t, "compare", "a", map[string]string{`lat_ms{app="a",track="canary"}`: slow, `lat_ms{app="a",track="primary"}`: base,
			`rps{app="a",track="canary"}`: rps, `rps{app="a",track="primary"}`: rps})
		require.Equal(t, rules.OutcomeFail, ruleByName(t, res, "latency-test").Verdict)
		res = evalCompare(t, "compare", "a", map[string]string{`lat_ms{app="a",track="canary"}`: same, `lat_ms{app="a",track="primary"}`: base,
			`rps{app="a",track="canary"}`: rps, `rps{app="a",track="primary"}`: rps})
		require.Equal(t, rules.OutcomePass, ruleByName(t, res, "latency-test").Verdict)
	})
}

func TestKayentaScoring(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	base, same, slow := noisy(rng, 100, 20, 31), noisy(rng, 100, 20, 31), noisy(rng, 140, 20, 31)
	tests := []struct {
		name    string
		series  map[string]string
		verdict Verdict
		score   float64
		reason  string
	}{
		{name: "all pass", verdict: VerdictPass, score: 1, series: map[string]string{
			`errors{app="a",track="canary"}`: "0x30", `lat_ms{app="a",track="canary"}`: same, `lat_ms{app="a",track="primary"}`: base,
			`cpu{app="a",track="canary"}`: same, `cpu{app="a",track="primary"}`: base}},
		{name: "one of two in a group fails: marginal", verdict: VerdictInconclusive, score: 0.75, reason: "score 75.0 < 95 is marginal", series: map[string]string{
			`errors{app="a",track="canary"}`: "0x30", `lat_ms{app="a",track="canary"}`: slow, `lat_ms{app="a",track="primary"}`: base,
			`cpu{app="a",track="canary"}`: same, `cpu{app="a",track="primary"}`: base}},
		{name: "too much no data fails", verdict: VerdictFail, reason: "no data for 2 of 4", series: map[string]string{
			`errors{app="a",track="canary"}`: "0x30"}},
		{name: "a rule grouped with another halves the error group", verdict: VerdictFail, score: 0.5, reason: "score 50.0 < 60", series: map[string]string{
			`errors{app="a",track="canary"}`: "0.5x30", `lat_ms{app="a",track="canary"}`: slow, `lat_ms{app="a",track="primary"}`: base,
			`cpu{app="a",track="canary"}`: same, `cpu{app="a",track="primary"}`: base}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := evalCompare(t, "scored", "a", tt.series)
			require.Equal(t, tt.verdict, res.Verdict, res.Reason)
			if tt.score > 0 {
				require.InDelta(t, tt.score, res.Score, 1e-9)
			}
			require.Contains(t, res.Reason, tt.reason)
		})
	}
}
