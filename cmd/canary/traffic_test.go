package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/aurum/canary/internal/testam"
	"github.com/aurum/canary/internal/testkube"
)

// kubeconfig writes a kubeconfig for the test cluster, as a user has one.
func kubeconfig(t *testing.T, c *testkube.Cluster) string {
	cfg := c.Config()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "admin"}
	kc.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*kc, path))
	return path
}

func createStableIngress(t *testing.T, c *testkube.Cluster, ns, name string) {
	prefix := networkingv1.PathTypePrefix
	_, err := c.Kubernetes().NetworkingV1().Ingresses(ns).Create(t.Context(), &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
			Host: name + ".example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/", PathType: &prefix,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
					Name: name + "-primary", Port: networkingv1.ServiceBackendPort{Number: 8080}}},
			}}}},
		}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

func canaryIngressAnnotations(t *testing.T, c *testkube.Cluster, ns, name string) map[string]string {
	ing, err := c.Kubernetes().NetworkingV1().Ingresses(ns).Get(t.Context(), name+"-canary", metav1.GetOptions{})
	require.NoError(t, err)
	return ing.Annotations
}

// TestTrafficCommand drives a real API server with `canary traffic`: each
// form of set, status and reset, as the README documents them.
func TestTrafficCommand(t *testing.T) {
	c := testkube.Shared(t)
	ns := c.Namespace(t)
	createStableIngress(t, c, ns, "lmp")
	kc := kubeconfig(t, c)
	const p = "nginx.ingress.kubernetes.io/"
	target := []string{"--kubeconfig", kc, "--ingress", ns + "/lmp", "--canary-service", "lmp-canary"}

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		want   map[string]string
	}{
		{name: "weight", args: []string{"set", "--weight", "20"}, stdout: "canary weight 20/100 (20%)",
			want: map[string]string{"canary-weight": "20"}},
		{name: "header", args: []string{"set", "--header", "X-Canary", "--header-value", "ops"}, stdout: "requests with X-Canary: ops",
			want: map[string]string{"canary-weight": "0", "canary-by-header": "X-Canary", "canary-by-header-value": "ops"}},
		{name: "user share", args: []string{"set", "--user-header", "X-User-Id", "--user-share", "10"},
			want: map[string]string{"canary-by-header": "X-User-Id", "canary-by-header-pattern": `^([0-9]*0[0-9]|[0-9])$`}},
		{name: "cookie", args: []string{"set", "--cookie", "lmp_canary", "--weight", "5"},
			want: map[string]string{"canary-weight": "5", "canary-by-cookie": "lmp_canary", "affinity": "cookie"}},
		{name: "geo", args: []string{"set", "--countries", "US,CA"},
			want: map[string]string{"canary-by-header": "CF-IPCountry", "canary-by-header-pattern": "^(CA|US)$"}},
		{name: "user share with a weight is refused", args: []string{"set", "--user-header", "X-User-Id", "--user-share", "10", "--weight", "5"}, code: exitError},
		{name: "status", args: []string{"status"}, stdout: "requests whose CF-IPCountry matches ^(CA|US)$"},
		{name: "reset", args: []string{"reset"}, stdout: "canary weight 0/100",
			want: map[string]string{"canary-weight": "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{"traffic"}, tt.args[:1]...), append(target, tt.args[1:]...)...)
			code, stdout, stderr := canary(t, args...)
			require.Equal(t, tt.code, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
			require.Contains(t, stdout, tt.stdout)
			if tt.want == nil {
				return
			}
			got := canaryIngressAnnotations(t, c, ns, "lmp")
			for k, v := range tt.want {
				require.Equal(t, v, got[p+k], k)
			}
			if tt.name == "reset" {
				for k := range got {
					require.False(t, strings.HasPrefix(k, p+"canary-by-"), "reset removes routing: %s", k)
				}
			}
		})
	}
}

// TestKillSwitchFromAlert: a real Alertmanager alert reaches `canary
// serve`, which latches the rollback and cuts the canary's weight to 0 on a
// real API server before Argo or Flagger would look again.
func TestKillSwitchFromAlert(t *testing.T) {
	c := testkube.Shared(t)
	ns := c.Namespace(t)
	createStableIngress(t, c, ns, "lmp")
	kc := kubeconfig(t, c)
	code, out, errOut := canary(t, "traffic", "set", "--kubeconfig", kc, "--ingress", ns+"/lmp", "--canary-service", "lmp-canary", "--weight", "40")
	require.Equal(t, exitOK, code, out+errOut)

	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(policy, []byte(`
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: lmp}
spec:
  params: {namespace: {}, name: {}}
  queries:
    api: {http: {url: "http://127.0.0.1:1/healthz"}}
  rules:
    - {name: probe-answers, expr: api.up == 0}
  alerts:
    - match: {severity: critical, namespace: "{{ .namespace }}", app: "{{ .name }}"}
      action: rollback
  traffic:
    router: nginx
    namespace: "{{ .namespace }}"
    ingress: "{{ .name }}"
    stableService: "{{ .name }}-primary"
    canaryService: "{{ .name }}-canary"
`), 0o644))
	srv := startServe(t, map[string]string{
		"CANARY_DATA_DIR": t.TempDir(), "CANARY_POLICIES": policy, "CANARY_KUBECONFIG": kc,
	})
	require.Contains(t, srv.output(), "kill switch on")
	code, out = srv.call(t, "GET", "/v1/analysis/lmp?namespace="+ns+"&name=lmp&revision=r1", "")
	require.Equal(t, 200, code, out)

	am := testam.Start(t, testam.Config{WebhookURL: srv.url + "/v1/alertmanager", BearerToken: testToken})
	am.Fire(t, map[string]string{"alertname": "IngestErrors", "severity": "critical", "namespace": ns, "app": "lmp"}, nil)
	require.Eventually(t, func() bool {
		return canaryIngressAnnotations(t, c, ns, "lmp")["nginx.ingress.kubernetes.io/canary-weight"] == "0"
	}, 15*time.Second, 50*time.Millisecond, "canary weight never cut; canary said:\n%s\nalertmanager said:\n%s", srv.output(), am.Output())
	code, _ = srv.call(t, "POST", "/v1/flagger/rollback", `{"name":"lmp","namespace":"`+ns+`","checksum":"r1"}`)
	require.Equal(t, 200, code)
}
