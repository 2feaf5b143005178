package docs_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// operations.md is checked against the code and the chart: its metrics
// table lists exactly the metrics canary serve registers, any
// canary_* metric named anywhere in the docs exists, its alerts table lists
// exactly the chart's PrometheusRule alerts, its rules file is valid for
// promtool and carries the same alerts, and its dashboard table has the
// dashboard's rows. Alertmanager configurations in the docs pass amtool.

// metricFiles are the files that register canary serve's metrics: the
// HTTP service's, the runs', the traffic engine's, the notifications' and
// the web UI's live stream's.
var metricFiles = []string{"../webhooks/metrics.go", "../runs/metrics.go", "../rollout/traffic.go", "../rollout/notify/outbox.go", "../webhooks/ui/stream.go"}

// engineMetrics returns the canary_* metric names metricFiles register:
// the Name of every prometheus.*Opts literal, under the "canary"
// namespace.
func engineMetrics(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	var names []string
	for _, file := range metricFiles {
		f, err := parser.ParseFile(fset, file, nil, 0)
		require.NoError(t, err)
		names = append(names, metricNames(t, fset, f)...)
	}
	require.GreaterOrEqual(t, len(names), 10)
	sort.Strings(names)
	return names
}

func metricNames(t *testing.T, fset *token.FileSet, f *ast.File) []string {
	var names []string
	ast.Inspect(f, func(n ast.Node) bool {
		cl, ok := n.(*ast.CompositeLit)
		if !ok {
			return true
		}
		sel, ok := cl.Type.(*ast.SelectorExpr)
		if !ok || !strings.HasSuffix(sel.Sel.Name, "Opts") {
			return true
		}
		var ns, name string
		for _, el := range cl.Elts {
			kv, ok := el.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			key := kv.Key.(*ast.Ident).Name
			switch v := kv.Value.(type) {
			case *ast.BasicLit:
				s, _ := strconv.Unquote(v.Value)
				if key == "Name" {
					name = s
				}
			case *ast.Ident:
				if key == "Namespace" && v.Name == "namespace" {
					ns = "canary"
				}
			}
		}
		require.Equal(t, "canary", ns, "%s: a metric outside the canary namespace", fset.Position(cl.Pos()))
		require.NotEmpty(t, name, "%s: a metric without a literal name", fset.Position(cl.Pos()))
		names = append(names, ns+"_"+name)
		return true
	})
	return names
}

var metricRE = regexp.MustCompile(`\bcanary_[a-z_]+[a-z]`)

// TestMetricsDocumented: the metrics table is exactly the engine's
// metrics, and no doc names a canary_* metric that does not exist.
func TestMetricsDocumented(t *testing.T) {
	want := engineMetrics(t)
	var table []string
	for _, tbl := range markedTables(t, "operations.md") {
		if tbl.marker == "metrics" {
			table = append(table, tbl.first...)
		}
	}
	sort.Strings(table)
	require.Equal(t, want, table, "operations.md <!-- metrics --> against %v", metricFiles)

	// policy.md is left out: its canary_* words are query names.
	files := slices.DeleteFunc(append(markdownFiles(t), "openapi.yaml"), func(f string) bool { return f == "policy.md" })
	for _, file := range files {
		data, err := os.ReadFile(file)
		require.NoError(t, err)
		for _, m := range metricRE.FindAllString(string(data), -1) {
			base := m
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				if b, ok := strings.CutSuffix(m, suffix); ok && slices.Contains(want, b) {
					base = b // a histogram's series
				}
			}
			require.Contains(t, want, base, "%s names %s, which canary serve does not export", file, m)
		}
	}
}

