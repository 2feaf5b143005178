package embedded

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/aurum/canary/queries"
)

// TestMain checks that Close stops every goroutine the engine starts: a
// long-lived CLI or demo opens and closes engines repeatedly.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var epoch = time.Unix(0, 0).UTC()

func newEngine(t *testing.T, opts Options) *Engine {
	t.Helper()
	e, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	return e
}

// requestSeries is the usual canary fixture: 5% of requests fail.
var requestSeries = []InputSeries{
	{Series: `http_requests_total{job="api",code="200"}`, Values: `0+95x15`},
	{Series: `http_requests_total{job="api",code="500"}`, Values: `0+5x15`},
}

// stored reads back the raw samples of one series, stale markers included,
// which no PromQL query can show.
func stored(t *testing.T, e *Engine, metric string) (ts []int64, vs []float64) {
	t.Helper()
	q, err := e.st.Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	set := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", metric))
	var it chunkenc.Iterator
	for set.Next() {
		it = set.At().Iterator(it)
		for it.Next() == chunkenc.ValFloat {
			tv, v := it.At()
			ts, vs = append(ts, tv), append(vs, v)
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, set.Err())
	return ts, vs
}

func TestLoadNotation(t *testing.T) {
	stale := math.Float64frombits(value.StaleNaN)
	minutes := func(m ...int64) []int64 {
		for i := range m {
			m[i] *= time.Minute.Milliseconds()
		}
		return m
	}
	tests := []struct {
		name    string
		values  string
		wantT   []int64
		wantV   []float64
		wantErr string
	}{
		{name: "increasing", values: "0+10x3", wantT: minutes(0, 1, 2, 3), wantV: []float64{0, 10, 20, 30}},
		{name: "decreasing", values: "10-2x2", wantT: minutes(0, 1, 2), wantV: []float64{10, 8, 6}},
		{name: "repeated", values: "7x2", wantT: minutes(0, 1, 2), wantV: []float64{7, 7, 7}},
		{name: "missing sample", values: "1 _ 3", wantT: minutes(0, 2), wantV: []float64{1, 3}},
		{name: "missing run", values: "1 _x2 4", wantT: minutes(0, 3), wantV: []float64{1, 4}},
		{name: "stale marker", values: "1 stale 3", wantT: minutes(0, 1, 2), wantV: []float64{1, stale, 3}},
		{name: "negative start", values: "-2+1x2", wantT: minutes(0, 1, 2), wantV: []float64{-2, -1, 0}},
		{name: "floats", values: "1.5 -0.25 1e3", wantT: minutes(0, 1, 2), wantV: []float64{1.5, -0.25, 1000}},
		{name: "mixed", values: "0+1x1 _ stale 9", wantT: minutes(0, 1, 3, 4), wantV: []float64{0, 1, stale, 9}},
		{name: "bad notation", values: "1 +", wantErr: `series 0 "x": 1:6: parse error: unexpected end of input in series values`},
		{name: "word", values: "one", wantErr: `series 0 "x": 1:3: parse error`},
		{name: "empty values", values: "", wantErr: `series 0 "x": values are empty`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, Options{})
			err := e.Load(epoch, time.Minute, []InputSeries{{Series: "x", Values: tc.values}})
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			ts, vs := stored(t, e, "x")
			require.Equal(t, tc.wantT, ts)
			require.Len(t, vs, len(tc.wantV))
			for i, want := range tc.wantV {
				if value.IsStaleNaN(want) {
					require.True(t, value.IsStaleNaN(vs[i]), "sample %d is %v, want a stale marker", i, vs[i])
					continue
				}
				require.Equal(t, want, vs[i], "sample %d", i)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name     string
		interval time.Duration
		series   []InputSeries
		want     string
	}{
		{
			name:     "every bad series is named",
			interval: time.Minute,
			series: []InputSeries{
				{Series: `ok`, Values: `1`},
				{Series: `foo{a="b"`, Values: `1`},
				{Series: `bar`, Values: `1 x`},
			},
			want: `series 1 "foo{a=\"b\"": 1:11: parse error: unexpected character inside braces: '1'` + "\n" +
				`series 2 "bar": 1:7: parse error: unexpected "x"`,
		},
		{
			name:     "duplicate series",
			interval: time.Minute,
			series:   []InputSeries{{Series: `a{x="1"}`, Values: `1`}, {Series: `a{x="1"}`, Values: `2`}},
			want:     `series 1 "a{x=\"1\"}": same series as series 0`,
		},
		{
			name:     "no labels",
			interval: time.Minute,
			series:   []InputSeries{{Series: `{}`, Values: `1`}},
			want:     `series 0 "{}": `,
		},
		{
			name:     "zero interval",
			interval: 0,
			series:   []InputSeries{{Series: `a`, Values: `1`}},
			want:     `load: interval must be positive, got 0s`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, Options{})
			err := e.Load(epoch, tc.interval, tc.series)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestLoadIsAllOrNothing(t *testing.T) {
	e := newEngine(t, Options{})
	require.NoError(t, e.Load(epoch.Add(10*time.Minute), time.Minute, []InputSeries{{Series: `b`, Values: `1`}}))
	// a is fine, but b's first sample is older than the one already stored.
	err := e.Load(epoch, time.Minute, []InputSeries{{Series: `a`, Values: `1 2`}, {Series: `b`, Values: `3`}})
	require.ErrorContains(t, err, `series 1 "b": sample 0 at 1970-01-01T00:00:00Z: out of order sample`)
	ts, _ := stored(t, e, "a")
	require.Empty(t, ts, "the failed load must not leave series a behind")
}

func TestQueryInstant(t *testing.T) {
	e := newEngine(t, Options{})
	require.NoError(t, e.Load(epoch, time.Minute, requestSeries))
	require.NoError(t, e.Load(epoch, time.Minute, []InputSeries{{Series: `queue_depth`, Values: `0+1x10`}}))
	at := epoch.Add(10 * time.Minute)

	tests := []struct {
		name  string
		query string
		want  []queries.Sample
	}{
		{
			name:  "error ratio",
			query: `sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))`,
			want:  []queries.Sample{{Labels: map[string]string{}, Value: 0.05}},
		},
		{
			name:  "vector with labels",
			query: `http_requests_total`,
			want: []queries.Sample{
				{Labels: map[string]string{"__name__": "http_requests_total", "job": "api", "code": "200"}, Value: 950},
				{Labels: map[string]string{"__name__": "http_requests_total", "job": "api", "code": "500"}, Value: 50},
			},
		},
		{
			name:  "aggregation keeps grouping labels",
			query: `sum by (code) (increase(http_requests_total[5m]))`,
			// Samples at 6m..10m span 4m; increase extrapolates to the 5m
			// window: 4*95 * 5/4 = 475.
			want: []queries.Sample{
				{Labels: map[string]string{"code": "200"}, Value: 475},
				{Labels: map[string]string{"code": "500"}, Value: 25},
			},
		},
		{
			name:  "scalar",
			query: `scalar(sum(queue_depth)) * 2`,
			want:  []queries.Sample{{Labels: map[string]string{}, Value: 20}},
		},
		{
			name:  "no data",
			query: `absent_metric`,
			want:  []queries.Sample{},
		},
		{
			name:  "at modifier",
			query: `queue_depth @ 120`,
			want:  []queries.Sample{{Labels: map[string]string{"__name__": "queue_depth"}, Value: 2}},
		},
		{
			name:  "range selector gives points",
			query: `queue_depth[3m]`,
			// The range is left-open: (7m, 10m].
			want: []queries.Sample{{
				Labels: map[string]string{"__name__": "queue_depth"},
				Value:  10,
				Points: []queries.Point{
					{Time: epoch.Add(8 * time.Minute), Value: 8},
					{Time: epoch.Add(9 * time.Minute), Value: 9},
					{Time: epoch.Add(10 * time.Minute), Value: 10},
				},
			}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.Query(t.Context(), queries.Query{Text: tc.query, Time: at})
			require.NoError(t, err)
			require.Empty(t, res.Warnings)
			sortSamples(res.Samples)
			require.Equal(t, tc.want, res.Samples)
		})
	}
}

// TestStaleness checks that a stale marker ends a series at once, where a
// missing sample leaves the previous value visible for the lookback delta.
func TestStaleness(t *testing.T) {
	e := newEngine(t, Options{})
	require.NoError(t, e.Load(epoch, time.Minute, []InputSeries{
		{Series: `gone`, Values: `1 stale`},
		{Series: `kept`, Values: `1 _`},
	}))
	tests := []struct {
		name  string
		query string
		want  int
	}{
		{name: "stale marker hides the series", query: `gone`, want: 0},
		{name: "missing sample does not", query: `kept`, want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.Query(t.Context(), queries.Query{Text: tc.query, Time: epoch.Add(90 * time.Second)})
			require.NoError(t, err)
			require.Len(t, res.Samples, tc.want)
		})
	}
}

// sortSamples orders samples by their rendered labels: the engine does not
// sort instant vectors.
func sortSamples(s []queries.Sample) {
	slices.SortFunc(s, func(a, b queries.Sample) int {
		return strings.Compare(fmt.Sprint(a.Labels), fmt.Sprint(b.Labels))
	})
}

func TestQueryRange(t *testing.T) {
	e := newEngine(t, Options{})
	require.NoError(t, e.Load(epoch, time.Minute, requestSeries))
	end := epoch.Add(10 * time.Minute)

	tests := []struct {
		name  string
		query queries.Query
		want  []queries.Point
	}{
		{
			name:  "points in (end-range, end], oldest first",
			query: queries.Query{Text: `sum(http_requests_total)`, Time: end, Range: 3 * time.Minute, Step: time.Minute},
			want: []queries.Point{
				{Time: epoch.Add(8 * time.Minute), Value: 800},
				{Time: epoch.Add(9 * time.Minute), Value: 900},
				{Time: epoch.Add(10 * time.Minute), Value: 1000},
			},
		},
		{
			name:  "step not dividing the range stays aligned to end",
			query: queries.Query{Text: `sum(http_requests_total)`, Time: end, Range: 5 * time.Minute, Step: 2 * time.Minute},
			want: []queries.Point{
				{Time: epoch.Add(6 * time.Minute), Value: 600},
				{Time: epoch.Add(8 * time.Minute), Value: 800},
				{Time: epoch.Add(10 * time.Minute), Value: 1000},
			},
		},
		{
			name:  "step longer than range gives one point",
			query: queries.Query{Text: `sum(http_requests_total)`, Time: end, Range: time.Minute, Step: 5 * time.Minute},
			want:  []queries.Point{{Time: epoch.Add(10 * time.Minute), Value: 1000}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.Query(t.Context(), tc.query)
			require.NoError(t, err)
			require.Len(t, res.Samples, 1)
			s := res.Samples[0]
			require.Equal(t, map[string]string{}, s.Labels)
			require.Equal(t, tc.want, s.Points)
			require.Equal(t, tc.want[len(tc.want)-1].Value, s.Value)
		})
	}
}

func TestQueryErrors(t *testing.T) {
	e := newEngine(t, Options{})
	require.NoError(t, e.Load(epoch, time.Minute, requestSeries))
	at := epoch.Add(10 * time.Minute)

	tests := []struct {
		name    string
		query   queries.Query
		wantIs  error
		wantMsg string
	}{
		{
			name:    "parse error",
			query:   queries.Query{Text: `sum(rate(x[5m])`, Time: at},
			wantIs:  queries.ErrBadQuery,
			wantMsg: `bad query: 1:16: parse error: unclosed left parenthesis`,
		},
		{
			name:    "empty query",
			query:   queries.Query{Text: ``, Time: at},
			wantIs:  queries.ErrBadQuery,
			wantMsg: `bad query: unknown position: parse error: no expression found in input`,
		},
		{
			name:    "range vector in a range query",
			query:   queries.Query{Text: `http_requests_total[5m]`, Time: at, Range: 5 * time.Minute, Step: time.Minute},
			wantIs:  queries.ErrBadQuery,
			wantMsg: `bad query: invalid expression type "range vector" for range query, must be Scalar or instant Vector`,
		},
		{
			name:    "range without step",
			query:   queries.Query{Text: `up`, Time: at, Range: 5 * time.Minute},
			wantIs:  queries.ErrBadQuery,
			wantMsg: `bad query: range query over 5m0s needs a positive step, got 0s`,
		},
		{
			name:    "negative range",
			query:   queries.Query{Text: `up`, Time: at, Range: -time.Minute, Step: time.Minute},
			wantIs:  queries.ErrBadQuery,
			wantMsg: `bad query: negative query range -1m0s`,
		},
		{
			name:    "string result",
			query:   queries.Query{Text: `"hello"`, Time: at},
			wantIs:  queries.ErrBadQuery,
			wantMsg: `bad query: query returns a string, not numbers`,
		},
		{
			name:    "evaluation error",
			query:   queries.Query{Text: `http_requests_total + on(job) http_requests_total`, Time: at},
			wantIs:  queries.ErrBadQuery,
			wantMsg: `bad query: found duplicate series for the match group`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Query(t.Context(), tc.query)
			require.ErrorIs(t, err, tc.wantIs)
			require.ErrorContains(t, err, tc.wantMsg)
		})
	}
}

func TestQueryTooManySamples(t *testing.T) {
	e := newEngine(t, Options{MaxSamples: 10})
	require.NoError(t, e.Load(epoch, time.Minute, requestSeries))
	_, err := e.Query(t.Context(), queries.Query{Text: `sum(http_requests_total)`, Time: epoch.Add(15 * time.Minute), Range: 15 * time.Minute, Step: time.Minute})
	require.ErrorIs(t, err, queries.ErrBadQuery)
	require.ErrorContains(t, err, "too many samples")
}

func TestQueryContext(t *testing.T) {
	cause := errors.New("analysis step deadline")
	tests := []struct {
		name    string
		opts    Options
		ctx     func(t *testing.T) context.Context
		wantIs  []error
		wantNot []error
	}{
		{
			name: "canceled",
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				return ctx
			},
			wantIs:  []error{context.Canceled},
			wantNot: []error{queries.ErrTimeout, queries.ErrBadQuery},
		},
		{
			name: "caller deadline keeps its cause",
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithDeadlineCause(t.Context(), time.Now().Add(-time.Second), cause)
				t.Cleanup(cancel)
				return ctx
			},
			wantIs:  []error{queries.ErrTimeout, context.DeadlineExceeded, cause},
			wantNot: []error{queries.ErrBadQuery},
		},
		{
			name:    "engine timeout",
			opts:    Options{Timeout: time.Nanosecond},
			ctx:     func(t *testing.T) context.Context { return t.Context() },
			wantIs:  []error{queries.ErrTimeout},
			wantNot: []error{queries.ErrBadQuery, context.Canceled},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, tc.opts)
			require.NoError(t, e.Load(epoch, time.Minute, requestSeries))
			_, err := e.Query(tc.ctx(t), queries.Query{Text: `sum(http_requests_total)`, Time: epoch.Add(10 * time.Minute)})
			require.Error(t, err)
			for _, want := range tc.wantIs {
				require.ErrorIs(t, err, want)
			}
			for _, not := range tc.wantNot {
				require.NotErrorIs(t, err, not)
			}
		})
	}
}

