package stats

import "math"

// zeroin finds a zero of f in [ax, bx], given fa = f(ax) and fb = f(bx) of
// opposite signs, to within 4·ε·|x| + tol. It is R's R_zeroin2
// (src/library/stats/src/zeroin.c, Brent's method from netlib's zeroin.c),
// the engine under uniroot(), ported statement for statement: R's
// wilcox.test finds the Hodges-Lehmann estimate and the approximate
// confidence limits with uniroot(..., tol = 1e-4) on a step function, and
// only the same sequence of trial points lands on the same answer.
//
// It returns the root and whether it converged within maxit iterations
// (uniroot only warns when it does not, and still uses the root).
//
// Products are rounded explicitly with float64(...) so the compiler never
// fuses them into FMAs, which R's build does not use.
func zeroin(ax, bx, fa, fb float64, f func(float64) float64, tol float64, maxit int) (float64, bool) {
	a, b := ax, bx
	c, fc := a, fa
	if fa == 0 {
		return a, true
	}
	if fb == 0 {
		return b, true
	}
	for it := maxit + 1; it > 0; it-- {
		prevStep := b - a
		if math.Abs(fc) < math.Abs(fb) {
			// Swap so that b is the best approximation.
			a, b, c = b, c, b
			fa, fb, fc = fb, fc, fb
		}
		tolAct := float64(2*epsilon*math.Abs(b)) + tol/2
		newStep := (c - b) / 2

		if math.Abs(newStep) <= tolAct || fb == 0 {
			return b, true
		}

		// Interpolate if the previous step was large enough and went the
		// right way.
		if math.Abs(prevStep) >= tolAct && math.Abs(fa) > math.Abs(fb) {
			var p, q float64
			cb := c - b
			if a == c {
				// Two distinct points: linear interpolation.
				t1 := fb / fa
				p = float64(cb * t1)
				q = 1.0 - t1
			} else {
				// Inverse quadratic interpolation.
				q = fa / fc
				t1 := fb / fc
				t2 := fb / fa
				p = float64(t2 * (float64(float64(cb*q)*(q-t1)) - float64((b-a)*(t1-1.0))))
				q = float64(float64((q-1.0)*(t1-1.0)) * (t2 - 1.0))
			}
			if p > 0 {
				q = -q
			} else {
				p = -p
			}
			if p < float64(float64(0.75*cb)*q)-math.Abs(float64(tolAct*q))/2 &&
				p < math.Abs(float64(prevStep*q)/2) {
				newStep = p / q
			}
		}

		if math.Abs(newStep) < tolAct {
			if newStep > 0 {
				newStep = tolAct
			} else {
				newStep = -tolAct
			}
		}
		a, fa = b, fb
		b += newStep
		fb = f(b)
		if (fb > 0 && fc > 0) || (fb < 0 && fc < 0) {
			c, fc = a, fa
		}
	}
	return b, false
}
