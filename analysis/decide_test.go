package analysis

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/rules"
)

func loadPolicy(t testing.TB, file, name string) *rules.Policy {
	t.Helper()
	set, err := rules.Load(file)
	require.NoError(t, err)
	pol, err := set.Get(name)
	require.NoError(t, err)
	return pol
}

// fataler is what results needs of a test: a *testing.T or a *rapid.T.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// results builds query results the way Evaluate leaves them: a float64 is
// one sample, a []float64 several, nil no series at all, an error a failure.
func results(t fataler, pol *rules.Policy, in map[string]any) QueryResults {
	t.Helper()
	qs := make(QueryResults, len(pol.Queries))
	for i, q := range pol.Queries {
		qs[i] = QueryResult{Name: q.Name, Kind: q.Kind}
		switch v := in[q.Name].(type) {
		case float64:
			qs[i].set(q, []queries.Sample{{Value: v}})
		case []float64:
			var ss []queries.Sample
			for j, x := range v {
				ss = append(ss, queries.Sample{Labels: map[string]string{"partition": string(rune('0' + j))}, Value: x})
			}
			qs[i].set(q, ss)
		case error:
			qs[i].fail(v)
		case nil:
			qs[i].set(q, nil)
		default:
			t.Fatalf("bad input %T", v)
		}
	}
	return qs
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name     string
		policy   string
		in       map[string]any
		verdict  Verdict
		decision Decision
		score    float64
		outcomes []rules.Outcome
		reason   string
	}{
		{
			name:     "all pass",
			policy:   "checkout",
			in:       map[string]any{"error_rate": 0.002, "baseline": 0.002, "lag": []float64{1, 2}},
			verdict:  VerdictPass,
			decision: DecisionContinue,
			score:    1,
			outcomes: []rules.Outcome{rules.OutcomePass, rules.OutcomePass, rules.OutcomePass},
			reason:   "all 3 rules passed",
		},
		{
			name:     "critical failure rolls back",
			policy:   "checkout",
			in:       map[string]any{"error_rate": 0.034, "baseline": 0.03, "lag": []float64{1}},
			verdict:  VerdictFail,
			decision: DecisionRollback,
			score:    0.5,
			outcomes: []rules.Outcome{rules.OutcomeFail, rules.OutcomePass, rules.OutcomePass},
			reason:   "error-rate: 0.034 > 0.01",
		},
		{
			name:     "comparison with an expression on the right",
			policy:   "checkout",
			in:       map[string]any{"error_rate": 0.009, "baseline": 0.001, "lag": []float64{1}},
			verdict:  VerdictFail,
			decision: DecisionRollback,
			score:    0.75,
			outcomes: []rules.Outcome{rules.OutcomePass, rules.OutcomeFail, rules.OutcomePass},
			reason:   "vs-baseline: 0.009 > 0.002",
		},
		{
			name:     "no data takes the rule's outcome",
			policy:   "checkout",
			in:       map[string]any{"error_rate": 0.001, "baseline": 0.001, "lag": nil},
			verdict:  VerdictFail,
			decision: DecisionRollback,
			score:    0.75,
			outcomes: []rules.Outcome{rules.OutcomePass, rules.OutcomePass, rules.OutcomeFail},
			reason:   "lag: no data for lag (noData: fail)",
		},
		{
			name:     "NaN is no data, default inconclusive",
			policy:   "checkout",
			in:       map[string]any{"error_rate": math.NaN(), "baseline": 0.001, "lag": []float64{1}},
			verdict:  VerdictInconclusive,
			decision: DecisionPause,
			score:    0.25,
			outcomes: []rules.Outcome{rules.OutcomeInconclusive, rules.OutcomeInconclusive, rules.OutcomePass},
			reason:   "error-rate: no data for error_rate (noData: inconclusive); vs-baseline: no data for error_rate (noData: inconclusive)",
		},
		{
			name:     "Inf is no data",
			policy:   "checkout",
			in:       map[string]any{"error_rate": 0.001, "baseline": math.Inf(1), "lag": []float64{1}},
			verdict:  VerdictInconclusive,
			decision: DecisionPause,
			score:    0.75,
			outcomes: []rules.Outcome{rules.OutcomePass, rules.OutcomeInconclusive, rules.OutcomePass},
		},
		{
			name:     "failed query is an error, never a pass",
			policy:   "checkout",
			in:       map[string]any{"error_rate": errors.New("prometheus down"), "baseline": 0.001, "lag": []float64{1}},
			verdict:  VerdictInconclusive,
			decision: DecisionPause,
			score:    0.25,
			outcomes: []rules.Outcome{rules.OutcomeError, rules.OutcomeError, rules.OutcomePass},
			reason:   "error-rate: query error_rate failed: prometheus down; vs-baseline: query error_rate failed: prometheus down",
		},
		{
			name:     "list rule fails on one sample",
			policy:   "checkout",
			in:       map[string]any{"error_rate": 0.001, "baseline": 0.001, "lag": []float64{5, 500}},
			verdict:  VerdictFail,
			decision: DecisionRollback,
			score:    0.75,
			outcomes: []rules.Outcome{rules.OutcomePass, rules.OutcomePass, rules.OutcomeFail},
			reason:   "lag: lag=2 series (does not hold)",
		},
		{
			name:     "too many series is an error",
			policy:   "checkout",
			in:       map[string]any{"error_rate": 0.001, "baseline": 0.001, "lag": []float64{1, 2, 3, 4, 5}},
			verdict:  VerdictInconclusive,
			decision: DecisionPause,
			score:    0.75,
			outcomes: []rules.Outcome{rules.OutcomePass, rules.OutcomePass, rules.OutcomeError},
			reason:   "lag: query lag failed: too many series: query returned 5 series, the policy declares at most 4 (set maxSeries or aggregate)",
		},
		{
			name:     "policy decision: pause on non-critical failure",
			policy:   "lenient",
			in:       map[string]any{"error_rate": 0.02},
			verdict:  VerdictFail,
			decision: DecisionPause,
			score:    0.5,
			outcomes: []rules.Outcome{rules.OutcomeFail, rules.OutcomePass},
		},
		{
			name:     "policy decision: continue when inconclusive; noData pass",
			policy:   "lenient",
			in:       map[string]any{"error_rate": nil},
			verdict:  VerdictInconclusive,
			decision: DecisionContinue,
			score:    0.5,
			outcomes: []rules.Outcome{rules.OutcomeInconclusive, rules.OutcomePass},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := loadPolicy(t, "testdata/checkout.yaml", tt.policy)
			params := map[string]string{"name": "checkout"}
			res := Decide(pol, params, results(t, pol, tt.in), time.Unix(0, 0))
			require.Equal(t, tt.verdict, res.Verdict, res.Reason)
			require.Equal(t, tt.decision, res.Decision)
			require.InDelta(t, tt.score, res.Score, 1e-9)
			var got []rules.Outcome
			for _, r := range res.Rules {
				got = append(got, r.Verdict)
			}
			require.Equal(t, tt.outcomes, got)
			if tt.reason != "" {
				require.Equal(t, tt.reason, res.Reason)
			}
		})
	}
}

