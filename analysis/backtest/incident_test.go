package backtest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/queries/embedded"
	"github.com/aurum/canary/rules"
)

// countingSource counts the queries that reach a real source.
type countingSource struct {
	src queries.Source
	n   atomic.Int64
}

func (c *countingSource) Query(ctx context.Context, q queries.Query) (queries.Result, error) {
	c.n.Add(1)
	return c.src.Query(ctx, q)
}

// TestBacktestIncident replays caiso-canary over a recorded incident with
// Prometheus's own PromQL engine: from 09:40 three in a hundred fetches of
// the canary fail.
func TestBacktestIncident(t *testing.T) {
	engine, sf, err := embedded.LoadFile("testdata/caiso-incident.yaml")
	require.NoError(t, err)
	t.Cleanup(func() { _ = engine.Close() })
	set, err := rules.Load("testdata/caiso.yaml")
	require.NoError(t, err)
	pol, err := set.Get("caiso-canary")
	require.NoError(t, err)
	params := map[string]string{"namespace": "caiso", "name": "lmp-ingest"}
	src := &countingSource{src: engine}
	sources := queries.Registry{{Kind: rules.KindPrometheus}: src}

	tl, err := Run(t.Context(), sources, pol, params, sf.Start, sf.End(), time.Minute)
	require.NoError(t, err)
	require.Len(t, tl.Points, 91)
	require.Equal(t, 3, tl.Queries)
	require.EqualValues(t, 3, src.n.Load(), "one range query per policy query, not one per step")

	// The errors start at 09:40, but the policy fails at 09:41. The rule
	// reads rate(...[5m]) over the 5 samples in (t-5m, t]. At 09:40 the
	// window holds one minute of errors: the 5xx counter reads 0, 0, 0, 0,
	// 3. Its increase, 3, is not extrapolated to the window's start
	// because the counter would have been below zero there, while the
	// total's 397 over the 4 sampled minutes is extrapolated by 5/4 to
	// 496.25, plus the 3 errors: 3/499.25 = 0.6%, which passes. At 09:41
	// the window holds two minutes of errors: 6/498.5 = 1.2% > 1%.
	at := func(m int) time.Time { return sf.Start.Add(time.Duration(m) * time.Minute) }
	require.Equal(t, at(40), tl.Points[40].At)
	errRate := tl.Points[40].Rules[0]
	require.Equal(t, rules.OutcomePass, errRate.Verdict)
	require.InDelta(t, 3/499.25, float64(*errRate.Value), 1e-12)
	require.NotNil(t, tl.FirstFailure)
	require.Equal(t, at(41), tl.FirstFailure.At)
	require.InDelta(t, 6/498.5, float64(*tl.FirstFailure.Rules[0].Value), 1e-12)
	require.Equal(t, "error-rate: 0.01204 > 0.01", tl.FirstFailure.Reason)
	require.Equal(t, analysis.DecisionRollback, tl.FirstFailure.Decision)

	span := func(v analysis.Verdict, rule string, from, to int) Span {
		return Span{Rule: rule, Verdict: v, From: at(from), To: at(to), Steps: to - from + 1}
	}
	require.Equal(t, []Span{
		// 09:00 has one sample, no rate; the last-success gauge is
		// exported from 09:03.
		span(analysis.VerdictInconclusive, "", 0, 2),
		span(analysis.VerdictPass, "", 3, 40),
		span(analysis.VerdictFail, "", 41, 90),
	}, tl.Spans)
	require.Equal(t, []Span{
		span("", "error-rate", 0, 0),
		span("", "publishing", 0, 0),
		span("", "freshness", 0, 2),
	}, tl.NoData)
	require.Empty(t, tl.Flapping)

	// Every step agrees with a live evaluation at that time, which sends
	// instant queries, and a range query over 10m at 30s for publishing.
	live := analysis.NewEvaluator(analysis.Options{Sources: sources})
	for _, p := range tl.Points {
		res, err := live.Evaluate(t.Context(), pol, params, p.At)
		require.NoError(t, err)
		require.Equal(t, res.Verdict, p.Verdict, "at %s", p.At)
		require.Equal(t, res.Reason, p.Reason, "at %s", p.At)
		require.Equal(t, res.Rules, p.Rules, "at %s", p.At)
	}
}
