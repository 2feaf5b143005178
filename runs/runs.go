package runs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/rules"
)

// DefaultHistory is how many evaluations a run keeps.
const DefaultHistory = 100

// maxLatches bounds the latches a run keeps: a flapping alert must not grow
// a run without limit.
const maxLatches = 32

// ErrUnknownAction marks a manual action that does not exist.
var ErrUnknownAction = errors.New("unknown action")

// Options configure Runs.
type Options struct {
	Store Store
	// History is how many evaluations each run keeps; default
	// DefaultHistory.
	History int
	Logger  *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Runs tracks canary runs: it evaluates analyses for them, answers from
// their latches, takes manual overrides and Alertmanager alerts, and writes
// every decision and latch to the store before returning it.
//
// Runs keeps an index of the current runs in memory, updated on every
// write it makes, so that matching a delivery of alerts against every run
// costs no reads. This assumes Runs is the only writer of its store, which
// the embedded store guarantees with a file lock.
type Runs struct {
	store  Store
	keep   int
	logger *slog.Logger
	now    func() time.Time

	mu    sync.RWMutex
	index map[string]*indexed
}

// indexed is a run as last written, and the alert matchers rendered for it.
type indexed struct {
	run *Run

	once     sync.Once
	policy   *rules.Policy
	matchers []alertMatcher
}

type alertMatcher struct {
	equal  map[string]string
	regex  map[string]*regexp.Regexp
	action rules.Action
}

// NewRuns loads the current runs from the store.
func New(ctx context.Context, o Options) (*Runs, error) {
	r := &Runs{store: o.Store, keep: o.History, logger: o.Logger, now: o.Now, index: map[string]*indexed{}}
	if r.keep <= 0 {
		r.keep = DefaultHistory
	}
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	runs, err := r.store.Runs(ctx)
	if err != nil {
		return nil, fmt.Errorf("load runs: %w", err)
	}
	for _, run := range runs {
		r.index[key(run.Namespace, run.Name)] = &indexed{run: run}
	}
	return r, nil
}

func key(namespace, name string) string { return namespace + "/" + name }

// Target identifies the run an analysis belongs to. An empty Revision keeps
// the current run, or starts one named after the time of its first call.
type Target struct {
	Namespace, Name, Revision string
}

// Get returns the current run of namespace/name.
func (r *Runs) Get(ctx context.Context, namespace, name string) (*Run, error) {
	return r.store.Run(ctx, namespace, name)
}

// List returns every current run.
func (r *Runs) List(ctx context.Context) ([]*Run, error) { return r.store.Runs(ctx) }

// History returns the run's latest evaluations, oldest first.
func (r *Runs) History(ctx context.Context, namespace, name string, limit int) ([]Evaluation, error) {
	return r.store.History(ctx, namespace, name, limit)
}

// LatchCounts returns how many active latches of each kind the runs hold.
func (r *Runs) LatchCounts() map[LatchKind]int {
	counts := map[LatchKind]int{LatchRollback: 0, LatchPause: 0, LatchPromote: 0}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, ix := range r.index {
		for _, l := range ix.run.Latches {
			counts[l.Kind]++
		}
	}
	return counts
}

func (r *Runs) cached(namespace, name string) *Run {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if ix := r.index[key(namespace, name)]; ix != nil {
		return ix.run
	}
	return nil
}

func (r *Runs) publish(run *Run) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.index[key(run.Namespace, run.Name)] = &indexed{run: run}
}

// update writes through the store and publishes the result in the index.
func (r *Runs) update(ctx context.Context, namespace, name string, fn func(*Run) (*Run, *Evaluation, error)) (*Run, error) {
	run, err := r.store.Update(ctx, namespace, name, r.keep, fn)
	if err != nil {
		if errors.Is(err, ErrRunNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrStore, err)
	}
	if run != nil {
		r.publish(run)
	}
	return run, nil
}

