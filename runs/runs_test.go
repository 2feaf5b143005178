package runs_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs"
	"github.com/aurum/canary/runs/bolt"
)

const runsPolicy = `
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: ingest}
spec:
  params:
    namespace: {}
    name: {}
  queries:
    error_rate: {prometheus: 'error_rate{namespace="{{ .namespace }}",app="{{ .name }}"}'}
  rules:
    - {name: error-rate, expr: error_rate <= 0.01}
  alerts:
    - match: {severity: critical, app: "{{ .name }}"}
      action: rollback
    - match: {severity: warning}
      matchRegex: {app: "{{ regex .name }}-.*"}
      action: pause
---
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: latching}
spec:
  params: {name: {}}
  queries:
    error_rate: {prometheus: 'error_rate{app="{{ .name }}"}'}
  rules:
    - {name: error-rate, expr: error_rate <= 0.01}
  decision: {latchOnFail: true}
`

// fixture is Runs over a real store in a temp dir, an evaluator whose
// source answers error_rate from a map, a fixed clock, and a subscriber
// that keeps every event.
type fixture struct {
	t       *testing.T
	path    string
	st      *bolt.Bolt
	runs    *runs.Runs
	ev      *analysis.Evaluator
	set     *rules.Set
	mu      sync.Mutex
	errors  map[string]float64
	queries int
	now     time.Time
	events  []runs.Event
	opts    runs.Options
	reg     *prometheus.Registry
}

func newFixture(t *testing.T, opts ...func(*runs.Options)) *fixture {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "policies.yaml")
	require.NoError(t, os.WriteFile(file, []byte(runsPolicy), 0o644))
	set, err := rules.Load(file)
	require.NoError(t, err)
	f := &fixture{t: t, path: filepath.Join(dir, "canary.db"), set: set,
		errors: map[string]float64{"good": 0.001, "bad": 0.05}, now: time.Date(2026, 11, 26, 14, 0, 0, 0, time.UTC)}
	src := queries.SourceFunc(func(_ context.Context, q queries.Query) (queries.Result, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.queries++
		for app, v := range f.errors {
			if strings.Contains(q.Text, `app="`+app+`"`) {
				return queries.Result{Samples: []queries.Sample{{Value: v}}}, nil
			}
		}
		return queries.Result{}, nil
	})
	f.ev = analysis.NewEvaluator(analysis.Options{Sources: queries.Registry{{Kind: "prometheus"}: src}})
	f.opts = runs.Options{History: 3, Now: func() time.Time { return f.now }}
	for _, o := range opts {
		o(&f.opts)
	}
	f.open()
	return f
}

func (f *fixture) open() {
	st, err := bolt.Open(f.path, bolt.Options{FlushInterval: -1})
	require.NoError(f.t, err)
	f.t.Cleanup(func() { st.Close() })
	f.st = st
	o := f.opts
	o.Store = st
	f.reg = prometheus.NewRegistry()
	o.Metrics = runs.NewMetrics(f.reg)
	f.runs, err = runs.New(context.Background(), o)
	require.NoError(f.t, err)
	f.runs.Subscribe(runs.SubscriberFunc(func(_ context.Context, e runs.Event) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.events = append(f.events, e)
		return nil
	}))
}

// restart closes the store, as a shutdown does, and opens it again.
func (f *fixture) restart() {
	require.NoError(f.t, f.st.Close())
	f.open()
}

func (f *fixture) analyze(policy, name, revision string) *runs.Answer {
	f.t.Helper()
	pol, err := f.set.Get(policy)
	require.NoError(f.t, err)
	a, err := f.runs.Analyze(context.Background(), f.ev, pol,
		runs.Ref{Namespace: "caiso", Name: name, Revision: revision},
		map[string]string{"namespace": "caiso", "name": name}, time.Time{}, runs.OriginArgo)
	require.NoError(f.t, err)
	return a
}

