package rules

import (
	"errors"
	"fmt"
	"slices"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"go.yaml.in/yaml/v3"
)

// Variables decision rules read besides the queries and params: the
// evaluation time in the policy's time zone.
const (
	HourVar    = "hour"    // 0-23
	MinuteVar  = "minute"  // 0-59
	WeekdayVar = "weekday" // 0 (Sunday) to 6 (Saturday)
)

// decisionEnv is the typed environment of decision rules.
func decisionEnv(pol *Policy) map[string]any {
	env := envTypes(pol)
	env[HourVar], env[MinuteVar], env[WeekdayVar] = 0, 0, 0
	return env
}

func (p *parser) decisionRules(n *yaml.Node, pol *Policy, s scope) {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, s, "decision.rules must be a list")
		return
	}
	seen := map[string]bool{}
	for i, rn := range n.Content {
		d := &DecisionRule{Action: ActionRollback, Line: rn.Line, Column: rn.Column}
		var exprNode *yaml.Node
		rs := s
		rs.rule = fmt.Sprintf("decision #%d", i+1)
		p.fields(rn, rs, "decision rule", map[string]func(k, v *yaml.Node){
			"name": func(_, v *yaml.Node) {
				d.Name, _ = p.str(v, rs, "name")
				rs.rule = d.Name
				if !nameRE.MatchString(d.Name) {
					p.errorf(v, rs, "decision rule name %q must be a Kubernetes-style name", d.Name)
				} else if seen[d.Name] {
					p.errorf(v, rs, "duplicate decision rule name")
				}
				seen[d.Name] = true
			},
			"expr": func(_, v *yaml.Node) { exprNode = v },
			"action": func(_, v *yaml.Node) {
				switch a := Action(v.Value); a {
				case ActionRollback, ActionPause:
					d.Action = a
				default:
					p.errorf(v, rs, "decision rule action must be rollback or pause, got %q", v.Value)
				}
			},
		})
		if d.Name == "" {
			p.errorf(rn, rs, "decision rule needs a name")
		}
		if exprNode == nil {
			p.errorf(rn, rs, "decision rule needs an expr")
			continue
		}
		src, ok := p.str(exprNode, rs, "expr")
		if !ok {
			continue
		}
		d.Expr = src
		if err := compileDecision(d, pol); err != nil {
			p.exprError(exprNode, rs, err)
			continue
		}
		pol.Decision.Rules = append(pol.Decision.Rules, d)
	}
}

func compileDecision(d *DecisionRule, pol *Policy) error {
	prog, err := expr.Compile(d.Expr, exprOptions(decisionEnv(pol), expr.AsBool())...)
	if err != nil {
		return err
	}
	d.Program = prog
	var names []string
	ast.Find(prog.Node(), func(n ast.Node) bool {
		if id, ok := n.(*ast.IdentifierNode); ok && pol.queries[id.Value] != nil && !slices.Contains(names, id.Value) {
			names = append(names, id.Value)
		}
		return false
	})
	for _, q := range pol.Queries {
		if slices.Contains(names, q.Name) {
			d.Inputs = append(d.Inputs, q)
		}
	}
	if len(d.Inputs) == 0 {
		return errors.New("a decision rule must read at least one query: one on the time alone would decide every analysis")
	}
	return nil
}
