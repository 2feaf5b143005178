package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/aurum/canary/runs"
	"github.com/aurum/canary/webhooks/ui"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/internal/proptest"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/queries/embedded"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs/bolt"
	"github.com/aurum/canary/webhooks/reply"
)

// TestMain runs every property over proptest.Checks random sequences
// unless -rapid.checks says otherwise.
func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	os.Exit(proptest.Main(m))
}

// testEnv is a whole server over a real listener, with a real bbolt store
// and the embedded PromQL engine holding the last 30 minutes of three apps
// in namespace "caiso": good (0.5% errors), bad (5%) and quiet (no traffic).
type testEnv struct {
	t        *testing.T
	url      string
	srv      *Server
	policies string
	reg      *prometheus.Registry
	store    *bolt.Bolt
}

type envOption func(*Options)

func newEnv(t *testing.T, opts ...envOption) *testEnv {
	t.Helper()
	dir := t.TempDir()
	policies := filepath.Join(dir, "policies")
	require.NoError(t, os.MkdirAll(policies, 0o755))
	data, err := os.ReadFile("testdata/policies.yaml")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(policies, "policies.yaml"), data, 0o644))
	loader := rules.NewLoader(policies)
	require.NoError(t, loader.Reload())

	engine, err := embedded.New(embedded.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { engine.Close() })
	start := time.Now().Add(-30 * time.Minute)
	series := func(app, code, values string) embedded.InputSeries {
		return embedded.InputSeries{Series: `requests_total{namespace="caiso",app="` + app + `",track="canary",code="` + code + `"}`, Values: values}
	}
	require.NoError(t, engine.Load(start, time.Minute, []embedded.InputSeries{
		series("good", "200", "0+199x30"), series("good", "500", "0+1x30"),
		series("bad", "200", "0+95x30"), series("bad", "500", "0+5x30"),
	}))

	st, err := bolt.Open(filepath.Join(dir, "canary.db"), bolt.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	reg := prometheus.NewRegistry()
	rs, err := runs.New(context.Background(), runs.Options{Store: st, Metrics: runs.NewMetrics(reg)})
	require.NoError(t, err)
	o := Options{
		Policies:  loader,
		Evaluator: analysis.NewEvaluator(analysis.Options{Sources: queries.Registry{{Kind: "prometheus"}: engine}}),
		Runs:      rs,
		Metrics:   NewMetrics(reg),
		Gatherer:  reg,
		UI:        &UIOptions{Stream: ui.NewStream(ui.StreamOptions{})},
	}
	for _, opt := range opts {
		opt(&o)
	}
	srv, err := New(o)
	require.NoError(t, err)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &testEnv{t: t, url: hs.URL, srv: srv, policies: policies, reg: reg, store: st}
}

// newEnvWithGroupTokens is newEnv with every route group behind a token
// of its own, "<group>-token".
func newEnvWithGroupTokens(t *testing.T) *testEnv {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]string{}
	for _, g := range Groups {
		p := filepath.Join(dir, g)
		require.NoError(t, os.WriteFile(p, []byte(g+"-token\n"), 0o600))
		files[g] = []string{p}
	}
	auth, err := LoadAuth(files)
	require.NoError(t, err)
	return newEnv(t, func(o *Options) { o.Auth = auth })
}

// call sends a request; body is sent as is when it is a string or []byte,
// else as JSON. headers are name, value pairs.
func (e *testEnv) call(method, path string, body any, headers ...string) (int, string) {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		require.NoError(e.t, err)
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.url+path, r)
	require.NoError(e.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp.StatusCode, string(data)
}

func (e *testEnv) result(method, path string, body any) runs.Answer {
	e.t.Helper()
	code, out := e.call(method, path, body)
	require.Equal(e.t, http.StatusOK, code, out)
	var res runs.Answer
	require.NoError(e.t, json.Unmarshal([]byte(out), &res))
	return res
}

// flagger is what Flagger v1.41 posts to every hook.
func flagger(name, checksum string, metadata map[string]string) map[string]any {
	p := map[string]any{"name": name, "namespace": "caiso", "phase": "Progressing", "checksum": checksum}
	if len(metadata) > 0 {
		p["metadata"] = metadata
	}
	return p
}

