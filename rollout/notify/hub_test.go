package notify_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/rollout"
	"github.com/aurum/canary/rollout/notify"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs"
	"github.com/aurum/canary/runs/bolt"
)

const hubPolicy = `
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: ingest}
spec:
  params: {namespace: {}, name: {}}
  queries:
    error_rate: {prometheus: 'error_rate{app="{{ .name }}"}'}
  rules:
    - {name: error-rate, expr: error_rate <= 0.01}
  alerts:
    - match: {severity: critical, app: "{{ .name }}"}
      action: rollback
  notifications:
    severity: {paused: critical}
    inconclusiveAfter: 2
    degraded: {margin: 0.2, analyses: 2}
`

// recorder is a Sink that keeps what it is given.
type recorder struct {
	mu  sync.Mutex
	got []notify.Notification
}

func (r *recorder) Enqueue(n notify.Notification) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, n)
}

func (r *recorder) take() []notify.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.got
	r.got = nil
	return out
}

func kinds(ns []notify.Notification) []string {
	var out []string
	for _, n := range ns {
		k := string(n.Kind) + "/" + string(n.Severity)
		if n.Resolved {
			k += "/resolved"
		}
		out = append(out, k)
	}
	return out
}

// hubWorld is runs with a hub subscribed, over a real store, and a source
// whose error rate the test sets.
type hubWorld struct {
	runs    *runs.Runs
	set     *rules.Set
	ev      *analysis.Evaluator
	rec     *recorder
	hub     *notify.Hub
	errRate float64
	now     time.Time
}

