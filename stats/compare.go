package stats

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// Direction says which change of the canary fails a comparison, as
// Kayenta's per-metric direction does.
type Direction string

// Directions.
const (
	// Increase fails only a canary significantly higher than its
	// baseline: latency, errors, memory.
	Increase Direction = "increase"
	// Decrease fails only a canary significantly lower: success counts,
	// throughput.
	Decrease Direction = "decrease"
	// Either fails both ways. It is the default.
	Either Direction = "either"
)

// Class is the verdict on one metric, Kayenta's metric classification.
type Class string

// Classes.
const (
	// ClassPass: no difference that both is significant and exceeds the
	// allowed effect size in a direction that counts.
	ClassPass Class = "pass"
	// ClassHigh: the canary is significantly higher, by more than the
	// allowed ratio.
	ClassHigh Class = "high"
	// ClassLow: the canary is significantly lower, by more than the
	// allowed ratio.
	ClassLow Class = "low"
	// ClassNoData: one side had no samples (after NaN handling). Kayenta
	// leaves it out of the score, but fails a canary where half or more of
	// the metrics have no data.
	ClassNoData Class = "nodata"
	// ClassNoDataFail: no data on a metric that must have it; Kayenta's
	// NodataFailMetric, which counts as a failure in the score.
	ClassNoDataFail Class = "nodatafail"
	// ClassError: the comparison could not run (an invalid Comparison, or
	// data the test refuses). Kayenta leaves it out of the score.
	ClassError Class = "error"
)

// Defaults taken from Kayenta's judge.
const (
	// defaultCompareLevel is the confidence level NetflixACAJudge builds
	// its MannWhitneyClassifier with.
	defaultCompareLevel = 0.98
	// boundFraction is MannWhitneyClassifier's tolerance: the interval
	// must clear ±25% of |estimate|, not just zero, to count as a change.
	boundFraction = 0.25
	// noiseScale is the relative size of the noise Kayenta adds to two
	// constant series so the rank test has something to rank.
	noiseScale = 1e-5
)

// Comparison configures Compare: one metric's canaryAnalysisConfiguration
// in Kayenta's terms. The zero value is Kayenta's defaults.
type Comparison struct {
	// Direction that fails the canary; "" means Either.
	Direction Direction
	// ConfidenceLevel of the Mann-Whitney interval; 0 means Kayenta's
	// 0.98.
	ConfidenceLevel float64
	// AllowedIncrease is the ratio of means (canary / baseline) a
	// significant increase must reach to count: 1.1 lets the canary be up
	// to 10% higher. 0 means 1: any significant increase counts.
	AllowedIncrease float64
	// AllowedDecrease is the ratio a significant decrease must fall to:
	// 0.9 lets the canary be up to 10% lower. 0 means 1. It is a ratio
	// below 1, as in Kayenta, not a percentage.
	AllowedDecrease float64
	// CriticalIncrease, when set, is the ratio at which a High is
	// critical: Kayenta then fails the whole canary. 0 means never.
	CriticalIncrease float64
	// CriticalDecrease, when set, is the ratio at or below which a Low is
	// critical. 0 means never.
	CriticalDecrease float64
	// NaN is the NaN strategy; "" means NaNRemove.
	NaN NaNStrategy
	// RemoveOutliers applies Prepare's IQR filter to both series.
	RemoveOutliers bool
	// MustHaveData turns no data into ClassNoDataFail.
	MustHaveData bool
}

// Outcome is a classified comparison.
type Outcome struct {
	Class Class
	// Critical reports that a High or Low crossed CriticalIncrease or
	// CriticalDecrease.
	Critical bool
	// Result is the test that decided, when one ran; its counts and means
	// describe the samples judged (after NaN and outlier handling) always.
	Result Result
	// Ratio is mean(canary) / mean(baseline), Kayenta's effect size; NaN
	// when either mean is 0 or a side has no data.
	Ratio float64
	// Reason is one line a human can act on, without the metric's name:
	// "canary higher than baseline: ratio 1.42, p=0.0003". Callers prefix
	// the name.
	Reason string
}

