package rollout

import (
	"context"
	"errors"
	"github.com/aurum/canary/runs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs/bolt"
	"github.com/aurum/canary/traffic"
	"github.com/aurum/canary/traffic/routers"
)

const testPolicy = `
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: ingest}
spec:
  params: {namespace: {}, name: {}}
  queries:
    error_rate: {prometheus: 'error_rate{app="{{ .name }}"}'}
    p99_ms: {prometheus: 'p99{app="{{ .name }}"}'}
  rules:
    - {name: error-rate, expr: error_rate <= 0.01}
    - {name: latency, expr: p99_ms < 500}
  decision:
    timezone: America/Chicago
    rules:
      - {name: market-hours, expr: 'weekday >= 1 && weekday <= 5 && hour >= 7 && hour < 19 && error_rate > 0.005', action: rollback}
  traffic:
    router: nginx
    namespace: "{{ .namespace }}"
    ingress: "{{ .name }}"
    stableService: "{{ .name }}-primary"
    canaryService: "{{ .name }}-canary"
  rollout:
    initialWeight: 10
    stepWeight: 20
    maxWeight: 50
    warmup: 2m
    interval: 1m
    stepDuration: 3m
    promotion: 5m
    failureLimit: 1
    inconclusiveLimit: 2
    report: {errorRate: error_rate, latencyMs: p99_ms}
`

// fakeRouter records the weights applied, and can be made to fail.
type fakeRouter struct {
	mu       sync.Mutex
	weights  []int
	fail     error
	stateErr error
}

func (f *fakeRouter) Apply(_ context.Context, s traffic.Step) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.weights = append(f.weights, s.Weight)
	return nil
}

func (f *fakeRouter) Reset(ctx context.Context) error { return f.Apply(ctx, traffic.Step{}) }

// State reports the last weight applied, as a router reads it back.
func (f *fakeRouter) State(context.Context) (traffic.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stateErr != nil {
		return traffic.State{}, f.stateErr
	}
	if len(f.weights) == 0 {
		return traffic.State{}, nil
	}
	return traffic.State{Step: traffic.Step{Weight: f.weights[len(f.weights)-1]}, Enabled: true}, nil
}

func (f *fakeRouter) history() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.weights...)
}

// world is an orchestrator over a real store, with a clock, metrics and
// routers the test controls.
type world struct {
	t       testing.TB
	path    string
	st      *bolt.Bolt
	o       *Orchestrator
	traffic *Traffic
	runs    *runs.Runs
	set     *rules.Set
	now     time.Time
	mu      sync.Mutex
	errRate map[string]float64 // by app; missing: no data
	routers map[string]*fakeRouter
	decide  DecisionFunc
}

func newWorld(t testing.TB) *world {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(file, []byte(testPolicy), 0o644))
	set, err := rules.Load(file)
	require.NoError(t, err)
	// A Saturday night in Chicago, so the market-hours rule stays out of
	// the way unless a test moves the clock.
	w := &world{t: t, path: filepath.Join(dir, "canary.db"), set: set, now: time.Date(2026, 11, 28, 22, 0, 0, 0, time.UTC),
		errRate: map[string]float64{}, routers: map[string]*fakeRouter{}}
	w.open()
	return w
}

