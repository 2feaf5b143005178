package backtest

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/rules"
)

var update = flag.Bool("update", false, "rewrite golden files")

// base is the start of every synthetic window.
var base = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

const replayPolicy = `
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: replay}
spec:
  params:
    name: {}
  queries:
    errors: {prometheus: 'errors{app="{{ .name }}"}'}
    latency: {prometheus: 'latency{app="{{ .name }}"}'}
    trend: {prometheus: 'trend{app="{{ .name }}"}', range: 10m, step: 1m}
    odd: {prometheus: 'odd{app="{{ .name }}"}', range: 5m, step: 45s}
    zones: {prometheus: 'zones{app="{{ .name }}"}', maxSeries: 3}
    lag: {kafka: {group: 'g-{{ .name }}'}}
  rules:
    - {name: error-rate, expr: errors <= 0.01, critical: true}
    - {name: latency, expr: latency < 300}
    - {name: trend, expr: 'max(trend) - min(trend) >= 9'}
    - {name: odd, expr: 'len(odd) >= 6'}
    - {name: zones, expr: 'all(zones, .value < 600)'}
    - {name: lag, expr: lag < 1000}
`

func policy(t testing.TB, doc string) *rules.Policy {
	t.Helper()
	pols, err := rules.Parse("test.yaml", []byte(doc))
	require.NoError(t, err)
	require.Len(t, pols, 1)
	return pols[0]
}

// replaySource feeds replayPolicy for app "a": series with gaps, spikes
// and a zone that comes and goes. The first failure is trend's, at minute
// 30.
func replaySource() *fakeSource {
	zone := func(name string, fn func(m float64) (float64, bool)) fakeSeries {
		s := minutes(base, fn)
		s.labels = map[string]string{"zone": name}
		return s
	}
	return &fakeSource{series: map[string][]fakeSeries{
		`errors{app="a"}`: {minutes(base, func(m float64) (float64, bool) {
			switch {
			case m >= 10 && m < 15:
				return 0, false
			case m >= 50:
				return 0.05, true
			}
			return 0.001 * m / 60, true
		})},
		`latency{app="a"}`: {minutes(base, func(m float64) (float64, bool) { return 200 + 20*math.Sin(m), true })},
		`trend{app="a"}`: {minutes(base, func(m float64) (float64, bool) {
			// A gap at either end of the window shortens it: max-min
			// drops below 9 at minutes 30-32 and 39-41.
			if m >= 30 && m < 33 {
				return 0, false
			}
			return m, true
		})},
		`odd{app="a"}`: {minutes(base, func(m float64) (float64, bool) {
			return m, int(m*4)%7 != 0 // every 15s grid point, with holes
		})},
		`zones{app="a"}`: {
			zone("AECO", func(m float64) (float64, bool) { return 30, true }),
			zone("BGE", func(m float64) (float64, bool) {
				if m >= 60 && m < 65 {
					return 900, true
				}
				return 30, m < 40 || m >= 45
			}),
		},
	}}
}

// TestRunQueriesOncePerQuery checks that each prometheus query is sent
// once, as a range query over the whole window, and nothing else is.
func TestRunQueriesOncePerQuery(t *testing.T) {
	pol := policy(t, replayPolicy)
	src := replaySource()
	from, to := base, base.Add(2*time.Hour)
	tl, err := Run(t.Context(), src.registry(), pol, map[string]string{"name": "a"}, from, to, time.Minute)
	require.NoError(t, err)
	require.Len(t, tl.Points, 121)
	require.Equal(t, 5, tl.Queries)

	calls := map[string]queries.Query{}
	for _, q := range src.queries() {
		require.NotContains(t, calls, q.Text, "query sent twice")
		calls[q.Text] = q
	}
	require.Len(t, calls, 5)
	tests := []struct {
		name  string
		text  string
		rng   time.Duration // the window and the lead before its first step
		step  time.Duration
		first time.Time // the first point the source answers with
	}{
		{name: "instant query: a point per step", text: `errors{app="a"}`, rng: 2*time.Hour + time.Minute, step: time.Minute, first: from},
		{name: "multi-series instant query", text: `zones{app="a"}`, rng: 2*time.Hour + time.Minute, step: time.Minute, first: from},
		{name: "range query: its range before the first step", text: `trend{app="a"}`, rng: 2*time.Hour + 10*time.Minute, step: time.Minute, first: from.Add(-9 * time.Minute)},
		{name: "range query at a step the backtest's is not a multiple of", text: `odd{app="a"}`, rng: 2*time.Hour + 5*time.Minute, step: 15 * time.Second, first: from.Add(-5*time.Minute + 15*time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, ok := calls[tt.text]
			require.True(t, ok)
			require.Equal(t, to, q.Time)
			require.Equal(t, tt.rng, q.Range)
			require.Equal(t, tt.step, q.Step)
			require.Equal(t, tt.first, q.Time.Add(-((q.Range-1)/q.Step)*q.Step))
		})
	}
}