// TestArgoWebMetric sends requests as Argo Rollouts v1.10's web provider
// does: GET with the args in the URL, or POST with a jsonBody.
func TestArgoWebMetric(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name     string
		method   string
		path     string
		body     any
		code     int
		verdict  analysis.Verdict
		decision analysis.Decision
		errText  string
	}{
		{name: "pass", method: "GET", path: "/v1/analysis/ingest?namespace=caiso&name=good&revision=rs-7d9f",
			code: 200, verdict: analysis.VerdictPass, decision: analysis.DecisionContinue},
		{name: "fail", method: "POST", path: "/v1/analysis/ingest",
			body: map[string]any{"params": map[string]string{"namespace": "caiso", "name": "bad", "revision": "rs-1"}},
			code: 200, verdict: analysis.VerdictFail, decision: analysis.DecisionRollback},
		{name: "no traffic is inconclusive", method: "GET", path: "/v1/analysis/ingest?namespace=caiso&name=quiet",
			code: 200, verdict: analysis.VerdictInconclusive, decision: analysis.DecisionPause},
		{name: "no revision continues the current run", method: "POST", path: "/v1/analysis/ingest",
			body: `{"params":{"namespace":"caiso","name":"good"}}`, code: 200, verdict: analysis.VerdictPass},
		{name: "missing param", method: "GET", path: "/v1/analysis/ingest?namespace=caiso",
			code: 400, errText: `invalid params: param "name": is required`},
		{name: "injection attempt", method: "GET", path: `/v1/analysis/ingest?namespace=caiso&name=x%22%7D%20or%20vector(1)`,
			code: 400, errText: `is not a Kubernetes-style name`},
		{name: "unknown policy", method: "GET", path: "/v1/analysis/nope?namespace=caiso&name=good",
			code: 404, errText: `unknown policy "nope"`},
		{name: "strict body", method: "POST", path: "/v1/analysis/ingest", body: `{"parms":{}}`,
			code: 400, errText: `bad JSON body: json: unknown field "parms"`},
		{name: "malformed body", method: "POST", path: "/v1/analysis/ingest", body: `{"params":`,
			code: 400, errText: `bad JSON body`},
		{name: "wrong method", method: "DELETE", path: "/v1/analysis/ingest", code: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := e.call(tt.method, tt.path, tt.body)
			require.Equal(t, tt.code, code, out)
			if tt.code != 200 {
				eb := errorOf(t, code, out)
				require.Contains(t, eb.Error, tt.errText)
				require.NotContains(t, eb.Error, "\n")
				return
			}
			var res analysis.Result
			require.NoError(t, json.Unmarshal([]byte(out), &res))
			require.Equal(t, tt.verdict, res.Verdict, res.Reason)
			if tt.decision != "" {
				require.Equal(t, tt.decision, res.Decision)
			}
			require.Len(t, res.Rules, 1)
			require.NotNil(t, res.Queries.Get("error_rate"))
		})
	}

	// The run keyed by revision keeps its history.
	res := e.result("GET", "/v1/analysis/ingest?namespace=caiso&name=good&revision=rs-7d9f", nil)
	require.Equal(t, "caiso/good@rs-7d9f", res.Run)
	code, out := e.call("GET", "/v1/runs/caiso/good", nil)
	require.Equal(t, 200, code, out)
	var rr runResponse
	require.NoError(t, json.Unmarshal([]byte(out), &rr))
	require.EqualValues(t, 3, rr.Run.Evaluations)
	require.Len(t, rr.History, 3)
	require.Equal(t, "error-rate", rr.History[2].Rules[0].Name)
	require.NotNil(t, rr.History[2].Rules[0].Value)
}