// Analyze runs one analysis of pol for the target's run and records it. A
// run with an active latch is answered from the latch without querying
// anything. The result is durable when Analyze returns it. Invalid params
// are rejected (wrapping rules.ErrInvalidParams) before a run is created.
func (r *Runs) Analyze(ctx context.Context, ev *analysis.Evaluator, pol *rules.Policy, t Target, params map[string]string, at time.Time) (*analysis.Result, error) {
	resolved, err := pol.ResolveParams(params)
	if err != nil {
		return nil, err
	}
	now := r.now()
	queryAt := at
	if at.IsZero() {
		at = now
	}
	// Evaluate against the run as it stands; the write below re-checks it,
	// since an alert may latch while the queries run.
	var res *analysis.Result
	if cur := r.cached(t.Namespace, t.Name); cur != nil && sameRevision(cur, t) {
		res = latchedResult(pol, resolved, cur, at)
	}
	if res == nil {
		if res, err = ev.EvaluateRun(ctx, pol, params, queryAt, r.runID(t)); err != nil {
			return nil, err
		}
	}
	evaluated := res
	_, err = r.update(ctx, t.Namespace, t.Name, func(cur *Run) (*Run, *Evaluation, error) {
		run := r.runFor(cur, t, now)
		run.Policy, run.Params, run.UpdatedAt = pol.Name, resolved, now
		res = evaluated
		if l := latchedResult(pol, resolved, run, at); l != nil {
			res = l
		} else if pol.Decision.LatchOnFail && res.Verdict == analysis.VerdictFail && res.Decision == analysis.DecisionRollback {
			run.Latches = addLatch(run.Latches, Latch{Kind: LatchRollback, Source: SourceAnalysis, Reason: res.Reason, At: now})
		}
		res = withRun(res, run)
		run.Evaluations++
		run.LastVerdict, run.LastDecision, run.LastReason = res.Verdict, res.Decision, res.Reason
		return run, evaluation(run.Evaluations, res), nil
	})
	if err != nil {
		return nil, fmt.Errorf("record analysis: %w", err)
	}
	return res, nil
}

// runID names the run an analysis of t will belong to, for sources that
// compare with the run's previous evaluation.
func (r *Runs) runID(t Target) string {
	if t.Revision == "" {
		if cur := r.cached(t.Namespace, t.Name); cur != nil {
			return cur.ID()
		}
	}
	return t.Namespace + "/" + t.Name + "@" + t.Revision
}

// runFor returns a copy of cur to modify, or a new run when the target
// names another revision or there is no run yet.
func (r *Runs) runFor(cur *Run, t Target, now time.Time) *Run {
	if cur != nil && sameRevision(cur, t) {
		return cur.clone()
	}
	rev := t.Revision
	if rev == "" {
		rev = now.UTC().Format("20060102T150405Z")
	}
	return &Run{Namespace: t.Namespace, Name: t.Name, Revision: rev, StartedAt: now, UpdatedAt: now}
}

func sameRevision(run *Run, t Target) bool { return t.Revision == "" || t.Revision == run.Revision }

func (run *Run) clone() *Run {
	c := *run
	c.Latches = slices.Clone(run.Latches)
	c.Params = maps.Clone(run.Params)
	return &c
}

// withRun returns res stamped with the run; res may be shared, so it is
// copied rather than modified.
func withRun(res *analysis.Result, run *Run) *analysis.Result {
	c := *res
	c.Run = run.ID()
	return &c
}

func evaluation(seq uint64, res *analysis.Result) *Evaluation {
	e := &Evaluation{
		Seq: seq, At: res.EvaluatedAt, Policy: res.Policy, Verdict: res.Verdict,
		Decision: res.Decision, Score: res.Score, Reason: res.Reason,
		Rules: make([]RuleRecord, len(res.Rules)),
	}
	for i, rr := range res.Rules {
		e.Rules[i] = RuleRecord{Name: rr.Name, Verdict: string(rr.Verdict), Value: rr.Value, Reason: rr.Reason}
	}
	return e
}

