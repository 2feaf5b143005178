package bolt

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// Measured with go test -run '^$' -bench . -benchtime 2s ./runs/bolt/ on
// the 2-core development machine (virtual disk, sync on); the figures are
// in the README.
//
// Commits are not delayed by a batch window: a lone durable writer pays one
// commit per write, and writers that arrive while a commit is syncing share
// the next one. Appended writes (analysis records) wait for the flush
// interval or the next durable commit, so they cost no fsync of their own.

// benchCanaries is how many canaries the benchmarks spread their writes
// over.
const benchCanaries = 100

var benchNames = func() []string {
	names := make([]string, benchCanaries)
	for i := range names {
		names[i] = fmt.Sprintf("service-%03d", i)
	}
	return names
}()

// reportCommits adds the figures the store is tuned for: writes per second
// and writes per commit (one commit is one fsync).
func reportCommits(b *testing.B, s *Bolt, firstTx int) {
	commits := txID(b, s) - firstTx
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(float64(b.N)/float64(max(commits, 1)), "writes/commit")
}

// BenchmarkGroupCommit commits durable writes (latches, transitions) from 1
// to 64 concurrent writers: writes/commit shows how many share one fsync.
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
						name := benchNames[i%benchCanaries]
						if err := s.Commit(ctx, analysed("bench", name, "r1", uint64(i), 0)); err != nil {
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

// BenchmarkAppend queues analysis records from 16 writers per core: the
// cost a plain analysis pays, and how many records share one commit.
func BenchmarkAppend(b *testing.B) {
	s := openTest(b, Options{})
	var next atomic.Uint64
	first := txID(b, s)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			s.Append(analysed("bench", benchNames[i%benchCanaries], "r1", i, 0), nil)
		}
	})
	b.StopTimer()
	s.commits.close() // wait for the queue to drain, then count
	reportCommits(b, s, first)
}
