package stats

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// sig6 rounds to 6 significant digits, like the fixtures' samples, so the
// benchmarks see some ties as real scrapes do.
func sig6(xs []float64) []float64 {
	for i, v := range xs {
		if v != 0 {
			p := math.Pow(10, 5-math.Floor(math.Log10(math.Abs(v))))
			xs[i] = math.Round(v*p) / p
		}
	}
	return xs
}

// BenchmarkMannWhitney10k is one canary comparison over 10,000 points a
// side: R's normal approximation, its interval and estimate found by
// root finding, each step a pass over both samples. The budget is 5 ms.
func BenchmarkMannWhitney10k(b *testing.B) {
	x := sig6(normal(11, 10000, 0.02, 1))
	y := sig6(normal(12, 10000, 0, 1))
	opts := Options{ConfidenceLevel: 0.98}
	b.ReportAllocs()
	for b.Loop() {
		_, err := MannWhitney(x, y, opts)
		require.NoError(b, err)
	}
}

// BenchmarkMannWhitneyExact49 is the largest sample R tests exactly by
// default, with the distribution of W already cached: the interval and
// estimate selected from the 2,401 differences.
func BenchmarkMannWhitneyExact49(b *testing.B) {
	x := normal(13, 49, 1.3, 1)
	y := normal(14, 49, 1, 1)
	b.ReportAllocs()
	for b.Loop() {
		res, err := MannWhitney(x, y, Options{})
		require.NoError(b, err)
		require.True(b, res.Exact)
	}
}

// BenchmarkWilcoxDist49 builds the exact distribution of W for 49 by 49,
// what the first exact test of that size pays.
func BenchmarkWilcoxDist49(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		buildWilcoxDist(49, 49)
	}
}

// BenchmarkCompare is Compare on a typical scrape: 120 points a side
// (an hour at 30 s), with outlier removal.
func BenchmarkCompare(b *testing.B) {
	x := normal(15, 120, 105, 10)
	y := normal(16, 120, 100, 10)
	c := Comparison{RemoveOutliers: true, AllowedIncrease: 1.1}
	b.ReportAllocs()
	for b.Loop() {
		Compare(x, y, c)
	}
}

// BenchmarkRanks10k is one step of the root searches over 10,000 points a
// side, at shifts that change from call to call as zeroin's do (a fixed
// shift lets the branch predictor learn the merge and flatters it).
func BenchmarkRanks10k(b *testing.B) {
	t := newTwoSample(sig6(normal(11, 10000, 0.02, 1)), sig6(normal(12, 10000, 0, 1)))
	ds := make([]float64, 64)
	for i := range ds {
		ds[i] = -0.05 + 0.1*float64(i)/63 + 1e-9*float64(i*i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		t.ranks(ds[i%len(ds)])
		i++
	}
}

func BenchmarkSortFloats10k(b *testing.B) {
	x := sig6(normal(11, 10000, 0.02, 1))
	buf := make([]float64, len(x))
	scratch := make([]uint64, 2*len(x))
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, x)
		sortFloats(buf, scratch)
	}
}
