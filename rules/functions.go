package rules

import (
	"math"

	"github.com/expr-lang/expr"
)

// Helper functions for rule expressions. Each has an explicit signature so
// that a wrong argument type is a load error, and none panics.
//
// Relative comparisons against a baseline are where hand-written rules go
// wrong (a baseline of zero, a negative change), so the zero cases are
// decided once here:
//
//	pctChange(canary, baseline)   percent change from baseline; 0 when both
//	                              are 0, ±Inf when only the baseline is 0
//	ratio(canary, baseline)       canary / baseline; 1 when both are 0,
//	                              +Inf when only the baseline is 0
//	safeDiv(a, b, fallback)       a / b, or fallback when b is 0
//	within(a, b, pct)             |a - b| is at most pct percent of |b|
//	isNaN(x), isInf(x)            as in Argo Rollouts conditions
//	mannwhitney(canary, baseline) a Mann-Whitney test over two range
//	                              queries: .p, .estimate, .low, .high, .w,
//	                              .ratio
var exprFunctions = []expr.Option{
	expr.Function("pctChange", func(args ...any) (any, error) {
		return PctChange(args[0].(float64), args[1].(float64)), nil
	}, new(func(float64, float64) float64)),
	expr.Function("ratio", func(args ...any) (any, error) {
		return Ratio(args[0].(float64), args[1].(float64)), nil
	}, new(func(float64, float64) float64)),
	expr.Function("safeDiv", func(args ...any) (any, error) {
		return SafeDiv(args[0].(float64), args[1].(float64), args[2].(float64)), nil
	}, new(func(float64, float64, float64) float64)),
	expr.Function("within", func(args ...any) (any, error) {
		a, b, pct := args[0].(float64), args[1].(float64), args[2].(float64)
		return math.Abs(a-b) <= math.Abs(b)*pct/100, nil
	}, new(func(float64, float64, float64) bool)),
	expr.Function("isNaN", func(args ...any) (any, error) {
		return math.IsNaN(args[0].(float64)), nil
	}, new(func(float64) bool)),
	expr.Function("isInf", func(args ...any) (any, error) {
		return math.IsInf(args[0].(float64), 0), nil
	}, new(func(float64) bool)),
	mannWhitneyFunction,
}

var exprFunctionNames = map[string]struct{}{
	"pctChange": {}, "ratio": {}, "safeDiv": {}, "within": {}, "isNaN": {}, "isInf": {}, "mannwhitney": {},
}

// PctChange is the percent change from base to v. It is 0 when both are 0
// and ±Inf when only base is 0, so that "no more than 20% worse" fails when a
// baseline without errors meets a canary with some.
func PctChange(v, base float64) float64 {
	if base == 0 {
		if v == 0 {
			return 0
		}
		return math.Copysign(math.Inf(1), v)
	}
	return (v - base) / math.Abs(base) * 100
}

// Ratio is v / base, 1 when both are 0 and +Inf (signed as v) when only base
// is 0.
func Ratio(v, base float64) float64 {
	if base == 0 {
		if v == 0 {
			return 1
		}
		return math.Copysign(math.Inf(1), v)
	}
	return v / base
}

// SafeDiv is a / b, or fallback when b is 0.
func SafeDiv(a, b, fallback float64) float64 {
	if b == 0 {
		return fallback
	}
	return a / b
}