func TestDecideRuleValues(t *testing.T) {
	pol := loadPolicy(t, "testdata/checkout.yaml", "checkout")
	res := Decide(pol, map[string]string{"name": "x"},
		results(t, pol, map[string]any{"error_rate": 0.034, "baseline": 0.03, "lag": []float64{1}}), time.Unix(0, 0))
	r := res.Rules[1]
	require.Equal(t, "vs-baseline", r.Name)
	require.Equal(t, []string{"error_rate", "baseline"}, r.Inputs)
	require.InDelta(t, 0.034, float64(*r.Value), 1e-12)
	require.InDelta(t, 0.06, float64(*r.Threshold), 1e-12)
	require.Equal(t, "0.034 <= 0.06", r.Reason)
}

func TestFormatValue(t *testing.T) {
	tests := []struct {
		name string
		in   float64
		want string
	}{
		{name: "integer", in: 600, want: "600"},
		{name: "small", in: 0.0333333333, want: "0.03333"},
		{name: "large", in: 12345.678, want: "12345.7"},
		{name: "tiny", in: 0.000012345, want: "1.234e-05"},
		{name: "NaN", in: math.NaN(), want: "NaN"},
		{name: "inf", in: math.Inf(-1), want: "-Inf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, FormatValue(tt.in))
		})
	}
}

// TestDecideReasonsReadAsAPersonReads pins the numbers of comparison
// reasons: rounded to what a person reads, float noise beside a threshold
// as 0, and never rounded so that a comparison reads false; the rule's
// value keeps full precision.
func TestDecideReasonsReadAsAPersonReads(t *testing.T) {
	pol := loadPolicy(t, "testdata/checkout.yaml", "checkout")
	tests := []struct {
		name       string
		errorRate  float64
		baseline   float64
		rule       int
		wantReason string
	}{
		{name: "rounded", errorRate: 0.0033333333, baseline: 0.03, rule: 0, wantReason: "0.003333 <= 0.01"},
		{name: "noise beside a threshold reads 0", errorRate: -1.501e-13, baseline: 0.03, rule: 0, wantReason: "0 <= 0.01"},
		{name: "a failing comparison is not rounded to equal sides", errorRate: 0.0100001, baseline: 0.03, rule: 0, wantReason: "0.0100001 > 0.01"},
		{name: "an expression side gets the digits too", errorRate: 0.0600001, baseline: 0.03, rule: 1, wantReason: "0.0600001 > 0.06"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Decide(pol, map[string]string{"name": "x"},
				results(t, pol, map[string]any{"error_rate": tt.errorRate, "baseline": tt.baseline, "lag": []float64{1}}), time.Unix(0, 0))
			r := res.Rules[tt.rule]
			require.Equal(t, tt.wantReason, r.Reason)
			require.Equal(t, tt.errorRate, float64(*r.Value), "the value keeps full precision")
		})
	}
}
