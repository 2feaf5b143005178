package importer_test

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	flaggerv1 "github.com/fluxcd/flagger/pkg/apis/flagger/v1beta1"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/rules/importer"
)

// Flagger's threshold check, as its documentation (docs/gitbook/usage/
// metrics.md) and anchors.md §2.4 describe it, written here for the test:
// the Prometheus provider reads the last series of the result and finds no
// values when there is none or it is NaN; no values, like any error, fails
// the check; a value fails it when it is below thresholdRange.min or above
// max, both bounds passing; request-duration is compared in whole
// milliseconds (the value and the bounds are made time.Durations of
// milliseconds first). Flagger's own check cannot be imported: it lives in
// its controller package, whose test dependencies no longer build against
// this module's k8s.io/api.
func flaggerCheck(m flaggerv1.CanaryMetric, builtin bool, values []float64) bool {
	if len(values) == 0 || math.IsNaN(values[len(values)-1]) {
		return false
	}
	val := values[len(values)-1]
	lo, hi := math.Inf(-1), math.Inf(1)
	if tr := m.ThresholdRange; tr != nil {
		if tr.Min != nil {
			lo = *tr.Min
		}
		if tr.Max != nil {
			hi = *tr.Max
		}
	}
	if builtin && m.Name == "request-duration" {
		ms := func(f float64) time.Duration { return time.Duration(f) * time.Millisecond }
		v := time.Duration(int64(val)) * time.Millisecond
		return !(m.ThresholdRange.Min != nil && v < ms(*m.ThresholdRange.Min)) && !(m.ThresholdRange.Max != nil && v > ms(*m.ThresholdRange.Max))
	}
	return !(val < lo) && !(val > hi)
}

// TestFlaggerEquivalence draws results for every metric of every
// documented Canary and compares the imported rule's outcome with
// Flagger's check. Where the engine knowingly differs it is held to what
// the migration guide says: several series are an error (Flagger reads the
// last), and ±Inf is no data, which fails (Flagger compares it).
func TestFlaggerEquivalence(t *testing.T) {
	files, err := filepath.Glob("testdata/flagger/*.yaml")
	require.NoError(t, err)
	n := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		require.NoError(t, err)
		var objs importer.FlaggerObjects
		_, err = importer.DecodeFlagger(file, data, &objs)
		require.NoError(t, err)
		docs, _, err := importer.FromFlagger(objs, "nginx")
		require.NoError(t, err)
		for _, d := range docs {
			pol, err := d.Check()
			require.NoError(t, err)
			var canary flaggerv1.Canary
			for _, c := range objs.Canaries {
				if c.Name == d.Name {
					canary = c.Canary
				}
			}
			for i, m := range canary.Spec.Analysis.Metrics {
				rule := pol.Rules[i]
				builtin := m.TemplateRef == nil && m.Query == ""
				var consts []float64
				if tr := m.ThresholdRange; tr != nil {
					for _, b := range []*float64{tr.Min, tr.Max} {
						if b != nil {
							consts = append(consts, *b)
						}
					}
				}
				n++
				t.Run(filepath.Base(file)+"/"+m.Name, func(t *testing.T) {
					rapid.Check(t, func(t *rapid.T) {
						values := make([]float64, rapid.IntRange(0, 3).Draw(t, "series"))
						for j := range values {
							switch rapid.IntRange(0, 7).Draw(t, "kind") {
							case 0:
								values[j] = math.NaN()
							case 1:
								values[j] = math.Inf(rapid.SampledFrom([]int{1, -1}).Draw(t, "sign"))
							default:
								c := rapid.SampledFrom(consts).Draw(t, "bound")
								values[j] = c + rapid.SampledFrom([]float64{0, -0.5, 0.5, -1e-9, 1e-9, -2, 2, 0.999}).Draw(t, "delta")
							}
						}
						got := flaggerOutcome(pol, rule, values)
						want := rules.OutcomeFail
						if flaggerCheck(m, builtin, values) {
							want = rules.OutcomePass
						}
						switch {
						case len(values) > 1:
							want = rules.OutcomeError // several series: the engine says so
						case len(values) == 1 && math.IsInf(values[0], 0):
							want = rules.OutcomeFail // no data
						}
						if got != want {
							t.Fatalf("values %v: canary %s, want %s (Flagger's check passes: %v)", values, got, want, flaggerCheck(m, builtin, values))
						}
					})
				})
			}
		}
	}
	require.GreaterOrEqual(t, n, 4)
}

// flaggerOutcome is the imported rule's outcome for the values.
func flaggerOutcome(pol *rules.Policy, rule *rules.Rule, values []float64) rules.Outcome {
	qs := make(analysis.QueryResults, len(pol.Queries))
	for i, q := range pol.Queries {
		var res queries.Result
		if q == rule.Inputs[0] {
			for j, v := range values {
				res.Samples = append(res.Samples, queries.Sample{Labels: map[string]string{"i": strconv.Itoa(j)}, Value: v})
			}
		}
		qs[i] = analysis.NewQueryResult(q, "", res, nil)
	}
	res := analysis.Decide(pol, nil, qs, time.Unix(1700000000, 0))
	for _, rr := range res.Rules {
		if rr.Name == rule.Name {
			return rr.Verdict
		}
	}
	return ""
}