func TestQueryWarnings(t *testing.T) {
	e := newEngine(t, Options{})
	require.NoError(t, e.Load(epoch, time.Minute, []InputSeries{{Series: `requests`, Values: `0+1x10`}}))
	res, err := e.Query(t.Context(), queries.Query{Text: `rate(requests[5m])`, Time: epoch.Add(10 * time.Minute)})
	require.NoError(t, err)
	require.Len(t, res.Samples, 1)
	require.Len(t, res.Warnings, 1)
	require.Contains(t, res.Warnings[0], `PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: "requests"`)
}

func TestAppend(t *testing.T) {
	e := newEngine(t, Options{})
	now := time.Now().Truncate(time.Second)
	series := map[string]string{"__name__": "live_total", "pod": "canary-1", "empty": ""}
	for i := range 6 {
		require.NoError(t, e.Append(series, now.Add(time.Duration(i-5)*15*time.Second), float64(10*i)))
	}

	res, err := e.Query(t.Context(), queries.Query{Text: `live_total`, Time: now})
	require.NoError(t, err)
	require.Equal(t, []queries.Sample{{Labels: map[string]string{"__name__": "live_total", "pod": "canary-1"}, Value: 50}}, res.Samples)

	res, err = e.Query(t.Context(), queries.Query{Text: `rate(live_total[1m])`, Time: now})
	require.NoError(t, err)
	require.Len(t, res.Samples, 1)
	require.InDelta(t, 10.0/15, res.Samples[0].Value, 1e-9)

	// Zero time means now, which is where the samples are.
	res, err = e.Query(t.Context(), queries.Query{Text: `live_total`})
	require.NoError(t, err)
	require.Len(t, res.Samples, 1)

	tests := []struct {
		name   string
		labels map[string]string
		at     time.Time
		want   string
	}{
		{name: "out of order", labels: series, at: now.Add(-time.Minute), want: "out of order sample"},
		{name: "no labels", labels: map[string]string{"a": ""}, at: now, want: "append: the series has no labels"},
		{name: "bad metric name", labels: map[string]string{"__name__": "\xff"}, at: now, want: "invalid metric or label name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorContains(t, e.Append(tc.labels, tc.at, 1), tc.want)
		})
	}
}