func (w *world) open() {
	w.t.Helper()
	st, err := bolt.Open(w.path, bolt.Options{})
	require.NoError(w.t, err)
	w.t.Cleanup(func() { st.Close() })
	w.st = st
	clock := func() time.Time { w.mu.Lock(); defer w.mu.Unlock(); return w.now }
	rs, err := runs.New(context.Background(), runs.Options{Store: st, Now: clock})
	require.NoError(w.t, err)
	w.runs = rs
	src := queries.SourceFunc(func(_ context.Context, q queries.Query) (queries.Result, error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		for app, v := range w.errRate {
			if strings.Contains(q.Text, `app="`+app+`"`) {
				if strings.HasPrefix(q.Text, "p99") {
					return queries.Result{Samples: []queries.Sample{{Value: 120}}}, nil
				}
				return queries.Result{Samples: []queries.Sample{{Value: v}}}, nil
			}
		}
		return queries.Result{}, nil
	})
	w.traffic = NewTraffic(TrafficOptions{Store: st, Now: clock,
		Routers: func(spec routers.Target) (traffic.Router, error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			r := w.routers[spec.Ingress]
			if r == nil {
				r = &fakeRouter{}
				w.routers[spec.Ingress] = r
			}
			return r, nil
		}})
	w.o = New(Options{
		Store: st, Runs: rs, Now: clock, Traffic: w.traffic,
		Evaluator: analysis.NewEvaluator(analysis.Options{Sources: queries.Registry{{Kind: "prometheus"}: src}, Now: clock}),
		Policies:  func() *rules.Set { return w.set },
		Decide: func(r *Rollout, res *analysis.Result) (analysis.Decision, string) {
			if w.decide != nil {
				return w.decide(r, res)
			}
			return "", ""
		},
	})
}

func (w *world) advance(d time.Duration) {
	w.mu.Lock()
	w.now = w.now.Add(d)
	w.mu.Unlock()
}

func (w *world) setErr(app string, v float64) {
	w.mu.Lock()
	w.errRate[app] = v
	w.mu.Unlock()
}

func (w *world) start(name string, edit ...func(*Spec)) *Rollout {
	w.t.Helper()
	s := Spec{Name: name, Version: "v2", Policy: "ingest", Params: map[string]string{"namespace": "caiso", "name": name}}
	for _, e := range edit {
		e(&s)
	}
	r, err := w.o.Start(context.Background(), s)
	require.NoError(w.t, err)
	return r
}

// tick ticks the rollout key (namespace/name); a bare name is in caiso.
func (w *world) tick(key string) *Rollout {
	w.t.Helper()
	ns, name := split(key)
	r, err := w.o.Tick(context.Background(), ns, name)
	require.NoError(w.t, err)
	return r
}

func split(key string) (ns, name string) {
	if ns, name, ok := strings.Cut(key, "/"); ok {
		return ns, name
	}
	return "caiso", key
}

func (w *world) act(key, action, reason string) (*Rollout, error) {
	ns, name := split(key)
	return w.o.Act(context.Background(), ns, name, action, reason, "admin/test")
}

// run ticks every minute for d, returning the rollout at the end.
func (w *world) run(name string, d time.Duration) *Rollout {
	w.t.Helper()
	var r *Rollout
	for end := w.now.Add(d); !w.now.After(end); w.advance(time.Minute) {
		r = w.tick(name)
	}
	return r
}

func (w *world) weights(name string) []int {
	w.mu.Lock()
	r := w.routers[name]
	w.mu.Unlock()
	if r == nil {
		return nil
	}
	return r.history()
}

func phases(r *Rollout) []Phase {
	var out []Phase
	for _, e := range r.History {
		if e.Type == "transition" && e.To != e.From && e.To != "" {
			out = append(out, e.To)
		}
	}
	return out
}

func TestHappyPathPromotes(t *testing.T) {
	w := newWorld(t)
	w.setErr("lmp", 0.001)
	r := w.start("lmp")
	require.Equal(t, []Step{{Weight: 10, Duration: Duration(3 * time.Minute)}, {Weight: 30, Duration: Duration(3 * time.Minute)},
		{Weight: 50, Duration: Duration(3 * time.Minute)}}, r.Schedule.Steps)

	r = w.tick("lmp")
	require.Equal(t, PhaseWarmup, r.Phase)
	require.Equal(t, 10, r.AppliedWeight, "warmup runs at the first weight")
	w.advance(time.Minute)
	require.Equal(t, PhaseWarmup, w.tick("lmp").Phase, "no analysis during warmup")
	require.Nil(t, w.tick("lmp").LastEvaluation)

	r = w.run("lmp", 30*time.Minute)
	require.Equal(t, PhaseCompleted, r.Phase)
	require.Equal(t, []int{10, 30, 50, 100}, w.weights("lmp"))
	require.Equal(t, []Phase{PhasePending, PhaseWarmup, PhaseProgressing, PhasePromoting, PhaseCompleted}, phases(r))
	st := r.Status()
	require.Equal(t, "healthy", st.HealthStatus)
	require.InDelta(t, 0.1, *st.ErrorRatePercent, 1e-9)
	require.InDelta(t, 99.9, *st.SuccessRatePercent, 1e-9)
	require.InDelta(t, 120, *st.AvgLatencyMs, 1e-9)

	// The analyses are the run's history too.
	run, err := w.runs.Get("caiso", "lmp", "")
	require.NoError(t, err)
	require.Equal(t, "v2", run.Revision)
	require.Greater(t, run.Evaluations, uint64(5))
}