func (f *fixture) run(name, revision string) *runs.Run {
	f.t.Helper()
	run, err := f.runs.Get("caiso", name, revision)
	require.NoError(f.t, err)
	return run
}

func (f *fixture) act(name, revision, action string) *runs.Run {
	f.t.Helper()
	run, err := f.runs.Act(context.Background(), "caiso", name, revision, action, "by hand", "admin/alice")
	require.NoError(f.t, err)
	return run
}

func (f *fixture) kinds() []runs.EventKind {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []runs.EventKind
	for _, e := range f.events {
		out = append(out, e.Kind)
	}
	f.events = nil
	return out
}

func TestAnalyze(t *testing.T) {
	f := newFixture(t)
	a := f.analyze("ingest", "good", "r1")
	require.Equal(t, analysis.VerdictPass, a.Verdict)
	require.Equal(t, "caiso/good@r1", a.Run)
	require.Equal(t, []runs.EventKind{runs.EventRevision, runs.EventAnalysis}, f.kinds(), "a first run is a new revision")

	// History is bounded; the count is not.
	for range 4 {
		f.analyze("ingest", "good", "r1")
	}
	require.Equal(t, []runs.EventKind{runs.EventAnalysis, runs.EventAnalysis, runs.EventAnalysis, runs.EventAnalysis}, f.kinds())
	run := f.run("good", "")
	require.EqualValues(t, 5, run.Evaluations)
	require.True(t, run.Current)
	hist, err := f.runs.History(context.Background(), "caiso", "good", "", 0)
	require.NoError(t, err)
	require.Len(t, hist, 3)
	require.EqualValues(t, 5, hist[2].Seq)

	// No revision: the current run goes on.
	require.Equal(t, "caiso/good@r1", f.analyze("ingest", "good", "").Run)
	// A new revision starts afresh and becomes current; the old run stays.
	a = f.analyze("ingest", "good", "r2")
	require.Equal(t, "caiso/good@r2", a.Run)
	require.EqualValues(t, 1, f.run("good", "").Evaluations)
	require.EqualValues(t, 6, f.run("good", "r1").Evaluations)
	require.False(t, f.run("good", "r1").Current)
	revs, err := f.runs.Revisions("caiso", "good")
	require.NoError(t, err)
	require.Len(t, revs, 2)

	// A first call without a revision gets one from its time.
	require.Equal(t, "caiso/fresh@20261126T140000Z", f.analyze("ingest", "fresh", "").Run)

	// Invalid params and names create nothing.
	pol, _ := f.set.Get("ingest")
	_, err = f.runs.Analyze(context.Background(), f.ev, pol, runs.Ref{Namespace: "caiso", Name: "x"},
		map[string]string{"namespace": "caiso"}, time.Time{}, runs.OriginArgo)
	require.ErrorIs(t, err, rules.ErrInvalidParams)
	_, err = f.runs.Analyze(context.Background(), f.ev, pol, runs.Ref{Namespace: "caiso", Name: "x", Revision: "a b"},
		map[string]string{"namespace": "caiso", "name": "x"}, time.Time{}, runs.OriginArgo)
	require.ErrorIs(t, err, runs.ErrBadRequest)
	_, err = f.runs.Get("caiso", "x", "")
	require.ErrorIs(t, err, runs.ErrRunNotFound)

	// An analysis that names no canary is answered and counted, not kept.
	a, err = f.runs.Analyze(context.Background(), f.ev, pol, runs.Ref{}, map[string]string{"namespace": "caiso", "name": "good"}, time.Time{}, runs.OriginArgo)
	require.NoError(t, err)
	require.Empty(t, a.Run)
	f.kinds()

	// What was answered is there after a restart.
	f.restart()
	require.EqualValues(t, 6, f.run("good", "r1").Evaluations)
	require.Equal(t, "r2", f.run("good", "").Revision)
	hist, err = f.runs.History(context.Background(), "caiso", "good", "r1", 0)
	require.NoError(t, err)
	require.EqualValues(t, 6, hist[2].Seq)
}

