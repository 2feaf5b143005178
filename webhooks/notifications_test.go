package webhooks

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/rollout/notify"
	"github.com/aurum/canary/runs/bolt"
)

// withNotifications reports a real outbox at /v1/notifications, with one
// webhook route whose URL (a secret, read from a file) is target, and sets
// *out to it. The outbox delivers until the test ends.
func withNotifications(t *testing.T, target string, out **notify.Outbox) envOption {
	return func(o *Options) {
		dir := t.TempDir()
		st, err := bolt.Open(filepath.Join(dir, "canary.db"), bolt.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		urlFile := filepath.Join(dir, "url")
		require.NoError(t, os.WriteFile(urlFile, []byte(target), 0o600))
		routes, err := notify.Build(notify.Config{Routes: []notify.RouteConfig{
			{Name: "ops", Webhook: &notify.WebhookConfig{URLFile: urlFile}}}}, nil)
		require.NoError(t, err)
		ob, err := notify.NewOutbox(context.Background(), notify.OutboxOptions{Store: st, Routes: routes})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); ob.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		o.Notifications = ob
		*out = ob
	}
}

// TestNotificationsStatus: a route that fails shows its pending
// notification and its last error at /v1/notifications, without the
// route's URL, which is a secret.
func TestNotificationsStatus(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "upstream down", http.StatusBadGateway)
	}))
	t.Cleanup(down.Close)
	var ob *notify.Outbox
	e := newEnv(t, withNotifications(t, down.URL+"/hooks/s3cr3t-path", &ob))
	ob.Enqueue(notify.Notification{ID: "n1", Kind: notify.KindRollbackLatched, Severity: notify.SeverityCritical,
		Namespace: "caiso", Name: "lmp", Summary: "rollback latched on caiso/lmp@v2 by manual"})

	var got notificationsResponse
	require.Eventually(t, func() bool {
		resp, err := http.Get(e.url + "/v1/notifications")
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NotContains(t, string(body), "s3cr3t")
		require.NoError(t, json.Unmarshal(body, &got))
		return len(got.Routes) == 1 && got.Routes[0].LastError != ""
	}, 10*time.Second, 20*time.Millisecond)
	r := got.Routes[0]
	require.Equal(t, "ops", r.Name)
	require.Equal(t, "webhook", r.Kind)
	require.Equal(t, 1, r.Pending, "a 502 is retried")
	require.Zero(t, r.Sent)
	require.Contains(t, r.LastError, "502 Bad Gateway: upstream down")
}
