// Package importer turns the analysis templates of other tools into
// policies: Argo Rollouts AnalysisTemplates (argo.go), Flagger
// MetricTemplates and Canaries (flagger.go), Keptn AnalysisDefinitions and
// AnalysisValueTemplates (keptn.go).
//
// Each tool has a Decode function, which reads its manifests strictly (an
// unknown field is an error, as the tool's own API server would say), and a
// From function: a pure function from the decoded objects to policy
// documents and the notes of what could not be carried over. A document is
// YAML commented with where each piece came from, and it loads: every
// document is parsed by package rules before it is returned.
//
// What carries over is meant to judge the same numbers the same way; the
// tests hold Argo Rollouts' own evaluation code and Flagger's threshold
// checks to that. Where the engine cannot say what the tool said (a
// setting with no counterpart, a provider other than Prometheus), a note
// says so instead of a guess.
package importer

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/aurum/canary/rules"
)

// Document is one generated policy.
type Document struct {
	// Name is the policy's metadata.name: the template's name.
	Name string
	// From says what the policy was made from, e.g. "AnalysisTemplate
	// success-rate (templates.yaml)".
	From string
	// YAML is the policy document, with comments.
	YAML []byte
}

// Note is something of the input that was not carried over, or not exactly.
type Note struct {
	// From names the object and the part of it, e.g. "AnalysisTemplate
	// success-rate, metric web-check".
	From string
	Text string
}

func (n Note) String() string { return n.From + ": " + n.Text }

// Check parses the document as canary check does and returns the policy.
func (d Document) Check() (*rules.Policy, error) {
	pols, err := rules.Parse(d.Name+".yaml", d.YAML)
	if err != nil {
		return nil, err
	}
	if len(pols) != 1 {
		return nil, fmt.Errorf("%s: %d policies in one document", d.Name, len(pols))
	}
	return pols[0], nil
}

// notes collects notes under a current source.
type notes struct {
	list []Note
}

func (ns *notes) add(from, format string, args ...any) {
	ns.list = append(ns.list, Note{From: from, Text: fmt.Sprintf(format, args...)})
}

// identRE is what a query or param name may be (rules' identRE).
var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// nameRE is what a policy or rule name may be (rules' nameRE).
var nameRE = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]{0,251}[A-Za-z0-9])?$`)

// ident maps a name to a query or param name: every character that cannot
// be in an identifier becomes '_', and a leading digit gets a '_' before
// it. service-name is service_name; a name that is already an identifier
// is kept.
func ident(name string) string {
	var b strings.Builder
	for i, r := range name {
		switch {
		case r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z':
			b.WriteRune(r)
		case r >= '0' && r <= '9':
			if i == 0 {
				b.WriteByte('_')
			}
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}

// reservedIdents are the names rules rejects for a query: expr's own words
// and the engine's functions and variables. A query named after one is
// given a suffix.
var reservedIdents = map[string]bool{
	"params": true, "hour": true, "minute": true, "weekday": true, "true": true, "false": true, "nil": true,
	"not": true, "and": true, "or": true, "in": true, "matches": true, "contains": true, "startsWith": true,
	"endsWith": true, "let": true, "if": true, "else": true, "now": true, "result": true, "success": true,
	"pctChange": true, "ratio": true, "safeDiv": true, "within": true, "isNaN": true, "isInf": true, "mannwhitney": true,
	"len": true, "all": true, "any": true, "none": true, "one": true, "filter": true, "map": true, "count": true,
	"sum": true, "max": true, "min": true, "mean": true, "median": true, "abs": true, "floor": true, "ceil": true,
	"round": true, "int": true, "float": true, "string": true, "first": true, "last": true, "duration": true,
	"date": true, "keys": true, "values": true, "sort": true, "reduce": true, "find": true, "flatten": true,
	"uniq": true, "concat": true, "join": true, "split": true, "trim": true, "type": true, "get": true,
}

// names hands out unique identifiers.
type names map[string]bool

func (ns names) take(want string) string {
	id := ident(want)
	if reservedIdents[id] {
		id += "_q"
	}
	name := id
	for i := 2; ns[name]; i++ {
		name = id + "_" + strconv.Itoa(i)
	}
	ns[name] = true
	return name
}

// ruleName maps a name to a rule name: kept when rules accepts it, else
// its identifier form.
func ruleName(name string) string {
	if nameRE.MatchString(name) {
		return name
	}
	return strings.Trim(ident(name), "_")
}

// The YAML the documents are built from: yaml.v3 nodes, so that each piece
// carries the comment that says where it came from.

func mapping() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode} }

func flowMapping() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle} }

func sequence() *yaml.Node { return &yaml.Node{Kind: yaml.SequenceNode} }

// set appends key: v to mapping m, with comment (if any) above the key.
func set(m *yaml.Node, key string, v *yaml.Node, comment string) {
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key, HeadComment: comment}, v)
}

// str is a string scalar: a block when it has several lines, quoted when
// it would read as another type.
func str(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	if strings.Contains(strings.TrimRight(s, "\n"), "\n") {
		n.Style = yaml.LiteralStyle
		if !strings.HasSuffix(n.Value, "\n") {
			n.Value += "\n"
		}
	}
	return n
}

func integer(i int) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(i)}
}

func boolean(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}

func number(f float64) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: formatNumber(f)}
}

// formatNumber writes f as an expression or YAML reads it back: the
// shortest form that is the same float64.
func formatNumber(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// policy is a document being built.
type policy struct {
	name, from string
	header     string
	params     *yaml.Node
	queries    *yaml.Node
	rules      *yaml.Node
	decision   *yaml.Node
	scoring    *yaml.Node
	rollout    *yaml.Node
	// comments on the sections' keys
	comment map[string]string
}

func newPolicy(name, from, header string) *policy {
	return &policy{
		name: name, from: from, header: header,
		params: mapping(), queries: mapping(), rules: sequence(),
		decision: mapping(), rollout: mapping(), comment: map[string]string{},
	}
}

// document renders the policy and checks that it loads.
func (p *policy) document() (Document, error) {
	spec := mapping()
	for _, s := range []struct {
		key string
		n   *yaml.Node
	}{{"params", p.params}, {"queries", p.queries}, {"rules", p.rules}, {"scoring", p.scoring}, {"decision", p.decision}, {"rollout", p.rollout}} {
		if s.n == nil || len(s.n.Content) == 0 {
			continue
		}
		set(spec, s.key, s.n, p.comment[s.key])
	}
	meta := mapping()
	set(meta, "name", str(p.name), "")
	root := mapping()
	set(root, "apiVersion", str(rules.APIVersion), "")
	set(root, "kind", str(rules.Kind), "")
	set(root, "metadata", meta, "")
	set(root, "spec", spec, "")
	doc := &yaml.Node{Kind: yaml.DocumentNode, HeadComment: p.header, Content: []*yaml.Node{root}}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return Document{}, fmt.Errorf("%s: %w", p.from, err)
	}
	if err := enc.Close(); err != nil {
		return Document{}, fmt.Errorf("%s: %w", p.from, err)
	}
	d := Document{Name: p.name, From: p.from, YAML: b.Bytes()}
	if _, err := d.Check(); err != nil {
		// A document that does not load is this package's bug, not
		// the input's: say so with the document.
		return Document{}, fmt.Errorf("%s: the imported policy does not load (a bug of canary import): %w\n%s", p.from, err, d.YAML)
	}
	return d, nil
}

// rulesAcceptDryRun reports whether the policy format has dry-run rules
// (`dryRun: true` on a rule) yet: until it does, a dry-run metric of the
// input is listed as not carried over rather than imported as a rule that
// could roll back.
var rulesAcceptDryRun = sync.OnceValue(func() bool {
	_, err := rules.Parse("probe.yaml", []byte(`apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: probe}
