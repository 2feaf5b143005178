package traffic

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUserIDPattern(t *testing.T) {
	tests := []struct {
		name    string
		format  IDFormat
		share   float64
		digits  int
		pattern string
		actual  float64
		in, out []string
	}{
		{name: "numeric 37%", format: IDNumeric, share: 37, pattern: `^([0-9]*([0-2][0-9]|3[0-6])|[0-9])$`, actual: 37,
			in: []string{"100", "9936", "7", "29", "000"}, out: []string{"137", "99", "40", "x36"}},
		{name: "numeric 5%", format: IDNumeric, share: 5, pattern: `^([0-9]*0[0-4]|[0-4])$`, actual: 5,
			in: []string{"104", "3", "1000"}, out: []string{"105", "5", "114"}},
		{name: "numeric rounds to whole buckets", format: IDNumeric, share: 12.4, actual: 12},
		{name: "numeric 0.5% with 3 digits", format: IDNumeric, share: 0.5, digits: 3, pattern: `^([0-9]*00[0-4]|0[0-4]|[0-4])$`, actual: 0.5,
			in: []string{"1004", "4"}, out: []string{"1005", "1104"}},
		{name: "hex 25%", format: IDHex, share: 25, pattern: `^(.*[0-3][0-9a-fA-F])$`, actual: 25,
			in: []string{"5f0b2c1e-8d4a-4e7b-9c3a-7e2d1f0a9b3f", "ABCD2E"}, out: []string{"5f0b2c1e-8d4a-4e7b-9c3a-7e2d1f0a9b4f"}},
		{name: "hex 10% is 26 of 256 buckets", format: IDHex, share: 10, actual: 100 * 26.0 / 256,
			in: []string{"x00", "x19", "x0F", "x0f"}, out: []string{"x1a", "x1A", "xff"}},
		{name: "all", format: IDNumeric, share: 100, pattern: `^[0-9]*$`, actual: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pattern, actual, err := UserIDPattern(tt.format, tt.share, tt.digits)
			require.NoError(t, err)
			if tt.pattern != "" {
				require.Equal(t, tt.pattern, pattern)
			}
			require.InDelta(t, tt.actual, actual, 1e-9)
			re := regexp.MustCompile(pattern)
			for _, id := range tt.in {
				require.True(t, re.MatchString(id), "%s should match %s", id, pattern)
			}
			for _, id := range tt.out {
				require.False(t, re.MatchString(id), "%s should not match %s", id, pattern)
			}
		})
	}
	for _, bad := range []struct {
		format IDFormat
		share  float64
		digits int
	}{{IDNumeric, -1, 2}, {IDNumeric, 101, 2}, {IDNumeric, 0.2, 2}, {"email", 10, 2}, {IDHex, 10, 4}} {
		_, _, err := UserIDPattern(bad.format, bad.share, bad.digits)
		require.Error(t, err, "%+v", bad)
	}
}

// TestUserIDPatternShare is the property the generator promises: over
// 100,000 random IDs, the share that matches is within one point of the
// share asked for, for every share, format and width.
func TestUserIDPatternShare(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 100_000
	numeric := make([]string, n)
	hex := make([]string, n)
	for i := range n {
		numeric[i] = strconv.FormatUint(rng.Uint64N(1_000_000_000), 10)
		hex[i] = fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", rng.Uint32(), rng.Uint32N(1<<16), rng.Uint32N(1<<12), rng.Uint32N(1<<16), rng.Uint64N(1<<48))
	}
	for _, format := range []IDFormat{IDNumeric, IDHex} {
		ids := numeric
		if format == IDHex {
			ids = hex
		}
		for _, digits := range []int{2, 3} {
			for _, share := range []float64{1, 10, 33, 75} {
				t.Run(fmt.Sprintf("%s/%d/%v", format, digits, share), func(t *testing.T) {
					t.Parallel()
					pattern, actual, err := UserIDPattern(format, share, digits)
					require.NoError(t, err)
					re := regexp.MustCompile(pattern)
					hits := 0
					for _, id := range ids {
						if re.MatchString(id) {
							hits++
						}
					}
					got := 100 * float64(hits) / n
					require.InDelta(t, share, got, 1, "pattern %s", pattern)
					require.InDelta(t, actual, got, 1)
				})
			}
		}
	}
}

func TestGeoPattern(t *testing.T) {
	p, err := GeoPattern([]string{"us", "CA", " US ", "US-TX"})
	require.NoError(t, err)
	require.Equal(t, "^(CA|US|US-TX)$", p)
	_, err = GeoPattern(nil)
	require.Error(t, err)
	_, err = GeoPattern([]string{"U.S."})
	require.Error(t, err)
}

func TestStepValidate(t *testing.T) {
	tests := []struct {
		name string
		step Step
		err  string
	}{
		{name: "weight", step: Step{Weight: 20}},
		{name: "fine weight", step: Step{Weight: 5, Total: 1000}},
		{name: "header with weight", step: Step{Weight: 10, Match: &Match{Strategy: StrategyHeader, Header: "X-Canary", Value: "yes"}}},
		{name: "total below 100", step: Step{Weight: 5, Total: 50}, err: "must be at least 100"},
		{name: "weight above total", step: Step{Weight: 101}, err: "between 0 and 100"},
		{name: "user share with weight", step: Step{Weight: 10, Match: &Match{Strategy: StrategyUserID, Header: "X-User-Id", Pattern: "^1$"}}, err: "breaks that guarantee"},
		{name: "value and pattern", step: Step{Match: &Match{Strategy: StrategyHeader, Header: "X", Value: "a", Pattern: "b"}}, err: "exactly one of a value and a pattern"},
		{name: "cookie without name", step: Step{Match: &Match{Strategy: StrategyCookie}}, err: "needs a cookie name"},
		{name: "unknown strategy", step: Step{Match: &Match{Strategy: "random"}}, err: "unknown strategy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.step.Validate()
			if tt.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.err)
		})
	}
}
