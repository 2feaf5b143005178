package stats

// kthDiff returns the k-th smallest (1-based) of the n·m differences
// x[i] - y[j], with x and y sorted ascending, without forming them. R's
// exact branch sorts outer(x, y, "-") and indexes it; this selects the same
// doubles in O((n+m)·log(n·m)) expected time.
//
// It is Monahan's randomised selection for the Hodges-Lehmann estimator
// (ACM TOMS algorithm 616), here on two samples. Read as a matrix with
// rows x[i] and columns y in descending order, the differences ascend along
// every row and every column. Each row keeps a window [lo, hi) of columns
// that may still hold the answer. A pivot is drawn from the windows; one
// two-pointer pass counts the differences below it and at most it, and the
// windows shrink to the side that holds rank k. Floating-point subtraction
// is monotone, so x[i]-y[j] computed here orders exactly as R's outer()
// values do, ties included.
func kthDiff(x, y []float64, k int) float64 {
	n, m := len(x), len(y)
	// col(i, c) is the difference in row i, column c (columns ascend).
	col := func(i, c int) float64 { return x[i] - y[m-1-c] }

	lo := make([]int, n)
	hi := make([]int, n)
	lt := make([]int, n) // per row: columns with a difference < pivot
	le := make([]int, n) // per row: columns with a difference <= pivot
	for i := range hi {
		hi[i] = m
	}
	rng := splitmix(uint64(n)<<32 ^ uint64(m) ^ uint64(k))
	for {
		active := 0
		for i := range n {
			active += hi[i] - lo[i]
		}
		// Draw the pivot uniformly among the remaining candidates.
		r := int(rng.next() % uint64(active))
		var pivot float64
		for i := range n {
			w := hi[i] - lo[i]
			if r < w {
				pivot = col(i, lo[i]+r)
				break
			}
			r -= w
		}

		// Count over the whole matrix. Moving down a row raises every
		// difference, so the boundary columns only move left.
		below, atMost := 0, 0
		cl, ce := m, m
		for i := range n {
			for cl > 0 && col(i, cl-1) >= pivot {
				cl--
			}
			for ce > 0 && col(i, ce-1) > pivot {
				ce--
			}
			lt[i], le[i] = cl, ce
			below += cl
			atMost += ce
		}

		switch {
		case k <= below:
			for i := range n {
				hi[i] = min(hi[i], lt[i])
			}
		case k <= atMost:
			return pivot
		default:
			for i := range n {
				lo[i] = max(lo[i], le[i])
			}
		}
	}
}

// splitmix is a tiny deterministic generator (SplitMix64) for pivots: the
// selection's result never depends on it, only its running time, and a
// fixed seed keeps benchmarks repeatable without shared state.
type splitmix uint64

func (s *splitmix) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