func TestLatchedRollbackOverridesAnalysis(t *testing.T) {
	e := newEnv(t)
	path := "/v1/analysis/ingest?namespace=caiso&name=good&revision=r1"
	require.Equal(t, analysis.VerdictPass, e.result("GET", path, nil).Verdict)

	code, out := e.call("POST", "/v1/runs/caiso/good/rollback", map[string]string{"reason": "bad data in PJM zone"})
	require.Equal(t, 200, code, out)
	res := e.result("GET", path, nil)
	require.Equal(t, analysis.VerdictFail, res.Verdict)
	require.Equal(t, analysis.DecisionRollback, res.Decision)
	require.Equal(t, "rollback latched by manual: bad data in PJM zone", res.Reason)

	// Flagger's hooks see the same latch.
	code, out = e.call("POST", "/v1/flagger/rollback", flagger("good", "r1", nil))
	require.Equal(t, 200, code, out)
	require.Equal(t, "rollback latched by manual: bad data in PJM zone; to lift: canary runs resume caiso/good --revision r1 --reason \"…\"", flaggerSays(t, code, out))
	code, _ = e.call("POST", "/v1/flagger/ingest/gate", flagger("good", "r1", nil))
	require.Equal(t, 403, code)

	// A new revision starts a new run, with no latches.
	require.Equal(t, analysis.VerdictPass, e.result("GET", "/v1/analysis/ingest?namespace=caiso&name=good&revision=r2", nil).Verdict)
	code, _ = e.call("POST", "/v1/flagger/rollback", flagger("good", "r2", nil))
	require.Equal(t, 403, code)
}

func TestLatchOnFailPolicy(t *testing.T) {
	e := newEnv(t)
	code, _ := e.call("POST", "/v1/flagger/rollback", flagger("bad", "c1", nil))
	require.Equal(t, 403, code)
	res := e.result("POST", "/v1/analysis/ingest-latching", map[string]any{"params": map[string]string{"namespace": "caiso", "name": "bad", "revision": "c1"}})
	require.Equal(t, analysis.VerdictFail, res.Verdict)
	code, out := e.call("POST", "/v1/flagger/rollback", flagger("bad", "c1", nil))
	require.Equal(t, 200, code)
	require.Contains(t, out, "rollback latched by analysis: error-rate: 0.05 > 0.01")
}

// TestFlaggerHooks sends what Flagger v1.41 sends to each hook type and
// checks the status codes it acts on: <= 202 proceeds, anything else halts.
func TestFlaggerHooks(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name    string
		path    string
		body    any
		code    int
		answer  string
		latches func(*testing.T)
	}{
		{name: "rollout check passes", path: "/v1/flagger/ingest/check", body: flagger("good", "85d557f47b", map[string]string{"track": "canary"}),
			code: 200, answer: "pass: 1 rule passed"},
		{name: "rollout check fails with the reason", path: "/v1/flagger/ingest/check", body: flagger("bad", "85d557f47b", nil),
			code: 403, answer: "fail: error-rate: 0.05 > 0.01"},
		{name: "inconclusive check passes by default", path: "/v1/flagger/ingest/check", body: flagger("quiet", "1", nil),
			code: 200, answer: "inconclusive: error-rate: no data for error_rate (noData: inconclusive)"},
		{name: "inconclusive gate does not open", path: "/v1/flagger/ingest/gate", body: flagger("quiet", "1", nil), code: 403},
		{name: "gate opens on pass", path: "/v1/flagger/ingest/gate", body: flagger("good", "85d557f47b", nil), code: 200},
		{name: "metadata feeds params", path: "/v1/flagger/ingest/check", body: flagger("good", "85d557f47b", map[string]string{"track": "primary"}),
			code: 200, answer: "inconclusive: error-rate: no data for error_rate (noData: inconclusive)"},
		{name: "bad metadata value", path: "/v1/flagger/ingest/check", body: flagger("good", "85d557f47b", map[string]string{"track": `a"}`}),
			code: 400},
		{name: "missing namespace", path: "/v1/flagger/ingest/check", body: `{"name":"good"}`, code: 400,
			answer: "bad Flagger payload: missing namespace"},
		{name: "not JSON", path: "/v1/flagger/ingest/check", body: `name=good`, code: 400},
		{name: "unknown policy", path: "/v1/flagger/nope/check", body: flagger("good", "1", nil), code: 404},
		{name: "event accepted", path: "/v1/flagger/events", body: flagger("good", "85d557f47b",
			map[string]string{"eventMessage": "Advance good.caiso canary weight 10", "eventType": "Normal", "timestamp": "1764165600000"}), code: 202},
		{name: "no rollback latched", path: "/v1/flagger/rollback", body: flagger("good", "85d557f47b", nil), code: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := e.call("POST", tt.path, tt.body)
			require.Equal(t, tt.code, code, out)
			said := flaggerSays(t, code, out)
			if tt.answer != "" {
				require.Equal(t, tt.answer, said)
			}
		})
	}

	t.Run("paused run closes the gate; resume opens it", func(t *testing.T) {
		code, out := e.call("POST", "/v1/runs/caiso/good/pause", `{"reason":"market hours"}`)
		require.Equal(t, 200, code, out)
		code, out = e.call("POST", "/v1/flagger/ingest/gate", flagger("good", "85d557f47b", nil))
		require.Equal(t, 403, code)
		require.Equal(t, "inconclusive: pause latched by manual: market hours; to lift: canary runs resume caiso/good --revision 85d557f47b --reason \"…\"", flaggerSays(t, code, out))
		code, _ = e.call("POST", "/v1/runs/caiso/good/resume", `{"reason":"market closed"}`)
		require.Equal(t, 200, code)
		code, _ = e.call("POST", "/v1/flagger/ingest/gate", flagger("good", "85d557f47b", nil))
		require.Equal(t, 200, code)
	})

	t.Run("new checksum event clears latches", func(t *testing.T) {
		code, _ := e.call("POST", "/v1/runs/caiso/good/rollback", `{"reason":"bad data"}`)
		require.Equal(t, 200, code)
		code, _ = e.call("POST", "/v1/flagger/rollback", flagger("good", "85d557f47b", nil))
		require.Equal(t, 200, code)
		code, _ = e.call("POST", "/v1/flagger/events", flagger("good", "9f00aa11", nil))
		require.Equal(t, 202, code)
		code, _ = e.call("POST", "/v1/flagger/rollback", flagger("good", "9f00aa11", nil))
		require.Equal(t, 403, code)
		code, out := e.call("GET", "/v1/runs/caiso/good", nil)
		require.Equal(t, 200, code)
		var rr runResponse
		require.NoError(t, json.Unmarshal([]byte(out), &rr))
		require.Equal(t, "9f00aa11", rr.Run.Revision)
		require.Empty(t, rr.Run.Latches)
		require.Equal(t, "Progressing", rr.Run.Phase)
		// The old revision keeps its latch: a call naming it is still
		// answered with the rollback.
		code, _ = e.call("POST", "/v1/flagger/rollback", flagger("good", "85d557f47b", nil))
		require.Equal(t, 200, code)
		require.Len(t, rr.Revisions, 2)
	})
}