func TestLatchOnFail(t *testing.T) {
	f := newFixture(t)
	_, ok := f.runs.RollbackLatch("caiso", "bad", "")
	require.False(t, ok)
	a := f.analyze("latching", "bad", "r1")
	require.Equal(t, analysis.VerdictFail, a.Verdict)
	l, ok := f.runs.RollbackLatch("caiso", "bad", "r1")
	require.True(t, ok)
	require.Equal(t, runs.SourceAnalysis, l.Source)
	require.Equal(t, "error-rate: 0.05 > 0.01", l.Reason)
	require.Equal(t, []runs.EventKind{runs.EventRevision, runs.EventLatched, runs.EventAnalysis}, f.kinds(),
		"the latch is an event like any other, so the kill switch acts on it")

	// Even once the canary looks healthy again, the rollback stands, and
	// the answer says how to lift it.
	f.errors["bad"] = 0
	a = f.analyze("latching", "bad", "r1")
	require.Equal(t, analysis.DecisionRollback, a.Decision)
	require.Equal(t, "rollback latched by analysis: error-rate: 0.05 > 0.01", a.Reason)
	require.Equal(t, runs.LatchRollback, a.Latched)
	require.Equal(t, `canary runs resume caiso/bad --revision r1 --reason "…"`, a.Latch.Lift.Command)
	require.Equal(t, `POST /v1/runs/caiso/bad/resume?revision=r1 {"reason": "…"}`, a.Latch.Lift.API)
	require.Equal(t, 1, f.runs.LatchCounts()[runs.LatchRollback])
	// Other revisions are not affected.
	_, ok = f.runs.RollbackLatch("caiso", "bad", "r2")
	require.False(t, ok)
}

// TestLatchSurvivesOtherRevisions: a call naming another revision starts
// that revision's run and does not drop the latch of the first; when the
// first is asked about again, the latch answers.
func TestLatchSurvivesOtherRevisions(t *testing.T) {
	f := newFixture(t)
	f.analyze("ingest", "good", "r1")
	f.act("good", "", runs.ActionRollback)
	queried := f.queries

	a := f.analyze("ingest", "good", "other")
	require.Equal(t, analysis.VerdictPass, a.Verdict, "the other revision is judged on its own")
	a = f.analyze("ingest", "good", "r1")
	require.Equal(t, analysis.DecisionRollback, a.Decision, "r1's latch still stands")
	require.Equal(t, queried+1, f.queries, "a latched analysis queries nothing")
	l, ok := f.runs.RollbackLatch("caiso", "good", "r1")
	require.True(t, ok)
	require.Equal(t, "admin/alice", l.By)

	// A call that names no revision cannot be told apart from r1: it is
	// answered with r1's rollback, whichever revision is current.
	f.analyze("ingest", "good", "other")
	a = f.analyze("ingest", "good", "")
	require.Equal(t, analysis.DecisionRollback, a.Decision)
	require.Equal(t, "caiso/good@other", a.Run)
	require.Equal(t, "r1", a.Latch.Revision)
	require.Contains(t, a.Reason, "revision r1 has a rollback latch; this call names no revision")
	_, ok = f.runs.RollbackLatch("caiso", "good", "")
	require.True(t, ok, "Flagger's rollback hook without a checksum answers it too")

	// A Flagger event with another checksum switches the current run; r1
	// keeps its latch.
	_, err := f.runs.Event(context.Background(), "caiso", "good", "c3", "Progressing")
	require.NoError(t, err)
	_, ok = f.runs.RollbackLatch("caiso", "good", "r1")
	require.True(t, ok)

	// Only a resume of r1 lifts it.
	f.act("good", "r1", runs.ActionResume)
	require.Equal(t, analysis.VerdictPass, f.analyze("ingest", "good", "r1").Verdict)
	require.Equal(t, analysis.VerdictPass, f.analyze("ingest", "good", "").Verdict)
}

