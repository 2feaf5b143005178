package testam_test

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/internal/testam"
)

// waitTimeout bounds every wait for a notification. Deliveries take
// milliseconds and resolves up to one group_interval; the margin is for a
// loaded CI machine.
const waitTimeout = 10 * time.Second

// message is the webhook payload (version 4) with the fields these tests
// read. It is declared here rather than imported so that the harness is
// checked against the wire format, not against our own parser.
type message struct {
	Version         string            `json:"version"`
	GroupKey        string            `json:"groupKey"`
	TruncatedAlerts int               `json:"truncatedAlerts"`
	Status          string            `json:"status"`
	Receiver        string            `json:"receiver"`
	GroupLabels     map[string]string `json:"groupLabels"`
	CommonLabels    map[string]string `json:"commonLabels"`
	ExternalURL     string            `json:"externalURL"`
	Alerts          []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		StartsAt    time.Time         `json:"startsAt"`
		EndsAt      time.Time         `json:"endsAt"`
		Fingerprint string            `json:"fingerprint"`
	} `json:"alerts"`
}

// delivery is one request the receiver got.
type delivery struct {
	at     time.Time
	auth   string
	status int // what the receiver answered
	body   []byte
	msg    message
}

// receiver is an httptest webhook endpoint that records every request and
// answers with the status that statusFor gives for the n-th request
// (counting from 1).
type receiver struct {
	srv       *httptest.Server
	statusFor func(n int) int

	mu         sync.Mutex
	deliveries []delivery
}

