// Package cache keeps identical queries from reaching a source more than
// once. Argo Rollouts and Flagger call the engine many times at once for the
// same run; without this wrapper 100 concurrent identical analyses cost
// Prometheus 100 requests, with it they cost one.
//
// A Source does two things, both keyed by the whole query (text, fields,
// run, time, range, step and the policy's allowlist):
//
//   - Callers asking the same query while a call for it is in flight share
//     that one call, its result and its error alike.
//   - A successful result is kept for a TTL, so callers that arrive just
//     after the call finished do not start another. Errors are not kept: the
//     next caller tries again.
//
// # Contexts and deadlines
//
// The shared call does not run under any one caller's context: the caller
// that started it may give up while others still wait. It runs under
// context.WithoutCancel of the first caller's context, so it carries that
// caller's values (trace, logger) but not its cancellation, and it is
// canceled, with cause ErrAbandoned, as soon as the last waiting caller has
// gone. A caller whose context ends stops waiting at once and gets an error
// wrapping its context's error; the call goes on for the others.
//
// The shared call carries no deadline of its own. Giving it the first
// caller's deadline would fail a caller that joined with more time left, for
// a reason that is not its own; and a context's deadline cannot be extended
// when a later caller joins. Reference counting gives the same bound
// without that flaw: each caller leaves when its own deadline passes, so the
// call is canceled when the latest deadline among its callers passes (or all
// of them were canceled), never sooner. A caller without a deadline keeps the
// call alive as long as the source allows; the sources bound every call with
// their own configured timeout.
//
// # Panics
//
// The shared call runs on a goroutine of its own, where a panic in the
// source would end the process. It is recovered instead, into an error
// wrapping queries.ErrPanic that every waiter receives and that is not
// cached; the message holds the panic value, not the stack.
//
// # Results are shared
//
// Every caller of the same query gets the same Result: the same Samples
// slice, the same Labels maps, the same Points. Callers must treat a Result
// as read-only, or copy it before changing it; the analysis package only
// reads. Copying on every hit would cost more than the query it saves.
package cache

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aurum/canary/queries"
)

// Defaults for Options.
const (
	// DefaultTTL keeps a result long enough to absorb a burst of identical
	// calls from Argo Rollouts or Flagger, and short against the minute or
	// so between the steps of a canary, so that a "now" query is at most
	// a few seconds stale.
	DefaultTTL = 5 * time.Second
	// DefaultMaxEntries bounds memory: a result of a canary query is a few
	// series, so 10000 entries are a few megabytes at most.
	DefaultMaxEntries = 10000
)

// ErrAbandoned is the cause with which a shared call's context is canceled
// when every caller waiting for it has gone. The source sees it through
// context.Cause; no caller ever receives it.
var ErrAbandoned = errors.New("every caller waiting for the query has gone")

// Options configure a Source. The zero value gives the defaults.
type Options struct {
	// TTL is how long a successful result is kept; 0 means DefaultTTL. A
	// negative TTL keeps nothing, but concurrent identical queries still
	// share one call.
	TTL time.Duration
	// MaxEntries bounds the results kept; 0 or less means
	// DefaultMaxEntries. When full, expired results go first, then the
	// oldest.
	MaxEntries int
	// Now is the clock; default time.Now. Tests use a fake one.
	Now func() time.Time
}

// Source wraps a queries.Source with in-flight sharing and a short-lived
// result cache. It is a queries.Source and is safe for concurrent use.
// Results it returns are shared between callers and must not be modified;
// see the package documentation.
type Source struct {
	src queries.Source
	ttl time.Duration
	max int
	now func() time.Time

	mu sync.Mutex
	// entries indexes order. order holds the cached results oldest first.
	// One TTL for all means the oldest is also the first to expire, so
	// eviction only ever looks at the front: expired entries first, then
	// the oldest, as the Options promise, in constant time.
	entries map[key]*list.Element
	order   list.List
	flights map[key]*flight

	// Counted outside mu so that Stats never waits for a query.
	hits, misses, shared atomic.Uint64
}

// key is what makes two queries identical. Time is split into seconds and
// nanoseconds because a time.Time as a map key would also compare the
// location and the monotonic reading: the same instant in UTC and in local
// time must be the same query.
type key struct {
	text string
	// fields are Query.Fields in a canonical form, and run the Query's
	// run: a Kafka lag growth differs from run to run.
	fields string
	run    string
	// allow is Query.Allow in a canonical form: a probe one policy may
	// run must not answer, from the cache, a policy whose list refuses
	// its target.
	allow     string
	now       bool // Query.Time is zero: evaluate at the time of the call
	sec       int64
	nsec      int32
	rng, step time.Duration
}

