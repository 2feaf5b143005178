package rules

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// TestAppendSides pins how reasons write a comparison: four significant
// digits, a measured side that is a negligible share of the other as 0,
// and more digits where four would make the comparison read false.
func TestAppendSides(t *testing.T) {
	tests := []struct {
		name        string
		left, right float64
		op          string
		want        string
	}{
		{name: "four digits", left: 0.0333333333, op: "<=", right: 0.05, want: "0.03333 <= 0.05"},
		{name: "whole numbers", left: 600, op: ">", right: 500, want: "600 > 500"},
		{name: "large values keep one decimal", left: 12345.678, op: ">", right: 1000, want: "12345.7 > 1000"},
		{name: "float noise beside a whole number", left: 1.0000000000000002, op: "<=", right: 5, want: "1 <= 5"},
		{name: "just above the threshold", left: 25.00001, op: ">", right: 25, want: "25.00001 > 25"},
		{name: "just below the threshold", left: 0.0099999, op: "<", right: 0.01, want: "0.0099999 < 0.01"},
		{name: "both sides round alike", left: 0.99996, op: "<", right: 0.99997, want: "0.99996 < 0.99997"},
		{name: "equality that failed", left: 0.0100001, op: "!=", right: 0.01, want: "0.0100001 != 0.01"},
		{name: "one ulp apart", left: 1.0000000000000002, op: ">", right: 1, want: "1.0000000000000002 > 1"},
		{name: "large values one hundredth apart", left: 1000.04, op: ">", right: 1000, want: "1000.04 > 1000"},
		{name: "NaN is written as is", left: math.NaN(), op: ">", right: 0.01, want: "NaN > 0.01"},
		{name: "infinity", left: math.Inf(1), op: ">", right: 1e300, want: "+Inf > 1e+300"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, string(AppendSides(nil, tt.left, tt.op, tt.right)))
		})
	}
}

// TestReadable pins which measured values a reason shows as 0.
func TestReadable(t *testing.T) {
	tests := []struct {
		name     string
		v, other float64
		want     float64
	}{
		{name: "PromQL noise beside a threshold", v: -1.501e-13, other: 25, want: 0},
		{name: "a real small error rate", v: 1e-6, other: 0.01, want: 1e-6},
		{name: "nothing to be small beside", v: 1e-13, other: 0, want: 1e-13},
		{name: "the larger side", v: 25, other: 1e-13, want: 25},
		{name: "zero", v: 0, other: 25, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, Readable(tt.v, tt.other))
		})
	}
}

// TestAppendSidesNeverMisleads is the property reasons rely on: whatever
// the two values, the written comparison, read back as a person reads it,
// holds with the operator written; each written number is its value to
// four significant digits at least (or 0, for a negligible share of the
// other side); and four digits are used whenever they do not mislead.
func TestAppendSidesNeverMisleads(t *testing.T) {
	ops := []string{"<", "<=", ">", ">=", "==", "!="}
	rapid.Check(t, func(t *rapid.T) {
		left := drawValue(t, "left")
		right := drawValue(t, "right")
		if rapid.Bool().Draw(t, "near") {
			// The cases that matter: sides that round alike.
			right = left * (1 + rapid.Float64Range(-1e-6, 1e-6).Draw(t, "gap"))
		}
		op := rapid.SampledFrom(ops).Draw(t, "op")
		if !Holds(op, left, right) {
			op = Negate(op)
		}
		shownLeft, shownRight := Readable(left, right), Readable(right, left)
		got := string(AppendSides(nil, shownLeft, op, shownRight))

		parts := strings.SplitN(got, " ", 3)
		require.Len(t, parts, 3, got)
		require.Equal(t, op, parts[1], got)
		pl, err := strconv.ParseFloat(parts[0], 64)
		require.NoError(t, err, got)
		pr, err := strconv.ParseFloat(parts[2], 64)
		require.NoError(t, err, got)
		require.True(t, Holds(op, pl, pr), "%q misleads: the values were %v and %v", got, left, right)
		near(t, left, right, pl, got)
		near(t, right, left, pr, got)

		fourLeft, fourRight := AppendValue(nil, shownLeft), AppendValue(nil, shownRight)
		if !Misleads(fourLeft, op, fourRight) {
			require.Equal(t, string(fourLeft)+" "+op+" "+string(fourRight), got)
		}
	})
}

// drawValue draws a finite value across the magnitudes metrics take,
// signs and whole numbers included.
func drawValue(t *rapid.T, label string) float64 {
	switch rapid.IntRange(0, 3).Draw(t, label+" kind") {
	case 0:
		return float64(rapid.IntRange(-100000, 100000).Draw(t, label))
	case 1:
		return rapid.Float64Range(-1, 1).Draw(t, label)
	case 2:
		return rapid.Float64Range(-1e16, 1e16).Draw(t, label)
	}
	return rapid.Float64Range(-1, 1).Draw(t, label) * math.Pow(10, float64(rapid.IntRange(-300, 300).Draw(t, label+" exponent")))
}

// near requires written to be v to four significant digits at least, or
// 0 for a negligible share of other.
func near(t *rapid.T, v, other, written float64, text string) {
	if written == 0 && v != 0 {
		require.Less(t, math.Abs(v), negligible*math.Abs(other), "%q writes %v as 0", text, v)
		return
	}
	if v == 0 {
		require.Zero(t, written, "%q writes 0 as %v", text, written)
		return
	}
	require.InEpsilon(t, v, written, 5e-4, "%q writes %v", text, v)
}
