package importer

import (
	"fmt"
	"math"
	"strings"
	"text/template/parse"

	flaggerv1 "github.com/fluxcd/flagger/pkg/apis/flagger/v1beta1"
	"go.yaml.in/yaml/v3"
)

// FlaggerObjects are the MetricTemplates and Canaries of the input,
// decoded with Flagger's own API types (github.com/fluxcd/flagger v1.36.1,
// the version the Go module proxy serves here).
type FlaggerObjects struct {
	Templates []FlaggerTemplate
	Canaries  []FlaggerCanary
}

// FlaggerTemplate is a MetricTemplate and the file it came from.
type FlaggerTemplate struct {
	File string
	flaggerv1.MetricTemplate
}

// FlaggerCanary is a Canary and the file it came from.
type FlaggerCanary struct {
	File string
	flaggerv1.Canary
}

// DecodeFlagger reads the MetricTemplates and Canaries of a manifest file
// strictly into objs. Other objects are skipped with a note.
func DecodeFlagger(file string, data []byte, objs *FlaggerObjects) ([]Note, error) {
	docs, err := documents(file, data)
	if err != nil {
		return nil, err
	}
	var ns notes
	for _, d := range docs {
		switch {
		case d.apiVersion == "flagger.app/v1beta1" && d.kind == "MetricTemplate":
			var t flaggerv1.MetricTemplate
			if err := d.strict(file, &t); err != nil {
				return nil, err
			}
			objs.Templates = append(objs.Templates, FlaggerTemplate{File: file, MetricTemplate: t})
		case d.apiVersion == "flagger.app/v1beta1" && d.kind == "Canary":
			var c flaggerv1.Canary
			if err := d.strict(file, &c); err != nil {
				return nil, err
			}
			objs.Canaries = append(objs.Canaries, FlaggerCanary{File: file, Canary: c})
		default:
			ns.add(fmt.Sprintf("%s:%d", file, d.line), "%s %s %s is not a MetricTemplate or a Canary: skipped", d.apiVersion, d.kind, d.name)
		}
	}
	return ns.list, nil
}

// flaggerBuiltins are the queries of Flagger's built-in metrics the import
// knows, by provider: each is this project's PromQL for what Flagger
// measures (the share of non-5xx requests in percent, the mean request
// duration in milliseconds) over the provider's metrics.
var flaggerBuiltins = map[string]map[string]string{
	"nginx": {
		"request-success-rate": `sum(rate(nginx_ingress_controller_requests{namespace="{{ namespace }}",ingress="{{ ingress }}",canary!="",status!~"5.*"}[{{ interval }}]))
/ sum(rate(nginx_ingress_controller_requests{namespace="{{ namespace }}",ingress="{{ ingress }}",canary!=""}[{{ interval }}]))
* 100
`,
		"request-duration": `sum(rate(nginx_ingress_controller_response_duration_seconds_sum{namespace="{{ namespace }}",ingress="{{ ingress }}",canary!=""}[{{ interval }}]))
/ sum(rate(nginx_ingress_controller_response_duration_seconds_count{namespace="{{ namespace }}",ingress="{{ ingress }}",canary!=""}[{{ interval }}]))
* 1000
`,
	},
}

// FlaggerBuiltinProviders lists the providers whose built-in metrics the
// import knows.
func FlaggerBuiltinProviders() string { return strings.Join(sortedKeys(flaggerBuiltins), ", ") }

// flaggerVars are the functions of Flagger's query templates; each becomes
// a param of the same name.
var flaggerVars = []string{"name", "namespace", "target", "service", "ingress", "route", "interval"}

// FromFlagger makes one policy of each Canary: a query and a rule per
// metric of its analysis, the query from the MetricTemplate it names (or
// the built-in query of its provider), the rule from its thresholdRange.
// meshProvider stands for Flagger's -mesh-provider flag: the provider of a
// Canary that names none.
func FromFlagger(objs FlaggerObjects, meshProvider string) ([]Document, []Note, error) {
	var docs []Document
	var ns notes
	used := map[*FlaggerTemplate]bool{}
	for _, c := range objs.Canaries {
		d, err := fromCanary(&ns, c, objs, meshProvider, used)
		if err != nil {
			return nil, nil, err
		}
		if d != nil {
			docs = append(docs, *d)
		}
	}
	for i := range objs.Templates {
		if t := &objs.Templates[i]; !used[t] {
			ns.add("MetricTemplate "+t.Name, "no Canary of the input uses it: a MetricTemplate has no threshold, so no rule; import it with the Canary whose analysis names it")
		}
	}
	return docs, ns.list, nil
}

