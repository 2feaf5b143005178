package rules

import (
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"github.com/stretchr/testify/require"
)

// testValues is Values over a map env, as analysis builds it: a query
// without a number has no entry.
type testValues map[string]any

func (v testValues) Scalar(i int) (float64, bool) {
	f, ok := v[[]string{"a", "b", "c"}[i]].(float64)
	return f, ok
}

func (v testValues) Param(name string) (string, bool) {
	s, ok := v[ParamsVar].(map[string]string)[name]
	return s, ok
}

// exprGen writes random expressions over three scalar queries, a range
// query and a param, mostly of what native.go compiles.
type exprGen struct{ rng *rand.Rand }

func (g exprGen) pick(s ...string) string { return s[g.rng.Intn(len(s))] }

func (g exprGen) num(depth int) string {
	if depth <= 0 {
		return g.pick("a", "b", "c", "0", "1", "2", "-1", "0.5", "1e-3", "2.5", "-0.0", "0.0", "1e300",
			"9007199254740993", "float(params.limit)")
	}
	d := depth - 1
	switch g.rng.Intn(9) {
	case 0, 1:
		return g.num(0)
	case 2:
		return "-" + g.num(d)
	case 3, 4:
		return "(" + g.num(d) + " " + g.pick("+", "-", "*", "/", "**", "^") + " " + g.num(d) + ")"
	case 5:
		return g.pick("pctChange", "ratio") + "(" + g.num(d) + ", " + g.num(d) + ")"
	case 6:
		return "safeDiv(" + g.num(d) + ", " + g.num(d) + ", " + g.num(d) + ")"
	case 7:
		return "float(" + g.num(d) + ")"
	}
	// Left to the program.
	return g.pick("float(len(pts))", "mean(pts)", "(a > b ? a : b)", "float(1 % 2)", "+a")
}

func (g exprGen) cond(depth int) string {
	d := depth - 1
	if depth > 0 {
		switch g.rng.Intn(6) {
		case 0:
			return "(" + g.cond(d) + " " + g.pick("&&", "||", "and", "or") + " " + g.cond(d) + ")"
		case 1:
			return g.pick("!", "not ") + "(" + g.cond(d) + ")"
		}
	}
	return g.num(g.rng.Intn(3)) + " " + g.pick("<", "<=", ">", ">=", "==", "!=") + " " + g.num(g.rng.Intn(3))
}

// TestNativeAgreesWithProgram holds what the Go-compiled conditions and
// sides say to what their programs give, on random expressions and
// values, NaN, infinities, signed zeros and params that do not parse
// included: whenever the Go function can tell, the program gives that
// value and no error.
func TestNativeAgreesWithProgram(t *testing.T) {
	pols, err := Parse("native.yaml", []byte(`
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: native}
spec:
  params:
    limit: {default: "0.01", pattern: '.*'}
  queries:
    a: {prometheus: 'a'}
    b: {prometheus: 'b'}
    c: {prometheus: 'c'}
    pts: {prometheus: 'pts', range: 5m, step: 1m}
  rules:
    - {name: r, expr: a > 0}
`))
	require.NoError(t, err)
	pol := pols[0]

	nan, inf := math.NaN(), math.Inf(1)
	values := []float64{0, math.Copysign(0, -1), 1, -1, 2, 0.5, 0.004, 0.01, 1e300, -1e300, 5e-324, nan, inf, -inf}
	limits := []string{"0.01", "1e-3", "-0", "5", "1.2.3", "1e400", "", "NaN", "-Inf", "0x1p-3", "1_0"}
	rng := rand.New(rand.NewSource(1))
	gen := exprGen{rng}
	var machine vm.VM
	var compiled, told, sides int
	for i := 0; i < 4000; i++ {
		r := &Rule{Name: "r", Expr: gen.cond(3)}
		if err := compileRule(r, pol); err != nil {
			continue
		}
		for j := 0; j < 20; j++ {
			env := testValues{}
			for _, q := range []string{"a", "b", "c"} {
				switch n := rng.Intn(12); {
				case n == 0:
					// No value: the query has none, or not a number.
				case n < 4:
					env[q] = (rng.Float64() - 0.5) * math.Pow(10, float64(rng.Intn(12)-6))
				default:
					env[q] = values[rng.Intn(len(values))]
				}
			}
			env["pts"] = []float64{1, 2, values[rng.Intn(len(values))]}
			switch n := rng.Intn(10); {
			case n == 0:
				env[ParamsVar] = map[string]string{}
			case n == 1:
				env[ParamsVar] = map[string]string(nil)
			default:
				env[ParamsVar] = map[string]string{"limit": limits[rng.Intn(len(limits))]}
			}

			if r.Condition != nil {
				compiled++
				if holds, ok := r.Condition(env); ok {
					told++
					out, err := machine.Run(r.Program, map[string]any(env))
					require.NoError(t, err, "%s with %v", r.Expr, env)
					require.Equal(t, out, holds, "%s with %v", r.Expr, env)
				}
			}
			if r.Explain == nil {
				continue
			}
			for _, o := range []Operand{r.Explain.Left, r.Explain.Right} {
				if o.Number == nil {
					continue
				}
				v, ok := o.Number(env)
				if !ok {
					continue
				}
				sides++
				prog := o.Program
				if prog == nil { // a query or a constant
					prog, err = expr.Compile(o.Text, exprOptions(envTypes(pol), expr.AsFloat64())...)
					require.NoError(t, err)
				}
				out, err := machine.Run(prog, map[string]any(env))
				require.NoError(t, err, "%s with %v", o.Text, env)
				require.True(t, same(out.(float64), v), "%s with %v: %v, program %v", o.Text, env, v, out)
			}
		}
	}
	// The expressions are mostly of what compiles, and mostly told.
	t.Logf("%d compiled conditions run, %d told, %d sides told", compiled, told, sides)
	require.Greater(t, compiled, 20000)
	require.Greater(t, told, compiled/3)
	require.Greater(t, sides, 10000)
}

