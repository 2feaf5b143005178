package nginx

import (
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/aurum/canary/internal/testkube"
	"github.com/aurum/canary/traffic"
	"github.com/aurum/canary/traffic/kube"
)

func TestMain(m *testing.M) { os.Exit(testkube.Main(m)) }

// realStable creates, in a fresh namespace of the real API server, a stable
// Ingress with one path to the stable Service and one to another Service.
func realStable(t *testing.T, c *testkube.Cluster) string {
	t.Helper()
	ns := c.Namespace(t)
	ing := stableForReal(ns)
	_, err := c.Kubernetes().NetworkingV1().Ingresses(ns).Create(t.Context(), ing, metav1.CreateOptions{})
	require.NoError(t, err)
	return ns
}

func stableForReal(ns string) *networkingv1.Ingress {
	prefix := networkingv1.PathTypePrefix
	class := "nginx"
	backend := func(svc string) networkingv1.IngressBackend {
		return networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: svc, Port: networkingv1.ServiceBackendPort{Number: 8080}}}
	}
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lmp",
			Annotations: map[string]string{"nginx.ingress.kubernetes.io/proxy-body-size": "8m"}},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			TLS:              []networkingv1.IngressTLS{{Hosts: []string{"lmp.example.com"}, SecretName: "lmp-tls"}},
			Rules: []networkingv1.IngressRule{{
				Host: "lmp.example.com",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{
					{Path: "/api", PathType: &prefix, Backend: backend("lmp-primary")},
					{Path: "/admin", PathType: &prefix, Backend: backend("lmp-admin")},
				}}},
			}},
		},
	}
}

// realRouter writes through traffic/kube's lean client, as `canary`
// does; the tests read back through client-go's clientset.
func realRouter(t *testing.T, c *testkube.Cluster, ns string) *Router {
	t.Helper()
	r, err := New(realIngresses(t, c, ns), Config{Namespace: ns, StableIngress: "lmp", StableService: "lmp-primary", CanaryService: "lmp-canary"}, nil)
	require.NoError(t, err)
	return r
}

func realIngresses(t *testing.T, c *testkube.Cluster, ns string) Ingresses {
	t.Helper()
	k, err := kube.New(c.Config())
	require.NoError(t, err)
	return k.Ingresses(ns)
}

func canaryAnnotations(t *testing.T, c *testkube.Cluster, ns string) map[string]string {
	t.Helper()
	ing, err := c.Kubernetes().NetworkingV1().Ingresses(ns).Get(t.Context(), "lmp-canary", metav1.GetOptions{})
	require.NoError(t, err)
	return ing.Annotations
}