func newReceiver(t *testing.T, statusFor func(n int) int) *receiver {
	t.Helper()
	r := &receiver{statusFor: statusFor}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		d := delivery{at: time.Now(), auth: req.Header.Get("Authorization"), body: body}
		if err == nil {
			err = json.Unmarshal(body, &d.msg)
		}
		r.mu.Lock()
		d.status = r.statusFor(len(r.deliveries) + 1)
		if err != nil {
			// Not a payload: refuse it, as the engine would. The recorded
			// body shows what came instead.
			d.status = http.StatusBadRequest
		}
		r.deliveries = append(r.deliveries, d)
		r.mu.Unlock()
		w.WriteHeader(d.status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// toLabelSet converts labels for model.LabelSet.Fingerprint.
func toLabelSet(labels map[string]string) model.LabelSet {
	ls := make(model.LabelSet, len(labels))
	for k, v := range labels {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls
}

// always answers every request with code.
func always(code int) func(int) int { return func(int) int { return code } }

// url is where Alertmanager should send notifications. The path checks that
// Alertmanager keeps it.
func (r *receiver) url() string { return r.srv.URL + "/alertmanager" }

func (r *receiver) all() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.deliveries...)
}

// waitFor polls until a delivery matches, and returns the first one that
// does.
func (r *receiver) waitFor(t *testing.T, what string, match func(delivery) bool) delivery {
	t.Helper()
	return r.wait(t, what, func(ds []delivery) (delivery, bool) {
		for _, d := range ds {
			if match(d) {
				return d, true
			}
		}
		return delivery{}, false
	})
}

// waitN polls until n requests have arrived and returns all of them.
func (r *receiver) waitN(t *testing.T, n int) []delivery {
	t.Helper()
	r.wait(t, fmt.Sprintf("%d deliveries", n), func(ds []delivery) (delivery, bool) {
		return delivery{}, len(ds) >= n
	})
	return r.all()
}

// wait polls the deliveries until done says so. It fails the test after
// waitTimeout, listing what did arrive.
func (r *receiver) wait(t *testing.T, what string, done func([]delivery) (delivery, bool)) delivery {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		if d, ok := done(r.all()); ok {
			return d
		}
		if time.Now().After(deadline) {
			var got []string
			for _, d := range r.all() {
				got = append(got, string(d.body))
			}
			t.Fatalf("no %s after %s; got %d deliveries:\n%s", what, waitTimeout, len(got), strings.Join(got, "\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitOutput polls the Alertmanager log until it contains substr n times.
func waitOutput(t *testing.T, am *testam.Server, substr string, n int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for strings.Count(am.Output(), substr) < n {
		if time.Now().After(deadline) {
			t.Fatalf("alertmanager did not log %q %d times within %s", substr, n, waitTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFireAndResolve(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, always(http.StatusOK))
	const token = "s3cret-token"
	am := testam.Start(t, testam.Config{WebhookURL: rcv.url(), BearerToken: token})

	labels := map[string]string{"alertname": "HighErrorRate", "canary": "checkout", "severity": "page"}
	annotations := map[string]string{"summary": "error rate above 5%"}
	fired := time.Now()
	am.Fire(t, labels, annotations)

	firing := rcv.waitFor(t, "firing notification", func(d delivery) bool { return d.msg.Status == "firing" })
	t.Logf("firing notification after %s: %s", firing.at.Sub(fired), firing.body)
	require.Equal(t, "Bearer "+token, firing.auth)
	require.Equal(t, "4", firing.msg.Version)
	require.Equal(t, "canary", firing.msg.Receiver)
	require.Equal(t, am.URL(), firing.msg.ExternalURL)
	// Alertmanager 0.25 sends these top-level fields and no others;
	// notification_reason (0.32) and routeLabels (0.34) come later, so a
	// receiver must not require them.
	var fields map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(firing.body, &fields))
	require.ElementsMatch(t, []string{
		"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
		"commonLabels", "commonAnnotations", "externalURL", "alerts",
	}, slices.Collect(maps.Keys(fields)))
	require.NotEmpty(t, firing.msg.GroupKey)
	require.Equal(t, map[string]string{"alertname": "HighErrorRate"}, firing.msg.GroupLabels)
	require.Equal(t, labels, firing.msg.CommonLabels)
	require.Len(t, firing.msg.Alerts, 1)
	alert := firing.msg.Alerts[0]
	require.Equal(t, "firing", alert.Status)
	require.Equal(t, labels, alert.Labels)
	require.Equal(t, annotations, alert.Annotations)
	// The fingerprint is Prometheus's label-set hash, so a receiver can
	// compute it from the labels.
	require.Equal(t, toLabelSet(labels).Fingerprint().String(), alert.Fingerprint)
	require.WithinDuration(t, fired, alert.StartsAt, time.Second)
	// Fire sends no endsAt. Alertmanager then expires the alert after
	// resolve_timeout, but sends a zero endsAt, as for Prometheus's alerts.
	require.True(t, alert.EndsAt.IsZero(), "endsAt of a firing alert: %s", alert.EndsAt)

	// The token reaches Alertmanager through a file and is never logged.
	require.NotContains(t, am.Output(), token)

	resolvedAt := time.Now()
	am.Resolve(t, labels)
	resolved := rcv.waitFor(t, "resolved notification", func(d delivery) bool {
		return d.msg.Status == "resolved" && len(d.msg.Alerts) == 1 && d.msg.Alerts[0].Fingerprint == alert.Fingerprint
	})
	t.Logf("resolved notification after %s", resolved.at.Sub(resolvedAt))
	require.Equal(t, "Bearer "+token, resolved.auth)
	require.Equal(t, firing.msg.GroupKey, resolved.msg.GroupKey)
	require.Equal(t, "resolved", resolved.msg.Alerts[0].Status)
	require.Equal(t, labels, resolved.msg.Alerts[0].Labels)
	// The merge keeps the firing alert's start.
	require.True(t, alert.StartsAt.Equal(resolved.msg.Alerts[0].StartsAt),
		"startsAt firing %s, resolved %s", alert.StartsAt, resolved.msg.Alerts[0].StartsAt)
	require.False(t, resolved.msg.Alerts[0].EndsAt.IsZero())
	require.Len(t, rcv.all(), 2, "one firing and one resolved notification")
}

func TestGroupByAllLabels(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, always(http.StatusOK))
	am := testam.Start(t, testam.Config{WebhookURL: rcv.url(), GroupBy: []string{"..."}, SendResolved: new(false)})

	// Same alert name, different canaries: with group_by "..." each is its
	// own group and is sent at once, not on the next group_interval tick.
	a := map[string]string{"alertname": "HighLatency", "canary": "a"}
	b := map[string]string{"alertname": "HighLatency", "canary": "b"}
	am.Fire(t, a, nil)
	am.Fire(t, b, nil)
	forCanary := func(name string) func(delivery) bool {
		return func(d delivery) bool { return d.msg.CommonLabels["canary"] == name }
	}
	da := rcv.waitFor(t, "notification for canary a", forCanary("a"))
	db := rcv.waitFor(t, "notification for canary b", forCanary("b"))
	require.Len(t, da.msg.Alerts, 1)
	require.Len(t, db.msg.Alerts, 1)
	require.Equal(t, a, da.msg.GroupLabels)
	require.Equal(t, b, db.msg.GroupLabels)
	require.NotEqual(t, da.msg.GroupKey, db.msg.GroupKey)
	require.NotEqual(t, da.msg.Alerts[0].Fingerprint, db.msg.Alerts[0].Fingerprint)
}

// TestServerErrorIsRetried shows that a 5xx answer makes Alertmanager try
// the same notification again. group_interval is a minute, so the second
// delivery cannot be the next flush of the group: it is the retry of the
// first send, after Alertmanager's exponential backoff (0.25–0.75 s for the
// first retry).
func TestServerErrorIsRetried(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, func(n int) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	am := testam.Start(t, testam.Config{WebhookURL: rcv.url(), GroupInterval: time.Minute})

	am.Fire(t, map[string]string{"alertname": "Retry5xx"}, nil)
	rcv.waitFor(t, "second delivery", func(d delivery) bool { return d.status == http.StatusOK })
	got := rcv.all()
	require.Len(t, got, 2)
	require.Equal(t, http.StatusInternalServerError, got[0].status)
	require.JSONEq(t, string(got[0].body), string(got[1].body), "the retry sends the same payload")
	t.Logf("retry %s after the 500", got[1].at.Sub(got[0].at))
	// Alertmanager's own account: the second delivery is attempt 2 of the
	// same send.
	waitOutput(t, am, `msg="Notify success" attempts=2`, 1)
}

// TestClientErrorIsNotRetried shows that a 4xx answer ends the send: the
// retrier gives up after one attempt and says so in the log
// ("notify retry canceled due to unrecoverable error after 1 attempts").
// The test waits for that line rather than sleeping for a while and
// counting: once it is logged, this send is over, and with group_interval a
// minute the group is not flushed again during the test. Exactly one
// delivery at that point means no retry.
func TestClientErrorIsNotRetried(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, always(http.StatusBadRequest))
	am := testam.Start(t, testam.Config{WebhookURL: rcv.url(), GroupInterval: time.Minute})

	am.Fire(t, map[string]string{"alertname": "NoRetry4xx"}, nil)
	waitOutput(t, am, "unrecoverable error after 1 attempts", 1)
	require.Len(t, rcv.all(), 1)
}

// TestClientErrorIsSentAgainNextFlush pins a consequence of the above that
// the engine must live with: a 4xx is not retried, but nor is the
// notification recorded as sent, so the next group_interval flush sends it
// again (every 5 minutes with Alertmanager's default group_interval).
func TestClientErrorIsSentAgainNextFlush(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, always(http.StatusBadRequest))
	am := testam.Start(t, testam.Config{WebhookURL: rcv.url()})

	am.Fire(t, map[string]string{"alertname": "Resent4xx"}, nil)
	got := rcv.waitN(t, 2)
	// Each delivery was a first attempt that gave up at once: the second
	// is a new send, not a retry.
	waitOutput(t, am, "unrecoverable error after 1 attempts", 2)
	require.JSONEq(t, string(got[0].body), string(got[1].body))
	// About one group_interval (1s) apart; the bound leaves room for a slow
	// first send on a loaded machine.
	gap := got[1].at.Sub(got[0].at)
	t.Logf("sent again %s after the 400", gap)
	require.Greater(t, gap, 500*time.Millisecond)
}

// TestStartFailsOnBadConfig checks that Start fails the test, with the
// reason, when the config cannot work: before running Alertmanager for a
// missing URL, and with amtool's verdict for what Alertmanager rejects.
func TestStartFailsOnBadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  testam.Config
		want string
	}{
		{
			name: "no webhook URL",
			cfg:  testam.Config{},
			want: "Config.WebhookURL is empty",
		},
		{
			name: "wildcard group_by mixed with a label",
			cfg:  testam.Config{WebhookURL: "http://127.0.0.1:1/", GroupBy: []string{"...", "alertname"}},
			want: "cannot have wildcard group_by (`...`) and other other labels at the same time",
		},
		{
			name: "URL without a scheme",
			cfg:  testam.Config{WebhookURL: "127.0.0.1:1/alertmanager"},
			want: "first path segment in URL cannot contain colon",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ft := &fatalRecorder{TB: t}
			runFatal(ft, func() { testam.Start(ft, tt.cfg) })
			require.Contains(t, ft.msg, tt.want)
		})
	}
}

// TestStartFailsWithoutBinary checks that a missing binary fails the test
// and names the Debian package, rather than skipping. Not parallel:
// t.Setenv changes PATH for the whole process.
func TestStartFailsWithoutBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	ft := &fatalRecorder{TB: t}
	runFatal(ft, func() { testam.Start(ft, testam.Config{WebhookURL: "http://127.0.0.1:1/"}) })
	require.Contains(t, ft.msg, "install the Debian package `prometheus-alertmanager`")
}

// TestFireFailsOnRejectedAlert checks that an alert Alertmanager refuses
// fails the test with Alertmanager's answer.
func TestFireFailsOnRejectedAlert(t *testing.T) {
	t.Parallel()
	am := testam.Start(t, testam.Config{WebhookURL: "http://127.0.0.1:1/"})
	ft := &fatalRecorder{TB: t}
	runFatal(ft, func() { am.Fire(ft, map[string]string{}, nil) })
	require.Contains(t, ft.msg, "400 Bad Request")
	t.Log(ft.msg)
}

// runFatal runs f in its own goroutine, as the testing package runs a test,
// so that the runtime.Goexit of fatalRecorder.Fatalf ends only f.
func runFatal(ft *fatalRecorder, f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
		ft.msg = "returned without a fatal error"
	}()
	<-done
}

// fatalRecorder records the message of Fatalf and ends the goroutine with
// runtime.Goexit, as testing.T does, so that a test can check why Start gave
// up without failing itself.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
