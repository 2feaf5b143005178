package testkube

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// The nginx ingress controller's canary annotations, which the nginx
// router sets.
const (
	canary         = "nginx.ingress.kubernetes.io/canary"
	canaryWeight   = "nginx.ingress.kubernetes.io/canary-weight"
	canaryByHeader = "nginx.ingress.kubernetes.io/canary-by-header"
)

func TestIngress(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := Shared(t)
	t.Logf("shared cluster ready after %s", time.Since(start))
	ctx := t.Context()
	ns := c.Namespace(t)
	kube := c.Kubernetes()

	svc, err := kube.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "app-canary"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "app", "track": "canary"},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, svc.Spec.ClusterIP, "a real server allocates a cluster IP")

	pathType := networkingv1.PathTypePrefix
	created, err := kube.NetworkingV1().Ingresses(ns).Create(ctx, &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{
			Name: "app-canary",
			Annotations: map[string]string{
				canary:         "true",
				canaryWeight:   "0",
				canaryByHeader: "X-Canary",
			},
		},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
			Host: "app.example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{
					Path:     "/",
					PathType: &pathType,
					Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
						Name: svc.Name,
						Port: networkingv1.ServiceBackendPort{Number: 80},
					}},
				}},
			}},
		}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	// A JSON merge patch sets one annotation and deletes another with null,
	// leaving the rest alone.
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"30",%q:null}}}`, canaryWeight, canaryByHeader)
	patched, err := kube.NetworkingV1().Ingresses(ns).Patch(ctx, created.Name, types.MergePatchType,
		[]byte(patch), metav1.PatchOptions{})
	require.NoError(t, err)
	require.Equal(t, map[string]string{canary: "true", canaryWeight: "30"}, patched.Annotations)
	require.NotEqual(t, created.ResourceVersion, patched.ResourceVersion)

	got, err := kube.NetworkingV1().Ingresses(ns).Get(ctx, created.Name, metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, patched.Annotations, got.Annotations, "the patch is stored")

	// An update built on the object as it was before the patch carries a
	// stale resourceVersion: the server refuses it with 409 Conflict.
	stale := created.DeepCopy()
	stale.Annotations[canaryWeight] = "50"
	_, err = kube.NetworkingV1().Ingresses(ns).Update(ctx, stale, metav1.UpdateOptions{})
	require.Error(t, err)
	require.True(t, apierrors.IsConflict(err), "want a conflict, got %v", err)
	var status apierrors.APIStatus
	require.ErrorAs(t, err, &status)
	require.EqualValues(t, http.StatusConflict, status.Status().Code)
}

// httpRoute is a route that splits traffic between a stable and a canary
// Service.
func httpRoute(name string, stable, canary int32) *gatewayv1.HTTPRoute {
	port := gatewayv1.PortNumber(80)
	backend := func(service string, weight int32) gatewayv1.HTTPBackendRef {
		return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{
			BackendObjectReference: gatewayv1.BackendObjectReference{
				Name: gatewayv1.ObjectName(service),
				Port: &port,
			},
			Weight: &weight,
		}}
	}
	return &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{
				ParentRefs: []gatewayv1.ParentReference{{Name: "public"}},
			},
			Hostnames: []gatewayv1.Hostname{"app.example.com"},
			Rules: []gatewayv1.HTTPRouteRule{{
				BackendRefs: []gatewayv1.HTTPBackendRef{backend("app-stable", stable), backend("app-canary", canary)},
			}},
		},
	}
}

func TestHTTPRoute(t *testing.T) {
	t.Parallel()
	c := Shared(t)
	start := time.Now()
	c.InstallGatewayAPI(t)
	t.Logf("Gateway API installed after %s", time.Since(start))
	c.InstallGatewayAPI(t) // a second call is a no-op
	ctx := t.Context()
	ns := c.Namespace(t)
	routes := c.Gateway().GatewayV1().HTTPRoutes(ns)

	created, err := routes.Create(ctx, httpRoute("app", 90, 10), metav1.CreateOptions{})
	require.NoError(t, err)
	backends := created.Spec.Rules[0].BackendRefs
	require.Len(t, backends, 2)
	require.EqualValues(t, 90, *backends[0].Weight)
	require.EqualValues(t, 10, *backends[1].Weight)
	// Defaults from the CRD's schema prove that the real CRD is installed.
	require.NotNil(t, backends[0].Kind)
	require.EqualValues(t, "Service", *backends[0].Kind)

	// A merge patch replaces a list as a whole, as a router shifting
	// weights sends it.
	patch := `{"spec":{"rules":[{"backendRefs":[` +
		`{"name":"app-stable","port":80,"weight":50},{"name":"app-canary","port":80,"weight":50}]}]}}`
	patched, err := routes.Patch(ctx, "app", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	require.NoError(t, err)
	require.EqualValues(t, 50, *patched.Spec.Rules[0].BackendRefs[0].Weight)
	require.EqualValues(t, 50, *patched.Spec.Rules[0].BackendRefs[1].Weight)
}

func TestHTTPRouteValidation(t *testing.T) {
	t.Parallel()
	c := Shared(t)
	c.InstallGatewayAPI(t)
	ns := c.Namespace(t)
	routes := c.Gateway().GatewayV1().HTTPRoutes(ns)

	tests := []struct {
		name  string
		route func() *gatewayv1.HTTPRoute
		want  string
	}{
		{
			name:  "negative weight",
			route: func() *gatewayv1.HTTPRoute { return httpRoute("negative", 100, -1) },
			want:  "spec.rules[0].backendRefs[1].weight: Invalid value: -1: spec.rules[0].backendRefs[1].weight in body should be greater than or equal to 0",
		},
		{
			name:  "weight above the maximum",
			route: func() *gatewayv1.HTTPRoute { return httpRoute("huge", 1000001, 0) },
			want:  "spec.rules[0].backendRefs[0].weight: Invalid value: 1000001: spec.rules[0].backendRefs[0].weight in body should be less than or equal to 1000000",
		},
		{
			name: "17 rules",
			route: func() *gatewayv1.HTTPRoute {
				r := httpRoute("many-rules", 90, 10)
				for len(r.Spec.Rules) < 17 {
					r.Spec.Rules = append(r.Spec.Rules, r.Spec.Rules[0])
				}
				return r
			},
			want: "spec.rules: Too many: 17: must have at most 16 items",
		},
		{
			// A CEL rule of the CRD, not an OpenAPI bound.
			name: "service without a port",
			route: func() *gatewayv1.HTTPRoute {
				r := httpRoute("no-port", 90, 10)
				r.Spec.Rules[0].BackendRefs[1].Port = nil
				return r
			},
			want: "Must have port for Service reference",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := routes.Create(t.Context(), tt.route(), metav1.CreateOptions{})
			require.Error(t, err)
			require.True(t, apierrors.IsInvalid(err), "want 422 Invalid, got %v", err)
			require.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := Start(t)
	t.Logf("cluster ready after %s", time.Since(start))
	ctx := t.Context()
	_, err := c.Kubernetes().CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
	require.NoError(t, err)

	// Without the token, the server does not know who is asking.
	config := c.Config()
	config.BearerToken = ""
	client, err := kubernetes.NewForConfig(config)
	require.NoError(t, err)
	_, err = client.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
	require.True(t, apierrors.IsForbidden(err), "want 403 for system:anonymous, got %v", err)

	c.Stop()
	c.Stop() // a second Stop is a no-op
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = c.Kubernetes().CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
	require.ErrorContains(t, err, "connection refused")
}

func TestNamespace(t *testing.T) {
	t.Parallel()
	c := Shared(t)
	a, b := c.Namespace(t), c.Namespace(t)
	require.NotEqual(t, a, b)
	require.True(t, strings.HasPrefix(a, "testnamespace-"), a)
}

func TestNamePrefix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		testName string
		want     string
	}{
		{name: "plain", testName: "TestRouter", want: "testrouter-"},
		{name: "subtest", testName: "TestRouter/weight_50%", want: "testrouter-weight-50-"},
		{name: "runs of symbols", testName: "Test__A//B", want: "test-a-b-"},
		{name: "nothing usable", testName: "_/_", want: "test-"},
		{name: "long", testName: "Test" + strings.Repeat("x", 100), want: "test" + strings.Repeat("x", maxPrefix-5) + "-"},
		{name: "cut before a dash", testName: "Test" + strings.Repeat("x", maxPrefix-6) + "/y", want: "test" + strings.Repeat("x", maxPrefix-6) + "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := namePrefix(tt.testName)
			require.Equal(t, tt.want, got)
			require.LessOrEqual(t, len(got), maxPrefix)
		})
	}
}

// fatalTB records what a helper fails the test with, and ends the
// goroutine the helper runs in, as the real Fatalf does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fatal runs f with a fatalTB and returns what it failed with.
func fatal(t *testing.T, f func(tb testing.TB)) string {
	t.Helper()
	ftb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(ftb)
	}()
	<-done
	return ftb.msg
}

// The tests below change the environment or the shared state; they are
// not parallel, so they run before the parallel tests start.

func TestMissingAPIServer(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("KUBE_APISERVER", "")
	t.Setenv("XDG_CACHE_HOME", empty)
	msg := fatal(t, func(tb testing.TB) { Start(tb) })
	require.Contains(t, msg, "kube-apiserver v1.37.2 not found: build it with scripts/kube-apiserver.sh (make test runs it)")
	require.Contains(t, msg, filepath.Join(empty, "aurum-canary", "kube-apiserver-v1.37.2", "kube-apiserver"))

	t.Setenv("KUBE_APISERVER", filepath.Join(empty, "nowhere"))
	msg = fatal(t, func(tb testing.TB) { Start(tb) })
	require.Contains(t, msg, "KUBE_APISERVER="+filepath.Join(empty, "nowhere"))
}

func TestMissingEtcd(t *testing.T) {
	// Any executable does as kube-apiserver: Start looks for etcd first.
	self, err := os.Executable()
	require.NoError(t, err)
	t.Setenv("KUBE_APISERVER", self)
	t.Setenv("PATH", t.TempDir())
	msg := fatal(t, func(tb testing.TB) { Start(tb) })
	require.Contains(t, msg, "etcd not found: install the Debian package `etcd-server`")
}

func TestSharedWithoutMain(t *testing.T) {
	shared.mu.Lock()
	shared.inMain = false
	shared.mu.Unlock()
	t.Cleanup(func() {
		shared.mu.Lock()
		shared.inMain = true
		shared.mu.Unlock()
	})
	msg := fatal(t, func(tb testing.TB) { Shared(tb) })
	require.Contains(t, msg, "func TestMain(m *testing.M) { os.Exit(testkube.Main(m)) }")
}
