package stats

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPrepare(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name     string
		in       []float64
		strategy NaNStrategy
		outliers bool
		want     []float64
	}{
		{name: "remove NaNs", in: []float64{1, nan, 2, nan}, strategy: NaNRemove, want: []float64{1, 2}},
		{name: "replace NaNs with 0", in: []float64{1, nan, 2, nan}, strategy: NaNReplace, want: []float64{1, 0, 2, 0}},
		{name: "empty strategy removes", in: []float64{nan, 3}, strategy: "", want: []float64{3}},
		{name: "unknown strategy removes, as Kayenta", in: []float64{nan, 3}, strategy: "zero", want: []float64{3}},
		{name: "all NaN removed", in: []float64{nan, nan}, strategy: NaNRemove, want: []float64{}},
		{name: "nil in", in: nil, strategy: NaNRemove, outliers: true, want: []float64{}},
		{
			// R: quantile(c(1:9, 100), c(.25, .75)) is 3.25 and 7.75;
			// IQR 4.5, fences -3.5 and 14.5.
			name: "outlier above the upper fence", in: []float64{100, 1, 2, 3, 4, 5, 6, 7, 8, 9},
			strategy: NaNRemove, outliers: true, want: []float64{1, 2, 3, 4, 5, 6, 7, 8, 9},
		},
		{
			name: "outliers on both sides, order kept", in: []float64{10, 11, -50, 12, 13, 14, 80, 12},
			strategy: NaNRemove, outliers: true, want: []float64{10, 11, 12, 13, 14, 12},
		},
		{
			// Quartiles 2 and 6, IQR 4, upper fence 12: on the fence is in.
			name: "value on the fence kept", in: []float64{12, 0, 2, 4, 6},
			strategy: NaNRemove, outliers: true, want: []float64{12, 0, 2, 4, 6},
		},
		{
			name: "value past the fence dropped", in: []float64{12.5, 0, 2, 4, 6},
			strategy: NaNRemove, outliers: true, want: []float64{0, 2, 4, 6},
		},
		{
			name: "replaced zeros can be outliers", in: []float64{nan, 100, 101, 102, 103, 101, 102},
			strategy: NaNReplace, outliers: true, want: []float64{100, 101, 102, 103, 101, 102},
		},
		{name: "outliers off keeps everything", in: []float64{1, 2, 1000}, strategy: NaNRemove, want: []float64{1, 2, 1000}},
		{name: "constant sample keeps everything", in: []float64{4, 4, 4}, strategy: NaNRemove, outliers: true, want: []float64{4, 4, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]float64(nil), tc.in...)
			got := Prepare(tc.in, tc.strategy, tc.outliers)
			require.Equal(t, tc.want, got)
			require.Equal(t, len(in), len(tc.in))
			for i := range in {
				if !math.IsNaN(in[i]) {
					require.Equal(t, in[i], tc.in[i], "input modified")
				}
			}
		})
	}
}

func TestQuantile7(t *testing.T) {
	// R: quantile(c(1, 2, 4, 8, 16), c(0, .1, .25, .5, .9, 1)).
	xs := []float64{1, 2, 4, 8, 16}
	for _, tc := range []struct{ p, want float64 }{
		{0, 1}, {0.1, 1.4}, {0.25, 2}, {0.5, 4}, {0.9, 12.8}, {1, 16},
	} {
		require.InDelta(t, tc.want, quantile7(xs, tc.p), 1e-12, "p=%v", tc.p)
	}
}