// flaggerParams hands out the params of a Canary's queries. A value that
// two metrics render differently (an interval, a template variable) gets a
// param per query.
type flaggerParams struct {
	node   *yaml.Node
	values map[string]string
	names  names
}

// take returns the param for a template value: name when it is free or
// holds the same value, else one named after the query.
func (fp *flaggerParams) take(name, value, query, comment string) string {
	id := ident(name)
	if v, ok := fp.values[id]; ok {
		if v == value {
			return id
		}
		id = fp.names.take(query + "_" + id)
	} else {
		fp.names[id] = true
	}
	fp.values[id] = value
	def := flowMapping()
	if value != "" {
		def.Style = 0
		set(def, "default", str(value), "")
		if !isName(value) {
			set(def, "pattern", str(regexpQuote(value)), "")
		}
	}
	set(fp.node, id, def, comment)
	return id
}

func fromCanary(ns *notes, c FlaggerCanary, objs FlaggerObjects, meshProvider string, used map[*FlaggerTemplate]bool) (*Document, error) {
	from := "Canary " + c.Name
	a := c.Spec.Analysis
	if a == nil {
		a = c.Spec.CanaryAnalysis
	}
	if a == nil || len(a.Metrics) == 0 {
		ns.add(from, "no analysis metrics: no policy written")
		return nil, nil
	}
	p := newPolicy(c.Name, from, fmt.Sprintf("Imported by canary import flagger from %s (%s).\n"+
		"Each rule fails where Flagger's check fails: a value outside thresholdRange,\n"+
		"or no value (an empty result, NaN).", from, c.File))
	fp := &flaggerParams{node: p.params, values: map[string]string{}, names: names{}}
	provider := c.Spec.Provider
	if provider == "" {
		provider = meshProvider
	}
	model := flaggerModel(c)
	queries := names{}
	for i, m := range a.Metrics {
		mfrom := from + ", metric " + m.Name
		at := fmt.Sprintf("spec.analysis.metrics[%d] %s", i, m.Name)
		interval := m.Interval
		if interval == "" {
			interval = "1m"
		}
		var text, origin string
		builtin := m.Name == "request-success-rate" || m.Name == "request-duration"
		switch {
		case m.TemplateRef != nil:
			t := findTemplate(objs, m.TemplateRef, c.Namespace)
			if t == nil {
				ns.add(mfrom, "templateRef %s is not in the input: not imported; pass its file too", m.TemplateRef.Name)
				continue
			}
			used[t] = true
			if typ := t.Spec.Provider.Type; typ != "" && typ != "prometheus" {
				ns.add(mfrom, "MetricTemplate %s: provider %s is not imported: canary reads Prometheus (and Kafka, HTTP, TCP, PostgreSQL) queries", t.Name, typ)
				continue
			}
			if t.Spec.Provider.Address != "" {
				ns.add(mfrom, "MetricTemplate %s: address %s is not carried over: the query runs on the Prometheus source of canary serve's config", t.Name, t.Spec.Provider.Address)
			}
			if t.Spec.Provider.SecretRef != nil || t.Spec.Provider.InsecureSkipVerify {
				ns.add(mfrom, "MetricTemplate %s: secretRef and insecureSkipVerify are not carried over: configure them on canary serve's Prometheus source", t.Name)
			}
			text, origin = t.Spec.Query, "MetricTemplate "+t.Name+" spec.query"
		case m.Query != "":
			text, origin = m.Query, at+".query"
		case builtin:
			q, ok := flaggerBuiltins[provider][m.Name]
			if !ok {
				why := "the Canary names no provider: pass --mesh-provider"
				if provider != "" {
					why = "the import knows the built-in queries of " + FlaggerBuiltinProviders() + " only; write it as a MetricTemplate"
				}
				ns.add(mfrom, "built-in metric for provider %q not imported: %s", provider, why)
				continue
			}
			text, origin = q, fmt.Sprintf("Flagger's built-in %s for provider %s, written for canary", m.Name, provider)
		default:
			ns.add(mfrom, "neither templateRef nor query: Flagger fails this check on every run; not imported")
			continue
		}
		qname := queries.take(m.Name)
		rendered, err := flaggerQuery(text, func(name string, field []string) (string, error) {
			if name == "variables" {
				if len(field) != 1 {
					return "", fmt.Errorf("variables must be read as variables.NAME")
				}
				v, ok := m.TemplateVariables[field[0]]
				if !ok {
					return "", fmt.Errorf("variables.%s is not in templateVariables (Flagger fails the render too)", field[0])
				}
				return fp.take(field[0], v, qname, fmt.Sprintf("%s.templateVariables.%s", at, field[0])), nil
			}
			value := model[name]
			comment := "Flagger's {{ " + name + " }}"
			switch {
			case name == "interval":
				value, comment = interval, at+".interval"
			case value == "" && (name == "name" || name == "namespace"):
				// Flagger's hooks send both; the Canary's file need not
				// say its namespace.
				comment += ": Flagger's hooks send it"
			case value == "":
				return "", fmt.Errorf("{{ %s }} has no value for this Canary", name)
			}
			return fp.take(name, value, qname, comment), nil
		})
		if err != nil {
			ns.add(mfrom, "not imported: %v", err)
			continue
		}
		q := mapping()
		set(q, "prometheus", str(rendered), origin)
		set(p.queries, qname, q, "")

		expr, comment, err := flaggerRule(qname, m, builtin && m.TemplateRef == nil && m.Query == "")
		if err != nil {
			ns.add(mfrom, "not imported: %v", err)
			continue
		}
		rule := mapping()
		set(rule, "name", str(ruleName(m.Name)), "")
		set(rule, "expr", str(expr), at+": "+comment)
		nd := str("fail")
		nd.LineComment = "Flagger: no values found fails the check"
		set(rule, "noData", nd, "")
		p.rules.Content = append(p.rules.Content, rule)
	}
	if len(p.rules.Content) == 0 {
		ns.add(from, "no metric could be carried over: no policy written")
		return nil, nil
	}
	flaggerSchedule(ns, from, a, p.rollout, p.comment)
	d, err := p.document()
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// flaggerModel is what Flagger's template functions return for a Canary
// (its toMetricModel): the interval is the metric's.
func flaggerModel(c FlaggerCanary) map[string]string {
	target := c.Spec.TargetRef.Name
	service, ingress, route := target, target, target
	if c.Spec.Service.Name != "" {
		service = c.Spec.Service.Name
	}
	if c.Spec.IngressRef != nil {
		ingress = c.Spec.IngressRef.Name
	}
	if c.Spec.RouteRef != nil {
		route = c.Spec.RouteRef.Name
	}
	return map[string]string{"name": c.Name, "namespace": c.Namespace, "target": target, "service": service, "ingress": ingress, "route": route}
}

func findTemplate(objs FlaggerObjects, ref *flaggerv1.CrossNamespaceObjectReference, canaryNS string) *FlaggerTemplate {
	ns := ref.Namespace
	if ns == "" {
		ns = canaryNS
	}
	for i := range objs.Templates {
		t := &objs.Templates[i]
		if t.Name == ref.Name && (t.Namespace == "" || ns == "" || t.Namespace == ns) {
			return t
		}
	}
	return nil
}

// flaggerQuery turns a Flagger query template, whose values are functions
// ({{ namespace }}, {{ variables.x }}), into one over params
// ({{ namespace }}): param names the param for a function and its field.
func flaggerQuery(text string, param func(name string, field []string) (string, error)) (string, error) {
	funcs := map[string]any{"variables": true}
	for _, v := range flaggerVars {
		funcs[v] = true
	}
	trees, err := parse.Parse("query", text, "{{", "}}", funcs)
	if err != nil {
		return "", fmt.Errorf("query template: %w", err)
	}
	tree := trees["query"]
	if tree == nil || tree.Root == nil {
		return text, nil
	}
	var firstErr error
	replace := func(n parse.Node) parse.Node {
		var name string
		var field []string
		switch n := n.(type) {
		case *parse.IdentifierNode:
			name = n.Ident
		case *parse.ChainNode:
			id, ok := n.Node.(*parse.IdentifierNode)
			if !ok {
				return n
			}
			name, field = id.Ident, n.Field
		default:
			return n
		}
		p, err := param(name, field)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return n
		}
		return &parse.FieldNode{NodeType: parse.NodeField, Ident: []string{p}}
	}
	var walk func(n parse.Node)
	walkPipe := func(p *parse.PipeNode) {
		if p == nil {
			return
		}
		for _, c := range p.Cmds {
			for i, a := range c.Args {
				c.Args[i] = replace(a)
				if pn, ok := a.(*parse.PipeNode); ok {
					walk(pn)
				}
			}
		}
	}
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return
			}
			for _, c := range n.Nodes {
				walk(c)
			}
		case *parse.ActionNode:
			walkPipe(n.Pipe)
		case *parse.PipeNode:
			walkPipe(n)
		case *parse.IfNode:
			walkPipe(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.RangeNode:
			walkPipe(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.WithNode:
			walkPipe(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		}
	}
	walk(tree.Root)
	if firstErr != nil {
		return "", firstErr
	}
	return tree.Root.String(), nil
}