func TestFailuresRollBack(t *testing.T) {
	w := newWorld(t)
	w.setErr("lmp", 0.001)
	w.start("lmp")
	w.run("lmp", 6*time.Minute) // warmup, then step 2 at 30%
	require.Equal(t, []int{10, 30}, w.weights("lmp"))

	w.setErr("lmp", 0.05)
	r := w.tick("lmp")
	require.Equal(t, PhaseProgressing, r.Phase, "failureLimit 1: one failure is tolerated")
	require.Equal(t, 1, r.Failures)
	w.advance(time.Minute)
	r = w.tick("lmp")
	require.Equal(t, PhaseRolledBack, r.Phase)
	require.Equal(t, []int{10, 30, 0}, w.weights("lmp"))
	require.Equal(t, "error-rate: 0.05 > 0.01", r.Reason)
	require.Equal(t, "unhealthy", r.Health())
}

func TestStepDownOnRollback(t *testing.T) {
	w := newWorld(t)
	w.setErr("lmp", 0.001)
	w.start("lmp", func(s *Spec) {
		s.Schedule = &Override{Steps: []Step{{Weight: 60}}, StepDown: &StepDownConfig{Weights: []int{40, 20}, Interval: Duration(30 * time.Second)}}
	})
	w.run("lmp", 3*time.Minute)
	_, err := w.act("lmp", ActionRollback, "bad data")
	require.NoError(t, err)
	require.Equal(t, []int{60, 40}, w.weights("lmp"), "the first step down is at once")
	w.advance(30 * time.Second)
	w.tick("lmp")
	w.advance(30 * time.Second)
	r := w.tick("lmp")
	require.Equal(t, []int{60, 40, 20, 0}, w.weights("lmp"))
	require.Equal(t, PhaseRolledBack, r.Phase)
}

func TestInconclusivePausesAndResumes(t *testing.T) {
	w := newWorld(t)
	w.start("quiet")
	r := w.run("quiet", 6*time.Minute) // no data at all
	require.Equal(t, PhasePaused, r.Phase, "inconclusiveLimit 2")
	require.Equal(t, PhaseProgressing, r.ResumeTo)
	require.Equal(t, []int{10}, w.weights("quiet"), "paused: weight held")

	w.setErr("quiet", 0.001)
	_, err := w.act("quiet", ActionResume, "data is back")
	require.NoError(t, err)
	r = w.run("quiet", 30*time.Minute)
	require.Equal(t, PhaseCompleted, r.Phase)
}

func TestLatchesActAtOnce(t *testing.T) {
	tests := []struct {
		name   string
		action string
		phase  Phase
	}{
		{name: "rollback from the runs API or an alert", action: runs.ActionRollback, phase: PhaseRolledBack},
		{name: "pause", action: runs.ActionPause, phase: PhasePaused},
		{name: "promote", action: runs.ActionPromote, phase: PhasePromoting},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			w.setErr("lmp", 0.001)
			w.start("lmp")
			w.run("lmp", 3*time.Minute)
			_, err := w.runs.Act(context.Background(), "caiso", "lmp", "", tt.action, "by hand", "admin/test")
			require.NoError(t, err)
			w.advance(time.Minute)
			r := w.tick("lmp")
			require.Equal(t, tt.phase, r.Phase)
			require.Contains(t, r.Reason, "latched by manual: by hand")
		})
	}
}

