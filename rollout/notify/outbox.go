package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/aurum/canary/runs"
)

// namespace is the namespace of the metrics.
const namespace = "canary"

// kindOutbox is the store's document kind of queued and sent
// notifications, keyed "route id".
const kindOutbox = "outbox"

// Defaults of the outbox.
const (
	// DedupWindow is how long a sent or dropped notification is
	// remembered, so that the same event seen again (a redelivered alert,
	// a restart) is not sent twice.
	DedupWindow = 24 * time.Hour
	// MaxAttempts is how many times a notification is tried before it is
	// dropped: with backoff up to MaxBackoff, about a day.
	MaxAttempts = 300
	// MaxBackoff caps the wait between attempts.
	MaxBackoff = 5 * time.Minute
	// MaxPending bounds the notifications waiting on one route; beyond
	// it the oldest is dropped (and counted), so a route that is down for
	// days cannot fill the disk.
	MaxPending = 10000
	// sendTimeout bounds one attempt.
	sendTimeout = 15 * time.Second
)

// Entry states.
const (
	statePending = "pending"
	stateSent    = "sent"
	stateDropped = "dropped"
)

// entry is one notification for one route, as the outbox keeps it.
type entry struct {
	Route        string       `json:"route"`
	Notification Notification `json:"notification"`
	State        string       `json:"state"`
	Attempts     int          `json:"attempts"`
	NextAt       time.Time    `json:"nextAt,omitzero"`
	QueuedAt     time.Time    `json:"queuedAt"`
	DoneAt       time.Time    `json:"doneAt,omitzero"`
	LastError    string       `json:"lastError,omitempty"`
}

func (e *entry) key() string { return e.Route + " " + e.Notification.ID }

// Store is what the outbox keeps its entries in: the run store's
// documents, with a write that does not wait for its commit.
type Store interface {
	runs.Documents
	// QueueDocument stores a document without waiting: it is committed
	// with the next synced write or within the store's flush interval.
	QueueDocument(kind, key string, value []byte, done func(error))
}

// OutboxOptions configure an Outbox.
type OutboxOptions struct {
	Store  Store
	Routes []*Route
	// Registerer, when set, gets canary_notifications_total and
	// canary_notifications_pending.
	Registerer prometheus.Registerer
	// Panicked, when set, counts a recovered panic.
	Panicked func(component string)
	Logger   *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Outbox queues notifications in the store and delivers them, one worker
// per route. Enqueue never waits for a delivery or a disk.
type Outbox struct {
	o     OutboxOptions
	sent  *prometheus.CounterVec
	state map[string]*routeState

	mu   sync.Mutex
	seen map[string]time.Time // keys of entries known, pending or done
}

// routeState is a route's queue and what it last did.
type routeState struct {
	route *Route
	wake  chan struct{}

	mu        sync.Mutex
	pending   []*entry
	sent      int
	dropped   int
	lastSent  time.Time
	lastError string
	errorAt   time.Time
}

// NewOutbox loads what a previous process left queued and returns the
// outbox; Run delivers.
func NewOutbox(ctx context.Context, o OutboxOptions) (*Outbox, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ob := &Outbox{o: o, state: map[string]*routeState{}, seen: map[string]time.Time{}}
	f := promauto.With(o.Registerer)
	ob.sent = f.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "notifications_total",
		Help: "Notification deliveries by route and result: sent, error (an attempt failed; it is retried), dropped (a 4xx, too many attempts or too many waiting).",
	}, []string{"route", "result"})
	for _, r := range o.Routes {
		if _, dup := ob.state[r.Name]; dup {
			return nil, fmt.Errorf("notification route %q is named twice", r.Name)
		}
		ob.state[r.Name] = &routeState{route: r, wake: make(chan struct{}, 1)}
		for _, result := range []string{"sent", "error", "dropped"} {
			ob.sent.WithLabelValues(r.Name, result)
		}
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "notifications_pending",
			Help: "Notifications waiting to be delivered, every route together.",
		}, func() float64 {
			n := 0
			for _, st := range ob.state {
				st.mu.Lock()
				n += len(st.pending)
				st.mu.Unlock()
			}
			return float64(n)
		}))
	}
	for _, r := range o.Routes {
		if l, ok := r.Sender.(interface {
			load(context.Context, runs.Documents, string) error
		}); ok {
			if err := l.load(ctx, o.Store, r.Name); err != nil {
				return nil, fmt.Errorf("notification route %s: %w", r.Name, err)
			}
		}
	}
	docs, err := o.Store.DocumentsOf(ctx, kindOutbox)
	if err != nil {
		return nil, fmt.Errorf("load the notification outbox: %w", err)
	}
	now := o.Now()
	for key, data := range docs {
		var e entry
		if err := json.Unmarshal(data, &e); err != nil {
			o.Logger.Error("notification in the outbox does not decode; dropped", "key", key, "err", err)
			_ = o.Store.DeleteDocument(ctx, kindOutbox, key)
			continue
		}
		st := ob.state[e.Route]
		switch {
		case e.State != statePending && now.Sub(e.DoneAt) > DedupWindow,
			e.State == statePending && st == nil:
			// Done long ago, or for a route that is gone.
			_ = o.Store.DeleteDocument(ctx, kindOutbox, key)
		case e.State == statePending:
			st.pending = append(st.pending, &e)
			ob.seen[key] = e.QueuedAt
		default:
			ob.seen[key] = e.DoneAt
		}
	}
	for _, st := range ob.state {
		slices.SortFunc(st.pending, func(a, b *entry) int { return a.NextAt.Compare(b.NextAt) })
	}
	return ob, nil
}