// TestLoadThenAppendAcrossDecades: a test file loaded at promtool's epoch
// and a live append at the wall clock must both be accepted, in either
// order (a TSDB head refuses samples far older than its newest).
func TestLoadThenAppendAcrossDecades(t *testing.T) {
	e := newEngine(t, Options{})
	require.NoError(t, e.Load(epoch, time.Minute, requestSeries))
	now := time.Now()
	require.NoError(t, e.Append(map[string]string{"__name__": "live"}, now, 1))
	require.NoError(t, e.Load(epoch, time.Minute, []InputSeries{{Series: `late`, Values: `1 2 3`}}))

	res, err := e.Query(t.Context(), queries.Query{Text: `late`, Time: epoch.Add(2 * time.Minute)})
	require.NoError(t, err)
	require.Len(t, res.Samples, 1)
	require.Equal(t, 3.0, res.Samples[0].Value)
	res, err = e.Query(t.Context(), queries.Query{Text: `live`, Time: now})
	require.NoError(t, err)
	require.Len(t, res.Samples, 1)
}

func TestConcurrentQueriesAndAppends(t *testing.T) {
	e := newEngine(t, Options{})
	require.NoError(t, e.Load(epoch, time.Minute, requestSeries))
	const (
		writers = 4
		readers = 4
		samples = 200
	)
	var wg sync.WaitGroup
	errs := make(chan error, writers+readers)
	for w := range writers {
		wg.Go(func() {
			series := map[string]string{"__name__": "live_total", "writer": fmt.Sprint(w)}
			for i := range samples {
				if err := e.Append(series, epoch.Add(time.Duration(i)*time.Second), float64(i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for range readers {
		wg.Go(func() {
			for range samples / 4 {
				res, err := e.Query(context.Background(), queries.Query{Text: `sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))`, Time: epoch.Add(10 * time.Minute)})
				if err != nil {
					errs <- err
					return
				}
				if len(res.Samples) != 1 || res.Samples[0].Value != 0.05 {
					errs <- fmt.Errorf("ratio query returned %+v", res.Samples)
					return
				}
				if _, err := e.Query(context.Background(), queries.Query{Text: `count(live_total)`, Time: epoch.Add(samples * time.Second), Range: time.Minute, Step: 10 * time.Second}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	res, err := e.Query(t.Context(), queries.Query{Text: `count(live_total)`, Time: epoch.Add(samples * time.Second)})
	require.NoError(t, err)
	require.Equal(t, float64(writers), res.Samples[0].Value)
}

func TestClose(t *testing.T) {
	e, err := New(Options{})
	require.NoError(t, err)
	require.NoError(t, e.Load(epoch, time.Minute, requestSeries))

	require.NoError(t, e.Close())
	require.NoError(t, e.Close(), "a second Close is a no-op")

	_, err = e.Query(t.Context(), queries.Query{Text: `up`, Time: epoch})
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, err, queries.ErrUnavailable)
	require.ErrorIs(t, e.Append(map[string]string{"__name__": "x"}, epoch, 1), ErrClosed)
	require.ErrorIs(t, e.Load(epoch, time.Minute, requestSeries), ErrClosed)
}

func TestNewRejectsNegativeOptions(t *testing.T) {
	_, err := New(Options{Timeout: -time.Second})
	require.ErrorContains(t, err, "negative limit")
}

// TestEngineIsASource keeps the seam honest: the engine is used through
// queries.Source by the analysis code.
func TestEngineIsASource(t *testing.T) {
	e := newEngine(t, Options{})
	require.NoError(t, e.Load(epoch, time.Minute, requestSeries))
	var src queries.Source = e
	res, err := src.Query(t.Context(), queries.Query{Text: `sum(http_requests_total)`, Time: epoch.Add(time.Minute)})
	require.NoError(t, err)
	require.Equal(t, 100.0, res.Samples[0].Value)
}

// TestRefusedSamples pins what the storage refuses, and with which words,
// as Prometheus's TSDB head refuses it: users read these messages when a
// series file or a live append is wrong.
func TestRefusedSamples(t *testing.T) {
	e := newEngine(t, Options{})
	require.NoError(t, e.Load(epoch, time.Minute, []InputSeries{
		{Series: `f`, Values: `1 2`},
		{Series: `h`, Values: `1 {{schema:0 sum:1 count:1 buckets:[1]}}`},
	}))
	tests := []struct {
		name   string
		series []InputSeries
		want   string
	}{
		{name: "duplicate label name", series: []InputSeries{{Series: `a{x="1",x="2"}`, Values: `1`}},
			want: `series 0 "a{x=\"1\",x=\"2\"}": sample 0 at 1970-01-01T00:00:00Z: label name "x" is not unique: invalid sample`},
		{name: "older than the newest sample", series: []InputSeries{{Series: `f`, Values: `0`}},
			want: `series 0 "f": sample 0 at 1970-01-01T00:00:00Z: out of order sample`},
		{name: "another float at the newest sample's time", series: []InputSeries{{Series: `f`, Values: `_ 3`}},
			want: `series 0 "f": sample 1 at 1970-01-01T00:01:00Z: duplicate sample for timestamp 60000; overrides not allowed: existing 2, new value 3`},
		{name: "a float where a histogram is", series: []InputSeries{{Series: `h`, Values: `_ 3`}},
			want: `series 0 "h": sample 1 at 1970-01-01T00:01:00Z: duplicate sample for timestamp 60000; overrides not allowed: existing is a histogram, new value 3`},
		{name: "a histogram where a float is", series: []InputSeries{{Series: `f`, Values: `_ {{schema:0 sum:1 count:1 buckets:[1]}}`}},
			want: `series 0 "f": sample 1 at 1970-01-01T00:01:00Z: duplicate sample for timestamp`},
		{name: "another histogram at the newest sample's time", series: []InputSeries{{Series: `h`, Values: `_ {{schema:0 sum:2 count:2 buckets:[2]}}`}},
			want: `series 0 "h": sample 1 at 1970-01-01T00:01:00Z: duplicate sample for timestamp`},
		{name: "a histogram with a negative bucket", series: []InputSeries{{Series: `n`, Values: `{{schema:0 sum:1 count:1 buckets:[-1]}}`}},
			want: `series 0 "n": sample 0 at 1970-01-01T00:00:00Z: positive side: bucket number 1 has observation count of -1: histogram has a bucket whose observation count is negative`},
		{name: "a histogram with a bad schema", series: []InputSeries{{Series: `n`, Values: `{{schema:9 sum:1 count:1 buckets:[1]}}`}},
			want: `series 0 "n": sample 0 at 1970-01-01T00:00:00Z: histogram has an invalid schema, which must be between -4 and 8 for exponential buckets, or -53 for custom buckets, got schema 9`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := e.Load(epoch, time.Minute, tc.series)
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), tc.want), "got %q, want it to start with %q", err, tc.want)
		})
	}
	// The same sample again is dropped, not refused, as a scrape repeated
	// after a retry is.
	require.NoError(t, e.Load(epoch, time.Minute, []InputSeries{{Series: `f`, Values: `_ 2`}, {Series: `h`, Values: `_ {{schema:0 sum:1 count:1 buckets:[1]}}`}}))
	require.NoError(t, e.Append(map[string]string{"__name__": "f"}, epoch.Add(time.Minute), 2))
	ts, vs := stored(t, e, "f")
	require.Equal(t, []int64{0, 60000}, ts)
	require.Equal(t, []float64{1, 2}, vs)
}

// TestLoadIsSeenWhole: a query running beside a Load sees all of its
// series or none, never a part, as with the TSDB's appender isolation.
func TestLoadIsSeenWhole(t *testing.T) {
	e := newEngine(t, Options{})
	const series = 200
	batch := make([]InputSeries, series)
	for i := range batch {
		batch[i] = InputSeries{Series: fmt.Sprintf(`x{i="%d"}`, i), Values: `1x10`}
	}
	done := make(chan error, 1)
	go func() { done <- e.Load(epoch, time.Minute, batch) }()
	for {
		res, err := e.Query(t.Context(), queries.Query{Text: `count(x)`, Time: epoch.Add(5 * time.Minute)})
		require.NoError(t, err)
		if len(res.Samples) == 0 {
			continue
		}
		require.Equal(t, float64(series), res.Samples[0].Value, "a query saw part of a Load")
		break
	}
	require.NoError(t, <-done)
}

// TestQueriesLeaveHistogramsAlone: the engine changes the histograms a
// storage hands it and hands them back to be written over; the store must
// hand out copies, or a second query would read what the first one left.
func TestQueriesLeaveHistogramsAlone(t *testing.T) {
	e := newEngine(t, Options{})
	require.NoError(t, e.Load(epoch, time.Minute, []InputSeries{
		{Series: `h{a="1"}`, Values: `{{schema:0 sum:5 count:4 buckets:[1 2 1]}}+{{sum:2 count:1 buckets:[1]}}x10`},
		{Series: `h{a="2"}`, Values: `{{schema:0 sum:1 count:1 buckets:[1]}}+{{sum:1 count:1 buckets:[0 1]}}x10`},
	}))
	q := queries.Query{Text: `histogram_quantile(0.9, sum(rate(h[5m]))) + histogram_count(sum(h)) + histogram_sum(sum(increase(h[3m])))`, Time: epoch.Add(10 * time.Minute)}
	first, err := e.Query(t.Context(), q)
	require.NoError(t, err)
	require.Len(t, first.Samples, 1)
	for range 3 {
		again, err := e.Query(t.Context(), q)
		require.NoError(t, err)
		require.Equal(t, first.Samples, again.Samples)
	}
}