// TestRunMatchesLiveEvaluation replays the policy and evaluates it live,
// with an instant (or range) query per step, at every step: both must see
// the same values and reach the same outcomes.
func TestRunMatchesLiveEvaluation(t *testing.T) {
	pol := policy(t, replayPolicy)
	src := replaySource()
	params := map[string]string{"name": "a"}
	tl, err := Run(t.Context(), src.registry(), pol, params, base, base.Add(90*time.Minute), time.Minute)
	require.NoError(t, err)

	live := analysis.NewEvaluator(analysis.Options{Sources: src.registry()})
	verdicts := map[rules.Outcome]int{}
	for _, p := range tl.Points {
		res, err := live.Evaluate(t.Context(), pol, params, p.At)
		require.NoError(t, err)
		require.Equal(t, res.Verdict, p.Verdict, "at %s", p.At)
		require.Equal(t, res.Decision, p.Decision, "at %s", p.At)
		for i, want := range res.Rules {
			got := p.Rules[i]
			if want.Name == "lag" {
				// Live, the kafka query fails for want of a cluster; the
				// replay says why it cannot ask.
				require.Equal(t, rules.OutcomeError, got.Verdict)
				continue
			}
			require.Equal(t, want.Name, got.Name)
			require.Equal(t, want.Verdict, got.Verdict, "%s at %s", want.Name, p.At)
			require.Equal(t, want.Reason, got.Reason, "%s at %s", want.Name, p.At)
			require.Equal(t, want.Value, got.Value, "%s at %s", want.Name, p.At)
			require.Equal(t, want.Threshold, got.Threshold, "%s at %s", want.Name, p.At)
			verdicts[got.Verdict]++
		}
	}
	// The data must exercise every outcome, or the comparison proves little.
	for _, o := range []rules.Outcome{rules.OutcomePass, rules.OutcomeFail, rules.OutcomeInconclusive} {
		require.Positive(t, verdicts[o], "no rule was %s", o)
	}
}

// TestRunComparisons replays a policy's statistical comparisons: their
// canary and baseline range queries are asked once each, and every step
// compares the same samples a live evaluation would.
func TestRunComparisons(t *testing.T) {
	pol := policy(t, `
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: judged}
spec:
  params:
    app: {}
    track: {default: canary}
  queries:
    errors: {prometheus: 'errors{app="{{ .app }}"}'}
  rules:
    - {name: error-rate, expr: errors < 0.01}
  compare:
    - {name: latency, query: 'lat{app="{{ .app }}",track="{{ .track }}"}', range: 10m, step: 1m, direction: increase, allowedIncrease: 1.1, mustHaveData: true}
`)
	src := &fakeSource{series: map[string][]fakeSeries{
		`errors{app="a"}`:              {constant(0.001)},
		`lat{app="a",track="primary"}`: {minutes(base, func(m float64) (float64, bool) { return 100 + math.Mod(m*7, 5), true })},
		// From minute 30 the canary is 50% slower.
		`lat{app="a",track="canary"}`: {minutes(base, func(m float64) (float64, bool) {
			v := 100 + math.Mod(m*3, 5)
			if m >= 30 {
				v *= 1.5
			}
			return v, true
		})},
	}}
	params := map[string]string{"app": "a"}
	tl, err := Run(t.Context(), src.registry(), pol, params, base, base.Add(time.Hour), time.Minute)
	require.NoError(t, err)
	require.Equal(t, 3, tl.Queries)
	require.Len(t, src.queries(), 3)
	require.Empty(t, tl.NoData)
	require.NotNil(t, tl.FirstFailure)
	require.True(t, tl.FirstFailure.At.After(base.Add(30*time.Minute)), "failed at %s, before the canary slowed down", tl.FirstFailure.At)
	require.True(t, strings.HasPrefix(tl.FirstFailure.Reason, "latency: "), tl.FirstFailure.Reason)

	live := analysis.NewEvaluator(analysis.Options{Sources: src.registry()})
	for _, p := range tl.Points {
		res, err := live.Evaluate(t.Context(), pol, params, p.At)
		require.NoError(t, err)
		require.Equal(t, res.Rules, p.Rules, "at %s", p.At)
	}
}

