package webhooks

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/aurum/canary/rollout"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/traffic"
	"github.com/aurum/canary/traffic/nginx"
	"github.com/aurum/canary/traffic/routers"
)

func ingress(app string) *networkingv1.Ingress {
	pathType := networkingv1.PathTypePrefix
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: "caiso", Name: app},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
			Host: app + ".example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/", PathType: &pathType,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
					Name: app + "-primary", Port: networkingv1.ServiceBackendPort{Number: 8080}}},
			}}}},
		}}},
	}
}

// TestKillSwitch: an alert or a manual rollback on a run whose policy has a
// traffic section cuts the canary's traffic before the answer; a cut that
// fails answers 503 so Alertmanager retries. The switch is a subscriber of
// the runs, not code in these handlers.
func TestKillSwitch(t *testing.T) {
	// The canary Ingress of "bad" belongs to an Argo Rollout: the switch
	// must not touch it.
	argoOwned := ingress("bad-canary")
	argoOwned.OwnerReferences = []metav1.OwnerReference{{APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout", Name: "bad", UID: "u1", Controller: ptr(true)}}
	client := fake.NewClientset(ingress("good"), ingress("bad"), argoOwned)
	clients := routers.Clients{Ingresses: func(ns string) nginx.Ingresses { return client.NetworkingV1().Ingresses(ns) }}
	e := newEnv(t)
	tr := rollout.NewTraffic(rollout.TrafficOptions{Store: e.store, Registerer: e.reg,
		Routers: func(target routers.Target) (traffic.Router, error) { return routers.New(target, clients, nil) }})
	e.srv.runs.Subscribe(rollout.NewKillSwitch(tr, e.srv.policies.Set, nil))

	// The canary of "good" gets 40% of traffic.
	r, err := routers.New(routers.Target{Router: "nginx", Namespace: "caiso", Ingress: "good", StableService: "good-primary", CanaryService: "good-canary"}, clients, nil)
	require.NoError(t, err)
	require.NoError(t, r.Apply(context.Background(), traffic.Step{Weight: 40}))
	weight := func() string {
		ing, err := client.NetworkingV1().Ingresses("caiso").Get(context.Background(), "good-canary", metav1.GetOptions{})
		require.NoError(t, err)
		return ing.Annotations["nginx.ingress.kubernetes.io/canary-weight"]
	}
	require.Equal(t, "40", weight())

	e.result("GET", "/v1/analysis/ingest?namespace=caiso&name=good&revision=r1", nil)
	code, out := e.call("POST", "/v1/alertmanager", amPayload4("firing", "good", "critical", "f1"))
	require.Equal(t, http.StatusOK, code, out)
	require.Equal(t, "0", weight(), "the alert cut the canary's traffic")
	require.Contains(t, e.metrics(), `canary_traffic_cuts_total{result="ok"} 1`)

	// A canary the switch may not touch: the latch holds, the answer says
	// the cut failed, and a redelivery tries again.
	e.result("GET", "/v1/analysis/ingest?namespace=caiso&name=bad&revision=r1", nil)
	code, out = e.call("POST", "/v1/runs/caiso/bad/rollback", `{"reason":"by hand"}`)
	require.Equal(t, http.StatusServiceUnavailable, code, out)
	require.Contains(t, out, "rollback latched, but cutting canary traffic failed")
	code, _ = e.call("POST", "/v1/flagger/rollback", flagger("bad", "r1", nil))
	require.Equal(t, http.StatusOK, code, "the latch itself is durable")
	code, out = e.call("POST", "/v1/alertmanager", amPayload4("firing", "bad", "critical", "f2"))
	require.Equal(t, http.StatusServiceUnavailable, code, out)
	code, out = e.call("POST", "/v1/alertmanager", amPayload4("firing", "bad", "critical", "f2"))
	require.Equal(t, http.StatusServiceUnavailable, code, "a redelivery retries the cut, and says it failed again: %s", out)
	require.Contains(t, e.metrics(), `canary_traffic_cuts_total{result="error"} 3`)
	_ = rules.OnRollbackZero
}

func ptr[T any](v T) *T { return &v }
