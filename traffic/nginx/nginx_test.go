package nginx

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/aurum/canary/traffic"
)

const (
	ns = "caiso"
	p  = "nginx.ingress.kubernetes.io/"
)

var ingressesGR = schema.GroupResource{Group: "networking.k8s.io", Resource: "ingresses"}

// stableIngress routes two hosts to three Services; only two paths of one
// host lead to the stable Service.
func stableIngress() *networkingv1.Ingress {
	class := "nginx"
	prefix := networkingv1.PathTypePrefix
	path := func(path, svc string, port networkingv1.ServiceBackendPort) networkingv1.HTTPIngressPath {
		return networkingv1.HTTPIngressPath{Path: path, PathType: &prefix, Backend: networkingv1.IngressBackend{
			Service: &networkingv1.IngressServiceBackend{Name: svc, Port: port},
		}}
	}
	rule := func(host string, paths ...networkingv1.HTTPIngressPath) networkingv1.IngressRule {
		return networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{
			HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths},
		}}
	}
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{
			Name: "lmp", Namespace: ns, ResourceVersion: "100",
			Labels: map[string]string{"app": "lmp", "app.kubernetes.io/instance": "lmp"},
			Annotations: map[string]string{
				ingressClassAnnotation: "nginx",
				p + "proxy-body-size":  "8m",
			},
		},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			Rules: []networkingv1.IngressRule{
				rule("lmp.example.com",
					path("/", "lmp-stable", networkingv1.ServiceBackendPort{Number: 8080}),
					path("/admin", "lmp-admin", networkingv1.ServiceBackendPort{Number: 80}),
					path("/api", "lmp-stable", networkingv1.ServiceBackendPort{Name: "http"}),
				),
				rule("docs.example.com", path("/", "docs", networkingv1.ServiceBackendPort{Number: 80})),
			},
			TLS: []networkingv1.IngressTLS{
				{Hosts: []string{"lmp.example.com", "docs.example.com"}, SecretName: "lmp-tls"},
				{Hosts: []string{"docs.example.com"}, SecretName: "docs-tls"},
			},
		},
	}
}

// wantCanarySpec is the spec the router derives from stableIngress.
func wantCanarySpec() networkingv1.IngressSpec {
	class := "nginx"
	prefix := networkingv1.PathTypePrefix
	return networkingv1.IngressSpec{
		IngressClassName: &class,
		Rules: []networkingv1.IngressRule{{
			Host: "lmp.example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{
				{Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
					Name: "lmp-canary", Port: networkingv1.ServiceBackendPort{Number: 8080}}}},
				{Path: "/api", PathType: &prefix, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
					Name: "lmp-canary", Port: networkingv1.ServiceBackendPort{Name: "http"}}}},
			}}},
		}},
		TLS: []networkingv1.IngressTLS{{Hosts: []string{"lmp.example.com"}, SecretName: "lmp-tls"}},
	}
}

// canaryIngress is a canary Ingress as the router makes it, plus two
// annotations somebody else owns; mutate changes it further.
func canaryIngress(mutate func(*networkingv1.Ingress)) *networkingv1.Ingress {
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{
			Name: "lmp-canary", Namespace: ns, ResourceVersion: "41",
			Labels: map[string]string{ManagedByLabel: ManagedByValue},
			Annotations: map[string]string{
				p + "canary":            "true",
				p + "canary-weight":     "0",
				StableIngressAnnotation: "lmp",
				p + "proxy-body-size":   "1m",
				"example.com/team":      "grid",
			},
		},
		Spec: wantCanarySpec(),
	}
	if mutate != nil {
		mutate(ing)
	}
	return ing
}

func newRouter(t *testing.T, cs *fake.Clientset, mutate func(*Config)) *Router {
	t.Helper()
	cfg := Config{Namespace: ns, StableIngress: "lmp", StableService: "lmp-stable", CanaryService: "lmp-canary"}
	if mutate != nil {
		mutate(&cfg)
	}
	r, err := New(cs.NetworkingV1().Ingresses(cfg.Namespace), cfg, nil)
	require.NoError(t, err)
	return r
}

