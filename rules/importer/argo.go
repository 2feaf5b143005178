package importer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/aurum/canary/rules"
)

// ArgoMaxSeries is the maxSeries of an imported vector query. Argo
// Rollouts reads every series a query returns; a policy declares how many
// it expects, and more than that is an error that says so.
const ArgoMaxSeries = 1000

// ArgoTemplate is an Argo Rollouts AnalysisTemplate or
// ClusterAnalysisTemplate, decoded strictly into the importer's own model
// of the fields it reads (argotypes.go).
type ArgoTemplate struct {
	File string
	// Kind is AnalysisTemplate or ClusterAnalysisTemplate.
	Kind string
	Name string
	spec argoSpec
}

func (t ArgoTemplate) from() string { return t.Kind + " " + t.Name }

// document is one YAML document of a manifest file, as JSON for a strict
// decode into API-shaped types, and where it starts.
type document struct {
	index, line      int
	apiVersion, kind string
	name             string
	json             []byte
}

// documents splits a manifest stream into its documents.
func documents(file string, data []byte) ([]document, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []document
	for i := 1; ; i++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if len(n.Content) == 0 || n.Content[0].Tag == "!!null" {
			continue
		}
		raw, err := yaml.Marshal(&n)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		js, err := sigsyaml.YAMLToJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, n.Content[0].Line, err)
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := sigsyaml.Unmarshal(js, &head); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, n.Content[0].Line, err)
		}
		docs = append(docs, document{index: i, line: n.Content[0].Line, apiVersion: head.APIVersion, kind: head.Kind, name: head.Metadata.Name, json: js})
	}
}

// strict decodes a document into obj, rejecting unknown fields.
func (d document) strict(file string, obj any) error {
	if err := sigsyaml.UnmarshalStrict(d.json, obj); err != nil {
		return fmt.Errorf("%s:%d: %s %s: %w", file, d.line, d.kind, d.name, err)
	}
	return nil
}

// DecodeArgo reads the AnalysisTemplates and ClusterAnalysisTemplates of a
// manifest file strictly, in the shape of Argo Rollouts' API. Other objects
// are skipped with a note; an unknown field is an error.
func DecodeArgo(file string, data []byte) ([]ArgoTemplate, []Note, error) {
	docs, err := documents(file, data)
	if err != nil {
		return nil, nil, err
	}
	var out []ArgoTemplate
	var ns notes
	for _, d := range docs {
		switch {
		case d.apiVersion == "argoproj.io/v1alpha1" && (d.kind == "AnalysisTemplate" || d.kind == "ClusterAnalysisTemplate"):
			// Both kinds have the same spec.
			var t argoManifest
			if err := d.strict(file, &t); err != nil {
				return nil, nil, err
			}
			out = append(out, ArgoTemplate{File: file, Kind: d.kind, Name: t.Metadata.Name, spec: t.Spec})
		default:
			ns.add(fmt.Sprintf("%s:%d", file, d.line), "%s %s %s is not an AnalysisTemplate: skipped", d.apiVersion, d.kind, d.name)
		}
	}
	return out, ns.list, nil
}

// argoArgRE is an Argo template tag: {{args.NAME}}, spaces allowed inside
// the braces as Argo trims them.
var argoTagRE = regexp.MustCompile(`\{\{(.*?)\}\}`)

// argoRangeStartRE is the one range-query start the engine can say: a
// window ending now.
var argoRangeStartRE = regexp.MustCompile(`^\s*now\(\)\s*-\s*duration\(\s*"([^"]+)"\s*\)\s*$`)

