package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/internal/testprom"
	"github.com/aurum/canary/rollout/notify"
)

// hookReceiver is a signed-webhook receiver that is down (503) until told
// otherwise, and keeps each delivery it takes.
type hookReceiver struct {
	srv      *httptest.Server
	up       atomic.Bool
	attempts atomic.Int32
	mu       sync.Mutex
	got      []notify.WebhookPayload
}

func newHookReceiver(t *testing.T, key string) *hookReceiver {
	h := &hookReceiver{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.attempts.Add(1)
		if !h.up.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		if r.Header.Get(notify.SignatureHeader) != notify.Sign([]byte(key), body) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var p notify.WebhookPayload
		if err := json.Unmarshal(body, &p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.got = append(h.got, p)
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// of returns the deliveries of a kind.
func (h *hookReceiver) of(k notify.Kind) []notify.WebhookPayload {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []notify.WebhookPayload
	for _, p := range h.got {
		if p.Notification.Kind == k {
			out = append(out, p)
		}
	}
	return out
}

// notifyConfig writes a serve config with one signed webhook route to url.
func notifyConfig(t *testing.T, url, key string) string {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hook-url"), []byte(url+"\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "hook-key"), []byte(key+"\n"), 0o600))
	return writeFile(t, dir, "serve.yaml", `
notifications:
  link: https://canary.example
  routes:
    - name: ops
      kinds: [rollback_latched]
      webhook: {urlFile: hook-url, secretFile: hook-key}
`)
}

// TestNotificationSurvivesKill: a manual rollback is answered, canary
// serve is killed at once (before its notification can be written or
// sent), started again while the receiver is down, killed again after a
// failed attempt, and started once more with the receiver up: the
// receiver gets the notification exactly once.
func TestNotificationSurvivesKill(t *testing.T) {
	prom := testprom.Start(t)
	seedLive(t, prom)
	const key = "hmac-key-for-tests"
	hook := newHookReceiver(t, key)
	env := map[string]string{
		"CANARY_DATA_DIR":   t.TempDir(),
		"CANARY_POLICIES":   "testdata/live.yaml",
		"CANARY_PROMETHEUS": prom.URL(),
		"CANARY_CONFIG":     notifyConfig(t, hook.srv.URL+"/hooks/canary", key),
	}
	kill := func(c *child) {
		t.Helper()
		require.NoError(t, c.cmd.Process.Signal(syscall.SIGKILL))
		<-c.done
		c.done <- nil
	}

	srv := startServe(t, env)
	code, out := srv.call(t, "GET", "/v1/analysis/live?namespace=caiso&name=good&revision=rs-1", "")
	require.Equal(t, 200, code, out)
	code, out = srv.call(t, "POST", "/v1/runs/caiso/good/rollback", `{"reason":"PJM prices look wrong"}`)
	require.Equal(t, 200, code, out)
	kill(srv)

	srv = startServe(t, env)
	// The receiver counts the attempt before the outbox has its answer:
	// wait for the failure to be recorded, not for the request.
	require.Eventually(t, func() bool {
		code, out = srv.call(t, "GET", "/v1/notifications", "")
		return code == 200 && strings.Contains(out, "503 Service Unavailable: down for maintenance")
	}, 30*time.Second, 20*time.Millisecond, srv.output())
	require.GreaterOrEqual(t, hook.attempts.Load(), int32(1))
	require.Contains(t, out, `"pending":1`)
	require.NotContains(t, out, "/hooks/canary", "the URL is a secret")
	kill(srv)

	hook.up.Store(true)
	srv = startServe(t, env)
	require.Eventually(t, func() bool { return len(hook.of(notify.KindRollbackLatched)) >= 1 }, 30*time.Second, 20*time.Millisecond, srv.output())
	got := hook.of(notify.KindRollbackLatched)[0].Notification
	require.Equal(t, "caiso/good@rs-1", got.Target())
	require.Equal(t, "manual", got.Source)
	require.Equal(t, "admin/tester", got.By)
	require.Equal(t, "PJM prices look wrong", got.Reason)
	require.Equal(t, "https://canary.example/v1/runs/caiso/good?revision=rs-1", got.Link)

	// Sent once: not again by this process, nor by the next. The outbox
	// records the delivery after the receiver answered, so the count may
	// lag the hook by a moment.
	require.Eventually(t, func() bool {
		code, out = srv.call(t, "GET", "/v1/notifications", "")
		return code == 200 && strings.Contains(out, `"sent":1`)
	}, 10*time.Second, 20*time.Millisecond, out)
	require.NoError(t, srv.cmd.Process.Signal(syscall.SIGTERM))
	<-srv.done
	srv.done <- nil
	srv = startServe(t, env)
	code, out = srv.call(t, "GET", "/v1/notifications", "")
	require.Equal(t, 200, code, out)
	require.Contains(t, out, `"pending":0`)
	require.Len(t, hook.of(notify.KindRollbackLatched), 1, srv.output())
}

