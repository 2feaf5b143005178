package charts_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// exportedMetrics returns the names of the metrics the service exports, read
// from the files that register them (the HTTP service's, the runs' and the
// traffic engine's), with the series names of its histograms.
func exportedMetrics(t testing.TB) map[string]bool {
	t.Helper()
	names := map[string]bool{"up": true} // Prometheus's own, per target
	re := regexp.MustCompile(`Name:\s*"(\w+)"`)
	for _, file := range [][]string{{"webhooks", "metrics.go"}, {"runs", "metrics.go"}, {"rollout", "traffic.go"}, {"rollout", "notify", "outbox.go"}} {
		src, err := os.ReadFile(filepath.Join(append([]string{repoRoot(t)}, file...)...))
		require.NoError(t, err)
		require.Contains(t, string(src), `const namespace = "canary"`)
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			name := "canary_" + m[1]
			names[name] = true
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				names[name+suffix] = true
			}
		}
	}
	require.Contains(t, names, "canary_analysis_total")
	return names
}

// checkPromQL parses a PromQL expression and checks that every metric it
// reads is one the service exports.
func checkPromQL(t testing.TB, where, expr string, exported map[string]bool) {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	require.NoError(t, err, "%s: %s", where, expr)
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			require.True(t, exported[vs.Name], "%s reads %s, which the service does not export", where, vs.Name)
		}
		return nil
	})
}

// TestAlerts runs the PrometheusRule's alerts through promtool: the rules
// load, and each alert fires on the series of a broken engine and stays
// quiet on a healthy one.
func TestAlerts(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	require.NoError(t, err, "promtool not found: install the Debian package `prometheus` (make test does)")

	m := render(t, "-f", filepath.Join(chartDir(t), "ci", "monitoring-values.yaml"))
	rule := m.get(t, "PrometheusRule", release).u
	exported := exportedMetrics(t)
	for name, a := range alertRules(t, rule) {
		checkPromQL(t, name, a["expr"].(string), exported)
	}

	groups := rule.Object["spec"].(map[string]any)["groups"]
	dir := t.TempDir()
	write := func(name string, v any) string {
		b, err := yaml.Marshal(v)
		require.NoError(t, err)
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, b, 0o644))
		return path
	}
	// The rules as prometheus-operator hands them to Prometheus.
	rules := write("rules.yaml", map[string]any{"groups": groups})
	out, err := exec.Command(promtool, "check", "rules", rules).CombinedOutput()
	require.NoError(t, err, "%s", out)

	// For the unit tests, without annotations: promtool would compare them
	// too, and their templates are checked above.
	var bare []any
	for _, g := range groups.([]any) {
		g := deepCopy(g).(map[string]any)
		for _, r := range g["rules"].([]any) {
			delete(r.(map[string]any), "annotations")
		}
		bare = append(bare, g)
	}
	write("bare.yaml", map[string]any{"groups": bare})

	sel := `job="canary",namespace="canary"`
	alert := func(severity string, extra ...string) map[string]any {
		labels := map[string]any{"job": "canary", "namespace": "canary", "severity": severity, "team": "data-platform"}
		for i := 0; i+1 < len(extra); i += 2 {
			labels[extra[i]] = extra[i+1]
		}
		return map[string]any{"exp_labels": labels}
	}
	all := []string{"CanaryPolicyReloadFailing", "CanaryQueryErrorsHigh", "CanaryStoreErrors", "CanaryTrafficCutFailed", "CanaryDown"}
	expect := func(at string, firing map[string][]any) []any {
		var out []any
		for _, name := range all {
			exp := firing[name]
			if exp == nil {
				exp = []any{}
			}
			out = append(out, map[string]any{"eval_time": at, "alertname": name, "exp_alerts": exp})
		}
		return out
	}
	tests := map[string]any{
		"rule_files":          []string{"bare.yaml"},
		"evaluation_interval": "1m",
		"tests": []any{
			map[string]any{
				"name":     "healthy: no alert",
				"interval": "1m",
				"input_series": []any{
					series("canary_policy_reload_errors_total{"+sel+"}", "0x20"),
					// 5% of the queries fail: below queryErrorRatio.
					series(`canary_query_errors_total{`+sel+`,source="prometheus",class="timeout"}`, "0+3x20"),
					series(`canary_query_duration_seconds_count{`+sel+`,source="prometheus"}`, "0+60x20"),
					series("canary_store_errors_total{"+sel+"}", "0x20"),
					series(`canary_traffic_cuts_total{`+sel+`,result="ok"}`, "0+1x20"),
					series(`canary_traffic_cuts_total{`+sel+`,result="error"}`, "0x20"),
					series(`up{`+sel+`,instance="10.0.0.5:8080"}`, "1x20"),
				},
				"alert_rule_test": expect("15m", nil),
			},
			map[string]any{
				"name":     "broken: every alert",
				"interval": "1m",
				"input_series": []any{
					series("canary_policy_reload_errors_total{"+sel+"}", "0x9 1x10"),
					// 20% of the queries fail, all along.
					series(`canary_query_errors_total{`+sel+`,source="prometheus",class="timeout"}`, "0+12x20"),
					series(`canary_query_duration_seconds_count{`+sel+`,source="prometheus"}`, "0+60x20"),
					series("canary_store_errors_total{"+sel+"}", "0x11 1x8"),
					series(`canary_traffic_cuts_total{`+sel+`,result="ok"}`, "0x20"),
					series(`canary_traffic_cuts_total{`+sel+`,result="error"}`, "0x11 1x8"),
					series(`up{`+sel+`,instance="10.0.0.5:8080"}`, "0x20"),
				},
				"alert_rule_test": expect("15m", map[string][]any{
					"CanaryPolicyReloadFailing": {alert("warning")},
					"CanaryQueryErrorsHigh":     {alert("warning", "source", "prometheus")},
					"CanaryStoreErrors":         {alert("critical")},
					"CanaryTrafficCutFailed":    {alert("critical", "result", "error")},
					"CanaryDown":                {alert("critical")},
				}),
			},
			map[string]any{
				// No target at all, as when the pod cannot be scheduled.
				"name":            "no target: down",
				"interval":        "1m",
				"input_series":    []any{series(`canary_policies_loaded{job="other",namespace="canary"}`, "1x10")},
				"alert_rule_test": expect("10m", map[string][]any{"CanaryDown": {alert("critical")}}),
			},
		},
	}
	out, err = exec.Command(promtool, "test", "rules", write("tests.yaml", tests)).CombinedOutput()
	require.NoError(t, err, "%s", out)
}