// FromArgo makes a policy of an Argo Rollouts template. Each Prometheus
// metric becomes a query and a rule whose expression is the metric's
// conditions with `result` bound as Argo binds it; the document is nil when
// no metric could be carried over.
func FromArgo(t ArgoTemplate) (*Document, []Note, error) {
	var ns notes
	from := t.from()
	p := newPolicy(t.Name, from, fmt.Sprintf("Imported by canary import argo from %s (%s).\n"+
		"Each rule binds result as Argo Rollouts does: a vector query's values as a\n"+
		"list (result[0]), a scalar as a number. NaN and ±Inf samples are no data.", from, t.File))
	if !nameRE.MatchString(t.Name) {
		return nil, nil, fmt.Errorf("%s: %q is not a policy name", from, t.Name)
	}

	// Args become params of the same name, or of its identifier form;
	// those no imported query reads are left out, so that a caller is not
	// asked for a secret the policy never uses.
	params := names{}
	argParam := map[string]string{}
	args := map[string]*string{}
	used := map[string]bool{}
	for _, a := range t.spec.Args {
		args[a.Name] = a.Value
		argParam[a.Name] = params.take(a.Name)
	}

	dry := map[string]bool{}
	for i, d := range t.spec.DryRun {
		matched := false
		for _, m := range t.spec.Metrics {
			if ok, err := regexp.MatchString(d.MetricName, m.Name); err == nil && ok {
				dry[m.Name], matched = true, true
			}
		}
		if !matched {
			ns.add(fmt.Sprintf("%s, dryRun[%d]", from, i), "metricName %q matches no metric", d.MetricName)
		}
	}
	if len(t.spec.MeasurementRetention) > 0 {
		ns.add(from, "measurementRetention is not carried over: canary serve keeps every evaluation of a run (its retention is the server's)")
	}
	for _, ref := range t.spec.Templates {
		kind := "AnalysisTemplate"
		if ref.ClusterScope != nil && *ref.ClusterScope {
			kind = "ClusterAnalysisTemplate"
		}
		ns.add(from, "templates: %s %s is not merged in: import it too, and judge both policies", kind, ref.TemplateName)
	}

	var sched argoSchedule
	queries := names{}
	decisionRules := sequence()
	for i, m := range t.spec.Metrics {
		mfrom := from + ", metric " + m.Name
		at := fmt.Sprintf("spec.metrics[%d] %s", i, m.Name)
		prom := m.Provider.Prometheus
		if prom == nil {
			ns.add(mfrom, "provider %s is not imported: canary reads Prometheus (and Kafka, HTTP, TCP, PostgreSQL) queries; write the check as one of those", argoProviderName(m.Provider))
			continue
		}
		argoProviderNotes(&ns, mfrom, prom)
		text, err := argoQuery(prom.Query, argParam, used)
		if err != nil {
			ns.add(mfrom, "not imported: %v", err)
			continue
		}
		var rng, step time.Duration
		if prom.RangeQuery != nil {
			var fixed string
			rng, step, fixed, err = argoRange(prom.RangeQuery, args)
			if err != nil {
				ns.add(mfrom, "not imported: %v", err)
				continue
			}
			if fixed != "" {
				ns.add(mfrom, "rangeQuery start reads arg %s: the range is its value, %s, fixed in the policy", fixed, dur(rng))
			}
		}
		c, err := newArgoConditions(m.SuccessCondition, m.FailureCondition, rng > 0)
		if err != nil {
			ns.add(mfrom, "not imported: %v", err)
			continue
		}
		if dry[m.Name] && !rulesAcceptDryRun() {
			ns.add(mfrom, "dry-run metric not imported: the policy format has no dry-run rules yet, and a rule would change the verdict; once it has, import again")
			continue
		}

		qname := queries.take(m.Name)
		q := mapping()
		set(q, "prometheus", str(text), fmt.Sprintf("%s: provider.prometheus.query", at))
		if c.shape == shapeVector {
			set(q, "maxSeries", integer(ArgoMaxSeries), "Argo Rollouts reads every series: result is the list of their values")
		}
		if rng > 0 {
			set(q, "range", str(dur(rng)), fmt.Sprintf("provider.prometheus.rangeQuery: from %s to %s", prom.RangeQuery.Start, prom.RangeQuery.End))
			set(q, "step", str(dur(step)), "")
		}
		set(p.queries, qname, q, "")

		rule := mapping()
		set(rule, "name", str(ruleName(m.Name)), "")
		set(rule, "expr", str(c.expr(qname)), c.comment(at))
		outcome, why := c.noData()
		nd := str(string(outcome))
		nd.LineComment = why
		set(rule, "noData", nd, "")
		if dry[m.Name] {
			set(rule, "dryRun", boolean(true), "spec.dryRun: judged and reported, never decides")
		}
		if c.split {
			ns.add(mfrom, "%s", c.splitNote)
		}
		p.rules.Content = append(p.rules.Content, rule)
		if c.success != "" && c.failure != "" && !dry[m.Name] {
			dr := mapping()
			set(dr, "name", str(ruleName(m.Name)+"-inconclusive"), "")
			set(dr, "expr", str(c.inconclusiveExpr(qname)), at+": neither condition holds: Argo Rollouts' Inconclusive, which pauses")
			set(dr, "action", str("pause"), "")
			decisionRules.Content = append(decisionRules.Content, dr)
		}
		if !dry[m.Name] {
			sched.add(&ns, mfrom, at, m)
		}
	}
	if len(p.rules.Content) == 0 {
		ns.add(from, "no metric could be carried over: no policy written")
		return nil, ns.list, nil
	}
	var argNotes notes
	argoParams(&argNotes, from, t.spec.Args, argParam, used, p.params)
	ns.list = append(argNotes.list, ns.list...)
	if len(decisionRules.Content) > 0 {
		set(p.decision, "rules", decisionRules, "")
	}
	sched.write(p.rollout, p.comment)
	doc, err := p.document()
	if err != nil {
		return nil, nil, err
	}
	return &doc, ns.list, nil
}