// TestNotifyTestCommand: `canary notify test` sends a sample, marked as a
// test, through the named route; a route that is down is an error naming
// the route, never its URL.
func TestNotifyTestCommand(t *testing.T) {
	const key = "k"
	hook := newHookReceiver(t, key)
	config := notifyConfig(t, hook.srv.URL+"/hooks/s3cret", key)

	var stdout, stderr bytes.Buffer
	code := run([]string{"notify", "test", "--config", config, "--route", "ops"}, &stdout, &stderr)
	require.Equal(t, exitError, code)
	require.Contains(t, stderr.String(), "route ops (webhook): answered 503 Service Unavailable: down for maintenance")
	require.NotContains(t, stderr.String(), "s3cret")

	hook.up.Store(true)
	stdout.Reset()
	stderr.Reset()
	code = run([]string{"notify", "test", "--config", config, "--route", "ops", "--severity", "critical"}, &stdout, &stderr)
	require.Equal(t, exitOK, code, stderr.String())
	require.Contains(t, stdout.String(), "sent a test notification through route ops (webhook)")
	got := hook.of(notify.KindRollbackLatched)
	require.Len(t, got, 1)
	require.Equal(t, notify.SeverityCritical, got[0].Notification.Severity)
	require.Equal(t, "canary-test/sample@v0", got[0].Notification.Target())
	require.Contains(t, got[0].Text, "test notification of route ops")

	stderr.Reset()
	code = run([]string{"notify", "test", "--config", config, "--route", "nope"}, &stdout, &stderr)
	require.Equal(t, exitError, code)
	require.Contains(t, stderr.String(), `no route "nope"`)
	require.Contains(t, stderr.String(), "routes: ops")
}

// TestCheckConfigRoutes: `canary check --config` builds the notification
// routes as serve does, so a route that would stop serve is found first,
// named, without its secret.
func TestCheckConfigRoutes(t *testing.T) {
	dir := t.TempDir()
	config := writeFile(t, dir, "serve.yaml", `
notifications:
  routes:
    - name: team-caiso
      slack: {urlFile: missing-slack-url}
    - name: audit
      template: '{{ .Nope }}'
      webhook: {url: "https://audit.example.com/hooks/t0ken"}
`)
	var stdout, stderr bytes.Buffer
	code := run([]string{"check", "--config", config, "../../examples/policies/iso-ingest.yaml"}, &stdout, &stderr)
	require.Equal(t, exitError, code, stdout.String())
	require.Contains(t, stderr.String(), `notifications.routes[0] "team-caiso": slack.urlFile: open `+filepath.Join(dir, "missing-slack-url"))
	require.Contains(t, stderr.String(), `notifications.routes[1] "audit": template:`)
	require.NotContains(t, stderr.String(), "t0ken")
}