// Compare classifies a canary's samples against its baseline's following
// Kayenta's NetflixACAJudge and MannWhitneyClassifier:
//
//  1. Both series go through Prepare. If either is then empty the class
//     is ClassNoData, or ClassNoDataFail with MustHaveData. (Kayenta
//     passes an empty series under the replace strategy; Compare does not:
//     an empty series is missing data whatever the strategy.)
//  2. Identical series (as multisets), or a single value throughout, pass.
//  3. Two constant series get relative noise of 1e-5 (from a fixed seed,
//     so verdicts are repeatable) so the ranks are not all tied.
//  4. MannWhitney, two-sided, at the configured level (0.98 by default).
//  5. High when an increase counts, the interval's lower end is above
//     +25% of |estimate| and the ratio of means is at least
//     AllowedIncrease; Low symmetrically. A NaN ratio (a zero mean) skips
//     the ratio tests, for the allowed and the critical thresholds alike.
//     Anything else passes.
//
// Compare never panics and reports every failure as ClassError with the
// reason.
func Compare(canary, baseline []float64, c Comparison) Outcome {
	c, err := c.withDefaults()
	if err != nil {
		return Outcome{Class: ClassError, Ratio: math.NaN(), Reason: "invalid comparison: " + err.Error()}
	}

	cn := Prepare(canary, c.NaN, c.RemoveOutliers)
	bl := Prepare(baseline, c.NaN, c.RemoveOutliers)
	// Every outcome from here on describes the samples it judged, whether
	// or not the test ran.
	judged := Result{NX: len(cn), NY: len(bl), MeanX: Mean(cn), MeanY: Mean(bl)}
	if len(cn) == 0 || len(bl) == 0 {
		class := ClassNoData
		if c.MustHaveData {
			class = ClassNoDataFail
		}
		var missing []string
		for _, side := range []struct {
			name          string
			raw, prepared []float64
		}{{"canary", canary, cn}, {"baseline", baseline, bl}} {
			switch {
			case len(side.raw) == 0:
				missing = append(missing, "no "+side.name+" data")
			case len(side.prepared) == 0:
				missing = append(missing, side.name+" data all NaN")
			}
		}
		return Outcome{Class: class, Result: judged, Ratio: math.NaN(), Reason: strings.Join(missing, ", ")}
	}
	if !allFinite(cn) || !allFinite(bl) {
		return Outcome{Class: ClassError, Result: judged, Ratio: math.NaN(), Reason: "comparison failed: a sample is infinite"}
	}

	ratio := meanRatio(judged.MeanX, judged.MeanY)
	sc, sb := slices.Clone(cn), slices.Clone(bl)
	slices.Sort(sc)
	slices.Sort(sb)
	if slices.Equal(sc, sb) || (sc[0] == sc[len(sc)-1] && sb[0] == sb[len(sb)-1] && sc[0] == sb[0]) {
		// Kayenta passes these before testing; what R would report for
		// equal samples is p = 1 with a zero shift.
		res := judged
		res.W, res.PValue, res.ConfidenceLevel = float64(len(cn)*len(bl))/2, 1, c.ConfidenceLevel
		return Outcome{Class: ClassPass, Result: res, Ratio: 1, Reason: "canary and baseline data are identical"}
	}
	jittered := sc[0] == sc[len(sc)-1] && sb[0] == sb[len(sb)-1]
	if jittered {
		rng := rand.New(rand.NewPCG(0x6b617965, 0x6e7461)) // fixed: same data, same verdict
		cn, bl = jitter(cn, rng), jitter(bl, rng)
	}

	res, err := MannWhitney(cn, bl, Options{ConfidenceLevel: c.ConfidenceLevel})
	// The means describe the data, not the noise.
	res.NX, res.NY, res.MeanX, res.MeanY = judged.NX, judged.NY, judged.MeanX, judged.MeanY
	if err != nil {
		return Outcome{Class: ClassError, Result: res, Ratio: ratio, Reason: "mann-whitney test failed: " + err.Error()}
	}
	out := Outcome{Class: ClassPass, Result: res, Ratio: ratio}
	bound := boundFraction * math.Abs(res.Estimate)
	higher := res.CILow > bound
	lower := res.CIHigh < -bound
	nan := math.IsNaN(ratio)
	figures := fmt.Sprintf("ratio %s, p=%s", fmtRatio(ratio), fmtP(res.PValue))

	switch {
	case higher && c.Direction == Decrease:
		out.Reason = "canary higher than baseline, but only a decrease fails: " + figures
	case lower && c.Direction == Increase:
		out.Reason = "canary lower than baseline, but only an increase fails: " + figures
	case higher && !nan && ratio < c.AllowedIncrease:
		out.Reason = fmt.Sprintf("canary higher than baseline, within the allowed ratio %s: %s", fmtRatio(c.AllowedIncrease), figures)
	case lower && !nan && ratio > c.AllowedDecrease:
		out.Reason = fmt.Sprintf("canary lower than baseline, within the allowed ratio %s: %s", fmtRatio(c.AllowedDecrease), figures)
	case higher:
		out.Class = ClassHigh
		out.Critical = c.CriticalIncrease > 0 && (nan || ratio >= c.CriticalIncrease)
		out.Reason = "canary higher than baseline: " + figures
		if out.Critical {
			out.Reason += fmt.Sprintf(", critical (ratio at least %s)", fmtRatio(c.CriticalIncrease))
		}
	case lower:
		out.Class = ClassLow
		out.Critical = c.CriticalDecrease > 0 && (nan || ratio <= c.CriticalDecrease)
		out.Reason = "canary lower than baseline: " + figures
		if out.Critical {
			out.Reason += fmt.Sprintf(", critical (ratio at most %s)", fmtRatio(c.CriticalDecrease))
		}
	default:
		out.Reason = "no significant difference from baseline: " + figures
	}
	if nan && (out.Class == ClassHigh || out.Class == ClassLow) {
		out.Reason += " (a mean is 0, so the ratio thresholds were skipped)"
	}
	return out
}

