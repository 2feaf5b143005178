package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/aurum/canary/runs"
	"github.com/aurum/canary/traffic"
	"github.com/aurum/canary/traffic/routers"
)

// kindStepDown is the store's document kind of step-downs, keyed by the
// target's routers.Target.Key.
const kindStepDown = "stepdown"

// namespace is the prefix of the metrics this package registers.
const namespace = "canary"

// ErrRollingBack marks a raise of a canary's weight refused because a
// rollback of the same traffic stands.
var ErrRollingBack = errors.New("a rollback of this canary's traffic stands")

// Plan is how a rollback lowers a canary's weight: each of Weights that
// is below the weight the canary has, one per Interval, then 0.
type Plan struct {
	Weights  []int
	Interval time.Duration
	// From is the weight the caller knows the canary to have (the
	// orchestrator does), or -1 when it does not (the kill switch, behind
	// Argo Rollouts or Flagger): the router is asked then, and a router
	// that cannot say is cut to 0 at once.
	From int
}

// StepDown is a rollback of one target's canary traffic, as stored.
type StepDown struct {
	Target routers.Target `json:"target"`
	// Run is the run (namespace/name@revision) whose rollback this is.
	Run    string `json:"run"`
	Reason string `json:"reason"`
	// Weights still to apply, each below the one before; the last is 0.
	Weights  []int    `json:"weights"`
	Interval Duration `json:"interval"`
	// Weight is the last weight applied; -1 before the first.
	Weight int       `json:"weight"`
	NextAt time.Time `json:"nextAt,omitzero"`
	// Done is set once the weight is 0.
	Done      bool      `json:"done"`
	StartedAt time.Time `json:"startedAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// Error is the last failure to apply a weight, retried with backoff.
	Error    string `json:"error,omitempty"`
	Failures int    `json:"failures,omitempty"`
}

// TrafficOptions configure Traffic.
type TrafficOptions struct {
	Store runs.Documents
	// Routers builds the router of a target.
	Routers func(routers.Target) (traffic.Router, error)
	// Registerer, when set, gets canary_traffic_cuts_total and
	// canary_stepdowns_active.
	Registerer prometheus.Registerer
	// Panicked, when set, counts a recovered panic.
	Panicked func(component string)
	// OnDone, when set, is called once a step-down has the weight at 0,
	// after that is stored.
	OnDone func(*StepDown)
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Traffic moves canary traffic for canary serve, and is the only thing
// that does. The orchestrator's steps up go through Set; every rollback,
// the orchestrator's or the kill switch's, is a step-down run by RollBack,
// which only ever lowers the weight: each weight of its plan that is not
// below the canary's is skipped, and while a step-down of a target stands
// (running, or done and not released) Set refuses to raise that target.
// Step-downs are documents in the store, written before each weight is
// applied, so a restart resumes them where they were, and a redelivered
// trigger joins the step-down in progress instead of starting it again.
type Traffic struct {
	o    TrafficOptions
	cuts *prometheus.CounterVec

	// locks serialise the work on one target's step-down.
	locks *stripes
	wake  chan struct{}
}

// NewTraffic returns the traffic engine.
func NewTraffic(o TrafficOptions) *Traffic {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	t := &Traffic{o: o, locks: newStripes(), wake: make(chan struct{}, 1)}
	f := promauto.With(o.Registerer)
	t.cuts = f.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "traffic_cuts_total",
		Help: "Weights applied by rollbacks (kill switch and orchestrator), by result (ok, error).",
	}, []string{"result"})
	t.cuts.WithLabelValues("ok")
	t.cuts.WithLabelValues("error")
	if o.Registerer != nil {
		o.Registerer.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "stepdowns_active",
			Help: "Rollbacks of canary traffic still lowering a weight.",
		}, func() float64 {
			all, _ := t.List(context.Background())
			n := 0
			for _, sd := range all {
				if !sd.Done {
					n++
				}
			}
			return float64(n)
		}))
	}
	return t
}

func (t *Traffic) lock(key string) func() { return t.locks.lock(key) }

// Get returns a target's step-down, or nil when there is none.
func (t *Traffic) Get(ctx context.Context, target routers.Target) (*StepDown, error) {
	data, err := t.o.Store.Document(ctx, kindStepDown, target.Key())
	if errors.Is(err, runs.ErrDocumentNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var sd StepDown
	if err := json.Unmarshal(data, &sd); err != nil {
		return nil, fmt.Errorf("decode step-down %s: %w", target.Key(), err)
	}
	return &sd, nil
}

// List returns every stored step-down; one that does not decode is
// skipped.
func (t *Traffic) List(ctx context.Context) ([]*StepDown, error) {
	docs, err := t.o.Store.DocumentsOf(ctx, kindStepDown)
	if err != nil {
		return nil, err
	}
	out := make([]*StepDown, 0, len(docs))
	for key, data := range docs {
		var sd StepDown
		if err := json.Unmarshal(data, &sd); err != nil {
			t.o.Logger.Error("step-down does not decode; skipped", "target", key, "err", err)
			continue
		}
		out = append(out, &sd)
	}
	return out, nil
}

func (t *Traffic) put(ctx context.Context, sd *StepDown) error {
	data, err := json.Marshal(sd)
	if err != nil {
		return err
	}
	_, err = t.o.Store.UpdateDocument(ctx, kindStepDown, sd.Target.Key(), func([]byte) ([]byte, error) { return data, nil })
	return err
}

// RollBack lowers target's canary traffic along plan, for the rollback of
// run. The first weight is applied before it returns (its error, if any,
// is returned, and the step-down retries it with backoff); the rest follow
// from Advance. A step-down already standing for the target is joined,
// never restarted: a redelivered alert, or the orchestrator and the kill
// switch acting on the same rollback, lower the weight once.
func (t *Traffic) RollBack(ctx context.Context, target routers.Target, plan Plan, run, reason string) (*StepDown, error) {
	unlock := t.lock(target.Key())
	defer unlock()
	sd, err := t.Get(ctx, target)
	if err != nil {
		return nil, err
	}
	switch {
	case sd != nil && !sd.Done:
		// Joined: retry at once if the last weight failed.
		if sd.Error == "" {
			return sd, nil
		}
		sd.NextAt = t.o.Now()
		return t.advance(ctx, sd)
	case sd != nil && sd.Run == run:
		return sd, nil // this rollback is done: the canary is at 0
	}
	now := t.o.Now()
	router, err := t.o.Routers(target)
	if err != nil {
		return nil, err
	}
	from := plan.From
	if st, err := router.State(ctx); err == nil {
		cur := int(math.Ceil(st.Percent()))
		if !st.Enabled {
			cur = 0
		}
		if from < 0 || cur < from {
			from = cur
		}
	} else if from < 0 {
		t.o.Logger.Warn("canary weight unknown: the rollback cuts it to 0 at once", "target", target.Key(), "err", err)
		from = 0
	}
	weights := []int{}
	for _, w := range plan.Weights {
		if w > 0 && w < from && (len(weights) == 0 || w < weights[len(weights)-1]) {
			weights = append(weights, w)
		}
	}
	weights = append(weights, 0)
	sd = &StepDown{Target: target, Run: run, Reason: reason, Weights: weights, Interval: Duration(plan.Interval),
		Weight: -1, NextAt: now, StartedAt: now, UpdatedAt: now}
	if err := t.put(ctx, sd); err != nil {
		return nil, err
	}
	t.o.Logger.Warn("rolling back canary traffic", "target", target.Key(), "run", run, "from", from, "weights", weights, "reason", reason)
	t.signal()
	return t.advance(ctx, sd)
}

// Advance applies the next weight of target's step-down when it is due,
// and returns the step-down as stored (nil when there is none).
func (t *Traffic) Advance(ctx context.Context, target routers.Target) (*StepDown, error) {
	unlock := t.lock(target.Key())
	defer unlock()
	sd, err := t.Get(ctx, target)
	if err != nil || sd == nil || sd.Done {
		return sd, err
	}
	return t.advance(ctx, sd)
}

// advance applies the next weight if due; the target's lock is held.
func (t *Traffic) advance(ctx context.Context, sd *StepDown) (*StepDown, error) {
	now := t.o.Now()
	if sd.Done || now.Before(sd.NextAt) {
		return sd, nil
	}
	w := sd.Weights[0]
	err := t.apply(ctx, sd, w)
	sd.UpdatedAt = now
	if err != nil {
		sd.Failures++
		sd.Error = err.Error()
		sd.NextAt = now.Add(backoff(sd.Failures))
		t.cuts.WithLabelValues("error").Inc()
		t.o.Logger.Error("rollback could not lower canary traffic; retrying", "target", sd.Target.Key(), "weight", w,
			"failures", sd.Failures, "err", err)
	} else {
		sd.Weight, sd.Error, sd.Failures = w, "", 0
		sd.Weights = sd.Weights[1:]
		sd.Done = len(sd.Weights) == 0
		sd.NextAt = now.Add(time.Duration(sd.Interval))
		t.cuts.WithLabelValues("ok").Inc()
		t.o.Logger.Info("canary traffic lowered", "target", sd.Target.Key(), "weight", w, "done", sd.Done)
	}
	if perr := t.put(ctx, sd); perr != nil {
		return sd, errors.Join(err, perr)
	}
	if err != nil {
		return sd, fmt.Errorf("lower canary weight to %d: %w", w, err)
	}
	if sd.Done && t.o.OnDone != nil {
		t.o.OnDone(sd)
	}
	return sd, nil
}

// apply sets weight w, unless the canary already has less: a weight that
// went down by other hands (Argo Rollouts aborting, a person) is not
// raised back.
func (t *Traffic) apply(ctx context.Context, sd *StepDown, w int) error {
	router, err := t.o.Routers(sd.Target)
	if err != nil {
		return err
	}
	if w == 0 {
		return router.Reset(ctx)
	}
	if st, err := router.State(ctx); err == nil && (!st.Enabled || int(math.Ceil(st.Percent())) <= w) {
		return nil
	}
	return router.Apply(ctx, traffic.Step{Weight: w})
}

// backoff is the wait before retry n of a failed weight: 1s, 2s, 4s, up to
// 30s.
func backoff(n int) time.Duration {
	return min(time.Second<<min(n-1, 5), 30*time.Second)
}

// Set applies weight w to target for a rollout stepping its canary.
// Raising is refused (ErrRollingBack) while a step-down of the target
// stands; lowering is always allowed.
func (t *Traffic) Set(ctx context.Context, target routers.Target, w int) error {
	unlock := t.lock(target.Key())
	defer unlock()
	sd, err := t.Get(ctx, target)
	if err != nil {
		return err
	}
	if sd != nil && w > 0 {
		return fmt.Errorf("%w (%s, %s): weight %d refused", ErrRollingBack, sd.Run, sd.Reason, w)
	}
	router, err := t.o.Routers(target)
	if err != nil {
		return err
	}
	if w == 0 {
		return router.Reset(ctx)
	}
	return router.Apply(ctx, traffic.Step{Weight: w})
}

// Release forgets a target's finished step-down, so that a new rollout may
// raise its traffic again. A step-down still lowering the weight is not
// released (ErrRollingBack).
func (t *Traffic) Release(ctx context.Context, target routers.Target) error {
	unlock := t.lock(target.Key())
	defer unlock()
	sd, err := t.Get(ctx, target)
	if err != nil || sd == nil {
		return err
	}
	if !sd.Done {
		return fmt.Errorf("%w (%s, %s): it is still lowering the weight", ErrRollingBack, sd.Run, sd.Reason)
	}
	return t.o.Store.DeleteDocument(ctx, kindStepDown, target.Key())
}

func (t *Traffic) signal() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Run advances every step-down that is due until ctx is done: at start it
// resumes those a previous process left, and wakes when one starts.
// Finished step-downs older than keep are forgotten.
func (t *Traffic) Run(ctx context.Context, keep time.Duration) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.wake:
		case <-timer.C:
		}
		next := t.pass(ctx, keep)
		timer.Reset(max(time.Until(next), 10*time.Millisecond))
	}
}

// pass advances what is due and returns when to look again.
func (t *Traffic) pass(ctx context.Context, keep time.Duration) (next time.Time) {
	now := t.o.Now()
	next = now.Add(time.Minute)
	defer func() {
		if p := recover(); p != nil {
			if t.o.Panicked != nil {
				t.o.Panicked("stepdown")
			}
			t.o.Logger.Error("step-down loop panicked", "panic", fmt.Sprint(p))
			next = now.Add(5 * time.Second)
		}
	}()
	all, err := t.List(ctx)
	if err != nil {
		t.o.Logger.Error("step-downs not read; retrying", "err", err)
		return now.Add(5 * time.Second)
	}
	slices.SortFunc(all, func(a, b *StepDown) int { return a.NextAt.Compare(b.NextAt) })
	for _, sd := range all {
		switch {
		case sd.Done && keep > 0 && now.Sub(sd.UpdatedAt) > keep:
			_ = t.Release(ctx, sd.Target)
		case sd.Done:
		case !now.Before(sd.NextAt):
			if sd, _ := t.Advance(ctx, sd.Target); sd != nil && !sd.Done && sd.NextAt.Before(next) {
				next = sd.NextAt
			}
		case sd.NextAt.Before(next):
			next = sd.NextAt
		}
	}
	return next
}
