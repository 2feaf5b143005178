package notify_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/internal/testam"
	"github.com/aurum/canary/rollout/notify"
	"github.com/aurum/canary/runs/bolt"
)

// receiver is a local HTTP server standing for Slack, Teams or a webhook:
// it answers with the codes it is told, then 200, and keeps every body.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	codes  []int
	bodies [][]byte
	heads  []http.Header
	hits   atomic.Int32
}

func newReceiver(t *testing.T, codes ...int) *receiver {
	r := &receiver{t: t, codes: codes}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.hits.Add(1)
		r.mu.Lock()
		code := 200
		if len(r.codes) > 0 {
			code, r.codes = r.codes[0], r.codes[1:]
		}
		if code < 300 {
			r.bodies = append(r.bodies, body)
			r.heads = append(r.heads, req.Header.Clone())
		}
		r.mu.Unlock()
		w.WriteHeader(code)
		_, _ = w.Write([]byte("answer " + http.StatusText(code)))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) delivered() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.bodies...)
}

func secretFile(t *testing.T, content string) string {
	p := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(p, []byte(content+"\n"), 0o600))
	return p
}

// outboxWorld is an outbox over a real store with the given routes,
// delivering until the test ends.
type outboxWorld struct {
	path   string
	st     *bolt.Bolt
	ob     *notify.Outbox
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan struct{}
}

func startOutbox(t *testing.T, path string, cfg notify.Config) *outboxWorld {
	t.Helper()
	routes, err := notify.Build(cfg, nil)
	require.NoError(t, err)
	st, err := bolt.Open(path, bolt.Options{})
	require.NoError(t, err)
	w := &outboxWorld{path: path, st: st, reg: prometheus.NewRegistry(), done: make(chan struct{})}
	w.ob, err = notify.NewOutbox(context.Background(), notify.OutboxOptions{Store: st, Routes: routes, Registerer: w.reg})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go func() { w.ob.Run(ctx); close(w.done) }()
	t.Cleanup(w.stop)
	return w
}

func (w *outboxWorld) stop() {
	if w.cancel != nil {
		w.cancel()
		<-w.done
		w.cancel = nil
		w.st.Close()
	}
}

func sample(id string) notify.Notification {
	v, th := 0.05, 0.01
	return notify.Notification{ID: id, Kind: notify.KindRollbackLatched, Severity: notify.SeverityCritical,
		Condition: "rollback_latched caiso/lmp@v2", Namespace: "caiso", Name: "lmp", Revision: "v2", Policy: "ingest",
		Summary: "rollback latched on caiso/lmp@v2 by alert", Reason: "alert IngestErrors firing: 5xx above 2%", Source: "alert",
		Rules: []notify.RuleValue{{Name: "error-rate", Verdict: "fail", Value: &v, Threshold: &th, Reason: "0.05 > 0.01"}},
		Link:  "https://canary.example/v1/runs/caiso/lmp?revision=v2", At: time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)}
}

