package stats

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// The fixtures are R's own answers. To regenerate them (Debian:
// apt-get install r-base-core), from the repository root:
//
//	Rscript stats/testdata/make-fixtures.R
//
// which rewrites stats/testdata/wilcox.json.

// rnum is a number as the fixtures write it: a JSON number, null for R's NA
// (decoded as NaN), or the strings "Inf" and "-Inf".
type rnum float64

func (r *rnum) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "null":
		*r = rnum(math.NaN())
	case `"Inf"`:
		*r = rnum(math.Inf(1))
	case `"-Inf"`:
		*r = rnum(math.Inf(-1))
	default:
		var f float64
		if err := json.Unmarshal(b, &f); err != nil {
			return err
		}
		*r = rnum(f)
	}
	return nil
}

type wilcoxCase struct {
	Name        string   `json:"name"`
	Note        string   `json:"note"`
	X           []rnum   `json:"x"`
	Y           []rnum   `json:"y"`
	ConfLevel   float64  `json:"conf_level"`
	Alternative string   `json:"alternative"`
	Exact       *bool    `json:"exact"`
	Correct     bool     `json:"correct"`
	Warnings    []string `json:"warnings"`
	Error       *string  `json:"error"`
	Method      string   `json:"method"`
	ExactUsed   bool     `json:"exact_used"`
	Statistic   rnum     `json:"statistic"`
	PValue      rnum     `json:"p_value"`
	Estimate    rnum     `json:"estimate"`
	ConfInt     []rnum   `json:"conf_int"`
	ConfLevelR  rnum     `json:"conf_level_achieved"`
}

type fixtures struct {
	RVersion string       `json:"r_version"`
	Cases    []wilcoxCase `json:"cases"`
	QNorm    []struct {
		P     float64 `json:"p"`
		Lower bool    `json:"lower"`
		Q     rnum    `json:"q"`
	} `json:"qnorm"`
	PNorm []struct {
		Z     float64 `json:"z"`
		Lower rnum    `json:"lower"`
		Upper rnum    `json:"upper"`
	} `json:"pnorm"`
	PWilcox []struct {
		Q     float64 `json:"q"`
		M     int     `json:"m"`
		N     int     `json:"n"`
		Lower rnum    `json:"lower"`
		Upper rnum    `json:"upper"`
	} `json:"pwilcox"`
	QWilcox []struct {
		P float64 `json:"p"`
		M int     `json:"m"`
		N int     `json:"n"`
		Q int     `json:"q"`
	} `json:"qwilcox"`
}

func loadFixtures(t testing.TB) fixtures {
	t.Helper()
	b, err := os.ReadFile("testdata/wilcox.json")
	require.NoError(t, err)
	var f fixtures
	require.NoError(t, json.Unmarshal(b, &f))
	require.NotEmpty(t, f.Cases)
	return f
}

func floats(rs []rnum) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = float64(r)
	}
	return out
}

// requireClose checks got against R's want to tol, relative to |want| when
// that exceeds 1 (estimates in the hundreds), absolute otherwise. NaN and
// infinities must match exactly.
func requireClose(t *testing.T, want, got, tol float64, what string) {
	t.Helper()
	switch {
	case math.IsNaN(want):
		require.Truef(t, math.IsNaN(got), "%s: R gives NA, got %v", what, got)
	case math.IsInf(want, 0):
		require.Equalf(t, want, got, "%s", what)
	default:
		require.LessOrEqualf(t, math.Abs(got-want), tol*math.Max(1, math.Abs(want)),
			"%s: got %.17g, R %.17g (diff %.3g)", what, got, want, got-want)
	}
}

// requireCloseP checks a probability relatively, so p = 4.8e-67 must carry
// its leading digits too.
func requireCloseP(t *testing.T, want, got, tol float64, what string) {
	t.Helper()
	if math.IsNaN(want) {
		require.Truef(t, math.IsNaN(got), "%s: R gives NA, got %v", what, got)
		return
	}
	require.LessOrEqualf(t, math.Abs(got-want), tol*math.Abs(want)+1e-300,
		"%s: got %.17g, R %.17g", what, got, want)
}

