package stats

import "math"

// pnorm is the standard normal distribution function, P[Z <= z] when lower
// and P[Z > z] otherwise. The upper tail is computed directly, not as
// 1 - P[Z <= z], so a p-value of 1e-60 keeps its digits, as R's pnorm does.
// It goes through erfc rather than R's Cody algorithm and agrees with R to
// about 2z²ε relative (1e-13 at z = 30), far inside what a p-value needs.
func pnorm(z float64, lower bool) float64 {
	if !lower {
		z = -z
	}
	return 0.5 * math.Erfc(-z/math.Sqrt2)
}

// qnorm is the standard normal quantile function: the z with P[Z <= z] = p
// when lower, P[Z > z] = p otherwise.
//
// It is R's qnorm (src/nmath/qnorm.c), Wichura's algorithm AS 241 (PPND16),
// ported operation for operation so that the quantiles the confidence
// interval search aims at are the very doubles R uses. Each product is
// rounded explicitly with float64(...) because Go may otherwise fuse a*b+c
// into one FMA on some architectures, and R's build does not.
func qnorm(p float64, lower bool) float64 {
	switch {
	case math.IsNaN(p) || p < 0 || p > 1:
		return math.NaN()
	case p == 0:
		if lower {
			return math.Inf(-1)
		}
		return math.Inf(1)
	case p == 1:
		if lower {
			return math.Inf(1)
		}
		return math.Inf(-1)
	}

	// p_ is the lower-tail probability (R_DT_qIv).
	pLow := p
	if !lower {
		pLow = 0.5 - p + 0.5
	}
	q := pLow - 0.5

	var val float64
	if math.Abs(q) <= 0.425 {
		r := 0.180625 - float64(q*q)
		num := horner(r, 2509.0809287301226727, 33430.575583588128105, 67265.770927008700853,
			45921.953931549871457, 13731.693765509461125, 1971.5909503065514427,
			133.14166789178437745, 3.387132872796366608)
		den := horner(r, 5226.495278852545925, 28729.085735721942674, 39307.89580009271061,
			21213.794301586595867, 5394.1960214247511077, 687.1870074920579083,
			42.313330701600911252, 1.)
		return float64(q*num) / den
	}

	// r = min(p, 1-p), taken from whichever tail the caller gave so the
	// small probability is never computed as 1 - (1 - p) (R_DT_CIv).
	var r float64
	if q > 0 {
		if lower {
			r = 0.5 - p + 0.5
		} else {
			r = p
		}
	} else {
		r = pLow
	}
	r = math.Sqrt(-math.Log(r))
	if r <= 5 {
		r += -1.6
		val = horner(r, 7.7454501427834140764e-4, .0227238449892691845833, .24178072517745061177,
			1.27045825245236838258, 3.64784832476320460504, 5.7694972214606914055,
			4.6303378461565452959, 1.42343711074968357734) /
			horner(r, 1.05075007164441684324e-9, 5.475938084995344946e-4, .0151986665636164571966,
				.14810397642748007459, .68976733498510000455, 1.6763848301838038494,
				2.05319162663775882187, 1.)
	} else {
		r += -5.
		val = horner(r, 2.01033439929228813265e-7, 2.71155556874348757815e-5, .0012426609473880784386,
			.026532189526576123093, .29656057182850489123, 1.7848265399172913358,
			5.4637849111641143699, 6.6579046435011037772) /
			horner(r, 2.04426310338993978564e-15, 1.4215117583164458887e-7, 1.8463183175100546818e-5,
				7.868691311456132591e-4, .0148753612908506148525, .13692988092273580531,
				.59983220655588793769, 1.)
	}
	if q < 0 {
		val = -val
	}
	return val
}

// horner evaluates (((c[0]*r + c[1])*r + c[2])*r + ...) + c[n-1] in R's
// order, rounding every product so no step is fused.
func horner(r float64, c ...float64) float64 {
	v := c[0]
	for _, ci := range c[1:] {
		v = float64(v*r) + ci
	}
	return v
}
