package analysis

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/rules"
)

// BenchmarkDecide10Rules measures evaluating a 10-rule policy once its query
// results are in: the engine's own cost per analysis, without I/O.
func BenchmarkDecide10Rules(b *testing.B) {
	set, err := rules.Load("testdata/ten-rules.yaml")
	require.NoError(b, err)
	pol, err := set.Get("ten-rules")
	require.NoError(b, err)
	params, err := pol.ResolveParams(map[string]string{"namespace": "caiso", "name": "lmp-ingest"})
	require.NoError(b, err)
	values := map[string]float64{
		"error_rate": 0.004, "baseline_error_rate": 0.003, "p99_ms": 220, "baseline_p99_ms": 200,
		"records_per_s": 950, "baseline_records_per_s": 1000, "staleness_s": 45, "lag": 120,
		"cpu": 1.2, "restarts": 0,
	}
	qs := make(QueryResults, len(pol.Queries))
	for i, q := range pol.Queries {
		qs[i] = QueryResult{Name: q.Name, Kind: q.Kind, Value: floatPtr(values[q.Name]), Series: 1}
	}
	at := time.Unix(1_700_000_000, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res := Decide(pol, params, qs, at)
		if res.Verdict != VerdictPass {
			b.Fatalf("verdict %s: %s", res.Verdict, res.Reason)
		}
	}
}