// Latch returns the run's overriding latch: a rollback before a pause
// before a promotion, so that no override can hide a rollback.
func (run *Run) Latch() (Latch, bool) {
	for _, kind := range []LatchKind{LatchRollback, LatchPause, LatchPromote} {
		for _, l := range run.Latches {
			if l.Kind == kind {
				return l, true
			}
		}
	}
	return Latch{}, false
}

// Has reports whether the run holds a latch of the kind.
func (run *Run) Has(kind LatchKind) bool {
	return slices.ContainsFunc(run.Latches, func(l Latch) bool { return l.Kind == kind })
}

// latchedResult is the answer a latch forces, or nil when the run has none.
func latchedResult(pol *rules.Policy, params map[string]string, run *Run, at time.Time) *analysis.Result {
	l, ok := run.Latch()
	if !ok {
		return nil
	}
	res := &analysis.Result{Policy: pol.Name, Params: params, EvaluatedAt: at, Rules: []analysis.RuleResult{}, Queries: analysis.QueryResults{}, Latched: string(l.Kind)}
	reason := string(l.Kind) + " latched by " + string(l.Source)
	if l.Reason != "" {
		reason += ": " + l.Reason
	}
	res.Reason = reason
	switch l.Kind {
	case LatchRollback:
		res.Verdict, res.Decision = analysis.VerdictFail, analysis.DecisionRollback
	case LatchPause:
		res.Verdict, res.Decision = analysis.VerdictInconclusive, analysis.DecisionPause
	case LatchPromote:
		res.Verdict, res.Decision, res.Score = analysis.VerdictPass, analysis.DecisionPromote, 1
	}
	return res
}

func addLatch(latches []Latch, l Latch) []Latch {
	for _, x := range latches {
		if x.Kind == l.Kind && x.Source == l.Source && x.Alert == l.Alert && (l.Alert != "" || x.Reason == l.Reason) {
			return latches // already latched: redelivery or a repeated failure
		}
	}
	latches = append(latches, l)
	if len(latches) > maxLatches {
		latches = latches[len(latches)-maxLatches:]
	}
	return latches
}

// Manual actions on a run.
const (
	ActionRollback = "rollback"
	ActionPause    = "pause"
	ActionPromote  = "promote"
	ActionResume   = "resume"
)

// Act applies a manual override: rollback and pause latch; promote lifts
// rollback and pause latches and latches a promotion; resume lifts every
// latch. It returns the run as stored, or an error wrapping ErrRunNotFound
// or ErrUnknownAction.
func (r *Runs) Act(ctx context.Context, namespace, name, action, reason string) (*Run, error) {
	switch action {
	case ActionRollback, ActionPause, ActionPromote, ActionResume:
	default:
		return nil, fmt.Errorf("%w %q: want rollback, promote, pause or resume", ErrUnknownAction, action)
	}
	now := r.now()
	return r.update(ctx, namespace, name, func(cur *Run) (*Run, *Evaluation, error) {
		if cur == nil {
			return nil, nil, fmt.Errorf("%w: %s/%s", ErrRunNotFound, namespace, name)
		}
		run := cur.clone()
		run.UpdatedAt = now
		switch action {
		case ActionRollback:
			run.Latches = addLatch(run.Latches, Latch{Kind: LatchRollback, Source: SourceManual, Reason: reason, At: now})
		case ActionPause:
			run.Latches = addLatch(run.Latches, Latch{Kind: LatchPause, Source: SourceManual, Reason: reason, At: now})
		case ActionPromote:
			run.Latches = []Latch{{Kind: LatchPromote, Source: SourceManual, Reason: reason, At: now}}
		case ActionResume:
			run.Latches = nil
		}
		return run, nil, nil
	})
}

