// Package testam runs a real Alertmanager for tests.
//
// Tests that receive Alertmanager webhooks talk to the Debian
// `prometheus-alertmanager` binary (0.25) instead of replaying captured
// payloads, so that what they see (payload fields, grouping, resolved
// notifications, retries, the Authorization header) is what production sends.
// Each server gets its own port and an empty storage directory, gossip is
// off, and the route timers are shortened so that a fired alert reaches the
// webhook in milliseconds and a resolved one within a second.
package testam

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aurum/canary/internal/testproc"
)

const (
	// readyTimeout bounds the wait for /-/ready. An empty server is ready in
	// about 0.25 s; the margin is for a loaded CI machine.
	readyTimeout = 30 * time.Second
	// startAttempts is how many fresh ports Start tries. Picking a free port
	// and handing it to another process is racy; a retry makes a clash
	// harmless.
	startAttempts = 3
	// requestTimeout bounds one call to the Alertmanager API.
	requestTimeout = 10 * time.Second
	// defaultGroupInterval keeps tests fast: a resolve is only sent on the
	// group's next group_interval tick, so within a second. Alertmanager
	// rejects 0s.
	defaultGroupInterval = time.Second
)

// Config says where the Alertmanager sends its notifications and how it
// groups them. The zero value of every field but WebhookURL is a sensible
// default.
type Config struct {
	// WebhookURL receives the notifications, e.g. an httptest server's URL
	// plus a path. Required.
	WebhookURL string
	// BearerToken, when set, is sent as "Authorization: Bearer <token>". It
	// is written to a file and referenced with http_config.authorization
	// .credentials_file, so it never appears in the config text that a
	// failing test prints.
	BearerToken string
	// SendResolved says whether resolved notifications are sent. Nil means
	// true, Alertmanager's own default; set it with new(false).
	SendResolved *bool
	// GroupBy lists the labels that group alerts into one notification.
	// Nil means ["alertname"], the usual production route: alerts that
	// share an alert name arrive together in one payload, and an alert
	// that joins an existing group only goes out on the next group_interval
	// tick. []string{"..."} groups by all labels, so every alert is its own
	// group with its own groupKey and is sent at once; Alertmanager rejects
	// "..." mixed with other labels.
	GroupBy []string
	// GroupInterval is the route's group_interval: how long Alertmanager
	// waits before it sends changes to a group it has already notified
	// (new alerts, resolves) and, because only successful sends are
	// remembered, before it sends a failed notification again. Zero means
	// 1s. Tests that must tell the retry of a failed send apart from the
	// next flush set it to a minute.
	GroupInterval time.Duration
}

// Server is a running Alertmanager. It is stopped when the test that started
// it ends.
type Server struct {
	url    string
	proc   *testproc.Process
	client *http.Client
}

// Start runs an Alertmanager on a free port of 127.0.0.1 with a fresh
// storage directory, gossip turned off and a single route that sends every
// alert to cfg.WebhookURL, and returns once it is ready. The route uses
// group_wait 0s, so a new group is sent at once, cfg.GroupInterval (1s by
// default) and repeat_interval 1h, so an unchanged group is not sent again
// during a test. When amtool is on PATH the config is checked with it first.
// Start fails the test when the binary is missing: a skipped test would look
// like a passing one.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		t.Fatalf("prometheus-alertmanager binary not found: install the Debian package `prometheus-alertmanager` (make test does): %v", err)
	}
	dir := t.TempDir()
	configFile, configText, err := writeConfig(dir, cfg)
	if err != nil {
		t.Fatalf("write alertmanager config: %v", err)
	}
	checkConfig(t, configFile, configText)

	var errs []error
	for attempt := range startAttempts {
		s, err := start(bin, configFile, filepath.Join(dir, "data"+strconv.Itoa(attempt)))
		if err == nil {
			t.Cleanup(func() {
				s.Stop()
				if t.Failed() {
					t.Logf("alertmanager config:\n%s\nalertmanager output:\n%s", configText, s.Output())
				}
			})
			return s
		}
		errs = append(errs, err)
	}
	t.Fatalf("start alertmanager: %v\nconfig:\n%s", errors.Join(errs...), configText)
	return nil
}

// The config types hold only what Start writes. They are marshalled as
// JSON, which YAML parsers accept: encoding/json quotes URLs and label names
// correctly without a YAML dependency.
type (
	amConfig struct {
		Route     amRoute      `json:"route"`
		Receivers []amReceiver `json:"receivers"`
	}
	amRoute struct {
		Receiver       string   `json:"receiver"`
		GroupBy        []string `json:"group_by"`
		GroupWait      string   `json:"group_wait"`
		GroupInterval  string   `json:"group_interval"`
		RepeatInterval string   `json:"repeat_interval"`
	}
	amReceiver struct {
		Name           string            `json:"name"`
		WebhookConfigs []amWebhookConfig `json:"webhook_configs"`
	}
	amWebhookConfig struct {
		URL          string        `json:"url"`
		SendResolved bool          `json:"send_resolved"`
		HTTPConfig   *amHTTPConfig `json:"http_config,omitempty"`
	}
	amHTTPConfig struct {
		Authorization amAuthorization `json:"authorization"`
	}
	amAuthorization struct {
		Type            string `json:"type"`
		CredentialsFile string `json:"credentials_file"`
	}
)

// receiverName is the "receiver" field of every payload.
const receiverName = "canary"

