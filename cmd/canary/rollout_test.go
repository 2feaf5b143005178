package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/internal/testkube"
	"github.com/aurum/canary/internal/testprom"
	"github.com/aurum/canary/rollout"
)

// rolloutPolicy reads the apps seeded by seedLive in a real Prometheus and
// moves traffic on a real API server, on a schedule compressed to seconds.
const rolloutPolicy = `
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: lmp-rollout}
spec:
  params: {namespace: {}, name: {}}
  queries:
    error_rate:
      prometheus: sum(rate(requests_total{app="{{ .name }}",code="500"}[5m])) / sum(rate(requests_total{app="{{ .name }}"}[5m]))
  rules:
    - {name: error-rate, expr: error_rate <= 0.01, critical: true}
  traffic:
    router: nginx
    namespace: "{{ .namespace }}"
    ingress: "{{ .name }}"
    stableService: "{{ .name }}-primary"
    canaryService: "{{ .name }}-canary"
  rollout:
    steps: [{weight: 10}, {weight: 30}, {weight: 60}]
    interval: 1s
    stepDuration: 1s
    promotion: 1s
    report: {errorRate: error_rate}
`

// TestRolloutAgainstRealPrometheus drives two rollouts through `canary
// rollout` and `canary serve`'s orchestrator, against a real Prometheus
// with seeded data and a real API server: the healthy one promotes, the
// failing one rolls back.
func TestRolloutAgainstRealPrometheus(t *testing.T) {
	prom := testprom.Start(t)
	seedLive(t, prom)
	c := testkube.Shared(t)
	ns := c.Namespace(t)
	createStableIngress(t, c, ns, "good")
	createStableIngress(t, c, ns, "bad")
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	require.NoError(t, os.WriteFile(policy, []byte(rolloutPolicy), 0o644))
	srv := startServe(t, map[string]string{
		"CANARY_DATA_DIR": t.TempDir(), "CANARY_POLICIES": policy, "CANARY_PROMETHEUS": prom.URL(),
		"CANARY_KUBECONFIG": kubeconfig(t, c), "CANARY_CACHE_TTL": "0s",
	})

	tokenFile := filepath.Join(t.TempDir(), "admin-token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("tester "+testToken+"\n"), 0o600))
	start := func(app string) (int, string) {
		// No -n: the namespace param names the rollout's namespace.
		code, stdout, stderr := canary(t, "rollout", "start", "--server", srv.url, "--token-file", tokenFile, "--name", app, "--version", "v2",
			"--policy", "lmp-rollout", "--param", "namespace="+ns, "--param", "name="+app, "--watch")
		return code, stdout + stderr
	}
	code, out := start("good")
	require.Equal(t, exitOK, code, out)
	require.Contains(t, out, "completed")
	require.Equal(t, "100", canaryIngressAnnotations(t, c, ns, "good")["nginx.ingress.kubernetes.io/canary-weight"])

	code, out = start("bad")
	require.Equal(t, exitFail, code, out)
	require.Contains(t, out, "rolled_back")
	require.Contains(t, out, "error-rate: 0.05 > 0.01")
	require.Equal(t, "0", canaryIngressAnnotations(t, c, ns, "bad")["nginx.ingress.kubernetes.io/canary-weight"])

	// Starting the same version again is the same rollout.
	code, out = start("good")
	require.Equal(t, exitOK, code, out)
	code, stdout, stderr := canary(t, "rollout", "list", "--server", srv.url, "--token-file", tokenFile)
	require.Equal(t, exitOK, code)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Regexp(t, `^ROLLOUT +VERSION +PHASE +STEP +WEIGHT +HEALTH$`, lines[0], "rollout list prints a header like every other table")
	require.Contains(t, stdout, "good")
	require.Contains(t, stdout, "completed")

	// A watch ends, exit 3, when the rollout waits for a person, instead of
	// polling a paused rollout for ever.
	createStableIngress(t, c, ns, "held")
	code, stdout, stderr = canary(t, "rollout", "start", "--server", srv.url, "--token-file", tokenFile, "--name", "held", "--version", "v2",
		"--policy", "lmp-rollout", "--param", "namespace="+ns, "--param", "name=held", "--step-duration", "1h")
	require.Equal(t, exitOK, code, stdout+stderr)
	code, stdout, stderr = canary(t, "rollout", "pause", ns+"/held", "--server", srv.url, "--token-file", tokenFile, "--reason", "hold on", "--watch")
	require.Equal(t, exitInconclusive, code, stdout+stderr)
	require.Contains(t, stdout, "paused")
	require.Contains(t, stdout, "waiting for a person: canary rollout resume|rollback "+ns+"/held")

	// Completion asks the running server: its rollouts, runs, policies and
	// the chosen policy's params.
	complete := func(args ...string) []string { t.Helper(); return completions(t, args...) }
	require.Subset(t, complete("rollout", "status", "--server", srv.url, "--token-file", tokenFile, ""), []string{ns + "/good", ns + "/bad", ns + "/held"})
	t.Setenv("CANARY_NAMESPACE", ns)
	require.Contains(t, complete("rollout", "promote", "--server", srv.url, "--token-file", tokenFile, ""), "good", "a rollout of -n's namespace by its name alone")
	t.Setenv("CANARY_NAMESPACE", "")
	require.Equal(t, []string{"lmp-rollout"}, complete("rollout", "start", "--server", srv.url, "--token-file", tokenFile, "--policy", ""))
	require.ElementsMatch(t, []string{"namespace=", "name="}, complete("rollout", "start", "--server", srv.url, "--token-file", tokenFile, "--policy", "lmp-rollout", "--param", ""))
	require.Subset(t, complete("runs", "status", "--server", srv.url, "--token-file", tokenFile, ""), []string{ns + "/good", ns + "/bad"})
	require.Empty(t, complete("runs", "status", "--server", "http://127.0.0.1:1", ""), "no server, nothing to offer")

	// kubectl canary reads the namespace of the kubeconfig's context.
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\ncurrent-context: ops\n"+
		"contexts: [{name: ops, context: {cluster: c, user: u, namespace: "+ns+"}}]\n"), 0o600))
	plugin := asBinary(t, kubectlPlugin, "rollout", "status", "good", "--server", srv.url, "--token-file", tokenFile, "-o", "json")
	plugin.Env = append(plugin.Env, "KUBECONFIG="+kc, "CANARY_NAMESPACE=")
	out2, err := plugin.Output()
	require.NoError(t, err, "%s", out2)
	var good rollout.Status
	require.NoError(t, json.Unmarshal(out2, &good), "%s", out2)
	require.Equal(t, ns, good.Namespace)
	require.Equal(t, rollout.PhaseCompleted, good.Status)

	// The status API carries what a deployment dashboard shows.
	code, body := srv.call(t, "GET", "/v1/rollouts/"+ns+"/bad", "")
	require.Equal(t, 200, code, body)
	var st rollout.Status
	require.NoError(t, json.Unmarshal([]byte(body), &st))
	require.Equal(t, rollout.PhaseRolledBack, st.Status)
	require.Equal(t, "unhealthy", st.HealthStatus)
	require.InDelta(t, 5, *st.ErrorRatePercent, 0.01)
	require.InDelta(t, 95, *st.SuccessRatePercent, 0.01)
	require.NotEmpty(t, st.LastEvaluation.Rules)
	code, body = srv.call(t, "POST", "/v1/rollouts/"+ns+"/bad/resume", `{"reason":"try again"}`)
	require.Equal(t, 409, code, body)
	code, body = srv.call(t, "POST", "/v1/rollouts/"+ns+"/bad/resume", "")
	require.Equal(t, 400, code, "a manual action needs a reason: %s", body)
}
