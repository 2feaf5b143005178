package traffic

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// IDFormat says what user IDs look like, which decides how they are split
// into buckets.
type IDFormat string

// ID formats.
const (
	// IDNumeric is a decimal ID ("104729"). Its last Digits digits pick
	// its bucket: 100 buckets of 1% with 2 digits, 1000 of 0.1% with 3.
	// IDs shorter than that count as zero-padded ("7" is bucket 07).
	IDNumeric IDFormat = "numeric"
	// IDHex is an ID ending in hex digits, such as a UUID. Its last Digits
	// hex digits pick its bucket: 256 buckets of 0.39% with 2 digits, 4096
	// of 0.024% with 3. Letters match in either case.
	IDHex IDFormat = "hex"
)

// UserIDPattern returns a regular expression that matches a stable share of
// user IDs, and the share it really selects: the first n buckets of the
// ID's trailing digits, with n the bucket count nearest to the asked share.
// The same user is always in or out, and raising the share only adds users.
//
// The share is exact for IDs whose trailing digits are uniform, which is the
// case for random UUIDs and for sequential or hashed numeric IDs. It is in
// percent, 0 to 100; digits is 2 or 3 (0 means 2).
//
// The expression uses only character classes, alternation and anchors, so
// it means the same to PCRE (ingress-nginx) and RE2 (Envoy, most Gateway API
// implementations).
func UserIDPattern(format IDFormat, share float64, digits int) (pattern string, actual float64, err error) {
	if digits == 0 {
		digits = 2
	}
	if digits < 1 || digits > 3 {
		return "", 0, fmt.Errorf("digits %d: want 2 or 3", digits)
	}
	if math.IsNaN(share) || share < 0 || share > 100 {
		return "", 0, fmt.Errorf("share %v: want a percentage from 0 to 100", share)
	}
	var base int
	var class, prefix string
	switch format {
	case IDNumeric:
		base, class, prefix = 10, "[0-9]", "[0-9]*"
	case IDHex:
		base, class, prefix = 16, "[0-9a-fA-F]", ".*"
	default:
		return "", 0, fmt.Errorf("id format %q: want numeric or hex", format)
	}
	buckets := pow(base, digits)
	n := int(math.Round(share / 100 * float64(buckets)))
	actual = 100 * float64(n) / float64(buckets)
	switch n {
	case 0:
		return "", 0, errors.New("share rounds to no bucket at all: ask for more, or use more digits")
	case buckets:
		return "^" + prefix + "$", 100, nil
	}
	alts := []string{prefix + group(rangeRegex(n, digits, base, class))}
	if format == IDNumeric {
		// Shorter IDs are their own zero-padded buckets: "7" is 07.
		for k := digits - 1; k >= 1; k-- {
			if m := min(n, pow(base, k)); m > 0 {
				alts = append(alts, rangeRegex(m, k, base, class))
			}
		}
	}
	return "^(" + strings.Join(alts, "|") + ")$", actual, nil
}

// rangeRegex matches the fixed-width numbers of width digits, in base, from
// 0 up to n-1: whole leading digits first, then the remainder one digit
// further in.
func rangeRegex(n, width, base int, class string) string {
	full := pow(base, width)
	if n >= full {
		return repeat(class, width)
	}
	unit := pow(base, width-1)
	top, rem := n/unit, n%unit
	var parts []string
	if top > 0 {
		parts = append(parts, digitClass(0, top-1, base)+repeat(class, width-1))
	}
	if rem > 0 {
		parts = append(parts, digitClass(top, top, base)+group(rangeRegex(rem, width-1, base, class)))
	}
	return strings.Join(parts, "|")
}

func group(s string) string {
	if strings.Contains(s, "|") {
		return "(" + s + ")"
	}
	return s
}

func repeat(class string, n int) string {
	switch n {
	case 0:
		return ""
	case 1:
		return class
	}
	return class + "{" + fmt.Sprint(n) + "}"
}

// digitClass matches one digit from lo to hi; hex letters in both cases.
func digitClass(lo, hi, base int) string {
	const digits = "0123456789abcdef"
	if lo == hi && lo < 10 {
		return string(digits[lo])
	}
	var b strings.Builder
	b.WriteByte('[')
	span := func(a, z int) {
		b.WriteByte(digits[a])
		if z > a {
			b.WriteByte('-')
			b.WriteByte(digits[z])
		}
	}
	if lo < 10 {
		span(lo, min(hi, 9))
	}
	if base == 16 && hi >= 10 {
		a := max(lo, 10)
		span(a, hi)
		// The same letters upper case.
		b.WriteByte(digits[a] - 'a' + 'A')
		if hi > a {
			b.WriteByte('-')
			b.WriteByte(digits[hi] - 'a' + 'A')
		}
	}
	b.WriteByte(']')
	return b.String()
}

func pow(b, e int) int {
	r := 1
	for range e {
		r *= b
	}
	return r
}