// writeConfig writes the Alertmanager config (and the token file, if any)
// into dir and returns the config's path and text.
func writeConfig(dir string, cfg Config) (path, text string, err error) {
	if cfg.WebhookURL == "" {
		return "", "", errors.New("Config.WebhookURL is empty")
	}
	groupBy := cfg.GroupBy
	if groupBy == nil {
		groupBy = []string{"alertname"}
	}
	groupInterval := cfg.GroupInterval
	if groupInterval == 0 {
		groupInterval = defaultGroupInterval
	}
	webhook := amWebhookConfig{
		URL:          cfg.WebhookURL,
		SendResolved: cfg.SendResolved == nil || *cfg.SendResolved,
	}
	if cfg.BearerToken != "" {
		tokenFile := filepath.Join(dir, "bearer-token")
		if err := os.WriteFile(tokenFile, []byte(cfg.BearerToken), 0o600); err != nil {
			return "", "", err
		}
		// credentials_file rather than credentials: the token stays out of
		// the config text, which is logged when a test fails.
		webhook.HTTPConfig = &amHTTPConfig{Authorization: amAuthorization{
			Type:            "Bearer",
			CredentialsFile: tokenFile,
		}}
	}
	c := amConfig{
		Route: amRoute{
			Receiver:       receiverName,
			GroupBy:        groupBy,
			GroupWait:      "0s",
			GroupInterval:  groupInterval.String(),
			RepeatInterval: "1h",
		},
		Receivers: []amReceiver{{Name: receiverName, WebhookConfigs: []amWebhookConfig{webhook}}},
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return "", "", err
	}
	path = filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return "", "", err
	}
	return path, string(b), nil
}

// checkConfig runs `amtool check-config` when amtool is on PATH. Alertmanager
// itself would also refuse a bad config, but only as a start-up failure
// buried in its log; amtool names the offending field. amtool ships in the
// same Debian package, so it is normally there; without it the start-up is
// the check.
func checkConfig(t testing.TB, configFile, configText string) {
	t.Helper()
	amtool, err := exec.LookPath("amtool")
	if err != nil {
		return
	}
	out, err := exec.Command(amtool, "check-config", configFile).CombinedOutput()
	if err != nil {
		t.Fatalf("amtool check-config rejected the alertmanager config: %v\n%s\nconfig:\n%s", err, out, configText)
	}
}

// start launches one Alertmanager and waits until it is ready. On failure it
// kills the process and puts its output into the error.
func start(bin, configFile, dataDir string) (*Server, error) {
	port, err := testproc.FreePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s := &Server{
		url:    "http://" + addr,
		client: &http.Client{Timeout: requestTimeout},
	}
	s.proc, err = testproc.Start("alertmanager", exec.Command(bin,
		"--config.file="+configFile,
		"--storage.path="+dataDir,
		"--web.listen-address="+addr,
		// Otherwise externalURL in every payload is built from the host
		// name (http://<hostname>:<port>), which differs between machines.
		"--web.external-url="+s.url,
		// Empty turns HA gossip off. Without it Alertmanager binds
		// 0.0.0.0:9094, which clashes between parallel tests.
		"--cluster.listen-address=",
		// Debug logs show each notify attempt; they are only printed when a
		// test fails, and some tests read them.
		"--log.level=debug",
	))
	if err != nil {
		return nil, err
	}
	if err := s.proc.WaitHTTP(context.Background(), s.url+"/-/ready", readyTimeout); err != nil {
		s.Stop()
		return nil, fmt.Errorf("%w\nalertmanager output:\n%s", err, s.Output())
	}
	return s, nil
}

// URL is the base URL of the server, e.g. http://127.0.0.1:41234.
func (s *Server) URL() string { return s.url }

// Stop kills the server and waits for it to exit. Tests may call it to
// simulate an outage; the URL then refuses connections. Calling it again is a
// no-op. Kill, not SIGTERM: the storage directory is thrown away, so a clean
// snapshot of silences and the notification log only costs time.
func (s *Server) Stop() { s.proc.Stop() }

// Output is what the server printed so far (debug level, logfmt). Tests may
// search it for Alertmanager's own account of a send, such as "notify retry
// canceled due to unrecoverable error after 1 attempts".
func (s *Server) Output() string { return s.proc.Output() }

// postableAlert is one element of the POST /api/v2/alerts body.
type postableAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	StartsAt    time.Time         `json:"startsAt,omitzero"`
	EndsAt      time.Time         `json:"endsAt,omitzero"`
}

// Fire posts a firing alert with the given labels and annotations, starting
// now, as Prometheus would. No endsAt is sent, so Alertmanager keeps the alert
// firing for its resolve_timeout (5m) unless Resolve is called. With
// group_wait 0s a new group reaches the webhook in milliseconds; an alert that
// joins a group already notified waits for the next group_interval tick.
func (s *Server) Fire(t testing.TB, labels, annotations map[string]string) {
	t.Helper()
	s.post(t, postableAlert{Labels: labels, Annotations: annotations, StartsAt: time.Now()})
}

// Resolve posts the alert with the given labels again with endsAt now.
// Alertmanager merges it into the firing alert (same labels, same
// fingerprint) and, when send_resolved is on, sends a "resolved"
// notification on the group's next group_interval tick: one group_interval
// after its last notification, so about 1 s after a Fire with the default.
func (s *Server) Resolve(t testing.TB, labels map[string]string) {
	t.Helper()
	// No startsAt: Alertmanager then sets it to endsAt, and the merge keeps
	// the earlier startsAt of the firing alert.
	s.post(t, postableAlert{Labels: labels, EndsAt: time.Now()})
}

// post sends alerts to POST /api/v2/alerts and fails the test unless the
// answer is 2xx.
func (s *Server) post(t testing.TB, alerts ...postableAlert) {
	t.Helper()
	body, err := json.Marshal(alerts)
	if err != nil {
		t.Fatalf("encode alerts: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/api/v2/alerts", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("post alerts: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("post alerts: %v", err)
	}
	defer resp.Body.Close()
	respBody, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("post alerts %s: %s: %s", body, resp.Status, respBody)
	}
}
