package cache

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/aurum/canary/queries"
)

// TestMain checks that no shared call outlives its test: a flight left
// running would be a goroutine and a Prometheus request per leak.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fake is a counting source. Without fn it answers every query at once
// with resultFor(q).
type fake struct {
	calls atomic.Int64
	fn    func(ctx context.Context, q queries.Query) (queries.Result, error)
}

func (f *fake) Query(ctx context.Context, q queries.Query) (queries.Result, error) {
	f.calls.Add(1)
	if f.fn != nil {
		return f.fn(ctx, q)
	}
	return resultFor(q), nil
}

// resultFor names the query in its one sample, so that a test can tell
// whose result a caller got.
func resultFor(q queries.Query) queries.Result {
	return queries.Result{Samples: []queries.Sample{{Labels: map[string]string{"query": q.Text}, Value: 1}}}
}

// gated returns a source function that blocks each call until gate is
// closed, or until the call's context ends, which it reports on ended.
func gated(gate <-chan struct{}, ended chan<- error) func(context.Context, queries.Query) (queries.Result, error) {
	return func(ctx context.Context, q queries.Query) (queries.Result, error) {
		select {
		case <-gate:
			return resultFor(q), nil
		case <-ctx.Done():
			if ended != nil {
				ended <- context.Cause(ctx)
			}
			return queries.Result{}, ctx.Err()
		}
	}
}

// clock is a fake clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// waitShared waits until n callers have joined a flight, so that a test
// releases the source only once everyone is waiting on it.
func waitShared(t *testing.T, s *Source, n uint64) {
	t.Helper()
	require.Eventually(t, func() bool { return s.Stats().Shared >= n }, 5*time.Second, time.Millisecond)
}

func TestConcurrentIdenticalShareOneCall(t *testing.T) {
	tests := []struct {
		name string
		ttl  time.Duration
	}{
		{name: "cached", ttl: 0},
		{name: "caching disabled", ttl: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gate := make(chan struct{})
			src := &fake{fn: gated(gate, nil)}
			s := New(src, Options{TTL: tt.ttl})
			q := queries.Query{Text: `sum(rate(http_requests_total[1m]))`}

			const callers = 100
			results := make([]queries.Result, callers)
			errs := make([]error, callers)
			var wg sync.WaitGroup
			for i := range callers {
				wg.Go(func() { results[i], errs[i] = s.Query(t.Context(), q) })
			}
			waitShared(t, s, callers-1)
			close(gate)
			wg.Wait()

			require.EqualValues(t, 1, src.calls.Load())
			for i := range callers {
				require.NoError(t, errs[i])
				require.Equal(t, resultFor(q), results[i])
			}
			require.Equal(t, Stats{Misses: 1, Shared: callers - 1}, s.Stats())
			require.Empty(t, s.flights)
		})
	}
}

