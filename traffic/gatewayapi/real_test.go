package gatewayapi

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/aurum/canary/internal/testkube"
	"github.com/aurum/canary/traffic"
	"github.com/aurum/canary/traffic/kube"
)

func TestMain(m *testing.M) { os.Exit(testkube.Main(m)) }

// TestRealAPIServer applies every kind of step to an HTTPRoute in a real
// kube-apiserver with the Gateway API CRD installed from the module's own
// manifests: the CRD's validation (weights, rule names, match limits) and
// defaulting are what the fake clientset does not check.
func TestRealAPIServer(t *testing.T) {
	c := testkube.Shared(t)
	c.InstallGatewayAPI(t)
	ctx := t.Context()
	ns := c.Namespace(t)

	port := gatewayv1.PortNumber(8080)
	prefix := gatewayv1.PathMatchPathPrefix
	backend := func(name string) gatewayv1.HTTPBackendRef {
		return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{
			Name: gatewayv1.ObjectName(name), Port: &port}}}
	}
	route := &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lmp"},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "edge"}}},
			Hostnames:       []gatewayv1.Hostname{"lmp.example.com"},
			Rules: []gatewayv1.HTTPRouteRule{
				{Matches: []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: &prefix, Value: new("/api")}}},
					BackendRefs: []gatewayv1.HTTPBackendRef{backend("lmp-primary")}},
				{Matches: []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: &prefix, Value: new("/admin")}}},
					BackendRefs: []gatewayv1.HTTPBackendRef{backend("lmp-admin")}},
			},
		},
	}
	_, err := c.Gateway().GatewayV1().HTTPRoutes(ns).Create(ctx, route, metav1.CreateOptions{})
	require.NoError(t, err)
	// The router writes through traffic/kube's lean client, as `canary`
	// does; the test reads back through the Gateway API's clientset.
	k, err := kube.New(c.Config())
	require.NoError(t, err)
	r, err := New(k.HTTPRoutes(ns), Config{Namespace: ns, HTTPRoute: "lmp", StableService: "lmp-primary", CanaryService: "lmp-canary"}, nil)
	require.NoError(t, err)

	userPattern, _, err := traffic.UserIDPattern(traffic.IDNumeric, 20, 2)
	require.NoError(t, err)
	geoPattern, err := traffic.GeoPattern([]string{"US", "CA"})
	require.NoError(t, err)
	for _, tt := range []struct {
		name  string
		step  traffic.Step
		rules int // rules on the route after the step
	}{
		{name: "weight", step: traffic.Step{Weight: 20}, rules: 2},
		{name: "fine weight", step: traffic.Step{Weight: 5, Total: 1000}, rules: 2},
		{name: "header value", step: traffic.Step{Weight: 10, Match: &traffic.Match{Strategy: traffic.StrategyHeader, Header: "X-Canary", Value: "caiso-ops"}}, rules: 3},
		{name: "user share", step: traffic.Step{Match: &traffic.Match{Strategy: traffic.StrategyUserID, Header: "X-User-Id", Pattern: userPattern}}, rules: 3},
		{name: "cookie", step: traffic.Step{Match: &traffic.Match{Strategy: traffic.StrategyCookie, Cookie: "lmp_canary"}}, rules: 3},
		{name: "geo", step: traffic.Step{Match: &traffic.Match{Strategy: traffic.StrategyGeo, Header: "CF-IPCountry", Pattern: geoPattern}}, rules: 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, r.Apply(ctx, tt.step))
			got, err := c.Gateway().GatewayV1().HTTPRoutes(ns).Get(ctx, "lmp", metav1.GetOptions{})
			require.NoError(t, err)
			require.Len(t, got.Spec.Rules, tt.rules)
			st, err := r.State(ctx)
			require.NoError(t, err)
			require.Equal(t, tt.step.Weight, st.Weight)
			if tt.step.Match != nil {
				require.NotNil(t, st.Match)
				require.Equal(t, tt.step.Match.Value, st.Match.Value)
			}
			// Applying the same step again writes nothing.
			before := got.ResourceVersion
			require.NoError(t, r.Apply(ctx, tt.step))
			again, err := c.Gateway().GatewayV1().HTTPRoutes(ns).Get(ctx, "lmp", metav1.GetOptions{})
			require.NoError(t, err)
			require.Equal(t, before, again.ResourceVersion)
			// The unrelated rule is never touched.
			require.Equal(t, route.Spec.Rules[1].BackendRefs[0].Name, again.Spec.Rules[len(again.Spec.Rules)-1].BackendRefs[0].Name)
		})
	}

	require.NoError(t, r.Reset(ctx))
	got, err := c.Gateway().GatewayV1().HTTPRoutes(ns).Get(ctx, "lmp", metav1.GetOptions{})
	require.NoError(t, err)
	require.Len(t, got.Spec.Rules, 2, "match rules removed")
	st, err := r.State(ctx)
	require.NoError(t, err)
	require.False(t, st.Enabled)
}
