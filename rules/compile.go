package rules

import (
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/file"
	"go.yaml.in/yaml/v3"
)

// ParamsVar is the expression variable holding the resolved params, e.g.
// `error_rate < float(params.max_error_rate)`.
const ParamsVar = "params"

// maxExprNodes bounds an expression's size: rules are short, and a bound
// keeps a pathological file from slowing a reload.
const maxExprNodes = 2000

// Sample is one labelled series in a multi-series query result, as rule
// expressions see it: `all(lag, .value < 1000)`.
type Sample struct {
	Labels map[string]string `expr:"labels" json:"labels"`
	// Value is the instant value, or the last point of a range query.
	Value float64 `expr:"value" json:"value"`
	// Values are the points of a range query, oldest first.
	Values []float64 `expr:"values" json:"values,omitempty"`
}

var comparisonOps = map[string]string{
	"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "==",
}

// Negate returns the operator that holds when op does not, for reasons such
// as "0.034 > 0.01" when the rule said `error_rate <= 0.01`.
func Negate(op string) string { return comparisonOps[op] }

// envTypes is the typed environment rules of pol compile against: each query
// has the Go type its results will have, so a rule that compares a list with
// a number does not load.
func envTypes(pol *Policy) map[string]any {
	env := make(map[string]any, len(pol.Queries)+1)
	for _, q := range pol.Queries {
		switch q.ValueKind() {
		case KindScalar:
			env[q.Name] = float64(0)
		case KindRange:
			env[q.Name] = []float64{}
		case KindSamples:
			env[q.Name] = []Sample{}
		case KindRecord:
			env[q.Name] = recordZero(q.Kind)
		}
	}
	env[ParamsVar] = map[string]string{}
	return env
}

func exprOptions(env map[string]any, extra ...expr.Option) []expr.Option {
	opts := []expr.Option{expr.Env(env), expr.MaxNodes(maxExprNodes)}
	opts = append(opts, exprFunctions...)
	return append(opts, extra...)
}

// compileRule compiles a rule's expression once, records the queries it
// reads and, for a top-level comparison, how to explain it.
func compileRule(r *Rule, pol *Policy) error {
	env := envTypes(pol)
	prog, err := expr.Compile(r.Expr, exprOptions(env, expr.AsBool())...)
	if err != nil {
		return err
	}
	r.Program = prog
	root := prog.Node()
	var unknown []string
	var inputs []string
	// Record queries read through a member (api.up) only read that field;
	// any other use reads the whole record.
	recordUse := map[string][]string{}
	viaMember := map[*ast.IdentifierNode]bool{}
	ast.Find(root, func(n ast.Node) bool {
		m, ok := n.(*ast.MemberNode)
		if !ok {
			return false
		}
		id, ok := m.Node.(*ast.IdentifierNode)
		if !ok {
			return false
		}
		prop, ok := m.Property.(*ast.StringNode)
		switch {
		case id.Value == ParamsVar:
			if ok && pol.params[prop.Value] == nil {
				unknown = append(unknown, prop.Value)
			}
		case pol.queries[id.Value] != nil && pol.queries[id.Value].ValueKind() == KindRecord && ok:
			viaMember[id] = true
			if !slices.Contains(recordUse[id.Value], prop.Value) {
				recordUse[id.Value] = append(recordUse[id.Value], prop.Value)
			}
		}
		return false
	})
	ast.Find(root, func(n ast.Node) bool {
		id, ok := n.(*ast.IdentifierNode)
		if !ok || pol.queries[id.Value] == nil {
			return false
		}
		if !slices.Contains(inputs, id.Value) {
			inputs = append(inputs, id.Value)
		}
		if q := pol.queries[id.Value]; q.ValueKind() == KindRecord && !viaMember[id] {
			recordUse[id.Value] = RecordFields(q.Kind)
		}
		return false
	})
	for name, fields := range recordUse {
		if r.RecordFields == nil {
			r.RecordFields = map[string][]string{}
		}
		r.RecordFields[name] = fields
	}
	if len(unknown) > 0 {
		return fmt.Errorf("expression references unknown param %q (declare it under spec.params)", unknown[0])
	}
	for _, q := range pol.Queries {
		if slices.Contains(inputs, q.Name) {
			r.Inputs = append(r.Inputs, q)
			r.InputNames = append(r.InputNames, q.Name)
		}
	}
	if len(r.Inputs) == 0 {
		return errors.New("expression reads no query: a rule must test at least one query result")
	}
	r.Explain = explain(root, env, pol)
	r.Condition = newNative(prog, pol).condition(root)
	return nil
}

