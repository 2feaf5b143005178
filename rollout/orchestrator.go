package rollout

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/rollout/deploy"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs"
	"github.com/aurum/canary/traffic/routers"
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
	// Traffic moves the canaries' traffic; the orchestrator never writes
	// a weight any other way.
	Traffic *Traffic
	// Deployments manages the Deployments of rollouts that name one
	// (deploy.Kube); without it such rollouts are refused.
	Deployments Deployments
	// Policies returns the policies in service.
	Policies func() *rules.Set
	// Decide, when set, is consulted after every analysis.
	Decide DecisionFunc
	// OnEvent, when set, is called after each event is stored: a callback
	// for alerting and for live views.
	OnEvent func(r *Rollout, e Event)
	// Workers bounds the rollouts evaluated at once by Run; default 16.
	Workers int
	// Panicked, when set, counts a recovered panic.
	Panicked func(component string)
	// Retention is how long a finished rollout is kept; 0 keeps them.
	Retention time.Duration
	Logger    *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Deployments manage the Deployments of a rollout; deploy.Kube does it
// over the Kubernetes API. Each operation is idempotent.
type Deployments interface {
	// Check refuses a stable Deployment that cannot be rolled out (it is
	// missing, Argo Rollouts or Flagger manage it, a container is
	// unknown) and returns its progress deadline.
	Check(ctx context.Context, s deploy.Spec) (time.Duration, error)
	// ApplyCanary creates or updates the canary Deployment.
	ApplyCanary(ctx context.Context, s deploy.Spec) (deploy.Status, error)
	// PromoteStable copies the canary's pod template into the stable
	// Deployment.
	PromoteStable(ctx context.Context, s deploy.Spec) (deploy.Status, error)
	// ScaleCanary sets the canary's replicas.
	ScaleCanary(ctx context.Context, s deploy.Spec, replicas int32) (deploy.Status, error)
	// State reads both Deployments.
	State(ctx context.Context, s deploy.Spec) (deploy.State, error)
}

// Orchestrator runs rollouts. It is safe for concurrent use; each rollout
// is advanced by one goroutine at a time.
type Orchestrator struct {
	o Options

	// locks serialise the work on one rollout.
	locks *stripes
	mu    sync.Mutex
	due   map[string]time.Time
	// failures counts a rollout's ticks that failed in a row, for backoff.
	failures map[string]int
	wake     chan struct{}

	// health is why Run cannot do its work, or nil: /readyz reports it.
	health atomic.Pointer[error]
	// bad are the keys of documents that do not decode, reported once.
	bad sync.Map
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
	return &Orchestrator{o: o, locks: newStripes(), due: map[string]time.Time{}, failures: map[string]int{}, wake: make(chan struct{}, 1)}
}

// Healthy returns nil while the orchestrator can do its work, or why it
// cannot (the store cannot be read), for readiness.
func (o *Orchestrator) Healthy() error {
	if p := o.health.Load(); p != nil {
		return *p
	}
	return nil
}

func (o *Orchestrator) setHealth(err error) {
	if err == nil {
		o.health.Store(nil)
		return
	}
	o.health.Store(&err)
}

func (o *Orchestrator) lock(key string) func() { return o.locks.lock(key) }

// schedule asks Run to tick the rollout at t.
func (o *Orchestrator) schedule(key string, t time.Time) {
	o.mu.Lock()
	o.due[key] = t
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *Orchestrator) unschedule(key string) {
	o.mu.Lock()
	delete(o.due, key)
	o.mu.Unlock()
}

// Get returns the rollout namespace/name.
func (o *Orchestrator) Get(ctx context.Context, namespace, name string) (*Rollout, error) {
	return o.get(ctx, namespace+"/"+name)
}

func (o *Orchestrator) get(ctx context.Context, key string) (*Rollout, error) {
	data, err := o.o.Store.Document(ctx, kindRollout, key)
	if errors.Is(err, runs.ErrDocumentNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, err
	}
	var r Rollout
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode rollout %s: %w", key, err)
	}
	if r.Spec.Namespace == "" {
		r.Spec.Namespace = legacyNamespace(&r)
	}
	return &r, nil
}