func series(s, values string) map[string]any { return map[string]any{"series": s, "values": values} }

// deepCopy copies decoded YAML or JSON.
func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			out[k] = deepCopy(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = deepCopy(x)
		}
		return out
	default:
		return v
	}
}

// TestDashboards checks the Grafana dashboards: valid JSON with a uid and
// a title, every panel with a target, and every query valid PromQL that
// reads only metrics the service exports.
func TestDashboards(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(chartDir(t), "dashboards", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	exported := exportedMetrics(t)
	// Grafana's variables, as Grafana would expand them.
	vars := strings.NewReplacer("$namespace", ".*", "$job", ".*", "$__rate_interval", "5m", "$__range", "1h")
	uids := map[string]bool{}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			require.NoError(t, err)
			var dash struct {
				UID        string `json:"uid"`
				Title      string `json:"title"`
				Templating struct {
					List []struct {
						Name       string `json:"name"`
						Definition string `json:"definition"`
					} `json:"list"`
				} `json:"templating"`
				Panels []struct {
					ID      int    `json:"id"`
					Type    string `json:"type"`
					Title   string `json:"title"`
					Targets []struct {
						Expr string `json:"expr"`
					} `json:"targets"`
				} `json:"panels"`
			}
			require.NoError(t, json.Unmarshal(data, &dash))
			require.NotEmpty(t, dash.UID)
			require.False(t, uids[dash.UID], "uid %s is used twice", dash.UID)
			uids[dash.UID] = true
			require.NotEmpty(t, dash.Title)

			ids := map[int]bool{}
			var exprs []string
			for _, p := range dash.Panels {
				require.False(t, ids[p.ID], "panel id %d is used twice", p.ID)
				ids[p.ID] = true
				if p.Type == "row" {
					continue
				}
				require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
				for _, tg := range p.Targets {
					checkPromQL(t, "panel "+p.Title, vars.Replace(tg.Expr), exported)
					exprs = append(exprs, tg.Expr)
				}
			}
			// What the dashboard must show.
			all := strings.Join(exprs, "\n")
			for _, want := range []string{
				"sum by (verdict) (rate(canary_analysis_total{",
				"canary_analysis_duration_seconds_bucket",
				"histogram_quantile(0.99, sum by (le, source) (rate(canary_query_duration_seconds_bucket{",
				"canary_latches{",
				"canary_policy_reload_errors_total{",
				"canary_http_requests_total{",
				"canary_traffic_cuts_total{",
			} {
				require.Contains(t, all, want)
			}
			for _, v := range dash.Templating.List {
				if v.Definition != "" {
					require.Contains(t, v.Definition, "canary_policies_loaded", "variable %s", v.Name)
				}
			}
		})
	}
}
