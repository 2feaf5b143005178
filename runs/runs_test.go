package runs_test

import (
	"context"
	"github.com/aurum/canary/runs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/rules"
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
// source answers error_rate from a map, and a fixed clock.
type fixture struct {
	t      *testing.T
	path   string
	st     *bolt.Bolt
	runs   *runs.Runs
	ev     *analysis.Evaluator
	set    *rules.Set
	errors map[string]float64
	now    time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "policies.yaml")
	require.NoError(t, os.WriteFile(file, []byte(runsPolicy), 0o644))
	set, err := rules.Load(file)
	require.NoError(t, err)
	require.Len(t, set.Policies, 2)
	f := &fixture{t: t, path: filepath.Join(dir, "canary.db"), set: set,
		errors: map[string]float64{"good": 0.001, "bad": 0.05}, now: time.Date(2026, 11, 26, 14, 0, 0, 0, time.UTC)}
	src := queries.SourceFunc(func(_ context.Context, q queries.Query) (queries.Result, error) {
		for app, v := range f.errors {
			if strings.Contains(q.Text, `app="`+app+`"`) {
				return queries.Result{Samples: []queries.Sample{{Value: v}}}, nil
			}
		}
		return queries.Result{}, nil
	})
	f.ev = analysis.NewEvaluator(analysis.Options{Sources: queries.Registry{{Kind: "prometheus"}: src}})
	f.open()
	return f
}

func (f *fixture) open() {
	st, err := bolt.Open(f.path, bolt.Options{})
	require.NoError(f.t, err)
	f.t.Cleanup(func() { st.Close() })
	f.st = st
	f.runs, err = runs.New(context.Background(), runs.Options{Store: st, History: 3, Now: func() time.Time { return f.now }})
	require.NoError(f.t, err)
}

func (f *fixture) analyze(policy, name, revision string) *analysis.Result {
	f.t.Helper()
	pol, err := f.set.Get(policy)
	require.NoError(f.t, err)
	res, err := f.runs.Analyze(context.Background(), f.ev, pol,
		runs.Target{Namespace: "caiso", Name: name, Revision: revision},
		map[string]string{"namespace": "caiso", "name": name}, time.Time{})
	require.NoError(f.t, err)
	return res
}

func (f *fixture) run(name string) *runs.Run {
	f.t.Helper()
	run, err := f.runs.Get(context.Background(), "caiso", name)
	require.NoError(f.t, err)
	return run
}

func TestRunsAnalyze(t *testing.T) {
	f := newFixture(t)
	res := f.analyze("ingest", "good", "r1")
	require.Equal(t, analysis.VerdictPass, res.Verdict)
	require.Equal(t, "caiso/good@r1", res.Run)

	// History is bounded; the count is not.
	for range 4 {
		f.analyze("ingest", "good", "r1")
	}
	run := f.run("good")
	require.EqualValues(t, 5, run.Evaluations)
	hist, err := f.runs.History(context.Background(), "caiso", "good", 0)
	require.NoError(t, err)
	require.Len(t, hist, 3)
	require.EqualValues(t, 5, hist[2].Seq)

	// No revision: the current run goes on.
	require.Equal(t, "caiso/good@r1", f.analyze("ingest", "good", "").Run)
	// A new revision starts afresh.
	res = f.analyze("ingest", "good", "r2")
	require.Equal(t, "caiso/good@r2", res.Run)
	require.EqualValues(t, 1, f.run("good").Evaluations)

	// A first call without a revision gets one from its time.
	require.Equal(t, "caiso/fresh@20261126T140000Z", f.analyze("ingest", "fresh", "").Run)

	// Invalid params create nothing.
	pol, _ := f.set.Get("ingest")
	_, err = f.runs.Analyze(context.Background(), f.ev, pol, runs.Target{Namespace: "caiso", Name: "x"},
		map[string]string{"namespace": "caiso"}, time.Time{})
	require.ErrorIs(t, err, rules.ErrInvalidParams)
	_, err = f.runs.Get(context.Background(), "caiso", "x")
	require.ErrorIs(t, err, runs.ErrRunNotFound)
}

func TestRunsLatchOnFail(t *testing.T) {
	f := newFixture(t)
	_, ok := f.runs.RollbackLatch("caiso", "bad", "")
	require.False(t, ok)
	res := f.analyze("latching", "bad", "r1")
	require.Equal(t, analysis.VerdictFail, res.Verdict)
	l, ok := f.runs.RollbackLatch("caiso", "bad", "r1")
	require.True(t, ok)
	require.Equal(t, runs.SourceAnalysis, l.Source)
	require.Equal(t, "error-rate: 0.05 > 0.01", l.Reason)

	// Even once the canary looks healthy again, the rollback stands.
	f.errors["bad"] = 0
	res = f.analyze("latching", "bad", "r1")
	require.Equal(t, analysis.DecisionRollback, res.Decision)
	require.Equal(t, "rollback latched by analysis: error-rate: 0.05 > 0.01", res.Reason)
	require.Equal(t, 1, f.runs.LatchCounts()[runs.LatchRollback])
	// Other revisions are not affected.
	_, ok = f.runs.RollbackLatch("caiso", "bad", "r2")
	require.False(t, ok)
}