// TestRollbackLatchedWhilePaused: a paused rollout is held for a person,
// not against a rollback latched on its run meanwhile.
func TestRollbackLatchedWhilePaused(t *testing.T) {
	w := newWorld(t)
	w.setErr("lmp", 0.001)
	w.start("lmp")
	w.run("lmp", 6*time.Minute)
	_, err := w.act("lmp", ActionPause, "market open")
	require.NoError(t, err)
	_, err = w.runs.Act(context.Background(), "caiso", "lmp", "", runs.ActionRollback, "bad prices", "admin/test")
	require.NoError(t, err)
	w.advance(time.Minute)
	r := w.tick("lmp")
	require.Equal(t, PhaseRolledBack, r.Phase)
	require.Equal(t, []int{10, 30, 0}, w.weights("lmp"))
	require.Contains(t, r.Reason, "rollback latched by manual: bad prices")
}

func TestManualActions(t *testing.T) {
	w := newWorld(t)
	w.setErr("lmp", 0.001)
	w.start("lmp")
	w.run("lmp", 3*time.Minute)

	r, err := w.act("lmp", ActionSkipStep, "step 1 looks fine")
	require.NoError(t, err)
	require.Equal(t, 1, r.Step)
	require.Equal(t, 30, r.AppliedWeight)
	r, err = w.act("lmp", ActionPause, "market open")
	require.NoError(t, err)
	require.Equal(t, PhasePaused, r.Phase)
	_, err = w.act("lmp", ActionSkipStep, "again")
	require.ErrorIs(t, err, ErrBadAction)
	r, err = w.act("lmp", ActionResume, "market closed")
	require.NoError(t, err)
	require.Equal(t, PhaseProgressing, r.Phase)
	r, err = w.act("lmp", ActionPromote, "looks great")
	require.NoError(t, err)
	require.Equal(t, PhasePromoting, r.Phase)
	require.Equal(t, 50, r.AppliedWeight)
	_, err = w.act("lmp", "explode", "why not")
	require.ErrorIs(t, err, ErrBadAction)
	_, err = w.act("nope", ActionPause, "none")
	require.ErrorIs(t, err, ErrNotFound)
}

func TestCustomDecisions(t *testing.T) {
	t.Run("policy decision rule in market hours", func(t *testing.T) {
		w := newWorld(t)
		w.setErr("lmp", 0.008) // passes the rule (<= 0.01), not the market-hours one
		w.start("lmp")
		w.run("lmp", 3*time.Minute)
		require.Equal(t, PhaseProgressing, w.tick("lmp").Phase, "Saturday night: fine")
		// Monday 9:00 in Chicago.
		w.mu.Lock()
		w.now = time.Date(2026, 11, 30, 15, 0, 0, 0, time.UTC)
		w.mu.Unlock()
		w.tick("lmp")
		w.advance(time.Minute)
		r := w.tick("lmp")
		require.Equal(t, PhaseRolledBack, r.Phase)
		require.Contains(t, r.Reason, "decision rule market-hours holds")
	})
	t.Run("Go decision function", func(t *testing.T) {
		w := newWorld(t)
		w.setErr("lmp", 0.001)
		w.decide = func(r *Rollout, res *analysis.Result) (analysis.Decision, string) {
			if r.Step == 1 {
				return analysis.DecisionRollback, "no second steps on Fridays"
			}
			return "", ""
		}
		w.start("lmp", func(s *Spec) { s.Schedule = &Override{FailureLimit: new(0)} })
		r := w.run("lmp", 10*time.Minute)
		require.Equal(t, PhaseRolledBack, r.Phase)
		require.Equal(t, "no second steps on Fridays", r.Reason)
	})
}

