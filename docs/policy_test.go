package docs_test

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/rules"
)

// The policy reference (policy.md) is checked against the parser's source,
// so that it cannot drift: every field the parser accepts is documented in
// the table of its section, and every field documented there is one the
// parser accepts.
//
// The parser walks YAML mappings with p.fields(node, scope, what,
// handlers), where handlers maps each accepted key to a function. The
// sections and their fields are read from those calls in every file of
// package rules: the keys of each composite literal handed to p.fields,
// under the section its `what` argument names. The query kinds written as
// a mapping (kafka, http, tcp, postgres) are the one exception: their
// handlers are built from the kinds' declaration, the queryKinds table in
// kinds.go, so their fields are read from that table, each kind's section
// named after the kind. Any other way of accepting fields (a handler map
// built elsewhere, a table entry the test cannot read) fails the test, so
// that a new way cannot slip past it.

const rulesDir = "../rules"

// handlerMapType is the type of every handler map: map[string]func(k, v *yaml.Node).
func isHandlerMapType(e ast.Expr) bool {
	m, ok := e.(*ast.MapType)
	if !ok {
		return false
	}
	if k, ok := m.Key.(*ast.Ident); !ok || k.Name != "string" {
		return false
	}
	fn, ok := m.Value.(*ast.FuncType)
	if !ok || fn.Params == nil || len(fn.Params.List) != 1 || len(fn.Params.List[0].Names) != 2 {
		return false
	}
	star, ok := fn.Params.List[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "Node"
}

// rulesSource parses the non-test Go files of package rules.
func rulesSource(t *testing.T) (*token.FileSet, []*ast.File) {
	t.Helper()
	fset := token.NewFileSet()
	paths, err := filepath.Glob(filepath.Join(rulesDir, "*.go"))
	require.NoError(t, err)
	var files []*ast.File
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		require.NoError(t, err)
		files = append(files, f)
	}
	require.NotEmpty(t, files)
	return fset, files
}

// stringConsts returns the package's string constants by name.
func stringConsts(files []*ast.File) map[string]string {
	consts := map[string]string{}
	for _, f := range files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						consts[name.Name], _ = strconv.Unquote(lit.Value)
					}
				}
			}
		}
	}
	return consts
}

// parserFields returns the fields the parser accepts, by section.
func parserFields(t *testing.T) map[string][]string {
	t.Helper()
	fset, files := rulesSource(t)
	consts := stringConsts(files)
	str := func(e ast.Expr) (string, bool) {
		switch e := e.(type) {
		case *ast.BasicLit:
			if e.Kind == token.STRING {
				s, err := strconv.Unquote(e.Value)
				return s, err == nil
			}
		case *ast.Ident:
			s, ok := consts[e.Name]
			return s, ok
		}
		return "", false
	}
	fields := map[string][]string{}
	add := func(section, field string) {
		if !slices.Contains(fields[section], field) {
			fields[section] = append(fields[section], field)
		}
	}
	used := map[*ast.CompositeLit]bool{}
	handlerVars := 0
	for _, f := range files {
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || sel.Sel.Name != "fields" || len(call.Args) != 4 {
					return true
				}
				switch h := call.Args[3].(type) {
				case *ast.CompositeLit:
					section := sectionName(t, fset, call.Args[2], str)
					used[h] = true
					for _, el := range h.Elts {
						kv := el.(*ast.KeyValueExpr)
						key, ok := str(kv.Key)
						require.True(t, ok, "%s: a handler key that is not a string literal or constant", fset.Position(kv.Pos()))
						add(section, key)
					}
				case *ast.Ident:
					// The kinds written as a mapping: handlers built from
					// queryKinds (below), in one function.
					require.Equal(t, "structured", fn.Name.Name, "%s: p.fields with a handlers variable outside structured: the test does not know its fields", fset.Position(call.Pos()))
					handlerVars++
				default:
					t.Fatalf("%s: p.fields with handlers the test does not understand", fset.Position(call.Pos()))
				}
				return true
			})
		}
	}
	for kind, kindFields := range kindTable(t, fset, files, str) {
		require.Contains(t, fields["query"], kind, "queryKinds declares kind %s, which a query does not accept", kind)
		for _, field := range kindFields {
			add(kind, field)
		}
	}
	// Every handler map literal was seen handed to p.fields.
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			if cl, ok := n.(*ast.CompositeLit); ok && isHandlerMapType(cl.Type) && !used[cl] {
				t.Errorf("%s: a handler map not handed to p.fields: the test does not know its section", fset.Position(cl.Pos()))
			}
			return true
		})
	}
	require.Equal(t, 1, handlerVars, "p.fields with a handlers variable: only the structured query kinds' are expected")
	for _, kind := range []string{rules.KindKafka, rules.KindHTTP, rules.KindTCP, rules.KindPostgres} {
		require.NotEmpty(t, fields[kind], "no fields found for query kind %s", kind)
	}
	return fields
}

