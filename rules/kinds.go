package rules

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// Query kinds: the source each kind of query goes to.
const (
	KindPrometheus = "prometheus"
	KindKafka      = "kafka"
	KindHTTP       = "http"
	KindTCP        = "tcp"
	KindPostgres   = "postgres"
)

// kindSpec declares one query kind, once: the fields its mapping accepts
// and how each is read and checked, what its sources are called, and what
// its results are. The parser, its checks and the record types all read
// this declaration, so a field is added to a kind here and nowhere else.
type kindSpec struct {
	name string
	// fields are the settings of a kind written as a mapping; nil when the
	// query's body is its text, as a prometheus query's PromQL is.
	fields []kindField
	// sourceNoun is what a configured source of the kind is called in
	// messages: a Kafka "cluster", a PostgreSQL "database".
	sourceNoun string
	// probe kinds need no configuration: their targets are in the
	// policies, so their default source always exists.
	probe bool
	// series kinds may return several series: maxSeries means something.
	series bool
	// ranged kinds run range queries: range and step mean something.
	ranged bool
	// record is the zero value of the kind's result when that is a record
	// (a probe's); the expr tags of its float64 fields name the record's
	// fields. nil when the result is a number or samples.
	record any
}

// kindField declares one field of a kind's mapping. Every string in it is
// a template over the params; the checks of a fixed set of choices, a
// duration, an integer or status codes apply at load when the value holds
// no template action, and to the rendered value in the source otherwise.
type kindField struct {
	name     string
	required bool
	// list fields are a list of strings, passed to the source
	// comma-separated, so no item may contain a comma.
	list bool
	// headers is a map of names to strings, passed as "header.<Name>".
	headers bool
	// source names the query's source, as the query's own source field
	// does; it is not passed to the source as a field.
	source bool
	// text is the query's text (Query.Text), as PromQL is a prometheus
	// query's; it is not passed as a field either.
	text bool
	// choices are the values the field may take.
	choices []string
	// duration fields hold a duration such as 2s.
	duration bool
	// statusCodes lists hold HTTP status codes or ranges such as 200-299.
	statusCodes bool
	// integer fields hold an integer from min to max.
	integer  bool
	min, max int
}

// queryKinds declares every query kind, in the order messages name them.
var queryKinds = []kindSpec{
	{name: KindPrometheus, sourceNoun: "source", series: true, ranged: true},
	{name: KindKafka, sourceNoun: "cluster", series: true, fields: []kindField{
		{name: "cluster", source: true},
		{name: "group", required: true},
		{name: "topics", list: true},
		{name: "aggregate", choices: []string{"sum", "max", "none"}},
		{name: "from", choices: []string{"earliest", "ignore"}},
		{name: "value", choices: []string{"lag", "growth"}},
	}},
	{name: KindHTTP, sourceNoun: "source", probe: true, record: HTTPProbe{}, fields: []kindField{
		{name: "url", required: true},
		{name: "method", choices: []string{"GET", "HEAD", "POST", "PUT"}},
		{name: "headers", headers: true},
		{name: "body"},
		{name: "expect", list: true, statusCodes: true},
		{name: "timeout", duration: true},
		{name: "retries", integer: true, min: 0, max: 10},
		{name: "json"},
	}},
	{name: KindTCP, sourceNoun: "source", probe: true, record: TCPProbe{}, fields: []kindField{
		{name: "address", required: true},
		{name: "timeout", duration: true},
	}},
	{name: KindPostgres, sourceNoun: "database", record: PostgresProbe{}, fields: []kindField{
		{name: "database", source: true},
		{name: "query", required: true, text: true},
		{name: "timeout", duration: true},
	}},
}

// kindOf returns the declaration of a query kind, or nil.
func kindOf(name string) *kindSpec {
	for i := range queryKinds {
		if queryKinds[i].name == name {
			return &queryKinds[i]
		}
	}
	return nil
}

