package runs_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs"
	"github.com/aurum/canary/runs/bolt"
)

// fuzzRuns is Runs over a store that does not sync, for fuzzing: what is
// tested is the state machine, not the disk.
func fuzzRuns(t *testing.T) (*runs.Runs, *rules.Set, *analysis.Evaluator, *float64) {
	dir := t.TempDir()
	file := filepath.Join(dir, "policies.yaml")
	require.NoError(t, os.WriteFile(file, []byte(runsPolicy), 0o644))
	set, err := rules.Load(file)
	require.NoError(t, err)
	st, err := bolt.Open(filepath.Join(dir, "canary.db"), bolt.Options{NoSync: true, FlushInterval: -1})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	rs, err := runs.New(context.Background(), runs.Options{Store: st, Now: func() time.Time { return time.Unix(1_800_000_000, 0) }})
	require.NoError(t, err)
	errRate := new(float64)
	src := queries.SourceFunc(func(context.Context, queries.Query) (queries.Result, error) {
		if *errRate < 0 {
			return queries.Result{}, nil
		}
		return queries.Result{Samples: []queries.Sample{{Value: *errRate}}}, nil
	})
	return rs, set, analysis.NewEvaluator(analysis.Options{Sources: queries.Registry{{Kind: "prometheus"}: src}}), errRate
}

// FuzzRunSequence reads each byte as one input to the run state machine
// (an analysis of a revision with an outcome, an alert, a resolution, a
// manual action, a Flagger event) and checks after each that a rollback
// latch on a revision stands until a manual resume or promote of it, and
// that every latch a revision holds is answered by its analyses.
func FuzzRunSequence(f *testing.F) {
	f.Add([]byte{0x00, 0x41, 0x13, 0x90, 0x02, 0xc1, 0x22})
	f.Add([]byte{0x10, 0x51, 0x62, 0x73, 0xa0, 0xe3, 0x00})
	f.Add([]byte("latched, then another revision, then back"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64 {
			data = data[:64]
		}
		rs, set, ev, errRate := fuzzRuns(t)
		ctx := context.Background()
		pol, err := set.Get("ingest")
		require.NoError(t, err)
		revs := []string{"r0", "r1", "r2", "r3"}
		rollback := map[string]bool{}
		for _, b := range data {
			rev := revs[b&3]
			switch b >> 5 {
			case 0, 1: // an analysis of rev, passing, failing or without data
				*errRate = []float64{0.001, 0.05, -1, 0.001}[b>>3&3]
				a, err := rs.Analyze(ctx, ev, pol, runs.Ref{Namespace: "caiso", Name: "lmp", Revision: rev},
					map[string]string{"namespace": "caiso", "name": "lmp"}, time.Time{}, runs.OriginArgo)
				require.NoError(t, err)
				if rollback[rev] {
					require.Equal(t, analysis.DecisionRollback, a.Decision, "rev %s holds a rollback", rev)
				}
			case 2, 3: // an alert for the canary, firing or resolved
				status := []string{"firing", "resolved"}[b>>3&1]
				severity := []string{"critical", "warning"}[b>>4&1]
				_, err := rs.Alerts(ctx, set, []runs.Alert{{Status: status, Fingerprint: string(rune('a' + b&3)),
					Labels: map[string]string{"severity": severity, "app": "lmp"}}})
				require.NoError(t, err)
				if status == "firing" && severity == "critical" {
					all, _ := rs.Revisions("caiso", "lmp")
					for _, r := range all {
						if r.Policy != "" {
							rollback[r.Revision] = true
						}
					}
				}
			case 4, 5: // a manual action on rev
				action := []string{runs.ActionRollback, runs.ActionPause, runs.ActionPromote, runs.ActionResume}[b>>3&3]
				_, err := rs.Act(ctx, "caiso", "lmp", rev, action, "by hand", "admin/fuzz")
				if err != nil {
					require.ErrorIs(t, err, runs.ErrRunNotFound)
					continue
				}
				switch action {
				case runs.ActionRollback:
					rollback[rev] = true
				case runs.ActionPromote, runs.ActionResume:
					rollback[rev] = false
				}
			default: // a Flagger event with rev as its checksum
				_, err := rs.Event(ctx, "caiso", "lmp", rev, "Progressing")
				require.NoError(t, err)
			}
			for r, want := range rollback {
				_, got := rs.RollbackLatch("caiso", "lmp", r)
				require.Equal(t, want, got, "rollback latch of %s", r)
			}
		}
	})
}

// FuzzAlerts delivers alerts with any labels, annotations, fingerprints
// and statuses: none may panic, and every latch reason stays within
// MaxReason, cut on a rune boundary.
func FuzzAlerts(f *testing.F) {
	f.Add("firing", "critical", "lmp", "f1", "too many 5xx")
	f.Add("resolved", "warning", "lmp-canary", "", "")
	f.Add("firing", "critical", "lmp", "", strings.Repeat("é", 800))
	f.Fuzz(func(t *testing.T, status, severity, app, fingerprint, summary string) {
		rs, set, ev, _ := fuzzRuns(t)
		ctx := context.Background()
		pol, err := set.Get("ingest")
		require.NoError(t, err)
		_, err = rs.Analyze(ctx, ev, pol, runs.Ref{Namespace: "caiso", Name: "lmp", Revision: "r1"},
			map[string]string{"namespace": "caiso", "name": "lmp"}, time.Time{}, runs.OriginArgo)
		require.NoError(t, err)
		_, err = rs.Alerts(ctx, set, []runs.Alert{{Status: status, Fingerprint: fingerprint,
			Labels:      map[string]string{"severity": severity, "app": app, "alertname": summary},
			Annotations: map[string]string{"summary": summary}}})
		require.NoError(t, err)
		run, err := rs.Get("caiso", "lmp", "r1")
		require.NoError(t, err)
		for _, l := range run.Latches {
			require.LessOrEqual(t, len(l.Reason), runs.MaxReason)
			if utf8.ValidString(summary) {
				require.True(t, utf8.ValidString(l.Reason), "cut on a rune boundary")
			}
		}
	})
}
