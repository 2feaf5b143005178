package demo

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aurum/canary/traffic/nginx"
)

var (
	stableBackend = &backend{service: "lmp-ingest-primary", key: "demo-lmp-ingest-primary-80"}
	canaryBackend = &backend{service: "lmp-ingest-canary", key: "demo-lmp-ingest-canary-80"}
)

// ann builds annotations from short names: ann("canary", "true") is
// nginx.ingress.kubernetes.io/canary: "true".
func ann(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[nginx.DefaultAnnotationPrefix+"/"+kv[i]] = kv[i+1]
	}
	return m
}

// TestRoute is the edge's routing table: each annotation combination
// against requests, with the weight roll fixed.
func TestRoute(t *testing.T) {
	const (
		primary = "lmp-ingest-primary"
		canary  = "lmp-ingest-canary"
	)
	cookieStrategy := ann("canary", "true", "canary-weight", "0", "canary-by-cookie", "beta",
		"affinity", "cookie", "session-cookie-name", "beta-affinity", "affinity-canary-behavior", "sticky")
	tests := []struct {
		name      string
		stable    map[string]string // the stable Ingress's annotations
		canary    map[string]string // nil: no canary Ingress
		headers   map[string]string
		cookies   map[string]string
		roll      int // what the weight roll returns; 0: it must not roll
		wantTotal int // the total it must roll with; 0 means 100
		want      string
		reason    string
		setCookie string // name=value of the session cookie set, if any
	}{
		{name: "no canary ingress", want: primary, reason: ReasonStable},
		{name: "canary annotation missing", canary: ann("canary-weight", "100"), want: primary, reason: ReasonStable},
		{name: "canary false", canary: ann("canary", "false", "canary-weight", "100", "canary-by-header", "X-Canary"),
			headers: map[string]string{"X-Canary": "always"}, want: primary, reason: ReasonStable},
		{name: "canary True parses as true", canary: ann("canary", "True", "canary-weight", "100"), roll: 1, want: canary, reason: ReasonWeight},
		{name: "weight hit", canary: ann("canary", "true", "canary-weight", "50"), roll: 50, want: canary, reason: ReasonWeight},
		{name: "weight miss", canary: ann("canary", "true", "canary-weight", "50"), roll: 51, want: primary, reason: ReasonStable},
		{name: "weight 0 never rolls", canary: ann("canary", "true", "canary-weight", "0"), want: primary, reason: ReasonStable},
		{name: "no weight", canary: ann("canary", "true"), want: primary, reason: ReasonStable},
		{name: "unparsable weight is 0", canary: ann("canary", "true", "canary-weight", "half"), want: primary, reason: ReasonStable},
		{name: "weight of a larger total", canary: ann("canary", "true", "canary-weight", "5", "canary-weight-total", "1000"),
			roll: 5, wantTotal: 1000, want: canary, reason: ReasonWeight},
		{name: "weight of a larger total, miss", canary: ann("canary", "true", "canary-weight", "5", "canary-weight-total", "1000"),
			roll: 6, wantTotal: 1000, want: primary, reason: ReasonStable},
		{name: "total below 100 is ignored", canary: ann("canary", "true", "canary-weight", "50", "canary-weight-total", "50"),
			roll: 51, wantTotal: 100, want: primary, reason: ReasonStable},

		// canary-by-header alone: always and never.
		{name: "header always", canary: ann("canary", "true", "canary-by-header", "X-Canary"),
			headers: map[string]string{"X-Canary": "always"}, want: canary, reason: ReasonHeader},
		{name: "header name is case-insensitive", canary: ann("canary", "true", "canary-by-header", "x-canary"),
			headers: map[string]string{"X-CANARY": "always"}, want: canary, reason: ReasonHeader},
		{name: "header never beats the weight", canary: ann("canary", "true", "canary-weight", "100", "canary-by-header", "X-Canary"),
			headers: map[string]string{"X-Canary": "never"}, want: primary, reason: ReasonHeader},
		{name: "header other value falls through to the weight", canary: ann("canary", "true", "canary-weight", "100", "canary-by-header", "X-Canary"),
			headers: map[string]string{"X-Canary": "yes"}, roll: 1, want: canary, reason: ReasonWeight},
		{name: "header absent falls through", canary: ann("canary", "true", "canary-weight", "30", "canary-by-header", "X-Canary"),
			roll: 31, want: primary, reason: ReasonStable},

		// canary-by-header-value.
		{name: "header value match", canary: ann("canary", "true", "canary-by-header", "X-Env", "canary-by-header-value", "beta"),
			headers: map[string]string{"X-Env": "beta"}, want: canary, reason: ReasonHeader},
		{name: "header value is exact", canary: ann("canary", "true", "canary-by-header", "X-Env", "canary-by-header-value", "beta"),
			headers: map[string]string{"X-Env": "beta2"}, want: primary, reason: ReasonStable},
		{name: "with a value, always is not special", canary: ann("canary", "true", "canary-by-header", "X-Env", "canary-by-header-value", "beta"),
			headers: map[string]string{"X-Env": "always"}, want: primary, reason: ReasonStable},
		{name: "with a value, never is not special", canary: ann("canary", "true", "canary-weight", "100", "canary-by-header", "X-Env", "canary-by-header-value", "beta"),
			headers: map[string]string{"X-Env": "never"}, roll: 1, want: canary, reason: ReasonWeight},

		// canary-by-header-pattern.
		{name: "pattern match", canary: ann("canary", "true", "canary-by-header", "X-User-Id", "canary-by-header-pattern", "^[0-9]*[0-4]$"),
			headers: map[string]string{"X-User-Id": "104723"}, want: canary, reason: ReasonHeader},
		{name: "pattern miss falls through", canary: ann("canary", "true", "canary-by-header", "X-User-Id", "canary-by-header-pattern", "^[0-9]*[0-4]$"),
			headers: map[string]string{"X-User-Id": "104729"}, want: primary, reason: ReasonStable},
		{name: "pattern is unanchored", canary: ann("canary", "true", "canary-by-header", "CF-IPCountry", "canary-by-header-pattern", "GB|CA"),
			headers: map[string]string{"CF-IPCountry": "xGBx"}, want: canary, reason: ReasonHeader},
		{name: "pattern ignored when a value is set", canary: ann("canary", "true", "canary-by-header", "X-Env", "canary-by-header-value", "beta", "canary-by-header-pattern", ".*"),
			headers: map[string]string{"X-Env": "gamma"}, want: primary, reason: ReasonStable},
		{name: "invalid pattern keeps requests with the header off the canary", canary: ann("canary", "true", "canary-weight", "100", "canary-by-header", "X-Env", "canary-by-header-pattern", "("),
			headers: map[string]string{"X-Env": "beta"}, want: primary, reason: ReasonHeader},
		{name: "invalid pattern, no header: the weight decides", canary: ann("canary", "true", "canary-weight", "100", "canary-by-header", "X-Env", "canary-by-header-pattern", "("),
			roll: 100, want: canary, reason: ReasonWeight},

		// canary-by-cookie.
		{name: "cookie always", canary: ann("canary", "true", "canary-by-cookie", "beta"),
			cookies: map[string]string{"beta": "always"}, want: canary, reason: ReasonCookie},
		{name: "cookie never beats the weight", canary: ann("canary", "true", "canary-weight", "100", "canary-by-cookie", "beta"),
			cookies: map[string]string{"beta": "never"}, want: primary, reason: ReasonCookie},
		{name: "cookie has no custom value", canary: ann("canary", "true", "canary-weight", "10", "canary-by-cookie", "beta"),
			cookies: map[string]string{"beta": "yes"}, roll: 11, want: primary, reason: ReasonStable},
		{name: "another cookie does not count", canary: ann("canary", "true", "canary-by-cookie", "beta"),
			cookies: map[string]string{"gamma": "always"}, want: primary, reason: ReasonStable},

		// Precedence: header, then cookie, then weight.
		{name: "header before cookie", canary: ann("canary", "true", "canary-by-header", "X-Canary", "canary-by-cookie", "beta"),
			headers: map[string]string{"X-Canary": "never"}, cookies: map[string]string{"beta": "always"}, want: primary, reason: ReasonHeader},
		{name: "header miss, then cookie", canary: ann("canary", "true", "canary-by-header", "X-Env", "canary-by-header-value", "beta", "canary-by-cookie", "beta"),
			headers: map[string]string{"X-Env": "prod"}, cookies: map[string]string{"beta": "always"}, want: canary, reason: ReasonCookie},
		{name: "cookie before weight", canary: ann("canary", "true", "canary-weight", "100", "canary-by-cookie", "beta"),
			cookies: map[string]string{"beta": "never"}, want: primary, reason: ReasonCookie},

		// Sticky session affinity on the canary (the nginx router's
		// cookie strategy).
		{name: "sticky: served by the canary, pinned to it", canary: cookieStrategy,
			cookies: map[string]string{"beta": "always"}, want: canary, reason: ReasonCookie,
			setCookie: "beta-affinity=demo-lmp-ingest-canary-80"},
		{name: "sticky: a pinned user stays without the cookie", canary: cookieStrategy,
			cookies: map[string]string{"beta-affinity": "demo-lmp-ingest-canary-80"}, want: canary, reason: ReasonAffinity},
		{name: "sticky: pinning comes before the rules", canary: cookieStrategy,
			cookies: map[string]string{"beta-affinity": "demo-lmp-ingest-canary-80", "beta": "never"}, want: canary, reason: ReasonAffinity},
		{name: "sticky: a stale pin is ignored", canary: cookieStrategy,
			cookies: map[string]string{"beta-affinity": "demo-other-80"}, want: primary, reason: ReasonStable},
		{name: "sticky: the stable backend sets no cookie without affinity of its own", canary: cookieStrategy,
			cookies: map[string]string{"beta": "never"}, want: primary, reason: ReasonCookie},
		{name: "sticky is the default behaviour, INGRESSCOOKIE the default name",
			canary: ann("canary", "true", "canary-weight", "100", "affinity", "cookie"),
			roll:   7, want: canary, reason: ReasonWeight, setCookie: "INGRESSCOOKIE=demo-lmp-ingest-canary-80"},
		{name: "legacy: no pinning to the canary",
			canary:  ann("canary", "true", "canary-weight", "0", "affinity", "cookie", "affinity-canary-behavior", "legacy"),
			cookies: map[string]string{"INGRESSCOOKIE": "demo-lmp-ingest-canary-80"}, want: primary, reason: ReasonStable},
		{name: "stable affinity: a new user is pinned to stable",
			stable: ann("affinity", "cookie"), canary: ann("canary", "true", "canary-weight", "50"),
			roll: 90, want: primary, reason: ReasonStable, setCookie: "INGRESSCOOKIE=demo-lmp-ingest-primary-80"},
		{name: "stable affinity: a user pinned to stable skips the canary rules",
			stable: ann("affinity", "cookie"), canary: ann("canary", "true", "canary-weight", "100", "canary-by-header", "X-Canary"),
			headers: map[string]string{"X-Canary": "always"}, cookies: map[string]string{"INGRESSCOOKIE": "demo-lmp-ingest-primary-80"},
			want: primary, reason: ReasonAffinity},
		{name: "stable affinity without a canary",
			stable: ann("affinity", "cookie", "session-cookie-name", "route"),
			want:   primary, reason: ReasonStable, setCookie: "route=demo-lmp-ingest-primary-80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cb *backend
			if tt.canary != nil {
				cb = canaryBackend
			}
			rt := newRouting(stableBackend, tt.stable, cb, tt.canary)
			r := httptest.NewRequest(http.MethodGet, "http://lmp.demo/ingest", nil)
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			for k, v := range tt.cookies {
				r.AddCookie(&http.Cookie{Name: k, Value: v})
			}
			rolled := false
			d := route(rt, r, func(total int) int {
				rolled = true
				want := tt.wantTotal
				if want == 0 {
					want = 100
				}
				require.Equal(t, want, total, "weight total")
				return tt.roll
			})
			require.Equal(t, tt.roll != 0, rolled, "rolled")
			require.NotNil(t, d.backend)
			require.Equal(t, tt.want, d.backend.service)
			require.Equal(t, tt.want == canary, d.canary)
			require.Equal(t, tt.reason, d.reason)
			if tt.setCookie == "" {
				require.Nil(t, d.setCookie)
			} else {
				require.NotNil(t, d.setCookie)
				require.Equal(t, tt.setCookie, d.setCookie.Name+"="+d.setCookie.Value)
			}
		})
	}
}