// flaggerRule is the rule of a metric's threshold: the check fails when the
// value is below min or above max. request-duration is compared as Flagger
// compares it, in whole milliseconds.
func flaggerRule(query string, m flaggerv1.CanaryMetric, builtin bool) (string, string, error) {
	v := query
	durationMs := builtin && m.Name == "request-duration"
	bound := func(f float64) string { return formatNumber(f) }
	if durationMs {
		// Flagger turns the value and the bounds into time.Durations
		// of whole milliseconds before comparing.
		v = "int(" + query + ")"
		bound = func(f float64) string { return formatNumber(math.Trunc(f)) }
	}
	switch tr := m.ThresholdRange; {
	case tr != nil && tr.Min != nil && tr.Max != nil:
		return v + " >= " + bound(*tr.Min) + " && " + v + " <= " + bound(*tr.Max), "thresholdRange min and max", nil
	case tr != nil && tr.Min != nil:
		return v + " >= " + bound(*tr.Min), "thresholdRange.min", nil
	case tr != nil && tr.Max != nil:
		return v + " <= " + bound(*tr.Max), "thresholdRange.max", nil
	case tr != nil:
		return "", "", fmt.Errorf("thresholdRange has neither min nor max")
	case builtin && m.Name == "request-success-rate":
		return v + " >= " + bound(m.Threshold), "threshold (deprecated): the minimum", nil
	}
	// The deprecated threshold of any other metric is a maximum.
	return v + " <= " + bound(m.Threshold), "threshold (deprecated): the maximum", nil
}