spec:
  queries: {q: {prometheus: vector(1)}}
  rules: [{name: r, expr: q > 0, dryRun: true}]
`))
	return err == nil
})

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func regexpQuote(s string) string { return regexp.QuoteMeta(s) }

// Options tune an import.
type Options struct {
	// MeshProvider is Flagger's -mesh-provider: the provider of the
	// Canaries that name none.
	MeshProvider string
}

// Tools are the tools Import knows.
var Tools = []string{"argo", "flagger", "keptn"}

// Import decodes the files of one tool (their contents in inputs) and
// makes policies of them, as canary import does. Policies whose names
// clash keep the first; the others are notes.
func Import(tool string, files []string, inputs map[string][]byte, o Options) ([]Document, []Note, error) {
	var docs []Document
	var all []Note
	switch tool {
	case "argo":
		for _, f := range files {
			ts, ns, err := DecodeArgo(f, inputs[f])
			if err != nil {
				return nil, nil, err
			}
			all = append(all, ns...)
			for _, t := range ts {
				d, ns, err := FromArgo(t)
				if err != nil {
					return nil, nil, err
				}
				all = append(all, ns...)
				if d != nil {
					docs = append(docs, *d)
				}
			}
		}
	case "flagger":
		var objs FlaggerObjects
		for _, f := range files {
			ns, err := DecodeFlagger(f, inputs[f], &objs)
			if err != nil {
				return nil, nil, err
			}
			all = append(all, ns...)
		}
		ds, ns, err := FromFlagger(objs, o.MeshProvider)
		if err != nil {
			return nil, nil, err
		}
		docs, all = ds, append(all, ns...)
	case "keptn":
		var objs KeptnObjects
		for _, f := range files {
			ns, err := DecodeKeptn(f, inputs[f], &objs)
			if err != nil {
				return nil, nil, err
			}
			all = append(all, ns...)
		}
		ds, ns, err := FromKeptn(objs)
		if err != nil {
			return nil, nil, err
		}
		docs, all = ds, append(all, ns...)
	default:
		return nil, nil, fmt.Errorf("unknown tool %q: want one of %s", tool, strings.Join(Tools, ", "))
	}
	seen := map[string]string{}
	kept := docs[:0]
	for _, d := range docs {
		if first, dup := seen[d.Name]; dup {
			all = append(all, Note{From: d.From, Text: fmt.Sprintf("policy name %s is taken by %s: not written; rename one", d.Name, first)})
			continue
		}
		seen[d.Name] = d.From
		kept = append(kept, d)
	}
	return kept, all, nil
}