// chartAlerts returns the alert names of the chart's PrometheusRule.
func chartAlerts(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("../charts/canary/templates/prometheusrule.yaml")
	require.NoError(t, err)
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\s*- alert:\s*(\S+)\s*$`).FindAllStringSubmatch(string(data), -1) {
		names = append(names, m[1])
	}
	require.NotEmpty(t, names)
	sort.Strings(names)
	return names
}

// TestAlertsDocumented: the alerts table and the plain rules file carry
// exactly the chart's alerts, and the rules file is valid.
func TestAlertsDocumented(t *testing.T) {
	want := chartAlerts(t)
	var table []string
	for _, tbl := range markedTables(t, "operations.md") {
		if tbl.marker == "chart-alerts" {
			table = append(table, tbl.first...)
		}
	}
	sort.Strings(table)
	require.Equal(t, want, table, "operations.md <!-- chart-alerts --> against the chart's PrometheusRule")

	var inBlock []string
	for _, f := range fences(t, "operations.md") {
		if !hasWord(f.info, "prometheus-rules") {
			continue
		}
		for _, m := range regexp.MustCompile(`(?m)^\s*- alert:\s*(\S+)\s*$`).FindAllStringSubmatch(f.text, -1) {
			inBlock = append(inBlock, m[1])
		}
	}
	sort.Strings(inBlock)
	require.Equal(t, want, inBlock, "operations.md's rules file against the chart's PrometheusRule")
}

// tool finds a binary the tests need, failing with the Debian package that
// provides it.
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	require.NoError(t, err, "%s is missing: install the Debian package %s (make deps does)", name, pkg)
	return p
}

// TestRuleAndAlertmanagerBlocksValid: the Prometheus rule files and
// Alertmanager configurations the docs show load in promtool and amtool.
func TestRuleAndAlertmanagerBlocksValid(t *testing.T) {
	checks := map[string]func(file string) *exec.Cmd{
		"prometheus-rules": func(file string) *exec.Cmd {
			return exec.Command(tool(t, "promtool", "prometheus"), "check", "rules", file)
		},
		"alertmanager-config": func(file string) *exec.Cmd {
			return exec.Command(tool(t, "amtool", "prometheus-alertmanager"), "check-config", file)
		},
	}
	count := map[string]int{}
	for _, md := range markdownFiles(t) {
		for _, f := range fences(t, md) {
			for word, check := range checks {
				if !hasWord(f.info, word) {
					continue
				}
				count[word]++
				file := filepath.Join(t.TempDir(), "block.yml")
				require.NoError(t, os.WriteFile(file, []byte(f.text), 0o644))
				out, err := check(file).CombinedOutput()
				require.NoError(t, err, "%s:%d: %s\n%s", md, f.line, word, out)
			}
		}
	}
	require.GreaterOrEqual(t, count["prometheus-rules"], 2)
	require.GreaterOrEqual(t, count["alertmanager-config"], 1)
}

// TestDashboardDocumented: the dashboard table has the dashboard's rows.
func TestDashboardDocumented(t *testing.T) {
	paths, err := filepath.Glob("../charts/canary/dashboards/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, paths, "the chart ships a dashboard")
	var rows []string
	for _, p := range paths {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		var dash struct {
			Panels []struct {
				Type  string `json:"type"`
				Title string `json:"title"`
			} `json:"panels"`
		}
		require.NoError(t, json.Unmarshal(data, &dash), p)
		for _, panel := range dash.Panels {
			if panel.Type == "row" {
				rows = append(rows, panel.Title)
			}
		}
	}
	var table []string
	for _, tbl := range markedTables(t, "operations.md") {
		if tbl.marker == "dashboard-rows" {
			table = append(table, tbl.first...)
		}
	}
	require.Equal(t, rows, table, "operations.md <!-- dashboard-rows --> against the chart's dashboard, in order")
}

// TestReadmeMetrics: every metric the README names (in code, as
// `canary_...`) is one canary serve exports.
func TestReadmeMetrics(t *testing.T) {
	want := engineMetrics(t)
	data, err := os.ReadFile(readmeFile)
	require.NoError(t, err)
	n := 0
	for _, m := range regexp.MustCompile("`(canary_[a-z_]+[a-z])").FindAllStringSubmatch(string(data), -1) {
		n++
		require.Contains(t, want, m[1], "README.md names %s, which canary serve does not export", m[1])
	}
	require.GreaterOrEqual(t, n, 10)
}

// goStrings returns every interpreted string literal of the module's Go
// code, tests left out: the messages and keys canary logs.
func goStrings(t *testing.T) map[string]bool {
	t.Helper()
	lits := map[string]bool{}
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != ".." || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil {
					lits[s] = true
				}
			}
			return true
		})
		return nil
	})
	require.NoError(t, err)
	return lits
}

// tableRow is a body row of a Markdown table: its line and its cells.
type tableRow struct {
	line  int
	cells []string
}

// tableRows returns the body rows of the table that follows <!-- marker -->
// in file (cells split on unescaped bars, trimmed).
func tableRows(t *testing.T, file, marker string) []tableRow {
	t.Helper()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	lines := strings.Split(string(data), "\n")
	start := slices.Index(lines, "<!-- "+marker+" -->")
	require.GreaterOrEqual(t, start, 0, "%s has a <!-- %s --> table", file, marker)
	var rows []tableRow
	header := true
	for i := start + 1; i < len(lines) && strings.HasPrefix(lines[i], "|"); i++ {
		cells := splitRow(lines[i])
		if header || strings.Trim(cells[0], "-: ") == "" {
			header = false
			continue
		}
		rows = append(rows, tableRow{line: i + 1, cells: cells})
	}
	return rows
}

