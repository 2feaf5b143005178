package runs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/rules"
)

// Defaults for Options.
const (
	// DefaultMaxRevisions bounds the runs one canary keeps. When a new
	// revision needs room, the oldest run that is not current and holds
	// no latch goes, with its history.
	DefaultMaxRevisions = 16
	// DefaultMaxCanaries bounds the canaries kept; beyond it a new canary
	// is refused (ErrFull) until retention frees room.
	DefaultMaxCanaries = 10000
	// DefaultRetention is how long a canary may stay idle before it is
	// deleted with its history.
	DefaultRetention = 14 * 24 * time.Hour
	// DefaultLatchedRetention is how long a canary holding a rollback
	// latch may stay idle: much longer, since deleting it lifts the latch.
	DefaultLatchedRetention = 90 * 24 * time.Hour
)

// Options configure Runs. Store is required.
type Options struct {
	Store Store
	// History is how many evaluations each run keeps; default
	// DefaultHistory.
	History int
	// MaxRevisions bounds the runs of one canary; default
	// DefaultMaxRevisions.
	MaxRevisions int
	// MaxCanaries bounds the canaries; default DefaultMaxCanaries.
	MaxCanaries int
	// Retention is how long an idle canary is kept; default
	// DefaultRetention. LatchedRetention is the same for a canary with a
	// rollback latch; default DefaultLatchedRetention, negative keeps it
	// until the latch is lifted.
	Retention, LatchedRetention time.Duration
	// Metrics, when set, counts analyses, latches, store errors and
	// panics.
	Metrics *Metrics
	Logger  *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Runs tracks canary runs: it answers analyses for them, from their
// latches when one stands, takes manual overrides, Flagger events and
// Alertmanager alerts, and stores every change before answering it.
//
// Every canary is held in memory, as last written: Runs is the only writer
// of its store, which the store guarantees with a file lock. Changes to
// one canary are serialised; changes to different canaries run in
// parallel and share the store's commits.
type Runs struct {
	store   Store
	o       Options
	logger  *slog.Logger
	now     func() time.Time
	metrics *Metrics
	subs    []Subscriber

	mu       sync.RWMutex
	canaries map[string]*entry
}

// entry is one canary in memory.
type entry struct {
	// mu serialises changes to the canary.
	mu sync.Mutex
	// snap is the canary as last written; never changed in place.
	snap atomic.Pointer[snapshot]
	// gone is set, under mu, when retention deleted the canary: a writer
	// that found the entry before must look again.
	gone bool
}

// snapshot is a canary as stored and, rendered lazily, the alert matchers
// of its runs.
type snapshot struct {
	canary   *Canary
	once     sync.Once
	set      *rules.Set
	matchers map[string][]alertMatcher
}

// New loads the canaries from the store.
func New(ctx context.Context, o Options) (*Runs, error) {
	if o.Store == nil {
		return nil, errors.New("runs: a store is required")
	}
	o.History = cmp.Or(o.History, DefaultHistory)
	o.MaxRevisions = max(cmp.Or(o.MaxRevisions, DefaultMaxRevisions), 1)
	o.MaxCanaries = cmp.Or(o.MaxCanaries, DefaultMaxCanaries)
	o.Retention = cmp.Or(o.Retention, DefaultRetention)
	o.LatchedRetention = cmp.Or(o.LatchedRetention, DefaultLatchedRetention)
	r := &Runs{store: o.Store, o: o, logger: o.Logger, now: o.Now, metrics: o.Metrics, canaries: map[string]*entry{}}
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	all, err := r.store.Canaries(ctx)
	if err != nil {
		return nil, fmt.Errorf("load runs: %w", err)
	}
	for _, c := range all {
		e := &entry{}
		e.snap.Store(&snapshot{canary: c})
		r.canaries[c.Key()] = e
	}
	if r.metrics != nil {
		r.metrics.watch(r)
		r.Subscribe(r.metrics)
	}
	return r, nil
}

// Ref names the run an analysis is for. An empty Revision means the
// canary's current run, or a new one named after the time of its first
// call. An empty Namespace and Name mean no run at all: the analysis is
// answered and counted, not recorded.
type Ref struct {
	Namespace, Name, Revision string
}

func (ref Ref) validate() error {
	if ref.Namespace == "" || ref.Name == "" {
		return fmt.Errorf("%w: a run needs both a namespace and a name", ErrBadRequest)
	}
	for _, v := range []string{ref.Namespace, ref.Name, ref.Revision} {
		if v != "" && !rules.IsName(v) {
			return fmt.Errorf("%w: namespace, name and revision must be Kubernetes-style names, got %s", ErrBadRequest, strconv.Quote(v))
		}
	}
	return nil
}

// snapshotOf returns the canary as last written, or nil.
func (r *Runs) snapshotOf(namespace, name string) *Canary {
	r.mu.RLock()
	e := r.canaries[key(namespace, name)]
	r.mu.RUnlock()
	if e == nil {
		return nil
	}
	if s := e.snap.Load(); s != nil {
		return s.canary
	}
	return nil
}

// mutation is what a change function decided.
type mutation struct {
	// canary is the canary as it is to be stored; nil changes nothing.
	canary *Canary
	// durable writes it with Commit, before the answer; otherwise with
	// Append.
	durable bool
	eval    *evaluation
	events  []Event
}

// change applies fn to a canary (nil when there is none) under the
// canary's lock, stores what it decided and publishes its events. It
// returns the canary as stored; with an error wrapping ErrReaction the
// change is stored all the same.
func (r *Runs) change(ctx context.Context, namespace, name string, create bool, fn func(cur *Canary) (mutation, error)) (*Canary, error) {
	for {
		e, err := r.entry(namespace, name, create)
		if err != nil {
			return nil, err
		}
		if e == nil {
			// No such canary, and none to create: fn says what that
			// means (not found, or nothing to do).
			if _, err := fn(nil); err != nil && !errors.Is(err, errNothing) {
				return nil, err
			}
			return nil, nil
		}
		e.mu.Lock()
		if e.gone {
			e.mu.Unlock()
			continue
		}
		c, err := r.apply(ctx, e, fn)
		e.mu.Unlock()
		return c, err
	}
}

func (r *Runs) apply(ctx context.Context, e *entry, fn func(cur *Canary) (mutation, error)) (*Canary, error) {
	var cur *Canary
	if s := e.snap.Load(); s != nil {
		cur = s.canary
	}
	m, err := fn(cur)
	if err == nil && m.canary == nil && cur == nil {
		err = errNothing
	}
	if err != nil {
		if cur == nil {
			r.dropEmpty(e)
		}
		if errors.Is(err, errNothing) {
			return nil, nil
		}
		return nil, err
	}
	if m.canary == nil {
		// Nothing to store; the events still go out (a redelivered
		// alert asserts its latch again).
		return cur, r.publish(ctx, m.events...)
	}
	ch := Change{Canary: m.canary, Keep: r.o.History}
	if m.eval != nil {
		ch.Revision = m.eval.revision
		ch.Evaluation = &m.eval.Evaluation
	}
	if m.durable {
		if err := r.store.Commit(ctx, ch); err != nil {
			r.storeError(err)
			if cur == nil {
				r.dropEmpty(e)
			}
			return nil, fmt.Errorf("%w: %w", ErrStore, err)
		}
	} else {
		r.store.Append(ch, r.appended)
	}
	e.snap.Store(&snapshot{canary: m.canary})
	for i := range m.events {
		if m.events[i].Run != nil {
			m.events[i].Run = m.canary.Run(m.events[i].Run.Revision)
		}
	}
	return m.canary, r.publish(ctx, m.events...)
}

// errNothing is a change function's way to say there is nothing to store
// and no canary to create.
var errNothing = errors.New("nothing to change")

// entry returns the canary's entry, creating it when asked to, within the
// bound on canaries.
func (r *Runs) entry(namespace, name string, create bool) (*entry, error) {
	k := key(namespace, name)
	r.mu.RLock()
	e := r.canaries[k]
	r.mu.RUnlock()
	if e != nil || !create {
		return e, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e = r.canaries[k]; e != nil {
		return e, nil
	}
	if len(r.canaries) >= r.o.MaxCanaries {
		return nil, fmt.Errorf("%w: %d canaries, the most it keeps; idle ones are deleted after %s (--run-retention)", ErrFull, len(r.canaries), r.o.Retention)
	}
	e = &entry{}
	r.canaries[k] = e
	return e, nil
}

// dropEmpty removes an entry that was created for a canary that never got
// stored. Called with e.mu held.
func (r *Runs) dropEmpty(e *entry) {
	if e.snap.Load() != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, x := range r.canaries {
		if x == e {
			delete(r.canaries, k)
			e.gone = true
			return
		}
	}
}

func (r *Runs) appended(err error) {
	if err != nil {
		r.storeError(err)
	}
}

func (r *Runs) storeError(err error) {
	r.logger.Error("run store write failed", "err", err)
	if r.metrics != nil {
		r.metrics.storeErrors.Inc()
	}
}

func (r *Runs) panicked(component string) {
	if r.metrics != nil {
		r.metrics.Panicked(component)
	}
}

// evaluation is a history record and the revision it belongs to.
type evaluation struct {
	Evaluation
	revision string
}

// runFor finds or starts the run ref names in cur (nil when the canary is
// new) and returns a copy of the canary to change, the run (a copy), and
// whether the change must be durable: a new run, or a new current
// revision. It may drop an old run to stay within MaxRevisions.
func (r *Runs) runFor(cur *Canary, ref Ref, now time.Time) (*Canary, *Run, []Event, error) {
	rev := ref.Revision
	var c Canary
	if cur != nil {
		c = *cur
		c.Runs = slices.Clone(cur.Runs)
		if rev == "" {
			rev = cur.Current
		}
	} else {
		c = Canary{Namespace: ref.Namespace, Name: ref.Name}
	}
	if rev == "" {
		rev = now.UTC().Format("20060102T150405Z")
	}
	var events []Event
	run := c.Run(rev)
	if run != nil {
		run = run.clone()
	} else {
		run = &Run{Namespace: ref.Namespace, Name: ref.Name, Revision: rev, StartedAt: now, UpdatedAt: now}
		if prev := c.CurrentRun(); prev != nil {
			// Alerts keep matching the canary until the new revision's
			// first analysis says otherwise.
			run.Policy, run.Params = prev.Policy, maps.Clone(prev.Params)
		}
		if err := r.makeRoom(&c, run); err != nil {
			return nil, nil, nil, err
		}
	}
	if c.Current != rev {
		prev := c.CurrentRun()
		events = append(events, Event{Kind: EventRevision, At: now, Run: run, Previous: c.Current})
		r.logSwitch(&c, prev, run)
		c.Current = rev
	}
	return &c, run, events, nil
}

// makeRoom drops the oldest run that is not current and holds no latch
// when the canary is at MaxRevisions; a canary whose every run is current
// or latched refuses the new revision.
func (r *Runs) makeRoom(c *Canary, add *Run) error {
	if len(c.Runs) < r.o.MaxRevisions {
		return nil
	}
	victim := -1
	for i, run := range c.Runs {
		if run.Revision == c.Current || len(run.Latches) > 0 {
			continue
		}
		if victim < 0 || run.UpdatedAt.Before(c.Runs[victim].UpdatedAt) {
			victim = i
		}
	}
	if victim < 0 {
		return fmt.Errorf("%w: %s/%s keeps %d revisions and each is current or latched: lift a latch before starting revision %s",
			ErrFull, c.Namespace, c.Name, len(c.Runs), add.Revision)
	}
	r.logger.Info("run dropped to make room for a new revision", "run", c.Runs[victim].ID(), "new_revision", add.Revision)
	c.Runs = slices.Delete(c.Runs, victim, victim+1)
	return nil
}

func (r *Runs) logSwitch(c *Canary, prev, next *Run) {
	if prev == nil {
		return
	}
	if prev.Has(LatchRollback) {
		r.logger.Warn("revision switched; the previous revision keeps its rollback latch", "canary", c.Key(),
			"from", prev.Revision, "to", next.Revision, "lift", liftOf(prev).Command)
		return
	}
	r.logger.Info("revision switched", "canary", c.Key(), "from", prev.Revision, "to", next.Revision)
}

// errLatchedSince makes Analyze evaluate after all: the latch it saw when
// it skipped the queries was lifted before it could answer from it.
var errLatchedSince = errors.New("latch lifted while answering")

// Analyze runs one analysis of pol for the run ref names and records it:
// an analysis of a run with a latch standing is answered from the latch
// without querying anything. A latch or a new revision is durable before
// Analyze returns; a plain analysis record is committed within the
// store's flush interval. Invalid params (wrapping rules.ErrInvalidParams)
// and bad names (ErrBadRequest) are rejected before anything is created.
// origin names the caller, for subscribers.
func (r *Runs) Analyze(ctx context.Context, ev *analysis.Evaluator, pol *rules.Policy, ref Ref, params map[string]string, at time.Time, origin string) (*Answer, error) {
	resolved, err := pol.ResolveParams(params)
	if err != nil {
		return nil, err
	}
	if ref == (Ref{}) {
		res, err := ev.Evaluate(ctx, pol, params, at)
		if err != nil {
			return nil, err
		}
		a := &Answer{Result: res}
		r.logReaction(r.publish(ctx, Event{Kind: EventAnalysis, At: r.now(), Origin: origin, Answer: a}))
		return a, nil
	}
	if err := ref.validate(); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		a, err := r.analyze(ctx, ev, pol, ref, params, resolved, at, origin, attempt > 0)
		if errors.Is(err, errLatchedSince) && attempt < 3 {
			continue
		}
		return a, err
	}
}

func (r *Runs) analyze(ctx context.Context, ev *analysis.Evaluator, pol *rules.Policy, ref Ref, params, resolved map[string]string, at time.Time, origin string, mustEvaluate bool) (*Answer, error) {
	now := r.now()
	answerAt := at
	if answerAt.IsZero() {
		answerAt = now
	}
	var evaluated *analysis.Result
	if cur := r.snapshotOf(ref.Namespace, ref.Name); mustEvaluate || !latchedNow(cur, ref) {
		var err error
		if evaluated, err = ev.EvaluateRun(ctx, pol, params, at, r.runID(cur, ref)); err != nil {
			return nil, err
		}
	}
	var answer *Answer
	_, err := r.change(ctx, ref.Namespace, ref.Name, true, func(cur *Canary) (mutation, error) {
		c, run, events, err := r.runFor(cur, ref, now)
		if err != nil {
			return mutation{}, err
		}
		m := mutation{durable: len(events) > 0, events: events}
		if holder, l, ok := latchFor(c, storedRun(cur, run.Revision), ref.Revision != ""); ok {
			answer = latchAnswer(pol, resolved, holder, l, answerAt, run.ID())
		} else if evaluated == nil {
			return mutation{}, errLatchedSince
		} else {
			answer = &Answer{Result: evaluated, Run: run.ID()}
			if pol.Decision.LatchOnFail && evaluated.Verdict == analysis.VerdictFail && evaluated.Decision == analysis.DecisionRollback {
				l := Latch{Kind: LatchRollback, Source: SourceAnalysis, Reason: truncate(evaluated.Reason), At: now}
				if _, added := run.addLatch(l); added {
					m.durable = true
					m.events = append(m.events, Event{Kind: EventLatched, At: now, Origin: origin, Run: run, Latch: &l})
				}
			}
		}
		run.Policy, run.Params, run.UpdatedAt = pol.Name, resolved, now
		run.Evaluations++
		run.LastVerdict, run.LastDecision, run.LastReason = answer.Verdict, answer.Decision, truncate(answer.Reason)
		c = c.with(run)
		c.UpdatedAt = now
		m.canary = c
		m.eval = &evaluation{Evaluation: *record(run.Evaluations, answer), revision: run.Revision}
		m.events = append(m.events, Event{Kind: EventAnalysis, At: now, Origin: origin, Run: run, Answer: answer})
		return m, nil
	})
	if errors.Is(err, ErrReaction) {
		// The analysis stands; a failed reaction (the kill switch after a
		// latchOnFail) is the reactor's to retry, not the caller's.
		r.logReaction(err)
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("record analysis: %w", err)
	}
	return answer, nil
}

// storedRun is the run of a revision as stored, or nil.
func storedRun(c *Canary, revision string) *Run {
	if c == nil {
		return nil
	}
	return c.Run(revision)
}

// latchedNow reports whether an analysis of ref would be answered by a
// latch, as the canary last stood.
func latchedNow(c *Canary, ref Ref) bool {
	if c == nil {
		return false
	}
	rev := cmp.Or(ref.Revision, c.Current)
	_, _, ok := latchFor(c, c.Run(rev), ref.Revision != "")
	return ok
}

// runID names the run an analysis will belong to, for sources that compare
// with the run's previous evaluation (Kafka lag growth).
func (r *Runs) runID(c *Canary, ref Ref) string {
	rev := ref.Revision
	if rev == "" && c != nil {
		rev = c.Current
	}
	return ref.Namespace + "/" + ref.Name + "@" + rev
}

func (r *Runs) logReaction(err error) {
	if err != nil {
		r.logger.Error("reaction to a run event failed", "err", err)
	}
}

// truncate cuts a reason to MaxReason bytes, on a rune boundary.
func truncate(s string) string {
	if len(s) <= MaxReason {
		return s
	}
	cut := MaxReason - len("…")
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// Manual actions on a run.
const (
	ActionRollback = "rollback"
	ActionPause    = "pause"
	ActionPromote  = "promote"
	ActionResume   = "resume"
)

// Act applies a manual override to the run of revision (the current run
// when empty): rollback and pause latch; promote lifts rollback and pause
// latches and latches a promotion; resume lifts every latch. A reason is
// required (at most MaxReason bytes) and, with by (who authenticated the
// call), kept with the run. It returns the run as stored; an error
// wrapping ErrReaction comes with the stored run (the change stands).
func (r *Runs) Act(ctx context.Context, namespace, name, revision, action, reason, by string) (*Run, error) {
	switch action {
	case ActionRollback, ActionPause, ActionPromote, ActionResume:
	default:
		return nil, fmt.Errorf("%w %q: want rollback, promote, pause or resume", ErrUnknownAction, action)
	}
	reason = strings.TrimSpace(reason)
	if err := CheckReason(action, reason); err != nil {
		return nil, err
	}
	if err := (Ref{Namespace: namespace, Name: name, Revision: revision}).validate(); err != nil {
		return nil, err
	}
	now := r.now()
	var rev string
	c, err := r.change(ctx, namespace, name, false, func(cur *Canary) (mutation, error) {
		if cur == nil {
			return mutation{}, fmt.Errorf("%w: %s/%s", ErrRunNotFound, namespace, name)
		}
		rev = cmp.Or(revision, cur.Current)
		stored := cur.Run(rev)
		if stored == nil {
			return mutation{}, fmt.Errorf("%w: %s/%s@%s", ErrRunNotFound, namespace, name, rev)
		}
		run := stored.clone()
		run.UpdatedAt = now
		run.override(Override{Action: action, Reason: reason, By: by, At: now})
		m := mutation{durable: true}
		latch := func(kind LatchKind) {
			l := Latch{Kind: kind, Source: SourceManual, Reason: reason, At: now, By: by}
			held, added := run.addLatch(l)
			if held {
				m.events = append(m.events, Event{Kind: EventLatched, At: now, Origin: OriginManual, Run: run, Latch: &l, Repeat: !added, By: by})
			}
		}
		lift := func(keep func(Latch) bool) {
			var kept []Latch
			for _, l := range run.Latches {
				if keep(l) {
					kept = append(kept, l)
					continue
				}
				m.events = append(m.events, Event{Kind: EventLifted, At: now, Origin: OriginManual, Run: run, Latch: &l, By: by})
			}
			run.Latches = kept
		}
		switch action {
		case ActionRollback:
			latch(LatchRollback)
		case ActionPause:
			latch(LatchPause)
		case ActionPromote:
			lift(func(Latch) bool { return false })
			latch(LatchPromote)
		case ActionResume:
			lift(func(Latch) bool { return false })
		}
		r.logger.Info("manual action", "action", action, "run", run.ID(), "by", by, "reason", reason)
		c := cur.with(run)
		c.UpdatedAt = now
		m.canary = c
		return m, nil
	})
	if c == nil {
		return nil, err
	}
	return view(c, rev), err
}

// CheckReason checks the reason of a manual action, on a run or a
// rollout: one is required, at most MaxReason bytes. The error wraps
// ErrBadRequest.
func CheckReason(action, reason string) error {
	switch reason = strings.TrimSpace(reason); {
	case reason == "":
		return fmt.Errorf("%w: a manual %s needs a reason", ErrBadRequest, action)
	case len(reason) > MaxReason:
		return fmt.Errorf("%w: the reason is %d bytes, more than %d", ErrBadRequest, len(reason), MaxReason)
	}
	return nil
}

// Event records a Flagger event: a new checksum starts a new run, with no
// latches, and makes it current; the old run keeps its own latches. The
// phase is kept. Nothing is written when nothing changes.
func (r *Runs) Event(ctx context.Context, namespace, name, checksum, phase string) (*Run, error) {
	if err := (Ref{Namespace: namespace, Name: name, Revision: checksum}).validate(); err != nil {
		return nil, err
	}
	now := r.now()
	c, err := r.change(ctx, namespace, name, checksum != "", func(cur *Canary) (mutation, error) {
		if cur == nil && checksum == "" {
			return mutation{}, errNothing // no run and nothing to key one by
		}
		if cur != nil && (checksum == "" || checksum == cur.Current) {
			run := cur.CurrentRun()
			if run == nil || phase == "" || run.Phase == phase {
				return mutation{}, nil
			}
			run = run.clone()
			run.Phase, run.UpdatedAt = phase, now
			return mutation{canary: cur.with(run), durable: true}, nil
		}
		c, run, events, err := r.runFor(cur, Ref{Namespace: namespace, Name: name, Revision: checksum}, now)
		if err != nil {
			return mutation{}, err
		}
		if phase != "" {
			run.Phase = phase
		}
		run.UpdatedAt = now
		c = c.with(run)
		c.UpdatedAt = now
		for i := range events {
			events[i].Origin = OriginFlagger
		}
		return mutation{canary: c, durable: true, events: events}, nil
	})
	if c == nil {
		return nil, err
	}
	return view(c, c.Current), err
}

// RollbackLatch returns the rollback latch of the run of namespace/name at
// revision checksum. Without a checksum any revision's rollback counts: a
// caller that cannot say which revision it is cannot be told apart from
// the one rolled back.
func (r *Runs) RollbackLatch(namespace, name, checksum string) (*LatchInfo, bool) {
	c := r.snapshotOf(namespace, name)
	if c == nil {
		return nil, false
	}
	for _, run := range c.Runs {
		if checksum != "" && run.Revision != checksum {
			continue
		}
		for _, l := range run.Latches {
			if l.Kind == LatchRollback {
				return &LatchInfo{Latch: l, Revision: run.Revision, Lift: liftOf(run)}, true
			}
		}
	}
	return nil, false
}

// view is a copy of a canary's run for answers, marked current when it is.
func view(c *Canary, revision string) *Run {
	run := c.Run(revision)
	if run == nil {
		return nil
	}
	out := *run
	out.Current = revision == c.Current
	if out.Latches == nil {
		// An answer lists no latches as [], not null.
		out.Latches = []Latch{}
	}
	return &out
}

// Get returns the run of namespace/name at revision, the current run when
// revision is empty, or an error wrapping ErrRunNotFound.
func (r *Runs) Get(namespace, name, revision string) (*Run, error) {
	c := r.snapshotOf(namespace, name)
	if c == nil {
		return nil, fmt.Errorf("%w: %s/%s", ErrRunNotFound, namespace, name)
	}
	run := view(c, cmp.Or(revision, c.Current))
	if run == nil {
		return nil, fmt.Errorf("%w: %s/%s@%s", ErrRunNotFound, namespace, name, revision)
	}
	return run, nil
}

// Revisions returns every run of namespace/name, oldest first, the current
// one marked.
func (r *Runs) Revisions(namespace, name string) ([]*Run, error) {
	c := r.snapshotOf(namespace, name)
	if c == nil {
		return nil, fmt.Errorf("%w: %s/%s", ErrRunNotFound, namespace, name)
	}
	out := make([]*Run, 0, len(c.Runs))
	for _, run := range c.Runs {
		out = append(out, view(c, run.Revision))
	}
	return out, nil
}

// List returns the runs of up to limit canaries in namespace/name order,
// starting after the canary key after ("" for the first page), every
// revision of each; next is the key to pass for the following page, empty
// on the last.
func (r *Runs) List(after string, limit int) (out []*Run, next string) {
	r.mu.RLock()
	keys := slices.Sorted(maps.Keys(r.canaries))
	r.mu.RUnlock()
	start, _ := slices.BinarySearch(keys, after)
	if start < len(keys) && keys[start] == after {
		start++
	}
	out = []*Run{}
	for i := start; i < len(keys); i++ {
		if limit > 0 && i-start == limit {
			return out, keys[i-1]
		}
		ns, name, _ := strings.Cut(keys[i], "/")
		runs, err := r.Revisions(ns, name)
		if err != nil {
			continue // deleted meanwhile
		}
		out = append(out, runs...)
	}
	return out, ""
}

// History returns the latest evaluations of a run (the current one when
// revision is empty), oldest first.
func (r *Runs) History(ctx context.Context, namespace, name, revision string, limit int) ([]Evaluation, error) {
	run, err := r.Get(namespace, name, revision)
	if err != nil {
		return nil, err
	}
	evs, err := r.store.History(ctx, namespace, name, run.Revision, limit)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStore, err)
	}
	return evs, nil
}

// LatchCounts returns how many active latches of each kind the runs hold.
func (r *Runs) LatchCounts() map[LatchKind]int {
	counts := map[LatchKind]int{LatchRollback: 0, LatchPause: 0, LatchPromote: 0}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, e := range r.canaries {
		s := e.snap.Load()
		if s == nil {
			continue
		}
		for _, run := range s.canary.Runs {
			for _, l := range run.Latches {
				counts[l.Kind]++
			}
		}
	}
	return counts
}

// Count returns how many canaries and runs are kept.
func (r *Runs) Count() (canaries, runs int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, e := range r.canaries {
		if s := e.snap.Load(); s != nil {
			canaries++
			runs += len(s.canary.Runs)
		}
	}
	return canaries, runs
}
