package analysis

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/rules"
)

func TestDecideRecords(t *testing.T) {
	pol := loadPolicy(t, "testdata/probes.yaml", "probes")
	nan := math.NaN()
	tests := []struct {
		name     string
		api, db  map[string]float64
		outcomes []rules.Outcome
		reasons  []string
	}{
		{
			name:     "healthy",
			api:      map[string]float64{"up": 1, "status": 200, "latency_ms": 12, "value": 3},
			db:       map[string]float64{"up": 1, "latency_ms": 2, "value": 1},
			outcomes: []rules.Outcome{rules.OutcomePass, rules.OutcomePass, rules.OutcomePass},
			reasons:  []string{"api.up=1 latency_ms=12 (holds)", "3 < 100", "1 == 1"},
		},
		{
			name:     "down is a measurement, not missing data",
			api:      map[string]float64{"up": 0, "status": 0, "latency_ms": 2000, "value": nan},
			db:       map[string]float64{"up": 0, "latency_ms": 5000, "value": nan},
			outcomes: []rules.Outcome{rules.OutcomeFail, rules.OutcomeFail, rules.OutcomeFail},
			reasons:  []string{"api.up=0 latency_ms=2000 (does not hold)", "NaN >= 100", "0 != 1"},
		},
		{
			name:     "a NaN field only affects the rules that read it",
			api:      map[string]float64{"up": 1, "status": 200, "latency_ms": 40, "value": nan},
			db:       map[string]float64{"up": 1, "latency_ms": 2, "value": nan},
			outcomes: []rules.Outcome{rules.OutcomePass, rules.OutcomePass, rules.OutcomePass},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			qs := make(QueryResults, len(pol.Queries))
			for i, q := range pol.Queries {
				qs[i] = QueryResult{Name: q.Name, Kind: q.Kind}
			}
			qs[0].setRecord(tt.api)
			qs[1].setRecord(tt.db)
			res := Decide(pol, map[string]string{"name": "x"}, qs, time.Unix(0, 0))
			for i, want := range tt.outcomes {
				require.Equal(t, want, res.Rules[i].Verdict, "%s: %s", res.Rules[i].Name, res.Rules[i].Reason)
				if tt.reasons != nil {
					require.Equal(t, tt.reasons[i], res.Rules[i].Reason)
				}
			}
		})
	}
}
