package prometheus_test

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/internal/testprom"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/queries/prometheus"
)

// seed starts a Prometheus holding two counters, sampled every 15s for the
// last 10 minutes: code 200 grows by 90 a sample (6/s), code 500 by 10
// (2/3 per second), so the 5xx ratio is exactly 0.1. It returns the time of
// the last sample.
func seed(t *testing.T) (*testprom.Server, time.Time) {
	t.Helper()
	srv := testprom.Start(t)
	end := time.Now().Add(-time.Second).Truncate(time.Second)
	srv.Write(t,
		testprom.Linear(map[string]string{"__name__": "canary_requests_total", "code": "200", "instance": "a"}, end, 41, 15*time.Second, 0, 90),
		testprom.Linear(map[string]string{"__name__": "canary_requests_total", "code": "500", "instance": "a"}, end, 41, 15*time.Second, 0, 10),
	)
	return srv, end
}

func newSource(t *testing.T, cfg prometheus.Config) *prometheus.Source {
	t.Helper()
	s, err := prometheus.New(cfg, nil)
	require.NoError(t, err)
	return s
}

// proxy puts a reverse proxy in front of target that counts requests and
// holds each one for delay, or until the client gives up.
func proxy(t *testing.T, target string, delay time.Duration) (string, *atomic.Int32) {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0) // requests the client gave up on
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		// The server notices a client that hung up only once the request
		// body has been read; until then r.Context() stays live.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &n
}

func TestQuery(t *testing.T) {
	srv, end := seed(t)
	src := newSource(t, prometheus.Config{URL: srv.URL()})

	tests := []struct {
		name string
		q    queries.Query
		want []queries.Sample
	}{
		{
			name: "scalar from a counter rate",
			q: queries.Query{
				Text: `scalar(sum(rate(canary_requests_total{code=~"5.."}[5m])) / sum(rate(canary_requests_total[5m])))`,
				Time: end,
			},
			want: []queries.Sample{{Labels: map[string]string{}, Value: 0.1}},
		},
		{
			name: "vector keeps the labels of each series",
			q:    queries.Query{Text: `rate(canary_requests_total[5m])`, Time: end},
			want: []queries.Sample{
				{Labels: map[string]string{"code": "200", "instance": "a"}, Value: 6},
				{Labels: map[string]string{"code": "500", "instance": "a"}, Value: 10.0 / 15},
			},
		},
		{
			name: "vector without series",
			q:    queries.Query{Text: `canary_requests_total{code="404"}`, Time: end},
			want: []queries.Sample{},
		},
		{
			// Points at end-90s, -60s, -30s and end: the window is
			// (Time-Range, Time], aligned to end.
			name: "range query has points oldest first",
			q: queries.Query{
				Text:  `canary_requests_total{code="200"}`,
				Time:  end,
				Range: 2 * time.Minute,
				Step:  30 * time.Second,
			},
			want: []queries.Sample{{
				Labels: map[string]string{"__name__": "canary_requests_total", "code": "200", "instance": "a"},
				Value:  3600,
				Points: []queries.Point{
					{Time: end.Add(-90 * time.Second), Value: 3060},
					{Time: end.Add(-60 * time.Second), Value: 3240},
					{Time: end.Add(-30 * time.Second), Value: 3420},
					{Time: end, Value: 3600},
				},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := src.Query(t.Context(), tt.q)
			require.NoError(t, err)
			require.Empty(t, res.Warnings)
			requireSamples(t, tt.want, res.Samples)
		})
	}
}

// requireSamples compares samples in label order, values within a rounding
// error.
func requireSamples(t *testing.T, want, got []queries.Sample) {
	t.Helper()
	byCode := func(a, b queries.Sample) int { return strings.Compare(a.Labels["code"], b.Labels["code"]) }
	slices.SortFunc(got, byCode)
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i].Labels, got[i].Labels)
		require.InDelta(t, want[i].Value, got[i].Value, 1e-9)
		require.Len(t, got[i].Points, len(want[i].Points))
		for j, p := range want[i].Points {
			require.True(t, p.Time.Equal(got[i].Points[j].Time), "point %d at %s, want %s", j, got[i].Points[j].Time, p.Time)
			require.InDelta(t, p.Value, got[i].Points[j].Value, 1e-9)
		}
	}
}