// Enqueue queues n for every route whose filter takes it, once per route
// however often the same notification (by ID) is enqueued.
func (ob *Outbox) Enqueue(n Notification) {
	now := ob.o.Now()
	if n.At.IsZero() {
		n.At = now
	}
	for _, st := range ob.state {
		if st.route.Filter.Takes(n) {
			ob.enqueue(st, n, now)
		}
	}
}

// enqueue queues n for one route, unless it was queued there before.
func (ob *Outbox) enqueue(st *routeState, n Notification, now time.Time) {
	e := &entry{Route: st.route.Name, Notification: n, State: statePending, NextAt: now, QueuedAt: now}
	ob.mu.Lock()
	if _, dup := ob.seen[e.key()]; dup {
		ob.mu.Unlock()
		return
	}
	ob.seen[e.key()] = now
	ob.mu.Unlock()
	ob.persist(e)
	st.mu.Lock()
	st.pending = append(st.pending, e)
	if len(st.pending) > MaxPending {
		old := st.pending[0]
		st.pending = st.pending[1:]
		st.dropped++
		old.State, old.DoneAt, old.LastError = stateDropped, now, "too many notifications waiting on this route"
		ob.persist(old)
		ob.sent.WithLabelValues(st.route.Name, "dropped").Inc()
		ob.o.Logger.Warn("notification dropped: too many waiting on its route", "route", st.route.Name, "id", old.Notification.ID)
	}
	st.mu.Unlock()
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

// ResolveStale resolves the conditions a route's sender still holds firing
// (canary's alerts in an Alertmanager) for which live reports false: the
// hub calls it at start, once it knows what holds. The resolution goes to
// that route alone, whatever its filter: the alert is its own.
func (ob *Outbox) ResolveStale(live func(condition string) bool, at time.Time) {
	for _, st := range ob.state {
		h, ok := st.route.Sender.(interface {
			firing() map[string]map[string]string
		})
		if !ok {
			continue
		}
		for cond, labels := range h.firing() {
			if live(cond) {
				continue
			}
			n := Notification{ID: "stale/" + cond + "/" + strconv.FormatInt(at.UnixNano(), 36), Kind: Kind(cond[:strings.IndexByte(cond+" ", ' ')]),
				Severity: Severity(labels["severity"]), Resolved: true, Condition: cond, Namespace: labels["namespace"],
				Name: labels["name"], Revision: labels["revision"], Policy: labels["policy"], Rollout: labels["rollout"],
				Group: labels["group"], At: at, Reason: "it no longer held when canary serve started"}
			n.Summary = fmt.Sprintf("%s on %s is over", strings.ReplaceAll(string(n.Kind), "_", " "), n.Target())
			ob.enqueue(st, n, at)
		}
	}
}

// persist writes an entry without waiting for the disk.
func (ob *Outbox) persist(e *entry) {
	data, err := json.Marshal(e)
	if err != nil {
		ob.o.Logger.Error("notification not written to the outbox", "id", e.Notification.ID, "err", err)
		return
	}
	ob.o.Store.QueueDocument(kindOutbox, e.key(), data, func(err error) {
		if err != nil {
			ob.o.Logger.Error("notification not written to the outbox", "id", e.Notification.ID, "err", err)
		}
	})
}

// settle writes a delivered or dropped entry and waits for the disk: the
// sooner it is there, the smaller the window in which a crash would send
// it again. It runs in the route's worker, never on an answer's path.
func (ob *Outbox) settle(e *entry) {
	data, err := json.Marshal(e)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
		_, err = ob.o.Store.UpdateDocument(ctx, kindOutbox, e.key(), func([]byte) ([]byte, error) { return data, nil })
		cancel()
	}
	if err != nil {
		ob.o.Logger.Error("notification's delivery not written to the outbox; a restart may send it again",
			"id", e.Notification.ID, "err", err)
	}
}

