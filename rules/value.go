package rules

import (
	"math"
	"strconv"
)

// AppendValue appends v as reasons and tables write numbers: integers
// without a fraction, large values with one decimal, others with four
// significant digits, so "0.03333333333" reads "0.03333". It lives here,
// beside Sides, so that a comparison's constants are written once, when
// the policy loads (Operand.Written). A comparison's two sides are written
// with AppendSides, which adds digits where four would mislead.
func AppendValue(b []byte, v float64) []byte {
	return appendDigits(b, v, 4)
}

// appendDigits is AppendValue with digits significant digits for values
// that are neither whole nor large; -1 writes the fewest digits that read
// back as v exactly.
func appendDigits(b []byte, v float64, digits int) []byte {
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
		if digits < 0 {
			return strconv.AppendFloat(b, v, 'f', -1, 64)
		}
		// One decimal, or more once digits asks for more than the
		// whole part holds.
		return strconv.AppendFloat(b, v, 'f', max(1, digits-intDigits(v)), 64)
	}
	return strconv.AppendFloat(b, v, 'g', digits, 64)
}

// intDigits is the number of digits of v's whole part, for 1000 <= |v|.
func intDigits(v float64) int { return int(math.Log10(math.Abs(v))) + 1 }

// negligible is how small a measured side may be, relative to the side it
// is compared with, before a reason shows it as 0: a billionth is far
// below the four digits the other side shows, and far above the rounding
// noise of float arithmetic (PromQL's rate of a flat counter gives
// -1.501e-13, not 0).
const negligible = 1e-9

// Readable returns v as a reason shows it beside other, the side it is
// compared with: 0 when v is a negligible share of other, so a reason reads
// "0 <= 25" rather than "-1.501e-13 <= 25"; v otherwise. Zeroing never
// changes which way the comparison goes: v and 0 are both far nearer to
// each other than to other. Constants a policy wrote are shown as written,
// so callers apply Readable to measured sides only.
func Readable(v, other float64) float64 {
	if v != 0 && math.Abs(v) < negligible*math.Abs(other) {
		return 0
	}
	return v
}

// AppendSides appends the comparison "left op right", op being the operator
// that held, with each side as AppendValue writes it, unless rounding to
// four digits would make the text claim something false: 25.00001 > 25
// must not read "25 > 25", nor 0.99996 < 0.99997 read "1 < 1". Then both
// sides get more digits, as few as make the written comparison hold on the
// written numbers; at worst each is written exactly. A NaN side holds no
// comparison, so it is written as is.
func AppendSides(b []byte, left float64, op string, right float64) []byte {
	start := len(b)
	for _, digits := range [...]int{4, 5, 6, 7, 8, 10, 12, 15, -1} {
		b = appendDigits(b[:start], left, digits)
		mid := len(b)
		b = append(b, ' ')
		b = append(b, op...)
		b = append(b, ' ')
		rs := len(b)
		b = appendDigits(b, right, digits)
		if !Misleads(b[start:mid], op, b[rs:]) {
			return b
		}
	}
	return b
}

// Misleads reports whether the written comparison "left op right" is false
// when read back, as a person reads it: the numbers as written, compared
// with op. Text that does not read as two numbers, or a NaN, is taken as
// it stands.
func Misleads(left []byte, op string, right []byte) bool {
	l, err := strconv.ParseFloat(string(left), 64)
	if err != nil || math.IsNaN(l) {
		return false
	}
	r, err := strconv.ParseFloat(string(right), 64)
	if err != nil || math.IsNaN(r) {
		return false
	}
	return !Holds(op, l, r)
}

// Holds compares two float64s with one of the comparison operators ("<",
// "<=", ">", ">=", "==", "!="); an unknown operator holds for no values.
func Holds(op string, left, right float64) bool {
	switch op {
	case "<":
		return left < right
	case "<=":
		return left <= right
	case ">":
		return left > right
	case ">=":
		return left >= right
	case "==":
		return left == right
	case "!=":
		return left != right
	}
	return false
}
