package rollout

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/traffic"
	"github.com/aurum/canary/traffic/routers"
)

func stableIngress() *networkingv1.Ingress {
	pathType := networkingv1.PathTypePrefix
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: "caiso", Name: "lmp"},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
			Host: "lmp.example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/", PathType: &pathType,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
					Name: "lmp-primary", Port: networkingv1.ServiceBackendPort{Number: 8080}}},
			}}}},
		}}},
	}
}

const trafficPolicy = `
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: p}
spec:
  params: {namespace: {}, name: {}}
  queries: {x: {prometheus: 'up{app="{{ .name }}"}'}}
  rules: [{name: up, expr: x == 1}]
  traffic:
    router: nginx
    namespace: "{{ .namespace }}"
    ingress: "{{ .name }}"
    stableService: "{{ .name }}-primary"
    canaryService: "{{ .name }}-canary"
`

func policy(t *testing.T, extra string) *rules.Policy {
	t.Helper()
	pols, err := rules.Parse("p.yaml", []byte(trafficPolicy+extra))
	require.NoError(t, err)
	return pols[0]
}

func canaryWeight(t *testing.T, c *fake.Clientset) string {
	t.Helper()
	ing, err := c.NetworkingV1().Ingresses("caiso").Get(context.Background(), "lmp-canary", metav1.GetOptions{})
	require.NoError(t, err)
	return ing.Annotations["nginx.ingress.kubernetes.io/canary-weight"]
}

func TestSwitchCutsAtOnce(t *testing.T) {
	client := fake.NewClientset(stableIngress())
	clients := routers.Clients{Kubernetes: client}
	pol := policy(t, "")
	r, err := routers.New(routers.Target{Router: "nginx", Namespace: "caiso", Ingress: "lmp", StableService: "lmp-primary", CanaryService: "lmp-canary"}, clients, nil)
	require.NoError(t, err)
	require.NoError(t, r.Apply(context.Background(), traffic.Step{Weight: 40}))
	require.Equal(t, "40", canaryWeight(t, client))

	s := NewSwitch(clients, nil)
	defer s.Close()
	require.NoError(t, s.Cut(context.Background(), pol, map[string]string{"namespace": "caiso", "name": "lmp"}))
	require.Equal(t, "0", canaryWeight(t, client))

	// Params that do not fit the policy cut nothing and say why.
	require.ErrorIs(t, s.Cut(context.Background(), pol, map[string]string{"namespace": "caiso"}), rules.ErrInvalidParams)
}

func TestSwitchStepsDown(t *testing.T) {
	client := fake.NewClientset(stableIngress())
	clients := routers.Clients{Kubernetes: client}
	pol := policy(t, "    onRollback: stepDown\n    stepDown: {weights: [30, 10], interval: 50ms}\n")
	s := NewSwitch(clients, nil)
	defer s.Close()
	require.NoError(t, s.Cut(context.Background(), pol, map[string]string{"namespace": "caiso", "name": "lmp"}))
	require.Equal(t, "30", canaryWeight(t, client), "the first step is applied before Cut returns")
	require.Eventually(t, func() bool { return canaryWeight(t, client) == "0" }, 5*time.Second, 10*time.Millisecond)
}