func getCanary(t *testing.T, cs *fake.Clientset) *networkingv1.Ingress {
	t.Helper()
	ing, err := cs.NetworkingV1().Ingresses(ns).Get(context.Background(), "lmp-canary", metav1.GetOptions{})
	require.NoError(t, err)
	return ing
}

// patches returns the merge patches sent, decoded.
func patches(t *testing.T, cs *fake.Clientset) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, a := range cs.Actions() {
		pa, ok := a.(k8stesting.PatchActionImpl)
		if !ok {
			continue
		}
		require.Equal(t, types.MergePatchType, pa.GetPatchType())
		require.Equal(t, "aurum-canary", pa.PatchOptions.FieldManager)
		var body map[string]any
		require.NoError(t, json.Unmarshal(pa.GetPatch(), &body))
		out = append(out, body)
	}
	return out
}

func countActions(cs *fake.Clientset, verb, name string) int {
	n := 0
	for _, a := range cs.Actions() {
		if a.GetVerb() != verb {
			continue
		}
		if g, ok := a.(k8stesting.GetAction); ok && g.GetName() != name {
			continue
		}
		n++
	}
	return n
}

func userIDPattern(t *testing.T) string {
	t.Helper()
	pat, _, err := traffic.UserIDPattern(traffic.IDNumeric, 10, 2)
	require.NoError(t, err)
	return pat
}

func geoPattern(t *testing.T) string {
	t.Helper()
	pat, err := traffic.GeoPattern([]string{"US", "CA"})
	require.NoError(t, err)
	require.Equal(t, "^(CA|US)$", pat)
	return pat
}

func TestApplyStrategies(t *testing.T) {
	base := map[string]string{
		p + "canary":            "true",
		StableIngressAnnotation: "lmp",
		ingressClassAnnotation:  "nginx",
	}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name string
		step traffic.Step
		want map[string]string
	}{
		{
			name: "weight",
			step: traffic.Step{Weight: 20},
			want: with(p+"canary-weight", "20"),
		},
		{
			name: "weight of a total of 1000",
			step: traffic.Step{Weight: 5, Total: 1000},
			want: with(p+"canary-weight", "5", p+"canary-weight-total", "1000"),
		},
		{
			name: "header value",
			step: traffic.Step{Match: &traffic.Match{Strategy: traffic.StrategyHeader, Header: "X-Canary", Value: "beta"}},
			want: with(p+"canary-weight", "0", p+"canary-by-header", "X-Canary", p+"canary-by-header-value", "beta",
				StrategyAnnotation, "header"),
		},
		{
			name: "header pattern",
			step: traffic.Step{Match: &traffic.Match{Strategy: traffic.StrategyHeader, Header: "X-Canary", Pattern: "^(alpha|beta)$"}},
			want: with(p+"canary-weight", "0", p+"canary-by-header", "X-Canary", p+"canary-by-header-pattern", "^(alpha|beta)$",
				StrategyAnnotation, "header"),
		},
		{
			name: "header value with a weight for the rest",
			step: traffic.Step{Weight: 10, Match: &traffic.Match{Strategy: traffic.StrategyHeader, Header: "X-Canary", Value: "beta"}},
			want: with(p+"canary-weight", "10", p+"canary-by-header", "X-Canary", p+"canary-by-header-value", "beta",
				StrategyAnnotation, "header"),
		},
		{
			name: "user id",
			step: traffic.Step{Match: &traffic.Match{Strategy: traffic.StrategyUserID, Header: "X-User-Id", Pattern: userIDPattern(t)}},
			want: with(p+"canary-weight", "0", p+"canary-by-header", "X-User-Id", p+"canary-by-header-pattern", userIDPattern(t),
				StrategyAnnotation, "user-id"),
		},
		{
			name: "cookie",
			step: traffic.Step{Match: &traffic.Match{Strategy: traffic.StrategyCookie, Cookie: "lmp_canary"}},
			want: with(p+"canary-weight", "0", p+"canary-by-cookie", "lmp_canary",
				p+"affinity", "cookie", p+"session-cookie-name", "lmp_canary-affinity", p+"affinity-canary-behavior", "sticky",
				StrategyAnnotation, "cookie"),
		},
		{
			name: "cookie with a weight for the rest",
			step: traffic.Step{Weight: 10, Match: &traffic.Match{Strategy: traffic.StrategyCookie, Cookie: "lmp_canary"}},
			want: with(p+"canary-weight", "10", p+"canary-by-cookie", "lmp_canary",
				p+"affinity", "cookie", p+"session-cookie-name", "lmp_canary-affinity", p+"affinity-canary-behavior", "sticky",
				StrategyAnnotation, "cookie"),
		},
		{
			name: "geo",
			step: traffic.Step{Match: &traffic.Match{Strategy: traffic.StrategyGeo, Header: "CF-IPCountry", Pattern: geoPattern(t)}},
			want: with(p+"canary-weight", "0", p+"canary-by-header", "CF-IPCountry", p+"canary-by-header-pattern", "^(CA|US)$",
				StrategyAnnotation, "geo"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			cs := fake.NewClientset(stableIngress())
			r := newRouter(t, cs, nil)
			require.NoError(t, r.Apply(ctx, tt.step))

			ing := getCanary(t, cs)
			require.Equal(t, tt.want, ing.Annotations)
			require.Equal(t, map[string]string{ManagedByLabel: ManagedByValue}, ing.Labels)
			require.Equal(t, wantCanarySpec(), ing.Spec)
			for _, a := range cs.Actions() {
				if c, ok := a.(k8stesting.CreateActionImpl); ok {
					require.Equal(t, "aurum-canary", c.CreateOptions.FieldManager)
				}
			}

			st, err := r.State(ctx)
			require.NoError(t, err)
			require.Equal(t, traffic.State{Step: tt.step, Enabled: true, Objects: []string{"ingress caiso/lmp-canary"}}, st)

			// Applying the same step again writes nothing.
			before := len(cs.Actions())
			require.NoError(t, r.Apply(ctx, tt.step))
			require.Empty(t, patches(t, cs))
			require.Equal(t, before+2, len(cs.Actions()), "only the two gets")
		})
	}
}

