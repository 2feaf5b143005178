package backtest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/rules"
)

// memorySource answers range queries with a constant series per query
// text, from points built once, and counts the queries it gets.
type memorySource struct {
	values map[string]float64
	n      atomic.Int64
	cache  map[rangeKey]queries.Result
}

type rangeKey struct {
	text      string
	at        time.Time
	rng, step time.Duration
}

func (m *memorySource) Query(_ context.Context, q queries.Query) (queries.Result, error) {
	m.n.Add(1)
	key := rangeKey{q.Text, q.Time, q.Range, q.Step}
	if res, ok := m.cache[key]; ok {
		return res, nil
	}
	v, ok := m.values[q.Text]
	if !ok || q.Range <= 0 {
		return queries.Result{}, fmt.Errorf("%w: unexpected query %+v", queries.ErrBadQuery, q)
	}
	var pts []queries.Point
	for t := q.Time.Add(-((q.Range - 1) / q.Step) * q.Step); !t.After(q.Time); t = t.Add(q.Step) {
		pts = append(pts, queries.Point{Time: t, Value: v})
	}
	res := queries.Result{Samples: []queries.Sample{{Labels: map[string]string{}, Value: v, Points: pts}}}
	m.cache[key] = res
	return res, nil
}

// BenchmarkBacktest24h replays a 10-rule policy over a day at one-minute
// steps: 1,441 decisions from one range query per policy query.
func BenchmarkBacktest24h(b *testing.B) {
	set, err := rules.Load("../testdata/ten-rules.yaml")
	require.NoError(b, err)
	pol, err := set.Get("ten-rules")
	require.NoError(b, err)
	params := map[string]string{"namespace": "caiso", "name": "lmp-ingest"}
	resolved, err := pol.ResolveParams(params)
	require.NoError(b, err)
	healthy := map[string]float64{
		"error_rate": 0.004, "baseline_error_rate": 0.003, "p99_ms": 220, "baseline_p99_ms": 200,
		"records_per_s": 950, "baseline_records_per_s": 1000, "staleness_s": 45, "lag": 120,
		"cpu": 1.2, "restarts": 0,
	}
	src := &memorySource{values: map[string]float64{}, cache: map[rangeKey]queries.Result{}}
	for _, q := range pol.Queries {
		text, _, err := q.Render(resolved)
		require.NoError(b, err)
		src.values[text] = healthy[q.Name]
	}
	sources := queries.Registry{{Kind: rules.KindPrometheus}: src}
	to := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	from := to.Add(-24 * time.Hour)

	b.ReportAllocs()
	for b.Loop() {
		tl, err := Run(b.Context(), sources, pol, params, from, to, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		if len(tl.Points) != 1441 || tl.FirstFailure != nil || tl.Points[0].Verdict != analysis.VerdictPass {
			b.Fatalf("%d points, first failure %v, verdict %s", len(tl.Points), tl.FirstFailure, tl.Points[0].Verdict)
		}
	}
	perRun := float64(src.n.Load()) / float64(b.N)
	if perRun != float64(len(pol.Queries)) {
		b.Fatalf("%.1f queries per backtest, want %d", perRun, len(pol.Queries))
	}
	b.ReportMetric(perRun, "queries/backtest")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
}