// TestRoutingOf checks which Ingress the edge takes for the canary: only
// one with canary "true", for the stable Ingress's host and path, and the
// first of several by name.
func TestRoutingOf(t *testing.T) {
	ingress := func(name, host, path, service string, annotations map[string]string) networkingv1.Ingress {
		return networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "demo", Annotations: annotations},
			Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
				Host: host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{Path: path, Backend: networkingv1.IngressBackend{
						Service: &networkingv1.IngressServiceBackend{Name: service, Port: networkingv1.ServiceBackendPort{Number: 80}},
					}}},
				}},
			}}},
		}
	}
	stable := ingress("lmp-ingest", "lmp.demo", "/", "lmp-ingest-primary", nil)
	on := ann("canary", "true", "canary-weight", "10")

	tests := []struct {
		name       string
		ings       []networkingv1.Ingress
		wantStable string // "" for no stable backend
		wantCanary string // "" for no canary
		wantWeight int
	}{
		{name: "no ingress at all"},
		{name: "stable only", ings: []networkingv1.Ingress{stable}, wantStable: "lmp-ingest-primary"},
		{name: "canary", ings: []networkingv1.Ingress{stable, ingress("lmp-ingest-canary", "lmp.demo", "/", "lmp-ingest-canary", on)},
			wantStable: "lmp-ingest-primary", wantCanary: "lmp-ingest-canary", wantWeight: 10},
		{name: "canary off", ings: []networkingv1.Ingress{stable, ingress("lmp-ingest-canary", "lmp.demo", "/", "lmp-ingest-canary", ann("canary-weight", "10"))},
			wantStable: "lmp-ingest-primary"},
		{name: "canary of another host", ings: []networkingv1.Ingress{stable, ingress("other-canary", "other.demo", "/", "lmp-ingest-canary", on)},
			wantStable: "lmp-ingest-primary"},
		{name: "canary of another path", ings: []networkingv1.Ingress{stable, ingress("other-canary", "lmp.demo", "/api", "lmp-ingest-canary", on)},
			wantStable: "lmp-ingest-primary"},
		{name: "the first of two canaries", ings: []networkingv1.Ingress{
			stable,
			ingress("z-canary", "lmp.demo", "/", "z-service", ann("canary", "true", "canary-weight", "90")),
			ingress("a-canary", "lmp.demo", "/", "a-service", on),
		}, wantStable: "lmp-ingest-primary", wantCanary: "a-service", wantWeight: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := routingOf(tt.ings, "demo", "lmp-ingest")
			if tt.wantStable == "" {
				require.Nil(t, rt.stable)
				d := route(rt, httptest.NewRequest(http.MethodGet, "/", nil), nil)
				require.Nil(t, d.backend, "no stable ingress is nginx's default backend, a 404")
				return
			}
			require.Equal(t, tt.wantStable, rt.stable.service)
			require.Equal(t, "demo-"+tt.wantStable+"-80", rt.stable.key)
			if tt.wantCanary == "" {
				require.Nil(t, rt.canary)
				return
			}
			require.Equal(t, tt.wantCanary, rt.canary.service)
			require.Equal(t, tt.wantWeight, rt.rules.weight)
		})
	}
}
