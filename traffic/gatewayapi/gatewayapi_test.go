package gatewayapi

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"testing"

	"github.com/aurum/canary/traffic"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"
)

const (
	ns     = "shop"
	name   = "web"
	stable = "web-stable"
	canary = "web-canary"
)

var testConfig = Config{Namespace: ns, HTTPRoute: name, StableService: stable, CanaryService: canary}

func ref(service string, port int32, weight *int32) gwv1.HTTPBackendRef {
	return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{
		BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(service), Port: new(port)},
		Weight:                 weight,
	}}
}

func weights(stableWeight, canaryWeight int32) []gwv1.HTTPBackendRef {
	return []gwv1.HTTPBackendRef{ref(stable, 8080, new(stableWeight)), ref(canary, 8080, new(canaryWeight))}
}

func prefix(p string) gwv1.HTTPRouteMatch {
	return gwv1.HTTPRouteMatch{Path: &gwv1.HTTPPathMatch{Type: new(gwv1.PathMatchPathPrefix), Value: new(p)}}
}

func withHeader(m gwv1.HTTPRouteMatch, h gwv1.HTTPHeaderMatch) gwv1.HTTPRouteMatch {
	m.Headers = append(m.Headers, h)
	return m
}

// healthz is a second match on the last stable rule, with a method, so the
// generated rule has to carry more than a path.
func healthz() gwv1.HTTPRouteMatch {
	return gwv1.HTTPRouteMatch{
		Path:   &gwv1.HTTPPathMatch{Type: new(gwv1.PathMatchExact), Value: new("/healthz")},
		Method: new(gwv1.HTTPMethodGet),
	}
}

func envFilter() []gwv1.HTTPRouteFilter {
	return []gwv1.HTTPRouteFilter{{
		Type: gwv1.HTTPRouteFilterRequestHeaderModifier,
		RequestHeaderModifier: &gwv1.HTTPHeaderFilter{
			Set: []gwv1.HTTPHeader{{Name: "X-Env", Value: "prod"}},
		},
	}}
}

// baseRoute is what a user's chart makes: two rules to the stable Service
// around one to an unrelated Service.
func baseRoute() *gwv1.HTTPRoute {
	return &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "Helm"},
		},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gateway"}}},
			Rules: []gwv1.HTTPRouteRule{
				{
					Name:        new(gwv1.SectionName("api")),
					Matches:     []gwv1.HTTPRouteMatch{prefix("/api")},
					BackendRefs: []gwv1.HTTPBackendRef{ref(stable, 8080, nil)},
				},
				unrelatedRule(),
				{
					Matches:     []gwv1.HTTPRouteMatch{prefix("/"), healthz()},
					Filters:     envFilter(),
					BackendRefs: []gwv1.HTTPBackendRef{ref(stable, 8080, new(int32(1)))},
				},
			},
		},
	}
}

func unrelatedRule() gwv1.HTTPRouteRule {
	return gwv1.HTTPRouteRule{
		Matches:     []gwv1.HTTPRouteMatch{prefix("/admin")},
		BackendRefs: []gwv1.HTTPBackendRef{ref("admin", 9090, new(int32(3))), ref("admin-v2", 9090, new(int32(1)))},
	}
}

// weighted is baseRoute's rules after a weight-only step.
func weighted(stableWeight, canaryWeight int32) []gwv1.HTTPRouteRule {
	rules := baseRoute().Spec.Rules
	rules[0].BackendRefs = weights(stableWeight, canaryWeight)
	rules[2].BackendRefs = weights(stableWeight, canaryWeight)
	return rules
}

// matched is baseRoute's rules after a step with a match on header h: a
// generated rule before each stable rule.
func matched(stableWeight, canaryWeight int32, h gwv1.HTTPHeaderMatch) []gwv1.HTTPRouteRule {
	rules := weighted(stableWeight, canaryWeight)
	return []gwv1.HTTPRouteRule{
		{
			Name:        new(gwv1.SectionName("canary-match-0")),
			Matches:     []gwv1.HTTPRouteMatch{withHeader(prefix("/api"), h)},
			BackendRefs: []gwv1.HTTPBackendRef{ref(canary, 8080, new(int32(1)))},
		},
		rules[0],
		rules[1],
		{
			Name:        new(gwv1.SectionName("canary-match-1")),
			Matches:     []gwv1.HTTPRouteMatch{withHeader(prefix("/"), h), withHeader(healthz(), h)},
			Filters:     envFilter(),
			BackendRefs: []gwv1.HTTPBackendRef{ref(canary, 8080, new(int32(1)))},
		},
		rules[2],
	}
}