func newHubWorld(t *testing.T) *hubWorld {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	require.NoError(t, os.WriteFile(file, []byte(hubPolicy), 0o644))
	set, err := rules.Load(file)
	require.NoError(t, err)
	st, err := bolt.Open(filepath.Join(dir, "canary.db"), bolt.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	w := &hubWorld{set: set, rec: &recorder{}, errRate: 0.001, now: time.Now()}
	w.runs, err = runs.New(context.Background(), runs.Options{Store: st, Now: func() time.Time { return w.now }})
	require.NoError(t, err)
	w.hub = notify.NewHub(notify.HubOptions{Policies: func() *rules.Set { return set }, Sink: w.rec, Link: "https://canary.example/"})
	w.runs.Subscribe(w.hub)
	src := queries.SourceFunc(func(context.Context, queries.Query) (queries.Result, error) {
		if w.errRate < 0 {
			return queries.Result{}, nil
		}
		return queries.Result{Samples: []queries.Sample{{Value: w.errRate}}}, nil
	})
	w.ev = analysis.NewEvaluator(analysis.Options{Sources: queries.Registry{{Kind: "prometheus"}: src}})
	return w
}

func (w *hubWorld) analyze(t *testing.T, errRate float64) {
	t.Helper()
	w.errRate = errRate
	pol, _ := w.set.Get("ingest")
	_, err := w.runs.Analyze(context.Background(), w.ev, pol, runs.Ref{Namespace: "caiso", Name: "lmp", Revision: "v2"},
		map[string]string{"namespace": "caiso", "name": "lmp"}, time.Time{}, runs.OriginArgo)
	require.NoError(t, err)
}

func TestHubRunEvents(t *testing.T) {
	w := newHubWorld(t)
	ctx := context.Background()

	w.analyze(t, 0.001) // far from 0.01: nothing
	require.Empty(t, w.rec.take())

	// A failing streak is told once, and its end once.
	w.analyze(t, 0.05)
	w.analyze(t, 0.05)
	got := w.rec.take()
	require.Equal(t, []string{"analysis_failed/warning"}, kinds(got))
	require.Equal(t, "analysis of caiso/lmp@v2 failed: decision rollback", got[0].Summary)
	require.Equal(t, "error-rate: 0.05 > 0.01", got[0].Reason)
	require.Equal(t, "https://canary.example/v1/runs/caiso/lmp?revision=v2", got[0].Link)
	require.Len(t, got[0].Rules, 1)
	require.InDelta(t, 0.05, *got[0].Rules[0].Value, 1e-12)
	w.analyze(t, 0.001)
	require.Equal(t, []string{"analysis_failed/warning/resolved"}, kinds(w.rec.take()))

	// Inconclusive twice in a row (the policy's inconclusiveAfter).
	w.analyze(t, -1)
	require.Empty(t, w.rec.take())
	w.analyze(t, -1)
	require.Equal(t, []string{"inconclusive/warning"}, kinds(w.rec.take()))
	w.analyze(t, -1)
	require.Empty(t, w.rec.take(), "told once per streak")
	w.analyze(t, 0.001)
	require.Equal(t, []string{"inconclusive/warning/resolved"}, kinds(w.rec.take()))

	// Passing within 20% of the threshold twice in a row is degraded.
	w.analyze(t, 0.009)
	require.Empty(t, w.rec.take())
	w.analyze(t, 0.0095)
	got = w.rec.take()
	require.Equal(t, []string{"degraded/warning"}, kinds(got))
	require.Contains(t, got[0].Summary, "rule error-rate of caiso/lmp@v2 passed within 20% of its threshold 2 times in a row")
	w.analyze(t, 0.001)
	require.Equal(t, []string{"degraded/warning/resolved"}, kinds(w.rec.take()))

	// Latches: the source is told; a redelivery is not told again; the
	// policy makes pauses critical.
	alert := runs.Alert{Status: "firing", Fingerprint: "f1", Labels: map[string]string{"severity": "critical", "app": "lmp"}}
	_, err := w.runs.Alerts(ctx, w.set, []runs.Alert{alert})
	require.NoError(t, err)
	_, err = w.runs.Alerts(ctx, w.set, []runs.Alert{alert})
	require.NoError(t, err)
	got = w.rec.take()
	require.Equal(t, []string{"rollback_latched/critical"}, kinds(got))
	require.Equal(t, "alert", got[0].Source)
	require.Equal(t, "rollback_latched caiso/lmp@v2", got[0].Condition)
	_, err = w.runs.Act(ctx, "caiso", "lmp", "", runs.ActionPause, "market open", "admin/alice")
	require.NoError(t, err)
	got = w.rec.take()
	require.Equal(t, []string{"paused/critical"}, kinds(got))
	require.Equal(t, "admin/alice", got[0].By)
	_, err = w.runs.Act(ctx, "caiso", "lmp", "", runs.ActionResume, "checked", "admin/alice")
	require.NoError(t, err)
	got = w.rec.take()
	require.Equal(t, []string{"resumed/critical/resolved", "resumed/critical/resolved"}, kinds(got),
		"a resolution has the severity of what it resolves")
	require.ElementsMatch(t, []string{"rollback_latched caiso/lmp@v2", "paused caiso/lmp@v2"}, []string{got[0].Condition, got[1].Condition})

	// Reconciling after a restart queues the latches set lately again,
	// with the same IDs: the outbox sends each once.
	_, err = w.runs.Act(ctx, "caiso", "lmp", "", runs.ActionRollback, "by hand", "admin/bob")
	require.NoError(t, err)
	first := w.rec.take()
	w.hub.Reconcile(w.runs, []*rollout.Rollout{}, time.Now())
	again := w.rec.take()
	require.Len(t, again, 1)
	require.Equal(t, first[0].ID, again[0].ID)
}

// TestHubConditionsEnd: a new revision ends the previous one's analysis
// conditions (its latches stay told), and a run's expiry ends all of its
// conditions, so that no alert of canary's stays firing for a run that
// is gone.
func TestHubConditionsEnd(t *testing.T) {
	w := newHubWorld(t)
	ctx := context.Background()
	w.analyze(t, 0.05)
	_, err := w.runs.Act(ctx, "caiso", "lmp", "v2", runs.ActionRollback, "not this one", "admin/alice")
	require.NoError(t, err)
	require.Equal(t, []string{"analysis_failed/warning", "rollback_latched/critical"}, kinds(w.rec.take()))

	w.errRate = 0.001
	pol, _ := w.set.Get("ingest")
	_, err = w.runs.Analyze(ctx, w.ev, pol, runs.Ref{Namespace: "caiso", Name: "lmp", Revision: "v3"},
		map[string]string{"namespace": "caiso", "name": "lmp"}, time.Time{}, runs.OriginArgo)
	require.NoError(t, err)
	got := w.rec.take()
	require.Equal(t, []string{"analysis_failed/warning/resolved"}, kinds(got))
	require.Equal(t, "caiso/lmp@v2", got[0].Target())
	require.Equal(t, "superseded by revision v3", got[0].Reason)

	w.now = w.now.Add(30 * 24 * time.Hour) // past the idle retention, not the latched one
	_, err = w.runs.Expire(ctx)
	require.NoError(t, err)
	require.Empty(t, w.rec.take(), "v2 holds a rollback: kept")
	w.now = w.now.Add(100 * 24 * time.Hour)
	_, err = w.runs.Expire(ctx)
	require.NoError(t, err)
	got = w.rec.take()
	require.Equal(t, []string{"rollback_latched/critical/resolved"}, kinds(got))
	require.Equal(t, "the run expired", got[0].Reason)
}

func TestHubRolloutEvents(t *testing.T) {
	rec := &recorder{}
	hub := notify.NewHub(notify.HubOptions{Sink: rec})
	r := &rollout.Rollout{Spec: rollout.Spec{Namespace: "caiso", Name: "lmp", Version: "v2", Policy: "ingest"}}
	for _, e := range []rollout.Event{
		{Seq: 1, Type: "transition", From: rollout.PhaseProgressing, To: rollout.PhasePaused, Reason: "market open"},
		{Seq: 2, Type: "transition", From: rollout.PhasePaused, To: rollout.PhaseProgressing, Reason: "resumed"},
		{Seq: 3, Type: "transition", From: rollout.PhaseProgressing, To: rollout.PhasePromoting},
		{Seq: 4, Type: "transition", From: rollout.PhasePromoting, To: rollout.PhaseCompleted},
		{Seq: 5, Type: "traffic", Weight: 100},
		{Seq: 6, Type: "transition", From: rollout.PhaseProgressing, To: rollout.PhaseFailed, Reason: "traffic: forbidden"},
	} {
		hub.Rollout(r, e)
	}
	require.Equal(t, []string{"paused/warning", "resumed/warning/resolved", "promoted/info", "rollout_completed/info", "rollout_failed/critical"}, kinds(rec.take()))

	// A failed rollout that is rolled back is no longer failed.
	hub.Rollout(r, rollout.Event{Seq: 7, Type: "transition", From: rollout.PhaseFailed, To: rollout.PhaseRollingBack, Reason: "rolled back by hand"})
	got := rec.take()
	require.Equal(t, []string{"rollout_failed/critical/resolved"}, kinds(got))
	require.Equal(t, "rollout_failed caiso/lmp", got[0].Condition)

	// In a group, the member that failed is told, with what the group
	// does; the members it drags along are not.
	r.Spec.Group = "caiso/isos"
	hub.Rollout(r, rollout.Event{Seq: 8, Type: "transition", From: rollout.PhaseProgressing, To: rollout.PhaseRollingBack, Reason: "error-rate: 0.05 > 0.01"})
	hub.Rollout(r, rollout.Event{Seq: 9, Type: "transition", From: rollout.PhaseProgressing, To: rollout.PhaseRollingBack, Reason: "group member miso/lmp rolled back"})
	got = rec.take()
	require.Equal(t, []string{"group_member_failed/critical"}, kinds(got))
	require.True(t, strings.HasPrefix(got[0].Reason, "error-rate: 0.05 > 0.01; a lockstep group"))

	hub.StepDownDone(&rollout.StepDown{Run: "caiso/lmp@v2", Reason: "alert", StartedAt: time.Unix(100, 0)})
	got = rec.take()
	require.Equal(t, []string{"rollback_done/warning"}, kinds(got))
	require.Equal(t, "caiso/lmp@v2", got[0].Target())
}

// TestKindsAreThePolicyFormats: the kinds a policy may name are exactly
// the kinds notifications have.
func TestKindsAreThePolicyFormats(t *testing.T) {
	var ks []string
	for _, k := range notify.Kinds {
		ks = append(ks, string(k))
		require.Contains(t, notify.DefaultSeverity, k)
	}
	require.Equal(t, rules.NotificationKinds, ks)
	var ss []string
	for _, s := range notify.Severities {
		ss = append(ss, string(s))
	}
	require.Equal(t, rules.NotificationSeverities, ss)
}