func TestHeaderThenWeightNullsHeaderKeys(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(stableIngress(), canaryIngress(nil))
	r := newRouter(t, cs, nil)

	require.NoError(t, r.Apply(ctx, traffic.Step{Match: &traffic.Match{Strategy: traffic.StrategyHeader, Header: "X-Canary", Value: "beta"}}))
	rv := getCanary(t, cs).ResourceVersion
	require.NotEmpty(t, rv)
	require.NoError(t, r.Apply(ctx, traffic.Step{Weight: 30}))

	ps := patches(t, cs)
	require.Len(t, ps, 2)
	first, err := json.Marshal(ps[0])
	require.NoError(t, err)
	require.JSONEq(t, `{"metadata": {"resourceVersion": "41", "annotations": {
		"nginx.ingress.kubernetes.io/canary-by-header": "X-Canary",
		"nginx.ingress.kubernetes.io/canary-by-header-value": "beta",
		"canary.aurum.dev/strategy": "header"}}}`, string(first))
	second, err := json.Marshal(ps[1])
	require.NoError(t, err)
	require.JSONEq(t, `{"metadata": {"resourceVersion": "`+rv+`", "annotations": {
		"nginx.ingress.kubernetes.io/canary-weight": "30",
		"nginx.ingress.kubernetes.io/canary-by-header": null,
		"nginx.ingress.kubernetes.io/canary-by-header-value": null,
		"canary.aurum.dev/strategy": null}}}`, string(second))

	ing := getCanary(t, cs)
	require.Equal(t, map[string]string{
		p + "canary":            "true",
		p + "canary-weight":     "30",
		StableIngressAnnotation: "lmp",
		p + "proxy-body-size":   "1m",
		"example.com/team":      "grid",
	}, ing.Annotations)
}

