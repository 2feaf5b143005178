package rules

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
)

// DefaultParamPattern admits Kubernetes-name-like values only: letters,
// digits, '-', '_' and '.', starting and ending with a letter or digit. No
// quote, brace, comma, space or operator can get through, so a caller cannot
// close a label matcher and add selectors of their own.
const DefaultParamPattern = `[A-Za-z0-9]([-A-Za-z0-9_.]{0,251}[A-Za-z0-9])?`

// maxParamValue bounds any param value, whatever its pattern says.
const maxParamValue = 1024

var (
	defaultParamRE = regexp.MustCompile(`^(?:` + DefaultParamPattern + `)$`)
	templateLineRE = regexp.MustCompile(`^template: [^:]*:(\d+):`)
)

// IsName reports whether s matches DefaultParamPattern: a Kubernetes-style
// name, safe as a key, a label value and a log field.
func IsName(s string) bool { return len(s) <= maxParamValue && defaultParamRE.MatchString(s) }

// compileParamPattern anchors a pattern: values must match it as a whole, or
// `^[a-z]+` would let anything through after the first letter.
func compileParamPattern(src string) (*regexp.Regexp, error) {
	if _, err := regexp.Compile(src); err != nil {
		return nil, err
	}
	return regexp.Compile(`^(?:` + src + `)$`)
}

// check returns why a value is not acceptable for the param, or "".
func (par *Param) check(v string) string {
	if len(v) > maxParamValue {
		return fmt.Sprintf("is %d bytes long, more than %d", len(v), maxParamValue)
	}
	if !par.Regexp.MatchString(v) {
		pat := par.Pattern
		if pat == "" {
			return fmt.Sprintf("%q is not a Kubernetes-style name", v)
		}
		return fmt.Sprintf("%q does not match pattern %q", v, pat)
	}
	return ""
}

// ResolveParams validates caller params against the policy's declarations
// and fills in defaults. Values the policy does not declare are dropped: they
// cannot reach a template. The error, wrapping ErrInvalidParams, names every
// missing or rejected param on one line.
func (p *Policy) ResolveParams(in map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(p.Params))
	var problems []string
	for _, par := range p.Params {
		v, ok := in[par.Name]
		if !ok {
			if !par.HasDefault {
				problems = append(problems, (&ParamError{Param: par.Name, Reason: "is required"}).Error())
				continue
			}
			v = par.Default
		}
		if reason := par.check(v); reason != "" {
			problems = append(problems, (&ParamError{Param: par.Name, Reason: reason}).Error())
			continue
		}
		out[par.Name] = v
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalidParams, strings.Join(problems, "; "))
	}
	return out, nil
}

// Render executes a query's templates with resolved params: its text
// (PromQL, SQL) and its fields, if it has any.
func (q *Query) Render(params map[string]string) (string, map[string]string, error) {
	if q.TrackParam != "" {
		params = maps.Clone(params)
		params[q.TrackParam] = q.Track
	}
	var text string
	if q.Template != nil {
		var b strings.Builder
		b.Grow(len(q.Text) + 64)
		if err := q.Template.Execute(&b, params); err != nil {
			return "", nil, fmt.Errorf("render query %q: %w", q.Name, err)
		}
		text = b.String()
	}
	if len(q.Fields) == 0 {
		return text, nil, nil
	}
	fields := make(map[string]string, len(q.Fields))
	for name, t := range q.Fields {
		var b strings.Builder
		if err := t.Execute(&b, params); err != nil {
			return "", nil, fmt.Errorf("render query %q, field %s: %w", q.Name, name, err)
		}
		fields[name] = b.String()
	}
	return text, fields, nil
}

// RenderMatchers renders an alert's label matchers with resolved params.
func (a *Alert) RenderMatchers(params map[string]string) (equal, regex map[string]string, err error) {
	render := func(ts map[string]*template.Template) (map[string]string, error) {
		out := make(map[string]string, len(ts))
		for _, name := range slices.Sorted(maps.Keys(ts)) {
			var b strings.Builder
			if err := ts[name].Execute(&b, params); err != nil {
				return nil, fmt.Errorf("render alert label %q: %w", name, err)
			}
			out[name] = b.String()
		}
		return out, nil
	}
	if equal, err = render(a.Match); err != nil {
		return nil, nil, err
	}
	if regex, err = render(a.MatchRegex); err != nil {
		return nil, nil, err
	}
	return equal, regex, nil
}

// templateFuncs are the helpers available in query templates. They escape a
// value for the PromQL context it lands in, for params whose pattern admits
// more than names.
var templateFuncs = template.FuncMap{
	// label escapes a value for the inside of a double-quoted PromQL
	// string: `{app="{{ label .name }}"}`.
	"label": escapeLabel,
	// regex escapes a value so that it matches itself literally inside a
	// regex matcher: `{path=~"{{ regex .prefix }}.*"}`.
	"regex": func(s string) string { return escapeLabel(regexp.QuoteMeta(s)) },
	// quote renders a complete double-quoted PromQL string.
	"quote": func(s string) string { return `"` + escapeLabel(s) + `"` },
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	// trimSuffix and trimPrefix take the affix first so they read well in
	// a pipeline: {{ .name | trimSuffix "-canary" }}.
	"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
	"trimPrefix": func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
}

// escapeLabel escapes backslashes, quotes and control characters as PromQL's
// string lexer expects (Go's escaping rules).
func escapeLabel(s string) string {
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

func parseTemplate(name, text string) (*template.Template, error) {
	return template.New(name).Option("missingkey=error").Funcs(templateFuncs).Parse(text)
}

type templateRef struct{ name string }

// templateRefs lists the params a template reads: `.name` and `$.name`.
func templateRefs(t *template.Template) []templateRef {
	var refs []templateRef
	seen := map[string]bool{}
	add := func(name string) {
		if !seen[name] {
			seen[name] = true
			refs = append(refs, templateRef{name: name})
		}
	}
	var walk func(n parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case nil:
		case *parse.ListNode:
			if n == nil {
				return
			}
			for _, c := range n.Nodes {
				walk(c)
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.PipeNode:
			if n == nil {
				return
			}
			for _, c := range n.Cmds {
				walk(c)
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a)
			}
		case *parse.FieldNode:
			add(n.Ident[0])
		case *parse.VariableNode:
			if len(n.Ident) > 1 && n.Ident[0] == "$" {
				add(n.Ident[1])
			}
		case *parse.ChainNode:
			walk(n.Node)
			if len(n.Field) > 0 {
				if _, isDot := n.Node.(*parse.DotNode); isDot {
					add(n.Field[0])
				}
			}
		case *parse.IfNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.RangeNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.WithNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.TemplateNode:
			walk(n.Pipe)
		}
	}
	if t.Tree != nil {
		walk(t.Root)
	}
	return refs
}