// holdPolicy caps the canary while its traffic runs high, and tries a
// stricter threshold dry.
const holdPolicy = `apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: quota}
spec:
  params: {namespace: {}, name: {}}
  queries:
    rate: {prometheus: 'sum(rate(requests_total{namespace="{{ .namespace }}",app="{{ .name }}"}[5m]))'}
    errors: {prometheus: 'sum(rate(requests_total{namespace="{{ .namespace }}",app="{{ .name }}",code="500"}[5m])) / sum(rate(requests_total{namespace="{{ .namespace }}",app="{{ .name }}"}[5m]))'}
  rules:
    - {name: error-rate, expr: errors <= 0.1}
    - {name: strict-on-trial, expr: errors <= 0.001, dryRun: true}
  decision:
    rules:
      - {name: busy, expr: rate > 1, action: cap, weight: 5}
`

// TestFlaggerHold: a hold or cap keeps a Flagger gate closed (Flagger
// cannot lower a weight; not raising it is the nearest it does) and lets
// a check pass; a failing dry-run rule closes nothing.
func TestFlaggerHold(t *testing.T) {
	e := newEnv(t)
	require.NoError(t, os.WriteFile(filepath.Join(e.policies, "quota.yaml"), []byte(holdPolicy), 0o644))
	require.NoError(t, e.srv.Reload())
	code, out := e.call("POST", "/v1/flagger/quota/gate", flagger("good", "c1", nil))
	require.Equal(t, 403, code, out)
	require.Equal(t, "hold: decision rule busy holds (rate > 1): cap at 5%", flaggerSays(t, code, out))
	code, out = e.call("POST", "/v1/flagger/quota/check", flagger("good", "c1", nil))
	require.Equal(t, 200, code, out)
	res := e.result("GET", "/v1/analysis/quota?namespace=caiso&name=good", nil)
	require.Equal(t, analysis.DecisionHold, res.Decision)
	require.Equal(t, analysis.VerdictPass, res.Verdict, "the dry-run rule fails, and changes nothing")
	require.Equal(t, analysis.VerdictFail, res.DryRun.Verdict)
	require.Equal(t, 5, *res.Hold.Cap)
}

