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
		var exprNode, weightNode, maxHoldNode *yaml.Node
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
			"expr":   func(_, v *yaml.Node) { exprNode = v },
			"dryRun": func(_, v *yaml.Node) { d.DryRun = p.boolean(v, rs, "dryRun") },
			"action": func(_, v *yaml.Node) {
				switch a := Action(v.Value); a {
				case ActionRollback, ActionPause, ActionHold, ActionCap:
					d.Action = a
				default:
					p.errorf(v, rs, "decision rule action must be rollback, pause, hold or cap, got %q", v.Value)
				}
			},
			"weight": func(_, v *yaml.Node) {
				weightNode = v
				d.Weight = p.integer(v, rs, "weight", 0, 100)
			},
			"maxHold": func(_, v *yaml.Node) {
				maxHoldNode = v
				if d.MaxHold = p.duration(v, rs, "maxHold"); d.MaxHold <= 0 && v.Value != "" {
					p.errorf(v, rs, "maxHold must be above 0")
				}
			},
		})
		if d.Name == "" {
			p.errorf(rn, rs, "decision rule needs a name")
		}
		p.holdFields(rn, weightNode, maxHoldNode, d, rs)
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

// holdFields checks what goes with a hold or cap action: a cap needs its
// weight, and only holds and caps take a weight or a maxHold.
func (p *parser) holdFields(rn, weight, maxHold *yaml.Node, d *DecisionRule, s scope) {
	switch d.Action {
	case ActionCap:
		if weight == nil {
			p.errorf(rn, s, "a cap decision rule needs weight: the canary weight, in percent, to lower the rollout to")
		}
	case ActionHold:
		if weight != nil {
			p.errorf(weight, s, "weight goes with action cap; a hold keeps the weight the rollout has")
		}
	default:
		if weight != nil {
			p.errorf(weight, s, "weight goes with action cap, not %s", d.Action)
		}
		if maxHold != nil {
			p.errorf(maxHold, s, "maxHold goes with action hold or cap, not %s", d.Action)
		}
	}
	if (d.Action == ActionHold || d.Action == ActionCap) && d.MaxHold == 0 {
		d.MaxHold = DefaultMaxHold
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