// argoParams declares the params of the args the imported queries read.
func argoParams(ns *notes, from string, args []argoArg, argParam map[string]string, used map[string]bool, out *yaml.Node) {
	for i, a := range args {
		if !used[a.Name] {
			continue
		}
		name := argParam[a.Name]
		def := flowMapping()
		comment := fmt.Sprintf("spec.args[%d] %s", i, a.Name)
		if name != a.Name {
			comment += fmt.Sprintf(": {{args.%s}} is {{ .%s }}", a.Name, name)
		}
		switch {
		case a.Value != nil:
			def.Style = 0
			set(def, "default", str(*a.Value), "")
			if !isName(*a.Value) {
				set(def, "pattern", str(regexp.QuoteMeta(*a.Value)), "")
				ns.add(from+", arg "+a.Name, "value %q is not a Kubernetes-style name: the param's pattern admits that value only; widen it with care, params are written into PromQL", *a.Value)
			}
		case a.ValueFrom != nil && a.ValueFrom.SecretKeyRef != nil:
			ns.add(from+", arg "+a.Name, "valueFrom.secretKeyRef %s/%s is not carried over: canary reads no Kubernetes Secrets for params; the param is required", a.ValueFrom.SecretKeyRef.Name, a.ValueFrom.SecretKeyRef.Key)
			comment += fmt.Sprintf("\nArgo read it from Secret %s, key %s: pass it", a.ValueFrom.SecretKeyRef.Name, a.ValueFrom.SecretKeyRef.Key)
		case a.ValueFrom != nil && a.ValueFrom.FieldRef != nil:
			ns.add(from+", arg "+a.Name, "valueFrom.fieldRef %s is not carried over: the caller passes the param (Argo read the Rollout's field)", a.ValueFrom.FieldRef.FieldPath)
			comment += fmt.Sprintf("\nArgo read it from the Rollout's %s: pass it", a.ValueFrom.FieldRef.FieldPath)
		}
		set(out, name, def, comment)
	}
}

// isName reports whether a param default passes the default pattern.
func isName(v string) bool { return nameRE.MatchString(v) }

func argoProviderName(mp argoProvider) string {
	switch {
	case mp.Web.set():
		return "web"
	case mp.Job.set():
		return "job"
	case mp.Kayenta.set():
		return "kayenta"
	case mp.Datadog.set():
		return "datadog"
	case mp.Wavefront.set():
		return "wavefront"
	case mp.NewRelic.set():
		return "newRelic"
	case mp.CloudWatch.set():
		return "cloudWatch"
	case mp.Graphite.set():
		return "graphite"
	case mp.Influxdb.set():
		return "influxdb"
	case mp.SkyWalking.set():
		return "skywalking"
	case len(mp.Plugin) > 0:
		return "plugin " + strings.Join(sortedKeys(mp.Plugin), ", ")
	}
	return "(none)"
}