// explain prepares both sides of a top-level numeric comparison.
func explain(root ast.Node, env map[string]any, pol *Policy) *Sides {
	bin, ok := root.(*ast.BinaryNode)
	if !ok || comparisonOps[bin.Operator] == "" || !numeric(bin.Left) || !numeric(bin.Right) {
		return nil
	}
	left, ok1 := operand(bin.Left, env, pol)
	right, ok2 := operand(bin.Right, env, pol)
	if !ok1 || !ok2 {
		return nil
	}
	return &Sides{Op: bin.Operator, Left: left, Right: right}
}

func numeric(n ast.Node) bool {
	t := n.Type()
	if t == nil {
		return false
	}
	switch t.Kind() {
	case reflect.Float64, reflect.Float32, reflect.Int, reflect.Int64, reflect.Int32:
		return true
	}
	return false
}

func operand(n ast.Node, env map[string]any, pol *Policy) (Operand, bool) {
	o := Operand{Text: n.String()}
	switch n := n.(type) {
	case *ast.IdentifierNode:
		if q := pol.queries[n.Value]; q != nil && q.ValueKind() == KindScalar {
			o.Ident = n.Value
			o.Number = native{pol: pol}.number(n)
			return o, true
		}
	case *ast.FloatNode:
		o.Const, o.IsConst = n.Value, true
		o.Written = string(AppendValue(nil, o.Const))
		return o, true
	case *ast.IntegerNode:
		o.Const, o.IsConst = float64(n.Value), true
		o.Written = string(AppendValue(nil, o.Const))
		return o, true
	}
	prog, err := expr.Compile(o.Text, exprOptions(env, expr.AsFloat64())...)
	if err != nil {
		return o, false
	}
	o.Program = prog
	// From the side's own program, not from n: that program is what
	// gives the side's value, and n's text, parsed again, need not be the
	// same tree (-0.0 prints as -0, which parses as the integer 0).
	o.Number = newNative(prog, pol).number(prog.Node())
	return o, true
}

// exprError places an expr compile error in the file: the expression's own
// line and column are relative to the expression text, so they are shifted
// by where that text starts. expr's message and caret snippet are kept whole.
func (p *parser) exprError(n *yaml.Node, s scope, err error) {
	line, col := n.Line, n.Column
	var fe *file.Error
	if errors.As(err, &fe) && fe.Line > 0 {
		switch n.Style {
		case yaml.LiteralStyle, yaml.FoldedStyle:
			line = n.Line + fe.Line
			col = p.indent(line) + fe.Column
		case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
			line = n.Line + fe.Line - 1
			if fe.Line == 1 {
				col = n.Column + 1 + fe.Column
			}
		default:
			line = n.Line + fe.Line - 1
			if fe.Line == 1 {
				col = n.Column + fe.Column
			}
		}
	}
	p.errorAt(line, col, s, fmt.Errorf("bad expr: %w", err))
}

// reserved reports whether a query name would shadow part of the expression
// language.
func reserved(name string) bool {
	if _, ok := builtin.Index[name]; ok {
		return true
	}
	if _, ok := exprFunctionNames[name]; ok {
		return true
	}
	switch name {
	case ParamsVar, HourVar, MinuteVar, WeekdayVar, "true", "false", "nil", "not", "and", "or", "in", "matches",
		"contains", "startsWith", "endsWith", "let", "if", "else", "now":
		return true
	}
	return false
}
