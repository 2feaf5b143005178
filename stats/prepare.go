package stats

import (
	"math"
	"slices"
)

// NaNStrategy says what to do with NaN samples (a scrape that returned no
// value for an interval), as Kayenta's nanStrategy does.
type NaNStrategy string

// NaN strategies.
const (
	// NaNRemove drops NaNs: for metrics that should always have data
	// (latency, usage). It is the default, and Kayenta treats any value it
	// does not know as remove too; so does Prepare.
	NaNRemove NaNStrategy = "remove"
	// NaNReplace turns NaNs into 0: for counts, where no series means
	// nothing happened (no errors in that interval).
	NaNReplace NaNStrategy = "replace"
)

// outlierFactor is the Tukey fence multiplier: values further than 1.5
// IQR outside the quartiles are outliers. It is Tukey's rule; Kayenta's
// IQRDetector is laxer, a factor of 3 with the fences widened to the 1st
// and 99th percentiles (reduceSensitivity).
const outlierFactor = 1.5

// Prepare returns a new slice with NaNs handled by strategy and, when
// removeOutliers is set, the values outside Tukey's fences
// [Q1 - 1.5·IQR, Q3 + 1.5·IQR] dropped, with the quartiles computed as R's
// default quantile(type = 7) computes them. The order of the
// remaining values is kept; xs is not modified. ±Inf values pass through
// (MannWhitney then refuses them).
func Prepare(xs []float64, nan NaNStrategy, removeOutliers bool) []float64 {
	out := make([]float64, 0, len(xs))
	for _, v := range xs {
		if math.IsNaN(v) {
			if nan == NaNReplace {
				out = append(out, 0)
			}
			continue
		}
		out = append(out, v)
	}
	if !removeOutliers || len(out) == 0 {
		return out
	}
	sorted := slices.Clone(out)
	slices.Sort(sorted)
	q1, q3 := quantile7(sorted, 0.25), quantile7(sorted, 0.75)
	iqr := q3 - q1
	lo, hi := q1-outlierFactor*iqr, q3+outlierFactor*iqr
	kept := out[:0]
	for _, v := range out {
		if v >= lo && v <= hi {
			kept = append(kept, v)
		}
	}
	return kept
}

// quantile7 is R's quantile(x, p, type = 7) of sorted, non-empty x: the
// linear interpolation between order statistics at (n-1)p, in R's form
// (1-h)·x[lo] + h·x[hi], which is exact when the two are equal.
func quantile7(sorted []float64, p float64) float64 {
	idx := float64(len(sorted)-1) * p
	lo := int(math.Floor(idx))
	hi := int(math.Ceil(idx))
	q := sorted[lo]
	if h := idx - float64(lo); h > 0 && sorted[hi] != q {
		q = (1-h)*q + h*sorted[hi]
	}
	return q
}