func TestMannWhitneyMatchesR(t *testing.T) {
	f := loadFixtures(t)
	for _, tc := range f.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			opts := Options{
				ConfidenceLevel: tc.ConfLevel,
				Alternative:     tc.Alternative,
				Exact:           tc.Exact,
				NoCorrect:       !tc.Correct,
			}
			res, err := MannWhitney(floats(tc.X), floats(tc.Y), opts)
			if tc.Error != nil {
				require.Errorf(t, err, "R stops with %q", *tc.Error)
				switch {
				case len(tc.X) == 0 || len(tc.Y) == 0:
					require.ErrorIs(t, err, ErrEmptySample)
				default:
					require.ErrorIs(t, err, ErrAllTied)
				}
				return
			}
			require.NoError(t, err)

			require.Equal(t, tc.ExactUsed, res.Exact, "method: R ran %q", tc.Method)
			tol := 1e-6
			if tc.ExactUsed {
				tol = 1e-9
			}
			require.Equal(t, float64(tc.Statistic), res.W, "W")
			requireCloseP(t, float64(tc.PValue), res.PValue, tol, "p-value")
			requireClose(t, float64(tc.Estimate), res.Estimate, tol, "estimate")
			require.Len(t, tc.ConfInt, 2)
			requireClose(t, float64(tc.ConfInt[0]), res.CILow, tol, "conf.int lower")
			requireClose(t, float64(tc.ConfInt[1]), res.CIHigh, tol, "conf.int upper")
			requireClose(t, float64(tc.ConfLevelR), res.ConfidenceLevel, 1e-12, "achieved conf.level")
			require.Equal(t, len(tc.X), res.NX)
			require.Equal(t, len(tc.Y), res.NY)
		})
	}
}

func TestQNormMatchesR(t *testing.T) {
	f := loadFixtures(t)
	for _, tc := range f.QNorm {
		t.Run(fmt.Sprintf("p=%g,lower=%v", tc.P, tc.Lower), func(t *testing.T) {
			// A straight port of R's AS 241. It is the same double but
			// where Go's math.Log and glibc's log differ in the last bit
			// (p = 0.99: one ulp).
			requireCloseP(t, float64(tc.Q), qnorm(tc.P, tc.Lower), 4e-16, "quantile")
		})
	}
}

func TestPNormMatchesR(t *testing.T) {
	f := loadFixtures(t)
	for _, tc := range f.PNorm {
		t.Run(fmt.Sprintf("z=%g", tc.Z), func(t *testing.T) {
			// erfc(z/√2) loses about 2z²ε to the rounding of z/√2
			// (1.2e-13 at z = 30); R's Cody algorithm does not.
			requireCloseP(t, float64(tc.Lower), pnorm(tc.Z, true), 1e-12, "lower")
			requireCloseP(t, float64(tc.Upper), pnorm(tc.Z, false), 1e-12, "upper")
		})
	}
}

func TestWilcoxDistributionMatchesR(t *testing.T) {
	f := loadFixtures(t)
	for _, tc := range f.PWilcox {
		t.Run(fmt.Sprintf("pwilcox(%g,%d,%d)", tc.Q, tc.M, tc.N), func(t *testing.T) {
			d := newWilcoxDist(tc.M, tc.N)
			requireCloseP(t, float64(tc.Lower), d.p(tc.Q, true), 1e-12, "lower")
			requireCloseP(t, float64(tc.Upper), d.p(tc.Q, false), 1e-12, "upper")
		})
	}
	for _, tc := range f.QWilcox {
		name := fmt.Sprintf("qwilcox(%g,%d,%d)", tc.P, tc.M, tc.N)
		t.Run(name, func(t *testing.T) {
			got := newWilcoxDist(tc.M, tc.N).q(tc.P)
			if name == "qwilcox(0.5,49,49)" {
				// R says 1201, one past the median: its choose(98, 49) is
				// exp(lchoose(98, 49)), 4.4e-15 too large, so its
				// cumulative sum at 1200 falls short of 0.5 - 10ε. The
				// exact total gives 1200 = floor(49·49/2), the true
				// median. wilcox.test only asks for alpha or alpha/2.
				require.Equal(t, 1201, tc.Q)
				require.Equal(t, 1200, got)
				return
			}
			require.Equal(t, tc.Q, got)
		})
	}
}

