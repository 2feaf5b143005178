package rules

import (
	"math"
	"reflect"
	"strconv"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
)

// Most rules are a comparison, or a few joined by && and ||, of sums and
// products of query values, constants and params. Running such a rule's
// program costs many times what the arithmetic does: the VM boxes every
// number it pushes. So, when a policy loads, such expressions are also
// compiled into plain Go functions (Number and Condition) which analysis
// calls instead.
//
// They must give exactly what the program gives. They do because each
// step is the one expr's VM takes for the same node of the same checked
// and optimized tree (expr v1.17, vm/runtime): float64 arithmetic on
// float64 operands, an integer literal converted to float64 first, the
// helper functions themselves, strconv.ParseFloat for float(params.x), &&
// and || short-circuited, and a float zero literal with the sign of the
// program's zero constant (see native.zero). Only nodes whose type is
// float64 (or bool, for conditions) are compiled; an int-typed expression
// such as len(x) keeps int arithmetic in expr and is left to the program,
// as is anything else not listed here. Where expr would fail (a query
// without a number, a param that does not parse) the function reports
// that it cannot tell, and the program decides, error and all. None of
// these steps spends expr's memory budget. rules' TestNativeAgreesWithProgram
// and analysis' TestDecideGoCompiledAgreesWithPrograms hold the two to
// the same results.

// Values is what Go-compiled expressions read: one evaluation's query
// results and params.
type Values interface {
	// Scalar returns the number the query at index holds, and false
	// when it holds none: an expression would not see a float64 there.
	Scalar(index int) (float64, bool)
	// Param returns a param's value as expressions see it.
	Param(name string) (string, bool)
}

// Number is a numeric expression compiled to Go. It returns false when it
// cannot compute what the program would; the program then decides.
type Number func(Values) (float64, bool)

// Condition is a boolean expression compiled to Go, with Number's false.
type Condition func(Values) (holds, ok bool)

// native compiles the tree of one program to Go.
type native struct {
	pol *Policy
	// zero is the value the program pushes for every float64 zero
	// literal in it: expr's compiler keeps one constant per value, found
	// by ==, and -0 == 0, so the first zero it meets gives its sign to
	// all (a program for `safeDiv(1, -0.0, 0.0)` passes -0 twice).
	zero float64
}

func newNative(prog *vm.Program, pol *Policy) native {
	c := native{pol: pol}
	for _, k := range prog.Constants {
		if f, ok := k.(float64); ok && f == 0 {
			c.zero = f
			break
		}
	}
	return c
}

// constant is the float64 the program pushes for a float64 literal v.
func (c native) constant(v float64) Number {
	if v == 0 {
		v = c.zero
	}
	return func(Values) (float64, bool) { return v, true }
}

// condition compiles a boolean expression: a comparison of two
// numbers, or conditions joined by &&, || and !. It returns nil for any
// other.
func (c native) condition(n ast.Node) Condition {
	switch n := n.(type) {
	case *ast.UnaryNode:
		if n.Operator != "!" && n.Operator != "not" {
			return nil
		}
		x := c.condition(n.Node)
		if x == nil {
			return nil
		}
		return func(v Values) (bool, bool) {
			holds, ok := x(v)
			return !holds, ok
		}
	case *ast.BinaryNode:
		switch n.Operator {
		case "&&", "and", "||", "or":
			l, r := c.condition(n.Left), c.condition(n.Right)
			if l == nil || r == nil {
				return nil
			}
			// As the program does, the right side is only looked at
			// when the left one does not decide.
			if n.Operator == "&&" || n.Operator == "and" {
				return func(v Values) (bool, bool) {
					if holds, ok := l(v); !ok || !holds {
						return false, ok
					}
					return r(v)
				}
			}
			return func(v Values) (bool, bool) {
				if holds, ok := l(v); !ok || holds {
					return holds, ok
				}
				return r(v)
			}
		}
		if Negate(n.Operator) == "" {
			return nil
		}
		l, r := c.operand(n.Left), c.operand(n.Right)
		if l == nil || r == nil {
			return nil
		}
		cmp := comparison(n.Operator)
		return func(v Values) (bool, bool) {
			a, ok := l(v)
			if !ok {
				return false, false
			}
			b, ok := r(v)
			if !ok {
				return false, false
			}
			return cmp(a, b), true
		}
	}
	return nil
}

// comparison is how expr compares two float64s (runtime.Less and the
// others): as Go does.
func comparison(op string) func(a, b float64) bool {
	switch op {
	case "<":
		return func(a, b float64) bool { return a < b }
	case "<=":
		return func(a, b float64) bool { return a <= b }
	case ">":
		return func(a, b float64) bool { return a > b }
	case ">=":
		return func(a, b float64) bool { return a >= b }
	case "==":
		return func(a, b float64) bool { return a == b }
	}
	return func(a, b float64) bool { return a != b }
}