func TestAct(t *testing.T) {
	tests := []struct {
		name     string
		actions  []string
		verdict  analysis.Verdict
		decision analysis.Decision
		latches  int
	}{
		{name: "rollback", actions: []string{"rollback"}, verdict: analysis.VerdictFail, decision: analysis.DecisionRollback, latches: 1},
		{name: "pause", actions: []string{"pause"}, verdict: analysis.VerdictInconclusive, decision: analysis.DecisionPause, latches: 1},
		{name: "resume lifts everything", actions: []string{"rollback", "pause", "resume"}, verdict: analysis.VerdictPass, decision: analysis.DecisionContinue},
		{name: "promote overrides", actions: []string{"rollback", "promote"}, verdict: analysis.VerdictPass, decision: analysis.DecisionPromote, latches: 1},
		{name: "rollback after promote wins", actions: []string{"promote", "rollback"}, verdict: analysis.VerdictFail, decision: analysis.DecisionRollback, latches: 2},
		{name: "pause before promote", actions: []string{"promote", "pause"}, verdict: analysis.VerdictInconclusive, decision: analysis.DecisionPause, latches: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.analyze("ingest", "good", "r1")
			for _, a := range tt.actions {
				f.act("good", "", a)
			}
			run := f.run("good", "")
			require.Len(t, run.Latches, tt.latches)
			require.Len(t, run.Overrides, len(tt.actions), "every manual action is on record")
			require.Equal(t, "admin/alice", run.Overrides[0].By)
			a := f.analyze("ingest", "good", "r1")
			require.Equal(t, tt.verdict, a.Verdict, a.Reason)
			require.Equal(t, tt.decision, a.Decision)
		})
	}
	f := newFixture(t)
	ctx := context.Background()
	_, err := f.runs.Act(ctx, "caiso", "nope", "", "pause", "why", "x")
	require.ErrorIs(t, err, runs.ErrRunNotFound)
	f.analyze("ingest", "good", "r1")
	_, err = f.runs.Act(ctx, "caiso", "good", "", "explode", "why", "x")
	require.ErrorIs(t, err, runs.ErrUnknownAction)
	_, err = f.runs.Act(ctx, "caiso", "good", "", "pause", "  ", "x")
	require.ErrorIs(t, err, runs.ErrBadRequest)
	require.ErrorContains(t, err, "needs a reason")
	_, err = f.runs.Act(ctx, "caiso", "good", "", "pause", strings.Repeat("x", runs.MaxReason+1), "x")
	require.ErrorContains(t, err, "the reason is 1025 bytes, more than 1024")
	_, err = f.runs.Act(ctx, "caiso", "good", "r9", "pause", "why", "x")
	require.ErrorIs(t, err, runs.ErrRunNotFound)
}

func TestEvent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	run, err := f.runs.Event(ctx, "caiso", "good", "", "Initializing")
	require.NoError(t, err)
	require.Nil(t, run, "no checksum, no run")
	run, err = f.runs.Event(ctx, "caiso", "good", "c1", "Progressing")
	require.NoError(t, err)
	require.Equal(t, "c1", run.Revision)
	f.analyze("ingest", "good", "c1")
	f.act("good", "", runs.ActionRollback)

	run, err = f.runs.Event(ctx, "caiso", "good", "c1", "Progressing")
	require.NoError(t, err)
	require.True(t, run.Has(runs.LatchRollback), "same checksum keeps latches")
	run, err = f.runs.Event(ctx, "caiso", "good", "c2", "Progressing")
	require.NoError(t, err)
	require.Equal(t, "c2", run.Revision)
	require.Empty(t, run.Latches, "a new revision starts without latches")
	require.Equal(t, "ingest", run.Policy, "alerts keep matching the new revision")
	require.True(t, f.run("good", "c1").Has(runs.LatchRollback), "the old revision keeps its own")
	_, err = f.runs.Event(ctx, "caiso", "good", "bad checksum!", "Progressing")
	require.ErrorIs(t, err, runs.ErrBadRequest)
}

