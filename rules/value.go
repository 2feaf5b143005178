package rules

import (
	"math"
	"strconv"
)

// AppendValue appends v as reasons and tables write numbers: integers
// without a fraction, large values with one decimal, others with four
// significant digits, so "0.03333333333" reads "0.03333". It lives here,
// beside Sides, so that a comparison's constants are written once, when
// the policy loads (Operand.Written).
func AppendValue(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		// Whole numbers are most thresholds and many values, and
		// formatting an int is several times quicker than a float. -0
		// keeps its sign, as 'f' writes it.
		if v != 0 || !math.Signbit(v) {
			return strconv.AppendInt(b, int64(v), 10)
		}
		return strconv.AppendFloat(b, v, 'f', 0, 64)
	case math.Abs(v) >= 1000 && math.Abs(v) < 1e15:
		return strconv.AppendFloat(b, v, 'f', 1, 64)
	}
	return strconv.AppendFloat(b, v, 'g', 4, 64)
}