// operand compiles an operand of arithmetic, a comparison or float(): a
// float64 expression, or an integer literal. The program pushes an int
// literal as an int, which runtime.Add and the others, and float(),
// convert with float64(int) when they meet it; a literal the checker
// typed float64 (an argument of a helper) it pushes as float64(int),
// one of the program's float64 constants.
func (c native) operand(n ast.Node) Number {
	i, ok := n.(*ast.IntegerNode)
	if !ok {
		return c.number(n)
	}
	switch t := i.Type(); {
	case t == nil || t == reflect.TypeFor[int]():
		v := float64(i.Value)
		return func(Values) (float64, bool) { return v, true }
	case t == reflect.TypeFor[float64]():
		return c.constant(float64(i.Value))
	}
	return nil
}

// number compiles a float64 expression, or returns nil.
func (c native) number(n ast.Node) Number {
	if n.Type() != reflect.TypeFor[float64]() {
		return nil
	}
	switch n := n.(type) {
	case *ast.FloatNode:
		return c.constant(n.Value)
	case *ast.IdentifierNode:
		// Only a scalar query is a float64 in the env; an identifier
		// reached through the nodes compiled here is never a let or
		// predicate variable, as those nodes are not compiled.
		q := c.pol.queries[n.Value]
		if q == nil || q.ValueKind() != KindScalar {
			return nil
		}
		i := q.Index
		return func(v Values) (float64, bool) { return v.Scalar(i) }
	case *ast.UnaryNode:
		if n.Operator != "-" {
			return nil
		}
		x := c.number(n.Node)
		if x == nil {
			return nil
		}
		return func(v Values) (float64, bool) {
			a, ok := x(v)
			return -a, ok
		}
	case *ast.BinaryNode:
		return c.arithmetic(n)
	case *ast.CallNode:
		return c.call(n)
	case *ast.BuiltinNode:
		if n.Name != "float" || len(n.Arguments) != 1 {
			return nil
		}
		if name, ok := paramRef(n.Arguments[0]); ok {
			// builtin.Float parses a string with strconv.ParseFloat and
			// fails on its error, ErrRange included.
			return func(v Values) (float64, bool) {
				s, ok := v.Param(name)
				if !ok {
					return 0, false
				}
				f, err := strconv.ParseFloat(s, 64)
				return f, err == nil
			}
		}
		// float of a number is that number as a float64.
		return c.operand(n.Arguments[0])
	}
	return nil
}

// arithmetic compiles + - * / and ** between float64s and integer
// literals, as runtime.Add, Subtract, Multiply, Divide and Exponent compute
// them. Each result is converted to float64 explicitly: the Go spec lets a
// compiler fuse x*y+z into one rounding, and an explicit conversion is
// what forbids that; expr's VM rounds each step.
func (c native) arithmetic(n *ast.BinaryNode) Number {
	var op func(a, b float64) float64
	switch n.Operator {
	case "+":
		op = func(a, b float64) float64 { return float64(a + b) }
	case "-":
		op = func(a, b float64) float64 { return float64(a - b) }
	case "*":
		op = func(a, b float64) float64 { return float64(a * b) }
	case "/":
		op = func(a, b float64) float64 { return float64(a / b) }
	case "**", "^":
		op = math.Pow
	default:
		return nil
	}
	l, r := c.operand(n.Left), c.operand(n.Right)
	if l == nil || r == nil {
		return nil
	}
	return func(v Values) (float64, bool) {
		a, ok := l(v)
		if !ok {
			return 0, false
		}
		b, ok := r(v)
		if !ok {
			return 0, false
		}
		return op(a, b), true
	}
}

// call compiles a call of one of the helpers that take and return
// float64s: the same Go functions the program calls.
func (c native) call(n *ast.CallNode) Number {
	callee, ok := n.Callee.(*ast.IdentifierNode)
	if !ok {
		return nil
	}
	args := make([]Number, len(n.Arguments))
	for i, a := range n.Arguments {
		// The checker makes every argument a float64, as the helpers'
		// signatures say; anything else is left to the program.
		if args[i] = c.number(a); args[i] == nil {
			return nil
		}
	}
	var fn2 func(a, b float64) float64
	switch {
	case callee.Value == "pctChange" && len(args) == 2:
		fn2 = PctChange
	case callee.Value == "ratio" && len(args) == 2:
		fn2 = Ratio
	case callee.Value == "safeDiv" && len(args) == 3:
		a, b, fallback := args[0], args[1], args[2]
		return func(v Values) (float64, bool) {
			x, ok := a(v)
			if !ok {
				return 0, false
			}
			y, ok := b(v)
			if !ok {
				return 0, false
			}
			z, ok := fallback(v)
			if !ok {
				return 0, false
			}
			return SafeDiv(x, y, z), true
		}
	default:
		return nil
	}
	a, b := args[0], args[1]
	return func(v Values) (float64, bool) {
		x, ok := a(v)
		if !ok {
			return 0, false
		}
		y, ok := b(v)
		if !ok {
			return 0, false
		}
		return fn2(x, y), true
	}
}

// paramRef reports whether n is params.name, and the name.
func paramRef(n ast.Node) (string, bool) {
	m, ok := n.(*ast.MemberNode)
	if !ok || m.Optional || m.Method {
		return "", false
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || id.Value != ParamsVar {
		return "", false
	}
	prop, ok := m.Property.(*ast.StringNode)
	if !ok {
		return "", false
	}
	return prop.Value, true
}