// TestPlanAt pins how a step's result is cut out of a window's answer.
func TestPlanAt(t *testing.T) {
	at := base.Add(30 * time.Minute)
	grid := func(from, to time.Time, every time.Duration) []queries.Point {
		var pts []queries.Point
		for t := from; !t.After(to); t = t.Add(every) {
			pts = append(pts, queries.Point{Time: t, Value: t.Sub(base).Minutes()})
		}
		return pts
	}
	whole := grid(base, base.Add(time.Hour), 30*time.Second)
	tests := []struct {
		name   string
		query  rules.Query
		series [][]queries.Point
		step   time.Duration
		want   []queries.Sample
	}{
		{name: "instant: the point at the step", query: rules.Query{MaxSeries: 1},
			series: [][]queries.Point{whole}, step: time.Minute,
			want: []queries.Sample{{Labels: map[string]string{"i": "0"}, Value: 30}}},
		{name: "instant: no point at the step is no sample, not the previous point", query: rules.Query{MaxSeries: 1},
			series: [][]queries.Point{grid(base, at.Add(-time.Minute), time.Minute)}, step: time.Minute},
		{name: "instant: only the series with a point at the step", query: rules.Query{MaxSeries: 2},
			series: [][]queries.Point{grid(base, at.Add(-time.Minute), time.Minute), whole}, step: time.Minute,
			want: []queries.Sample{{Labels: map[string]string{"i": "1"}, Value: 30}}},
		{name: "range: (t-range, t], open at its start", query: rules.Query{MaxSeries: 1, Range: 2 * time.Minute, Step: 30 * time.Second},
			series: [][]queries.Point{whole}, step: time.Minute,
			want: []queries.Sample{{Labels: map[string]string{"i": "0"}, Value: 30, Points: grid(at.Add(-90*time.Second), at, 30*time.Second)}}},
		{name: "range: only the points of the query's own step, aligned to t", query: rules.Query{MaxSeries: 1, Range: 3 * time.Minute, Step: time.Minute},
			series: [][]queries.Point{whole}, step: 90 * time.Second,
			want: []queries.Sample{{Labels: map[string]string{"i": "0"}, Value: 30, Points: grid(at.Add(-2*time.Minute), at, time.Minute)}}},
		{name: "range: a series with no point in the window is left out", query: rules.Query{MaxSeries: 2, Range: 2 * time.Minute, Step: 30 * time.Second},
			series: [][]queries.Point{grid(base, at.Add(-2*time.Minute), 30*time.Second), grid(at, at.Add(time.Minute), 30*time.Second)}, step: time.Minute,
			want: []queries.Sample{{Labels: map[string]string{"i": "1"}, Value: 30, Points: grid(at, at, time.Minute)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &plan{query: &tt.query}
			for i, pts := range tt.series {
				p.series = append(p.series, series{labels: map[string]string{"i": string(rune('0' + i))}, points: pts})
			}
			require.Equal(t, tt.want, p.at(at, tt.step).Samples)
		})
	}
}

const summaryPolicy = `
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: summary}
spec:
  queries:
    errors: {prometheus: errors}
    latency: {prometheus: latency}
  rules:
    - {name: error-rate, expr: errors <= 0.01, critical: true}
    - {name: latency, expr: latency < 300}
`

// summarySource: errors spike at minutes 20-22 and for good from 30;
// latency has no data at minutes 5-7.
func summarySource() *fakeSource {
	return &fakeSource{series: map[string][]fakeSeries{
		"errors": {minutes(base, func(m float64) (float64, bool) {
			if (m >= 20 && m < 23) || m >= 30 {
				return 0.05, true
			}
			return 0.001, true
		})},
		"latency": {minutes(base, func(m float64) (float64, bool) { return 120, m < 5 || m >= 8 })},
	}}
}

func summaryTimeline(t *testing.T) *Timeline {
	t.Helper()
	tl, err := Run(t.Context(), summarySource().registry(), policy(t, summaryPolicy), nil, base, base.Add(40*time.Minute), time.Minute)
	require.NoError(t, err)
	return tl
}

func TestTimelineSummary(t *testing.T) {
	tl := summaryTimeline(t)
	at := func(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }
	span := func(v analysis.Verdict, from, to int) Span {
		return Span{Verdict: v, From: at(from), To: at(to), Steps: to - from + 1}
	}
	require.Equal(t, []Span{
		span(analysis.VerdictPass, 0, 4),
		span(analysis.VerdictInconclusive, 5, 7),
		span(analysis.VerdictPass, 8, 19),
		span(analysis.VerdictFail, 20, 22),
		span(analysis.VerdictPass, 23, 29),
		span(analysis.VerdictFail, 30, 40),
	}, tl.Spans)

	require.NotNil(t, tl.FirstFailure)
	require.Equal(t, at(20), tl.FirstFailure.At)
	require.Same(t, &tl.Points[20], tl.FirstFailure)
	require.Equal(t, analysis.DecisionRollback, tl.FirstFailure.Decision)
	require.Equal(t, "error-rate: 0.05 > 0.01", tl.FirstFailure.Reason)

	// error-rate: pass, fail, pass, fail. latency: pass, no data, pass
	// is a gap, not a flap.
	require.Equal(t, []Flap{{Rule: "error-rate", Changes: 3}}, tl.Flapping)
	require.Equal(t, []Span{{Rule: "latency", From: at(5), To: at(7), Steps: 3}}, tl.NoData)
	require.Equal(t, 2, tl.Queries)
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	summaryTimeline(t).WriteText(&b)
	golden(t, "summary.txt", b.String())
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "missing golden file; run go test ./analysis/backtest -update")
	require.Equal(t, string(want), got)
}

