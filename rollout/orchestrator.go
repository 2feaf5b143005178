package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/aurum/canary/runs"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/traffic"
)

// promotedReason is the reason of a completed rollout.
const promotedReason = "promoted: the canary takes all traffic"

// Document kinds in the store.
const (
	kindRollout = "rollout"
	kindGroup   = "group"
)

// DecisionFunc is a custom decision policy in Go: called after each
// analysis of a rollout, it may replace the decision (return "" to keep
// it) and say why.
type DecisionFunc func(r *Rollout, res *analysis.Result) (analysis.Decision, string)

// Options configure an Orchestrator.
type Options struct {
	Store     runs.Documents
	Runs      *runs.Runs
	Evaluator *analysis.Evaluator
	// Policies returns the policies in service.
	Policies func() *rules.Set
	// Routers builds the router a policy's traffic section names.
	Routers func(rules.TrafficSpec) (traffic.Router, error)
	// Decide, when set, is consulted after every analysis.
	Decide DecisionFunc
	// OnEvent, when set, is called after each event is stored: a callback
	// for alerting and for live views.
	OnEvent func(r *Rollout, e Event)
	// Workers bounds the rollouts evaluated at once by Run; default 16.
	Workers int
	Logger  *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Orchestrator runs rollouts. It is safe for concurrent use; each rollout
// is advanced by one goroutine at a time.
type Orchestrator struct {
	o Options

	mu    sync.Mutex
	locks map[string]*sync.Mutex
	due   map[string]time.Time
	wake  chan struct{}
}

// New returns an orchestrator.
func New(o Options) *Orchestrator {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Workers <= 0 {
		o.Workers = 16
	}
	return &Orchestrator{o: o, locks: map[string]*sync.Mutex{}, due: map[string]time.Time{}, wake: make(chan struct{}, 1)}
}

func (o *Orchestrator) lock(name string) func() {
	o.mu.Lock()
	l := o.locks[name]
	if l == nil {
		l = &sync.Mutex{}
		o.locks[name] = l
	}
	o.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// schedule asks Run to tick the rollout at t.
func (o *Orchestrator) schedule(name string, t time.Time) {
	o.mu.Lock()
	o.due[name] = t
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *Orchestrator) unschedule(name string) {
	o.mu.Lock()
	delete(o.due, name)
	o.mu.Unlock()
}

// Get returns a rollout.
func (o *Orchestrator) Get(ctx context.Context, name string) (*Rollout, error) {
	data, err := o.o.Store.Document(ctx, kindRollout, name)
	if errors.Is(err, runs.ErrDocumentNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return nil, err
	}
	var r Rollout
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode rollout %s: %w", name, err)
	}
	return &r, nil
}

// List returns every rollout, by name.
func (o *Orchestrator) List(ctx context.Context) ([]*Rollout, error) {
	docs, err := o.o.Store.DocumentsOf(ctx, kindRollout)
	if err != nil {
		return nil, err
	}
	out := make([]*Rollout, 0, len(docs))
	for _, name := range slices.Sorted(maps.Keys(docs)) {
		var r Rollout
		if err := json.Unmarshal(docs[name], &r); err != nil {
			return nil, fmt.Errorf("decode rollout %s: %w", name, err)
		}
		out = append(out, &r)
	}
	return out, nil
}

// update changes a rollout durably: fn sees the stored rollout and changes
// it in place; what it leaves is written before update returns.
func (o *Orchestrator) update(ctx context.Context, name string, fn func(r *Rollout) error) (*Rollout, error) {
	var out *Rollout
	_, err := o.o.Store.UpdateDocument(ctx, kindRollout, name, func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		var r Rollout
		if err := json.Unmarshal(old, &r); err != nil {
			return nil, fmt.Errorf("decode rollout %s: %w", name, err)
		}
		if err := fn(&r); err != nil {
			return nil, err
		}
		r.UpdatedAt = o.o.Now()
		out = &r
		return json.Marshal(&r)
	})
	return out, err
}

