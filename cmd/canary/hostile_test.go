package main

// The promises of a safety gate, tried as a hostile caller inside the
// cluster and a flaky network would try them (issue 11). Every test here
// drives `canary serve` as a separate process, over HTTP only, against a
// real kube-apiserver where traffic moves, so that it reads the same on
// any version of the service; each failed on the main of 2026-11-26
// (231553a).

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aurum/canary/internal/testkube"
	"github.com/aurum/canary/internal/testproc"
)

// hostilePolicy analyses an HTTP probe of a local port: up when something
// listens there. %s is extra policy text.
const hostilePolicy = `
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: gate}
spec:
  params: {namespace: {}, name: {}}
  queries:
    api: {http: {url: "http://127.0.0.1:%d/healthz"}}
  rules:
    - {name: up, expr: api.up == 1}
  alerts:
    - match: {severity: critical, app: "{{ .name }}"}
      action: rollback
    - match: {severity: warning, app: "{{ .name }}"}
      action: pause
%s`

const hostileTraffic = `  traffic:
    router: nginx
    namespace: "{{ .namespace }}"
    ingress: "{{ .name }}"
    stableService: "{{ .name }}-primary"
    canaryService: "{{ .name }}-canary"
`

// healthy listens on a free port and answers 200: the probe's target.
func healthy(t *testing.T) int {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	port, err := strconv.Atoi(u.Port())
	require.NoError(t, err)
	return port
}

// hostileServe starts canary serve over a policy file with the given extra
// text, on a real kube-apiserver when c is not nil.
func hostileServe(t *testing.T, c *testkube.Cluster, port int, extra string, env map[string]string) *child {
	t.Helper()
	file := filepath.Join(t.TempDir(), "gate.yaml")
	require.NoError(t, os.WriteFile(file, []byte(fmt.Sprintf(hostilePolicy, port, extra)), 0o644))
	all := map[string]string{"CANARY_DATA_DIR": t.TempDir(), "CANARY_POLICIES": file, "CANARY_LOG_LEVEL": "debug"}
	if c != nil {
		all["CANARY_KUBECONFIG"] = kubeconfig(t, c)
	}
	for k, v := range env {
		all[k] = v
	}
	return startServe(t, all)
}

func alertBody(status, severity, app string, fingerprints ...string) string {
	var alerts []string
	for _, fp := range fingerprints {
		alerts = append(alerts, `{"status":"`+status+`","labels":{"alertname":"Errors","severity":"`+severity+`","app":"`+app+`"},"fingerprint":"`+fp+`"}`)
	}
	return `{"version":"4","status":"` + status + `","receiver":"canary","alerts":[` + strings.Join(alerts, ",") + `]}`
}

// weightSampler polls the canary Ingress's weight until stopped, keeping
// each value it saw change to.
func weightSampler(t *testing.T, c *testkube.Cluster, ns, app string) (seen func() []int, stop func()) {
	t.Helper()
	var (
		values []int
		done   = make(chan struct{})
		quit   = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			ing, err := c.Kubernetes().NetworkingV1().Ingresses(ns).Get(t.Context(), app+"-canary", metav1.GetOptions{})
			if err == nil {
				if w, err := strconv.Atoi(ing.Annotations["nginx.ingress.kubernetes.io/canary-weight"]); err == nil &&
					(len(values) == 0 || values[len(values)-1] != w) {
					values = append(values, w)
				}
			}
			select {
			case <-quit:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			close(quit)
			<-done
		}
	}
	t.Cleanup(stop)
	return func() []int { stop(); return values }, stop
}