// Run delivers until ctx is done: one worker per route, and a sweep that
// forgets what was done more than DedupWindow ago.
func (ob *Outbox) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, st := range ob.state {
		wg.Go(func() { ob.guard(ctx, "route "+st.route.Name, func() { ob.work(ctx, st) }) })
		// A sender with work of its own (Alertmanager resends what is
		// still firing) runs beside its route's worker.
		if r, ok := st.route.Sender.(interface{ Run(context.Context) }); ok {
			wg.Go(func() { ob.guard(ctx, "route "+st.route.Name+" resend", func() { r.Run(ctx) }) })
		}
	}
	wg.Go(func() { ob.guard(ctx, "outbox sweep", func() { ob.sweeper(ctx) }) })
	wg.Wait()
}

// guard runs fn until ctx is done, starting it again a second after a
// panic: a bug in one route must not stop every delivery for good.
func (ob *Outbox) guard(ctx context.Context, what string, fn func()) {
	for ctx.Err() == nil {
		func() {
			defer func() {
				if p := recover(); p != nil {
					if ob.o.Panicked != nil {
						ob.o.Panicked("notify")
					}
					ob.o.Logger.Error("notification worker panicked; restarting it", "worker", what, "panic", fmt.Sprint(p))
				}
			}()
			fn()
		}()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// sweeper sweeps every hour until ctx is done.
func (ob *Outbox) sweeper(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			ob.sweep(ctx)
		}
	}
}

// sweep forgets entries done more than DedupWindow ago.
func (ob *Outbox) sweep(ctx context.Context) {
	now := ob.o.Now()
	ob.mu.Lock()
	var old []string
	for key, at := range ob.seen {
		if now.Sub(at) > DedupWindow {
			old = append(old, key)
		}
	}
	ob.mu.Unlock()
	for _, key := range old {
		route, _, _ := strings.Cut(key, " ")
		if st := ob.state[route]; st != nil && st.has(key) {
			continue // still waiting: a route down for a day
		}
		if err := ob.o.Store.DeleteDocument(ctx, kindOutbox, key); err != nil {
			ob.o.Logger.Error("old notification not deleted", "key", key, "err", err)
			continue
		}
		ob.mu.Lock()
		delete(ob.seen, key)
		ob.mu.Unlock()
	}
}

func (st *routeState) has(key string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, e := range st.pending {
		if e.key() == key {
			return true
		}
	}
	return false
}