// argoProviderNotes lists the connection settings of a Prometheus metric:
// canary serve's configured source has its own.
func argoProviderNotes(ns *notes, from string, prom *argoPrometheus) {
	if prom.Address != "" {
		ns.add(from, "address %s is not carried over: the query runs on the Prometheus source of canary serve's config", prom.Address)
	}
	if prom.Timeout != nil {
		ns.add(from, "timeout %ds is not carried over: the evaluation's timeout is the server's (--timeout)", *prom.Timeout)
	}
	if len(prom.Headers) > 0 || prom.Insecure || prom.Authentication.Sigv4 != (argoSigv4{}) ||
		prom.Authentication.OAuth2.TokenURL != "" || prom.Authentication.OAuth2.ClientID != "" {
		ns.add(from, "headers, authentication and insecure are not carried over: configure them on canary serve's Prometheus source")
	}
}

// argoQuery turns Argo's {{args.NAME}} tags into template actions over the
// params. Argo resolves no other tag in an analysis query.
func argoQuery(query string, argParam map[string]string, used map[string]bool) (string, error) {
	if strings.TrimSpace(query) == "" {
		return "", errors.New("provider.prometheus.query is empty")
	}
	var bad error
	out := argoTagRE.ReplaceAllStringFunc(query, func(tag string) string {
		inner := strings.TrimSpace(tag[2 : len(tag)-2])
		name, ok := strings.CutPrefix(inner, "args.")
		param, known := argParam[name]
		if !ok || !known {
			if bad == nil {
				bad = fmt.Errorf("query tag %s names no arg of the template (Argo Rollouts fails it too)", tag)
			}
			return tag
		}
		used[name] = true
		return "{{ ." + param + " }}"
	})
	return out, bad
}

// argoRange maps a range query onto the engine's: a window that ends at
// the evaluation.
func argoRange(r *argoRangeQuery, args map[string]*string) (rng, step time.Duration, fixed string, err error) {
	m := argoRangeStartRE.FindStringSubmatch(r.Start)
	if m == nil || strings.ReplaceAll(r.End, " ", "") != "now()" {
		return 0, 0, "", fmt.Errorf("rangeQuery start %q, end %q: canary's range queries end at the evaluation (start: now() - duration(\"5m\"), end: now())", r.Start, r.End)
	}
	window := m[1]
	// The window may be an arg with a value: the policy's range is
	// that value.
	if tag := argoTagRE.FindStringSubmatch(window); tag != nil {
		name, _ := strings.CutPrefix(strings.TrimSpace(tag[1]), "args.")
		v := args[name]
		if v == nil {
			return 0, 0, "", fmt.Errorf("rangeQuery start %q reads an arg without a value: canary's range is fixed in the policy", r.Start)
		}
		window, fixed = strings.Replace(window, tag[0], *v, 1), name
	}
	rng, err = time.ParseDuration(window)
	if err != nil || rng <= 0 {
		return 0, 0, "", fmt.Errorf("rangeQuery start %q: bad duration %q", r.Start, window)
	}
	step = min(rules.DefaultStep, rng)
	if r.Step != "" {
		if step, err = time.ParseDuration(r.Step); err != nil || step <= 0 || step > rng {
			return 0, 0, "", fmt.Errorf("rangeQuery step %q: want a duration up to the range", r.Step)
		}
	}
	return rng, step, fixed, nil
}

// dur writes a duration as policies do: 5m, 1h30m, 90s.
func dur(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	if s == "" {
		return "0s"
	}
	return s
}

// shape is how Argo Rollouts binds a Prometheus result to `result`.
type shape int

const (
	// shapeVector: an instant vector or a range query's matrix, a
	// []float64 of every sample's value.
	shapeVector shape = iota
	// shapeScalar: a scalar result, a float64.
	shapeScalar
)

// argoPhase is a measurement's phase, as Argo Rollouts names it.
type argoPhase string

// Measurement phases.
const (
	phaseSuccessful   argoPhase = "Successful"
	phaseFailed       argoPhase = "Failed"
	phaseInconclusive argoPhase = "Inconclusive"
	phaseError        argoPhase = "Error"
)

// argoConditions are a metric's conditions, rewritten for the engine and
// compiled as Argo Rollouts evaluates them, to tell what Argo makes of no
// data.
type argoConditions struct {
	success, failure string
	shape            shape
	rangeQuery       bool
	prog             [2]*vm.Program
	// split is set when Argo's phases on an empty result and on NaN
	// differ: the engine has one noData outcome for both.
	split     bool
	splitNote string
}

