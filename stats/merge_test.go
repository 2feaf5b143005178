package stats

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// newTwoSample prepares x and y as MannWhitney does.
func newTwoSample(x, y []float64) *twoSample {
	xs := slices.Clone(x)
	ySent := append(slices.Clone(y), math.Inf(1))
	ys := ySent[:len(y)]
	slices.Sort(xs)
	slices.Sort(ys)
	t := &twoSample{x: xs, y: ys, ySent: ySent, nx: float64(len(x)), ny: float64(len(y)), alt: TwoSided}
	t.xTies, t.yTies = tiesOf(xs), tiesOf(ys)
	t.maxShift = max(math.Abs(xs[0]-ys[len(ys)-1]), math.Abs(xs[len(xs)-1]-ys[0]))
	t.shiftSafe = shiftSafe(xs, t.maxShift)
	return t
}

// naiveRanks is R's rank() on c(x - d, y) by sorting, the definition the
// merges must reproduce.
func naiveRanks(x, y []float64, d float64) (u, ties float64) {
	type obs struct {
		v   float64
		isX bool
	}
	all := make([]obs, 0, len(x)+len(y))
	for _, v := range x {
		all = append(all, obs{v - d, true})
	}
	for _, v := range y {
		all = append(all, obs{v, false})
	}
	slices.SortFunc(all, func(a, b obs) int {
		switch {
		case a.v < b.v:
			return -1
		case a.v > b.v:
			return 1
		}
		return 0
	})
	sum := 0.0
	for i := 0; i < len(all); {
		k := i
		for k < len(all) && all[k].v == all[i].v {
			k++
		}
		g := float64(k - i)
		avg := float64(i) + (g+1)/2
		for _, o := range all[i:k] {
			if o.isX {
				sum += avg
			}
		}
		ties += g*g*g - g
		i = k
	}
	nx := float64(len(x))
	return sum - nx*(nx+1)/2, ties
}

func TestRanksMatchNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	draw := func(n int, f func() float64) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = f()
		}
		return out
	}
	for _, tc := range []struct {
		name string
		x, y []float64
	}{
		{name: "continuous", x: draw(700, rng.NormFloat64), y: draw(650, rng.NormFloat64)},
		{name: "small", x: draw(9, rng.NormFloat64), y: draw(13, rng.NormFloat64)},
		{name: "integers with ties", x: draw(500, func() float64 { return float64(rng.IntN(20)) }), y: draw(400, func() float64 { return float64(rng.IntN(25)) })},
		{name: "decimals", x: draw(800, func() float64 { return float64(rng.IntN(5000)) / 100 }), y: draw(900, func() float64 { return float64(rng.IntN(5000)) / 100 })},
		{name: "separated", x: draw(300, func() float64 { return 100 + rng.Float64() }), y: draw(300, rng.Float64)},
		{name: "one x", x: []float64{0.5}, y: draw(200, rng.Float64)},
		{name: "one y", x: draw(200, rng.Float64), y: []float64{0.5}},
		{
			// x's a few ulps apart around 1e16: shifts make them collide.
			name: "collisions after the shift",
			x:    []float64{1e16, 1e16 + 2, 1e16 + 4, 1e16 + 6, 1e16 + 8, 3, 7},
			y:    []float64{1, 2, 5, 1e16 + 3, 9e15},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTwoSample(tc.x, tc.y)
			ds := []float64{0, ts.x[0] - ts.y[len(ts.y)-1], ts.x[len(ts.x)-1] - ts.y[0], 0.3, -0.7, 1e-9, 1.5, 3}
			// Shifts that are pairwise differences put x - d on a y.
			for range 20 {
				ds = append(ds, tc.x[rng.IntN(len(tc.x))]-tc.y[rng.IntN(len(tc.y))])
			}
			for range 20 {
				ds = append(ds, ts.x[0]-ts.y[len(ts.y)-1]+rng.Float64()*(ts.x[len(ts.x)-1]-ts.y[0]-ts.x[0]+ts.y[len(ts.y)-1]))
			}
			for _, d := range ds {
				wantU, wantTies := naiveRanks(tc.x, tc.y, d)
				u, ties := ts.ranks(d)
				require.Equal(t, wantU, u, fmt.Sprintf("U at d=%v", d))
				require.Equal(t, wantTies, ties, fmt.Sprintf("ties at d=%v", d))
				u, ties = ts.ranksTied(d)
				require.Equal(t, wantU, u, fmt.Sprintf("ranksTied U at d=%v", d))
				require.Equal(t, wantTies, ties, fmt.Sprintf("ranksTied ties at d=%v", d))
			}
		})
	}
}

func TestShiftSafe(t *testing.T) {
	require.True(t, shiftSafe([]float64{1, 2, 3}, 100))
	require.True(t, shiftSafe([]float64{1, 1, 1}, 100), "equal x's are tied anyway")
	require.False(t, shiftSafe([]float64{1e16, 1e16 + 2}, 1))
	require.False(t, shiftSafe([]float64{1, math.Nextafter(1, 2)}, 0))
}
