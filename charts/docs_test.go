package charts_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	rbacv1 "k8s.io/api/rbac/v1"
)

// The operations guide (docs/operations.md) repeats two things the chart
// does, for people who install without it: the alerting rules and the
// kill switch's RBAC. These tests hold the copies to the chart.

// docBlock returns the text of the fenced block in docs/<file> whose info
// string is info and whose body contains marker.
func docBlock(t *testing.T, file, info, marker string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", file))
	require.NoError(t, err)
	re := regexp.MustCompile("(?ms)^```" + regexp.QuoteMeta(info) + "\n(.*?)^```$")
	var found []string
	for _, m := range re.FindAllStringSubmatch(string(data), -1) {
		if strings.Contains(m[1], marker) {
			found = append(found, m[1])
		}
	}
	require.Len(t, found, 1, "docs/%s: one ```%s block containing %q", file, info, marker)
	return found[0]
}

// promQL is an expression in PromQL's own printing, so that layout and
// line breaks do not count.
func promQL(t *testing.T, where, expr string) string {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	require.NoError(t, err, "%s: %s", where, expr)
	return e.String()
}

// TestOperationsGuideAlertsAreTheChart: the rules file the operations guide
// gives for a Prometheus without the operator is the chart's
// PrometheusRule with the guide's matcher (job="canary"): the same alerts,
// expressions, durations and severities.
func TestOperationsGuideAlertsAreTheChart(t *testing.T) {
	values := filepath.Join(t.TempDir(), "values.yaml")
	require.NoError(t, os.WriteFile(values, []byte("prometheusRule:\n  enabled: true\n  matchers: 'job=\"canary\"'\n"), 0o644))
	chart := alertRules(t, render(t, "-f", values).get(t, "PrometheusRule", release).u)

	var doc struct {
		Groups []struct {
			Rules []struct {
				Alert  string            `yaml:"alert"`
				Expr   string            `yaml:"expr"`
				For    string            `yaml:"for"`
				Labels map[string]string `yaml:"labels"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(docBlock(t, "operations.md", "yaml prometheus-rules", "CanaryDown")), &doc))
	seen := map[string]bool{}
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			t.Run(r.Alert, func(t *testing.T) {
				c, ok := chart[r.Alert]
				require.True(t, ok, "the guide's %s is not in the chart", r.Alert)
				seen[r.Alert] = true
				require.Equal(t, promQL(t, "chart", c["expr"].(string)), promQL(t, "guide", r.Expr), "expr")
				want, _ := c["for"].(string)
				require.Equal(t, want, r.For, "for")
				require.Equal(t, c["labels"].(map[string]any)["severity"], r.Labels["severity"], "severity")
			})
		}
	}
	require.ElementsMatch(t, keys(chart), keys(seen), "the guide's rules file has every alert of the chart")
}

// TestOperationsGuideRBACIsTheChart: the verbs table and the Role the
// operations guide gives are the rules the chart grants the kill switch.
func TestOperationsGuideRBACIsTheChart(t *testing.T) {
	m := render(t, "--set", "rbac.create=true")
	role := m.get(t, "Role", release).typed.(*rbacv1.Role)

	// The Role to apply by hand.
	block := docBlock(t, "operations.md", "yaml", "canary-kill-switch")
	first, _, _ := strings.Cut(block, "\n---\n")
	obj, _, err := strictDecoder.Decode([]byte(first), nil, nil)
	require.NoError(t, err, "operations.md's Role does not decode strictly")
	doc, ok := obj.(*rbacv1.Role)
	require.True(t, ok, "operations.md's first RBAC object is a %T, not a Role", obj)
	require.Equal(t, role.Rules, doc.Rules, "operations.md's Role against the chart's")

	// The table: one row per router and verbs; together, the chart's rules.
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "operations.md"))
	require.NoError(t, err)
	row := regexp.MustCompile("(?m)^\\| `(nginx|gatewayapi)` \\| `([^`]+)` `([^`]+)` \\| ([^|]+) \\|")
	granted := map[string][]string{}
	for _, r := range row.FindAllStringSubmatch(string(data), -1) {
		key := r[2] + "/" + r[3]
		for _, v := range strings.Split(r[4], ",") {
			granted[key] = append(granted[key], strings.Trim(strings.TrimSpace(v), "`"))
		}
	}
	require.NotEmpty(t, granted, "operations.md's verbs table")
	want := map[string][]string{}
	for _, r := range role.Rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				want[g+"/"+res] = append(want[g+"/"+res], r.Verbs...)
			}
		}
	}
	for k := range want {
		slices.Sort(want[k])
	}
	for k := range granted {
		slices.Sort(granted[k])
	}
	require.Equal(t, want, granted, "operations.md's verbs table against the chart's Role")
}