// TestHostileRollbackNeverRaises: with onRollback stepDown [50, 20], a
// canary at 10% was set to 50% when a rollback latched, and each
// redelivery of the alert started the schedule again, back at 50%.
func TestHostileRollbackNeverRaises(t *testing.T) {
	c := testkube.Shared(t)
	for _, start := range []int{10, 60} {
		t.Run(fmt.Sprintf("from %d%%", start), func(t *testing.T) {
			ns := c.Namespace(t)
			createStableIngress(t, c, ns, "lmp")
			code, out, errOut := canary(t, "traffic", "set", "--kubeconfig", kubeconfig(t, c), "--ingress", ns+"/lmp",
				"--canary-service", "lmp-canary", "--weight", strconv.Itoa(start))
			require.Equal(t, exitOK, code, out+errOut)
			srv := hostileServe(t, c, healthy(t), hostileTraffic+"    onRollback: stepDown\n    stepDown: {weights: [50, 20], interval: 1s}\n", nil)
			code, out = srv.call(t, "GET", "/v1/analysis/gate?namespace="+ns+"&name=lmp&revision=r1", "")
			require.Equal(t, 200, code, out)

			seen, _ := weightSampler(t, c, ns, "lmp")
			code, out = srv.call(t, "POST", "/v1/alertmanager", alertBody("firing", "critical", "lmp", "f1"))
			require.Equal(t, 200, code, out)
			// Alertmanager redelivers while the step-down runs: once it
			// is well under way, at 20% (or done, from 10%).
			require.Eventually(t, func() bool {
				w := canaryIngressAnnotations(t, c, ns, "lmp")["nginx.ingress.kubernetes.io/canary-weight"]
				return w == "20" || w == "0"
			}, 10*time.Second, 20*time.Millisecond, "the rollback did not step down:\n%s", srv.output())
			for range 3 {
				code, out = srv.call(t, "POST", "/v1/alertmanager", alertBody("firing", "critical", "lmp", "f1"))
				require.Equal(t, 200, code, out)
				time.Sleep(200 * time.Millisecond)
			}
			require.Eventually(t, func() bool {
				return canaryIngressAnnotations(t, c, ns, "lmp")["nginx.ingress.kubernetes.io/canary-weight"] == "0"
			}, 15*time.Second, 50*time.Millisecond, "the rollback did not end at 0:\n%s", srv.output())
			weights := seen()
			require.Equal(t, start, weights[0])
			for i := 1; i < len(weights); i++ {
				require.LessOrEqual(t, weights[i], weights[i-1], "a rollback raised the canary's weight: %v", weights)
			}
		})
	}
}

// TestHostileLatchSurvivesAnotherRevision: one call naming another
// revision (or a Flagger event with another checksum) replaced the run, so
// the rollback latched for the real revision was gone: its next analysis
// passed, and Flagger's rollback hook answered 403.
func TestHostileLatchSurvivesAnotherRevision(t *testing.T) {
	srv := hostileServe(t, nil, healthy(t), "", nil)
	analyze := func(rev string) string {
		code, out := srv.call(t, "GET", "/v1/analysis/gate?namespace=caiso&name=lmp&revision="+rev, "")
		require.Equal(t, 200, code, out)
		return out
	}
	require.Contains(t, analyze("r1"), `"verdict":"pass"`)
	code, out := srv.call(t, "POST", "/v1/alertmanager", alertBody("firing", "critical", "lmp", "f1"))
	require.Equal(t, 200, code, out)
	require.Contains(t, analyze("r1"), `"decision":"rollback"`)

	// The hostile calls.
	require.Contains(t, analyze("other"), `"verdict":"pass"`)
	code, out = srv.call(t, "POST", "/v1/flagger/events", `{"name":"lmp","namespace":"caiso","phase":"Progressing","checksum":"other2"}`)
	require.Equal(t, 202, code, out)

	require.Contains(t, analyze("r1"), `"decision":"rollback"`, "the latch of r1 still stands")
	code, out = srv.call(t, "POST", "/v1/flagger/rollback", `{"name":"lmp","namespace":"caiso","phase":"Progressing","checksum":"r1"}`)
	require.Equal(t, 200, code, "Flagger's rollback hook still answers it: %s", out)
}

// TestHostileLatchNotEvicted: a run kept its newest 32 latches of any
// kind, so 33 pause alerts, one per pod, pushed the rollback latch out.
func TestHostileLatchNotEvicted(t *testing.T) {
	srv := hostileServe(t, nil, healthy(t), "", nil)
	code, out := srv.call(t, "GET", "/v1/analysis/gate?namespace=caiso&name=lmp&revision=r1", "")
	require.Equal(t, 200, code, out)
	code, out = srv.call(t, "POST", "/v1/alertmanager", alertBody("firing", "critical", "lmp", "rollback-1"))
	require.Equal(t, 200, code, out)
	var pods []string
	for i := range 33 {
		pods = append(pods, fmt.Sprintf("pod-%02d", i))
	}
	code, out = srv.call(t, "POST", "/v1/alertmanager", alertBody("firing", "warning", "lmp", pods...))
	require.Equal(t, 200, code, out)
	code, out = srv.call(t, "GET", "/v1/analysis/gate?namespace=caiso&name=lmp&revision=r1", "")
	require.Equal(t, 200, code, out)
	require.Contains(t, out, `"decision":"rollback"`, "the rollback latch stands")
}

