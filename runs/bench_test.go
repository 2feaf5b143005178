package runs_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs"
	"github.com/aurum/canary/runs/bolt"
)

// BenchmarkTrackedAnalysis is the latency the engine adds to one analysis
// of a tracked run, its source answering from memory: evaluation, the
// run's bookkeeping and the record queued for the store (synced, with the
// default flush interval), one analysis at a time. It reports p50 and p99.
func BenchmarkTrackedAnalysis(b *testing.B) {
	dir := b.TempDir()
	file := filepath.Join(dir, "policies.yaml")
	require.NoError(b, os.WriteFile(file, []byte(runsPolicy), 0o644))
	set, err := rules.Load(file)
	require.NoError(b, err)
	st, err := bolt.Open(filepath.Join(dir, "canary.db"), bolt.Options{})
	require.NoError(b, err)
	b.Cleanup(func() { st.Close() })
	rs, err := runs.New(context.Background(), runs.Options{Store: st})
	require.NoError(b, err)
	src := queries.SourceFunc(func(context.Context, queries.Query) (queries.Result, error) {
		return queries.Result{Samples: []queries.Sample{{Value: 0.002}}}, nil
	})
	ev := analysis.NewEvaluator(analysis.Options{Sources: queries.Registry{{Kind: "prometheus"}: src}})
	pol, err := set.Get("ingest")
	require.NoError(b, err)
	ref := runs.Ref{Namespace: "caiso", Name: "lmp", Revision: "r1"}
	params := map[string]string{"namespace": "caiso", "name": "lmp"}
	ctx := context.Background()
	// The run exists: its first analysis is a new revision, synced.
	_, err = rs.Analyze(ctx, ev, pol, ref, params, time.Time{}, runs.OriginArgo)
	require.NoError(b, err)
	lats := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		a, err := rs.Analyze(ctx, ev, pol, ref, params, time.Time{}, runs.OriginArgo)
		lats = append(lats, time.Since(start))
		if err != nil || a.Verdict != analysis.VerdictPass {
			b.Fatal(err, a)
		}
	}
	b.StopTimer()
	slices.Sort(lats)
	b.ReportMetric(float64(lats[len(lats)/2].Nanoseconds())/1000, "p50-µs")
	b.ReportMetric(float64(lats[len(lats)*99/100].Nanoseconds())/1000, "p99-µs")
}