// flaggerSchedule maps the analysis's schedule onto the rollout section:
// Flagger runs its checks every interval and moves the weight by one step
// when they pass, so a step lasts an interval.
func flaggerSchedule(ns *notes, from string, a *flaggerv1.CanaryAnalysis, r *yaml.Node, comment map[string]string) {
	if a.Interval != "" {
		set(r, "interval", str(a.Interval), "spec.analysis.interval")
		set(r, "stepDuration", str(a.Interval), "a weight step lasts one interval, as in Flagger")
	}
	switch {
	case a.StepWeight > 0:
		set(r, "stepWeight", integer(a.StepWeight), "spec.analysis.stepWeight")
	case len(a.StepWeights) > 0:
		steps := sequence()
		for _, w := range a.StepWeights {
			st := flowMapping()
			set(st, "weight", integer(w), "")
			steps.Content = append(steps.Content, st)
		}
		set(r, "steps", steps, "spec.analysis.stepWeights")
	}
	if a.MaxWeight > 0 && len(a.StepWeights) == 0 {
		set(r, "maxWeight", integer(a.MaxWeight), "spec.analysis.maxWeight")
	}
	threshold := a.Threshold
	if threshold <= 0 {
		threshold = 1
	}
	set(r, "failureLimit", integer(min(threshold-1, 1000)), fmt.Sprintf("spec.analysis.threshold %d: Flagger rolls back at the %s failed check", threshold, ordinal(threshold)))
	comment["rollout"] = "Used when canary drives the traffic itself, as Flagger did."
	if a.Iterations > 0 || len(a.Match) > 0 {
		ns.add(from, "iterations and match (A/B testing, blue/green) are not carried over: the rollout steps weights; route by header with canary traffic set")
	}
	if a.Mirror {
		ns.add(from, "mirror is not carried over: canary's routers do not mirror traffic")
	}
	if a.StepWeightPromotion > 0 {
		ns.add(from, "stepWeightPromotion is not carried over: promotion moves all traffic at once after rollout.promotion")
	}
	if len(a.Webhooks) > 0 {
		ns.add(from, "webhooks are not carried over: point Flagger's hooks at canary serve (see docs/flagger.md), or keep them beside it")
	}
	if len(a.Alerts) > 0 {
		ns.add(from, "alerts are not carried over: canary serve's notifications routes say where run events go")
	}
}

func ordinal(n int) string {
	switch {
	case n%100 >= 11 && n%100 <= 13:
		return fmt.Sprintf("%dth", n)
	case n%10 == 1:
		return fmt.Sprintf("%dst", n)
	case n%10 == 2:
		return fmt.Sprintf("%dnd", n)
	case n%10 == 3:
		return fmt.Sprintf("%drd", n)
	}
	return fmt.Sprintf("%dth", n)
}