// withDefaults fills Kayenta's defaults and rejects settings that cannot
// mean what their author intended.
func (c Comparison) withDefaults() (Comparison, error) {
	switch c.Direction {
	case "":
		c.Direction = Either
	case Increase, Decrease, Either:
	default:
		return c, fmt.Errorf("direction %q: want %q, %q or %q", c.Direction, Increase, Decrease, Either)
	}
	c.ConfidenceLevel = cmp.Or(c.ConfidenceLevel, defaultCompareLevel)
	if !(c.ConfidenceLevel > 0 && c.ConfidenceLevel < 1) {
		return c, fmt.Errorf("confidence level %v is not between 0 and 1", c.ConfidenceLevel)
	}
	c.AllowedIncrease = cmp.Or(c.AllowedIncrease, 1)
	c.AllowedDecrease = cmp.Or(c.AllowedDecrease, 1)
	switch {
	case !(c.AllowedIncrease >= 1) || math.IsInf(c.AllowedIncrease, 0):
		return c, fmt.Errorf("allowed increase %v: want a ratio of at least 1, such as 1.1 for +10%%", c.AllowedIncrease)
	case !(c.AllowedDecrease > 0 && c.AllowedDecrease <= 1):
		return c, fmt.Errorf("allowed decrease %v: want a ratio in (0, 1], such as 0.9 for -10%%", c.AllowedDecrease)
	case c.CriticalIncrease != 0 && !(c.CriticalIncrease >= c.AllowedIncrease && !math.IsInf(c.CriticalIncrease, 0)):
		return c, fmt.Errorf("critical increase %v: want a ratio of at least the allowed increase %v", c.CriticalIncrease, c.AllowedIncrease)
	case c.CriticalDecrease != 0 && !(c.CriticalDecrease > 0 && c.CriticalDecrease <= c.AllowedDecrease):
		return c, fmt.Errorf("critical decrease %v: want a ratio in (0, %v], at most the allowed decrease", c.CriticalDecrease, c.AllowedDecrease)
	}
	c.NaN = cmp.Or(c.NaN, NaNRemove)
	return c, nil
}

// meanRatio is Kayenta's effect size, mean(canary) / mean(baseline), NaN
// when either mean is 0 rather than ±Inf or 0.
func meanRatio(mc, mb float64) float64 {
	if mc == 0 || mb == 0 {
		return math.NaN()
	}
	return mc / mb
}

// jitter returns xs with Gaussian noise of standard deviation |v|·1e-5
// added to each v, Kayenta's way of making constant series rankable.
func jitter(xs []float64, rng *rand.Rand) []float64 {
	out := make([]float64, len(xs))
	for i, v := range xs {
		out[i] = v + rng.NormFloat64()*math.Abs(v)*noiseScale
	}
	return out
}

func fmtRatio(r float64) string {
	if math.IsNaN(r) {
		return "n/a"
	}
	return strconv.FormatFloat(r, 'f', 2, 64)
}

// fmtP prints a p-value with two significant digits, never in a way that
// rounds a tiny p to 0.
func fmtP(p float64) string {
	if p >= 1e-4 {
		return strconv.FormatFloat(p, 'g', 2, 64)
	}
	return strconv.FormatFloat(p, 'e', 1, 64)
}