func TestFlaggerInconclusiveFails(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.FlaggerInconclusiveFails = true })
	code, _ := e.call("POST", "/v1/flagger/ingest/check", flagger("quiet", "1", nil))
	require.Equal(t, 403, code)
}

// amPayload4 is a notification as Alertmanager 0.25 to 0.34 sends it; the
// extra fields of newer versions must be ignored.
func amPayload4(status, app, severity, fingerprint string) string {
	return `{"version":"4","groupKey":"{}:{alertname=\"HighErrorRate\"}","truncatedAlerts":0,"status":"` + status + `",
 "receiver":"canary","groupLabels":{"alertname":"HighErrorRate"},"commonLabels":{"alertname":"HighErrorRate"},
 "commonAnnotations":{},"externalURL":"http://alertmanager:9093","notification_reason":"new","routeLabels":{},
 "alerts":[{"status":"` + status + `","labels":{"alertname":"HighErrorRate","namespace":"caiso","app":"` + app + `","severity":"` + severity + `"},
  "annotations":{"summary":"5xx above 2% for 5m"},"startsAt":"2026-11-26T14:00:00Z","endsAt":"0001-01-01T00:00:00Z",
  "generatorURL":"http://prometheus/graph","fingerprint":"` + fingerprint + `"}]}`
}

func TestAlertmanagerReceiver(t *testing.T) {
	e := newEnv(t)
	// A run exists once it has been analysed: alerts match its params.
	require.Equal(t, analysis.VerdictPass, e.result("GET", "/v1/analysis/ingest?namespace=caiso&name=good&revision=r1", nil).Verdict)

	var resp alertmanagerResponse
	code, out := e.call("POST", "/v1/alertmanager", amPayload4("firing", "good", "critical", "a1b2c3d4e5f6a7b8"))
	require.Equal(t, 200, code, out)
	require.NoError(t, json.Unmarshal([]byte(out), &resp))
	require.Equal(t, alertmanagerResponse{Alerts: 1, Matched: 1, Latched: 1}, resp)

	// Redelivery is a no-op.
	code, out = e.call("POST", "/v1/alertmanager", amPayload4("firing", "good", "critical", "a1b2c3d4e5f6a7b8"))
	require.Equal(t, 200, code, out)
	require.NoError(t, json.Unmarshal([]byte(out), &resp))
	require.Equal(t, 0, resp.Latched)

	code, out = e.call("POST", "/v1/flagger/rollback", flagger("good", "r1", nil))
	require.Equal(t, 200, code)
	require.Equal(t, "rollback latched by alert: alert HighErrorRate firing: 5xx above 2% for 5m; to lift: canary runs resume caiso/good --revision r1 --reason \"…\"", flaggerSays(t, code, out))
	res := e.result("GET", "/v1/analysis/ingest?namespace=caiso&name=good&revision=r1", nil)
	require.Equal(t, analysis.VerdictFail, res.Verdict)

	// Resolution does not lift a rollback.
	code, _ = e.call("POST", "/v1/alertmanager", amPayload4("resolved", "good", "critical", "a1b2c3d4e5f6a7b8"))
	require.Equal(t, 200, code)
	code, _ = e.call("POST", "/v1/flagger/rollback", flagger("good", "r1", nil))
	require.Equal(t, 200, code)

	// A warning on the canary deployment's app label pauses (regex
	// matcher), and its resolution lifts the pause.
	require.Equal(t, analysis.VerdictFail, e.result("GET", "/v1/analysis/ingest?namespace=caiso&name=bad&revision=r9", nil).Verdict)
	code, out = e.call("POST", "/v1/runs/caiso/bad/resume", `{"reason":"failure understood"}`)
	require.Equal(t, 200, code, out)
	code, out = e.call("POST", "/v1/alertmanager", amPayload4("firing", "bad-canary", "warning", "0000000000000001"))
	require.Equal(t, 200, code, out)
	res = e.result("GET", "/v1/analysis/ingest?namespace=caiso&name=bad&revision=r9", nil)
	require.Equal(t, analysis.DecisionPause, res.Decision)
	code, _ = e.call("POST", "/v1/alertmanager", amPayload4("resolved", "bad-canary", "warning", "0000000000000001"))
	require.Equal(t, 200, code)
	res = e.result("GET", "/v1/analysis/ingest?namespace=caiso&name=bad&revision=r9", nil)
	require.Equal(t, analysis.DecisionRollback, res.Decision, "back to the analysis itself")

	// An alert for another app matches nothing.
	code, out = e.call("POST", "/v1/alertmanager", amPayload4("firing", "other", "critical", "ff"))
	require.Equal(t, 200, code)
	require.NoError(t, json.Unmarshal([]byte(out), &resp))
	require.Equal(t, 0, resp.Matched)

	for _, bad := range []struct{ name, body, err string }{
		{name: "not JSON", body: `alerts`, err: "bad Alertmanager payload"},
		{name: "wrong version", body: `{"version":"5","alerts":[]}`, err: `unsupported Alertmanager payload version "5"`},
		{name: "bad status", body: `{"version":"4","alerts":[{"status":"pending","labels":{"a":"b"}}]}`, err: `alert 0: status "pending"`},
		{name: "alert without labels", body: `{"version":"4","alerts":[{"status":"firing"}]}`, err: "alert 0: no labels"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			code, out := e.call("POST", "/v1/alertmanager", bad.body)
			require.Equal(t, 400, code, out)
			eb := errorOf(t, code, out)
			require.Contains(t, eb.Error, bad.err)
		})
	}
}