func TestAlerts(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.analyze("ingest", "good", "r1")
	f.analyze("ingest", "bad", "r1")
	critical := runs.Alert{Status: "firing", Labels: map[string]string{"alertname": "Errors", "severity": "critical", "app": "good"},
		Annotations: map[string]string{"summary": "too many 5xx"}, Fingerprint: "f1"}
	warning := runs.Alert{Status: "firing", Labels: map[string]string{"alertname": "Lag", "severity": "warning", "app": "bad-consumer"}}
	other := runs.Alert{Status: "firing", Labels: map[string]string{"alertname": "Errors", "severity": "critical", "app": "else"}}
	f.kinds()

	rep, err := f.runs.Alerts(ctx, f.set, []runs.Alert{critical, warning, other})
	require.NoError(t, err)
	require.Equal(t, runs.AlertReport{Matched: 2, Latched: 2}, rep)
	require.Equal(t, []runs.EventKind{runs.EventLatched, runs.EventLatched}, f.kinds())
	require.Equal(t, analysis.DecisionRollback, f.analyze("ingest", "good", "r1").Decision)
	a := f.analyze("ingest", "bad", "r1")
	require.Equal(t, analysis.DecisionPause, a.Decision, "a pause hides the failing analysis")
	require.Equal(t, "pause latched by alert: alert Lag firing", a.Reason)
	f.kinds()

	// Redelivery: nothing changes, but the latch is asserted again, for a
	// reaction that failed the first time.
	rep, err = f.runs.Alerts(ctx, f.set, []runs.Alert{critical, warning})
	require.NoError(t, err)
	require.Equal(t, 0, rep.Latched)
	f.mu.Lock()
	require.Len(t, f.events, 2)
	require.True(t, f.events[0].Repeat)
	f.mu.Unlock()
	f.kinds()

	// Resolution lifts the pause, not the rollback.
	critical.Status, warning.Status = "resolved", "resolved"
	rep, err = f.runs.Alerts(ctx, f.set, []runs.Alert{critical, warning})
	require.NoError(t, err)
	require.Equal(t, 1, rep.Lifted)
	require.True(t, f.run("good", "").Has(runs.LatchRollback))
	require.False(t, f.run("bad", "").Has(runs.LatchPause))

	// After a restart the runs are matched the same way.
	f.restart()
	critical.Status, critical.Fingerprint = "firing", "f2"
	critical.Labels = map[string]string{"severity": "critical", "app": "bad"}
	rep, err = f.runs.Alerts(ctx, f.set, []runs.Alert{critical})
	require.NoError(t, err)
	require.Equal(t, 1, rep.Latched)
	require.Equal(t, map[runs.LatchKind]int{runs.LatchRollback: 2, runs.LatchPause: 0, runs.LatchPromote: 0}, f.runs.LatchCounts())

	// Every kept revision is matched: a switch of the current revision
	// cannot steer an alert away from the one it concerns.
	f.analyze("ingest", "good", "r2")
	critical.Labels = map[string]string{"severity": "critical", "app": "good"}
	critical.Fingerprint = "f3"
	rep, err = f.runs.Alerts(ctx, f.set, []runs.Alert{critical})
	require.NoError(t, err)
	require.Equal(t, 2, rep.Matched)
	require.True(t, f.run("good", "r2").Has(runs.LatchRollback))
}