func TestRunsAct(t *testing.T) {
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
				_, err := f.runs.Act(context.Background(), "caiso", "good", a, "by hand")
				require.NoError(t, err)
			}
			require.Len(t, f.run("good").Latches, tt.latches)
			res := f.analyze("ingest", "good", "r1")
			require.Equal(t, tt.verdict, res.Verdict, res.Reason)
			require.Equal(t, tt.decision, res.Decision)
		})
	}
	f := newFixture(t)
	_, err := f.runs.Act(context.Background(), "caiso", "nope", "pause", "")
	require.ErrorIs(t, err, runs.ErrRunNotFound)
	f.analyze("ingest", "good", "r1")
	_, err = f.runs.Act(context.Background(), "caiso", "good", "explode", "")
	require.ErrorIs(t, err, runs.ErrUnknownAction)
}

func TestRunsEvent(t *testing.T) {
	f := newFixture(t)
	run, err := f.runs.Event(context.Background(), "caiso", "good", "", "Initializing")
	require.NoError(t, err)
	require.Nil(t, run, "no checksum, no run")
	run, err = f.runs.Event(context.Background(), "caiso", "good", "c1", "Progressing")
	require.NoError(t, err)
	require.Equal(t, "c1", run.Revision)
	f.analyze("ingest", "good", "c1")
	_, err = f.runs.Act(context.Background(), "caiso", "good", "rollback", "")
	require.NoError(t, err)

	run, err = f.runs.Event(context.Background(), "caiso", "good", "c1", "Progressing")
	require.NoError(t, err)
	require.True(t, run.Has(runs.LatchRollback), "same checksum keeps latches")
	run, err = f.runs.Event(context.Background(), "caiso", "good", "c2", "Progressing")
	require.NoError(t, err)
	require.Equal(t, "c2", run.Revision)
	require.Empty(t, run.Latches)
	require.Equal(t, "ingest", run.Policy, "alerts keep matching the new revision")
}

func TestRunsAlerts(t *testing.T) {
	f := newFixture(t)
	f.analyze("ingest", "good", "r1")
	f.analyze("ingest", "bad", "r1")
	critical := runs.Alert{Status: "firing", Labels: map[string]string{"alertname": "Errors", "severity": "critical", "app": "good"},
		Annotations: map[string]string{"summary": "too many 5xx"}, Fingerprint: "f1"}
	warning := runs.Alert{Status: "firing", Labels: map[string]string{"alertname": "Lag", "severity": "warning", "app": "bad-consumer"}}
	other := runs.Alert{Status: "firing", Labels: map[string]string{"alertname": "Errors", "severity": "critical", "app": "else"}}

	rep, err := f.runs.Alerts(context.Background(), f.set, []runs.Alert{critical, warning, other})
	require.NoError(t, err)
	require.Equal(t, 2, rep.Matched)
	require.Equal(t, 2, rep.Latched)
	require.Len(t, rep.Rollbacks, 1, "the run a rollback alert matched, for the kill switch")
	require.Equal(t, "good", rep.Rollbacks[0].Name)
	require.True(t, rep.Rollbacks[0].Has(runs.LatchRollback))
	require.Equal(t, analysis.DecisionRollback, f.analyze("ingest", "good", "r1").Decision)
	res := f.analyze("ingest", "bad", "r1")
	require.Equal(t, analysis.DecisionPause, res.Decision, "a pause hides the failing analysis")
	require.Equal(t, "pause latched by alert: alert Lag firing", res.Reason)

	// Redelivery: nothing changes.
	rep, err = f.runs.Alerts(context.Background(), f.set, []runs.Alert{critical, warning})
	require.NoError(t, err)
	require.Equal(t, 0, rep.Latched)
	require.Len(t, rep.Rollbacks, 1, "a redelivery still names the run: the kill switch may have failed before")

	// Resolution lifts the pause, not the rollback.
	critical.Status, warning.Status = "resolved", "resolved"
	rep, err = f.runs.Alerts(context.Background(), f.set, []runs.Alert{critical, warning})
	require.NoError(t, err)
	require.Equal(t, 1, rep.Lifted)
	require.True(t, f.run("good").Has(runs.LatchRollback))
	require.False(t, f.run("bad").Has(runs.LatchPause))

	// After a restart the runs are matched the same way.
	f.st.Close()
	f.open()
	critical.Status, critical.Fingerprint = "firing", "f2"
	critical.Labels = map[string]string{"severity": "critical", "app": "bad"}
	rep, err = f.runs.Alerts(context.Background(), f.set, []runs.Alert{critical})
	require.NoError(t, err)
	require.Equal(t, 1, rep.Latched)
	require.Equal(t, map[runs.LatchKind]int{runs.LatchRollback: 2, runs.LatchPause: 0, runs.LatchPromote: 0}, f.runs.LatchCounts())
}
