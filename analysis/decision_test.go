package analysis

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDecisionRules runs a policy's own decision rules at fixed times: a
// stricter error threshold during MISO market hours (Central time).
func TestDecisionRules(t *testing.T) {
	pol := loadPolicy(t, "testdata/market-hours.yaml", "market-hours")
	chicago, err := time.LoadLocation("America/Chicago")
	require.NoError(t, err)
	tests := []struct {
		name      string
		at        time.Time
		errorRate float64
		verdict   Verdict
		decision  Decision
		decisions []string
		reason    string
	}{
		{name: "market hours, above the strict threshold", at: time.Date(2026, 11, 25, 10, 0, 0, 0, chicago), errorRate: 0.005,
			verdict: VerdictFail, decision: DecisionRollback, decisions: []string{"strict-during-market-hours"},
			reason: "decision rule strict-during-market-hours holds (weekday >= 1 && weekday <= 5 && hour >= 7 && hour < 19 && error_rate > 0.002)"},
		{name: "same rate at night passes", at: time.Date(2026, 11, 25, 22, 0, 0, 0, chicago), errorRate: 0.005,
			verdict: VerdictPass, decision: DecisionContinue},
		{name: "same rate on Saturday passes", at: time.Date(2026, 11, 28, 10, 0, 0, 0, chicago), errorRate: 0.005,
			verdict: VerdictPass, decision: DecisionContinue},
		{name: "the time zone is the policy's: 16:00 UTC is 10:00 in Chicago", at: time.Date(2026, 11, 25, 16, 0, 0, 0, time.UTC), errorRate: 0.005,
			verdict: VerdictFail, decision: DecisionRollback, decisions: []string{"strict-during-market-hours"}},
		{name: "a pause rule", at: time.Date(2026, 11, 28, 15, 10, 0, 0, chicago), errorRate: 0.0015,
			verdict: VerdictInconclusive, decision: DecisionPause, decisions: []string{"hold-at-the-close"}},
		{name: "the policy's rules still fail on their own", at: time.Date(2026, 11, 28, 3, 0, 0, 0, chicago), errorRate: 0.02,
			verdict: VerdictFail, decision: DecisionRollback, reason: "error-rate: 0.02 > 0.01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Decide(pol, map[string]string{"name": "lmp"}, results(t, pol, map[string]any{"error_rate": tt.errorRate}), tt.at)
			require.Equal(t, tt.verdict, res.Verdict, res.Reason)
			require.Equal(t, tt.decision, res.Decision)
			require.Equal(t, tt.decisions, res.Decisions)
			if tt.reason != "" {
				require.Equal(t, tt.reason, res.Reason)
			}
		})
	}
	// Without data, a decision rule does not apply.
	res := Decide(pol, map[string]string{"name": "lmp"}, results(t, pol, map[string]any{"error_rate": nil}), time.Date(2026, 11, 25, 10, 0, 0, 0, chicago))
	require.Empty(t, res.Decisions)
	require.Equal(t, VerdictInconclusive, res.Verdict)
}