// Start starts a rollout, or returns the existing one of the same name and
// version: retries of a deployment pipeline must not start twice. A
// different version of a rollout still in progress is refused.
func (o *Orchestrator) Start(ctx context.Context, spec Spec) (*Rollout, error) {
	if !rules.IsName(spec.Name) || spec.Version == "" || len(spec.Version) > 128 {
		return nil, fmt.Errorf("%w: name must be a Kubernetes-style name and version non-empty", ErrBadSpec)
	}
	set := o.o.Policies()
	if set == nil {
		return nil, fmt.Errorf("%w: no policies loaded", ErrBadSpec)
	}
	pol, err := set.Get(spec.Policy)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSpec, err)
	}
	resolved, err := pol.ResolveParams(spec.Params)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSpec, err)
	}
	if pol.Traffic == nil {
		return nil, fmt.Errorf("%w: policy %s has no traffic section: the orchestrator needs to know where the canary's traffic is", ErrBadSpec, pol.Name)
	}
	ts, err := pol.Traffic.Render(resolved)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSpec, err)
	}
	schedule, err := resolve(pol, spec.Schedule)
	if err != nil {
		return nil, err
	}
	now := o.o.Now()
	r := &Rollout{
		Spec: spec, Schedule: schedule, Phase: PhasePending, CreatedAt: now, UpdatedAt: now,
		PhaseSince: now, NextAt: now,
		Traffic: &TrafficInfo{Router: ts.Router, Namespace: ts.Namespace, Object: ts.Ingress + ts.HTTPRoute},
	}
	r.record(Event{At: now, Type: "transition", To: PhasePending, Reason: "started version " + spec.Version})
	var existing *Rollout
	_, err = o.o.Store.UpdateDocument(ctx, kindRollout, spec.Name, func(old []byte) ([]byte, error) {
		existing = nil
		if old != nil {
			var cur Rollout
			if err := json.Unmarshal(old, &cur); err != nil {
				return nil, err
			}
			if cur.Spec.Version == spec.Version {
				existing = &cur
				return nil, nil
			}
			if !cur.Phase.Terminal() {
				return nil, fmt.Errorf("%w: rollout %s of version %s is %s; roll it back or let it finish first",
					ErrConflict, spec.Name, cur.Spec.Version, cur.Phase)
			}
		}
		return json.Marshal(r)
	})
	if err != nil {
		return nil, err
	}
	if existing != nil {
		return existing, nil
	}
	o.o.Logger.Info("rollout started", "rollout", spec.Name, "version", spec.Version, "policy", spec.Policy, "steps", len(schedule.Steps))
	o.emit(r, r.History[len(r.History)-1])
	o.schedule(spec.Name, now)
	return r, nil
}

func (o *Orchestrator) emit(r *Rollout, e Event) {
	if o.o.OnEvent != nil {
		o.o.OnEvent(r, e)
	}
}

// target is the run the rollout's analyses belong to, so latches from
// alerts and the runs API apply to it.
func target(r *Rollout) runs.Target {
	ns := r.Spec.Params["namespace"]
	if ns == "" && r.Traffic != nil {
		ns = r.Traffic.Namespace
	}
	return runs.Target{Namespace: ns, Name: r.Spec.Name, Revision: r.Spec.Version}
}

// Manual actions on a rollout.
const (
	ActionPromote  = "promote"
	ActionRollback = "rollback"
	ActionPause    = "pause"
	ActionResume   = "resume"
	ActionSkipStep = "skip-step"
)

// Act applies a manual override at once: promote goes to the promotion
// phase at the top weight, rollback rolls back, pause holds, resume goes on
// from where the rollout paused (or retries what failed), skip-step moves
// to the next step now.
func (o *Orchestrator) Act(ctx context.Context, name, action, reason string) (*Rollout, error) {
	unlock := o.lock(name)
	defer unlock()
	now := o.o.Now()
	if reason == "" {
		reason = "manual " + action
	}
	r, err := o.update(ctx, name, func(r *Rollout) error {
		if r.Phase.Terminal() {
			return fmt.Errorf("%w: rollout %s is %s", ErrBadAction, name, r.Phase)
		}
		switch action {
		case ActionPromote:
			o.enter(r, PhasePromoting, now, reason)
			r.Step = len(r.Schedule.Steps) - 1
			r.TargetWeight = r.Schedule.Steps[r.Step].Weight
		case ActionRollback:
			o.enterRollback(r, now, reason)
		case ActionPause:
			if r.Phase == PhasePaused {
				return nil
			}
			r.ResumeTo = r.Phase
			o.enter(r, PhasePaused, now, reason)
		case ActionResume:
			if r.Phase != PhasePaused && r.Phase != PhaseFailed {
				return fmt.Errorf("%w: rollout %s is %s, not paused", ErrBadAction, name, r.Phase)
			}
			to := r.ResumeTo
			if to == "" {
				to = PhaseProgressing
			}
			r.Failures, r.Inconclusives = 0, 0
			o.enter(r, to, now, reason)
			r.PhaseSince = now
		case ActionSkipStep:
			if r.Phase != PhaseProgressing && r.Phase != PhaseWarmup {
				return fmt.Errorf("%w: rollout %s is %s; only a progressing rollout has a step to skip", ErrBadAction, name, r.Phase)
			}
			o.advance(r, now, reason)
		default:
			return fmt.Errorf("%w: %q (known: promote, rollback, pause, resume, skip-step)", ErrBadAction, action)
		}
		r.NextAt = now
		return nil
	})
	if err != nil {
		return nil, err
	}
	o.o.Logger.Info("rollout action", "rollout", name, "action", action, "reason", reason, "phase", r.Phase)
	r, err = o.applyTraffic(ctx, r)
	o.schedule(name, now)
	return r, err
}