func TestTimelineJSON(t *testing.T) {
	data, err := json.Marshal(summaryTimeline(t))
	require.NoError(t, err)
	var raw map[string]any
	require.NoError(t, json.Unmarshal(data, &raw))
	require.Equal(t, 60.0, raw["stepSeconds"])
	require.NotContains(t, raw, "step")
	require.Equal(t, "2026-11-26T09:20:00Z", raw["firstFailure"].(map[string]any)["at"])
	require.Len(t, raw["points"], 41)
	require.Equal(t, 2.0, raw["queries"])
}

// TestRunNotReplayable covers the queries a replay cannot ask.
func TestRunNotReplayable(t *testing.T) {
	t.Run("rules reading them are errors", func(t *testing.T) {
		tl, err := Run(t.Context(), replaySource().registry(), policy(t, replayPolicy), map[string]string{"name": "a"}, base, base.Add(5*time.Minute), time.Minute)
		require.NoError(t, err)
		for _, p := range tl.Points {
			lag := p.Rules[5]
			require.Equal(t, "lag", lag.Name)
			require.Equal(t, rules.OutcomeError, lag.Verdict)
			require.Equal(t, "query lag failed: kafka queries cannot be replayed over history", lag.Reason)
		}
		require.Contains(t, tl.Notes, "query lag: kafka queries cannot be replayed over history; rule lag is error at every step")
	})
	t.Run("a policy with only such rules is refused", func(t *testing.T) {
		pol := policy(t, `
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: probes}
spec:
  queries:
    lag: {kafka: {group: g}}
    api: {http: {url: "http://api:8080/healthz"}}
  rules:
    - {name: lag, expr: lag < 1000}
    - {name: api, expr: api.up == 1 && lag < 10}
`)
		src := &fakeSource{}
		_, err := Run(t.Context(), src.registry(), pol, nil, base, base.Add(time.Hour), time.Minute)
		require.ErrorIs(t, err, ErrNotReplayable)
		require.EqualError(t, err, `policy "probes": every rule reads a kafka or http query, and those cannot be replayed over history`)
		require.Empty(t, src.queries())
	})
}