// kindNames names the kinds that have a property, for messages:
// "prometheus and kafka".
func kindNames(has func(*kindSpec) bool) string {
	var names []string
	for i := range queryKinds {
		if has(&queryKinds[i]) {
			names = append(names, queryKinds[i].name)
		}
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// HTTPProbe is an http query's result as expressions see it:
// `api.up == 1 && api.latency_ms < 300`.
type HTTPProbe struct {
	Up        float64 `expr:"up"`
	Status    float64 `expr:"status"`
	LatencyMs float64 `expr:"latency_ms"`
	// Value is the number read from the JSON body by the query's json
	// path.
	Value float64 `expr:"value"`
}

// TCPProbe is a tcp query's result.
type TCPProbe struct {
	Up        float64 `expr:"up"`
	LatencyMs float64 `expr:"latency_ms"`
}

// PostgresProbe is a postgres query's result.
type PostgresProbe struct {
	Up        float64 `expr:"up"`
	LatencyMs float64 `expr:"latency_ms"`
	Value     float64 `expr:"value"`
}

// recordFields are the fields of each record kind, in the order of its
// type's fields, as sources name them in queries.Result.Values: read once
// from the expr tags of the kind's record type.
var recordFields = func() map[string][]string {
	out := map[string][]string{}
	for _, k := range queryKinds {
		if k.record == nil {
			continue
		}
		t := reflect.TypeOf(k.record)
		for i := range t.NumField() {
			out[k.name] = append(out[k.name], t.Field(i).Tag.Get("expr"))
		}
	}
	return out
}()

// RecordFields returns the fields a record kind's results have.
func RecordFields(kind string) []string { return recordFields[kind] }

// NewRecord builds the expression value of a record query from a source's
// values; a missing value is NaN.
func NewRecord(kind string, values map[string]float64) any {
	k := kindOf(kind)
	if k == nil || k.record == nil {
		return nil
	}
	rec := reflect.New(reflect.TypeOf(k.record)).Elem()
	for i, name := range recordFields[kind] {
		v, ok := values[name]
		if !ok {
			v = math.NaN()
		}
		rec.Field(i).SetFloat(v)
	}
	return rec.Interface()
}

func recordZero(kind string) any { return NewRecord(kind, nil) }

// structured parses the mapping of a kind that has fields into field
// templates, as the kind's declaration says.
// src is set to the field that names the query's source, if one does and
// none did before.
func (p *parser) structured(n *yaml.Node, k *kindSpec, q *Query, pol *Policy, s scope, src **yaml.Node) {
	q.Fields = map[string]*template.Template{}
	q.FieldText = map[string]string{}
	given := map[string]bool{}
	handlers := make(map[string]func(k, v *yaml.Node), len(k.fields))
	for _, f := range k.fields {
		handlers[f.name] = func(key, v *yaml.Node) {
			given[f.name] = true
			if p.kindField(f, v, q, pol, s) && f.source && *src == nil {
				*src = key
			}
		}
	}
	if !p.fields(n, s, q.Kind, handlers) {
		return
	}
	for _, f := range k.fields {
		if f.required && !given[f.name] {
			p.errorf(n, s, "%s query needs %s", q.Kind, f.name)
		}
	}
}

// kindField reads one field of a structured query; it reports whether the
// field is a string, as most must be.
func (p *parser) kindField(f kindField, v *yaml.Node, q *Query, pol *Policy, s scope) bool {
	what := q.Kind + "." + f.name
	switch {
	case f.source:
		return p.sourceAlias(v, q, s, what)
	case f.headers:
		p.entries(v, s, what, "header", func(hk, hv *yaml.Node) {
			if text, ok := p.str(hv, s, what+"."+hk.Value); ok {
				p.fieldTemplate(hv, q, "header."+hk.Value, text, pol, s)
			}
		})
	case f.list:
		if v.Kind != yaml.SequenceNode {
			p.errorf(v, s, "%s must be a list", what)
			return false
		}
		var items []string
		for _, it := range v.Content {
			text, ok := p.str(it, s, what)
			if !ok {
				continue
			}
			if strings.Contains(text, ",") {
				p.errorf(it, s, "%s: %q: an item cannot contain a comma", what, text)
			}
			if static(text) {
				p.checkValue(f, it, what, text, s)
			}
			items = append(items, text)
		}
		p.fieldTemplate(v, q, f.name, strings.Join(items, ","), pol, s)
	default:
		text, ok := p.str(v, s, what)
		if !ok {
			return false
		}
		if static(text) {
			p.checkValue(f, v, what, text, s)
		}
		if p.fieldTemplate(v, q, f.name, text, pol, s) && f.text {
			// The text is the query's, as PromQL is for prometheus.
			q.Text, q.Template = text, q.Fields[f.name]
			delete(q.Fields, f.name)
			delete(q.FieldText, f.name)
		}
	}
	return true
}

// static reports whether a field's text holds no template action, so that
// its value is known at load.
func static(text string) bool { return !strings.Contains(text, "{{") }

// checkValue checks a value whose field has a fixed form; a templated one
// is checked by its source once rendered.
func (p *parser) checkValue(f kindField, n *yaml.Node, what, v string, s scope) {
	switch {
	case f.choices != nil:
		if !slices.Contains(f.choices, v) {
			p.errorf(n, s, "%s must be one of %s, got %q", what, strings.Join(f.choices, ", "), v)
		}
	case f.duration:
		if _, err := model.ParseDuration(v); err != nil {
			p.errorf(n, s, "%s: bad duration %q: use a number and a unit, e.g. 2s", what, v)
		}
	case f.integer:
		if i, err := strconv.Atoi(v); err != nil || i < f.min || i > f.max {
			p.errorf(n, s, "%s must be an integer from %d to %d, got %q", what, f.min, f.max, v)
		}
	case f.statusCodes:
		if !validStatusSpec(v) {
			p.errorf(n, s, "%s: %q is not a status code or a range such as 200-299", what, v)
		}
	}
}

// sourceAlias reads a field that names the query's source, such as
// kafka.cluster, and reports whether it is a string.
func (p *parser) sourceAlias(v *yaml.Node, q *Query, s scope, what string) bool {
	name, ok := p.str(v, s, what)
	if !ok {
		return false
	}
	if q.Source != "" && q.Source != name {
		p.errorf(v, s, "%s %q contradicts source %q", what, name, q.Source)
	}
	q.Source = name
	return true
}

// checkSource reports a source the server has not configured, at the field
// that names it, or at the query when it names none and the default is
// missing: such a query would fail on every analysis, so it must not load.
func (p *parser) checkSource(kind, name string, at *yaml.Node, s scope) {
	if p.sources == nil {
		return
	}
	k := kindOf(kind)
	configured := slices.Clone(p.sources[kind])
	if k.probe {
		configured = append(configured, "")
	}
	slices.Sort(configured)
	configured = slices.Compact(configured)
	if slices.Contains(configured, name) {
		return
	}
	what := kind + " " + k.sourceNoun
	if len(configured) == 0 {
		subject := fmt.Sprintf("%s %q", what, name)
		if name == "" {
			subject = "the default " + what
		}
		p.errorf(at, s, "%s is not configured (the server configures no %s)", subject, what)
		return
	}
	names := make([]string, len(configured))
	for i, c := range configured {
		names[i] = strconv.Quote(c)
		if c == "" {
			names[i] = "the default"
		}
	}
	if name == "" {
		// The query names none: say where a name goes.
		field := "source"
		for _, f := range k.fields {
			if f.source {
				field = kind + "." + f.name
			}
		}
		p.errorf(at, s, "the default %s is not configured (configured: %s): name one with %s", what, strings.Join(names, ", "), field)
		return
	}
	p.errorf(at, s, "%s %q is not configured (configured: %s)", what, name, strings.Join(names, ", "))
}

// fieldTemplate parses a field's template, checks that it reads only
// declared params and keeps it; it reports whether the template parsed.
func (p *parser) fieldTemplate(n *yaml.Node, q *Query, name, text string, pol *Policy, s scope) bool {
	t, err := parseTemplate(q.Name+"."+name, text)
	if err != nil {
		p.errorf(n, s, "%s.%s: bad template: %v", q.Kind, name, err)
		return false
	}
	for _, ref := range templateRefs(t) {
		if pol.params[ref.name] == nil {
			p.errorf(n, s, "%s.%s: template references unknown param %q (declare it under spec.params)", q.Kind, name, ref.name)
			continue
		}
		if !slices.Contains(q.ParamRefs, ref.name) {
			q.ParamRefs = append(q.ParamRefs, ref.name)
		}
	}
	q.Fields[name] = t
	q.FieldText[name] = text
	return true
}

func validStatusSpec(s string) bool {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	code := func(x string) (int, bool) {
		c, err := strconv.Atoi(x)
		return c, err == nil && c >= 100 && c <= 599
	}
	a, ok := code(lo)
	if !ok {
		return false
	}
	if !isRange {
		return true
	}
	b, ok := code(hi)
	return ok && b >= a
}

func describeKinds() string {
	names := make([]string, len(queryKinds))
	for i, k := range queryKinds {
		names[i] = k.name
	}
	return fmt.Sprintf("one of %s", strings.Join(names, ", "))
}