func keyOf(q queries.Query) key {
	k := key{text: q.Text, fields: canonical(q.Fields), run: q.Run, allow: canonicalAllow(q.Allow), rng: q.Range, step: q.Step}
	if q.Time.IsZero() {
		// Two concurrent "now" queries are identical; one that arrives
		// within the TTL gets a result at most TTL old.
		k.now = true
	} else {
		k.sec, k.nsec = q.Time.Unix(), int32(q.Time.Nanosecond())
	}
	return k
}

// canonical writes fields sorted by name, each as name NUL value NUL, which
// no field name or value can forge.
func canonical(fields map[string]string) string {
	if len(fields) == 0 {
		return ""
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(fields[k])
		b.WriteByte(0)
	}
	return b.String()
}

// canonicalAllow writes an allowlist as its entries, each quoted, in their
// order, the hosts and the namespaces marked apart; nil is the empty
// string, which no list writes.
func canonicalAllow(a *queries.Allowlist) string {
	if a == nil {
		return ""
	}
	b := []byte{'h'}
	for _, h := range a.Hosts {
		b = strconv.AppendQuote(b, h)
	}
	b = append(b, 'n')
	for _, ns := range a.Namespaces {
		b = strconv.AppendQuote(b, ns)
	}
	return string(b)
}

// entry is one cached result.
type entry struct {
	key     key
	res     queries.Result
	expires time.Time
}

// flight is one call to the underlying source, shared by its waiters.
type flight struct {
	key key
	// done is closed when res and err are set; they are not written
	// after.
	done chan struct{}
	res  queries.Result
	err  error
	// waiters counts the callers still waiting; guarded by Source.mu.
	waiters int
	cancel  context.CancelCauseFunc
}

// New wraps src. Options left zero take their defaults.
func New(src queries.Source, opts Options) *Source {
	s := &Source{
		src:     src,
		ttl:     opts.TTL,
		max:     opts.MaxEntries,
		now:     opts.Now,
		entries: make(map[key]*list.Element),
		flights: make(map[key]*flight),
	}
	if s.ttl == 0 {
		s.ttl = DefaultTTL
	}
	if s.max <= 0 {
		s.max = DefaultMaxEntries
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// Query returns a cached result of q if one is fresh, joins the call for q
// already in flight if there is one, and otherwise starts that call. The
// Result is shared with other callers and must be treated as read-only.
//
// When ctx ends first, Query returns at once an error that wraps ctx's
// error and cause (and queries.ErrTimeout for a deadline), as the sources
// do; the call itself goes on for the other callers.
func (s *Source) Query(ctx context.Context, q queries.Query) (queries.Result, error) {
	if ctx.Err() != nil {
		// Do not start a call that nobody would wait for.
		return queries.Result{}, queries.ContextError(ctx)
	}
	k := keyOf(q)

	s.mu.Lock()
	if res, ok := s.lookup(k); ok {
		s.mu.Unlock()
		s.hits.Add(1)
		return res, nil
	}
	f, ok := s.flights[k]
	if ok {
		f.waiters++
		s.shared.Add(1)
	} else {
		f = s.start(ctx, k, q)
		s.misses.Add(1)
	}
	s.mu.Unlock()

	select {
	case <-f.done:
		return f.res, f.err
	case <-ctx.Done():
		s.leave(f)
		return queries.Result{}, queries.ContextError(ctx)
	}
}

// lookup returns the fresh cached result for k and drops a stale one. s.mu
// must be held.
func (s *Source) lookup(k key) (queries.Result, bool) {
	el, ok := s.entries[k]
	if !ok {
		return queries.Result{}, false
	}
	e := el.Value.(*entry)
	if !s.now().Before(e.expires) {
		s.order.Remove(el)
		delete(s.entries, k)
		return queries.Result{}, false
	}
	return e.res, true
}

// start registers a flight for k with one waiter and runs it. s.mu must be
// held.
func (s *Source) start(ctx context.Context, k key, q queries.Query) *flight {
	// See the package documentation for why the call keeps the first
	// caller's values but neither its cancellation nor its deadline.
	fctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	f := &flight{key: k, done: make(chan struct{}), waiters: 1, cancel: cancel}
	s.flights[k] = f
	go s.run(fctx, f, q)
	return f
}

// run calls the underlying source and hands the outcome to the flight's
// waiters. A panic in the source is recovered into an error (see call), and
// the waiters are released even should the source end its goroutine with
// runtime.Goexit.
func (s *Source) run(ctx context.Context, f *flight, q queries.Query) {
	res, err := queries.Result{}, error(errGoexit)
	defer func() { s.finish(f, res, err) }()
	res, err = s.call(ctx, q)
}

// errGoexit is what the waiters of a call get when the source called
// runtime.Goexit (t.FailNow in a test's fake, say) instead of returning.
var errGoexit = &queries.Error{Kind: queries.ErrPanic, Msg: "query source panicked: it called runtime.Goexit instead of answering"}

// call runs the underlying source and turns a panic into an error wrapping
// queries.ErrPanic. The message holds the panic value, on one line and cut
// short, with the user info of any URL in it masked; the stack is left out,
// as the error may be shown to whoever asked.
func (s *Source) call(ctx context.Context, q queries.Query) (res queries.Result, err error) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		msg := strings.Join(strings.Fields(queries.RedactURLs(fmt.Sprint(v))), " ")
		if len(msg) > maxPanicMsg {
			msg = strings.ToValidUTF8(msg[:maxPanicMsg], "") + "..."
		}
		e := &queries.Error{Kind: queries.ErrPanic, Msg: "query source panicked: " + msg}
		if cause, ok := v.(error); ok {
			e.Cause = cause
		}
		res, err = queries.Result{}, e
	}()
	return s.src.Query(ctx, q)
}