func setup(t *testing.T, cfg Config, route *gwv1.HTTPRoute) (*Router, *fake.Clientset) {
	t.Helper()
	var objects []runtime.Object
	if route != nil {
		objects = append(objects, route)
	}
	client := fake.NewClientset(objects...)
	r, err := New(client.GatewayV1().HTTPRoutes(cfg.Namespace), cfg, nil)
	require.NoError(t, err)
	return r, client
}

func getRoute(t *testing.T, client *fake.Clientset) *gwv1.HTTPRoute {
	t.Helper()
	route, err := client.GatewayV1().HTTPRoutes(ns).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(t, err)
	return route
}

func updates(client *fake.Clientset) int {
	n := 0
	for _, a := range client.Actions() {
		if a.GetVerb() == "update" {
			n++
		}
	}
	return n
}

func exact(header, value string) gwv1.HTTPHeaderMatch {
	return gwv1.HTTPHeaderMatch{Type: new(gwv1.HeaderMatchExact), Name: gwv1.HTTPHeaderName(header), Value: value}
}

func regex(header, pattern string) gwv1.HTTPHeaderMatch {
	return gwv1.HTTPHeaderMatch{Type: new(gwv1.HeaderMatchRegularExpression), Name: gwv1.HTTPHeaderName(header), Value: pattern}
}

func TestApplyWeight(t *testing.T) {
	tests := []struct {
		name  string
		port  int32
		steps []traffic.Step
		want  []gwv1.HTTPRouteRule
	}{
		{
			name:  "weight 20 of 100",
			steps: []traffic.Step{{Weight: 20}},
			want:  weighted(80, 20),
		},
		{
			name:  "weight 125 of 1000",
			steps: []traffic.Step{{Weight: 125, Total: 1000}},
			want:  weighted(875, 125),
		},
		{
			name:  "weight 0 adds the canary at 0",
			steps: []traffic.Step{{Weight: 0}},
			want:  weighted(100, 0),
		},
		{
			name:  "all traffic to the canary",
			steps: []traffic.Step{{Weight: 100}},
			want:  weighted(0, 100),
		},
		{
			name:  "steps up reuse the canary backendRef",
			steps: []traffic.Step{{Weight: 5}, {Weight: 20}, {Weight: 50}},
			want:  weighted(50, 50),
		},
		{
			name:  "canary on its own port",
			port:  9000,
			steps: []traffic.Step{{Weight: 20}},
			want: func() []gwv1.HTTPRouteRule {
				rules := weighted(80, 20)
				rules[0].BackendRefs[1].Port = new(int32(9000))
				rules[2].BackendRefs[1].Port = new(int32(9000))
				return rules
			}(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig
			cfg.Port = tt.port
			r, client := setup(t, cfg, baseRoute())
			for _, step := range tt.steps {
				require.NoError(t, r.Apply(context.Background(), step))
			}
			route := getRoute(t, client)
			require.Equal(t, tt.want, route.Spec.Rules)
			require.Equal(t, unrelatedRule(), route.Spec.Rules[1], "the unrelated rule is left exactly as it was")
			require.Equal(t, "true", route.Annotations[ManagedAnnotation])
			require.Equal(t, "Helm", route.Labels["app.kubernetes.io/managed-by"], "the user's managed-by label stays")
			require.Equal(t, baseRoute().Spec.ParentRefs, route.Spec.ParentRefs)
		})
	}
}

