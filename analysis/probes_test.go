package analysis

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/queries"
	httpprobe "github.com/aurum/canary/queries/http"
	"github.com/aurum/canary/rules"
)

const allowPolicy = `apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: allow}
spec:
  params:
    target: {pattern: '[a-z0-9.:]+'}
  queries:
    api: {http: {url: "http://{{ .target }}/healthz", headers: {Authorization: "Bearer s3cret"}}}
  rules:
    - {name: api-up, expr: api.up == 1}
  probes:
    allowedHosts: [127.0.0.1]
`

// TestProbeAllowlist: probe targets rendered from caller params could
// reach any host; a policy's probes section now restricts them, and the
// refused probe never connects.
func TestProbeAllowlist(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	pols, err := rules.Parse("allow.yaml", []byte(allowPolicy))
	require.NoError(t, err)
	ev := NewEvaluator(Options{Sources: queries.Registry{{Kind: rules.KindHTTP}: httpprobe.New(httpprobe.Config{})}})

	res, err := ev.Evaluate(context.Background(), pols[0], map[string]string{"target": u.Host}, time.Time{})
	require.NoError(t, err)
	require.Equal(t, VerdictPass, res.Verdict, res.Reason)
	require.EqualValues(t, 1, hits.Load())
	require.Equal(t, "<redacted>", res.Queries.Get("api").Fields["header.Authorization"], "no secret in answers")

	// localhost resolves to the same server, but it is not on the list.
	res, err = ev.Evaluate(context.Background(), pols[0], map[string]string{"target": "localhost:" + u.Port()}, time.Time{})
	require.NoError(t, err)
	require.Equal(t, rules.OutcomeError, res.Rules[0].Verdict)
	require.Contains(t, res.Rules[0].Reason, `host "localhost" is not in the policy's allowlist`)
	require.EqualValues(t, 1, hits.Load(), "the refused probe never connected")
}