// enter moves r to a phase and records it.
func (o *Orchestrator) enter(r *Rollout, to Phase, now time.Time, reason string) {
	from := r.Phase
	r.Phase, r.PhaseSince, r.Reason = to, now, reason
	r.Ready = false
	r.record(Event{At: now, Type: "transition", From: from, To: to, Step: r.Step, Weight: r.TargetWeight, Reason: reason})
}

func (o *Orchestrator) enterRollback(r *Rollout, now time.Time, reason string) {
	o.enter(r, PhaseRollingBack, now, reason)
	r.StepDownIndex = 0
	o.stepDown(r, now)
}

// stepDown sets the rollback's next weight: the next step of a graceful
// schedule below the current weight, or 0.
func (o *Orchestrator) stepDown(r *Rollout, now time.Time) {
	for r.StepDownIndex < len(r.Schedule.StepDown) {
		w := r.Schedule.StepDown[r.StepDownIndex]
		r.StepDownIndex++
		if w < r.TargetWeight {
			r.TargetWeight = w
			r.NextAt = now.Add(time.Duration(r.Schedule.StepDownInterval))
			return
		}
	}
	r.TargetWeight = 0
	r.NextAt = now
}

// advance moves r to its next step, or to promotion after the last.
func (o *Orchestrator) advance(r *Rollout, now time.Time, reason string) {
	r.Ready = false
	if r.Phase == PhaseWarmup {
		o.enter(r, PhaseProgressing, now, reason)
		r.StepSince = now
		return
	}
	if r.Step+1 >= len(r.Schedule.Steps) {
		o.enter(r, PhasePromoting, now, reason)
		return
	}
	r.Step++
	r.StepSince = now
	r.TargetWeight = r.Schedule.Steps[r.Step].Weight
	r.record(Event{At: now, Type: "transition", From: r.Phase, To: r.Phase, Step: r.Step, Weight: r.TargetWeight, Reason: reason})
}

// router builds the rollout's router from its policy.
func (o *Orchestrator) router(r *Rollout) (traffic.Router, error) {
	set := o.o.Policies()
	if set == nil {
		return nil, errors.New("no policies loaded")
	}
	pol, err := set.Get(r.Spec.Policy)
	if err != nil {
		return nil, err
	}
	if pol.Traffic == nil {
		return nil, fmt.Errorf("policy %s has no traffic section", pol.Name)
	}
	resolved, err := pol.ResolveParams(r.Spec.Params)
	if err != nil {
		return nil, err
	}
	spec, err := pol.Traffic.Render(resolved)
	if err != nil {
		return nil, err
	}
	return o.o.Routers(spec)
}

// applyTraffic brings the router to the rollout's target weight and
// records the weight applied. A router that fails puts the rollout in the
// failed phase, to be resumed by a person; the target stays, so a resume
// retries the same weight.
func (o *Orchestrator) applyTraffic(ctx context.Context, r *Rollout) (*Rollout, error) {
	if r.AppliedWeight == r.TargetWeight && r.Phase != PhasePending {
		return r, nil
	}
	rt, err := o.router(r)
	if err == nil {
		if r.TargetWeight == 0 {
			err = rt.Reset(ctx)
		} else {
			err = rt.Apply(ctx, traffic.Step{Weight: r.TargetWeight})
		}
	}
	now := o.o.Now()
	if err != nil {
		o.o.Logger.Error("rollout traffic change failed", "rollout", r.Spec.Name, "weight", r.TargetWeight, "err", err)
		failed, uerr := o.update(ctx, r.Spec.Name, func(cur *Rollout) error {
			if cur.Phase != PhaseFailed {
				cur.ResumeTo = cur.Phase
				o.enter(cur, PhaseFailed, now, "traffic: "+err.Error())
			}
			return nil
		})
		if uerr != nil {
			return r, errors.Join(err, uerr)
		}
		o.emit(failed, failed.History[len(failed.History)-1])
		return failed, fmt.Errorf("apply weight %d: %w", r.TargetWeight, err)
	}
	weight := r.TargetWeight
	done, err := o.update(ctx, r.Spec.Name, func(cur *Rollout) error {
		cur.AppliedWeight = weight
		cur.record(Event{At: now, Type: "traffic", Step: cur.Step, Weight: weight, Reason: fmt.Sprintf("canary weight %d%%", weight)})
		switch {
		case cur.Phase == PhaseRollingBack && weight == 0 && cur.StepDownIndex >= len(cur.Schedule.StepDown):
			o.enter(cur, PhaseRolledBack, now, cur.Reason)
		case cur.Phase == PhasePromoting && weight == 100:
			o.enter(cur, PhaseCompleted, now, promotedReason)
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	for _, e := range done.History[len(r.History):] {
		o.emit(done, e)
	}
	return done, nil
}