func TestDistinctQueriesDistinctCalls(t *testing.T) {
	at := epoch
	wall := time.Now() // has a monotonic reading; Round(0) strips it
	tests := []struct {
		name      string
		a, b      queries.Query
		wantCalls int64
	}{
		{name: "same now query", a: queries.Query{Text: "up"}, b: queries.Query{Text: "up"}, wantCalls: 1},
		{name: "same explicit time", a: queries.Query{Text: "up", Time: at}, b: queries.Query{Text: "up", Time: at}, wantCalls: 1},
		{name: "same fields in another order", a: queries.Query{Fields: map[string]string{"group": "g", "topics": "t"}}, b: queries.Query{Fields: map[string]string{"topics": "t", "group": "g"}}, wantCalls: 1},
		{
			name:      "same instant in another location",
			a:         queries.Query{Text: "up", Time: at},
			b:         queries.Query{Text: "up", Time: at.In(time.FixedZone("CET", 3600))},
			wantCalls: 1,
		},
		{
			name:      "monotonic reading ignored",
			a:         queries.Query{Text: "up", Time: wall},
			b:         queries.Query{Text: "up", Time: wall.Round(0)},
			wantCalls: 1,
		},
		{name: "text", a: queries.Query{Text: "up"}, b: queries.Query{Text: "down"}, wantCalls: 2},
		{name: "now against explicit time", a: queries.Query{Text: "up"}, b: queries.Query{Text: "up", Time: at}, wantCalls: 2},
		{name: "time", a: queries.Query{Text: "up", Time: at}, b: queries.Query{Text: "up", Time: at.Add(time.Nanosecond)}, wantCalls: 2},
		{
			name:      "range",
			a:         queries.Query{Text: "up", Time: at, Range: time.Minute, Step: time.Second},
			b:         queries.Query{Text: "up", Time: at, Range: 2 * time.Minute, Step: time.Second},
			wantCalls: 2,
		},
		{
			name:      "step",
			a:         queries.Query{Text: "up", Time: at, Range: time.Minute, Step: time.Second},
			b:         queries.Query{Text: "up", Time: at, Range: time.Minute, Step: 2 * time.Second},
			wantCalls: 2,
		},
		{name: "instant against range", a: queries.Query{Text: "up", Time: at}, b: queries.Query{Text: "up", Time: at, Range: time.Minute}, wantCalls: 2},
		{name: "fields", a: queries.Query{Fields: map[string]string{"group": "a"}}, b: queries.Query{Fields: map[string]string{"group": "b"}}, wantCalls: 2},
		{name: "field names", a: queries.Query{Fields: map[string]string{"a": "b\x00c"}}, b: queries.Query{Fields: map[string]string{"a": "b", "c": ""}}, wantCalls: 2},
		{name: "run", a: queries.Query{Text: "lag", Run: "ns/a@1"}, b: queries.Query{Text: "lag", Run: "ns/a@2"}, wantCalls: 2},
		{
			name:      "same allowlist in another value",
			a:         queries.Query{Text: "probe", Allow: &queries.Allowlist{Hosts: []string{"a"}, Namespaces: []string{"n"}}},
			b:         queries.Query{Text: "probe", Allow: &queries.Allowlist{Hosts: []string{"a"}, Namespaces: []string{"n"}}},
			wantCalls: 1,
		},
		{name: "allowlist against none", a: queries.Query{Text: "probe"}, b: queries.Query{Text: "probe", Allow: &queries.Allowlist{Hosts: []string{"a"}}}, wantCalls: 2},
		{
			name:      "other allowlist",
			a:         queries.Query{Text: "probe", Allow: &queries.Allowlist{Hosts: []string{"a"}}},
			b:         queries.Query{Text: "probe", Allow: &queries.Allowlist{Hosts: []string{"b"}}},
			wantCalls: 2,
		},
		{
			name:      "hosts against namespaces",
			a:         queries.Query{Text: "probe", Allow: &queries.Allowlist{Hosts: []string{"a"}}},
			b:         queries.Query{Text: "probe", Allow: &queries.Allowlist{Namespaces: []string{"a"}}},
			wantCalls: 2,
		},
		{
			name:      "allowlist entry boundaries",
			a:         queries.Query{Text: "probe", Allow: &queries.Allowlist{Hosts: []string{"a", "b"}}},
			b:         queries.Query{Text: "probe", Allow: &queries.Allowlist{Hosts: []string{`a"b`}}},
			wantCalls: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &fake{}
			s := New(src, Options{})
			ra, err := s.Query(t.Context(), tt.a)
			require.NoError(t, err)
			rb, err := s.Query(t.Context(), tt.b)
			require.NoError(t, err)
			require.Equal(t, tt.wantCalls, src.calls.Load())
			require.Equal(t, resultFor(tt.a), ra)
			require.Equal(t, resultFor(tt.b), rb)
		})
	}
}

func TestTTL(t *testing.T) {
	tests := []struct {
		name      string
		ttl       time.Duration
		after     time.Duration // between the two queries
		wantCalls int64
	}{
		{name: "default kept", ttl: 0, after: DefaultTTL - time.Nanosecond, wantCalls: 1},
		{name: "default expired", ttl: 0, after: DefaultTTL, wantCalls: 2},
		{name: "custom kept", ttl: time.Minute, after: 59 * time.Second, wantCalls: 1},
		{name: "custom expired", ttl: time.Minute, after: time.Minute, wantCalls: 2},
		{name: "negative keeps nothing", ttl: -time.Second, after: 0, wantCalls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &clock{t: epoch}
			src := &fake{}
			s := New(src, Options{TTL: tt.ttl, Now: clk.Now})
			q := queries.Query{Text: "up"}

			_, err := s.Query(t.Context(), q)
			require.NoError(t, err)
			clk.Advance(tt.after)
			res, err := s.Query(t.Context(), q)
			require.NoError(t, err)
			require.Equal(t, resultFor(q), res)
			require.Equal(t, tt.wantCalls, src.calls.Load())
			require.Equal(t, Stats{Hits: uint64(2 - tt.wantCalls), Misses: uint64(tt.wantCalls)}, s.Stats())
		})
	}
}