// splitRow splits a table row into its trimmed cells, on the bars that
// are not escaped (\|).
func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(line, "|")
	if strings.HasSuffix(line, "|") && !strings.HasSuffix(line, `\|`) {
		line = line[:len(line)-1]
	}
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cur.WriteString(`\|`)
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(line[i])
		}
	}
	return append(cells, strings.TrimSpace(cur.String()))
}

var codeSpanRE = regexp.MustCompile("`([^`]+)`")

// TestLogsDocumented: every message and key of operations.md's logs table
// is logged by the code, so a renamed log line cannot leave the table
// telling operators to grep for what no longer appears.
func TestLogsDocumented(t *testing.T) {
	lits := goStrings(t)
	rows := tableRows(t, "operations.md", "logs")
	for _, r := range rows {
		require.GreaterOrEqual(t, len(r.cells), 3, "operations.md:%d", r.line)
		for c, what := range map[int]string{1: "message", 2: "key"} {
			for _, m := range codeSpanRE.FindAllStringSubmatch(r.cells[c], -1) {
				require.True(t, lits[m[1]], "operations.md:%d: the %s %q is in no Go string of the code", r.line, what, m[1])
			}
		}
	}
	require.Greater(t, len(rows), 20, "rows of the logs table")
}

// serveDefaults returns the defaults `canary serve -h` prints, by flag.
func serveDefaults(t *testing.T) map[string]string {
	t.Helper()
	out, err := canary(t, "serve", "-h")
	require.NoError(t, err, out)
	defaults := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^ +(?:-[a-zA-Z], )?--([a-z-]+) [^\n]*\(default "?([^)"]+)"?\)$`).FindAllStringSubmatch(out, -1) {
		defaults[m[1]] = m[2]
	}
	require.NotEmpty(t, defaults, out)
	return defaults
}

// docValue reads a default as operations.md writes it: "14 days",
// "100 ms", "10,000".
func docValue(t *testing.T, s string) string {
	t.Helper()
	s = strings.ReplaceAll(s, ",", "")
	if n, ok := strings.CutSuffix(s, " days"); ok {
		d, err := strconv.Atoi(n)
		require.NoError(t, err, s)
		return (time.Duration(d) * 24 * time.Hour).String()
	}
	if n, ok := strings.CutSuffix(s, " ms"); ok {
		d, err := time.ParseDuration(n + "ms")
		require.NoError(t, err, s)
		return d.String()
	}
	return s
}

// TestBoundsDefaults: the defaults operations.md's bounds table gives for
// canary serve's flags are the ones `canary serve -h` prints.
func TestBoundsDefaults(t *testing.T) {
	defaults := serveDefaults(t)
	n := 0
	for _, r := range tableRows(t, "operations.md", "bounds") {
		require.Len(t, r.cells, 4, "operations.md:%d", r.line)
		for _, m := range codeSpanRE.FindAllStringSubmatch(r.cells[2], -1) {
			flag, ok := strings.CutPrefix(m[1], "--")
			if !ok {
				continue
			}
			n++
			got, known := defaults[flag]
			require.True(t, known, "operations.md:%d: canary serve -h prints no default for --%s", r.line, flag)
			if d, err := time.ParseDuration(got); err == nil {
				got = d.String()
			}
			require.Equal(t, got, docValue(t, r.cells[1]), "operations.md:%d: the default of --%s", r.line, flag)
		}
	}
	require.GreaterOrEqual(t, n, 3, "flags in the bounds table")
}

// TestPerformanceRowsFromREADME: the performance rows operations.md
// repeats are the README's, word for word, so a new measurement cannot
// leave one of the two behind.
func TestPerformanceRowsFromREADME(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	rows := map[string]bool{}
	for line := range strings.Lines(string(readme)) {
		if strings.HasPrefix(line, "| ") {
			rows[strings.TrimSpace(line)] = true
		}
	}
	data, err := os.ReadFile("operations.md")
	require.NoError(t, err)
	_, after, ok := strings.Cut(string(data), "<!-- performance -->\n")
	require.True(t, ok, "operations.md has no <!-- performance --> table")
	n := 0
	for line := range strings.Lines(after) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			break
		}
		if strings.HasPrefix(line, "|---") || line == "| what | measured |" {
			continue
		}
		require.True(t, rows[line], "operations.md performance row not in the README's table:\n%s", line)
		n++
	}
	require.Positive(t, n, "operations.md's performance table has no rows")
}