// kindTable reads the query kinds' declaration, the queryKinds table: the
// fields of each kind that has some, by kind. Every entry and every field
// must be a keyed composite literal with a name the test can read.
func kindTable(t *testing.T, fset *token.FileSet, files []*ast.File, str func(ast.Expr) (string, bool)) map[string][]string {
	t.Helper()
	keyed := func(cl *ast.CompositeLit, key string) ast.Expr {
		for _, el := range cl.Elts {
			kv, ok := el.(*ast.KeyValueExpr)
			require.True(t, ok, "%s: an unkeyed composite literal in queryKinds", fset.Position(el.Pos()))
			if id, ok := kv.Key.(*ast.Ident); ok && id.Name == key {
				return kv.Value
			}
		}
		return nil
	}
	var table *ast.CompositeLit
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok || len(vs.Names) != 1 || vs.Names[0].Name != "queryKinds" || len(vs.Values) != 1 {
				return true
			}
			table, ok = vs.Values[0].(*ast.CompositeLit)
			require.True(t, ok, "%s: queryKinds is not a composite literal", fset.Position(vs.Pos()))
			return false
		})
	}
	require.NotNil(t, table, "queryKinds not found in package rules")
	out := map[string][]string{}
	for _, el := range table.Elts {
		entry, ok := el.(*ast.CompositeLit)
		require.True(t, ok, "%s: a queryKinds entry that is not a composite literal", fset.Position(el.Pos()))
		kind, ok := str(keyed(entry, "name"))
		require.True(t, ok, "%s: a queryKinds entry without a name the test can read", fset.Position(el.Pos()))
		fl := keyed(entry, "fields")
		if fl == nil {
			continue // its body is its text: prometheus
		}
		list, ok := fl.(*ast.CompositeLit)
		require.True(t, ok, "%s: the fields of kind %s are not a composite literal", fset.Position(fl.Pos()), kind)
		for _, fe := range list.Elts {
			field, ok := fe.(*ast.CompositeLit)
			require.True(t, ok, "%s: a field of kind %s that is not a composite literal", fset.Position(fe.Pos()), kind)
			name, ok := str(keyed(field, "name"))
			require.True(t, ok, "%s: a field of kind %s without a name the test can read", fset.Position(fe.Pos()), kind)
			out[kind] = append(out[kind], name)
		}
	}
	return out
}

// sectionName is the section a p.fields call reads, from its `what`
// argument: "spec", "rule", fmt.Sprintf("param %q", ...) as "param".
func sectionName(t *testing.T, fset *token.FileSet, e ast.Expr, str func(ast.Expr) (string, bool)) string {
	if s, ok := str(e); ok {
		return s
	}
	if call, ok := e.(*ast.CallExpr); ok && len(call.Args) > 0 {
		if s, ok := str(call.Args[0]); ok {
			return strings.TrimSpace(strings.SplitN(s, "%", 2)[0])
		}
	}
	t.Fatalf("%s: cannot tell the section of this p.fields call", fset.Position(e.Pos()))
	return ""
}

// mdTable is a table of a Markdown document that follows a marker comment
// such as <!-- fields: rule -->.
type mdTable struct {
	marker string
	line   int
	// first is the first cell of each body row, without its backticks.
	first []string
}

var markerRE = regexp.MustCompile(`^<!--\s*([a-z-]+)(?::\s*(.+?))?\s*-->$`)