func TestApplyMatch(t *testing.T) {
	userID, _, err := traffic.UserIDPattern(traffic.IDNumeric, 10, 2)
	require.NoError(t, err)
	geo, err := traffic.GeoPattern([]string{"us", "GB"})
	require.NoError(t, err)
	tests := []struct {
		name   string
		before []traffic.Step
		step   traffic.Step
		want   []gwv1.HTTPRouteRule
	}{
		{
			name:   "weight then header value",
			before: []traffic.Step{{Weight: 20}},
			step: traffic.Step{Weight: 20, Match: &traffic.Match{
				Strategy: traffic.StrategyHeader, Header: "X-Canary", Value: "yes",
			}},
			want: matched(80, 20, exact("X-Canary", "yes")),
		},
		{
			name: "header pattern",
			step: traffic.Step{Match: &traffic.Match{
				Strategy: traffic.StrategyHeader, Header: "X-Beta", Pattern: "^(alice|bob)$",
			}},
			want: matched(100, 0, regex("X-Beta", "^(alice|bob)$")),
		},
		{
			name: "user id share",
			step: traffic.Step{Match: &traffic.Match{
				Strategy: traffic.StrategyUserID, Header: "X-User-ID", Pattern: userID,
			}},
			want: matched(100, 0, regex("X-User-ID", userID)),
		},
		{
			name: "geo",
			step: traffic.Step{Match: &traffic.Match{
				Strategy: traffic.StrategyGeo, Header: "CF-IPCountry", Pattern: geo,
			}},
			want: matched(100, 0, regex("CF-IPCountry", "^(GB|US)$")),
		},
		{
			name: "cookie",
			step: traffic.Step{Match: &traffic.Match{Strategy: traffic.StrategyCookie, Cookie: "canary"}},
			want: matched(100, 0, regex("Cookie", `^(.*;)?\s*canary=always(;.*)?$`)),
		},
		{
			name:   "a new match replaces the old",
			before: []traffic.Step{{Weight: 10, Match: &traffic.Match{Strategy: traffic.StrategyHeader, Header: "X-Canary", Value: "yes"}}},
			step: traffic.Step{Match: &traffic.Match{
				Strategy: traffic.StrategyGeo, Header: "CF-IPCountry", Pattern: geo,
			}},
			want: matched(100, 0, regex("CF-IPCountry", "^(GB|US)$")),
		},
		{
			name:   "a step without a match removes it",
			before: []traffic.Step{{Weight: 10, Match: &traffic.Match{Strategy: traffic.StrategyHeader, Header: "X-Canary", Value: "yes"}}},
			step:   traffic.Step{Weight: 30},
			want:   weighted(70, 30),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, client := setup(t, testConfig, baseRoute())
			for _, step := range tt.before {
				require.NoError(t, r.Apply(context.Background(), step))
			}
			require.NoError(t, r.Apply(context.Background(), tt.step))
			require.Equal(t, tt.want, getRoute(t, client).Spec.Rules)
		})
	}
}

func TestApplyMatchOnRuleWithoutMatches(t *testing.T) {
	// The API server defaults a rule without matches to a prefix match on
	// "/"; the generated rule spells that out, since its header needs a
	// match to sit in.
	route := baseRoute()
	route.Spec.Rules = []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{ref(stable, 8080, nil)}}}
	r, client := setup(t, testConfig, route)
	require.NoError(t, r.Apply(context.Background(), traffic.Step{Match: &traffic.Match{
		Strategy: traffic.StrategyHeader, Header: "X-Canary", Value: "yes",
	}}))
	require.Equal(t, []gwv1.HTTPRouteRule{
		{
			Name:        new(gwv1.SectionName("canary-match-0")),
			Matches:     []gwv1.HTTPRouteMatch{withHeader(prefix("/"), exact("X-Canary", "yes"))},
			BackendRefs: []gwv1.HTTPBackendRef{ref(canary, 8080, new(int32(1)))},
		},
		{BackendRefs: weights(100, 0)},
	}, getRoute(t, client).Spec.Rules)
}

func TestCookiePattern(t *testing.T) {
	// Anchored, the pattern means the same to gateways that search with it
	// and to those (Envoy's RE2) that must match the whole header.
	tests := []struct {
		name   string
		cookie string
		header string
		want   bool
	}{
		{name: "only cookie", cookie: "canary", header: "canary=always", want: true},
		{name: "last cookie", cookie: "canary", header: "session=abc; canary=always", want: true},
		{name: "first cookie", cookie: "canary", header: "canary=always; session=abc", want: true},
		{name: "middle without spaces", cookie: "canary", header: "a=1;canary=always;b=2", want: true},
		{name: "other value", cookie: "canary", header: "canary=never", want: false},
		{name: "longer value", cookie: "canary", header: "canary=alwaysx", want: false},
		{name: "longer name", cookie: "canary", header: "xcanary=always", want: false},
		{name: "in another cookie's value", cookie: "canary", header: "a=canary=always", want: false},
		{name: "dot is literal", cookie: "my.flag", header: "myxflag=always", want: false},
		{name: "dotted name", cookie: "my.flag", header: "s=1; my.flag=always", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := headerFor(traffic.Step{Match: &traffic.Match{Strategy: traffic.StrategyCookie, Cookie: tt.cookie}})
			require.NoError(t, err)
			require.True(t, anchored(h.Value))
			require.Equal(t, tt.want, regexp.MustCompile(h.Value).MatchString(tt.header))
			name, ok := cookieName(h.Value)
			require.True(t, ok)
			require.Equal(t, tt.cookie, name)
		})
	}
}

