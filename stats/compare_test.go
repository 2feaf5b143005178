package stats

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// normal draws n points from N(mu, sd) with a fixed seed.
func normal(seed uint64, n int, mu, sd float64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 0))
	out := make([]float64, n)
	for i := range out {
		out[i] = mu + sd*rng.NormFloat64()
	}
	return out
}

func repeat(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestCompare(t *testing.T) {
	nan := math.NaN()
	base := normal(1, 120, 100, 10)
	for _, tc := range []struct {
		name           string
		canary         []float64
		baseline       []float64
		cmp            Comparison
		class          Class
		critical       bool
		reason         string // a prefix of Outcome.Reason
		ratioAround    float64
		ratioNaN, test bool // test: a Mann-Whitney test ran
	}{
		{
			name: "same distribution passes", canary: normal(2, 120, 100, 10), baseline: base,
			class: ClassPass, reason: "no significant difference from baseline: ratio 1.0", ratioAround: 1, test: true,
		},
		{
			name: "higher canary is high", canary: normal(3, 120, 150, 10), baseline: base,
			class: ClassHigh, reason: "canary higher than baseline: ratio 1.49, p=7.3e-41", ratioAround: 1.5, test: true,
		},
		{
			name: "lower canary is low", canary: normal(4, 120, 50, 10), baseline: base,
			class: ClassLow, reason: "canary lower than baseline: ratio 0.48, p=7.1e-41", ratioAround: 0.5, test: true,
		},
		{
			name: "higher canary passes when only a decrease fails", canary: normal(3, 120, 150, 10), baseline: base,
			cmp:   Comparison{Direction: Decrease},
			class: ClassPass, reason: "canary higher than baseline, but only a decrease fails", ratioAround: 1.5, test: true,
		},
		{
			name: "lower canary passes when only an increase fails", canary: normal(4, 120, 50, 10), baseline: base,
			cmp:   Comparison{Direction: Increase},
			class: ClassPass, reason: "canary lower than baseline, but only an increase fails", ratioAround: 0.5, test: true,
		},
		{
			name: "significant but within the allowed increase", canary: normal(5, 120, 105, 1), baseline: normal(6, 120, 100, 1),
			cmp:   Comparison{AllowedIncrease: 1.1},
			class: ClassPass, reason: "canary higher than baseline, within the allowed ratio 1.10: ratio 1.05", ratioAround: 1.05, test: true,
		},
		{
			name: "significant but within the allowed decrease", canary: normal(5, 120, 95, 1), baseline: normal(6, 120, 100, 1),
			cmp:   Comparison{AllowedDecrease: 0.9},
			class: ClassPass, reason: "canary lower than baseline, within the allowed ratio 0.90: ratio 0.95", ratioAround: 0.95, test: true,
		},
		{
			name: "beyond the allowed increase", canary: normal(5, 120, 115, 1), baseline: normal(6, 120, 100, 1),
			cmp:   Comparison{AllowedIncrease: 1.1, Direction: Increase},
			class: ClassHigh, reason: "canary higher than baseline: ratio 1.15", ratioAround: 1.15, test: true,
		},
		{
			name: "critical increase", canary: normal(7, 120, 300, 10), baseline: base,
			cmp:   Comparison{AllowedIncrease: 1.1, CriticalIncrease: 2},
			class: ClassHigh, critical: true, reason: "canary higher than baseline: ratio 3.0", ratioAround: 3, test: true,
		},
		{
			name: "high but below the critical increase", canary: normal(3, 120, 150, 10), baseline: base,
			cmp:   Comparison{CriticalIncrease: 2},
			class: ClassHigh, reason: "canary higher than baseline: ratio 1.49, p=7.3e-41", ratioAround: 1.5, test: true,
		},
		{
			name: "critical decrease", canary: normal(4, 120, 50, 10), baseline: base,
			cmp:   Comparison{AllowedDecrease: 0.9, CriticalDecrease: 0.6},
			class: ClassLow, critical: true, reason: "canary lower than baseline: ratio 0.48, p=7.1e-41", ratioAround: 0.5, test: true,
		},
		{
			name: "no canary data", canary: []float64{nan, nan}, baseline: base,
			class: ClassNoData, reason: "canary data all NaN", ratioNaN: true,
		},
		{
			name: "no baseline data", canary: base, baseline: nil,
			class: ClassNoData, reason: "no baseline data", ratioNaN: true,
		},
		{
			name: "no data on a metric that must have it", canary: nil, baseline: nil,
			cmp:   Comparison{MustHaveData: true},
			class: ClassNoDataFail, reason: "no canary data, no baseline data", ratioNaN: true,
		},
		{
			name: "replaced NaNs are data", canary: []float64{nan, nan, nan, 0}, baseline: []float64{0, 0, 0, 0},
			cmp:   Comparison{NaN: NaNReplace, MustHaveData: true},
			class: ClassPass, reason: "canary and baseline data are identical", ratioAround: 1,
		},
		{
			name: "identical series pass", canary: []float64{3, 1, 2}, baseline: []float64{1, 2, 3},
			class: ClassPass, reason: "canary and baseline data are identical", ratioAround: 1,
		},
		{
			name: "both constant get noise and are compared", canary: repeat(2, 30), baseline: repeat(1, 30),
			class: ClassHigh, reason: "canary higher than baseline: ratio 2.00", ratioAround: 2, test: true,
		},
		{
			name: "errors from zero: the ratio is skipped", canary: []float64{0, 3, 5, 4, 6, 2, 7, 5, 4, 6, 3, 5}, baseline: repeat(0, 12),
			cmp:   Comparison{AllowedIncrease: 1.5, CriticalIncrease: 3},
			class: ClassHigh, critical: true, reason: "canary higher than baseline: ratio n/a", ratioNaN: true, test: true,
		},
		{
			name: "outliers removed before the test", canary: append(normal(2, 120, 100, 10), 1e6, 2e6, 3e6), baseline: base,
			cmp:   Comparison{RemoveOutliers: true},
			class: ClassPass, reason: "no significant difference from baseline", ratioAround: 1, test: true,
		},
		{
			name: "infinite sample", canary: []float64{1, math.Inf(1)}, baseline: []float64{1, 2},
			class: ClassError, reason: "comparison failed: a sample is infinite", ratioNaN: true,
		},
		{
			name: "unknown direction", canary: base, baseline: base, cmp: Comparison{Direction: "up"},
			class: ClassError, reason: `invalid comparison: direction "up": want "increase", "decrease" or "either"`, ratioNaN: true,
		},
		{
			name: "allowed decrease written as an increase", canary: base, baseline: base, cmp: Comparison{AllowedDecrease: 1.1},
			class: ClassError, reason: "invalid comparison: allowed decrease 1.1: want a ratio in (0, 1]", ratioNaN: true,
		},
		{
			name: "critical increase below the allowed one", canary: base, baseline: base,
			cmp:   Comparison{AllowedIncrease: 1.5, CriticalIncrease: 1.2},
			class: ClassError, reason: "invalid comparison: critical increase 1.2", ratioNaN: true,
		},
		{
			name: "confidence level out of range", canary: base, baseline: base, cmp: Comparison{ConfidenceLevel: 98},
			class: ClassError, reason: "invalid comparison: confidence level 98 is not between 0 and 1", ratioNaN: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := Compare(tc.canary, tc.baseline, tc.cmp)
			require.Equal(t, tc.class, out.Class, out.Reason)
			require.Equal(t, tc.critical, out.Critical, out.Reason)
			require.Truef(t, len(out.Reason) >= len(tc.reason) && out.Reason[:len(tc.reason)] == tc.reason,
				"reason %q does not start with %q", out.Reason, tc.reason)
			if tc.ratioNaN {
				require.True(t, math.IsNaN(out.Ratio), "ratio %v", out.Ratio)
			} else {
				require.InDelta(t, tc.ratioAround, out.Ratio, 0.05)
			}
			if tc.test {
				require.NotZero(t, out.Result.NX)
				require.False(t, math.IsNaN(out.Result.PValue))
				require.Equal(t, 0.98, out.Result.ConfidenceLevel, "Kayenta's default level")
			}
		})
	}
}

func TestCompareReasonQuotesP(t *testing.T) {
	out := Compare(normal(3, 120, 150, 10), normal(1, 120, 100, 10), Comparison{})
	require.Equal(t, ClassHigh, out.Class)
	require.Regexp(t, `^canary higher than baseline: ratio 1\.\d\d, p=\d\.\de-\d+$`, out.Reason)

	out = Compare(normal(2, 40, 100, 10), normal(1, 40, 100, 10), Comparison{})
	require.Equal(t, ClassPass, out.Class)
	require.Regexp(t, `^no significant difference from baseline: ratio \d\.\d\d, p=0\.\d+$`, out.Reason)
	require.True(t, out.Result.Exact, "both under 50 points: R's exact test")
}

func TestCompareIsRepeatable(t *testing.T) {
	// Constant series get noise; the same input must give the same
	// verdict and numbers every time.
	a := Compare(repeat(5, 10), repeat(4, 12), Comparison{})
	b := Compare(repeat(5, 10), repeat(4, 12), Comparison{})
	require.Equal(t, a, b)
}
