package stats

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestKthDiffMatchesSortedDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name  string
		n, m  int
		value func() float64
	}{
		{name: "continuous", n: 37, m: 23, value: rng.NormFloat64},
		{name: "heavy ties", n: 40, m: 31, value: func() float64 { return float64(rng.IntN(5)) }},
		{name: "one by one", n: 1, m: 1, value: rng.Float64},
		{name: "one by many", n: 1, m: 50, value: rng.ExpFloat64},
		{name: "many by one", n: 60, m: 1, value: rng.ExpFloat64},
		{name: "constant", n: 9, m: 7, value: func() float64 { return 2.5 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, y := make([]float64, tc.n), make([]float64, tc.m)
			for i := range x {
				x[i] = tc.value()
			}
			for j := range y {
				y[j] = tc.value()
			}
			slices.Sort(x)
			slices.Sort(y)
			diffs := make([]float64, 0, tc.n*tc.m)
			for _, a := range x {
				for _, b := range y {
					diffs = append(diffs, a-b)
				}
			}
			slices.Sort(diffs)
			for k := 1; k <= len(diffs); k++ {
				require.Equal(t, diffs[k-1], kthDiff(x, y, k), fmt.Sprintf("k=%d", k))
			}
		})
	}
}
