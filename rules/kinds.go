package rules

import (
	"fmt"
	"math"
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

// queryKinds lists the kinds in the order errors name them.
var queryKinds = []string{KindPrometheus, KindKafka, KindHTTP, KindTCP, KindPostgres}

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

// recordFields are the fields of each record kind, as sources name them in
// queries.Result.Values.
var recordFields = map[string][]string{
	KindHTTP:     {"up", "status", "latency_ms", "value"},
	KindTCP:      {"up", "latency_ms"},
	KindPostgres: {"up", "latency_ms", "value"},
}

// RecordFields returns the fields a record kind's results have.
func RecordFields(kind string) []string { return recordFields[kind] }

// NewRecord builds the expression value of a record query from a source's
// values; a missing value is NaN.
func NewRecord(kind string, values map[string]float64) any {
	get := func(k string) float64 {
		if v, ok := values[k]; ok {
			return v
		}
		return math.NaN()
	}
	switch kind {
	case KindHTTP:
		return HTTPProbe{Up: get("up"), Status: get("status"), LatencyMs: get("latency_ms"), Value: get("value")}
	case KindTCP:
		return TCPProbe{Up: get("up"), LatencyMs: get("latency_ms")}
	case KindPostgres:
		return PostgresProbe{Up: get("up"), LatencyMs: get("latency_ms"), Value: get("value")}
	}
	return nil
}

func recordZero(kind string) any { return NewRecord(kind, nil) }

// structured parses a Kafka, HTTP, TCP or PostgreSQL query's mapping into
// field templates. Every string field is a template over the params;
// fixed choices are checked at load when they hold no template action.
func (p *parser) structured(n *yaml.Node, q *Query, pol *Policy, s scope) {
	q.Fields = map[string]*template.Template{}
	q.FieldText = map[string]string{}
	nodes := map[string]*yaml.Node{}
	field := func(name string, v *yaml.Node) {
		nodes[name] = v
		text, ok := p.str(v, s, q.Kind+"."+name)
		if !ok {
			return
		}
		p.fieldTemplate(v, q, name, text, pol, s)
	}
	list := func(name string) func(_, v *yaml.Node) {
		return func(_, v *yaml.Node) {
			if v.Kind != yaml.SequenceNode {
				p.errorf(v, s, "%s.%s must be a list", q.Kind, name)
				return
			}
			nodes[name] = v
			var items []string
			for _, it := range v.Content {
				if text, ok := p.str(it, s, q.Kind+"."+name); ok {
					if strings.Contains(text, ",") {
						p.errorf(it, s, "%s.%s: %q: an item cannot contain a comma", q.Kind, name, text)
					}
					items = append(items, text)
				}
			}
			p.fieldTemplate(v, q, name, strings.Join(items, ","), pol, s)
		}
	}
	simple := func(names ...string) map[string]func(k, v *yaml.Node) {
		m := map[string]func(k, v *yaml.Node){}
		for _, name := range names {
			m[name] = func(_, v *yaml.Node) { field(name, v) }
		}
		return m
	}
	var handlers map[string]func(k, v *yaml.Node)
	switch q.Kind {
	case KindKafka:
		handlers = simple("group", "aggregate", "from", "value")
		handlers["topics"] = list("topics")
		handlers["cluster"] = func(_, v *yaml.Node) { p.sourceAlias(v, q, s, "kafka.cluster") }
	case KindHTTP:
		handlers = simple("url", "method", "body", "timeout", "retries", "json")
		handlers["expect"] = list("expect")
		handlers["headers"] = func(_, v *yaml.Node) {
			p.entries(v, s, "http.headers", "header", func(k, hv *yaml.Node) {
				if text, ok := p.str(hv, s, "http.headers."+k.Value); ok {
					p.fieldTemplate(hv, q, "header."+k.Value, text, pol, s)
				}
			})
		}
	case KindTCP:
		handlers = simple("address", "timeout")
	case KindPostgres:
		handlers = simple("query", "timeout")
		handlers["database"] = func(_, v *yaml.Node) { p.sourceAlias(v, q, s, "postgres.database") }
	}
	if !p.fields(n, s, q.Kind, handlers) {
		return
	}
	required := map[string]string{KindKafka: "group", KindHTTP: "url", KindTCP: "address", KindPostgres: "query"}[q.Kind]
	if _, ok := q.FieldText[required]; !ok {
		p.errorf(n, s, "%s query needs %s", q.Kind, required)
	}
	p.checkChoices(nodes, q, s)
	if q.Kind == KindPostgres {
		// The SQL is the query's text, as PromQL is for prometheus.
		q.Text, q.Template = q.FieldText["query"], q.Fields["query"]
		delete(q.Fields, "query")
		delete(q.FieldText, "query")
	}
}

func (p *parser) sourceAlias(v *yaml.Node, q *Query, s scope, what string) {
	name, ok := p.str(v, s, what)
	if !ok {
		return
	}
	if q.Source != "" && q.Source != name {
		p.errorf(v, s, "%s %q contradicts source %q", what, name, q.Source)
	}
	q.Source = name
}

func (p *parser) fieldTemplate(n *yaml.Node, q *Query, name, text string, pol *Policy, s scope) {
	t, err := parseTemplate(q.Name+"."+name, text)
	if err != nil {
		p.errorf(n, s, "%s.%s: bad template: %v", q.Kind, name, err)
		return
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
}

// checkChoices validates the fields with a fixed set of values, unless they
// are templated, in which case the source checks the rendered value.
func (p *parser) checkChoices(nodes map[string]*yaml.Node, q *Query, s scope) {
	static := func(name string) (string, bool) {
		text, ok := q.FieldText[name]
		return text, ok && !strings.Contains(text, "{{")
	}
	oneOf := func(name string, allowed ...string) {
		if v, ok := static(name); ok && !slices.Contains(allowed, v) {
			p.errorf(nodes[name], s, "%s.%s must be one of %s, got %q", q.Kind, name, strings.Join(allowed, ", "), v)
		}
	}
	if v, ok := static("timeout"); ok {
		if _, err := model.ParseDuration(v); err != nil {
			p.errorf(nodes["timeout"], s, "%s.timeout: bad duration %q: use a number and a unit, e.g. 2s", q.Kind, v)
		}
	}
	switch q.Kind {
	case KindKafka:
		oneOf("aggregate", "sum", "max", "none")
		oneOf("from", "earliest", "ignore")
		oneOf("value", "lag", "growth")
	case KindHTTP:
		oneOf("method", "GET", "HEAD", "POST", "PUT")
		if v, ok := static("retries"); ok {
			if r, err := strconv.Atoi(v); err != nil || r < 0 || r > 10 {
				p.errorf(nodes["retries"], s, "http.retries must be an integer from 0 to 10, got %q", v)
			}
		}
		if v, ok := static("expect"); ok {
			for _, part := range strings.Split(v, ",") {
				if !validStatusSpec(part) {
					p.errorf(nodes["expect"], s, "http.expect: %q is not a status code or a range such as 200-299", part)
				}
			}
		}
	}
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
	return fmt.Sprintf("one of %s", strings.Join(queryKinds, ", "))
}