// same reports whether a and b are the same float64, -0 apart from 0 and
// any NaN like another.
func same(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Float64bits(a) == math.Float64bits(b)
}

// TestNativeCompiles pins what is compiled to Go and what is left to the
// program.
func TestNativeCompiles(t *testing.T) {
	pols, err := Parse("native.yaml", []byte(`
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: native}
spec:
  params:
    limit: {default: "0.01"}
  queries:
    a: {prometheus: 'a'}
    b: {prometheus: 'b'}
    pts: {prometheus: 'pts', range: 5m, step: 1m}
    many: {prometheus: 'many', maxSeries: 5}
    api:
      http: {url: "http://api:8080/healthz"}
  rules:
    - {name: ident, expr: a <= 0.01}
    - {name: param, expr: 'a <= float(params.limit)'}
    - {name: arithmetic, expr: a <= b * 1.5 + 0.001}
    - {name: helpers, expr: 'pctChange(a, b) <= 25 && ratio(a, b) >= 0.8 || safeDiv(a, b, 1) < 2'}
    - {name: power, expr: -a ** 2 < b ^ 0.5 / 3}
    - {name: not, expr: '!(a < b) and not (b < a)'}
    - {name: int-side, expr: len(pts) > 3}
    - {name: mean, expr: mean(pts) < a}
    - {name: record, expr: api.latency_ms < 300}
    - {name: samples, expr: 'all(many, .value < a)'}
    - {name: modulo, expr: float(len(pts) % 2) < a}
    - {name: ternary, expr: '(a > 0 ? a : b) < 1'}
`))
	require.NoError(t, err)
	var got []string
	for _, r := range pols[0].Rules {
		line := fmt.Sprintf("%s: condition=%t", r.Name, r.Condition != nil)
		if e := r.Explain; e != nil {
			line += fmt.Sprintf(" sides=%t/%t", e.Left.Number != nil, e.Right.Number != nil)
		}
		got = append(got, line)
	}
	require.Equal(t, strings.TrimSpace(`
ident: condition=true sides=true/false
param: condition=true sides=true/true
arithmetic: condition=true sides=true/true
helpers: condition=true
power: condition=true sides=true/true
not: condition=true
int-side: condition=false sides=false/false
mean: condition=false
record: condition=false sides=false/false
samples: condition=false
modulo: condition=false sides=false/true
ternary: condition=false sides=false/false
`), strings.Join(got, "\n"))
}