func TestAuth(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	auth, err := LoadAuth(map[string][]string{
		GroupAnalysis:     {write("argo", "argo-token\n")},
		GroupFlagger:      {write("flagger", "old-flagger\nflagger-token\n")},
		GroupAlertmanager: {write("am", "am-token")},
		GroupAdmin:        {write("admin", "admin-token")},
	})
	require.NoError(t, err)
	e := newEnv(t, func(o *Options) { o.Auth = auth })
	tests := []struct {
		name    string
		method  string
		path    string
		body    any
		headers []string
		code    int
	}{
		{name: "analysis without token", method: "GET", path: "/v1/analysis/ingest?namespace=caiso&name=good", code: 401},
		{name: "analysis with wrong token", method: "GET", path: "/v1/analysis/ingest?namespace=caiso&name=good", headers: []string{"Authorization", "Bearer flagger-token"}, code: 401},
		{name: "analysis with token", method: "GET", path: "/v1/analysis/ingest?namespace=caiso&name=good", headers: []string{"Authorization", "Bearer argo-token"}, code: 200},
		{name: "analysis ignores a query token", method: "GET", path: "/v1/analysis/ingest?namespace=caiso&name=good&token=argo-token", code: 401},
		{name: "flagger with query token", method: "POST", path: "/v1/flagger/ingest/check?token=flagger-token", body: flagger("good", "1", nil), code: 200},
		{name: "flagger with rotated-out token still listed", method: "POST", path: "/v1/flagger/events?token=old-flagger", body: flagger("good", "1", nil), code: 202},
		{name: "flagger without token", method: "POST", path: "/v1/flagger/rollback", body: flagger("good", "1", nil), code: 401},
		{name: "alertmanager with token", method: "POST", path: "/v1/alertmanager", body: amPayload4("firing", "x", "critical", "1"), headers: []string{"Authorization", "Bearer am-token"}, code: 200},
		{name: "alertmanager without token", method: "POST", path: "/v1/alertmanager", body: amPayload4("firing", "x", "critical", "1"), code: 401},
		{name: "admin without token", method: "GET", path: "/v1/runs", code: 401},
		{name: "admin with token", method: "GET", path: "/v1/runs", headers: []string{"Authorization", "Bearer admin-token"}, code: 200},
		{name: "reload needs admin", method: "POST", path: "/-/reload", headers: []string{"Authorization", "Bearer argo-token"}, code: 401},
		{name: "health is open", method: "GET", path: "/healthz", code: 200},
		{name: "readiness is open", method: "GET", path: "/readyz", code: 200},
		// The web UI's data takes the admin group's tokens when the ui
		// group has none of its own: closed as soon as admin is.
		{name: "ui data without token", method: "GET", path: "/v1/ui/overview", code: 401},
		{name: "ui data with the admin token", method: "GET", path: "/v1/ui/overview", headers: []string{"Authorization", "Bearer admin-token"}, code: 200},
		{name: "ui data with another group's token", method: "GET", path: "/v1/ui/overview", headers: []string{"Authorization", "Bearer argo-token"}, code: 401},
		{name: "ui pages are open", method: "GET", path: "/ui/", code: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := e.call(tt.method, tt.path, tt.body, tt.headers...)
			require.Equal(t, tt.code, code, out)
			for _, tok := range []string{"argo-token", "flagger-token", "am-token", "admin-token"} {
				require.NotContains(t, out, tok, "no token in answers")
			}
		})
	}
	require.NotContains(t, auth.Open(), GroupUI, "closed with the admin group")
	require.Contains(t, Auth{}.Open(), GroupUI, "open when admin is open too")
	_, err = LoadAuth(map[string][]string{"argo": {write("x", "t")}})
	require.ErrorContains(t, err, `unknown route group "argo"`)
	_, err = LoadAuth(map[string][]string{GroupAdmin: {write("empty", "\n\n")}})
	require.ErrorContains(t, err, "is empty")
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.BodyLimit = 1024 })
	big := `{"params":{"namespace":"caiso","name":"good","pad":"` + strings.Repeat("x", 2000) + `"}}`
	code, out := e.call("POST", "/v1/analysis/ingest", big)
	require.Equal(t, http.StatusRequestEntityTooLarge, code, out)
	require.Contains(t, out, "over the limit of 1024")
}

