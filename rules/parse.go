package rules

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

var (
	// nameRE is what policy and rule names look like: Kubernetes-name-like,
	// so they are safe in URLs, metric labels and log lines.
	nameRE = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]{0,251}[A-Za-z0-9])?$`)
	// identRE is what query and param names look like: they become expr
	// variables and template fields.
	identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	// yamlLineRE pulls the line out of a yaml.v3 syntax error, which carries
	// no column.
	yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// Defaults applied to omitted fields.
const (
	DefaultWeight    = 1.0
	DefaultMaxSeries = 1
	DefaultStep      = 30 * time.Second
	// maxPartitions is how many samples a per-partition Kafka query may
	// return unless it declares maxSeries.
	maxPartitions = 100000
	// maxQueryText bounds a query template; a policy file is trusted, but a
	// megabyte of PromQL is a mistake worth reporting.
	maxQueryText = 64 << 10
)

// Parse parses and compiles every policy document in data. file names the
// data in error messages. All problems are returned together as Errors;
// policies are returned only when there are none.
func Parse(file string, data []byte) ([]*Policy, error) {
	policies, errs := parseDocs(file, data, Options{})
	if len(errs) > 0 {
		return nil, errs
	}
	return policies, nil
}

// parseDocs returns the policies it could read along with every problem, so
// that Load can also report names that clash across files.
func parseDocs(file string, data []byte, o Options) ([]*Policy, Errors) {
	p := &parser{file: file, src: data, sources: o.Sources}
	policies := p.parse()
	p.errs.sort()
	return policies, p.errs
}

// parser walks yaml.Node trees by hand rather than decoding into structs, so
// that every error has a position and parsing carries on past the first one.
type parser struct {
	file string
	src  []byte
	errs Errors
	// sources are the sources the server has configured; nil checks
	// nothing.
	sources Sources
}

// scope names where in a policy an error is.
type scope struct {
	policy, rule, query string
}

func (p *parser) errorf(n *yaml.Node, s scope, format string, args ...any) {
	e := &Error{File: p.file, Policy: s.policy, Rule: s.rule, Query: s.query, Err: fmt.Errorf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	p.errs = append(p.errs, e)
}

func (p *parser) errorAt(line, col int, s scope, err error) {
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Column: col, Policy: s.policy, Rule: s.rule, Query: s.query, Err: err})
}

func (p *parser) parse() []*Policy {
	dec := yaml.NewDecoder(bytes.NewReader(p.src))
	var policies []*Policy
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			p.syntaxError(err)
			break
		}
		if len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
			continue // an empty document between separators
		}
		if pol := p.policy(doc.Content[0]); pol != nil {
			policies = append(policies, pol)
		}
	}
	return policies
}

func (p *parser) syntaxError(err error) {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		// yaml.v3 reports no column for syntax errors: point at the line.
		p.errorAt(line, 1, scope{}, fmt.Errorf("yaml: %s", m[2]))
		return
	}
	p.errorAt(0, 0, scope{}, err)
}

// fields walks a mapping node, calling the handler for each known key and
// reporting unknown and repeated keys. It returns false when n is not a
// mapping (a null node counts as an empty mapping).
func (p *parser) fields(n *yaml.Node, s scope, what string, handlers map[string]func(k, v *yaml.Node)) bool {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return true
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, s, "%s must be a mapping", what)
		return false
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			p.errorf(k, s, "%s: field %q repeated", what, k.Value)
			continue
		}
		seen[k.Value] = true
		h, ok := handlers[k.Value]
		if !ok {
			p.errorf(k, s, "%s: unknown field %q", what, k.Value)
			continue
		}
		h(k, v)
	}
	return true
}

// entries walks a mapping whose keys are names (params, queries), reporting
// repeated names.
func (p *parser) entries(n *yaml.Node, s scope, what, one string, each func(k, v *yaml.Node)) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, s, "%s must be a mapping of names", what)
		return
	}
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if first, dup := seen[k.Value]; dup {
			p.errorf(k, s, "duplicate %s name %q (first at %d:%d)", one, k.Value, first.Line, first.Column)
			continue
		}
		seen[k.Value] = k
		each(k, v)
	}
}

func (p *parser) str(n *yaml.Node, s scope, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, s, "%s must be a string", what)
		return "", false
	}
	return n.Value, true
}

func (p *parser) boolean(n *yaml.Node, s scope, what string) bool {
	var b bool
	if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil || n.Tag != "!!bool" {
		p.errorf(n, s, "%s must be true or false, got %q", what, n.Value)
	}
	return b
}

func (p *parser) integer(n *yaml.Node, s scope, what string, lo, hi int) int {
	i, err := strconv.Atoi(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		p.errorf(n, s, "%s must be an integer, got %q", what, n.Value)
		return 0
	}
	if i < lo || i > hi {
		p.errorf(n, s, "%s must be between %d and %d, got %d", what, lo, hi, i)
	}
	return i
}

func (p *parser) number(n *yaml.Node, s scope, what string) float64 {
	f, err := strconv.ParseFloat(n.Value, 64)
	if n.Kind != yaml.ScalarNode || err != nil {
		p.errorf(n, s, "%s must be a number, got %q", what, n.Value)
		return 0
	}
	return f
}

func (p *parser) duration(n *yaml.Node, s scope, what string) time.Duration {
	v, ok := p.str(n, s, what)
	if !ok {
		return 0
	}
	d, err := model.ParseDuration(v)
	if err != nil {
		p.errorf(n, s, "%s: bad duration %q: use a number and a unit, e.g. 30s, 5m, 1h", what, v)
		return 0
	}
	return time.Duration(d)
}

func (p *parser) policy(n *yaml.Node) *Policy {
	pol := &Policy{File: p.file, Line: n.Line, Column: n.Column}
	// Read metadata first so that every later error names the policy.
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "metadata" {
				p.metadata(n.Content[i+1], pol)
			}
		}
	}
	s := scope{policy: pol.Name}
	var apiVersion, kind, spec *yaml.Node
	ok := p.fields(n, s, "policy", map[string]func(k, v *yaml.Node){
		"apiVersion": func(_, v *yaml.Node) { apiVersion = v },
		"kind":       func(_, v *yaml.Node) { kind = v },
		"metadata":   func(_, _ *yaml.Node) {},
		"spec":       func(_, v *yaml.Node) { spec = v },
	})
	if !ok {
		return nil
	}
	switch {
	case apiVersion == nil:
		p.errorf(n, s, "missing apiVersion (want %s)", APIVersion)
	case apiVersion.Value != APIVersion:
		p.errorf(apiVersion, s, "apiVersion %q is not supported (want %s)", apiVersion.Value, APIVersion)
	}
	switch {
	case kind == nil:
		p.errorf(n, s, "missing kind (want %s)", Kind)
	case kind.Value != Kind:
		p.errorf(kind, s, "kind %q is not supported (want %s)", kind.Value, Kind)
	}
	if pol.Name == "" {
		p.errorf(n, s, "missing metadata.name")
	}
	if spec == nil {
		p.errorf(n, s, "missing spec")
		return pol
	}
	p.spec(spec, pol, s)
	return pol
}

func (p *parser) metadata(n *yaml.Node, pol *Policy) {
	var name *yaml.Node
	p.fields(n, scope{}, "metadata", map[string]func(k, v *yaml.Node){
		"name": func(_, v *yaml.Node) { name = v },
		"description": func(_, v *yaml.Node) {
			pol.Description, _ = p.str(v, scope{}, "metadata.description")
		},
		"labels":      func(_, v *yaml.Node) { pol.Labels = p.stringMap(v, scope{}, "metadata.labels") },
		"annotations": func(_, v *yaml.Node) { p.stringMap(v, scope{}, "metadata.annotations") },
	})
	if name == nil {
		return
	}
	if v, ok := p.str(name, scope{}, "metadata.name"); ok {
		if !nameRE.MatchString(v) {
			p.errorf(name, scope{}, "metadata.name %q must be a Kubernetes-style name (letters, digits, '-', '_', '.')", v)
		}
		pol.Name = v
	}
}

func (p *parser) stringMap(n *yaml.Node, s scope, what string) map[string]string {
	m := map[string]string{}
	p.entries(n, s, what, "key", func(k, v *yaml.Node) {
		if val, ok := p.str(v, s, what+"."+k.Value); ok {
			m[k.Value] = val
		}
	})
	return m
}

// sections are the nodes of a spec's sections, as the first phase of
// reading a spec finds them.
type sections struct {
	description, params, queries, rules, compare, scoring *yaml.Node
	decision, alerts, traffic, rollout, probes            *yaml.Node
	notifications, dryRun                                 *yaml.Node
}

// spec reads a policy's spec in two phases, so that the order a file writes
// its sections in never matters. The first collects each section's node,
// reporting unknown and repeated fields; the second reads the sections in
// the order they depend on one another: params, then the queries that
// render them, the rules and comparisons over the queries, the scoring of
// those, the decision rules over the queries, the alerts and traffic
// templated over the params, the rollout gated on the rules, the probes.
func (p *parser) spec(n *yaml.Node, pol *Policy, s scope) {
	var sec sections
	p.fields(n, s, "spec", map[string]func(k, v *yaml.Node){
		"description":   func(_, v *yaml.Node) { sec.description = v },
		"params":        func(_, v *yaml.Node) { sec.params = v },
		"queries":       func(_, v *yaml.Node) { sec.queries = v },
		"rules":         func(_, v *yaml.Node) { sec.rules = v },
		"compare":       func(_, v *yaml.Node) { sec.compare = v },
		"scoring":       func(_, v *yaml.Node) { sec.scoring = v },
		"decision":      func(_, v *yaml.Node) { sec.decision = v },
		"alerts":        func(_, v *yaml.Node) { sec.alerts = v },
		"traffic":       func(_, v *yaml.Node) { sec.traffic = v },
		"rollout":       func(_, v *yaml.Node) { sec.rollout = v },
		"probes":        func(_, v *yaml.Node) { sec.probes = v },
		"notifications": func(_, v *yaml.Node) { sec.notifications = v },
		"dryRun":        func(_, v *yaml.Node) { sec.dryRun = v },
	})

	if sec.description != nil {
		pol.Description, _ = p.str(sec.description, s, "description")
	}
	pol.params = map[string]*Param{}
	if sec.params != nil {
		p.params(sec.params, pol, s)
	}
	pol.queries = map[string]*Query{}
	if sec.queries != nil {
		p.queries(sec.queries, pol, s)
	}
	switch {
	case sec.rules != nil:
		p.rules(sec.rules, pol, s)
	case sec.compare == nil:
		p.errorf(n, s, "spec.rules: a policy needs at least one rule or comparison")
	}
	if sec.compare != nil {
		p.comparisons(sec.compare, pol, s)
	}
	if sec.scoring != nil {
		p.scoring(sec.scoring, pol, s)
	}
	pol.Decision = Decision{OnFail: ActionRollback, OnInconclusive: ActionPause, Location: time.UTC}
	if sec.decision != nil {
		p.decision(sec.decision, pol, s)
	}
	if sec.alerts != nil {
		p.alerts(sec.alerts, pol, s)
	}
	if sec.traffic != nil {
		pol.Traffic = p.traffic(sec.traffic, pol, s)
	}
	if sec.rollout != nil {
		pol.Rollout = p.rollout(sec.rollout, pol, s)
	}
	if sec.probes != nil {
		pol.Probes = p.probes(sec.probes, s)
	}
	pol.Notifications = defaultNotifications()
	if sec.notifications != nil {
		p.notifications(sec.notifications, pol, s)
	}
	if sec.dryRun != nil {
		p.dryRun(sec.dryRun, sec.alerts, pol, s)
	}
	pol.hasDryRun = pol.DryRun ||
		slices.ContainsFunc(pol.Rules, func(r *Rule) bool { return r.DryRun }) ||
		slices.ContainsFunc(pol.Decision.Rules, func(d *DecisionRule) bool { return d.DryRun })
}

// dryRun reads spec.dryRun. A shadow policy changes no verdict, so what
// would act on one of its failures is refused rather than left never to
// fire: alerts latch rollbacks whatever the rules say, and latchOnFail
// would latch a failure the policy never reports.
func (p *parser) dryRun(n, alerts *yaml.Node, pol *Policy, s scope) {
	if pol.DryRun = p.boolean(n, s, "spec.dryRun"); !pol.DryRun {
		return
	}
	if alerts != nil && len(pol.Alerts) > 0 {
		p.errorf(alerts, s, "spec.alerts: a dryRun policy changes no verdict, but its alerts would latch rollbacks: remove them, or spec.dryRun")
	}
	if pol.Decision.LatchOnFail {
		p.errorf(n, s, "spec.dryRun: a dryRun policy never fails, so decision.latchOnFail would never latch: remove one of them")
	}
}

func (p *parser) params(n *yaml.Node, pol *Policy, s scope) {
	p.entries(n, s, "params", "param", func(k, v *yaml.Node) {
		par := &Param{Name: k.Value}
		if !identRE.MatchString(k.Value) {
			p.errorf(k, s, "param name %q must be an identifier (letters, digits, '_')", k.Value)
		}
		var def, pat *yaml.Node
		p.fields(v, s, fmt.Sprintf("param %q", k.Value), map[string]func(k, v *yaml.Node){
			"default":     func(_, v *yaml.Node) { def = v },
			"pattern":     func(_, v *yaml.Node) { pat = v },
			"description": func(_, v *yaml.Node) { par.Description, _ = p.str(v, s, "description") },
		})
		par.Regexp = defaultParamRE
		if pat != nil {
			if src, ok := p.str(pat, s, "pattern"); ok {
				re, err := compileParamPattern(src)
				if err != nil {
					p.errorf(pat, s, "param %q: bad pattern: %v", k.Value, err)
				} else {
					par.Pattern, par.Regexp = src, re
				}
			}
		}
		if def != nil {
			if d, ok := p.str(def, s, "default"); ok {
				par.Default, par.HasDefault = d, true
				if reason := par.check(d); reason != "" {
					p.errorf(def, s, "param %q: default %s", k.Value, reason)
				}
			}
		}
		pol.Params = append(pol.Params, par)
		pol.params[par.Name] = par
	})
}

func (p *parser) queries(n *yaml.Node, pol *Policy, s scope) {
	p.entries(n, s, "queries", "query", func(k, v *yaml.Node) {
		qs := s
		qs.query = k.Value
		q := &Query{Name: k.Value}
		if !identRE.MatchString(k.Value) {
			p.errorf(k, qs, "query name must be an identifier (letters, digits, '_'): rules use it as a variable")
		} else if reserved(k.Value) {
			p.errorf(k, qs, "query name %q is reserved by the expression language", k.Value)
		}
		// src is the field that names the query's source, if one does.
		var body, step, rangeNode, maxSeries, src *yaml.Node
		var kinds []string
		kind := func(k, v *yaml.Node) { kinds = append(kinds, k.Value); q.Kind, body = k.Value, v }
		p.fields(v, qs, "query", map[string]func(k, v *yaml.Node){
			KindPrometheus: kind,
			KindKafka:      kind,
			KindHTTP:       kind,
			KindTCP:        kind,
			KindPostgres:   kind,
			"source": func(k, v *yaml.Node) {
				if p.sourceAlias(v, q, qs, "source") {
					src = k
				}
			},
			"maxSeries": func(_, v *yaml.Node) { maxSeries = v; q.MaxSeries = p.integer(v, qs, "maxSeries", 1, 100000) },
			"range":     func(_, v *yaml.Node) { rangeNode = v; q.Range = p.duration(v, qs, "range") },
			"step":      func(_, v *yaml.Node) { step = v; q.Step = p.duration(v, qs, "step") },
		})
		switch {
		case len(kinds) == 0:
			p.errorf(k, qs, "query needs a source kind: %s", describeKinds())
			return
		case len(kinds) > 1:
			p.errorf(k, qs, "query has several source kinds (%s): give one", strings.Join(kinds, ", "))
			return
		}
		spec := kindOf(q.Kind)
		if !spec.ranged {
			for name, n := range map[string]*yaml.Node{"range": rangeNode, "step": step} {
				if n != nil {
					p.errorf(n, qs, "%s is only meaningful for %s queries", name, kindNames(func(k *kindSpec) bool { return k.ranged }))
				}
			}
		}
		if maxSeries != nil && !spec.series {
			p.errorf(maxSeries, qs, "maxSeries is only meaningful for %s queries", kindNames(func(k *kindSpec) bool { return k.series }))
		}
		if step != nil && rangeNode == nil {
			p.errorf(step, qs, "step is only meaningful with range")
		}
		if q.Range > 0 && q.Step == 0 {
			q.Step = min(DefaultStep, q.Range)
		}
		if q.Range > 0 && q.Step > q.Range {
			p.errorf(step, qs, "step %s is longer than range %s", q.Step, q.Range)
		}
		if spec.fields == nil {
			if t, ok := p.str(body, qs, q.Kind); ok {
				q.Text = t
				p.template(body, q, pol, qs)
			}
		} else {
			p.structured(body, spec, q, pol, qs, &src)
		}
		p.checkSource(q.Kind, q.Source, cmp.Or(src, k), qs)
		if q.MaxSeries == 0 {
			q.MaxSeries = DefaultMaxSeries
			if q.Kind == KindKafka && q.FieldText["aggregate"] != "sum" && q.FieldText["aggregate"] != "max" && q.FieldText["aggregate"] != "" {
				// Per-partition lag: one sample per partition.
				q.MaxSeries = maxPartitions
			}
		}
		q.Index = len(pol.Queries)
		pol.Queries = append(pol.Queries, q)
		pol.queries[q.Name] = q
	})
}

// template parses a query template and checks that it reads only declared
// params.
func (p *parser) template(n *yaml.Node, q *Query, pol *Policy, s scope) {
	if len(q.Text) > maxQueryText {
		p.errorf(n, s, "query text is %d bytes, more than %d", len(q.Text), maxQueryText)
		return
	}
	t, err := parseTemplate(q.Name, q.Text)
	if err != nil {
		line, col := p.templatePos(n, err)
		p.errorAt(line, col, s, fmt.Errorf("bad template: %w", err))
		return
	}
	q.Template = t
	for _, ref := range templateRefs(t) {
		if pol.params[ref.name] == nil {
			p.errorAt(n.Line, n.Column, s, fmt.Errorf("template references unknown param %q (declare it under spec.params)", ref.name))
			continue
		}
		if !slices.Contains(q.ParamRefs, ref.name) {
			q.ParamRefs = append(q.ParamRefs, ref.name)
		}
	}
}

// templatePos maps the line in a text/template error to the line in the file.
func (p *parser) templatePos(n *yaml.Node, err error) (int, int) {
	line := n.Line
	m := templateLineRE.FindStringSubmatch(err.Error())
	if m == nil {
		return n.Line, n.Column
	}
	tl, _ := strconv.Atoi(m[1])
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		// The node's position is the block indicator; content starts on
		// the next line.
		line = n.Line + tl
	default:
		if tl == 1 {
			return n.Line, n.Column
		}
		line = n.Line + tl - 1
	}
	return line, p.indent(line)
}

// indent returns the 1-based column of the first non-blank byte of a line.
func (p *parser) indent(line int) int {
	lines := bytes.Split(p.src, []byte("\n"))
	if line < 1 || line > len(lines) {
		return 1
	}
	l := lines[line-1]
	return len(l) - len(bytes.TrimLeft(l, " \t")) + 1
}

func (p *parser) rules(n *yaml.Node, pol *Policy, s scope) {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, s, "spec.rules must be a list")
		return
	}
	if len(n.Content) == 0 {
		p.errorf(n, s, "spec.rules: a policy needs at least one rule")
	}
	seen := map[string]*Rule{}
	for i, rn := range n.Content {
		r := &Rule{Weight: DefaultWeight, NoData: OutcomeInconclusive, Line: rn.Line, Column: rn.Column}
		// Find the name first so every error about this rule names it.
		if rn.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(rn.Content); j += 2 {
				if rn.Content[j].Value == "name" {
					r.Name = rn.Content[j+1].Value
				}
			}
		}
		rs := s
		rs.rule = r.Name
		if r.Name == "" {
			rs.rule = fmt.Sprintf("#%d", i+1)
		}
		var exprNode, nameNode *yaml.Node
		ok := p.fields(rn, rs, "rule", map[string]func(k, v *yaml.Node){
			"name":        func(_, v *yaml.Node) { nameNode = v },
			"description": func(_, v *yaml.Node) { r.Description, _ = p.str(v, rs, "description") },
			"expr":        func(_, v *yaml.Node) { exprNode = v },
			"critical":    func(_, v *yaml.Node) { r.Critical = p.boolean(v, rs, "critical") },
			"dryRun":      func(_, v *yaml.Node) { r.DryRun = p.boolean(v, rs, "dryRun") },
			"group":       func(_, v *yaml.Node) { r.Group, _ = p.str(v, rs, "group") },
			"weight": func(_, v *yaml.Node) {
				if r.Weight = p.number(v, rs, "weight"); r.Weight < 0 {
					p.errorf(v, rs, "weight must not be negative")
				}
			},
			"noData": func(_, v *yaml.Node) {
				switch o := Outcome(v.Value); o {
				case OutcomePass, OutcomeFail, OutcomeInconclusive:
					r.NoData = o
				default:
					p.errorf(v, rs, "noData must be pass, fail or inconclusive, got %q", v.Value)
				}
			},
		})
		if !ok {
			continue
		}
		switch {
		case nameNode == nil:
			p.errorf(rn, rs, "rule needs a name")
		case !nameRE.MatchString(r.Name):
			p.errorf(nameNode, rs, "rule name %q must be a Kubernetes-style name (letters, digits, '-', '_', '.')", r.Name)
		case seen[r.Name] != nil:
			first := seen[r.Name]
			p.errorf(nameNode, rs, "duplicate rule name (first at %d:%d)", first.Line, first.Column)
		default:
			seen[r.Name] = r
		}
		if exprNode == nil {
			p.errorf(rn, rs, "rule needs an expr")
		} else if src, ok := p.str(exprNode, rs, "expr"); ok {
			r.Expr = strings.TrimSpace(src)
			if err := compileRule(r, pol); err != nil {
				p.exprError(exprNode, rs, err)
			}
		}
		pol.Rules = append(pol.Rules, r)
	}
}

func (p *parser) decision(n *yaml.Node, pol *Policy, s scope) {
	p.fields(n, s, "decision", map[string]func(k, v *yaml.Node){
		"onFail": func(_, v *yaml.Node) {
			switch a := Action(v.Value); a {
			case ActionRollback, ActionPause:
				pol.Decision.OnFail = a
			default:
				p.errorf(v, s, "decision.onFail must be rollback or pause, got %q", v.Value)
			}
		},
		"latchOnFail": func(_, v *yaml.Node) { pol.Decision.LatchOnFail = p.boolean(v, s, "decision.latchOnFail") },
		"onInconclusive": func(_, v *yaml.Node) {
			switch a := Action(v.Value); a {
			case ActionPause, ActionContinue:
				pol.Decision.OnInconclusive = a
			default:
				p.errorf(v, s, "decision.onInconclusive must be pause or continue, got %q", v.Value)
			}
		},
		"timezone": func(_, v *yaml.Node) {
			name, ok := p.str(v, s, "decision.timezone")
			if !ok {
				return
			}
			loc, err := time.LoadLocation(name)
			if err != nil {
				p.errorf(v, s, "decision.timezone: %v", err)
				return
			}
			pol.Decision.Location = loc
		},
		"rules": func(_, v *yaml.Node) { p.decisionRules(v, pol, s) },
	})
}

func (p *parser) alerts(n *yaml.Node, pol *Policy, s scope) {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, s, "spec.alerts must be a list")
		return
	}
	for _, an := range n.Content {
		a := &Alert{Action: ActionRollback, Line: an.Line, Column: an.Column}
		p.fields(an, s, "alert", map[string]func(k, v *yaml.Node){
			"match": func(_, v *yaml.Node) {
				a.MatchText = p.stringMap(v, s, "match")
				a.Match = p.matchTemplates(v, a.MatchText, pol, s)
			},
			"matchRegex": func(_, v *yaml.Node) {
				a.MatchRegexText = p.stringMap(v, s, "matchRegex")
				a.MatchRegex = p.matchTemplates(v, a.MatchRegexText, pol, s)
			},
			"action": func(_, v *yaml.Node) {
				switch act := Action(v.Value); act {
				case ActionRollback, ActionPause:
					a.Action = act
				default:
					p.errorf(v, s, "alert action must be rollback or pause, got %q", v.Value)
				}
			},
		})
		if len(a.MatchText) == 0 && len(a.MatchRegexText) == 0 {
			p.errorf(an, s, "alert needs match or matchRegex: an alert matcher that matches everything would latch every run")
		}
		pol.Alerts = append(pol.Alerts, a)
	}
}

func (p *parser) matchTemplates(n *yaml.Node, texts map[string]string, pol *Policy, s scope) map[string]*template.Template {
	out := make(map[string]*template.Template, len(texts))
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		text, ok := texts[k.Value]
		if !ok {
			continue
		}
		t, err := parseTemplate(k.Value, text)
		if err != nil {
			p.errorf(v, s, "alert label %q: bad template: %v", k.Value, err)
			continue
		}
		for _, ref := range templateRefs(t) {
			if pol.params[ref.name] == nil {
				p.errorf(v, s, "alert label %q: template references unknown param %q", k.Value, ref.name)
			}
		}
		out[k.Value] = t
	}
	return out
}

// rollout reads the rollout section. The rules and queries are read by
// then, so the steps' gates and the report's queries are checked here.
func (p *parser) rollout(n *yaml.Node, pol *Policy, s scope) *Rollout {
	r := &Rollout{MaxWeight: 100, FailureLimit: 0, AutoRollback: true}
	pct := func(what string) func(_, v *yaml.Node) {
		return func(_, v *yaml.Node) {
			w := p.integer(v, s, "rollout."+what, 0, 100)
			switch what {
			case "initialWeight":
				r.InitialWeight = w
			case "stepWeight":
				r.StepWeight = w
			case "maxWeight":
				r.MaxWeight = w
			}
		}
	}
	dur := func(dst *time.Duration, what string) func(_, v *yaml.Node) {
		return func(_, v *yaml.Node) { *dst = p.duration(v, s, "rollout."+what) }
	}
	report := func(dst *string, what string) func(_, v *yaml.Node) {
		return func(_, v *yaml.Node) {
			name, ok := p.str(v, s, "rollout.report."+what)
			if !ok {
				return
			}
			if q := pol.queries[name]; q == nil || q.ValueKind() != KindScalar {
				p.errorf(v, s, "rollout.report.%s: %q is not a single-number query of this policy", what, name)
			}
			*dst = name
		}
	}
	p.fields(n, s, "rollout", map[string]func(k, v *yaml.Node){
		"initialWeight":     pct("initialWeight"),
		"stepWeight":        pct("stepWeight"),
		"maxWeight":         pct("maxWeight"),
		"warmup":            dur(&r.Warmup, "warmup"),
		"interval":          dur(&r.Interval, "interval"),
		"stepDuration":      dur(&r.StepDuration, "stepDuration"),
		"promotion":         dur(&r.Promotion, "promotion"),
		"failureLimit":      func(_, v *yaml.Node) { r.FailureLimit = p.integer(v, s, "rollout.failureLimit", 0, 1000) },
		"inconclusiveLimit": func(_, v *yaml.Node) { r.InconclusiveLimit = p.integer(v, s, "rollout.inconclusiveLimit", 0, 1000) },
		"autoRollback":      func(_, v *yaml.Node) { r.AutoRollback = p.boolean(v, s, "rollout.autoRollback") },
		"steps":             func(_, v *yaml.Node) { r.Steps = p.steps(v, pol, s) },
		"report": func(_, v *yaml.Node) {
			p.fields(v, s, "rollout.report", map[string]func(k, v *yaml.Node){
				"errorRate": report(&r.Report.ErrorRate, "errorRate"),
				"latencyMs": report(&r.Report.LatencyMs, "latencyMs"),
			})
		},
	})
	if r.StepWeight > 0 && len(r.Steps) > 0 {
		p.errorf(n, s, "rollout: stepWeight and steps are exclusive")
	}
	if r.InitialWeight > r.MaxWeight {
		p.errorf(n, s, "rollout: initialWeight %d is above maxWeight %d", r.InitialWeight, r.MaxWeight)
	}
	return r
}

func (p *parser) steps(n *yaml.Node, pol *Policy, s scope) []RolloutStep {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, s, "rollout.steps must be a list")
		return nil
	}
	rules := map[string]bool{}
	for _, r := range pol.Rules {
		rules[r.Name] = true
	}
	var steps []RolloutStep
	for i, sn := range n.Content {
		var st RolloutStep
		p.fields(sn, s, "rollout step", map[string]func(k, v *yaml.Node){
			"weight":   func(_, v *yaml.Node) { st.Weight = p.integer(v, s, "step weight", 0, 100) },
			"duration": func(_, v *yaml.Node) { st.Duration = p.duration(v, s, "step duration") },
			"rules": func(_, v *yaml.Node) {
				if v.Kind != yaml.SequenceNode {
					p.errorf(v, s, "step rules must be a list of rule names")
					return
				}
				for _, r := range v.Content {
					if !rules[r.Value] {
						p.errorf(r, s, "rollout step %d gates on unknown rule %q", i+1, r.Value)
					}
					st.Rules = append(st.Rules, r.Value)
				}
			},
		})
		steps = append(steps, st)
	}
	return steps
}