func TestApplyIdempotent(t *testing.T) {
	tests := []struct {
		name string
		step traffic.Step
	}{
		{name: "weight", step: traffic.Step{Weight: 20}},
		{name: "weight of 1000", step: traffic.Step{Weight: 125, Total: 1000}},
		{name: "header and weight", step: traffic.Step{Weight: 20, Match: &traffic.Match{Strategy: traffic.StrategyHeader, Header: "X-Canary", Value: "yes"}}},
		{name: "cookie", step: traffic.Step{Match: &traffic.Match{Strategy: traffic.StrategyCookie, Cookie: "canary"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, client := setup(t, testConfig, baseRoute())
			require.NoError(t, r.Apply(context.Background(), tt.step))
			first := getRoute(t, client)
			require.Equal(t, 1, updates(client))
			require.NoError(t, r.Apply(context.Background(), tt.step))
			require.Equal(t, first, getRoute(t, client))
			require.Equal(t, 1, updates(client), "the second Apply has nothing to write")
		})
	}
}

func TestReset(t *testing.T) {
	tests := []struct {
		name  string
		steps []traffic.Step
		want  []gwv1.HTTPRouteRule
	}{
		{
			name:  "weight and match",
			steps: []traffic.Step{{Weight: 20, Match: &traffic.Match{Strategy: traffic.StrategyHeader, Header: "X-Canary", Value: "yes"}}},
			want:  weighted(100, 0),
		},
		{
			name:  "cookie",
			steps: []traffic.Step{{Match: &traffic.Match{Strategy: traffic.StrategyCookie, Cookie: "canary"}}},
			want:  weighted(100, 0),
		},
		{
			name:  "total of 1000 is kept",
			steps: []traffic.Step{{Weight: 125, Total: 1000}},
			want:  weighted(1000, 0),
		},
		{
			name:  "all on the canary",
			steps: []traffic.Step{{Weight: 100}},
			want:  weighted(100, 0),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, client := setup(t, testConfig, baseRoute())
			for _, step := range tt.steps {
				require.NoError(t, r.Apply(context.Background(), step))
			}
			require.NoError(t, r.Reset(context.Background()))
			route := getRoute(t, client)
			require.Equal(t, tt.want, route.Spec.Rules)
			n := updates(client)
			require.NoError(t, r.Reset(context.Background()))
			require.Equal(t, n, updates(client), "a second Reset has nothing to write")
			st, err := r.State(context.Background())
			require.NoError(t, err)
			require.False(t, st.Enabled)
			require.Nil(t, st.Match)
			require.Zero(t, st.Weight)
		})
	}
}

func TestResetUntouchedRoute(t *testing.T) {
	r, client := setup(t, testConfig, baseRoute())
	require.NoError(t, r.Reset(context.Background()))
	require.Zero(t, updates(client), "nothing to reset, nothing written")
	require.Equal(t, baseRoute().Spec.Rules, getRoute(t, client).Spec.Rules)
}

