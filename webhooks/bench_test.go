package webhooks

import (
	"bytes"
	"context"
	"fmt"
	"github.com/aurum/canary/runs"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/queries/cache"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs/bolt"
)

// benchServer is the whole service over a real listener, with a synced
// bbolt store and a source that answers from memory after delay, counting
// the queries that reach it.
type benchServer struct {
	url   string
	calls atomic.Int64
}

func newBenchServer(b *testing.B, delay time.Duration) *benchServer {
	b.Helper()
	bs := &benchServer{}
	loader := rules.NewLoader("testdata/policies.yaml", "testdata/fleet.yaml")
	require.NoError(b, loader.Reload())
	st, err := bolt.Open(filepath.Join(b.TempDir(), "canary.db"), bolt.Options{})
	require.NoError(b, err)
	b.Cleanup(func() { st.Close() })
	runs, err := runs.New(context.Background(), runs.Options{Store: st})
	require.NoError(b, err)
	src := queries.SourceFunc(func(ctx context.Context, q queries.Query) (queries.Result, error) {
		bs.calls.Add(1)
		if delay > 0 {
			time.Sleep(delay)
		}
		return queries.Result{Samples: []queries.Sample{{Value: 0.002}}}, nil
	})
	srv, err := New(Options{
		Policies:  loader,
		Evaluator: analysis.NewEvaluator(analysis.Options{Sources: queries.Registry{{Kind: "prometheus"}: cache.New(src, cache.Options{})}}),
		Runs:      runs,
		UI:        &UIOptions{},
	})
	require.NoError(b, err)
	hs := httptest.NewServer(srv)
	b.Cleanup(hs.Close)
	bs.url = hs.URL
	return bs
}

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxIdleConns: 256}}
}

func get(b *testing.B, c *http.Client, url string) {
	resp, err := c.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("status %d", resp.StatusCode)
	}
}

// BenchmarkAnalysisThroughput is Argo Rollouts calling /v1/analysis over
// HTTP with a source that answers from memory, so what is measured is the
// engine: routing, params, evaluation and, for tracked runs, the synced
// store write that records each decision. 64 concurrent clients keep it
// saturated (on the same 2 cores as the server); it reports requests per
// second and the latency percentiles under that load.
func BenchmarkAnalysisThroughput(b *testing.B) {
	for _, tc := range []struct {
		name string
		path func(i int) string
	}{
		// Forty runs analysed concurrently, each decision synced to disk.
		{name: "tracked", path: func(i int) string {
			return fmt.Sprintf("/v1/analysis/ingest?namespace=caiso&name=app-%d&revision=r1", i%40)
		}},
		// An analysis that names no run is not recorded: the HTTP and
		// evaluation cost alone.
		{name: "untracked", path: func(int) string { return "/v1/analysis/fleet" }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			bs := newBenchServer(b, 0)
			client := benchClient()
			var (
				mu   sync.Mutex
				lats []time.Duration
				seq  atomic.Int64
			)
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				local := make([]time.Duration, 0, 1024)
				for pb.Next() {
					i := int(seq.Add(1))
					start := time.Now()
					get(b, client, bs.url+tc.path(i))
					local = append(local, time.Since(start))
				}
				mu.Lock()
				lats = append(lats, local...)
				mu.Unlock()
			})
			b.StopTimer()
			slices.Sort(lats)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "p50-ms")
		})
	}
}

// BenchmarkAnalysisLatency sends one analysis at a time: the latency the
// engine adds to a caller's request when it is not queueing behind others
// (for tracked runs, most of it is the fsync that makes the decision
// durable before it is answered).
func BenchmarkAnalysisLatency(b *testing.B) {
	for _, tc := range []struct{ name, path string }{
		{name: "tracked", path: "/v1/analysis/ingest?namespace=caiso&name=good&revision=r1"},
		{name: "untracked", path: "/v1/analysis/fleet"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			bs := newBenchServer(b, 0)
			client := benchClient()
			lats := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				get(b, client, bs.url+tc.path)
				lats = append(lats, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lats)
			b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "p50-ms")
		})
	}
}

// BenchmarkHundredIdenticalAnalyses: 100 concurrent analyses of one run,
// as Argo and Flagger replicas firing at once, against a source that takes
// 20 ms. Identical queries in flight share one call: calls/distinct-query
// must be 1.
func BenchmarkHundredIdenticalAnalyses(b *testing.B) {
	bs := newBenchServer(b, 20*time.Millisecond)
	client := benchClient()
	b.ResetTimer()
	for i := range b.N {
		before := bs.calls.Load()
		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() {
				// Each round names another app, so its query text is new
				// and no round is served from an earlier round's cache.
				get(b, client, fmt.Sprintf("%s/v1/analysis/ingest?namespace=caiso&name=round-%d&revision=r", bs.url, i))
			})
		}
		wg.Wait()
		if got := bs.calls.Load() - before; got != 1 {
			b.Fatalf("100 identical analyses cost %d queries, want 1", got)
		}
	}
	b.ReportMetric(1, "calls/distinct-query")
}

// BenchmarkAlertmanagerDeliveries posts notifications of 10 firing alerts,
// each matching a different run, as fast as 16 senders can: every latch is
// synced to disk before the 200, in commits shared between deliveries.
func BenchmarkAlertmanagerDeliveries(b *testing.B) {
	bs := newBenchServer(b, 0)
	client := benchClient()
	for i := range 50 {
		get(b, client, fmt.Sprintf("%s/v1/analysis/ingest?namespace=caiso&name=app-%d&revision=r1", bs.url, i))
	}
	var seq atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			var alerts []string
			for j := range 10 {
				// A new fingerprint per delivery, so every alert latches.
				alerts = append(alerts, fmt.Sprintf(`{"status":"firing","labels":{"alertname":"Errors","severity":"critical","app":"app-%d"},"fingerprint":"%x-%d"}`,
					(int(n)*10+j)%50, n, j))
			}
			body := `{"version":"4","status":"firing","receiver":"canary","alerts":[` + strings.Join(alerts, ",") + `]}`
			resp, err := client.Post(bs.url+"/v1/alertmanager", "application/json", bytes.NewBufferString(body))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}