// argoFunctions are the functions Argo's condition env has that the
// engine has too, with the engine's signatures.
var argoFunctions = []expr.Option{
	expr.Function("isNaN", func(args ...any) (any, error) { return math.IsNaN(args[0].(float64)), nil }, new(func(float64) bool)),
	expr.Function("isInf", func(args ...any) (any, error) { return math.IsInf(args[0].(float64), 0), nil }, new(func(float64) bool)),
}

func newArgoConditions(success, failure string, rangeQuery bool) (*argoConditions, error) {
	c := &argoConditions{rangeQuery: rangeQuery}
	var err error
	if c.success, err = rewriteArgoHelpers(success); err != nil {
		return nil, fmt.Errorf("successCondition: %w", err)
	}
	if c.failure, err = rewriteArgoHelpers(failure); err != nil {
		return nil, fmt.Errorf("failureCondition: %w", err)
	}
	// The shape is the one the conditions are written for: a scalar
	// query read as result[0] errors on every measurement in Argo, so
	// a template that works says which it expects. A list comes first,
	// as most queries return vectors.
	shapes := []shape{shapeVector, shapeScalar}
	if rangeQuery {
		shapes = shapes[:1]
	}
	var firstErr error
	for _, s := range shapes {
		if firstErr = c.compile(s); firstErr == nil {
			c.shape = s
			return c, nil
		}
	}
	return nil, fmt.Errorf("the conditions do not hold a Prometheus result (Argo Rollouts answers Error on every measurement): %w", firstErr)
}

func (c *argoConditions) compile(s shape) error {
	env := map[string]any{"result": []float64{}}
	if s == shapeScalar {
		env["result"] = float64(0)
	}
	for i, cond := range []string{c.success, c.failure} {
		c.prog[i] = nil
		if cond == "" {
			continue
		}
		prog, err := expr.Compile(cond, append([]expr.Option{expr.Env(env), expr.AsBool()}, argoFunctions...)...)
		if err != nil {
			return err
		}
		c.prog[i] = prog
	}
	return nil
}

// phase is what Argo Rollouts' EvaluateResult gives result: Error when a
// condition fails to run, Failed when the failure condition holds (or the
// success condition alone does not), Inconclusive when neither holds.
func (c *argoConditions) phase(result any) argoPhase {
	var holds [2]bool
	for i, p := range c.prog {
		if p == nil {
			continue
		}
		out, err := expr.Run(p, map[string]any{"result": result})
		if err != nil {
			return phaseError
		}
		holds[i] = out.(bool)
	}
	success, failure := holds[0], holds[1]
	switch {
	case c.success == "" && c.failure == "":
		return phaseSuccessful
	case c.failure == "":
		failure = !success
	case c.success == "":
		success = !failure
	}
	switch {
	case failure:
		return phaseFailed
	case !success:
		return phaseInconclusive
	}
	return phaseSuccessful
}

// outcome maps a measurement phase onto a rule outcome: an Error, which
// Argo retries, holds the canary as inconclusive does.
func outcome(p argoPhase) string {
	switch p {
	case phaseSuccessful:
		return "pass"
	case phaseFailed:
		return "fail"
	}
	return "inconclusive"
}

var outcomeRank = map[string]int{"pass": 0, "inconclusive": 1, "fail": 2}

// noData is the rule's noData outcome: what Argo makes of the results the
// engine counts as no data (an empty vector, NaN, +Inf), the worst of them
// when they differ, with a comment that says what Argo does. -Inf, which
// no rate or quantile gives, is left out.
func (c *argoConditions) noData() (string, string) {
	type seen struct {
		what  string
		phase argoPhase
	}
	var cases []seen
	if c.shape == shapeScalar {
		cases = []seen{{"NaN", c.phase(math.NaN())}, {"+Inf", c.phase(math.Inf(1))}}
	} else {
		cases = []seen{{"an empty result", c.phase([]float64{})}, {"NaN", c.phase([]float64{math.NaN()})}, {"+Inf", c.phase([]float64{math.Inf(1)})}}
	}
	// The outcome is the worst of the cases'. It is worth a note when
	// the real cases (an empty result, NaN) disagree, or when +Inf, a
	// histogram quantile past its last bucket, made it worse.
	o, real := "pass", "pass"
	var parts []string
	for i, cs := range cases {
		on := outcome(cs.phase)
		if outcomeRank[on] > outcomeRank[o] {
			o = on
		}
		if i < len(cases)-1 {
			if i > 0 && on != outcome(cases[0].phase) {
				c.split = true
			}
			if outcomeRank[on] > outcomeRank[real] {
				real = on
			}
		}
		parts = append(parts, fmt.Sprintf("%s on %s", cs.phase, cs.what))
	}
	c.split = c.split || o != real
	why := "Argo Rollouts: " + strings.Join(parts, ", ")
	if c.split {
		c.splitNote = why + "; canary has one noData outcome for them all: " + o + ", the strictest"
	}
	return o, why
}

