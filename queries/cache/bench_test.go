package cache

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aurum/canary/queries"
)

// BenchmarkHundredConcurrentIdentical is the burst the package exists for:
// 100 analyses of the same run arrive at once, against a source that takes
// 1ms. Each iteration uses a fresh Source, so nothing is cached beforehand;
// calls/op must be 1. shared/op and hits/op show how the other 99 were
// served: joining the call in flight, or from the cache when a goroutine
// only started after the call had finished.
func BenchmarkHundredConcurrentIdentical(b *testing.B) {
	const callers = 100
	var calls atomic.Int64
	src := queries.SourceFunc(func(_ context.Context, q queries.Query) (queries.Result, error) {
		calls.Add(1)
		time.Sleep(time.Millisecond)
		return resultFor(q), nil
	})
	q := queries.Query{Text: `sum(rate(http_requests_total{job="api"}[1m]))`}
	ctx := context.Background()
	var total Stats
	b.ReportAllocs()
	for b.Loop() {
		s := New(src, Options{})
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range callers {
			wg.Go(func() {
				<-start
				if _, err := s.Query(ctx, q); err != nil {
					b.Error(err)
				}
			})
		}
		close(start)
		wg.Wait()
		st := s.Stats()
		total.Hits += st.Hits
		total.Shared += st.Shared
	}
	n := float64(b.N)
	b.ReportMetric(float64(calls.Load())/n, "calls/op")
	b.ReportMetric(float64(total.Shared)/n, "shared/op")
	b.ReportMetric(float64(total.Hits)/n, "hits/op")
}

// BenchmarkCachedHit is the price of a query answered from the cache: a
// lock, a map lookup and a clock read, with no allocation.
func BenchmarkCachedHit(b *testing.B) {
	s := New(&fake{}, Options{TTL: time.Hour})
	q := queries.Query{Text: `sum(rate(http_requests_total{job="api"}[1m]))`, Time: epoch}
	ctx := context.Background()
	if _, err := s.Query(ctx, q); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Query(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCachedHitParallel is BenchmarkCachedHit from every CPU at once,
// where the one mutex is contended.
func BenchmarkCachedHitParallel(b *testing.B) {
	s := New(&fake{}, Options{TTL: time.Hour})
	q := queries.Query{Text: `sum(rate(http_requests_total{job="api"}[1m]))`, Time: epoch}
	ctx := context.Background()
	if _, err := s.Query(ctx, q); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Query(ctx, q); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