// work delivers a route's notifications in order, each when it is due.
func (ob *Outbox) work(ctx context.Context, st *routeState) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wait := ob.deliverDue(ctx, st)
		if ctx.Err() != nil {
			return
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-st.wake:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// deliverDue sends what is due and returns how long to wait for the next.
func (ob *Outbox) deliverDue(ctx context.Context, st *routeState) time.Duration {
	for {
		st.mu.Lock()
		if len(st.pending) == 0 {
			st.mu.Unlock()
			return time.Hour
		}
		slices.SortStableFunc(st.pending, func(a, b *entry) int { return a.NextAt.Compare(b.NextAt) })
		e := st.pending[0]
		if wait := e.NextAt.Sub(ob.o.Now()); wait > 0 {
			st.mu.Unlock()
			return wait
		}
		st.mu.Unlock()
		if err := st.route.wait(ctx); err != nil {
			return time.Second
		}
		err := ob.send(ctx, st.route, e.Notification)
		now := ob.o.Now()
		st.mu.Lock()
		e.Attempts++
		switch {
		case err == nil:
			e.State, e.DoneAt, e.LastError = stateSent, now, ""
			st.sent++
			st.lastSent = now
			ob.sent.WithLabelValues(st.route.Name, "sent").Inc()
		case errors.Is(err, ErrPermanent) || e.Attempts >= MaxAttempts:
			e.State, e.DoneAt, e.LastError = stateDropped, now, err.Error()
			st.dropped++
			st.lastError, st.errorAt = err.Error(), now
			ob.sent.WithLabelValues(st.route.Name, "dropped").Inc()
			ob.o.Logger.Error("notification dropped", "route", st.route.Name, "id", e.Notification.ID, "attempts", e.Attempts, "err", err)
		default:
			e.NextAt, e.LastError = now.Add(backoff(e.Attempts)), err.Error()
			st.lastError, st.errorAt = err.Error(), now
			ob.sent.WithLabelValues(st.route.Name, "error").Inc()
			ob.o.Logger.Warn("notification not delivered; retrying", "route", st.route.Name, "id", e.Notification.ID,
				"attempts", e.Attempts, "retry_at", e.NextAt, "err", err)
		}
		if e.State != statePending {
			st.pending = slices.DeleteFunc(st.pending, func(x *entry) bool { return x == e })
		}
		st.mu.Unlock()
		if e.State == statePending {
			ob.persist(e)
		} else {
			ob.settle(e)
		}
		if ctx.Err() != nil {
			return 0
		}
	}
}

// send makes one attempt, recovering a panicking sender into an error.
func (ob *Outbox) send(ctx context.Context, r *Route, n Notification) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if ob.o.Panicked != nil {
				ob.o.Panicked("notify")
			}
			err = fmt.Errorf("notification route %s panicked: %v", r.Name, p)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	return r.Sender.Notify(ctx, n)
}

// backoff is the wait before attempt n+1: 1s, 2s, 4s... up to MaxBackoff.
func backoff(n int) time.Duration {
	return min(time.Second<<min(n-1, 20), MaxBackoff)
}

// Wait returns once no notification waits on any route, or with ctx's
// error: for a program that wants its last notifications out before it
// exits, such as the demo.
func (ob *Outbox) Wait(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		pending := 0
		for _, st := range ob.Status() {
			pending += st.Pending
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// RouteStatus is what a route did lately, for the status endpoint.
type RouteStatus struct {
	Name        string    `json:"name"`
	Kind        string    `json:"kind"`
	Pending     int       `json:"pending"`
	Sent        int       `json:"sent"`
	Dropped     int       `json:"dropped"`
	LastSent    time.Time `json:"lastSent,omitzero"`
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
}

// Status reports every route, by name.
func (ob *Outbox) Status() []RouteStatus {
	out := make([]RouteStatus, 0, len(ob.state))
	for _, st := range ob.state {
		st.mu.Lock()
		out = append(out, RouteStatus{Name: st.route.Name, Kind: st.route.Kind, Pending: len(st.pending), Sent: st.sent,
			Dropped: st.dropped, LastSent: st.lastSent, LastError: st.lastError, LastErrorAt: st.errorAt})
		st.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b RouteStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}
