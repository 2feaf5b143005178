package stats

import (
	"math"
	"slices"
	"sync"
)

// maxExactPairs bounds n·m for the exact distribution of W. Building it
// costs about (n·m)²/4 additions and min(n,m)·n·m/2 doubles; at 10,000 pairs
// (100 points a side) that is 25 million additions and 4 MB. R would go
// further and allocate far more; past this bound we refuse instead.
const maxExactPairs = 10000

// wilcoxDist is the null distribution of the Mann-Whitney statistic W for
// samples of m and n points without ties: the count of orderings for each
// value of W. It plays the part of R's cwilcox/pwilcox/qwilcox
// (src/nmath/wilcox.c).
type wilcoxDist struct {
	mn     int       // m·n, the largest value W takes
	counts []float64 // counts[k] for k = 0..mn/2; the rest by symmetry
	total  float64   // choose(m+n, n), the number of orderings
}

// newWilcoxDist returns the distribution of W for samples of m and n
// points, from the cache when both are under 50.
func newWilcoxDist(m, n int) *wilcoxDist {
	s, t := min(m, n), max(m, n)
	if t >= 50 {
		return buildWilcoxDist(s, t)
	}
	key := [2]int{s, t}
	if d, ok := distCache.Load(key); ok {
		return d.(*wilcoxDist)
	}
	d := buildWilcoxDist(s, t)
	// Keep only the last row, not the table it was built in.
	d.counts = slices.Clone(d.counts)
	distCache.Store(key, d)
	return d
}

// buildWilcoxDist counts, by dynamic programming, the orderings of s x's
// and t y's (s <= t) with W = k. With c(i, j, k) the count for i x's and j
// y's,
//
//	c(i, j, k) = c(i, j-1, k) + c(i-1, j, k-j)
//
// (the largest of the i+j points is either a y, adding nothing to W, or an
// x, beating all j y's): R's cwilcox recursion, run bottom-up over j
// with one row per i instead of memoised for every (i, j), and only up to
// the median, the rest following by symmetry. Counts are exact integers
// below 2^53; past that they carry the same relative rounding as R's.
func buildWilcoxDist(s, t int) *wilcoxDist {
	mn := s * t
	half := mn / 2
	w := half + 1
	// rows[i*w+k] = c(i, j, k) for the current j.
	rows := make([]float64, (s+1)*w)
	for i := 0; i <= s; i++ {
		rows[i*w] = 1 // with no y's, W is 0 whatever i is
	}
	for j := 1; j <= t; j++ {
		for i := 1; i <= s; i++ {
			top := min(half, i*j)
			if top < j {
				continue
			}
			cur := rows[i*w+j : i*w+top+1]
			prev := rows[(i-1)*w : (i-1)*w+len(cur)] // already c(i-1, j, ·)
			for k := range cur {
				cur[k] += prev[k]
			}
		}
	}
	return &wilcoxDist{mn: mn, counts: rows[s*w:], total: choose(s+t, s)}
}

// distCache holds the distributions for the sample sizes R tests exactly
// by default (both under 50): a canary compared every minute over the
// same window asks for the same one every time. At most 1,225 of them,
// each under 10 kB. Entries are never modified once stored.
var distCache sync.Map

// count is the number of orderings with W = k.
func (d *wilcoxDist) count(k int) float64 {
	if k < 0 || k > d.mn {
		return 0
	}
	if k > d.mn/2 {
		k = d.mn - k
	}
	return d.counts[k]
}

// p is R's pwilcox(q, m, n, lower.tail = lower): P[W <= q], or P[W > q].
// It sums over the shorter tail and divides each count by the total
// before adding, as R does, so tail probabilities keep their digits.
func (d *wilcoxDist) p(q float64, lower bool) float64 {
	q = math.Floor(q + 1e-7)
	mn := float64(d.mn)
	if q < 0 {
		return dtVal(0, lower)
	}
	if q >= mn {
		return dtVal(1, lower)
	}
	p := 0.0
	if q <= mn/2 {
		for i := 0; i <= int(q); i++ {
			p += d.count(i) / d.total
		}
	} else {
		q = mn - q
		for i := 0; i < int(q); i++ {
			p += d.count(i) / d.total
		}
		lower = !lower
	}
	return dtVal(p, lower)
}

// dtVal is R's R_DT_val: p as a lower-tail probability, or its complement.
func dtVal(p float64, lower bool) float64 {
	if lower {
		return p
	}
	return 0.5 - p + 0.5
}

// q is R's qwilcox(x, m, n): the smallest w with P[W <= w] >= x, found by
// walking the distribution from the nearer end. The 10·ε slack is R's; it
// keeps a cumulative sum that lands a rounding error short of x from
// moving the quantile by one.
func (d *wilcoxDist) q(x float64) int {
	if x <= 0 {
		return 0
	}
	if x >= 1 {
		return d.mn
	}
	p := 0.0
	q := 0
	if x <= 0.5 {
		x -= 10 * epsilon
		for {
			p += d.count(q) / d.total
			if p >= x {
				return q
			}
			q++
		}
	}
	x = 1 - x + 10*epsilon
	for {
		p += d.count(q) / d.total
		if p > x {
			return d.mn - q
		}
		q++
	}
}

// epsilon is C's DBL_EPSILON, 2^-52.
const epsilon = 0x1p-52

// choose is the binomial coefficient n over k as a double, built as a
// product of exact integer ratios so it is exact below 2^53 and correctly
// rounded to within a few ulps above. (R switches to exp(lchoose) from
// k = 30, good to about 1e-13; the p-values agree far inside the 1e-9 the
// fixtures check.)
func choose(n, k int) float64 {
	k = min(k, n-k)
	r := 1.0
	for j := 1; j <= k; j++ {
		// r·(n-k+j)/j is an integer at every step; dividing last keeps
		// it exact while it fits in 53 bits.
		r = r * float64(n-k+j) / float64(j)
	}
	return math.Round(r)
}