// TestLatchBounds: 33 pause alerts, one per pod, do not push a rollback
// out; latches beyond the bound are refused and counted; a long summary
// is cut.
func TestLatchBounds(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.analyze("ingest", "good", "r1")
	f.act("good", "", runs.ActionRollback)
	var pods []runs.Alert
	for i := range runs.MaxLatches + 1 {
		pods = append(pods, runs.Alert{Status: "firing", Fingerprint: fmt.Sprintf("pod-%d", i),
			Labels: map[string]string{"severity": "warning", "app": "good-" + fmt.Sprint(i)}})
	}
	rep, err := f.runs.Alerts(ctx, f.set, pods)
	require.NoError(t, err)
	require.Equal(t, runs.MaxLatches, rep.Latched)
	run := f.run("good", "")
	require.True(t, run.Has(runs.LatchRollback), "the rollback stands")
	require.Equal(t, 1, run.Refused)
	require.Equal(t, analysis.DecisionRollback, f.analyze("ingest", "good", "r1").Decision)

	long := runs.Alert{Status: "firing", Fingerprint: "long", Labels: map[string]string{"severity": "critical", "app": "good"},
		Annotations: map[string]string{"summary": strings.Repeat("é", 2000)}}
	_, err = f.runs.Alerts(ctx, f.set, []runs.Alert{long})
	require.NoError(t, err)
	for _, l := range f.run("good", "").Latches {
		require.LessOrEqual(t, len(l.Reason), runs.MaxReason)
		require.True(t, strings.HasSuffix(l.Reason, "…") || l.Alert != "long")
	}
}

func TestRevisionBound(t *testing.T) {
	f := newFixture(t, func(o *runs.Options) { o.MaxRevisions = 3 })
	f.analyze("ingest", "good", "r1")
	f.act("good", "r1", runs.ActionPause) // r1 is latched: it stays
	f.analyze("ingest", "good", "r2")
	f.analyze("ingest", "good", "r3")
	f.analyze("ingest", "good", "r4") // r2 goes: the oldest without a latch
	revs, err := f.runs.Revisions("caiso", "good")
	require.NoError(t, err)
	var got []string
	for _, r := range revs {
		got = append(got, r.Revision)
	}
	require.Equal(t, []string{"r1", "r3", "r4"}, got)
	hist, err := f.st.History(context.Background(), "caiso", "good", "r2", 0)
	require.NoError(t, err)
	require.Empty(t, hist, "its history went with it")

	// When every run is current or latched, a new revision is refused.
	f.act("good", "r3", runs.ActionPause)
	pol, _ := f.set.Get("ingest")
	_, err = f.runs.Analyze(context.Background(), f.ev, pol, runs.Ref{Namespace: "caiso", Name: "good", Revision: "r5"},
		map[string]string{"namespace": "caiso", "name": "good"}, time.Time{}, runs.OriginArgo)
	require.ErrorIs(t, err, runs.ErrFull)
	require.True(t, f.run("good", "r1").Has(runs.LatchPause), "nothing latched was dropped")
}

func TestCanaryBound(t *testing.T) {
	f := newFixture(t, func(o *runs.Options) { o.MaxCanaries = 2 })
	f.analyze("ingest", "good", "r1")
	f.analyze("ingest", "bad", "r1")
	pol, _ := f.set.Get("ingest")
	_, err := f.runs.Analyze(context.Background(), f.ev, pol, runs.Ref{Namespace: "caiso", Name: "third"},
		map[string]string{"namespace": "caiso", "name": "third"}, time.Time{}, runs.OriginArgo)
	require.ErrorIs(t, err, runs.ErrFull)
	require.ErrorContains(t, err, "--run-retention")
}