// bind is the let that binds result as Argo does.
func (c *argoConditions) bind(query string) string {
	switch {
	case c.shape == shapeScalar:
		return "let result = " + query + "; "
	case c.rangeQuery:
		return "let result = flatten(map(" + query + ", .values)); "
	}
	return "let result = map(" + query + ", .value); "
}

// expr is the rule: it fails where Argo's measurement is Failed. With both
// conditions the success condition is still evaluated first, so that one
// that cannot run makes the rule error as it makes Argo's measurement one.
func (c *argoConditions) expr(query string) string {
	b := c.bind(query)
	switch {
	case c.success != "" && c.failure != "":
		return b + "let success = " + c.success + "; not (" + c.failure + ")"
	case c.success != "":
		return b + c.success
	case c.failure != "":
		return b + "not (" + c.failure + ")"
	}
	return b + "true"
}

func (c *argoConditions) inconclusiveExpr(query string) string {
	return c.bind(query) + "not (" + c.success + ") and not (" + c.failure + ")"
}

func (c *argoConditions) comment(at string) string {
	switch {
	case c.success != "" && c.failure != "":
		return at + ": fails where failureCondition holds; successCondition: " + c.success
	case c.success != "":
		return at + ": successCondition"
	case c.failure != "":
		return at + ": failureCondition, negated"
	}
	return at + ": no condition: Argo Rollouts counts every measurement Successful"
}

// rewriteArgoHelpers replaces the helpers of Argo's condition env the
// engine does not have with what they mean for a Prometheus result, which
// is never nil: asInt(x) is int(x), asFloat(x) float(x), isNil(x) false and
// default(x, d) result (Argo's default ignores x and returns the whole
// result when it is not nil). A condition without them is kept as written.
func rewriteArgoHelpers(cond string) (string, error) {
	cond = strings.TrimSpace(cond)
	if cond == "" {
		return "", nil
	}
	tree, err := parser.Parse(cond)
	if err != nil {
		return "", err
	}
	v := &helperVisitor{}
	ast.Walk(&tree.Node, v)
	if v.err != nil {
		return "", v.err
	}
	if !v.changed {
		return cond, nil
	}
	return tree.Node.String(), nil
}

type helperVisitor struct {
	changed bool
	err     error
}

func (v *helperVisitor) Visit(n *ast.Node) {
	call, ok := (*n).(*ast.CallNode)
	if !ok {
		return
	}
	id, ok := call.Callee.(*ast.IdentifierNode)
	if !ok {
		return
	}
	arity := func(want int) bool {
		if len(call.Arguments) != want && v.err == nil {
			v.err = fmt.Errorf("%s takes %d argument(s)", id.Value, want)
		}
		return len(call.Arguments) == want
	}
	switch id.Value {
	case "asInt", "asFloat":
		if arity(1) {
			name := map[string]string{"asInt": "int", "asFloat": "float"}[id.Value]
			ast.Patch(n, &ast.BuiltinNode{Name: name, Arguments: call.Arguments})
			v.changed = true
		}
	case "isNil":
		if arity(1) {
			ast.Patch(n, &ast.BoolNode{Value: false})
			v.changed = true
		}
	case "default":
		if arity(2) {
			ast.Patch(n, &ast.IdentifierNode{Value: "result"})
			v.changed = true
		}
	}
}

// argoSchedule gathers the metrics' measurement settings into the rollout
// section: the engine has one schedule per policy, Argo one per metric.
type argoSchedule struct {
	interval, warmup, step         time.Duration
	intervalAt, warmupAt, stepAt   string
	failureLimit, inconclusive     int
	failureLimitAt, inconclusiveAt string
}