func TestState(t *testing.T) {
	userID, _, err := traffic.UserIDPattern(traffic.IDHex, 5, 2)
	require.NoError(t, err)
	objects := []string{"httproute shop/web"}
	tests := []struct {
		name  string
		steps []traffic.Step
		want  traffic.State
	}{
		{
			name: "untouched route",
			want: traffic.State{Objects: objects},
		},
		{
			name:  "weight",
			steps: []traffic.Step{{Weight: 20}},
			want:  traffic.State{Step: traffic.Step{Weight: 20, Total: 100}, Enabled: true, Objects: objects},
		},
		{
			name:  "weight of 1000",
			steps: []traffic.Step{{Weight: 125, Total: 1000}},
			want:  traffic.State{Step: traffic.Step{Weight: 125, Total: 1000}, Enabled: true, Objects: objects},
		},
		{
			name:  "weight 0",
			steps: []traffic.Step{{Weight: 0}},
			want:  traffic.State{Step: traffic.Step{Weight: 0, Total: 100}, Enabled: false, Objects: objects},
		},
		{
			name: "header value and weight",
			steps: []traffic.Step{{Weight: 10, Match: &traffic.Match{
				Strategy: traffic.StrategyHeader, Header: "X-Canary", Value: "yes",
			}}},
			want: traffic.State{Step: traffic.Step{Weight: 10, Total: 100, Match: &traffic.Match{
				Strategy: traffic.StrategyHeader, Header: "X-Canary", Value: "yes",
			}}, Enabled: true, Objects: objects},
		},
		{
			name: "user id reads back as a header pattern",
			steps: []traffic.Step{{Match: &traffic.Match{
				Strategy: traffic.StrategyUserID, Header: "X-User-ID", Pattern: userID,
			}}},
			want: traffic.State{Step: traffic.Step{Weight: 0, Total: 100, Match: &traffic.Match{
				Strategy: traffic.StrategyHeader, Header: "X-User-ID", Pattern: userID,
			}}, Enabled: true, Objects: objects},
		},
		{
			name:  "cookie",
			steps: []traffic.Step{{Match: &traffic.Match{Strategy: traffic.StrategyCookie, Cookie: "canary_v2"}}},
			want: traffic.State{Step: traffic.Step{Weight: 0, Total: 100, Match: &traffic.Match{
				Strategy: traffic.StrategyCookie, Cookie: "canary_v2",
			}}, Enabled: true, Objects: objects},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := setup(t, testConfig, baseRoute())
			for _, step := range tt.steps {
				require.NoError(t, r.Apply(context.Background(), step))
			}
			st, err := r.State(context.Background())
			require.NoError(t, err)
			require.Equal(t, tt.want, st)
		})
	}
}

func TestOwnership(t *testing.T) {
	tests := []struct {
		name     string
		meta     metav1.ObjectMeta
		notOwned bool
	}{
		{
			name: "argo rollout owner",
			meta: metav1.ObjectMeta{OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout", Name: "web", UID: "1",
			}}},
			notOwned: true,
		},
		{
			name: "flagger canary owner",
			meta: metav1.ObjectMeta{OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "flagger.app/v1beta1", Kind: "Canary", Name: "web", UID: "1",
			}}},
			notOwned: true,
		},
		{
			name: "another controller owner",
			meta: metav1.ObjectMeta{OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps.example.com/v1", Kind: "WebApp", Name: "web", UID: "1", Controller: new(true),
			}}},
			notOwned: true,
		},
		{
			name:     "argo rollouts gateway plugin label",
			meta:     metav1.ObjectMeta{Labels: map[string]string{"rollouts.argoproj.io/gatewayapi-canary": "in-progress"}},
			notOwned: true,
		},
		{
			name:     "managed-by another controller",
			meta:     metav1.ObjectMeta{Labels: map[string]string{"app.kubernetes.io/managed-by": "web-operator"}},
			notOwned: true,
		},
		{
			name: "managed-by helm",
			meta: metav1.ObjectMeta{Labels: map[string]string{"app.kubernetes.io/managed-by": "Helm"}},
		},
		{
			name: "a plain owner reference",
			meta: metav1.ObjectMeta{OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "ConfigMap", Name: "web", UID: "1",
			}}},
		},
	}
	for _, tt := range tests {
		for _, takeOver := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/take over %v", tt.name, takeOver), func(t *testing.T) {
				route := baseRoute()
				route.Labels, route.OwnerReferences = tt.meta.Labels, tt.meta.OwnerReferences
				cfg := testConfig
				cfg.TakeOver = takeOver
				r, client := setup(t, cfg, route)
				applyErr := r.Apply(context.Background(), traffic.Step{Weight: 20})
				resetErr := r.Reset(context.Background())
				if tt.notOwned && !takeOver {
					require.ErrorIs(t, applyErr, traffic.ErrNotOwned)
					require.ErrorIs(t, resetErr, traffic.ErrNotOwned)
					require.Zero(t, updates(client))
					_, err := r.State(context.Background())
					require.NoError(t, err, "reading is not changing")
					return
				}
				require.NoError(t, applyErr)
				require.NoError(t, resetErr)
				got := getRoute(t, client)
				require.Equal(t, weighted(100, 0), got.Spec.Rules)
				require.Equal(t, tt.meta.Labels, got.Labels, "labels are the owner's")
				require.Equal(t, tt.meta.OwnerReferences, got.OwnerReferences)
			})
		}
	}
}

