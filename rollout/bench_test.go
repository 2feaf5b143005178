package rollout

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkThousandRollouts runs 1,000 rollouts in one process: each
// iteration is one analysis-and-decision tick of every rollout, 16 at a
// time as Run does, with every transition synced to the store. It reports
// the time per rollout tick, the CPU it costs, and the memory a rollout
// takes once started.
func BenchmarkThousandRollouts(b *testing.B) {
	const n = 1000
	w := newWorld(b)
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("pipeline-%04d", i)
		w.setErr(names[i], 0.001)
		w.start(names[i], func(s *Spec) {
			// Long steps: the benchmark measures ticks, not completions.
			s.Schedule = &Override{Warmup: new(Duration(0)), StepDuration: new(Duration(time.Hour))}
		})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	// Every rollout reaches progressing before the timing starts.
	tickAll := func() {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for _, name := range names {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				_, err := w.o.Tick(ctx, "caiso", name)
				require.NoError(b, err)
			})
		}
		wg.Wait()
	}
	tickAll()
	w.advance(time.Minute)

	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		tickAll()
		w.advance(time.Minute)
	}
	b.StopTimer()
	r, err := w.o.Get(ctx, "caiso", names[0])
	require.NoError(b, err)
	require.Equal(b, PhaseProgressing, r.Phase)
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/rollout-tick")
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n/1024, "KiB/rollout")
}