// TestRealAPIServer runs the router against a real kube-apiserver, which
// validates the Ingress schema, applies merge-patch nulls, defaults fields
// and rejects stale writes, none of which a fake clientset does.
func TestRealAPIServer(t *testing.T) {
	c := testkube.Shared(t)
	const p = "nginx.ingress.kubernetes.io/"

	t.Run("every strategy, then reset", func(t *testing.T) {
		ns := realStable(t, c)
		r := realRouter(t, c, ns)
		ctx := t.Context()

		require.NoError(t, r.Apply(ctx, traffic.Step{Weight: 20}))
		ing, err := c.Kubernetes().NetworkingV1().Ingresses(ns).Get(ctx, "lmp-canary", metav1.GetOptions{})
		require.NoError(t, err)
		require.Len(t, ing.Spec.Rules[0].HTTP.Paths, 1, "only the stable Service's paths are copied")
		require.Equal(t, "lmp-canary", ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name)
		require.Equal(t, "nginx", *ing.Spec.IngressClassName)
		require.Equal(t, "20", ing.Annotations[p+"canary-weight"])

		userPattern, _, err := traffic.UserIDPattern(traffic.IDHex, 10, 2)
		require.NoError(t, err)
		geoPattern, err := traffic.GeoPattern([]string{"US", "CA"})
		require.NoError(t, err)
		steps := []struct {
			name string
			step traffic.Step
			want map[string]string // our keys; absent ones must be gone
		}{
			{name: "fine weight", step: traffic.Step{Weight: 5, Total: 1000},
				want: map[string]string{"canary-weight": "5", "canary-weight-total": "1000"}},
			{name: "header value", step: traffic.Step{Match: &traffic.Match{Strategy: traffic.StrategyHeader, Header: "X-Canary", Value: "caiso-ops"}},
				want: map[string]string{"canary-weight": "0", "canary-by-header": "X-Canary", "canary-by-header-value": "caiso-ops"}},
			{name: "user share", step: traffic.Step{Match: &traffic.Match{Strategy: traffic.StrategyUserID, Header: "X-User-Id", Pattern: userPattern}},
				want: map[string]string{"canary-weight": "0", "canary-by-header": "X-User-Id", "canary-by-header-pattern": userPattern}},
			{name: "cookie and weight", step: traffic.Step{Weight: 10, Match: &traffic.Match{Strategy: traffic.StrategyCookie, Cookie: "lmp_canary"}},
				want: map[string]string{"canary-weight": "10", "canary-by-cookie": "lmp_canary", "affinity": "cookie",
					"session-cookie-name": "lmp_canary-affinity", "affinity-canary-behavior": "sticky"}},
			{name: "geo", step: traffic.Step{Match: &traffic.Match{Strategy: traffic.StrategyGeo, Header: "CF-IPCountry", Pattern: geoPattern}},
				want: map[string]string{"canary-weight": "0", "canary-by-header": "CF-IPCountry", "canary-by-header-pattern": geoPattern}},
			{name: "weight only again", step: traffic.Step{Weight: 30}, want: map[string]string{"canary-weight": "30"}},
		}
		managed := []string{"canary-weight", "canary-weight-total", "canary-by-header", "canary-by-header-value",
			"canary-by-header-pattern", "canary-by-cookie", "affinity", "session-cookie-name", "affinity-canary-behavior"}
		for _, s := range steps {
			require.NoError(t, r.Apply(ctx, s.step), s.name)
			got := canaryAnnotations(t, c, ns)
			require.Equal(t, "true", got[p+"canary"], s.name)
			for _, k := range managed {
				want, ok := s.want[k]
				if !ok {
					require.NotContains(t, got, p+k, "%s: %s must be removed by the merge patch", s.name, k)
					continue
				}
				require.Equal(t, want, got[p+k], "%s: %s", s.name, k)
			}
			st, err := r.State(ctx)
			require.NoError(t, err)
			require.Equal(t, s.step.Weight, st.Weight, s.name)
		}

		// A key someone else added survives our patches and the reset.
		_, err = c.Kubernetes().NetworkingV1().Ingresses(ns).Patch(ctx, "lmp-canary", types.MergePatchType,
			[]byte(`{"metadata":{"annotations":{"example.com/team":"market-data"}}}`), metav1.PatchOptions{})
		require.NoError(t, err)
		require.NoError(t, r.Reset(ctx))
		got := canaryAnnotations(t, c, ns)
		require.Equal(t, "0", got[p+"canary-weight"])
		require.Equal(t, "true", got[p+"canary"])
		require.Equal(t, "market-data", got["example.com/team"])
		require.NotContains(t, got, p+"canary-by-header")
		st, err := r.State(ctx)
		require.NoError(t, err)
		require.Equal(t, 0, st.Weight)
	})

	t.Run("concurrent writers retry on conflict", func(t *testing.T) {
		ns := realStable(t, c)
		ctx := t.Context()
		require.NoError(t, realRouter(t, c, ns).Apply(ctx, traffic.Step{Weight: 1}))
		// Two routers and a third writer touching the same object: every
		// write carries the resourceVersion it read, so some are rejected
		// with 409 and must be retried, never lost or failed.
		var wg sync.WaitGroup
		errs := make(chan error, 60)
		for w := range 2 {
			r := realRouter(t, c, ns)
			wg.Go(func() {
				for i := range 20 {
					errs <- r.Apply(ctx, traffic.Step{Weight: 10*w + i%10})
				}
			})
		}
		wg.Go(func() {
			for i := range 20 {
				_, err := c.Kubernetes().NetworkingV1().Ingresses(ns).Patch(ctx, "lmp-canary", types.MergePatchType,
					[]byte(`{"metadata":{"labels":{"touched":"`+string(rune('a'+i))+`"}}}`), metav1.PatchOptions{})
				errs <- err
			}
		})
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	})

	t.Run("refuses an Ingress Argo Rollouts owns", func(t *testing.T) {
		ns := realStable(t, c)
		ctx := t.Context()
		canary := stableForReal(ns)
		canary.Name = "lmp-canary"
		canary.Spec.Rules[0].HTTP.Paths = canary.Spec.Rules[0].HTTP.Paths[:1]
		canary.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name = "lmp-canary"
		canary.OwnerReferences = []metav1.OwnerReference{{APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout", Name: "lmp",
			UID: "5c3b1a4e-9d2f-4b8e-a1c7-2f6e8d9b0a11", Controller: new(true)}}
		_, err := c.Kubernetes().NetworkingV1().Ingresses(ns).Create(ctx, canary, metav1.CreateOptions{})
		require.NoError(t, err)
		err = realRouter(t, c, ns).Apply(ctx, traffic.Step{Weight: 10})
		require.ErrorIs(t, err, traffic.ErrNotOwned)
		require.NotContains(t, canaryAnnotations(t, c, ns), "nginx.ingress.kubernetes.io/canary-weight")

		r, err := New(realIngresses(t, c, ns), Config{Namespace: ns, StableIngress: "lmp", StableService: "lmp-primary", CanaryService: "lmp-canary", TakeOver: true}, nil)
		require.NoError(t, err)
		require.NoError(t, r.Apply(ctx, traffic.Step{Weight: 10}))
		require.Equal(t, "10", canaryAnnotations(t, c, ns)["nginx.ingress.kubernetes.io/canary-weight"])
	})

	t.Run("missing stable Ingress", func(t *testing.T) {
		ns := c.Namespace(t)
		err := realRouter(t, c, ns).Apply(t.Context(), traffic.Step{Weight: 10})
		require.ErrorIs(t, err, traffic.ErrNotFound)
	})
}