// TestRestartAtEachPhase stops the orchestrator in each phase and resumes
// over the same data dir, as a new process would.
func TestRestartAtEachPhase(t *testing.T) {
	for _, stopAfter := range []time.Duration{0, time.Minute, 4 * time.Minute, 7 * time.Minute, 12 * time.Minute} {
		t.Run(stopAfter.String(), func(t *testing.T) {
			w := newWorld(t)
			w.setErr("lmp", 0.001)
			w.start("lmp")
			before := w.run("lmp", stopAfter)
			w.st.Close()
			w.open() // a new process over the same file
			after, err := w.o.Get(context.Background(), "caiso", "lmp")
			require.NoError(t, err)
			require.Equal(t, before.Phase, after.Phase)
			require.Equal(t, before.AppliedWeight, after.AppliedWeight)
			r := w.run("lmp", 30*time.Minute)
			require.Equal(t, PhaseCompleted, r.Phase)
			require.Equal(t, []int{10, 30, 50, 100}, w.weights("lmp"), "no step skipped, none applied twice")
		})
	}
}

// TestCrashBetweenDecisionAndTraffic: a weight decided and stored but
// never confirmed applied is applied first after a restart; no old weight
// is ever applied again.
func TestCrashBetweenDecisionAndTraffic(t *testing.T) {
	w := newWorld(t)
	w.setErr("lmp", 0.001)
	w.start("lmp")
	w.run("lmp", 6*time.Minute)
	require.Equal(t, []int{10, 30}, w.weights("lmp"))
	_, err := w.o.update(context.Background(), "caiso/lmp", func(r *Rollout) error {
		r.Step, r.TargetWeight = 2, 50 // decided, then the process died
		return nil
	})
	require.NoError(t, err)
	w.st.Close()
	w.open()
	r := w.tick("lmp")
	require.Equal(t, 50, r.AppliedWeight)
	require.Equal(t, []int{10, 30, 50}, w.weights("lmp"))
}

func TestRouterFailureAndRetry(t *testing.T) {
	w := newWorld(t)
	w.setErr("lmp", 0.001)
	w.start("lmp")
	w.routers["lmp"] = &fakeRouter{fail: errors.New("ingress webhook denied the patch")}
	r, err := w.o.Tick(context.Background(), "caiso", "lmp")
	require.Error(t, err)
	require.Equal(t, PhaseFailed, r.Phase)
	require.Contains(t, r.Reason, "ingress webhook denied the patch")
	require.Equal(t, 10, r.TargetWeight)

	w.routers["lmp"].fail = nil
	r, err = w.act("lmp", ActionResume, "fixed the webhook")
	require.NoError(t, err)
	require.Equal(t, 10, r.AppliedWeight, "resume retries the same weight")
	require.Equal(t, PhaseWarmup, r.Phase)
}

func TestStartIsIdempotent(t *testing.T) {
	w := newWorld(t)
	a := w.start("lmp")
	b := w.start("lmp")
	require.Equal(t, a.CreatedAt, b.CreatedAt)
	_, err := w.o.Start(context.Background(), Spec{Name: "lmp", Version: "v3", Policy: "ingest", Params: map[string]string{"namespace": "caiso", "name": "lmp"}})
	require.ErrorIs(t, err, ErrConflict)
	_, err = w.o.Start(context.Background(), Spec{Name: "x", Version: "v1", Policy: "nope"})
	require.ErrorIs(t, err, ErrBadSpec)
	_, err = w.o.Start(context.Background(), Spec{Name: "x", Version: "v1", Policy: "ingest", Params: map[string]string{"namespace": "caiso"}})
	require.ErrorIs(t, err, rules.ErrInvalidParams)
}