func TestRunErrors(t *testing.T) {
	pol := policy(t, replayPolicy)
	unavailable := replaySource()
	unavailable.errs = map[string]error{`latency{app="a"}`: fmt.Errorf("%w: connection refused", queries.ErrUnavailable)}
	tests := []struct {
		name     string
		src      queries.Sources
		params   map[string]string
		from, to time.Time
		step     time.Duration
		is       error
		msg      string
	}{
		{name: "bad params", src: replaySource().registry(), params: map[string]string{"name": `x"}`},
			from: base, to: base.Add(time.Hour), step: time.Minute, is: rules.ErrInvalidParams},
		{name: "missing params", src: replaySource().registry(), from: base, to: base.Add(time.Hour), step: time.Minute,
			is: rules.ErrInvalidParams, msg: `param "name": is required`},
		{name: "source down", src: unavailable.registry(), params: map[string]string{"name": "a"},
			from: base, to: base.Add(time.Hour), step: time.Minute, is: queries.ErrUnavailable, msg: `query "latency": source unavailable: connection refused`},
		{name: "source not configured", src: queries.Registry{}, params: map[string]string{"name": "a"},
			from: base, to: base.Add(time.Hour), step: time.Minute, is: queries.ErrUnknownSource, msg: `no prometheus source "default" is configured`},
		{name: "end before start", src: replaySource().registry(), params: map[string]string{"name": "a"},
			from: base, to: base.Add(-time.Minute), step: time.Minute, msg: "backtest ends (2026-11-26T08:59:00Z) before it starts (2026-11-26T09:00:00Z)"},
		{name: "no step", src: replaySource().registry(), params: map[string]string{"name": "a"},
			from: base, to: base.Add(time.Hour), msg: "backtest step must be positive, got 0s"},
		{name: "too many steps", src: replaySource().registry(), params: map[string]string{"name": "a"},
			from: base, to: base.Add(60 * 24 * time.Hour), step: time.Minute, msg: "backtest of 86401 steps: at most 50000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(t.Context(), tt.src, pol, tt.params, tt.from, tt.to, tt.step)
			require.Error(t, err)
			if tt.is != nil {
				require.ErrorIs(t, err, tt.is)
			}
			require.Contains(t, err.Error(), tt.msg)
		})
	}
}

// TestRunBadQuery: a query the source rejects is a policy bug; its rules
// are error at every step, as live, and the others still replay.
func TestRunBadQuery(t *testing.T) {
	src := replaySource()
	src.errs = map[string]error{`latency{app="a"}`: fmt.Errorf("%w: parse error", queries.ErrBadQuery)}
	tl, err := Run(t.Context(), src.registry(), policy(t, replayPolicy), map[string]string{"name": "a"}, base, base.Add(10*time.Minute), time.Minute)
	require.NoError(t, err)
	for _, p := range tl.Points {
		require.Equal(t, rules.OutcomeError, p.Rules[1].Verdict)
		require.Equal(t, "query latency failed: bad query: parse error", p.Rules[1].Reason)
		require.Equal(t, rules.OutcomePass, p.Rules[2].Verdict)
	}
	require.Contains(t, tl.Notes, "query latency failed: bad query: parse error")
}

func TestRunCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := Run(ctx, replaySource().registry(), policy(t, replayPolicy), map[string]string{"name": "a"}, base, base.Add(time.Hour), time.Minute)
	require.ErrorIs(t, err, context.Canceled)
}

// TestRunSplitsLongWindows: a window with more points per series than
// Prometheus serves is asked in pieces, which join without a seam.
func TestRunSplitsLongWindows(t *testing.T) {
	pol := policy(t, `
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: long}
spec:
  queries:
    secs: {prometheus: secs}
    recent: {prometheus: recent, range: 1m, step: 1s}
  rules:
    - {name: secs, expr: secs >= 0}
    - {name: recent, expr: 'len(recent) == 60 && last(recent) == secs && first(recent) == secs - 59'}
`)
	seconds := func(t time.Time) (float64, bool) { return t.Sub(base).Seconds(), true }
	src := &fakeSource{series: map[string][]fakeSeries{
		"secs":   {{labels: map[string]string{}, value: seconds}},
		"recent": {{labels: map[string]string{}, value: seconds}},
	}}
	to := base.Add(12_000 * time.Second)
	tl, err := Run(t.Context(), src.registry(), pol, nil, base, to, time.Second)
	require.NoError(t, err)
	require.Len(t, tl.Points, 12_001)
	require.Equal(t, 4, tl.Queries)
	for _, q := range src.queries() {
		require.LessOrEqual(t, int(q.Range/q.Step), maxPoints)
	}
	for _, p := range tl.Points {
		require.Equal(t, analysis.VerdictPass, p.Verdict, "%s: %s", p.At, p.Reason)
		require.Equal(t, analysis.Float(p.At.Sub(base).Seconds()), *p.Rules[0].Value)
	}
}