func TestErrors(t *testing.T) {
	boom := errors.New("boom")

	t.Run("not cached", func(t *testing.T) {
		var fail atomic.Bool
		fail.Store(true)
		src := &fake{fn: func(_ context.Context, q queries.Query) (queries.Result, error) {
			if fail.Load() {
				return queries.Result{}, boom
			}
			return resultFor(q), nil
		}}
		s := New(src, Options{})
		q := queries.Query{Text: "up"}

		_, err := s.Query(t.Context(), q)
		require.ErrorIs(t, err, boom)
		fail.Store(false)
		res, err := s.Query(t.Context(), q)
		require.NoError(t, err)
		require.Equal(t, resultFor(q), res)
		require.EqualValues(t, 2, src.calls.Load())
	})

	t.Run("shared by the waiters", func(t *testing.T) {
		gate := make(chan struct{})
		src := &fake{fn: func(context.Context, queries.Query) (queries.Result, error) {
			<-gate
			return queries.Result{}, boom
		}}
		s := New(src, Options{})
		q := queries.Query{Text: "up"}

		const callers = 10
		errs := make([]error, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() { _, errs[i] = s.Query(t.Context(), q) })
		}
		waitShared(t, s, callers-1)
		close(gate)
		wg.Wait()
		for _, err := range errs {
			require.ErrorIs(t, err, boom)
		}
		require.EqualValues(t, 1, src.calls.Load())
		require.Empty(t, s.entries)
	})
}

// TestAllowlistNotShared checks that a probe one policy may run does not
// answer, from the cache or in flight, a policy whose allowlist refuses
// the target.
func TestAllowlistNotShared(t *testing.T) {
	src := &fake{fn: func(_ context.Context, q queries.Query) (queries.Result, error) {
		if err := queries.AllowHost("http probe", "evil.example", queries.Allowlist{}, q.Allow); err != nil {
			return queries.Result{}, err
		}
		return resultFor(q), nil
	}}
	s := New(src, Options{TTL: time.Minute})
	fields := map[string]string{"url": "http://evil.example/"}
	open := queries.Query{Fields: fields, Allow: &queries.Allowlist{Hosts: []string{"*.example"}}}
	strict := queries.Query{Fields: fields, Allow: &queries.Allowlist{Hosts: []string{"good.example"}}}

	_, err := s.Query(t.Context(), open)
	require.NoError(t, err)
	_, err = s.Query(t.Context(), strict)
	require.ErrorIs(t, err, queries.ErrBadQuery)
	require.EqualError(t, err, `http probe: host "evil.example" is not in the policy's allowlist`)
	require.EqualValues(t, 2, src.calls.Load())
}

// TestPanic checks that a source that panics in the shared call fails
// that call for every waiter, and does not end the test binary.
func TestPanic(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name      string
		fn        func()
		wantMsg   string // a prefix for panic(nil), whose text is Go's
		wantCause error
	}{
		{name: "string", fn: func() { panic("boom") }, wantMsg: "query source panicked: boom"},
		{name: "error", fn: func() { panic(boom) }, wantMsg: "query source panicked: boom", wantCause: boom},
		{name: "runtime error", fn: func() {
			var m map[string]int
			m["x"] = 1
		}, wantMsg: "query source panicked: assignment to entry in nil map"},
		{name: "nil", fn: func() { panic(nil) }, wantMsg: "query source panicked: panic called with nil argument"},
		{
			name:    "value on several lines, with a password",
			fn:      func() { panic("bad target\n\thttp://probe:s3cret@db.example/") },
			wantMsg: "query source panicked: bad target http://probe:xxxxx@db.example/",
		},
		{name: "long value", fn: func() { panic(strings.Repeat("x", 2*maxPanicMsg)) }, wantMsg: "query source panicked: " + strings.Repeat("x", maxPanicMsg) + "..."},
		{name: "Goexit", fn: runtime.Goexit, wantMsg: "query source panicked: it called runtime.Goexit instead of answering"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gate := make(chan struct{})
			var panicking atomic.Bool
			panicking.Store(true)
			src := &fake{fn: func(_ context.Context, q queries.Query) (queries.Result, error) {
				<-gate
				if panicking.Load() {
					tt.fn()
				}
				return resultFor(q), nil
			}}
			s := New(src, Options{})
			q := queries.Query{Text: "up"}

			const callers = 10
			errs := make([]error, callers)
			var wg sync.WaitGroup
			for i := range callers {
				wg.Go(func() { _, errs[i] = s.Query(t.Context(), q) })
			}
			waitShared(t, s, callers-1)
			close(gate)
			wg.Wait()

			require.EqualValues(t, 1, src.calls.Load(), "the waiters shared one call")
			for _, err := range errs {
				require.ErrorIs(t, err, queries.ErrPanic)
				require.Equal(t, "panic", queries.Classify(err))
				require.True(t, strings.HasPrefix(err.Error(), tt.wantMsg), "error %q", err)
				require.NotContains(t, err.Error(), "goroutine ")
				require.NotContains(t, err.Error(), ".go:")
				require.NotContains(t, err.Error(), "s3cret")
				require.NotContains(t, err.Error(), "\n")
				if tt.wantCause != nil {
					require.ErrorIs(t, err, tt.wantCause)
				}
			}
			require.Empty(t, s.flights)
			require.Empty(t, s.entries, "a panic is not cached")

			panicking.Store(false)
			res, err := s.Query(t.Context(), q)
			require.NoError(t, err, "the next query calls the source again")
			require.Equal(t, resultFor(q), res)
			require.EqualValues(t, 2, src.calls.Load())
		})
	}
}