func (s *argoSchedule) add(ns *notes, from, at string, m argoMetric) {
	interval := argoDuration(ns, from, "interval", m.Interval)
	if interval > 0 {
		if s.interval == 0 || interval < s.interval {
			if s.interval != 0 {
				ns.add(from, "interval %s differs from another metric's %s: the rollout analyses every %s, the shorter", dur(interval), dur(s.interval), dur(interval))
			}
			s.interval, s.intervalAt = interval, at+".interval"
		} else if interval != s.interval {
			ns.add(from, "interval %s differs from another metric's %s: the rollout analyses every %s, the shorter", dur(interval), dur(s.interval), dur(s.interval))
		}
	}
	if d := argoDuration(ns, from, "initialDelay", m.InitialDelay); d > 0 {
		if s.warmup != 0 && d != s.warmup {
			ns.add(from, "initialDelay %s differs from another metric's %s: the rollout's warmup is the shorter", dur(d), dur(s.warmup))
		}
		if s.warmup == 0 || d < s.warmup {
			s.warmup, s.warmupAt = d, at+".initialDelay"
		}
	}
	if m.Count != nil {
		n, ok := argoInt(ns, from, "count", m.Count)
		if ok && n > 1 && interval > 0 {
			if d := time.Duration(n) * interval; d > s.step {
				s.step, s.stepAt = d, fmt.Sprintf("%s: count %d × interval %s", at, n, dur(interval))
			}
		}
	}
	if m.FailureLimit != nil {
		if n, ok := argoInt(ns, from, "failureLimit", m.FailureLimit); ok {
			switch {
			case n < 0:
				ns.add(from, "failureLimit %d (no limit, with consecutiveSuccessLimit) is not carried over: the rollout rolls back after failureLimit failed analyses", n)
			case s.failureLimitAt == "" || n < s.failureLimit:
				if s.failureLimitAt != "" {
					ns.add(from, "failureLimit %d differs from another metric's %d: the rollout's is the lower", n, s.failureLimit)
				}
				s.failureLimit, s.failureLimitAt = n, at+".failureLimit"
			}
		}
	}
	if m.InconclusiveLimit != nil {
		if n, ok := argoInt(ns, from, "inconclusiveLimit", m.InconclusiveLimit); ok && (s.inconclusiveAt == "" || n < s.inconclusive) {
			s.inconclusive, s.inconclusiveAt = n, at+".inconclusiveLimit"
		}
	}
	if m.ConsecutiveErrorLimit != nil {
		ns.add(from, "consecutiveErrorLimit is not carried over: a rule whose query fails is error, which makes the analysis inconclusive; the rollout's inconclusiveLimit counts it")
	}
	if m.ConsecutiveSuccessLimit != nil {
		ns.add(from, "consecutiveSuccessLimit is not carried over: a rollout step advances once its duration is over and the last analysis passed")
	}
}

func argoDuration(ns *notes, from, what string, d string) time.Duration {
	if d == "" {
		return 0
	}
	v, err := time.ParseDuration(d)
	if err != nil {
		ns.add(from, "%s %q is not a duration: not carried over", what, d)
		return 0
	}
	return v
}

func argoInt(ns *notes, from, what string, v *intstr.IntOrString) (int, bool) {
	if v.Type == intstr.String {
		ns.add(from, "%s %q is not a number (an arg?): not carried over", what, v.StrVal)
		return 0, false
	}
	return v.IntValue(), true
}

func (s *argoSchedule) write(r *yaml.Node, comment map[string]string) {
	if s.interval > 0 {
		set(r, "interval", str(dur(s.interval)), s.intervalAt)
	}
	if s.warmup > 0 {
		set(r, "warmup", str(dur(s.warmup)), s.warmupAt)
	}
	if s.step > 0 {
		set(r, "stepDuration", str(dur(s.step)), s.stepAt)
	}
	if s.failureLimitAt != "" {
		set(r, "failureLimit", integer(min(s.failureLimit, 1000)), s.failureLimitAt)
	}
	if s.inconclusiveAt != "" {
		set(r, "inconclusiveLimit", integer(min(s.inconclusive, 1000)), s.inconclusiveAt)
	}
	comment["rollout"] = "Used when canary drives the traffic itself; the weights come from your Rollout's steps."
}
