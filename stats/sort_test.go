package stats

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSortFloats(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name  string
		n     int
		value func() float64
	}{
		{name: "short", n: 100, value: rng.NormFloat64},
		{name: "normal", n: 5000, value: rng.NormFloat64},
		{name: "latencies with ties", n: 3000, value: func() float64 { return float64(rng.IntN(200)) / 8 }},
		{name: "signs and zeros", n: 2000, value: func() float64 {
			return []float64{0, math.Copysign(0, -1), -1e-300, 1e-300, -3, 3, math.MaxFloat64, -math.MaxFloat64}[rng.IntN(8)]
		}},
		{name: "wide range", n: 4000, value: func() float64 { return math.Ldexp(rng.Float64()-0.5, rng.IntN(2000)-1000) }},
		{name: "constant", n: 1000, value: func() float64 { return 42 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			xs := make([]float64, tc.n)
			for i := range xs {
				xs[i] = tc.value()
			}
			want := slices.Clone(xs)
			slices.Sort(want)
			sortFloats(xs, nil)
			// -0 and 0 compare equal; compare as numbers.
			for i := range xs {
				require.True(t, xs[i] == want[i], "index %d: %v != %v", i, xs[i], want[i])
			}
		})
	}
}
