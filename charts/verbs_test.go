package charts_test

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/aurum/canary/internal/testkube"
	"github.com/aurum/canary/rollout/deploy"
	"github.com/aurum/canary/traffic"
	"github.com/aurum/canary/traffic/gatewayapi"
	"github.com/aurum/canary/traffic/kube"
	"github.com/aurum/canary/traffic/nginx"
)

// verbRecorder records the Kubernetes verb of every request, by
// "group/resource", as the API server's authorizer names them.
type verbRecorder struct {
	mu    sync.Mutex
	verbs map[string][]string
}

// wrap records the requests of one client's transport.
func (v *verbRecorder) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		v.record(req)
		return rt.RoundTrip(req)
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

func (v *verbRecorder) record(req *http.Request) {
	// /apis/GROUP/VERSION/namespaces/NS/RESOURCE[/NAME]
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	if len(parts) >= 6 && parts[0] == "apis" && parts[3] == "namespaces" {
		key := parts[1] + "/" + parts[5]
		named := len(parts) > 6
		verb := map[string]string{http.MethodPost: "create", http.MethodPut: "update", http.MethodPatch: "patch", http.MethodDelete: "delete"}[req.Method]
		switch {
		case req.Method == http.MethodGet && req.URL.Query().Get("watch") == "true":
			verb = "watch"
		case req.Method == http.MethodGet && named:
			verb = "get"
		case req.Method == http.MethodGet:
			verb = "list"
		}
		v.mu.Lock()
		if !slices.Contains(v.verbs[key], verb) {
			v.verbs[key] = append(v.verbs[key], verb)
		}
		v.mu.Unlock()
	}
}

// TestChartRBACIsWhatTheCodeCalls runs the routers and the Deployment
// manager as the chart's service account, against a real API server, with
// exactly the RBAC the chart renders (rbac.deployments on): every call they
// make is allowed, and every verb the chart grants is one they use. Nothing
// more, nothing missing.
func TestChartRBACIsWhatTheCodeCalls(t *testing.T) {
	c := testkube.Shared(t)
	c.InstallGatewayAPI(t)
	c.InstallArgoRollouts(t)
	c.InstallFlagger(t)
	dyn, mapper := kubeClients(t, c)
	ctx := t.Context()
	ns := c.Namespace(t)

	var role *rbacv1.Role
	var rbac manifests
	for _, o := range render(t, "--namespace", ns, "--set", "rbac.create=true", "--set", "rbac.deployments=true") {
		switch o.u.GetKind() {
		case "ServiceAccount", "Role", "RoleBinding":
			rbac = append(rbac, o)
		}
		if r, ok := o.typed.(*rbacv1.Role); ok {
			role = r
		}
	}
	require.NotNil(t, role)
	apply(t, ctx, dyn, mapper, rbac, false)

	// What the service account starts from, made by an administrator.
	prefix := networkingv1.PathTypePrefix
	_, err := c.Kubernetes().NetworkingV1().Ingresses(ns).Create(ctx, &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lmp"},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
			Host: "lmp.example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/", PathType: &prefix,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
					Name: "lmp-primary", Port: networkingv1.ServiceBackendPort{Number: 8080}}},
			}}}},
		}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	port := gatewayv1.PortNumber(8080)
	_, err = c.Gateway().GatewayV1().HTTPRoutes(ns).Create(ctx, &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lmp"},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "edge"}}},
			Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
				BackendObjectReference: gatewayv1.BackendObjectReference{Name: "lmp-primary", Port: &port}}}}}},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	replicas := int32(1)
	labels := map[string]string{"app": "lmp"}
	_, err = c.Kubernetes().AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lmp"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/lmp:1"}}},
			},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	// The service account, as the pod runs: impersonated, every request
	// recorded.
	rec := &verbRecorder{verbs: map[string][]string{}}
	cfg := c.Config()
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + ns + ":" + release,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
	cfg.Wrap(rec.wrap)
	k, err := kube.New(cfg)
	require.NoError(t, err)
	sadyn, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)

	// The authorizer reads RBAC from a cache: wait for the Role to show.
	ing, err := nginx.New(k.Ingresses(ns), nginx.Config{Namespace: ns, StableIngress: "lmp", StableService: "lmp-primary", CanaryService: "lmp-canary"}, nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool { _, err := ing.State(ctx); return err == nil }, 30*time.Second, 100*time.Millisecond, "the Role never took effect")

	route, err := gatewayapi.New(k.HTTPRoutes(ns), gatewayapi.Config{Namespace: ns, HTTPRoute: "lmp", StableService: "lmp-primary", CanaryService: "lmp-canary"}, nil)
	require.NoError(t, err)
	for _, r := range []traffic.Router{ing, route} {
		for _, w := range []int{10, 25} {
			require.NoError(t, r.Apply(ctx, traffic.Step{Weight: w}))
		}
		_, err := r.State(ctx)
		require.NoError(t, err)
		require.NoError(t, r.Reset(ctx))
	}

	d := deploy.New(func(ns string) deploy.Deployments { return k.Deployments(ns) }, sadyn)
	spec := deploy.Spec{Namespace: ns, Name: "lmp", Images: map[string]string{"app": "registry.example/lmp:2"}, Version: "v2"}
	_, err = d.Check(ctx, spec)
	require.NoError(t, err)
	_, err = d.ApplyCanary(ctx, spec)
	require.NoError(t, err)
	_, err = d.ScaleCanary(ctx, spec, 1)
	require.NoError(t, err)
	_, err = d.PromoteStable(ctx, spec)
	require.NoError(t, err)
	_, err = d.ScaleCanary(ctx, spec, 0)
	require.NoError(t, err)
	_, err = d.State(ctx, spec)
	require.NoError(t, err)

	granted := map[string][]string{}
	for _, r := range role.Rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				granted[g+"/"+res] = slices.Sorted(slices.Values(r.Verbs))
			}
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	used := map[string][]string{}
	for k, v := range rec.verbs {
		used[k] = slices.Sorted(slices.Values(v))
	}
	require.Equal(t, granted, used, "the chart's Role (want) against the verbs the routers and the Deployment manager send (got)")
}
