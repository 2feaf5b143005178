package webhooks

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/webhooks/ui"
)

// header sends a request and returns one header of the answer.
func (e *testEnv) header(method, path, name string) string {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, nil)
	require.NoError(e.t, err)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Header.Get(name)
}

// TestUIPrefix: behind an Ingress path, the UI and the API answer under
// the prefix (a proxy that keeps it) and without it (one that strips it),
// and the page names its assets and API under the prefix.
func TestUIPrefix(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.UI = &UIOptions{Prefix: "/canary", Stream: ui.NewStream(ui.StreamOptions{})} })
	for _, tt := range []struct {
		name, path string
		code       int
		contains   string
	}{
		{name: "page under the prefix", path: "/canary/ui/", code: 200, contains: `<script src="/canary/ui/static/app.js?v=`},
		{name: "prefix in the page", path: "/canary/ui/runs/caiso/good", code: 200, contains: `<meta name="canary-prefix" content="/canary">`},
		{name: "stripped by the proxy", path: "/ui/policies", code: 200, contains: `href="/canary/ui/static/app.css?v=`},
		{name: "data under the prefix", path: "/canary/v1/ui/overview", code: 200, contains: `"rows":`},
		{name: "API under the prefix", path: "/canary/v1/runs", code: 200, contains: `"runs":`},
		{name: "asset under the prefix", path: "/canary/ui/static/app.js", code: 200, contains: "'use strict'"},
		{name: "not the prefix", path: "/canaryx/ui/", code: 404},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, body := e.call("GET", tt.path, nil)
			require.Equal(t, tt.code, code, body)
			require.Contains(t, body, tt.contains)
		})
	}
	require.Equal(t, "/canary/ui/", e.header("GET", "/canary", "Location"), "the bare prefix leads to the UI")
}

// TestSecurityHeaders: every answer, the API's included, forbids sniffing
// and framing; the page's policy allows no inline code.
func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/ui/", "/ui/static/app.js", "/v1/runs", "/healthz", "/nope"} {
		t.Run(path, func(t *testing.T) {
			require.Equal(t, "nosniff", e.header("GET", path, "X-Content-Type-Options"))
			require.Equal(t, "DENY", e.header("GET", path, "X-Frame-Options"))
			csp := e.header("GET", path, "Content-Security-Policy")
			require.Contains(t, csp, "default-src 'none'")
			require.Contains(t, csp, "script-src 'self'")
			require.NotContains(t, csp, "unsafe")
		})
	}
	// The page carries no inline script or style for the policy to allow.
	_, page := e.call("GET", "/ui/", nil)
	require.NotContains(t, page, "<script>")
	require.NotContains(t, page, "<style")
	require.NotContains(t, page, "style=")
	require.False(t, strings.Contains(page, " on") && strings.Contains(page, "onclick"), "no inline handlers")
}

// BenchmarkUIOverview is what the web UI's overview costs the server with
// 1,000 runs recorded: every run listed, joined and encoded.
func BenchmarkUIOverview(b *testing.B) {
	bs := newBenchServer(b, 0)
	c := benchClient()
	for i := range 1000 {
		get(b, c, bs.url+fmt.Sprintf("/v1/analysis/ingest?namespace=team-%04d&name=lmp&revision=r1", i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		get(b, c, bs.url+"/v1/ui/overview")
	}
}