// TestHotReload: a broken policy change is rejected with its positions,
// visible at /v1/policies and in metrics, and the previous set keeps
// serving; a good change is picked up.
func TestHotReload(t *testing.T) {
	e := newEnv(t)
	file := filepath.Join(e.policies, "policies.yaml")
	good, err := os.ReadFile(file)
	require.NoError(t, err)

	broken := strings.Replace(string(good), "expr: error_rate <= 0.01, critical: true", "expr: error_rat <= 0.01, critical: true", 1)
	require.NoError(t, os.WriteFile(file, []byte(broken), 0o644))
	code, out := e.call("POST", "/-/reload", nil)
	require.Equal(t, 500, code, out)
	var rejected struct{ Errors []string }
	require.NoError(t, json.Unmarshal([]byte(out), &rejected))
	require.Len(t, rejected.Errors, 1)
	require.Contains(t, rejected.Errors[0], `policies.yaml:16:32: policy "ingest", rule "error-rate": bad expr: unknown name error_rat`)

	// Still serving the last good set.
	require.Equal(t, analysis.VerdictFail, e.result("GET", "/v1/analysis/ingest?namespace=caiso&name=bad", nil).Verdict)
	code, out = e.call("GET", "/v1/policies", nil)
	require.Equal(t, 200, code)
	var pr policiesResponse
	require.NoError(t, json.Unmarshal([]byte(out), &pr))
	require.Len(t, pr.Policies, 2)
	require.Len(t, pr.Status.Errors, 1)
	require.Contains(t, pr.Status.Errors[0], "unknown name error_rat")
	// The same rejection again is answered, but counted and logged once.
	code, _ = e.call("POST", "/-/reload", nil)
	require.Equal(t, 500, code)
	metrics := e.metrics()
	require.Contains(t, metrics, "canary_policy_reload_errors_total 1")
	require.Contains(t, metrics, "canary_policies_loaded 2")

	// The file watcher path: a fixed file with a stricter threshold.
	fixed := strings.Replace(string(good), "error_rate <= 0.01, critical", "error_rate <= 0.001, critical", 1)
	require.NoError(t, os.WriteFile(file, []byte(fixed), 0o644))
	tried, err := e.srv.policies.ReloadIfChanged()
	require.True(t, tried)
	require.NoError(t, err)
	e.srv.OnReload(err)
	require.Equal(t, analysis.VerdictFail, e.result("GET", "/v1/analysis/ingest?namespace=caiso&name=good", nil).Verdict)
	tried, _ = e.srv.policies.ReloadIfChanged()
	require.False(t, tried, "unchanged files are not reloaded")
}