func TestWilcoxCountsSumToChoose(t *testing.T) {
	for _, tc := range []struct{ m, n int }{{1, 1}, {2, 3}, {7, 4}, {10, 10}, {20, 13}} {
		t.Run(fmt.Sprintf("%dx%d", tc.m, tc.n), func(t *testing.T) {
			d := newWilcoxDist(tc.m, tc.n)
			sum := 0.0
			for k := 0; k <= d.mn; k++ {
				sum += d.count(k)
			}
			require.Equal(t, d.total, sum)
		})
	}
}

func TestMannWhitneyErrors(t *testing.T) {
	yes := true
	big := make([]float64, 101)
	for i := range big {
		big[i] = float64(i) * 1.5
	}
	for _, tc := range []struct {
		name string
		x, y []float64
		opts Options
		want error
	}{
		{name: "empty canary", x: nil, y: []float64{1}, want: ErrEmptySample},
		{name: "empty baseline", x: []float64{1}, y: []float64{}, want: ErrEmptySample},
		{name: "NaN", x: []float64{1, math.NaN()}, y: []float64{1, 2}, want: ErrNonFinite},
		{name: "Inf", x: []float64{1, 2}, y: []float64{math.Inf(1)}, want: ErrNonFinite},
		{name: "confidence level 1", x: []float64{1}, y: []float64{2}, opts: Options{ConfidenceLevel: 1}, want: ErrInvalidOptions},
		{name: "negative confidence level", x: []float64{1}, y: []float64{2}, opts: Options{ConfidenceLevel: -0.5}, want: ErrInvalidOptions},
		{name: "unknown alternative", x: []float64{1}, y: []float64{2}, opts: Options{Alternative: "two-sided"}, want: ErrInvalidOptions},
		{name: "exact too large", x: big, y: shifted(append(big, 200), 0.25), opts: Options{Exact: &yes}, want: ErrExactTooLarge},
		{name: "one point each, tied", x: []float64{3}, y: []float64{3}, want: ErrAllTied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := MannWhitney(tc.x, tc.y, tc.opts)
			require.ErrorIs(t, err, tc.want)
		})
	}
}

// TestMannWhitneyAllTiedKeepsStatistic pins what R computes before it
// stops on all-tied data: W and a NaN p-value.
func TestMannWhitneyAllTiedKeepsStatistic(t *testing.T) {
	res, err := MannWhitney([]float64{1, 1, 1}, []float64{1, 1}, Options{})
	require.True(t, errors.Is(err, ErrAllTied))
	require.Equal(t, 3.0, res.W)
	require.True(t, math.IsNaN(res.PValue))

	res, err = MannWhitney([]float64{2, 2, 2}, []float64{1, 1, 1, 1}, Options{})
	require.ErrorIs(t, err, ErrAllTied)
	require.Equal(t, 12.0, res.W)
	require.Less(t, res.PValue, 0.05)
}

func shifted(xs []float64, d float64) []float64 {
	out := make([]float64, len(xs))
	for i, v := range xs {
		out[i] = v + d
	}
	return out
}

func TestMannWhitneyDoesNotModifyInput(t *testing.T) {
	x := []float64{3, 1, 2}
	y := []float64{9, 7, 8, 4}
	_, err := MannWhitney(x, y, Options{})
	require.NoError(t, err)
	require.Equal(t, []float64{3, 1, 2}, x)
	require.Equal(t, []float64{9, 7, 8, 4}, y)
}