func TestMissingRoute(t *testing.T) {
	r, _ := setup(t, testConfig, nil)
	tests := []struct {
		name string
		call func() error
	}{
		{name: "apply", call: func() error { return r.Apply(context.Background(), traffic.Step{Weight: 20}) }},
		{name: "reset", call: func() error { return r.Reset(context.Background()) }},
		{name: "state", call: func() error { _, err := r.State(context.Background()); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			require.ErrorIs(t, err, traffic.ErrNotFound)
			require.ErrorContains(t, err, "httproute shop/web")
		})
	}
}

func TestConflictRetry(t *testing.T) {
	tests := []struct {
		name        string
		conflicts   int
		wantUpdates int
		wantErr     bool
	}{
		{name: "one conflict, then through", conflicts: 1, wantUpdates: 2},
		{name: "conflicts until retries run out", conflicts: 100, wantUpdates: conflictBackoff.Steps, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, client := setup(t, testConfig, baseRoute())
			calls := 0
			client.PrependReactor("update", "httproutes", func(k8stesting.Action) (bool, runtime.Object, error) {
				calls++
				if calls <= tt.conflicts {
					// Another writer got in between: the way the API
					// server refuses a stale resourceVersion.
					return true, nil, apierrors.NewConflict(
						schema.GroupResource{Group: gwv1.GroupName, Resource: "httproutes"}, name,
						errors.New("the object has been modified; please apply your changes to the latest version and try again"))
				}
				return false, nil, nil
			})
			err := r.Apply(context.Background(), traffic.Step{Weight: 20})
			require.Equal(t, tt.wantUpdates, calls)
			if tt.wantErr {
				require.True(t, apierrors.IsConflict(err), "got %v", err)
				require.Equal(t, baseRoute().Spec.Rules, getRoute(t, client).Spec.Rules)
				return
			}
			require.NoError(t, err)
			require.Equal(t, weighted(80, 20), getRoute(t, client).Spec.Rules)
		})
	}
}

func TestApplyUnsupported(t *testing.T) {
	userID, _, err := traffic.UserIDPattern(traffic.IDNumeric, 10, 2)
	require.NoError(t, err)
	manyStableRules := func(route *gwv1.HTTPRoute) {
		route.Spec.Rules = nil
		for i := range 9 {
			route.Spec.Rules = append(route.Spec.Rules, gwv1.HTTPRouteRule{
				Matches:     []gwv1.HTTPRouteMatch{prefix(fmt.Sprintf("/p%d", i))},
				BackendRefs: []gwv1.HTTPBackendRef{ref(stable, 8080, nil)},
			})
		}
	}
	header := &traffic.Match{Strategy: traffic.StrategyHeader, Header: "X-Canary", Value: "yes"}
	tests := []struct {
		name  string
		route func(*gwv1.HTTPRoute)
		step  traffic.Step
	}{
		{
			name: "user id with a weight",
			step: traffic.Step{Weight: 10, Match: &traffic.Match{Strategy: traffic.StrategyUserID, Header: "X-User-ID", Pattern: userID}},
		},
		{
			name: "geo with a weight",
			step: traffic.Step{Weight: 10, Match: &traffic.Match{Strategy: traffic.StrategyGeo, Header: "CF-IPCountry", Value: "US"}},
		},
		{
			name: "cookie with a weight",
			step: traffic.Step{Weight: 10, Match: &traffic.Match{Strategy: traffic.StrategyCookie, Cookie: "canary"}},
		},
		{
			name: "total above the largest weight",
			step: traffic.Step{Weight: 10, Total: 2_000_000},
		},
		{
			name: "pattern RE2 does not take",
			step: traffic.Step{Match: &traffic.Match{Strategy: traffic.StrategyHeader, Header: "User-Agent", Pattern: "^(?!bot).*$"}},
		},
		{
			name: "stable rule already matches the header",
			route: func(route *gwv1.HTTPRoute) {
				route.Spec.Rules[0].Matches[0].Headers = []gwv1.HTTPHeaderMatch{exact("x-canary", "no")}
			},
			step: traffic.Step{Match: header},
		},
		{
			name:  "more rules than a route takes",
			route: manyStableRules,
			step:  traffic.Step{Match: header},
		},
		{
			name: "stable rule splits with another backend",
			route: func(route *gwv1.HTTPRoute) {
				route.Spec.Rules[0].BackendRefs = append(route.Spec.Rules[0].BackendRefs, ref("legacy", 80, new(int32(10))))
			},
			step: traffic.Step{Weight: 10},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			route := baseRoute()
			if tt.route != nil {
				tt.route(route)
			}
			r, client := setup(t, testConfig, route)
			require.ErrorIs(t, r.Apply(context.Background(), tt.step), traffic.ErrUnsupported)
			require.Zero(t, updates(client))
		})
	}
}

