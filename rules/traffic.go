package rules

import (
	"fmt"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"
)

// Traffic routers a policy may name.
const (
	RouterNginx      = "nginx"
	RouterGatewayAPI = "gatewayapi"
)

// What a latched rollback does to traffic.
const (
	OnRollbackZero     = "zero"
	OnRollbackStepDown = "stepDown"
	OnRollbackNone     = "none"
)

// traffic parses a policy's traffic section. Object names are templates
// over the params, like queries, so one policy serves every pipeline.
func (p *parser) traffic(n *yaml.Node, pol *Policy, s scope) *Traffic {
	t := &Traffic{Fields: map[string]*template.Template{}, FieldText: map[string]string{}, OnRollback: OnRollbackZero,
		Line: n.Line, Column: n.Column}
	field := func(name string) func(_, v *yaml.Node) {
		return func(_, v *yaml.Node) {
			text, ok := p.str(v, s, "traffic."+name)
			if !ok {
				return
			}
			tmpl, err := parseTemplate("traffic."+name, text)
			if err != nil {
				p.errorf(v, s, "traffic.%s: bad template: %v", name, err)
				return
			}
			for _, ref := range templateRefs(tmpl) {
				if pol.params[ref.name] == nil {
					p.errorf(v, s, "traffic.%s: template references unknown param %q (declare it under spec.params)", name, ref.name)
				}
			}
			t.Fields[name], t.FieldText[name] = tmpl, text
		}
	}
	var routerNode, stepDownNode *yaml.Node
	p.fields(n, s, "traffic", map[string]func(k, v *yaml.Node){
		"router":           func(_, v *yaml.Node) { routerNode = v; t.Router, _ = p.str(v, s, "traffic.router") },
		"namespace":        field("namespace"),
		"ingress":          field("ingress"),
		"httpRoute":        field("httpRoute"),
		"stableService":    field("stableService"),
		"canaryService":    field("canaryService"),
		"annotationPrefix": field("annotationPrefix"),
		"takeOver":         func(_, v *yaml.Node) { t.TakeOver = p.boolean(v, s, "traffic.takeOver") },
		"onRollback": func(_, v *yaml.Node) {
			switch v.Value {
			case OnRollbackZero, OnRollbackStepDown, OnRollbackNone:
				t.OnRollback = v.Value
			default:
				p.errorf(v, s, "traffic.onRollback must be zero, stepDown or none, got %q", v.Value)
			}
		},
		"stepDown": func(_, v *yaml.Node) {
			stepDownNode = v
			p.fields(v, s, "traffic.stepDown", map[string]func(k, v *yaml.Node){
				"weights": func(_, v *yaml.Node) {
					if v.Kind != yaml.SequenceNode {
						p.errorf(v, s, "traffic.stepDown.weights must be a list")
						return
					}
					prev := 101
					for _, w := range v.Content {
						x := p.integer(w, s, "traffic.stepDown weight", 1, 100)
						if x >= prev {
							p.errorf(w, s, "traffic.stepDown.weights must decrease, got %d after %d", x, prev)
						}
						prev = x
						t.StepDown = append(t.StepDown, x)
					}
				},
				"interval": func(_, v *yaml.Node) { t.StepDownInterval = p.duration(v, s, "traffic.stepDown.interval") },
			})
		},
	})
	need := func(names ...string) {
		for _, name := range names {
			if _, ok := t.FieldText[name]; !ok {
				p.errorf(n, s, "traffic: router %s needs %s", t.Router, name)
			}
		}
	}
	switch t.Router {
	case RouterNginx:
		need("namespace", "ingress", "stableService", "canaryService")
		if _, ok := t.FieldText["httpRoute"]; ok {
			p.errorf(n, s, "traffic: httpRoute is for router gatewayapi")
		}
	case RouterGatewayAPI:
		need("namespace", "httpRoute", "stableService", "canaryService")
		for _, name := range []string{"ingress", "annotationPrefix"} {
			if _, ok := t.FieldText[name]; ok {
				p.errorf(n, s, "traffic: %s is for router nginx", name)
			}
		}
	case "":
		p.errorf(n, s, "traffic needs a router: nginx or gatewayapi")
	default:
		p.errorf(routerNode, s, "traffic.router %q is not known (known: nginx, gatewayapi)", t.Router)
	}
	if t.OnRollback == OnRollbackStepDown && (len(t.StepDown) == 0 || t.StepDownInterval <= 0) {
		p.errorf(n, s, "traffic.onRollback stepDown needs stepDown.weights and stepDown.interval")
	}
	if stepDownNode != nil && t.OnRollback != OnRollbackStepDown {
		p.errorf(stepDownNode, s, "traffic.stepDown is only used with onRollback: stepDown")
	}
	return t
}

// Render renders the traffic section's objects for a run's params, which
// must have been resolved (ResolveParams).
func (t *Traffic) Render(params map[string]string) (TrafficSpec, error) {
	out := map[string]string{}
	for name, tmpl := range t.Fields {
		var b strings.Builder
		if err := tmpl.Execute(&b, params); err != nil {
			return TrafficSpec{}, fmt.Errorf("render traffic.%s: %w", name, err)
		}
		v := b.String()
		// Rendered names go into API paths: keep them Kubernetes names.
		if name != "annotationPrefix" && !IsName(v) {
			return TrafficSpec{}, fmt.Errorf("traffic.%s rendered to %q, not a Kubernetes name", name, v)
		}
		out[name] = v
	}
	return TrafficSpec{
		Router: t.Router, Namespace: out["namespace"], Ingress: out["ingress"], HTTPRoute: out["httpRoute"],
		StableService: out["stableService"], CanaryService: out["canaryService"],
		AnnotationPrefix: out["annotationPrefix"], TakeOver: t.TakeOver,
	}, nil
}
