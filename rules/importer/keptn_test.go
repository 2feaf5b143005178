package importer_test

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/rules/importer"
)

// TestKeptnScoring: the imported AnalysisDefinition scores as Keptn
// documents its scoring: an objective passing gives its weight, one on its
// warning target half of it, one on its failure target nothing; a failed
// key objective fails the analysis; the total in percent passes at
// passPercentage and warns (inconclusive) at warningPercentage.
func TestKeptnScoring(t *testing.T) {
	file := "testdata/keptn/analysis.yaml"
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	var objs importer.KeptnObjects
	_, err = importer.DecodeKeptn(file, data, &objs)
	require.NoError(t, err)
	docs, _, err := importer.FromKeptn(objs)
	require.NoError(t, err)
	require.Len(t, docs, 1)
	pol, err := docs[0].Check()
	require.NoError(t, err)
	for _, tc := range []struct {
		name        string
		p95, errors float64
		score       float64
		verdict     analysis.Verdict
	}{
		{"both pass", 100, 0, 1, analysis.VerdictPass},
		{"latency warns", 400, 0, 0.75, analysis.VerdictInconclusive},
		{"latency on the warning bound", 600, 0, 0.75, analysis.VerdictInconclusive},
		{"latency fails", 700, 0, 0.5, analysis.VerdictFail},
		{"the key objective fails", 100, 1, 0.5, analysis.VerdictFail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			qs := make(analysis.QueryResults, len(pol.Queries))
			for i, q := range pol.Queries {
				v := tc.p95
				if q.Name == "error_rate" {
					v = tc.errors
				}
				qs[i] = analysis.NewQueryResult(q, "", queries.Result{Samples: []queries.Sample{{Value: v}}}, nil)
			}
			res := analysis.Decide(pol, map[string]string{"workload": "svc1"}, qs, time.Unix(0, 0))
			require.Equal(t, tc.verdict, res.Verdict, res.Reason)
			require.InDelta(t, tc.score, res.Score, 1e-9, res.Reason)
		})
	}
}
