package embedded

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// The storage corners the examples do not reach, pinned through the
// engine's Prometheus HTTP API as JSON (Prometheus's own wire format, so
// histograms, warnings and infos show too): counter resets, gaps,
// staleness markers, series that start late, special floats, every kind
// of label matcher, offset and @, subqueries, the order of unsorted
// results, and native histograms (counter resets, new buckets, a schema
// change, a gauge, a stale marker, a series mixing floats and histograms).
//
// The golden file was recorded with the TSDB-backed engine, before the
// in-memory store replaced it. Rewrite it with
// `go test ./queries/embedded -run TestGoldenStorageCorners -update`, and
// only for a change that is meant to move the numbers.
func TestGoldenStorageCorners(t *testing.T) {
	e := newEngine(t, Options{})
	require.NoError(t, e.Load(epoch, time.Minute, []InputSeries{
		// Created first, so that unsorted results list it first.
		{Series: `req_total{job="b",code="200"}`, Values: `_x5 100+5x15`},
		{Series: `req_total{job="a",code="200"}`, Values: `0+10x10 5+10x10`},
		{Series: `req_total{job="a",code="500"}`, Values: `1 _ _ 4 stale 6+1x5 _x3 10`},
		{Series: `req_total{job="b"}`, Values: `1+1x20`},
		{Series: `temp{zone="z1"}`, Values: `20 21 NaN 23 Inf -Inf 1e-300 stale 0.1+0.2x5`},
		{Series: `temp{zone="z2",dc=""}`, Values: `-3.5 _ _ _ _ _ _ -2.25`},
		{Series: `nh{job="a"}`, Values: `{{schema:0 sum:5 count:4 buckets:[1 2 1]}}+{{sum:2 count:1 buckets:[1]}}x6 ` +
			`{{schema:0 sum:1 count:1 buckets:[1]}} ` +
			`{{schema:0 sum:3 count:4 buckets:[1 1 1 1]}}+{{sum:1 count:2 buckets:[0 1 0 1]}}x4 ` +
			`{{schema:1 sum:20 count:20 buckets:[2 3 5 5 5]}}x2`},
		{Series: `nh{job="b"}`, Values: `{{schema:0 sum:5 count:4 buckets:[1 2 1] counter_reset_hint:gauge}} ` +
			`{{schema:0 sum:2 count:2 buckets:[2] counter_reset_hint:gauge}} ` +
			`{{schema:0 sum:9 count:6 buckets:[3 2 1] counter_reset_hint:gauge}}x3`},
		{Series: `nh{job="c"}`, Values: `{{schema:0 sum:1 count:1 buckets:[1]}}x3 stale {{schema:0 sum:4 count:2 buckets:[1 1]}}+{{sum:1 count:1 buckets:[1]}}x3`},
		{Series: `mixed`, Values: `1 2 {{schema:0 sum:1 count:1 buckets:[1]}} {{schema:0 sum:2 count:2 buckets:[2]}} 5 6`},
	}))
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()

	instant := []string{
		`req_total`,
		`req_total{code=""}`,
		`req_total{code=~"5.."}`,
		`req_total{job!="a"}`,
		`{__name__=~"req.*",code!~"2.*"}`,
		`{job="a"}`,
		`rate(req_total[5m])`,
		`increase(req_total[3m])`,
		`sum by (job) (rate(req_total[5m]))`,
		`resets(req_total[20m])`,
		`changes(req_total[20m])`,
		`count_over_time(req_total[10m])`,
		`last_over_time(req_total[10m])`,
		`absent(req_total{job="c"})`,
		`req_total offset 2m`,
		`req_total @ 300`,
		`max_over_time(rate(req_total[2m])[10m:1m])`,
		`max_over_time(rate(req_total[2m])[10m:])`,
		`timestamp(req_total)`,
		`topk(2, req_total)`,
		`req_total > 50`,
		`req_total / on(job) group_left sum by (job) (req_total)`,
		`req_total + on(job) req_total`,
		`temp`,
		`temp{dc=""}`,
		`deriv(temp[5m])`,
		`max_over_time(temp[10m])`,
		`avg_over_time(temp[3m])`,
		`nh`,
		`rate(nh[5m])`,
		`increase(nh[3m])`,
		`histogram_quantile(0.9, rate(nh[5m]))`,
		`histogram_count(rate(nh[5m]))`,
		`histogram_sum(nh)`,
		`histogram_fraction(0, 2, nh)`,
		`sum(rate(nh[5m]))`,
		`sum(nh)`,
		`resets(nh[20m])`,
		`mixed`,
		`rate(mixed[5m])`,
		`count_over_time(mixed[5m])`,
	}
	at := []time.Duration{0, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 7*time.Minute + 30*time.Second,
		9 * time.Minute, 10 * time.Minute, 11 * time.Minute, 13 * time.Minute, 15 * time.Minute, 20 * time.Minute, 24 * time.Minute, 30 * time.Minute}
	var buf bytes.Buffer
	get := func(label, path string, form url.Values) {
		t.Helper()
		resp, err := http.Get(srv.URL + path + "?" + form.Encode())
		require.NoError(t, err)
		defer resp.Body.Close()
		var body bytes.Buffer
		_, err = body.ReadFrom(resp.Body)
		require.NoError(t, err)
		var out bytes.Buffer
		require.NoError(t, json.Indent(&out, body.Bytes(), "", " "), label)
		fmt.Fprintf(&buf, "## %s (%d)\n%s\n", label, resp.StatusCode, out.Bytes())
	}
	for _, q := range instant {
		for _, d := range at {
			get(fmt.Sprintf("%s at %s", q, d), "/api/v1/query", url.Values{"query": {q}, "time": {secs(d)}})
		}
	}
	for _, q := range []string{`req_total`, `rate(req_total[5m])`, `temp`, `nh`, `rate(nh[5m])`, `histogram_quantile(0.5, nh)`, `mixed`} {
		for _, step := range []time.Duration{time.Minute, 45 * time.Second} {
			get(fmt.Sprintf("%s from 0 to 30m every %s", q, step), "/api/v1/query_range",
				url.Values{"query": {q}, "start": {"0"}, "end": {secs(30 * time.Minute)}, "step": {secs(step)}})
		}
	}

	path := filepath.Join("testdata", "golden", "storage-corners.txt")
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "missing golden file; run go test ./queries/embedded -run TestGoldenStorageCorners -update")
	require.Equal(t, string(want), buf.String())
}

// secs writes d, a time since the epoch or a step, as the API's seconds.
func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }
