package stats

// countBelow returns the sum over x of the number of y below x[i] - d, and
// whether some x[i] - d equals a y. x is sorted; y is sorted and ends in a
// +Inf sentinel that is not counted.
//
// It is the inner loop of the approximate branch, run a few dozen times
// per test on the whole sample, so it is written for the machine. A plain
// merge branches on every step on which sample comes next, a coin flip
// for overlapping samples that the CPU mispredicts half the time. Here
// each step computes that choice as a 0 or 1 and adds it, without a
// branch; to keep the CPU busy while each step waits for the previous
// one's loads, the merge is cut into four independent runs that advance
// in lockstep. Each run starts at a point of the merged order found by
// bisection (the "merge path"), so the four take about as many steps each.
func countBelow(x, y []float64, d float64) (sum int, tied bool) {
	n, m := len(x), len(y)-1
	if n < 64 {
		s, _, eq := mergeRun(x, y, d, 0, n, lowerBound(y[:m], x[0]-d))
		return s, eq
	}

	// Cut points: s[k] is the first x at or past position k(n+m)/4 of the
	// merged order, j[k] the number of y below it.
	var s [5]int
	var j [5]int
	for k := 1; k < 4; k++ {
		target := k * (n + m) / 4
		lo, hi := 0, n
		for lo < hi {
			h := int(uint(lo+hi) >> 1)
			if h+lowerBound(y[:m], x[h]-d) >= target {
				hi = h
			} else {
				lo = h + 1
			}
		}
		s[k] = lo
		if lo < n {
			j[k] = lowerBound(y[:m], x[lo]-d)
		}
	}
	s[4] = n
	j[0] = lowerBound(y[:m], x[0]-d)

	i0, i1, i2, i3 := s[0], s[1], s[2], s[3]
	e0, e1, e2, e3 := s[1], s[2], s[3], s[4]
	j0, j1, j2, j3 := j[0], j[1], j[2], j[3]
	var s0, s1, s2, s3, q int
	for i0 < e0 && i1 < e1 && i2 < e2 && i3 < e3 {
		v0, v1, v2, v3 := x[i0]-d, x[i1]-d, x[i2]-d, x[i3]-d
		w0, w1, w2, w3 := y[j0], y[j1], y[j2], y[j3]
		// c is 1 when the next element of the run is a y (below x-d),
		// 0 when it is the x, which then counts the y's passed so far.
		c0, c1, c2, c3 := b2i(w0 < v0), b2i(w1 < v1), b2i(w2 < v2), b2i(w3 < v3)
		// A y equal to x-d can only be met on the step that emits x.
		q |= b2i(w0 == v0) | b2i(w1 == v1) | b2i(w2 == v2) | b2i(w3 == v3)
		j0 += c0
		j1 += c1
		j2 += c2
		j3 += c3
		s0 += (c0 - 1) & j0
		s1 += (c1 - 1) & j1
		s2 += (c2 - 1) & j2
		s3 += (c3 - 1) & j3
		i0 += 1 - c0
		i1 += 1 - c1
		i2 += 1 - c2
		i3 += 1 - c3
	}
	// Whatever the runs have left, one at a time.
	sum = s0 + s1 + s2 + s3
	for _, r := range [4][3]int{{i0, e0, j0}, {i1, e1, j1}, {i2, e2, j2}, {i3, e3, j3}} {
		rs, _, eq := mergeRun(x, y, d, r[0], r[1], r[2])
		sum += rs
		tied = tied || eq
	}
	return sum, tied || q != 0
}

// mergeRun is one run of countBelow over x[i:e], starting with j y's below
// x[i] - d. It returns the count, the final j and whether it met a tie.
func mergeRun(x, y []float64, d float64, i, e, j int) (sum, jEnd int, tied bool) {
	q := 0
	for i < e {
		v, w := x[i]-d, y[j]
		c := b2i(w < v)
		q |= b2i(w == v)
		j += c
		sum += (c - 1) & j
		i += 1 - c
	}
	return sum, j, q != 0
}

// lowerBound is the number of sorted y below v.
func lowerBound(y []float64, v float64) int {
	lo, hi := 0, len(y)
	for lo < hi {
		h := int(uint(lo+hi) >> 1)
		if y[h] < v {
			lo = h + 1
		} else {
			hi = h
		}
	}
	return lo
}

// b2i is 1 for true and 0 for false; the compiler makes it a SETcc, not
// a branch.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