// List returns every rollout, by namespace and name. A document that does
// not decode is skipped and reported (logged once, and in problems): one
// bad record must not stop every other rollout.
func (o *Orchestrator) List(ctx context.Context) (all []*Rollout, problems []error, err error) {
	docs, err := o.o.Store.DocumentsOf(ctx, kindRollout)
	if err != nil {
		return nil, nil, err
	}
	all = make([]*Rollout, 0, len(docs))
	for _, key := range slices.Sorted(maps.Keys(docs)) {
		var r Rollout
		if err := json.Unmarshal(docs[key], &r); err != nil {
			problems = append(problems, fmt.Errorf("rollout %s does not decode: %w", key, err))
			if _, seen := o.bad.LoadOrStore(key, true); !seen {
				o.o.Logger.Error("rollout record does not decode; it is skipped", "rollout", key, "err", err)
			}
			continue
		}
		if r.Spec.Namespace == "" {
			r.Spec.Namespace = legacyNamespace(&r)
		}
		all = append(all, &r)
	}
	return all, problems, nil
}

// legacyNamespace is the namespace of a rollout stored before rollouts
// were keyed by namespace: its namespace param, or its traffic's.
func legacyNamespace(r *Rollout) string {
	if ns := r.Spec.Params["namespace"]; ns != "" {
		return ns
	}
	if r.Traffic != nil {
		return r.Traffic.Namespace
	}
	return "default"
}

// migrate rekeys rollouts stored by name alone (before they were keyed by
// namespace and name) as namespace/name.
func (o *Orchestrator) migrate(ctx context.Context) error {
	docs, err := o.o.Store.DocumentsOf(ctx, kindRollout)
	if err != nil {
		return err
	}
	for key, data := range docs {
		if strings.Contains(key, "/") {
			continue
		}
		var r Rollout
		if err := json.Unmarshal(data, &r); err != nil {
			continue // List reports it
		}
		r.Spec.Namespace = legacyNamespace(&r)
		next, err := json.Marshal(&r)
		if err != nil {
			return err
		}
		if _, err := o.o.Store.UpdateDocument(ctx, kindRollout, r.Spec.Key(), func([]byte) ([]byte, error) { return next, nil }); err != nil {
			return err
		}
		if err := o.o.Store.DeleteDocument(ctx, kindRollout, key); err != nil {
			return err
		}
		o.o.Logger.Info("rollout rekeyed by namespace", "rollout", r.Spec.Key())
	}
	return nil
}