// Event records a Flagger event: a new checksum starts a new run, with no
// latches; the phase is kept. Nothing is written when nothing changes.
func (r *Runs) Event(ctx context.Context, namespace, name, checksum, phase string) (*Run, error) {
	now := r.now()
	run, err := r.update(ctx, namespace, name, func(cur *Run) (*Run, *Evaluation, error) {
		switch {
		case cur != nil && (checksum == "" || checksum == cur.Revision):
			if cur.Phase == phase || phase == "" {
				return nil, nil, nil
			}
			run := cur.clone()
			run.Phase, run.UpdatedAt = phase, now
			return run, nil, nil
		case checksum == "":
			return nil, nil, nil // no run and nothing to key one by
		}
		run := &Run{Namespace: namespace, Name: name, Revision: checksum, Phase: phase, StartedAt: now, UpdatedAt: now}
		if cur != nil {
			// Keep what alerts are matched with until the new revision's
			// first analysis says otherwise.
			run.Policy, run.Params = cur.Policy, maps.Clone(cur.Params)
		}
		return run, nil, nil
	})
	if err != nil {
		return nil, err
	}
	if run == nil {
		run = r.cached(namespace, name)
	}
	return run, nil
}

// RollbackLatch returns the rollback latch of the run of namespace/name, if
// it has one for this checksum (any revision when checksum is empty).
func (r *Runs) RollbackLatch(namespace, name, checksum string) (Latch, bool) {
	run := r.cached(namespace, name)
	if run == nil || (checksum != "" && checksum != run.Revision) {
		return Latch{}, false
	}
	for _, l := range run.Latches {
		if l.Kind == LatchRollback {
			return l, true
		}
	}
	return Latch{}, false
}

// Alert is one alert of an Alertmanager notification.
type Alert struct {
	Status      string
	Labels      map[string]string
	Annotations map[string]string
	StartsAt    time.Time
	Fingerprint string
}

// AlertReport says what a delivery changed.
type AlertReport struct {
	// Matched counts alert and run pairs that matched a policy's alerts.
	Matched int
	// Latched and Lifted count latches set and lifted.
	Latched, Lifted int
	// Rollbacks are the runs a firing rollback alert matched, as stored
	// after the delivery, whether the latch is new or a redelivery's: a
	// kill switch that failed the first time gets another chance.
	Rollbacks []*Run
}

// Alerts applies a delivery of alerts: a firing alert matching a run's
// policy latches that policy's action; a resolved one lifts the pause it
// latched (a rollback stays until the next revision or a manual resume).
// A redelivery changes nothing. All affected runs are written, in shared
// commits, before Alerts returns.
func (r *Runs) Alerts(ctx context.Context, set *rules.Set, alerts []Alert) (AlertReport, error) {
	type change struct {
		alert  Alert
		action rules.Action
	}
	changes := map[string][]change{}
	revisions := map[string]string{}
	var report AlertReport
	r.mu.RLock()
	entries := slices.Collect(maps.Values(r.index))
	r.mu.RUnlock()
	for _, ix := range entries {
		matchers := ix.alertMatchers(set, r.logger)
		for _, a := range alerts {
			for _, m := range matchers {
				if m.matches(a.Labels) {
					k := key(ix.run.Namespace, ix.run.Name)
					changes[k] = append(changes[k], change{alert: a, action: m.action})
					revisions[k] = ix.run.Revision
					report.Matched++
				}
			}
		}
	}
	if len(changes) == 0 {
		return report, nil
	}

	now := r.now()
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	for k, cs := range changes {
		ns, name, _ := strings.Cut(k, "/")
		wg.Add(1)
		go func() {
			defer wg.Done()
			var latched, lifted int
			stored, err := r.update(ctx, ns, name, func(cur *Run) (*Run, *Evaluation, error) {
				latched, lifted = 0, 0
				if cur == nil || cur.Revision != revisions[k] {
					return nil, nil, nil // a new revision started meanwhile
				}
				run := cur.clone()
				for _, c := range cs {
					fp := c.alert.Fingerprint
					if fp == "" {
						fp = fingerprint(c.alert.Labels)
					}
					if c.alert.Status == "resolved" {
						before := len(run.Latches)
						run.Latches = slices.DeleteFunc(run.Latches, func(l Latch) bool {
							return l.Kind == LatchPause && l.Source == SourceAlert && l.Alert == fp
						})
						lifted += before - len(run.Latches)
						continue
					}
					before := len(run.Latches)
					run.Latches = addLatch(run.Latches, Latch{
						Kind: LatchKind(c.action), Source: SourceAlert, Alert: fp, At: now,
						Reason: alertReason(c.alert),
					})
					latched += len(run.Latches) - before
				}
				if latched == 0 && lifted == 0 {
					return nil, nil, nil
				}
				run.UpdatedAt = now
				return run, nil, nil
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("run %s: %w", k, err))
				return
			}
			report.Latched += latched
			report.Lifted += lifted
			if stored == nil {
				stored = r.cached(ns, name)
			}
			if stored != nil && stored.Revision == revisions[k] && slices.ContainsFunc(cs, func(c change) bool {
				return c.alert.Status != "resolved" && c.action == rules.ActionRollback
			}) {
				report.Rollbacks = append(report.Rollbacks, stored)
			}
		}()
	}
	wg.Wait()
	return report, errors.Join(errs...)
}