func TestApplyErrors(t *testing.T) {
	tests := []struct {
		name  string
		route func(*gwv1.HTTPRoute)
		step  traffic.Step
		want  string
	}{
		{
			name: "weight above total",
			step: traffic.Step{Weight: 120},
			want: "weight 120: must be between 0 and 100",
		},
		{
			name: "header name with a space",
			step: traffic.Step{Match: &traffic.Match{Strategy: traffic.StrategyHeader, Header: "X Canary", Value: "yes"}},
			want: `header name "X Canary"`,
		},
		{
			name: "header value with a newline",
			step: traffic.Step{Match: &traffic.Match{Strategy: traffic.StrategyHeader, Header: "X-Canary", Value: "a\nb"}},
			want: "want printable ASCII",
		},
		{
			name: "no stable rule",
			route: func(route *gwv1.HTTPRoute) {
				route.Spec.Rules = []gwv1.HTTPRouteRule{unrelatedRule()}
			},
			step: traffic.Step{Weight: 10},
			want: `no rule has a backendRef to stable service "web-stable"`,
		},
		{
			name: "two stable backendRefs in a rule",
			route: func(route *gwv1.HTTPRoute) {
				route.Spec.Rules[0].BackendRefs = append(route.Spec.Rules[0].BackendRefs, ref(stable, 9090, nil))
			},
			step: traffic.Step{Weight: 10},
			want: `rule "api": more than one backendRef to stable service "web-stable"`,
		},
		{
			name: "generated name taken by a user's rule",
			route: func(route *gwv1.HTTPRoute) {
				route.Spec.Rules[1].Name = new(gwv1.SectionName("canary-match-1"))
			},
			step: traffic.Step{Match: &traffic.Match{Strategy: traffic.StrategyHeader, Header: "X-Canary", Value: "yes"}},
			want: `name "canary-match-1" is taken by another rule`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			route := baseRoute()
			if tt.route != nil {
				tt.route(route)
			}
			r, client := setup(t, testConfig, route)
			err := r.Apply(context.Background(), tt.step)
			require.ErrorContains(t, err, tt.want)
			require.NotErrorIs(t, err, traffic.ErrUnsupported)
			require.Zero(t, updates(client))
		})
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(*Config)
		want string
	}{
		{name: "no route", cfg: func(c *Config) { c.HTTPRoute = "" }, want: "httproute is empty"},
		{name: "bad namespace", cfg: func(c *Config) { c.Namespace = "Shop" }, want: `namespace "Shop"`},
		{name: "bad service", cfg: func(c *Config) { c.CanaryService = "web_canary" }, want: `canary service "web_canary"`},
		{name: "same services", cfg: func(c *Config) { c.CanaryService = stable }, want: `stable and canary service are both "web-stable"`},
		{name: "port out of range", cfg: func(c *Config) { c.Port = 70000 }, want: "port 70000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig
			tt.cfg(&cfg)
			_, err := New(fake.NewClientset().GatewayV1().HTTPRoutes(cfg.Namespace), cfg, nil)
			require.ErrorContains(t, err, tt.want)
		})
	}
	_, err := New(nil, testConfig, nil)
	require.ErrorContains(t, err, "no client")
}