func TestForeignAnnotationsSurvive(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(stableIngress(), canaryIngress(nil))
	r := newRouter(t, cs, nil)
	steps := []traffic.Step{
		{Weight: 20},
		{Weight: 5, Total: 1000},
		{Match: &traffic.Match{Strategy: traffic.StrategyHeader, Header: "X-Canary", Value: "beta"}},
		{Weight: 10, Match: &traffic.Match{Strategy: traffic.StrategyHeader, Header: "X-Canary", Pattern: "^b"}},
		{Match: &traffic.Match{Strategy: traffic.StrategyUserID, Header: "X-User-Id", Pattern: userIDPattern(t)}},
		{Match: &traffic.Match{Strategy: traffic.StrategyCookie, Cookie: "lmp_canary"}},
		{Match: &traffic.Match{Strategy: traffic.StrategyGeo, Header: "CF-IPCountry", Pattern: geoPattern(t)}},
		{Weight: 50},
	}
	check := func(what string) {
		ann := getCanary(t, cs).Annotations
		require.Equal(t, "1m", ann[p+"proxy-body-size"], what)
		require.Equal(t, "grid", ann["example.com/team"], what)
	}
	for _, s := range steps {
		require.NoError(t, r.Apply(ctx, s))
		check("after apply")
		require.NoError(t, r.Reset(ctx))
		check("after reset")
	}
	for _, body := range patches(t, cs) {
		meta := body["metadata"].(map[string]any)
		for k := range meta["annotations"].(map[string]any) {
			require.True(t, strings.HasPrefix(k, p+"canary") || strings.HasPrefix(k, "canary.aurum.dev/") ||
				k == p+"affinity" || k == p+"session-cookie-name" || k == p+"affinity-canary-behavior",
				"patch touched %s", k)
		}
	}
}

func TestAffinityOwnership(t *testing.T) {
	ctx := context.Background()
	cookie := traffic.Step{Match: &traffic.Match{Strategy: traffic.StrategyCookie, Cookie: "lmp_canary"}}

	t.Run("the router's affinity goes with the cookie strategy", func(t *testing.T) {
		cs := fake.NewClientset(stableIngress(), canaryIngress(nil))
		r := newRouter(t, cs, nil)
		require.NoError(t, r.Apply(ctx, cookie))
		require.Equal(t, "cookie", getCanary(t, cs).Annotations[p+"affinity"])
		require.NoError(t, r.Apply(ctx, traffic.Step{Weight: 10}))
		ann := getCanary(t, cs).Annotations
		for _, k := range []string{"affinity", "session-cookie-name", "affinity-canary-behavior", "canary-by-cookie"} {
			require.NotContains(t, ann, p+k)
		}
	})

	t.Run("affinity set by hand survives", func(t *testing.T) {
		cs := fake.NewClientset(stableIngress(), canaryIngress(func(ing *networkingv1.Ingress) {
			ing.Annotations[p+"affinity"] = "cookie"
			ing.Annotations[p+"session-cookie-name"] = "route"
		}))
		r := newRouter(t, cs, nil)
		require.NoError(t, r.Apply(ctx, traffic.Step{Weight: 10}))
		require.NoError(t, r.Apply(ctx, traffic.Step{Match: &traffic.Match{Strategy: traffic.StrategyHeader, Header: "X-Canary", Value: "beta"}}))
		require.NoError(t, r.Reset(ctx))
		ann := getCanary(t, cs).Annotations
		require.Equal(t, "cookie", ann[p+"affinity"])
		require.Equal(t, "route", ann[p+"session-cookie-name"])

		// The cookie strategy would have to overwrite it: refused.
		err := r.Apply(ctx, cookie)
		require.ErrorContains(t, err, `session-cookie-name is "route", set by someone else`)
		require.Equal(t, "route", getCanary(t, cs).Annotations[p+"session-cookie-name"])
	})
}