// TestChart checks that the SVG is well-formed XML and labels every rule,
// and that the page embeds it with the text timeline.
func TestChart(t *testing.T) {
	tl, err := Run(t.Context(), replaySource().registry(), policy(t, replayPolicy), map[string]string{"name": "a"}, base, base.Add(90*time.Minute), time.Minute)
	require.NoError(t, err)
	require.NotNil(t, tl.FirstFailure)

	var svg bytes.Buffer
	require.NoError(t, tl.WriteSVG(&svg))
	texts := svgTexts(t, svg.Bytes())
	for _, name := range []string{"error-rate", "latency", "trend", "odd", "zones", "lag", "verdict"} {
		require.Contains(t, texts, name)
	}
	require.Contains(t, texts, "first failure 09:30 UTC")
	require.Contains(t, texts, "threshold 0.01")
	require.Contains(t, svg.String(), `stroke-dasharray="5 4"`)

	var page bytes.Buffer
	require.NoError(t, tl.WriteHTML(&page))
	require.True(t, strings.HasPrefix(page.String(), "<!DOCTYPE html>"))
	require.Contains(t, page.String(), "<svg ")
	require.Contains(t, page.String(), "first failure with data at 2026-11-26T09:30:00Z")
	require.NotContains(t, page.String(), "<script")
	require.NotRegexp(t, `(src|href)=`, page.String(), "the page must be self-contained")
}

// svgTexts decodes an SVG document and returns the content of its text
// elements (tspans joined to their text).
func svgTexts(t *testing.T, data []byte) []string {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(data))
	var (
		texts []string
		cur   *strings.Builder
		depth int
		root  string
	)
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
				require.Equal(t, "http://www.w3.org/2000/svg", tok.Name.Space)
			}
			if tok.Name.Local == "text" {
				cur = &strings.Builder{}
				depth = 0
			} else if cur != nil {
				depth++
			}
		case xml.EndElement:
			if cur == nil {
				continue
			}
			if depth > 0 {
				depth--
				if depth == 0 {
					cur.WriteByte(' ')
				}
				continue
			}
			texts = append(texts, strings.TrimSpace(cur.String()))
			cur = nil
		case xml.CharData:
			if cur != nil {
				cur.Write(tok)
			}
		}
	}
	require.Equal(t, "svg", root)
	// The name of a rule is its panel label's first word.
	var out []string
	for _, s := range texts {
		out = append(out, s)
		if name, _, ok := strings.Cut(s, " "); ok {
			out = append(out, name)
		}
	}
	return out
}

// TestDryRunJudgedByWhatItWouldDecide: a dry-run policy answers pass live,
// but a backtest asks when it would have failed. Its timeline is the one
// the same policy gives live, marked as a dry run, and dry-run rules of a
// live policy are judged as if they counted.
func TestDryRunJudgedByWhatItWouldDecide(t *testing.T) {
	live := summaryTimeline(t)
	tests := []struct {
		name string
		doc  string
	}{
		{name: "dry-run policy", doc: strings.Replace(summaryPolicy, "spec:\n", "spec:\n  dryRun: true\n", 1)},
		{name: "dry-run rules", doc: strings.ReplaceAll(summaryPolicy, "expr: errors <= 0.01, critical: true}", "expr: errors <= 0.01, critical: true, dryRun: true}")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl, err := Run(t.Context(), summarySource().registry(), policy(t, tt.doc), nil, base, base.Add(40*time.Minute), time.Minute)
			require.NoError(t, err)
			require.True(t, tl.DryRun)
			require.False(t, live.DryRun)
			require.Len(t, tl.Points, len(live.Points))
			for i, p := range tl.Points {
				require.Equal(t, live.Points[i].Verdict, p.Verdict, "step %d", i)
				require.Equal(t, live.Points[i].Decision, p.Decision, "step %d", i)
				require.Equal(t, live.Points[i].Reason, p.Reason, "step %d", i)
			}
			require.Equal(t, live.Spans, tl.Spans)
			require.NotNil(t, tl.FirstFailure)
			require.Equal(t, live.FirstFailure.At, tl.FirstFailure.At)
			var b bytes.Buffer
			tl.WriteText(&b)
			require.Contains(t, b.String(), "\ndry run: each step as the policy would have decided with its dry-run parts live\n")
		})
	}
}