func (e *testEnv) metrics() string {
	e.t.Helper()
	code, out := e.call("GET", "/metrics", nil)
	require.Equal(e.t, 200, code)
	return out
}

func TestRunsAPIAndMetrics(t *testing.T) {
	e := newEnv(t)
	e.result("GET", "/v1/analysis/ingest?namespace=caiso&name=good&revision=a", nil)
	e.result("GET", "/v1/analysis/ingest?namespace=caiso&name=bad&revision=b", nil)

	code, out := e.call("GET", "/v1/runs", nil)
	require.Equal(t, 200, code)
	var list runsResponse
	require.NoError(t, json.Unmarshal([]byte(out), &list))
	require.Len(t, list.Runs, 2)
	require.Equal(t, "bad", list.Runs[0].Name)
	require.Equal(t, analysis.VerdictFail, list.Runs[0].LastVerdict)

	for _, tt := range []struct {
		name, method, path string
		body               any
		code               int
	}{
		{name: "unknown run", method: "GET", path: "/v1/runs/caiso/nope", code: 404},
		{name: "unknown action", method: "POST", path: "/v1/runs/caiso/good/explode", code: 404},
		{name: "action on unknown run", method: "POST", path: "/v1/runs/caiso/nope/pause", code: 404},
		{name: "strict action body", method: "POST", path: "/v1/runs/caiso/good/pause", body: `{"why":"x"}`, code: 400},
		{name: "bad limit", method: "GET", path: "/v1/runs/caiso/good?limit=-1", code: 400},
		{name: "promote", method: "POST", path: "/v1/runs/caiso/bad/promote", body: `{"reason":"checked by hand"}`, code: 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out := e.call(tt.method, tt.path, tt.body)
			require.Equal(t, tt.code, code, out)
		})
	}
	res := e.result("GET", "/v1/analysis/ingest?namespace=caiso&name=bad&revision=b", nil)
	require.Equal(t, analysis.DecisionPromote, res.Decision)
	require.Equal(t, "promote latched by manual: checked by hand", res.Reason)

	m := e.metrics()
	for _, want := range []string{
		`canary_analysis_total{policy="ingest",verdict="pass"} 2`,
		`canary_analysis_total{policy="ingest",verdict="fail"} 1`,
		`canary_latches{kind="promote"} 1`,
		`canary_http_requests_total{code="404",handler="/v1/runs/:namespace/:name"} 1`,
		// The promoted analysis was answered by its latch, not evaluated.
		`canary_analysis_duration_seconds_count{policy="ingest"} 2`,
	} {
		require.Contains(t, m, want)
	}
}

func TestReadiness(t *testing.T) {
	e := newEnv(t)
	code, _ := e.call("GET", "/readyz", nil)
	require.Equal(t, 200, code)
	e.srv.Drain()
	code, out := e.call("GET", "/readyz", nil)
	require.Equal(t, 503, code)
	require.Equal(t, "shutting down\n", out, "/readyz answers probes in plain text")
	code, out = e.call("GET", "/nope", nil)
	require.Equal(t, 404, code)
	require.Equal(t, "no such endpoint: /nope", errorOf(t, code, out).Error)
}

// helperT is what the answer helpers need of a test: testing's and
// rapid's alike.
type helperT interface {
	require.TestingT
	Helper()
}

// errorOf decodes an error answer, strictly: the one shape of every 4xx
// and 5xx, one line, with the reason code of its status.
func errorOf(t helperT, code int, out string) reply.Error {
	t.Helper()
	var eb reply.Error
	require.NoError(t, decodeStrict([]byte(out), &eb), out)
	require.NotEmpty(t, eb.Error, out)
	require.NotContains(t, eb.Error, "\n")
	require.Equal(t, reply.ReasonFor(code), eb.Reason, out)
	return eb
}

// flaggerSays is the line a Flagger answer gives: the message of a yes
// (a status of 202 or less), the error of a no, each in its JSON shape.
func flaggerSays(t helperT, code int, out string) string {
	t.Helper()
	if code <= http.StatusAccepted {
		var yes flaggerYes
		require.NoError(t, decodeStrict([]byte(out), &yes), out)
		require.NotContains(t, yes.Message, "\n")
		return yes.Message
	}
	return errorOf(t, code, out).Error
}