// maxPanicMsg caps the panic value in an error message.
const maxPanicMsg = 500

// finish hands the outcome of f's call to its waiters and caches a
// success.
func (s *Source) finish(f *flight, res queries.Result, err error) {
	// Leaving the flights map and entering the cache happen under one
	// lock, so that no caller finds neither and starts a second call.
	s.mu.Lock()
	if s.flights[f.key] == f {
		delete(s.flights, f.key)
	}
	if err == nil && s.ttl > 0 {
		s.store(f.key, res)
	}
	f.res, f.err = res, err
	s.mu.Unlock()

	close(f.done)
	f.cancel(nil) // release the context's resources
}

// store caches res under k, making room first. s.mu must be held.
func (s *Source) store(k key, res queries.Result) {
	now := s.now()
	if el, ok := s.entries[k]; ok {
		// A call abandoned by its waiters finished after a newer call
		// for the same query; keep one entry, the newer.
		s.order.Remove(el)
		delete(s.entries, k)
	}
	// Expired entries sit at the front, followed by the oldest live ones:
	// drop every expired entry, then live ones only while still full.
	// Should the clock go backwards, an expired entry may wait behind a
	// live one; lookup still refuses it, so it only costs memory a while.
	for el := s.order.Front(); el != nil; el = s.order.Front() {
		e := el.Value.(*entry)
		if len(s.entries) < s.max && now.Before(e.expires) {
			break
		}
		s.order.Remove(el)
		delete(s.entries, e.key)
	}
	s.entries[k] = s.order.PushBack(&entry{key: k, res: res, expires: now.Add(s.ttl)})
}

// leave takes a waiter whose context ended off f, and cancels f when it was
// the last one.
func (s *Source) leave(f *flight) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f.waiters--
	if f.waiters > 0 {
		return
	}
	// Unlist the flight before canceling it: a caller arriving now must
	// start a fresh call, not join one that is about to fail with an error
	// that is none of its business.
	if s.flights[f.key] == f {
		delete(s.flights, f.key)
	}
	f.cancel(ErrAbandoned)
}

// Stats counts what Query did since New. Hits+Misses+Shared is the number of
// Query calls whose context was live on entry; Misses is the number of calls
// that reached the underlying source.
type Stats struct {
	// Hits were answered from the cache.
	Hits uint64
	// Misses started a call to the underlying source.
	Misses uint64
	// Shared joined a call already in flight.
	Shared uint64
}

// Stats returns the counters, for metrics. The three are read one after
// another, not as one snapshot.
func (s *Source) Stats() Stats {
	return Stats{Hits: s.hits.Load(), Misses: s.misses.Load(), Shared: s.shared.Load()}
}