func alertReason(a Alert) string {
	reason := "alert " + cmp.Or(a.Labels["alertname"], "(unnamed)") + " firing"
	if s := cmp.Or(a.Annotations["summary"], a.Annotations["description"]); s != "" {
		reason += ": " + s
	}
	return reason
}

// fingerprint identifies an alert by its labels when the sender gave no
// fingerprint, as Alertmanager computes its own.
func fingerprint(labels map[string]string) string {
	h := fnv.New64a()
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		h.Write([]byte(k))
		h.Write([]byte{0xff})
		h.Write([]byte(labels[k]))
		h.Write([]byte{0xff})
	}
	return strconv.FormatUint(h.Sum64(), 16)
}

// alertMatchers renders the run's policy's alert matchers with the run's
// params, once per run version and policy set.
func (ix *indexed) alertMatchers(set *rules.Set, logger *slog.Logger) []alertMatcher {
	run := ix.run
	if run.Policy == "" {
		return nil
	}
	pol, err := set.Get(run.Policy)
	if err != nil || len(pol.Alerts) == 0 {
		return nil
	}
	ix.once.Do(func() {
		ix.policy = pol
		ix.matchers = renderMatchers(pol, run, logger)
	})
	if ix.policy != pol {
		// The policies were reloaded since: render afresh, uncached.
		return renderMatchers(pol, run, logger)
	}
	return ix.matchers
}

func renderMatchers(pol *rules.Policy, run *Run, logger *slog.Logger) []alertMatcher {
	var out []alertMatcher
	params, err := pol.ResolveParams(run.Params)
	if err != nil {
		logger.Warn("run params no longer fit its policy; its alerts are not matched", "run", run.ID(), "policy", pol.Name, "err", err)
		return nil
	}
	for _, a := range pol.Alerts {
		equal, regex, err := a.RenderMatchers(params)
		if err != nil {
			logger.Warn("alert matcher does not render", "run", run.ID(), "policy", pol.Name, "err", err)
			continue
		}
		m := alertMatcher{equal: equal, action: a.Action, regex: map[string]*regexp.Regexp{}}
		ok := true
		for name, src := range regex {
			re, err := regexp.Compile("^(?:" + src + ")$")
			if err != nil {
				logger.Warn("alert regex does not compile", "run", run.ID(), "policy", pol.Name, "label", name, "err", err)
				ok = false
				break
			}
			m.regex[name] = re
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

func (m alertMatcher) matches(labels map[string]string) bool {
	for k, v := range m.equal {
		if labels[k] != v {
			return false
		}
	}
	for k, re := range m.regex {
		if !re.MatchString(labels[k]) {
			return false
		}
	}
	return true
}
