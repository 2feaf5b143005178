package docs_test

import (
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	rolloutsv1 "github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	flaggerv1 "github.com/fluxcd/flagger/pkg/apis/flagger/v1beta1"
	"github.com/stretchr/testify/require"
	sigsyaml "sigs.k8s.io/yaml"
)

// shadowBlock returns the one block of shadow-mode.md whose info string
// starts with info.
func shadowBlock(t *testing.T, info string) fence {
	t.Helper()
	var found []fence
	for _, f := range fences(t, "shadow-mode.md") {
		if strings.HasPrefix(f.info, info) {
			found = append(found, f)
		}
	}
	require.Len(t, found, 1, "shadow-mode.md: one ```%s block", info)
	return found[0]
}

// TestShadowGuide walks the shadow-mode guide: its policy is a dry run
// that answers pass while saying it would roll back, the Argo Rollouts
// and Flagger manifests are valid for those tools and call that policy
// through the routes that answer them, and the reason the guide quotes is
// the one canary gives.
func TestShadowGuide(t *testing.T) {
	dir := t.TempDir()
	policy := shadowBlock(t, "yaml example")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "shadow.yaml"), []byte(policy.text), 0o644))
	var meta struct {
		Metadata struct{ Name string } `json:"metadata"`
	}
	require.NoError(t, sigsyaml.Unmarshal([]byte(policy.text), &meta))
	name := meta.Metadata.Name
	require.NotEmpty(t, name)

	t.Run("argo", func(t *testing.T) {
		var tmpl rolloutsv1.AnalysisTemplate
		require.NoError(t, sigsyaml.UnmarshalStrict([]byte(shadowBlock(t, "yaml argo-shadow").text), &tmpl))
		require.Len(t, tmpl.Spec.DryRun, 1)
		var metric *rolloutsv1.Metric
		for i := range tmpl.Spec.Metrics {
			if tmpl.Spec.Metrics[i].Name == tmpl.Spec.DryRun[0].MetricName {
				metric = &tmpl.Spec.Metrics[i]
			}
		}
		require.NotNil(t, metric, "dryRun names a metric of the template")
		require.NotNil(t, metric.Provider.Web)
		u, err := url.Parse(metric.Provider.Web.URL)
		require.NoError(t, err)
		require.Equal(t, "/v1/analysis/"+name, u.Path, "the metric calls the shadow policy")
		require.Equal(t, "{$.verdict}", metric.Provider.Web.JSONPath)
	})

	t.Run("flagger", func(t *testing.T) {
		var spec struct {
			Webhooks []flaggerv1.CanaryWebhook `json:"webhooks"`
		}
		require.NoError(t, sigsyaml.UnmarshalStrict([]byte(shadowBlock(t, "yaml flagger-shadow").text), &spec))
		require.Len(t, spec.Webhooks, 1)
		hook := spec.Webhooks[0]
		require.Equal(t, flaggerv1.RolloutHook, hook.Type, "a rollout hook: run every iteration")
		u, err := url.Parse(hook.URL)
		require.NoError(t, err)
		require.Equal(t, "/v1/flagger/"+name+"/check", u.Path, "the hook calls the shadow policy")
	})

	t.Run("eval", func(t *testing.T) {
		bin, err := canaryBin()
		require.NoError(t, err)
		eval := func(at string) map[string]any {
			cmd := exec.Command(bin, "eval", "--policies", dir, "--policy", name,
				"--param", "namespace=caiso", "--param", "name=lmp-ingest",
				"--series", "examples/series/caiso-errors.yaml", "--at", at, "-o", "json")
			cmd.Dir = ".."
			out, err := cmd.Output()
			require.NoError(t, err, "a dry run answers pass, exit 0")
			var res map[string]any
			require.NoError(t, json.Unmarshal(out, &res), "%s", out)
			return res
		}
		healthy := eval("10m")
		require.Equal(t, "pass", healthy["verdict"])
		require.Equal(t, false, healthy["dryRun"].(map[string]any)["changed"])

		failing := eval("20m")
		require.Equal(t, "pass", failing["verdict"], "a shadow never fails")
		require.Equal(t, "continue", failing["decision"])
		would := failing["dryRun"].(map[string]any)
		require.Equal(t, "fail", would["verdict"])
		require.Equal(t, "rollback", would["decision"])
		require.Equal(t, true, would["changed"])

		// The backtest judges the shadow by what it would have decided,
		// and exits 2 as the guide says a failing step does.
		out, _, code := runFromRoot(t, "backtest", "--policies", dir, "--policy", name,
			"--param", "namespace=caiso", "--param", "name=lmp-ingest",
			"--series", "examples/series/caiso-errors.yaml")
		require.Equal(t, 2, code, "%s", out)
		require.Contains(t, out, "dry run: each step as the policy would have decided")
		require.Contains(t, out, "first failure with data at 2026-11-26T09:16:00Z")

		guide, err := os.ReadFile("shadow-mode.md")
		require.NoError(t, err)
		text := strings.Join(strings.Fields(string(guide)), " ")
		require.Contains(t, text, "(`"+failing["reason"].(string)+"`)", "the reason the guide quotes")
	})
}