// TestWebhookSignedAndRetried: a receiver answering 500 three times and
// then 200 gets exactly one delivery, signed with HMAC-SHA256 over the
// body; a notification seen twice is sent once.
func TestWebhookSignedAndRetried(t *testing.T) {
	rcv := newReceiver(t, 500, 502, 503)
	key := "hm4c-k3y"
	w := startOutbox(t, filepath.Join(t.TempDir(), "canary.db"), notify.Config{Routes: []notify.RouteConfig{{Name: "hook",
		Webhook: &notify.WebhookConfig{URL: rcv.srv.URL, SecretFile: secretFile(t, key)}}}})
	w.ob.Enqueue(sample("n1"))
	w.ob.Enqueue(sample("n1")) // a redelivered alert, seen again
	require.Eventually(t, func() bool { return len(rcv.delivered()) == 1 }, 30*time.Second, 20*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	require.Len(t, rcv.delivered(), 1, "exactly one delivery")
	require.EqualValues(t, 4, rcv.hits.Load(), "three failures, then the delivery")

	body := rcv.delivered()[0]
	require.Equal(t, notify.Sign([]byte(key), body), rcv.heads[0].Get(notify.SignatureHeader))
	require.NotEqual(t, notify.Sign([]byte("wrong"), body), rcv.heads[0].Get(notify.SignatureHeader))
	var p notify.WebhookPayload
	require.NoError(t, json.Unmarshal(body, &p))
	require.Equal(t, "1", p.Version)
	require.Equal(t, "rollback latched on caiso/lmp@v2 by alert: alert IngestErrors firing: 5xx above 2%", p.Text)
	require.Equal(t, sample("n1"), p.Notification)

	require.NoError(t, testutil.GatherAndCompare(w.reg, strings.NewReader(`
# HELP canary_notifications_total Notification deliveries by route and result: sent, error (an attempt failed; it is retried), dropped (a 4xx, too many attempts or too many waiting).
# TYPE canary_notifications_total counter
canary_notifications_total{result="dropped",route="hook"} 0
canary_notifications_total{result="error",route="hook"} 3
canary_notifications_total{result="sent",route="hook"} 1
`), "canary_notifications_total"))
}

// TestClientErrorsNotRetried: a 4xx means the receiver refuses the
// message: it is dropped at once, and the route's status says why.
func TestClientErrorsNotRetried(t *testing.T) {
	rcv := newReceiver(t, 400, 400)
	w := startOutbox(t, filepath.Join(t.TempDir(), "canary.db"), notify.Config{Routes: []notify.RouteConfig{{Name: "slack",
		Slack: &notify.URLConfig{URLFile: secretFile(t, rcv.srv.URL+"/services/T0/B0/s3cr3t")}}}})
	w.ob.Enqueue(sample("n1"))
	require.Eventually(t, func() bool { return w.ob.Status()[0].Dropped == 1 }, 10*time.Second, 20*time.Millisecond)
	time.Sleep(1500 * time.Millisecond) // a retry would have come by now
	require.EqualValues(t, 1, rcv.hits.Load())
	st := w.ob.Status()[0]
	require.Equal(t, "slack", st.Kind)
	require.Contains(t, st.LastError, "answered 400 Bad Request: answer Bad Request")
	require.NotContains(t, st.LastError, "s3cr3t", "the incoming webhook's URL is a secret")
}

// TestOutboxSurvivesRestart: what is queued when the service stops is
// delivered by the next one, once.
func TestOutboxSurvivesRestart(t *testing.T) {
	rcv := newReceiver(t, 503, 503, 503, 503, 503, 503)
	path := filepath.Join(t.TempDir(), "canary.db")
	cfg := notify.Config{Routes: []notify.RouteConfig{{Name: "hook", Webhook: &notify.WebhookConfig{URL: rcv.srv.URL}}}}
	w := startOutbox(t, path, cfg)
	w.ob.Enqueue(sample("n1"))
	require.Eventually(t, func() bool { return rcv.hits.Load() >= 1 }, 10*time.Second, 20*time.Millisecond)
	w.stop()
	require.Empty(t, rcv.delivered())

	rcv.mu.Lock()
	rcv.codes = nil
	rcv.mu.Unlock()
	w = startOutbox(t, path, cfg)
	require.Eventually(t, func() bool { return len(rcv.delivered()) == 1 }, 30*time.Second, 20*time.Millisecond)
	w.ob.Enqueue(sample("n1")) // and it is not sent again
	time.Sleep(200 * time.Millisecond)
	require.Len(t, rcv.delivered(), 1)
}

// TestChatMessages: Slack gets Block Kit, Teams an Adaptive Card, each with
// what happened, to which canary, why, the rule values and a link.
func TestChatMessages(t *testing.T) {
	slack, teams := newReceiver(t), newReceiver(t)
	w := startOutbox(t, filepath.Join(t.TempDir(), "canary.db"), notify.Config{Routes: []notify.RouteConfig{
		{Name: "slack", Slack: &notify.URLConfig{URLFile: secretFile(t, slack.srv.URL)}},
		{Name: "teams", Teams: &notify.URLConfig{URLFile: secretFile(t, teams.srv.URL)}, Template: `{{ .Kind }} on {{ .Target }}`},
	}})
	w.ob.Enqueue(sample("n1"))
	require.Eventually(t, func() bool { return len(slack.delivered()) == 1 && len(teams.delivered()) == 1 }, 10*time.Second, 20*time.Millisecond)

	var s struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text struct {
				Type, Text string
			} `json:"text"`
			Fields []struct{ Text string } `json:"fields"`
		} `json:"blocks"`
	}
	require.NoError(t, json.Unmarshal(slack.delivered()[0], &s))
	require.Equal(t, "header", s.Blocks[0].Type)
	require.Equal(t, "🔴 Rollback latched: caiso/lmp@v2", s.Blocks[0].Text.Text)
	require.Equal(t, "rollback latched on caiso/lmp@v2 by alert: alert IngestErrors firing: 5xx above 2%", s.Blocks[1].Text.Text)
	require.Equal(t, "*Severity*\ncritical", s.Blocks[1].Fields[0].Text)
	require.Equal(t, "```error-rate fail: 0.05 &gt; 0.01```", s.Blocks[2].Text.Text, "mrkdwn reserves <, > and &")
	require.Contains(t, string(slack.delivered()[0]), "<https://canary.example/v1/runs/caiso/lmp?revision=v2|Open in canary>")

	var m struct {
		Type        string `json:"type"`
		Attachments []struct {
			ContentType string `json:"contentType"`
			Content     struct {
				Type    string           `json:"type"`
				Version string           `json:"version"`
				Body    []map[string]any `json:"body"`
				Actions []map[string]any `json:"actions"`
			} `json:"content"`
		} `json:"attachments"`
	}
	require.NoError(t, json.Unmarshal(teams.delivered()[0], &m))
	require.Equal(t, "message", m.Type)
	card := m.Attachments[0]
	require.Equal(t, "application/vnd.microsoft.card.adaptive", card.ContentType)
	require.Equal(t, "AdaptiveCard", card.Content.Type)
	require.Equal(t, "Attention", card.Content.Body[0]["color"])
	require.Equal(t, "rollback_latched on caiso/lmp@v2", card.Content.Body[1]["text"], "the route's own template")
	require.Equal(t, "https://canary.example/v1/runs/caiso/lmp?revision=v2", card.Content.Actions[0]["url"])
}