// TestHostileOpenRoutesRefused: every route was open by default, with
// nothing in the log: anyone in the cluster could post an alert, promote a
// run over a rollback latch, or start a rollout.
func TestHostileOpenRoutesRefused(t *testing.T) {
	port, err := testproc.FreePort()
	require.NoError(t, err)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=1", "CANARY_LISTEN=127.0.0.1:"+strconv.Itoa(port),
		"CANARY_DATA_DIR="+t.TempDir(), "CANARY_POLICIES=testdata/live.yaml")
	out, err := runFor(cmd, 30*time.Second)
	require.Error(t, err, "canary serve started with every route open:\n%s", out)
	require.Contains(t, out, "refusing to start with open routes")
}

// runFor runs cmd to its end, killing it after d.
func runFor(cmd *exec.Cmd, d time.Duration) (string, error) {
	var b strings.Builder
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return b.String(), err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		return b.String(), nil
	}
}

// TestHostileLatchOnFailCutsTraffic: the kill switch was wired in the HTTP
// handlers of alerts and manual calls, so a rollback latched by a failed
// analysis (latchOnFail) never cut traffic.
func TestHostileLatchOnFailCutsTraffic(t *testing.T) {
	c := testkube.Shared(t)
	ns := c.Namespace(t)
	createStableIngress(t, c, ns, "lmp")
	code, out, errOut := canary(t, "traffic", "set", "--kubeconfig", kubeconfig(t, c), "--ingress", ns+"/lmp",
		"--canary-service", "lmp-canary", "--weight", "40")
	require.Equal(t, exitOK, code, out+errOut)
	down, err := testproc.FreePort() // nothing listens: the probe fails
	require.NoError(t, err)
	srv := hostileServe(t, c, down, hostileTraffic+"  decision: {latchOnFail: true}\n", nil)
	code, out = srv.call(t, "GET", "/v1/analysis/gate?namespace="+ns+"&name=lmp&revision=r1", "")
	require.Equal(t, 200, code, out)
	require.Contains(t, out, `"decision":"rollback"`)
	require.Eventually(t, func() bool {
		return canaryIngressAnnotations(t, c, ns, "lmp")["nginx.ingress.kubernetes.io/canary-weight"] == "0"
	}, 10*time.Second, 50*time.Millisecond, "a latchOnFail rollback did not cut traffic:\n%s", srv.output())
}

// TestHostileOrchestratorCounted: the orchestrator's analyses never
// reached canary_analysis_total, which was counted in the HTTP handlers.
func TestHostileOrchestratorCounted(t *testing.T) {
	c := testkube.Shared(t)
	ns := c.Namespace(t)
	createStableIngress(t, c, ns, "lmp")
	srv := hostileServe(t, c, healthy(t), hostileTraffic+"  rollout: {initialWeight: 10, stepWeight: 45, maxWeight: 100, interval: 1s, stepDuration: 1h}\n", nil)
	code, out := srv.call(t, "POST", "/v1/rollouts",
		`{"name":"lmp","version":"v2","policy":"gate","params":{"namespace":"`+ns+`","name":"lmp"}}`)
	require.Equal(t, 201, code, out)
	require.Eventually(t, func() bool {
		_, metrics := srv.call(t, "GET", "/metrics", "")
		return strings.Contains(metrics, `canary_analysis_total{policy="gate",verdict="pass"}`)
	}, 20*time.Second, 100*time.Millisecond, "the orchestrator's analyses are not counted:\n%s", srv.output())
}

// TestHostileRunsExpire: runs and their history were never deleted: a loop
// over random names filled the volume, and then every latch write
// answered 503.
func TestHostileRunsExpire(t *testing.T) {
	srv := hostileServe(t, nil, healthy(t), "", map[string]string{"CANARY_RUN_RETENTION": "1s"})
	for i := range 5 {
		code, out := srv.call(t, "GET", fmt.Sprintf("/v1/analysis/gate?namespace=caiso&name=random-%d&revision=r1", i), "")
		require.Equal(t, 200, code, out)
	}
	require.Eventually(t, func() bool {
		code, _ := srv.call(t, "GET", "/v1/runs/caiso/random-0", "")
		return code == 404
	}, 15*time.Second, 100*time.Millisecond, "an idle run was never deleted:\n%s", srv.output())
}