// markedTables reads every table that directly follows a marker comment.
func markedTables(t *testing.T, file string) []mdTable {
	t.Helper()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	var tables []mdTable
	var cur *mdTable
	sc := bufio.NewScanner(f)
	n := 0
	inFence := false
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if inFence {
			continue
		}
		if m := markerRE.FindStringSubmatch(line); m != nil {
			marker := m[1]
			if m[2] != "" {
				marker += ":" + m[2]
			}
			tables = append(tables, mdTable{marker: marker, line: n})
			cur = &tables[len(tables)-1]
			continue
		}
		if cur == nil {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			if line != "" || len(cur.first) > 0 {
				cur = nil
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		first := strings.TrimSpace(cells[0])
		if strings.Trim(first, "-: ") == "" || !strings.HasPrefix(first, "`") {
			continue // the header's separator, or the header itself
		}
		cur.first = append(cur.first, strings.Trim(first, "`"))
	}
	require.NoError(t, sc.Err())
	return tables
}

// TestPolicyReferenceFields: policy.md documents exactly the fields the
// parser accepts, section by section.
func TestPolicyReferenceFields(t *testing.T) {
	want := parserFields(t)
	got := map[string][]string{}
	for _, tbl := range markedTables(t, "policy.md") {
		section, ok := strings.CutPrefix(tbl.marker, "fields:")
		if !ok {
			continue
		}
		section = strings.TrimSpace(section)
		require.NotContains(t, got, section, "policy.md:%d: a second table for section %q", tbl.line, section)
		require.NotEmpty(t, tbl.first, "policy.md:%d: the fields table of %q has no rows", tbl.line, section)
		got[section] = tbl.first
	}
	total := 0
	for _, section := range sortedKeys(want) {
		total += len(want[section])
		doc, ok := got[section]
		if !ok {
			t.Errorf("policy.md has no table for section %q (<!-- fields: %s -->); the parser accepts %v", section, section, want[section])
			continue
		}
		for _, f := range want[section] {
			if !slices.Contains(doc, f) {
				t.Errorf("policy.md, section %q: field %q is accepted by the parser but not documented", section, f)
			}
		}
		for _, f := range doc {
			if !slices.Contains(want[section], f) {
				t.Errorf("policy.md, section %q: field %q is documented but the parser does not accept it", section, f)
			}
		}
	}
	for _, section := range sortedKeys(got) {
		if _, ok := want[section]; !ok {
			t.Errorf("policy.md documents section %q, which the parser does not have", section)
		}
	}
	// A floor, so that a parser change the extraction misses shows up as
	// a collapse in the count rather than as a passing test.
	require.Greater(t, total, 60, "too few fields found in the parser: the extraction no longer matches its code")
}

// TestPolicyReferenceHelpers: the template helpers, expression functions
// and expression variables the reference lists are exactly the ones the
// code defines, and the default param pattern is the code's.
func TestPolicyReferenceHelpers(t *testing.T) {
	fset, files := rulesSource(t)
	consts := stringConsts(files)
	mapKeys := func(varName string) []string {
		var keys []string
		for _, f := range files {
			ast.Inspect(f, func(n ast.Node) bool {
				vs, ok := n.(*ast.ValueSpec)
				if !ok || len(vs.Names) != 1 || vs.Names[0].Name != varName || len(vs.Values) != 1 {
					return true
				}
				cl, ok := vs.Values[0].(*ast.CompositeLit)
				require.True(t, ok, "%s: %s is not a composite literal", fset.Position(vs.Pos()), varName)
				for _, el := range cl.Elts {
					k, _ := strconv.Unquote(el.(*ast.KeyValueExpr).Key.(*ast.BasicLit).Value)
					keys = append(keys, k)
				}
				return false
			})
		}
		require.NotEmpty(t, keys, "%s not found in package rules", varName)
		sort.Strings(keys)
		return keys
	}
	// Variables: the consts named ...Var (params, hour, minute, weekday).
	var vars []string
	for name, v := range consts {
		if strings.HasSuffix(name, "Var") {
			vars = append(vars, v)
		}
	}
	sort.Strings(vars)

	tables := map[string][]string{}
	for _, tbl := range markedTables(t, "policy.md") {
		names := slices.Clone(tbl.first)
		for i, n := range names {
			// `pctChange(canary, baseline)` documents pctChange.
			names[i], _, _ = strings.Cut(n, "(")
		}
		sort.Strings(names)
		tables[tbl.marker] = names
	}
	require.Equal(t, mapKeys("templateFuncs"), tables["template-funcs"], "policy.md <!-- template-funcs --> against rules.templateFuncs")
	require.Equal(t, mapKeys("exprFunctionNames"), tables["expr-funcs"], "policy.md <!-- expr-funcs --> against rules.exprFunctionNames")
	require.Equal(t, vars, tables["expr-vars"], "policy.md <!-- expr-vars --> against the rules.*Var constants")

	doc, err := os.ReadFile("policy.md")
	require.NoError(t, err)
	require.Contains(t, string(doc), "`"+rules.DefaultParamPattern+"`", "policy.md quotes the default param pattern")
}

// fence is a fenced code block of a Markdown file.
type fence struct {
	file string
	line int
	info string // the info string: "yaml example"
	text string
}

func fences(t *testing.T, file string) []fence {
	t.Helper()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	var out []fence
	var cur *fence
	var b strings.Builder
	for i, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if !strings.HasPrefix(trimmed, "```") {
			if cur != nil {
				b.WriteString(line)
				b.WriteByte('\n')
			}
			continue
		}
		if cur == nil {
			cur = &fence{file: file, line: i + 2, info: strings.TrimSpace(strings.TrimPrefix(trimmed, "```"))}
			b.Reset()
			continue
		}
		cur.text = b.String()
		out = append(out, *cur)
		cur = nil
	}
	require.Nil(t, cur, "%s: an unclosed code block", file)
	return out
}

func infoWords(info string) []string { return strings.Fields(info) }

// TestDocExamplesLoad: every block marked ```yaml example in the docs is a
// complete policy file that loads, as canary check would load it.
func TestDocExamplesLoad(t *testing.T) {
	mds, err := filepath.Glob("*.md")
	require.NoError(t, err)
	count := map[string]int{}
	for _, md := range mds {
		for _, f := range fences(t, md) {
			w := infoWords(f.info)
			if len(w) < 2 || w[0] != "yaml" || w[1] != "example" {
				continue
			}
			count[md]++
			name := md + ":" + strconv.Itoa(f.line)
			// Blank lines in front, so that errors give the line in the
			// Markdown file.
			pols, err := rules.Parse(md, []byte(strings.Repeat("\n", f.line-1)+f.text))
			require.NoError(t, err, "the example at %s does not load", name)
			require.NotEmpty(t, pols, "%s: an example with no policy", name)
		}
	}
	require.GreaterOrEqual(t, count["policy.md"], 3, "policy.md has complete example policies")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
