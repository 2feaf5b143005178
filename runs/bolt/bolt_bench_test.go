package bolt

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// Measured on the 2-core development machine (virtual disk, fsync about
// 0.1-0.5ms, sync on), go test -run '^$' -bench . -benchtime 2s
// ./runs/bolt/:
//
//	BenchmarkUpdateParallel           15,000 ops/s   16 updates/commit  ~10.7 KB, 99 allocs/op
//	BenchmarkGroupCommit/writers=1     2,500 ops/s    1 update/commit
//	BenchmarkGroupCommit/writers=4     5,400 ops/s    2 updates/commit
//	BenchmarkGroupCommit/writers=16   12,400 ops/s    8 updates/commit
//	BenchmarkGroupCommit/writers=64   20,600 ops/s   32 updates/commit
//
// Commits are not delayed by a batch window: a lone writer pays one commit
// per update, and writers that arrive while a commit is syncing share the
// next one. Each write is decoded, changed and encoded before it queues,
// so the serialized commit only copies bytes unless the run changed in
// between. With bbolt's Batch and a 1ms window the same runs gave 620,
// 2,300, 6,300 and 9,000-12,900 ops/s: the window cost every lone call
// its full length and still batched less.

// benchRuns is how many runs the benchmarks spread their updates over.
const benchRuns = 100

var benchNames = func() []string {
	names := make([]string, benchRuns)
	for i := range names {
		names[i] = fmt.Sprintf("service-%03d", i)
	}
	return names
}()

// reportCommits adds the figures the store is tuned for: updates per
// second and updates per commit (one commit is one fsync).
func reportCommits(b *testing.B, s *Bolt, firstTx int) {
	commits := txID(b, s) - firstTx
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(float64(b.N)/float64(max(commits, 1)), "updates/commit")
}

// BenchmarkUpdateParallel appends an evaluation to one of 100 runs per
// operation, from 16 writers per core, with sync on: many webhook calls in
// flight at once.
func BenchmarkUpdateParallel(b *testing.B) {
	ctx := context.Background()
	s := openTest(b, Options{})
	var next atomic.Uint64
	first := txID(b, s)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			name := benchNames[next.Add(1)%benchRuns]
			if _, err := s.Update(ctx, "bench", name, 0, evaluate("bench", name, "r1")); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportCommits(b, s, first)
}

// BenchmarkGroupCommit runs the same updates from 1 to 64 concurrent
// writers: updates/commit shows how many share one fsync.
func BenchmarkGroupCommit(b *testing.B) {
	for _, writers := range []int{1, 4, 16, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			ctx := context.Background()
			s := openTest(b, Options{})
			var next atomic.Int64
			first := txID(b, s)
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for range writers {
				wg.Go(func() {
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						name := benchNames[i%benchRuns]
						if _, err := s.Update(ctx, "bench", name, 0, evaluate("bench", name, "r1")); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			reportCommits(b, s, first)
		})
	}
}