func TestOneWaiterLeaving(t *testing.T) {
	cause := errors.New("analysis deadline")
	tests := []struct {
		name string
		// leaverFirst makes the caller that leaves the one that started
		// the call, whose context the call was derived from.
		leaverFirst bool
		// deadline makes the leaving caller leave by its deadline passing
		// rather than by being canceled.
		deadline bool
		wantIs   []error
	}{
		{name: "first caller canceled", leaverFirst: true, wantIs: []error{context.Canceled}},
		{name: "joining caller canceled", wantIs: []error{context.Canceled}},
		{
			name: "first caller's deadline", leaverFirst: true, deadline: true,
			wantIs: []error{queries.ErrTimeout, context.DeadlineExceeded, cause},
		},
		{
			name: "joining caller's deadline", deadline: true,
			wantIs: []error{queries.ErrTimeout, context.DeadlineExceeded, cause},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gate := make(chan struct{})
			ended := make(chan error, 1)
			src := &fake{fn: gated(gate, ended)}
			s := New(src, Options{})
			q := queries.Query{Text: "up"}

			var (
				leaverCtx context.Context
				leave     context.CancelFunc
			)
			if tt.deadline {
				// Long enough for the other caller to join first, even
				// under -race on a busy machine.
				leaverCtx, leave = context.WithTimeoutCause(t.Context(), 250*time.Millisecond, cause)
			} else {
				leaverCtx, leave = context.WithCancel(t.Context())
			}
			defer leave()
			var leaverErr, stayerErr error
			var stayerRes queries.Result
			leaverDone := make(chan struct{})
			stayerDone := make(chan struct{})
			leaver := func() {
				defer close(leaverDone)
				_, leaverErr = s.Query(leaverCtx, q)
			}
			stayer := func() {
				defer close(stayerDone)
				stayerRes, stayerErr = s.Query(t.Context(), q)
			}
			if tt.leaverFirst {
				go leaver()
				require.Eventually(t, func() bool { return src.calls.Load() == 1 }, 5*time.Second, time.Millisecond)
				go stayer()
			} else {
				go stayer()
				require.Eventually(t, func() bool { return src.calls.Load() == 1 }, 5*time.Second, time.Millisecond)
				go leaver()
			}
			waitShared(t, s, 1)

			if !tt.deadline {
				leave()
			}
			<-leaverDone
			for _, want := range tt.wantIs {
				require.ErrorIs(t, leaverErr, want)
			}
			select {
			case cause := <-ended:
				t.Fatalf("the shared call ended with its callers still waiting: %v", cause)
			case <-stayerDone:
				t.Fatal("the remaining caller stopped waiting")
			case <-time.After(20 * time.Millisecond):
			}

			close(gate)
			<-stayerDone
			require.NoError(t, stayerErr)
			require.Equal(t, resultFor(q), stayerRes)
			require.EqualValues(t, 1, src.calls.Load())
		})
	}
}

func TestAllWaitersLeaving(t *testing.T) {
	ended := make(chan error, 1)
	// The first call lingers after its context ends, as a source does
	// while it tears down a request; later calls answer at once.
	linger := make(chan struct{})
	defer close(linger)
	src := &fake{}
	src.fn = func(ctx context.Context, q queries.Query) (queries.Result, error) {
		if src.calls.Load() > 1 {
			return resultFor(q), nil
		}
		<-ctx.Done()
		ended <- context.Cause(ctx)
		<-linger
		return queries.Result{}, ctx.Err()
	}
	s := New(src, Options{})
	q := queries.Query{Text: "up"}

	const callers = 5
	ctx, cancel := context.WithCancel(t.Context())
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { _, errs[i] = s.Query(ctx, q) })
	}
	waitShared(t, s, callers-1)
	cancel()
	wg.Wait()
	for _, err := range errs {
		require.ErrorIs(t, err, context.Canceled)
		require.NotErrorIs(t, err, queries.ErrTimeout)
	}
	require.ErrorIs(t, <-ended, ErrAbandoned)

	// The abandoned call is unlisted at once: the next caller starts a
	// fresh one rather than joining a call about to fail for others'
	// reasons. The timeout turns a join into a failure, not a hang.
	fresh, cancelFresh := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancelFresh()
	res, err := s.Query(fresh, q)
	require.NoError(t, err)
	require.Equal(t, resultFor(q), res)
	require.EqualValues(t, 2, src.calls.Load())
	require.Equal(t, Stats{Misses: 2, Shared: callers - 1}, s.Stats())
}