// TestRouteFilter: routes take the kinds, severities, policies and
// namespaces they name.
func TestRouteFilter(t *testing.T) {
	no := false
	tests := []struct {
		name   string
		filter notify.Filter
		edit   func(*notify.Notification)
		takes  bool
	}{
		{name: "all", takes: true},
		{name: "kind", filter: notify.Filter{Kinds: []notify.Kind{notify.KindDegraded}}},
		{name: "severity", filter: notify.Filter{Severities: []notify.Severity{notify.SeverityCritical}}, takes: true},
		{name: "policy", filter: notify.Filter{Policies: []string{"other"}}},
		{name: "namespace", filter: notify.Filter{Namespaces: []string{"caiso", "miso"}}, takes: true},
		{name: "resolved off", filter: notify.Filter{SendResolved: &no}, edit: func(n *notify.Notification) { n.Resolved = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := sample("n")
			if tt.edit != nil {
				tt.edit(&n)
			}
			require.Equal(t, tt.takes, tt.filter.Takes(n))
		})
	}
}

// TestBuildErrors: a route that cannot work is refused at start, naming
// the route and never a secret.
func TestBuildErrors(t *testing.T) {
	for _, tt := range []struct {
		name  string
		route notify.RouteConfig
		want  string
	}{
		{name: "no destination", route: notify.RouteConfig{Name: "x"}, want: "give exactly one of alertmanager, slack, teams and webhook, got 0"},
		{name: "two destinations", route: notify.RouteConfig{Name: "x", Webhook: &notify.WebhookConfig{URL: "http://a"}, Slack: &notify.URLConfig{URLFile: secretFile(t, "http://b")}},
			want: "got 2"},
		{name: "unknown kind", route: notify.RouteConfig{Name: "x", Filter: notify.Filter{Kinds: []notify.Kind{"exploded"}}, Webhook: &notify.WebhookConfig{URL: "http://a"}},
			want: `unknown kind "exploded"`},
		{name: "missing secret file", route: notify.RouteConfig{Name: "x", Slack: &notify.URLConfig{URLFile: "/nonexistent/slack"}}, want: "slack.urlFile"},
		{name: "bad template", route: notify.RouteConfig{Name: "x", Template: "{{ .Nope", Webhook: &notify.WebhookConfig{URL: "http://a"}}, want: "template:"},
		{name: "template names no field", route: notify.RouteConfig{Name: "x", Template: "{{ .Nope }}", Webhook: &notify.WebhookConfig{URL: "http://a"}},
			want: "can't evaluate field Nope"},
		{name: "webhook URL not http", route: notify.RouteConfig{Name: "x", Webhook: &notify.WebhookConfig{URLFile: secretFile(t, "ftp://hunter2@host")}},
			want: "not an http or https URL"},
		{name: "alertmanager without resolutions", route: notify.RouteConfig{Name: "x", Filter: notify.Filter{SendResolved: new(false)},
			Alertmanager: &notify.AlertmanagerConfig{URL: "http://am:9093"}}, want: "always sends resolutions"},
		{name: "credentials in the URL", route: notify.RouteConfig{Name: "x", Alertmanager: &notify.AlertmanagerConfig{URL: "http://u:hunter2@am:9093"}},
			want: "without credentials"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := notify.Build(notify.Config{Routes: []notify.RouteConfig{tt.route}}, nil)
			require.ErrorContains(t, err, tt.want)
			require.Contains(t, err.Error(), `routes[0] "x"`)
			require.NotContains(t, err.Error(), "hunter2")
		})
	}
}

