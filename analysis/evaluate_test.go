package analysis

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/rules"
)

// sleepySource answers every query with 1 after a delay, recording the
// queries it saw and the most it ran at once.
type sleepySource struct {
	delay    time.Duration
	mu       sync.Mutex
	seen     []string
	inFlight atomic.Int32
	maxSeen  atomic.Int32
}

func (s *sleepySource) Query(ctx context.Context, q queries.Query) (queries.Result, error) {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		m := s.maxSeen.Load()
		if n <= m || s.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	s.mu.Lock()
	s.seen = append(s.seen, q.Text)
	s.mu.Unlock()
	select {
	case <-time.After(s.delay):
		return queries.Result{Samples: []queries.Sample{{Value: 1}}}, nil
	case <-ctx.Done():
		return queries.Result{}, ctx.Err()
	}
}

func TestEvaluate(t *testing.T) {
	pol := loadPolicy(t, "testdata/six-queries.yaml", "six-queries")
	tests := []struct {
		name        string
		delay       time.Duration
		timeout     time.Duration
		concurrency int
		params      map[string]string
		wantErr     error
		verdict     Verdict
		maxInFlight int32
	}{
		{name: "pass", delay: time.Millisecond, params: map[string]string{"name": "lmp"}, verdict: VerdictPass, maxInFlight: 6},
		{name: "bounded concurrency", delay: 5 * time.Millisecond, concurrency: 2, params: map[string]string{"name": "lmp"}, verdict: VerdictPass, maxInFlight: 2},
		{name: "one deadline for the whole evaluation", delay: time.Second, timeout: 20 * time.Millisecond, params: map[string]string{"name": "lmp"}, verdict: VerdictInconclusive},
		{name: "missing param", params: map[string]string{}, wantErr: rules.ErrInvalidParams},
		{name: "injection attempt", params: map[string]string{"name": `x"} or vector(1) #`}, wantErr: rules.ErrInvalidParams},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &sleepySource{delay: tt.delay}
			e := NewEvaluator(Options{
				Sources:     queries.Registry{{Kind: "prometheus"}: src},
				Timeout:     tt.timeout,
				Concurrency: tt.concurrency,
			})
			res, err := e.Evaluate(context.Background(), pol, tt.params, time.Time{})
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				require.Empty(t, src.seen, "nothing may be queried with bad params")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.verdict, res.Verdict, res.Reason)
			require.Len(t, res.Queries, 6)
			require.Contains(t, src.seen, `a{app="lmp"}`)
			if tt.maxInFlight > 0 {
				require.LessOrEqual(t, src.maxSeen.Load(), tt.maxInFlight)
			}
			if tt.timeout > 0 {
				require.ErrorIs(t, res.Queries[0].Err(), ErrEvaluationTimeout)
				require.Equal(t, rules.OutcomeError, res.Rules[0].Verdict)
			}
		})
	}
}

func TestEvaluateUnknownSource(t *testing.T) {
	pol := loadPolicy(t, "testdata/six-queries.yaml", "six-queries")
	e := NewEvaluator(Options{})
	res, err := e.Evaluate(context.Background(), pol, map[string]string{"name": "lmp"}, time.Time{})
	require.NoError(t, err)
	require.Equal(t, VerdictInconclusive, res.Verdict)
	require.True(t, errors.Is(res.Queries[0].Err(), queries.ErrUnknownSource))
	require.Contains(t, res.Reason, `no prometheus source "default" is configured`)
}

// BenchmarkEvaluateSixSlowQueries shows that queries run concurrently: six
// queries of 50 ms each take about 50 ms together, not 300 ms.
func BenchmarkEvaluateSixSlowQueries(b *testing.B) {
	pol := loadPolicy(b, "testdata/six-queries.yaml", "six-queries")
	src := &sleepySource{delay: 50 * time.Millisecond}
	e := NewEvaluator(Options{Sources: queries.Registry{{Kind: "prometheus"}: src}})
	params := map[string]string{"name": "lmp"}
	b.ReportAllocs()
	for b.Loop() {
		res, err := e.Evaluate(context.Background(), pol, params, time.Time{})
		if err != nil || res.Verdict != VerdictPass {
			b.Fatalf("evaluate: %v %v", err, res)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/eval")
}

// TestPanickingSourceIsAnError: a panic in a source's goroutine used to
// kill the process; now the query fails and its rule is error.
func TestPanickingSourceIsAnError(t *testing.T) {
	pol := loadPolicy(t, "testdata/six-queries.yaml", "six-queries")
	var panics atomic.Int32
	ev := NewEvaluator(Options{
		Sources: queries.Registry{{Kind: "prometheus"}: queries.SourceFunc(func(context.Context, queries.Query) (queries.Result, error) {
			panic("index out of range")
		})},
		Panicked: func(string) { panics.Add(1) },
	})
	res, err := ev.Evaluate(context.Background(), pol, map[string]string{"name": "lmp"}, time.Time{})
	require.NoError(t, err)
	require.Equal(t, VerdictInconclusive, res.Verdict)
	for _, rr := range res.Rules {
		require.Equal(t, rules.OutcomeError, rr.Verdict)
		require.Contains(t, rr.Reason, "source panicked: index out of range")
	}
	require.EqualValues(t, len(pol.Queries), panics.Load())
}