func TestDoneContextStartsNothing(t *testing.T) {
	src := &fake{}
	s := New(src, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.Query(ctx, queries.Query{Text: "up"})
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, src.calls.Load())
	require.Equal(t, Stats{}, s.Stats())
}

// ctxKey carries a value through the shared call's context.
type ctxKey struct{}

func TestSharedCallContext(t *testing.T) {
	var (
		gotValue    any
		hasDeadline bool
	)
	src := &fake{fn: func(ctx context.Context, q queries.Query) (queries.Result, error) {
		gotValue = ctx.Value(ctxKey{})
		_, hasDeadline = ctx.Deadline()
		return resultFor(q), nil
	}}
	s := New(src, Options{})
	ctx, cancel := context.WithTimeout(context.WithValue(t.Context(), ctxKey{}, "trace-1"), time.Minute)
	defer cancel()

	_, err := s.Query(ctx, queries.Query{Text: "up"})
	require.NoError(t, err)
	require.Equal(t, "trace-1", gotValue, "the first caller's values reach the source")
	require.False(t, hasDeadline, "the call is bounded by its waiters, not by the first one's deadline")
}

func TestMaxEntries(t *testing.T) {
	// step queries text after advancing the clock; miss says whether it
	// must reach the source.
	type step struct {
		advance time.Duration
		text    string
		miss    bool
	}
	tests := []struct {
		name    string
		max     int
		steps   []step
		wantLen int
	}{
		{
			name: "oldest evicted when full",
			max:  2,
			steps: []step{
				{text: "a", miss: true}, {text: "b", miss: true}, {text: "c", miss: true},
				{text: "b"}, {text: "c"},
				{text: "a", miss: true},
			},
			wantLen: 2,
		},
		{
			name: "a hit does not save the oldest",
			max:  2,
			steps: []step{
				{text: "a", miss: true}, {text: "b", miss: true}, {text: "a"}, {text: "c", miss: true},
				{text: "b"}, {text: "c"},
			},
			wantLen: 2,
		},
		{
			name: "every expired entry evicted first",
			max:  3,
			steps: []step{
				{text: "a", miss: true}, {text: "b", miss: true},
				{advance: 3 * time.Second, text: "c", miss: true},
				// a and b have expired: both go, though one would do.
				{advance: 3 * time.Second, text: "d", miss: true},
			},
			wantLen: 2,
		},
		{
			name: "expired entries evicted before full",
			max:  100,
			steps: []step{
				{text: "a", miss: true}, {text: "b", miss: true},
				{advance: DefaultTTL, text: "c", miss: true},
			},
			wantLen: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &clock{t: epoch}
			src := &fake{}
			s := New(src, Options{MaxEntries: tt.max, Now: clk.Now})
			for i, st := range tt.steps {
				clk.Advance(st.advance)
				before := src.calls.Load()
				_, err := s.Query(t.Context(), queries.Query{Text: st.text})
				require.NoError(t, err)
				require.Equal(t, st.miss, src.calls.Load() > before, "step %d: %q", i, st.text)
			}
			require.Len(t, s.entries, tt.wantLen)
			require.Equal(t, tt.wantLen, s.order.Len())
		})
	}

	t.Run("default", func(t *testing.T) {
		src := &fake{}
		s := New(src, Options{MaxEntries: 0})
		for i := range DefaultMaxEntries + 1 {
			_, err := s.Query(t.Context(), queries.Query{Text: "up", Time: epoch.Add(time.Duration(i) * time.Second)})
			require.NoError(t, err)
		}
		require.Len(t, s.entries, DefaultMaxEntries)
		_, err := s.Query(t.Context(), queries.Query{Text: "up", Time: epoch})
		require.NoError(t, err)
		require.EqualValues(t, DefaultMaxEntries+2, src.calls.Load(), "the oldest entry was evicted")
	})
}