// TestRateLimit: a route sends no faster than its rate.
func TestRateLimit(t *testing.T) {
	rcv := newReceiver(t)
	route := notify.RouteConfig{Name: "hook", Webhook: &notify.WebhookConfig{URL: rcv.srv.URL}}
	route.RateLimit.Every, route.RateLimit.Burst = 100_000_000, 1 // 100ms
	w := startOutbox(t, filepath.Join(t.TempDir(), "canary.db"), notify.Config{Routes: []notify.RouteConfig{route}})
	start := time.Now()
	for _, id := range []string{"a", "b", "c", "d"} {
		w.ob.Enqueue(sample(id))
	}
	require.Eventually(t, func() bool { return len(rcv.delivered()) == 4 }, 10*time.Second, 10*time.Millisecond)
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "one burst, then one per 100ms")
}

// TestAlertmanagerRoute: a real Alertmanager receives canary's own alert,
// routes it to a webhook as any alert, and sends its resolution when the
// condition clears.
func TestAlertmanagerRoute(t *testing.T) {
	type amAlert struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
		Ann    map[string]string `json:"annotations"`
	}
	var (
		mu  sync.Mutex
		got []amAlert
	)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct{ Alerts []amAlert }
		_ = json.NewDecoder(r.Body).Decode(&p)
		mu.Lock()
		got = append(got, p.Alerts...)
		mu.Unlock()
	}))
	t.Cleanup(sink.Close)
	am := testam.Start(t, testam.Config{WebhookURL: sink.URL})
	w := startOutbox(t, filepath.Join(t.TempDir(), "canary.db"), notify.Config{Routes: []notify.RouteConfig{{Name: "am",
		Alertmanager: &notify.AlertmanagerConfig{URL: am.URL()}}}})

	fired := sample("n1")
	w.ob.Enqueue(fired)
	status := func(s string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range got {
			if a.Status == s {
				return true
			}
		}
		return false
	}
	require.Eventually(t, func() bool { return status("firing") }, 15*time.Second, 50*time.Millisecond, am.Output())
	mu.Lock()
	a := got[0]
	mu.Unlock()
	require.Equal(t, map[string]string{"alertname": "CanaryRollbackLatched", "severity": "critical", "namespace": "caiso",
		"name": "lmp", "revision": "v2", "policy": "ingest"}, a.Labels)
	require.Equal(t, "rollback latched on caiso/lmp@v2 by alert", a.Ann["summary"])
	require.Equal(t, "alert IngestErrors firing: 5xx above 2%", a.Ann["description"])
	require.Equal(t, "https://canary.example/v1/runs/caiso/lmp?revision=v2", a.Ann["link"])

	resolved := fired
	resolved.ID, resolved.Kind, resolved.Severity, resolved.Resolved = "n2", notify.KindResumed, notify.SeverityInfo, true
	w.ob.Enqueue(resolved)
	require.Eventually(t, func() bool { return status("resolved") }, 15*time.Second, 50*time.Millisecond, am.Output())

	// A pause fires; canary serve stops, and the pause is lifted while no
	// notification of it is written (a crash). At the next start the hub
	// finds the condition no longer holds: the alert is resolved.
	paused := fired
	paused.ID, paused.Kind, paused.Severity, paused.Condition = "n3", notify.KindPaused, notify.SeverityWarning, "paused caiso/lmp@v2"
	w.ob.Enqueue(paused)
	pausedIs := func(s string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range got {
			if a.Labels["alertname"] == "CanaryPaused" && a.Status == s {
				return true
			}
		}
		return false
	}
	require.Eventually(t, func() bool { return pausedIs("firing") }, 15*time.Second, 50*time.Millisecond, am.Output())
	w.stop()
	w = startOutbox(t, w.path, notify.Config{Routes: []notify.RouteConfig{{Name: "am", Alertmanager: &notify.AlertmanagerConfig{URL: am.URL()}}}})
	w.ob.ResolveStale(func(string) bool { return false }, time.Now())
	require.Eventually(t, func() bool { return pausedIs("resolved") }, 15*time.Second, 50*time.Millisecond, am.Output())
}