func TestQueryRejected(t *testing.T) {
	srv, end := seed(t)
	addr, attempts := proxy(t, srv.URL(), 0)
	src := newSource(t, prometheus.Config{URL: addr, RetryBackoff: time.Millisecond})

	tests := []struct {
		name    string
		query   string
		wantMsg string
	}{
		{
			name:    "parse error",
			query:   `sum(rate(canary_requests_total[5m])`,
			wantMsg: `prometheus rejected the query: bad_data: invalid parameter "query": 1:36: parse error: unclosed left parenthesis`,
		},
		{
			name:    "execution error",
			query:   `canary_requests_total + on() canary_requests_total`,
			wantMsg: "prometheus rejected the query: execution: found duplicate series for the match group {} on the ",
		},
		{
			name:    "string result",
			query:   `"canary"`,
			wantMsg: `unusable prometheus result: unexpected value type "string" (want a vector, scalar or matrix)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attempts.Store(0)
			_, err := src.Query(t.Context(), queries.Query{Text: tt.query, Time: end})
			require.ErrorIs(t, err, queries.ErrBadQuery)
			require.Equal(t, "bad_query", queries.Classify(err))
			require.True(t, strings.HasPrefix(err.Error(), tt.wantMsg), "error %q", err)
			require.EqualValues(t, 1, attempts.Load(), "a rejected query is not retried")
		})
	}
}

func TestQueryPrometheusDown(t *testing.T) {
	srv := testprom.Start(t)
	src := newSource(t, prometheus.Config{URL: srv.URL(), Retries: 2, RetryBackoff: 20 * time.Millisecond})
	_, err := src.Query(t.Context(), queries.Query{Text: "up"})
	require.NoError(t, err)

	srv.Stop()
	start := time.Now()
	_, err = src.Query(t.Context(), queries.Query{Text: "up"})
	elapsed := time.Since(start)

	require.ErrorIs(t, err, queries.ErrUnavailable)
	require.Equal(t, "unavailable", queries.Classify(err))
	require.ErrorContains(t, err, "prometheus unavailable after 3 attempts: Post ")
	require.ErrorContains(t, err, "connection refused")
	// Two jittered waits of at most 20ms and 40ms, and refused connects.
	require.GreaterOrEqual(t, elapsed, 30*time.Millisecond)
	require.Less(t, elapsed, time.Second)
}

func TestQuerySlowPrometheus(t *testing.T) {
	srv, _ := seed(t)
	addr, attempts := proxy(t, srv.URL(), 5*time.Second)
	const timeout = 100 * time.Millisecond
	src := newSource(t, prometheus.Config{URL: addr, Timeout: timeout})

	t.Run("per-query timeout", func(t *testing.T) {
		attempts.Store(0)
		start := time.Now()
		_, err := src.Query(t.Context(), queries.Query{Text: "up"})
		elapsed := time.Since(start)

		require.ErrorIs(t, err, queries.ErrTimeout)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Equal(t, "timeout", queries.Classify(err))
		require.EqualError(t, err, "prometheus query timed out: per-query timeout of 100ms reached")
		require.GreaterOrEqual(t, elapsed, timeout)
		require.Less(t, elapsed, timeout+500*time.Millisecond)
		require.EqualValues(t, 1, attempts.Load(), "a timeout is not retried")
	})

	t.Run("caller cancels", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		time.AfterFunc(20*time.Millisecond, cancel)
		start := time.Now()
		_, err := src.Query(ctx, queries.Query{Text: "up"})
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, "canceled", queries.Classify(err))
		require.EqualError(t, err, "prometheus query canceled: context canceled")
		require.Less(t, time.Since(start), timeout)
	})

	t.Run("caller deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		_, err := src.Query(ctx, queries.Query{Text: "up"})
		require.ErrorIs(t, err, queries.ErrTimeout)
		require.Equal(t, "timeout", queries.Classify(err))
		require.EqualError(t, err, "prometheus query timed out: context deadline exceeded")
	})
}

func TestQueryMaxBytesPrometheus(t *testing.T) {
	srv, end := seed(t)
	addr, attempts := proxy(t, srv.URL(), 0)
	// The two series over 10 minutes at 15s steps take some 2 KiB; their
	// sum at one instant a few dozen bytes.
	src := newSource(t, prometheus.Config{URL: addr, MaxBytes: 1024, RetryBackoff: time.Millisecond})

	tests := []struct {
		name    string
		q       queries.Query
		wantErr bool
	}{
		{name: "aggregated answer under the cap", q: queries.Query{Text: `sum(canary_requests_total)`, Time: end}},
		{
			name:    "range over the cap",
			q:       queries.Query{Text: `canary_requests_total`, Time: end, Range: 10 * time.Minute, Step: 15 * time.Second},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attempts.Store(0)
			res, err := src.Query(t.Context(), tt.q)
			require.EqualValues(t, 1, attempts.Load())
			if !tt.wantErr {
				require.NoError(t, err)
				require.Len(t, res.Samples, 1)
				return
			}
			require.ErrorIs(t, err, queries.ErrBadQuery)
			require.EqualError(t, err, "prometheus answer is over maxBytes (1024 bytes): narrow the query (aggregate it, or lower maxSeries)")
		})
	}
}