func TestGroups(t *testing.T) {
	members := func() []Spec {
		var out []Spec
		for _, iso := range []string{"caiso", "miso", "pjm"} {
			out = append(out, Spec{Name: iso + "-lmp", Version: "v2", Policy: "ingest", Params: map[string]string{"namespace": iso, "name": iso + "-lmp"}})
		}
		return out
	}
	tickAll := func(w *world) {
		for _, m := range []string{"caiso/caiso-lmp", "miso/miso-lmp", "pjm/pjm-lmp"} {
			w.tick(m)
		}
	}
	t.Run("lockstep waits for the slowest member", func(t *testing.T) {
		w := newWorld(t)
		ctx := context.Background()
		w.setErr("caiso-lmp", 0.001)
		w.setErr("miso-lmp", 0.001)
		// pjm has no data: inconclusive, it cannot finish step 1.
		_, err := w.o.StartGroup(ctx, GroupSpec{Name: "lmp-v2", Mode: ModeLockstep, Members: members()})
		require.NoError(t, err)
		for range 8 {
			tickAll(w)
			w.advance(time.Minute)
		}
		gs, err := w.o.Group(ctx, "caiso", "lmp-v2")
		require.NoError(t, err)
		for _, m := range gs.Members {
			require.Equal(t, 1, m.Step, "%s moved on without pjm", m.Name)
		}
		w.setErr("pjm-lmp", 0.001)
		_, err = w.act("pjm/pjm-lmp", ActionResume, "data is back")
		if err != nil {
			require.ErrorIs(t, err, ErrBadAction) // not paused yet: fine
		}
		for range 40 {
			tickAll(w)
			w.advance(time.Minute)
		}
		gs, err = w.o.Group(ctx, "caiso", "lmp-v2")
		require.NoError(t, err)
		require.Equal(t, PhaseCompleted, gs.Status)
	})
	t.Run("one failure rolls the group back", func(t *testing.T) {
		w := newWorld(t)
		ctx := context.Background()
		for _, m := range members() {
			w.setErr(m.Name, 0.001)
		}
		_, err := w.o.StartGroup(ctx, GroupSpec{Name: "lmp-v2", Members: members()})
		require.NoError(t, err)
		for range 4 {
			tickAll(w)
			w.advance(time.Minute)
		}
		w.setErr("miso-lmp", 0.2)
		for range 4 {
			tickAll(w)
			w.advance(time.Minute)
		}
		gs, err := w.o.Group(ctx, "caiso", "lmp-v2")
		require.NoError(t, err)
		require.Equal(t, PhaseRolledBack, gs.Status)
		for _, m := range gs.Members {
			require.Equal(t, PhaseRolledBack, m.Status, m.Name)
			require.Equal(t, 0, m.CurrentWeight, m.Name)
		}
	})
	t.Run("independent members do not wait", func(t *testing.T) {
		w := newWorld(t)
		ctx := context.Background()
		w.setErr("caiso-lmp", 0.001)
		w.setErr("miso-lmp", 0.2)
		w.setErr("pjm-lmp", 0.001)
		_, err := w.o.StartGroup(ctx, GroupSpec{Name: "lmp-v2", Mode: ModeIndependent, Members: members()})
		require.NoError(t, err)
		for range 40 {
			tickAll(w)
			w.advance(time.Minute)
		}
		gs, err := w.o.Group(ctx, "caiso", "lmp-v2")
		require.NoError(t, err)
		require.Equal(t, PhaseRolledBack, gs.Status, "the group reports its worst member")
		byName := map[string]Phase{}
		for _, m := range gs.Members {
			byName[m.Name] = m.Status
		}
		require.Equal(t, map[string]Phase{"caiso-lmp": PhaseCompleted, "miso-lmp": PhaseRolledBack, "pjm-lmp": PhaseCompleted}, byName)
	})
}

// TestFinishedRolloutsExpire: finished rollouts are forgotten after the
// retention; one in progress is kept however old.
func TestFinishedRolloutsExpire(t *testing.T) {
	w := newWorld(t)
	w.o.o.Retention = 24 * time.Hour
	w.setErr("lmp", 0.001)
	w.start("lmp")
	require.Equal(t, PhaseCompleted, w.run("lmp", 30*time.Minute).Phase)
	w.start("quiet") // no data: it pauses, and stays
	w.run("quiet", 6*time.Minute)
	w.advance(25 * time.Hour)
	w.o.expire(context.Background())
	_, err := w.o.Get(context.Background(), "caiso", "lmp")
	require.ErrorIs(t, err, ErrNotFound)
	r, err := w.o.Get(context.Background(), "caiso", "quiet")
	require.NoError(t, err)
	require.Equal(t, PhasePaused, r.Phase)
}
