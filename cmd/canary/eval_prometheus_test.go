package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/internal/testprom"
)

// seedLive writes 20 minutes of data for three apps: "good" (0.5% errors,
// three fresh zones), "bad" (5% errors) and "stale" (one zone stuck for
// 15 minutes).
func seedLive(t testing.TB, prom *testprom.Server) {
	now := time.Now().Truncate(time.Second)
	const n, step = 41, 30 * time.Second
	counter := func(app, code string, perStep float64) testprom.Series {
		return testprom.Linear(map[string]string{"__name__": "requests_total", "app": app, "code": code}, now, n, step, 0, perStep)
	}
	zone := func(app, zone string, age time.Duration) testprom.Series {
		// A gauge holding the timestamp of the last closed interval.
		first := float64(now.Add(-time.Duration(n-1)*step).Unix()) - age.Seconds()
		s := testprom.Linear(map[string]string{"__name__": "last_interval_timestamp_seconds", "app": app, "zone": zone}, now, n, step, first, step.Seconds())
		if age > 0 {
			for i := range s.Samples {
				s.Samples[i].V = first
			}
		}
		return s
	}
	prom.Write(t,
		counter("good", "200", 199), counter("good", "500", 1),
		counter("bad", "200", 190), counter("bad", "500", 10),
		counter("stale", "200", 200), counter("stale", "500", 0),
		zone("good", "AECO", 0), zone("good", "BGE", 0), zone("good", "DOM", 0),
		zone("stale", "AECO", 0), zone("stale", "BGE", 0), zone("stale", "DOM", 15*time.Minute),
	)
}

// TestEvalAgainstPrometheus runs `canary eval` against a real Prometheus:
// verdicts from real PromQL, and every way a source can fail turning into
// an error rule and an inconclusive verdict, never a crash or a pass.
func TestEvalAgainstPrometheus(t *testing.T) {
	prom := testprom.Start(t)
	seedLive(t, prom)

	down := testprom.Start(t)
	downURL := down.URL()
	down.Stop()

	target, err := url.Parse(prom.URL())
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read the body first: the server notices a client hanging up
		// only once the request body is consumed.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(slow.Close)

	tests := []struct {
		name     string
		url      string
		policy   string
		app      string
		extra    []string
		code     int
		contains []string
	}{
		{name: "healthy canary passes", url: prom.URL(), policy: "live", app: "good", code: exitOK,
			contains: []string{"verdict pass", "error-rate   pass     0.005"}},
		{name: "error rate fails and rolls back", url: prom.URL(), policy: "live", app: "bad", code: exitFail,
			contains: []string{"verdict fail   decision rollback", "error-rate: 0.05 > 0.01"}},
		{name: "multi-series rule fails on one stale zone", url: prom.URL(), policy: "live", app: "stale", code: exitFail,
			contains: []string{"zones-fresh  fail", "zone_staleness_s=3 series (does not hold)"}},
		{name: "no series at all takes noData", url: prom.URL(), policy: "live", app: "absent", code: exitFail,
			contains: []string{"error-rate   inconclusive", "zones-fresh  fail"}},
		{name: "more series than declared is an error", url: prom.URL(), policy: "one-zone", app: "good", code: exitInconclusive,
			contains: []string{"fresh  error", "query returned 3 series, the policy declares at most 1"}},
		{name: "query Prometheus rejects", url: prom.URL(), policy: "bad-promql", app: "good", code: exitInconclusive,
			contains: []string{"ratio  error", "prometheus rejected the query: execution: found duplicate series"}},
		{name: "Prometheus down", url: downURL, policy: "live", app: "good", code: exitInconclusive,
			contains: []string{"error-rate   error", "connection refused"}},
		{name: "slow Prometheus times out", url: slow.URL, policy: "live", app: "good", extra: []string{"--prometheus-timeout", "300ms"},
			code: exitInconclusive, contains: []string{"error-rate   error", "timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"eval", "--policies", "testdata/live.yaml", "--policy", tt.policy,
				"--param", "name=" + tt.app, "--prometheus", tt.url}, tt.extra...)
			start := time.Now()
			code, stdout, stderr := canary(t, args...)
			require.Equal(t, tt.code, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
			for _, s := range tt.contains {
				require.Contains(t, stdout, s)
			}
			// No failure mode may hang past the evaluation deadline.
			require.Less(t, time.Since(start), 8*time.Second)
		})
	}
}