// update changes a rollout durably: fn sees the stored rollout and changes
// it in place; what it leaves is written before update returns.
func (o *Orchestrator) update(ctx context.Context, key string, fn func(r *Rollout) error) (*Rollout, error) {
	var out *Rollout
	_, err := o.o.Store.UpdateDocument(ctx, kindRollout, key, func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		var r Rollout
		if err := json.Unmarshal(old, &r); err != nil {
			return nil, fmt.Errorf("decode rollout %s: %w", key, err)
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

// Start starts a rollout, or returns the existing one of the same
// namespace, name and version: retries of a deployment pipeline must not
// start twice. A different version of a rollout still in progress is
// refused, and so is a target whose traffic is still being rolled back.
func (o *Orchestrator) Start(ctx context.Context, spec Spec) (*Rollout, error) {
	set := o.o.Policies()
	if set == nil {
		return nil, fmt.Errorf("%w: no policies loaded", ErrBadSpec)
	}
	pol, err := set.Get(spec.Policy)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSpec, err)
	}
	spec.Namespace = cmp.Or(spec.Namespace, spec.Params["namespace"])
	if !rules.IsName(spec.Namespace) || !rules.IsName(spec.Name) || !rules.IsName(spec.Version) {
		return nil, fmt.Errorf("%w: namespace, name and version must be Kubernetes-style names (letters, digits, '-', '_', '.'); the namespace defaults to the namespace param", ErrBadSpec)
	}
	if pol.DryRun {
		return nil, fmt.Errorf("%w: policy %s is dryRun: it never fails, so it cannot gate a rollout; carry it as a shadow policy beside one that can", ErrBadSpec, pol.Name)
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
	if err := o.checkShadows(set, spec); err != nil {
		return nil, err
	}
	schedule, err := resolve(pol, spec.Schedule)
	if err != nil {
		return nil, err
	}
	if spec.Deployment != nil {
		if schedule.ProgressDeadline, err = o.checkDeployment(ctx, &spec); err != nil {
			return nil, err
		}
	}
	now := o.o.Now()
	r := &Rollout{
		Spec: spec, Schedule: schedule, Phase: PhasePending, CreatedAt: now, UpdatedAt: now,
		PhaseSince: now, NextAt: now,
		Traffic: &TrafficInfo{Router: ts.Router, Namespace: ts.Namespace, Object: ts.Ingress + ts.HTTPRoute},
	}
	if spec.Deployment != nil {
		r.Deploy = &DeployState{}
	}
	r.record(Event{At: now, Type: "transition", To: PhasePending, Reason: "started version " + spec.Version})
	key := spec.Key()
	unlock := o.lock(key)
	defer unlock()
	existing, err := o.get(ctx, key)
	switch {
	case err == nil && existing.Spec.Version == spec.Version:
		return existing, nil
	case err == nil && !existing.Phase.Terminal():
		return nil, fmt.Errorf("%w: rollout %s of version %s is %s; roll it back or let it finish first",
			ErrConflict, key, existing.Spec.Version, existing.Phase)
	case err != nil && !errors.Is(err, ErrNotFound):
		return nil, err
	}
	// A new rollout may raise this traffic again once an earlier rollback
	// of it is over; one still lowering the weight goes first.
	if err := o.o.Traffic.Release(ctx, Target(ts)); err != nil {
		if errors.Is(err, ErrRollingBack) {
			return nil, fmt.Errorf("%w: %w", ErrConflict, err)
		}
		return nil, err
	}
	data, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	if _, err := o.o.Store.UpdateDocument(ctx, kindRollout, key, func([]byte) ([]byte, error) { return data, nil }); err != nil {
		return nil, err
	}
	o.o.Logger.Info("rollout started", "rollout", key, "version", spec.Version, "policy", spec.Policy, "steps", len(schedule.Steps))
	o.emit(r, r.History[len(r.History)-1])
	o.schedule(key, now)
	return r, nil
}

// checkShadows checks a start's shadow policies: a few, each loaded, each
// dryRun (so that nothing it holds, alerts or latchOnFail, can act), each
// taking the rollout's params.
func (o *Orchestrator) checkShadows(set *rules.Set, spec Spec) error {
	if len(spec.Shadow) > maxShadows {
		return fmt.Errorf("%w: at most %d shadow policies, got %d", ErrBadSpec, maxShadows, len(spec.Shadow))
	}
	for i, name := range spec.Shadow {
		if slices.Contains(spec.Shadow[:i], name) || name == spec.Policy {
			return fmt.Errorf("%w: shadow policy %s twice, or the rollout's own", ErrBadSpec, name)
		}
		pol, err := set.Get(name)
		if err != nil {
			return fmt.Errorf("%w: shadow: %w", ErrBadSpec, err)
		}
		if !pol.DryRun {
			return fmt.Errorf("%w: shadow policy %s is not dryRun: mark it spec.dryRun: true, so that nothing it holds can act on the rollout", ErrBadSpec, name)
		}
		if _, err := pol.ResolveParams(spec.Params); err != nil {
			return fmt.Errorf("%w: shadow policy %s: %w", ErrBadSpec, name, err)
		}
	}
	return nil
}

// maxImages bounds a deployment's images: a pod has a few containers.
const maxImages = 32

// checkDeployment completes a start's deployment spec and checks the
// stable Deployment, returning the progress deadline.
func (o *Orchestrator) checkDeployment(ctx context.Context, spec *Spec) (Duration, error) {
	d := *spec.Deployment
	d.Namespace = cmp.Or(d.Namespace, spec.Namespace)
	d.Version = spec.Version
	if !rules.IsName(d.Namespace) || !rules.IsName(d.Name) || (d.Canary != "" && !rules.IsName(d.Canary)) {
		return 0, fmt.Errorf("%w: a deployment needs a Kubernetes-style namespace and name", ErrBadSpec)
	}
	if d.CanaryName() == d.Name {
		return 0, fmt.Errorf("%w: the canary deployment cannot be the stable one", ErrBadSpec)
	}
	if len(d.Images) == 0 && d.Template == nil {
		return 0, fmt.Errorf("%w: deployment %s/%s: say what the canary runs: images (--image CONTAINER=IMAGE) or a pod template (--from-manifest)", ErrBadSpec, d.Namespace, d.Name)
	}
	if len(d.Images) > maxImages {
		return 0, fmt.Errorf("%w: at most %d images, got %d", ErrBadSpec, maxImages, len(d.Images))
	}
	if d.Replicas != nil && *d.Replicas < 1 {
		return 0, fmt.Errorf("%w: the canary needs at least 1 replica", ErrBadSpec)
	}
	if o.o.Deployments == nil {
		return 0, fmt.Errorf("%w: this server manages no Deployments (it has no Kubernetes client)", ErrBadSpec)
	}
	deadline, err := o.o.Deployments.Check(ctx, d)
	switch {
	case errors.Is(err, deploy.ErrManaged):
		return 0, fmt.Errorf("%w: %w", ErrConflict, err)
	case errors.Is(err, deploy.ErrBadSpec):
		return 0, fmt.Errorf("%w: %w", ErrBadSpec, err)
	case err != nil:
		return 0, fmt.Errorf("%w: %w", ErrBadSpec, err)
	}
	if s := spec.Schedule; s != nil && s.ProgressDeadline != nil {
		deadline = time.Duration(*s.ProgressDeadline)
	}
	spec.Deployment = &d
	return Duration(deadline), nil
}

func (o *Orchestrator) emit(r *Rollout, e Event) {
	if o.o.OnEvent != nil {
		o.o.OnEvent(r, e)
	}
}

// RunID names the run of the rollout's analyses: namespace/name@version.
func (r *Rollout) RunID() string { return r.Spec.Key() + "@" + r.Spec.Version }

// ref is the run the rollout's analyses belong to, so latches from alerts
// and the runs API apply to it.
func ref(r *Rollout) runs.Ref {
	return runs.Ref{Namespace: r.Spec.Namespace, Name: r.Spec.Name, Revision: r.Spec.Version}
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
// to the next step now. A reason is required; by names who acted.
func (o *Orchestrator) Act(ctx context.Context, namespace, name, action, reason, by string) (*Rollout, error) {
	switch action {
	case ActionPromote, ActionRollback, ActionPause, ActionResume, ActionSkipStep:
	default:
		return nil, fmt.Errorf("%w: %q (known: promote, rollback, pause, resume, skip-step)", ErrBadAction, action)
	}
	reason = strings.TrimSpace(reason)
	if err := runs.CheckReason(action, reason); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSpec, err)
	}
	key := namespace + "/" + name
	unlock := o.lock(key)
	defer unlock()
	now := o.o.Now()
	before, err := o.get(ctx, key)
	if err != nil {
		return nil, err
	}
	r, err := o.update(ctx, key, func(r *Rollout) error {
		if r.Phase.Terminal() {
			return fmt.Errorf("%w: rollout %s is %s", ErrBadAction, key, r.Phase)
		}
		// A paused or failed rollout is in the phase it resumes to.
		in := r.Phase
		if in == PhasePaused || in == PhaseFailed {
			in = r.ResumeTo
		}
		switch action {
		case ActionPromote:
			switch {
			case r.Phase == PhaseRollingBack:
				return fmt.Errorf("%w: rollout %s is rolling back; a rollback is not undone", ErrBadAction, key)
			case in == PhaseDeploying:
				return fmt.Errorf("%w: rollout %s is deploying its canary, which takes no traffic before it is available", ErrBadAction, key)
			case in == PhaseFinalising:
				return fmt.Errorf("%w: rollout %s is already promoting its stable deployment", ErrBadAction, key)
			}
			o.promote(r, now, reason)
		case ActionRollback:
			if r.stableWritten() {
				return fmt.Errorf("%w: rollout %s already gave the stable deployment the new version; roll back by rolling out the old one", ErrBadAction, key)
			}
			o.enterRollback(r, now, reason)
		case ActionPause:
			if r.Phase == PhasePaused || r.Phase == PhaseRollingBack {
				return nil
			}
			r.ResumeTo = r.Phase
			o.enter(r, PhasePaused, now, reason)
		case ActionResume:
			if r.Phase != PhasePaused && r.Phase != PhaseFailed {
				return fmt.Errorf("%w: rollout %s is %s, not paused", ErrBadAction, key, r.Phase)
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
				return fmt.Errorf("%w: rollout %s is %s; only a progressing rollout has a step to skip", ErrBadAction, key, r.Phase)
			}
			if r.Hold != nil {
				return fmt.Errorf("%w: rollout %s is held by %s, which keeps its weight from rising; it goes on when they clear", ErrBadAction, key, strings.Join(r.Hold.Rules, ", "))
			}
			o.advance(r, now, reason)
		}
		r.record(Event{At: now, Type: "action", Step: r.Step, Weight: r.TargetWeight, Reason: action + ": " + reason, By: by})
		r.NextAt = now
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, e := range newEvents(before, r) {
		o.emit(r, e)
	}
	o.o.Logger.Info("rollout action", "rollout", key, "action", action, "by", by, "reason", reason, "phase", r.Phase)
	r, err = o.applyTraffic(ctx, r)
	o.schedule(key, now)
	return r, err
}

// enter moves r to a phase and records it.
func (o *Orchestrator) enter(r *Rollout, to Phase, now time.Time, reason string) {
	from := r.Phase
	r.Phase, r.PhaseSince, r.Reason = to, now, reason
	r.Ready = false
	r.record(Event{At: now, Type: "transition", From: from, To: to, Step: r.Step, Weight: r.TargetWeight, Reason: reason})
}

// enterRollback moves r to rolling back: the traffic engine lowers its
// weight from there (applyTraffic), to 0.
func (o *Orchestrator) enterRollback(r *Rollout, now time.Time, reason string) {
	if r.Phase == PhaseRollingBack {
		return
	}
	o.enter(r, PhaseRollingBack, now, reason)
	r.TargetWeight = 0
	r.Hold = nil
	if r.Deploy != nil {
		r.Deploy.Stage = ""
	}
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

// target renders the rollout's traffic target from its policy.
func (o *Orchestrator) target(r *Rollout) (routers.Target, error) {
	set := o.o.Policies()
	if set == nil {
		return routers.Target{}, errors.New("no policies loaded")
	}
	pol, err := set.Get(r.Spec.Policy)
	if err != nil {
		return routers.Target{}, err
	}
	if pol.Traffic == nil {
		return routers.Target{}, fmt.Errorf("policy %s has no traffic section", pol.Name)
	}
	resolved, err := pol.ResolveParams(r.Spec.Params)
	if err != nil {
		return routers.Target{}, err
	}
	spec, err := pol.Traffic.Render(resolved)
	if err != nil {
		return routers.Target{}, err
	}
	return Target(spec), nil
}

// applyTraffic brings the canary's traffic to what the rollout wants and
// records the weight applied. A rolling-back rollout hands its traffic to
// the step-down engine and follows it; otherwise the target weight is set,
// which the engine refuses to raise while a rollback of the same traffic
// stands (the rollout then rolls back too). A router that fails puts the
// rollout in the failed phase, to be resumed by a person; the target stays,
// so a resume retries the same weight.
func (o *Orchestrator) applyTraffic(ctx context.Context, r *Rollout) (*Rollout, error) {
	if r.Phase == PhaseRollingBack {
		return o.followRollback(ctx, r)
	}
	if r.AppliedWeight == r.TargetWeight && r.Phase != PhasePending {
		return r, nil
	}
	key := r.Spec.Key()
	target, err := o.target(r)
	if err == nil {
		err = o.o.Traffic.Set(ctx, target, r.TargetWeight)
	}
	now := o.o.Now()
	if errors.Is(err, ErrRollingBack) {
		rolled, uerr := o.update(ctx, key, func(cur *Rollout) error {
			o.enterRollback(cur, now, err.Error())
			return nil
		})
		if uerr != nil {
			return r, uerr
		}
		for _, e := range newEvents(r, rolled) {
			o.emit(rolled, e)
		}
		return o.followRollback(ctx, rolled)
	}
	if err != nil {
		o.o.Logger.Error("rollout traffic change failed", "rollout", key, "weight", r.TargetWeight, "err", err)
		failed, uerr := o.update(ctx, key, func(cur *Rollout) error {
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
	done, err := o.update(ctx, key, func(cur *Rollout) error {
		cur.AppliedWeight = weight
		cur.record(Event{At: now, Type: "traffic", Step: cur.Step, Weight: weight, Reason: fmt.Sprintf("canary weight %d%%", weight)})
		if cur.Phase == PhasePromoting && weight == 100 {
			o.finish(cur, now)
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	for _, e := range newEvents(r, done) {
		o.emit(done, e)
	}
	return done, nil
}

// followRollback starts or joins the step-down of the rollout's traffic,
// advances it when due, and records each weight it applied; the rollout is
// rolled back once the engine has the weight at 0.
func (o *Orchestrator) followRollback(ctx context.Context, r *Rollout) (*Rollout, error) {
	target, err := o.target(r)
	if err != nil {
		return r, err
	}
	plan := Plan{Weights: r.Schedule.StepDown, Interval: time.Duration(r.Schedule.StepDownInterval), From: r.AppliedWeight}
	sd, err := o.o.Traffic.RollBack(ctx, target, plan, r.RunID(), r.Reason)
	if err == nil {
		sd, err = o.o.Traffic.Advance(ctx, target)
	}
	if sd == nil {
		return r, err
	}
	// Traffic first, then the canary Deployment: once the weight is at 0
	// it is scaled to 0, and only then is the rollout rolled back.
	var retired *deploy.State
	if sd.Done && r.Deploy != nil && r.Deploy.Stage != StageCanaryRetired {
		st, derr := o.retireCanary(ctx, r)
		if derr != nil {
			return r, errors.Join(err, derr)
		}
		retired = &st
	}
	now := o.o.Now()
	out, uerr := o.update(ctx, r.Spec.Key(), func(cur *Rollout) error {
		if sd.Weight >= 0 && sd.Weight != cur.AppliedWeight {
			cur.AppliedWeight = sd.Weight
			cur.record(Event{At: now, Type: "traffic", Step: cur.Step, Weight: sd.Weight, Reason: fmt.Sprintf("canary weight %d%%", sd.Weight)})
		}
		if retired != nil && cur.Deploy != nil && cur.Deploy.Stage != StageCanaryRetired {
			cur.Deploy.Stage, cur.Deploy.State, cur.Deploy.At = StageCanaryRetired, *retired, now
			cur.record(Event{At: now, Type: "deployment", Step: cur.Step, Weight: cur.AppliedWeight,
				Reason: "canary deployment " + retired.Canary.Name + " scaled to 0"})
		}
		if sd.Done && cur.Phase == PhaseRollingBack && (cur.Deploy == nil || cur.Deploy.Stage == StageCanaryRetired) {
			o.enter(cur, PhaseRolledBack, now, cur.Reason)
		}
		if !sd.Done {
			cur.NextAt = sd.NextAt
		}
		return nil
	})
	if uerr != nil {
		return r, errors.Join(err, uerr)
	}
	for _, e := range newEvents(r, out) {
		o.emit(out, e)
	}
	return out, err
}