func TestOwnership(t *testing.T) {
	yes := true
	tests := []struct {
		name   string
		mutate func(*networkingv1.Ingress)
		owner  string
	}{
		{
			name: "argo rollout",
			mutate: func(ing *networkingv1.Ingress) {
				ing.OwnerReferences = []metav1.OwnerReference{{APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout", Name: "lmp", UID: "u1", Controller: &yes}}
			},
			owner: "Argo Rollouts (Rollout lmp)",
		},
		{
			name: "flagger canary",
			mutate: func(ing *networkingv1.Ingress) {
				ing.OwnerReferences = []metav1.OwnerReference{{APIVersion: "flagger.app/v1beta1", Kind: "Canary", Name: "lmp", UID: "u2", Controller: &yes}}
			},
			owner: "Flagger (Canary lmp)",
		},
		{
			name:   "another manager label",
			mutate: func(ing *networkingv1.Ingress) { ing.Labels[ManagedByLabel] = "Helm" },
			owner:  `"Helm" (label app.kubernetes.io/managed-by)`,
		},
		{
			name: "no marker",
			mutate: func(ing *networkingv1.Ingress) {
				delete(ing.Labels, ManagedByLabel)
				delete(ing.Annotations, StableIngressAnnotation)
			},
			owner: "someone else",
		},
		{
			name:   "the router for another stable ingress",
			mutate: func(ing *networkingv1.Ingress) { ing.Annotations[StableIngressAnnotation] = "other" },
			owner:  `aurum-canary for stable ingress "other"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			cs := fake.NewClientset(stableIngress(), canaryIngress(tt.mutate))
			r := newRouter(t, cs, nil)

			err := r.Apply(ctx, traffic.Step{Weight: 20})
			require.ErrorIs(t, err, traffic.ErrNotOwned)
			require.ErrorContains(t, err, "ingress caiso/lmp-canary is managed by "+tt.owner)
			require.ErrorIs(t, r.Reset(ctx), traffic.ErrNotOwned)
			require.Empty(t, patches(t, cs))

			r = newRouter(t, cs, func(c *Config) { c.TakeOver = true })
			require.NoError(t, r.Apply(ctx, traffic.Step{Weight: 20}))
			ing := getCanary(t, cs)
			require.Equal(t, "20", ing.Annotations[p+"canary-weight"])
			require.Equal(t, ManagedByValue, ing.Labels[ManagedByLabel])
			require.Equal(t, "lmp", ing.Annotations[StableIngressAnnotation])
			// Garbage collection stays the owner's business.
			require.Equal(t, canaryIngress(tt.mutate).OwnerReferences, ing.OwnerReferences)
			require.NoError(t, r.Reset(ctx))
		})
	}
}

func TestConflictRetry(t *testing.T) {
	ctx := context.Background()
	conflict := apierrors.NewConflict(ingressesGR, "lmp-canary", errors.New("the object has been modified"))

	t.Run("retried after reading again", func(t *testing.T) {
		cs := fake.NewClientset(stableIngress(), canaryIngress(nil))
		calls := 0
		cs.PrependReactor("patch", "ingresses", func(k8stesting.Action) (bool, runtime.Object, error) {
			calls++
			if calls == 1 {
				return true, nil, conflict
			}
			return false, nil, nil
		})
		r := newRouter(t, cs, nil)
		require.NoError(t, r.Apply(ctx, traffic.Step{Weight: 20}))
		require.Equal(t, 2, calls)
		require.Equal(t, 2, countActions(cs, "get", "lmp-canary"))
		require.Equal(t, "20", getCanary(t, cs).Annotations[p+"canary-weight"])
	})

	t.Run("bounded", func(t *testing.T) {
		cs := fake.NewClientset(stableIngress(), canaryIngress(nil))
		calls := 0
		cs.PrependReactor("patch", "ingresses", func(k8stesting.Action) (bool, runtime.Object, error) {
			calls++
			return true, nil, conflict
		})
		r := newRouter(t, cs, nil)
		err := r.Apply(ctx, traffic.Step{Weight: 20})
		require.True(t, apierrors.IsConflict(err), "%v", err)
		require.ErrorContains(t, err, "patch ingress caiso/lmp-canary: ")
		require.Equal(t, conflictBackoff.Steps, calls)
	})

	t.Run("created meanwhile", func(t *testing.T) {
		cs := fake.NewClientset(stableIngress())
		cs.PrependReactor("create", "ingresses", func(k8stesting.Action) (bool, runtime.Object, error) {
			// Another Apply wins the race to create it.
			require.NoError(t, cs.Tracker().Add(canaryIngress(nil)))
			return true, nil, apierrors.NewAlreadyExists(ingressesGR, "lmp-canary")
		})
		r := newRouter(t, cs, nil)
		require.NoError(t, r.Apply(ctx, traffic.Step{Weight: 20}))
		require.Equal(t, "20", getCanary(t, cs).Annotations[p+"canary-weight"])
		require.Len(t, patches(t, cs), 1)
	})
}

func TestReset(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(stableIngress(), canaryIngress(nil))
	r := newRouter(t, cs, nil)
	require.NoError(t, r.Apply(ctx, traffic.Step{Weight: 10, Total: 1000, Match: &traffic.Match{Strategy: traffic.StrategyCookie, Cookie: "lmp_canary"}}))
	require.NoError(t, r.Reset(ctx))

	require.Equal(t, map[string]string{
		p + "canary":            "true",
		p + "canary-weight":     "0",
		StableIngressAnnotation: "lmp",
		p + "proxy-body-size":   "1m",
		"example.com/team":      "grid",
	}, getCanary(t, cs).Annotations)

	st, err := r.State(ctx)
	require.NoError(t, err)
	require.Equal(t, traffic.State{Enabled: true, Objects: []string{"ingress caiso/lmp-canary"}}, st)

	t.Run("no canary ingress", func(t *testing.T) {
		cs := fake.NewClientset(stableIngress())
		r := newRouter(t, cs, nil)
		require.NoError(t, r.Reset(ctx))
		for _, a := range cs.Actions() {
			require.Equal(t, "get", a.GetVerb())
		}
	})
}

func TestState(t *testing.T) {
	tests := []struct {
		name    string
		objects []runtime.Object
		want    traffic.State
	}{
		{
			name: "no canary ingress",
			want: traffic.State{},
		},
		{
			name: "switched off",
			objects: []runtime.Object{canaryIngress(func(ing *networkingv1.Ingress) {
				ing.Annotations[p+"canary"] = "false"
				ing.Annotations[p+"canary-weight"] = "50"
			})},
			want: traffic.State{Objects: []string{"ingress caiso/lmp-canary"}},
		},
		{
			name: "written by someone else, read as nginx reads it",
			objects: []runtime.Object{canaryIngress(func(ing *networkingv1.Ingress) {
				ing.Annotations[p+"canary"] = "True"
				ing.Annotations[p+"canary-weight"] = "x"
				ing.Annotations[p+"canary-weight-total"] = "50"
				ing.Annotations[p+"canary-by-header"] = "X-Canary"
			})},
			want: traffic.State{Enabled: true, Objects: []string{"ingress caiso/lmp-canary"},
				Step: traffic.Step{Match: &traffic.Match{Strategy: traffic.StrategyHeader, Header: "X-Canary", Value: "always"}}},
		},
		{
			name: "value wins over pattern",
			objects: []runtime.Object{canaryIngress(func(ing *networkingv1.Ingress) {
				ing.Annotations[p+"canary-weight"] = "7"
				ing.Annotations[p+"canary-by-header"] = "X-Canary"
				ing.Annotations[p+"canary-by-header-value"] = "beta"
				ing.Annotations[p+"canary-by-header-pattern"] = "^b"
			})},
			want: traffic.State{Enabled: true, Objects: []string{"ingress caiso/lmp-canary"},
				Step: traffic.Step{Weight: 7, Match: &traffic.Match{Strategy: traffic.StrategyHeader, Header: "X-Canary", Value: "beta"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRouter(t, fake.NewClientset(tt.objects...), nil)
			st, err := r.State(context.Background())
			require.NoError(t, err)
			require.Equal(t, tt.want, st)
		})
	}
}

func TestApplyRefused(t *testing.T) {
	header := func(name, value, pattern string) *traffic.Match {
		return &traffic.Match{Strategy: traffic.StrategyHeader, Header: name, Value: value, Pattern: pattern}
	}
	noStable := stableIngress()
	for i := range noStable.Spec.Rules {
		for j := range noStable.Spec.Rules[i].HTTP.Paths {
			noStable.Spec.Rules[i].HTTP.Paths[j].Backend.Service.Name = "elsewhere"
		}
	}
	stableCanary := stableIngress()
	stableCanary.Annotations[p+"canary"] = "true"
	yes := true
	tests := []struct {
		name    string
		objects []runtime.Object
		step    traffic.Step
		is      error
		msg     string
	}{
		{
			name: "no stable ingress",
			step: traffic.Step{Weight: 10},
			is:   traffic.ErrNotFound,
			msg:  "stable ingress caiso/lmp: object not found",
		},
		{
			name:    "user id with a weight",
			objects: []runtime.Object{stableIngress()},
			step:    traffic.Step{Weight: 10, Match: &traffic.Match{Strategy: traffic.StrategyUserID, Header: "X-User-Id", Pattern: "^1$"}},
			is:      traffic.ErrUnsupported,
		},
		{
			name:    "geo with a weight",
			objects: []runtime.Object{stableIngress()},
			step:    traffic.Step{Weight: 10, Match: &traffic.Match{Strategy: traffic.StrategyGeo, Header: "CF-IPCountry", Pattern: "^(US)$"}},
			is:      traffic.ErrUnsupported,
		},
		{
			name:    "header name with a space",
			objects: []runtime.Object{stableIngress()},
			step:    traffic.Step{Match: header("X Canary", "beta", "")},
			is:      traffic.ErrUnsupported,
			msg:     `header "X Canary"`,
		},
		{
			name:    "header name with a colon",
			objects: []runtime.Object{stableIngress()},
			step:    traffic.Step{Match: header("X-Canary:", "beta", "")},
			is:      traffic.ErrUnsupported,
		},
		{
			name:    "empty header name",
			objects: []runtime.Object{stableIngress()},
			step:    traffic.Step{Match: header("", "beta", "")},
			msg:     "header match needs a header",
		},
		{
			name:    "header value ingress-nginx would drop",
			objects: []runtime.Object{stableIngress()},
			step:    traffic.Step{Match: header("X-Canary", "a,b", "")},
			is:      traffic.ErrUnsupported,
			msg:     "canary-by-header-value",
		},
		{
			name:    "header value with surrounding space",
			objects: []runtime.Object{stableIngress()},
			step:    traffic.Step{Match: header("X-Canary", "beta ", "")},
			is:      traffic.ErrUnsupported,
		},
		{
			name:    "header pattern ingress-nginx would drop",
			objects: []runtime.Object{stableIngress()},
			step:    traffic.Step{Match: header("X-Canary", "", "^(a, b)$")},
			is:      traffic.ErrUnsupported,
			msg:     "canary-by-header-pattern",
		},
		{
			name:    "cookie name with a separator",
			objects: []runtime.Object{stableIngress()},
			step:    traffic.Step{Match: &traffic.Match{Strategy: traffic.StrategyCookie, Cookie: "a=b"}},
			is:      traffic.ErrUnsupported,
		},
		{
			name:    "weight over the total",
			objects: []runtime.Object{stableIngress()},
			step:    traffic.Step{Weight: 101},
			msg:     "weight 101: must be between 0 and 100",
		},
		{
			name:    "stable ingress without the stable service",
			objects: []runtime.Object{noStable},
			step:    traffic.Step{Weight: 10},
			msg:     `stable ingress caiso/lmp has no path backed by service "lmp-stable"`,
		},
		{
			name:    "stable ingress that is a canary",
			objects: []runtime.Object{stableCanary},
			step:    traffic.Step{Weight: 10},
			msg:     "is itself a canary ingress",
		},
		{
			name: "canary ingress routing elsewhere",
			objects: []runtime.Object{stableIngress(), canaryIngress(func(ing *networkingv1.Ingress) {
				ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name = "other"
				ing.Spec.Rules[0].HTTP.Paths[1].Backend.Service.Name = "other"
			})},
			step: traffic.Step{Weight: 10},
			msg:  `canary ingress caiso/lmp-canary has no path backed by service "lmp-canary"`,
		},
		{
			name: "another canary of the same path",
			objects: []runtime.Object{stableIngress(), canaryIngress(func(ing *networkingv1.Ingress) {
				ing.Name = "lmp-lmp-canary"
				ing.Labels = nil
				delete(ing.Annotations, StableIngressAnnotation)
				ing.OwnerReferences = []metav1.OwnerReference{{APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout", Name: "lmp", UID: "u1", Controller: &yes}}
			})},
			step: traffic.Step{Weight: 10},
			is:   traffic.ErrNotOwned,
			msg:  `ingress caiso/lmp-lmp-canary, managed by Argo Rollouts (Rollout lmp), is already the canary of host "lmp.example.com" path "/"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := fake.NewClientset(tt.objects...)
			r := newRouter(t, cs, nil)
			err := r.Apply(context.Background(), tt.step)
			require.Error(t, err)
			if tt.is != nil {
				require.ErrorIs(t, err, tt.is)
			}
			if tt.msg != "" {
				require.ErrorContains(t, err, tt.msg)
			}
			for _, a := range cs.Actions() {
				require.Contains(t, []string{"get", "list"}, a.GetVerb(), "a refused step writes nothing")
			}
		})
	}
}

func TestAnnotationPrefix(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(stableIngress())
	r := newRouter(t, cs, func(c *Config) { c.AnnotationPrefix = "internal.example.com"; c.CanaryIngress = "lmp-next" })
	require.NoError(t, r.Apply(ctx, traffic.Step{Weight: 3}))
	ing, err := cs.NetworkingV1().Ingresses(ns).Get(ctx, "lmp-next", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "true", ing.Annotations["internal.example.com/canary"])
	require.Equal(t, "3", ing.Annotations["internal.example.com/canary-weight"])
	require.NotContains(t, ing.Annotations, p+"canary")

	st, err := r.State(ctx)
	require.NoError(t, err)
	require.Equal(t, traffic.State{Step: traffic.Step{Weight: 3}, Enabled: true, Objects: []string{"ingress caiso/lmp-next"}}, st)
}

func TestNew(t *testing.T) {
	valid := Config{Namespace: ns, StableIngress: "lmp", StableService: "lmp-stable", CanaryService: "lmp-canary"}
	tests := []struct {
		name   string
		mutate func(*Config)
		errs   []string
	}{
		{
			name:   "defaults",
			mutate: func(*Config) {},
		},
		{
			name:   "nothing set",
			mutate: func(c *Config) { *c = Config{} },
			errs: []string{"namespace is required", "stable ingress is required", "canary ingress is required",
				"stable service is required", "canary service is required"},
		},
		{
			name: "bad names",
			mutate: func(c *Config) {
				c.Namespace = "Caiso"
				c.StableIngress = "lmp_web"
				c.CanaryService = "9lmp"
				c.AnnotationPrefix = "-nginx"
			},
			errs: []string{`namespace "Caiso"`, `stable ingress "lmp_web"`, `canary service "9lmp"`, `annotation prefix "-nginx"`},
		},
		{
			name:   "same service twice",
			mutate: func(c *Config) { c.CanaryService = c.StableService },
			errs:   []string{`canary service "lmp-stable": must differ from the stable service`},
		},
		{
			name:   "same ingress twice",
			mutate: func(c *Config) { c.CanaryIngress = c.StableIngress },
			errs:   []string{`canary ingress "lmp": must differ from the stable ingress`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.mutate(&cfg)
			r, err := New(fake.NewClientset().NetworkingV1().Ingresses(cfg.Namespace), cfg, nil)
			if len(tt.errs) == 0 {
				require.NoError(t, err)
				require.Equal(t, "lmp-canary", r.cfg.CanaryIngress)
				require.Equal(t, DefaultAnnotationPrefix, r.cfg.AnnotationPrefix)
				require.Equal(t, DefaultFieldManager, r.cfg.FieldManager)
				return
			}
			require.Error(t, err)
			for _, msg := range tt.errs {
				require.ErrorContains(t, err, msg)
			}
		})
	}

	_, err := New(nil, valid, nil)
	require.ErrorContains(t, err, "no Kubernetes client")
}