func TestRetention(t *testing.T) {
	f := newFixture(t, func(o *runs.Options) { o.Retention, o.LatchedRetention = time.Hour, 24*time.Hour })
	ctx := context.Background()
	f.analyze("ingest", "good", "r1")
	f.analyze("ingest", "bad", "r1")
	f.act("bad", "", runs.ActionRollback)
	f.now = f.now.Add(2 * time.Hour)
	n, err := f.runs.Expire(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the idle canary goes, the rolled-back one stays")
	_, err = f.runs.Get("caiso", "good", "")
	require.ErrorIs(t, err, runs.ErrRunNotFound)
	require.True(t, f.run("bad", "").Has(runs.LatchRollback))

	// Deleted on disk too.
	f.restart()
	_, err = f.runs.Get("caiso", "good", "")
	require.ErrorIs(t, err, runs.ErrRunNotFound)

	f.now = f.now.Add(25 * time.Hour)
	n, err = f.runs.Expire(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Contains(t, f.kinds(), runs.EventExpired)
	c, total := f.runs.Count()
	require.Zero(t, c+total)

	// A name may come back after its deletion.
	require.Equal(t, "caiso/good@r1", f.analyze("ingest", "good", "r1").Run)
}

func TestList(t *testing.T) {
	f := newFixture(t)
	for _, name := range []string{"d", "a", "c", "b"} {
		f.analyze("ingest", name, "r1")
	}
	f.analyze("ingest", "b", "r2")
	page, next := f.runs.List("", 2)
	require.Len(t, page, 3, "a and both runs of b")
	require.Equal(t, "caiso/b", next)
	page, next = f.runs.List(next, 2)
	require.Len(t, page, 2)
	require.Equal(t, "", next, "the last page")
	all, _ := f.runs.List("", 0)
	require.Len(t, all, 5)
}

func TestSubscriberPanicIsAnError(t *testing.T) {
	f := newFixture(t)
	f.runs.Subscribe(runs.SubscriberFunc(func(_ context.Context, e runs.Event) error {
		if e.Kind == runs.EventLatched {
			panic("boom")
		}
		return nil
	}))
	f.analyze("ingest", "good", "r1")
	run, err := f.runs.Act(context.Background(), "caiso", "good", "", runs.ActionRollback, "why", "x")
	require.ErrorIs(t, err, runs.ErrReaction)
	require.ErrorContains(t, err, "subscriber panicked on latched: boom")
	require.NotNil(t, run, "the latch is stored all the same")
	require.True(t, f.run("good", "").Has(runs.LatchRollback))
	n, err := testutil.GatherAndCount(f.reg, "canary_panics_total")
	require.NoError(t, err)
	require.Positive(t, n)
	require.NoError(t, testutil.GatherAndCompare(f.reg, strings.NewReader(`
# HELP canary_panics_total Panics recovered into errors, by component; each one is a bug to report.
# TYPE canary_panics_total counter
canary_panics_total{component="alerts"} 0
canary_panics_total{component="http"} 0
canary_panics_total{component="notify"} 0
canary_panics_total{component="orchestrator"} 0
canary_panics_total{component="query"} 0
canary_panics_total{component="reload"} 0
canary_panics_total{component="retention"} 0
canary_panics_total{component="stepdown"} 0
canary_panics_total{component="subscriber"} 1
canary_panics_total{component="ui"} 0
`), "canary_panics_total"))
}

// TestMetrics: every analysis is counted from the events, latches are
// gauged.
func TestMetrics(t *testing.T) {
	f := newFixture(t)
	f.analyze("ingest", "good", "r1")
	f.analyze("ingest", "bad", "r1")
	f.act("bad", "", runs.ActionPause)
	f.analyze("ingest", "bad", "r1")
	require.NoError(t, testutil.GatherAndCompare(f.reg, strings.NewReader(`
# HELP canary_analysis_total Analyses answered, by policy and verdict, whoever asked (Argo Rollouts, Flagger, the orchestrator).
# TYPE canary_analysis_total counter
canary_analysis_total{policy="ingest",verdict="fail"} 1
canary_analysis_total{policy="ingest",verdict="inconclusive"} 1
canary_analysis_total{policy="ingest",verdict="pass"} 1
# HELP canary_latches Active latches on kept runs, by kind.
# TYPE canary_latches gauge
canary_latches{kind="pause"} 1
canary_latches{kind="promote"} 0
canary_latches{kind="rollback"} 0
# HELP canary_runs Runs kept, every revision of every canary.
# TYPE canary_runs gauge
canary_runs 2
`), "canary_analysis_total", "canary_latches", "canary_runs"))
}
