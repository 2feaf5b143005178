package rollout

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/internal/proptest"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs"
	"github.com/aurum/canary/runs/bolt"
	"github.com/aurum/canary/traffic"
	"github.com/aurum/canary/traffic/routers"
)

// TestMain runs every property over proptest.Checks random sequences
// unless -rapid.checks says otherwise.
func TestMain(m *testing.M) { os.Exit(proptest.Main(m)) }

// propertyPolicy is the rollout's policy; %s is the traffic section's
// onRollback, which reloads change.
const propertyPolicy = `
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: ingest}
spec:
  params: {namespace: {}, name: {}}
  queries:
    error_rate: {prometheus: 'error_rate{app="{{ .name }}"}'}
  rules:
    - {name: error-rate, expr: error_rate <= 0.01}
  decision: {latchOnFail: %t}
  alerts:
    - match: {severity: critical, app: "{{ .name }}"}
      action: rollback
    - match: {severity: warning, app: "{{ .name }}"}
      action: pause
  traffic:
    router: nginx
    namespace: "{{ .namespace }}"
    ingress: "{{ .name }}"
    stableService: "{{ .name }}-primary"
    canaryService: "{{ .name }}-canary"
%s
  rollout:
    initialWeight: 10
    stepWeight: 20
    maxWeight: 70
    warmup: 1m
    interval: 1m
    stepDuration: 2m
    promotion: 2m
    failureLimit: 1
`

// onRollbacks are the kill switch's settings a reload switches between.
var onRollbacks = map[string]string{
	"zero":     "    onRollback: zero",
	"stepDown": "    onRollback: stepDown\n    stepDown: {weights: [50, 20], interval: 1m}",
	"none":     "    onRollback: none",
}

// rollbackMachine is canary serve's traffic side, over one real store: the
// runs with the kill switch subscribed, the step-down engine and the
// orchestrator driving one rollout, caiso/lmp v2. The router is the
// cluster: it outlives restarts, records every weight written and can be
// made to fail.
type rollbackMachine struct {
	path    string
	sets    map[string]*rules.Set
	variant string
	st      *bolt.Bolt
	runs    *runs.Runs
	tr      *Traffic
	o       *Orchestrator
	router  *fakeRouter
	now     time.Time
	errRate float64 // negative: no data
	target  routers.Target

	// triggered marks that a rollback took effect (a step-down exists or
	// the rollout rolls back); from is the index of the router's first
	// weight written since the action that did it.
	triggered bool
	from      int
	// killSwitched: a rollback latch was set while the kill switch was on
	// (onRollback not none), so a step-down must exist.
	killSwitched bool
}

func newRollbackMachine(t *rapid.T, dir string) *rollbackMachine {
	m := &rollbackMachine{path: filepath.Join(dir, "canary.db"), sets: map[string]*rules.Set{}, router: &fakeRouter{},
		now: time.Date(2026, 11, 28, 22, 0, 0, 0, time.UTC), errRate: 0.001,
		target: routers.Target{Router: "nginx", Namespace: "caiso", Ingress: "lmp", StableService: "lmp-primary", CanaryService: "lmp-canary"}}
	latching := rapid.Bool().Draw(t, "latchOnFail")
	for name, section := range onRollbacks {
		file := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(file, []byte(fmt.Sprintf(propertyPolicy, latching, section)), 0o644); err != nil {
			t.Fatal(err)
		}
		set, err := rules.Load(file)
		if err != nil {
			t.Fatal(err)
		}
		m.sets[name] = set
	}
	m.variant = rapid.SampledFrom([]string{"zero", "stepDown", "none"}).Draw(t, "onRollback")
	m.open(t)
	if _, err := m.o.Start(context.Background(), Spec{Namespace: "caiso", Name: "lmp", Version: "v2", Policy: "ingest",
		Params: map[string]string{"namespace": "caiso", "name": "lmp"}}); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *rollbackMachine) clock() time.Time { return m.now }

// open starts the components over the store, as a new process does.
func (m *rollbackMachine) open(t *rapid.T) {
	st, err := bolt.Open(m.path, bolt.Options{NoSync: true, FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	m.st = st
	if m.runs, err = runs.New(context.Background(), runs.Options{Store: st, Now: m.clock}); err != nil {
		t.Fatal(err)
	}
	m.tr = NewTraffic(TrafficOptions{Store: st, Now: m.clock,
		Routers: func(routers.Target) (traffic.Router, error) { return m.router, nil }})
	policies := func() *rules.Set { return m.sets[m.variant] }
	m.runs.Subscribe(NewKillSwitch(m.tr, policies, nil))
	src := queries.SourceFunc(func(context.Context, queries.Query) (queries.Result, error) {
		if m.errRate < 0 {
			return queries.Result{}, nil
		}
		return queries.Result{Samples: []queries.Sample{{Value: m.errRate}}}, nil
	})
	m.o = New(Options{Store: st, Runs: m.runs, Traffic: m.tr, Policies: policies, Now: m.clock,
		Evaluator: analysis.NewEvaluator(analysis.Options{Sources: queries.Registry{{Kind: "prometheus"}: src}, Now: m.clock})})
}

func (m *rollbackMachine) close() { m.st.Close() }

// act runs one action and notes whether it made a rollback take effect.
func (m *rollbackMachine) act(t *rapid.T, fn func() error) {
	before := len(m.router.history())
	err := fn()
	// Refusals (a bad action for the phase, a failing router) are part of
	// the story; anything else is a bug.
	if err != nil && !errors.Is(err, ErrBadAction) && !errors.Is(err, runs.ErrReaction) && !strings.Contains(err.Error(), "router down") {
		t.Fatalf("unexpected error: %v", err)
	}
	if !m.triggered && m.rollingBack(t) {
		m.triggered, m.from = true, before
	}
}

// rollingBack reports whether a rollback of the canary's traffic took
// effect.
func (m *rollbackMachine) rollingBack(t *rapid.T) bool {
	sd, err := m.tr.Get(context.Background(), m.target)
	if err != nil {
		t.Fatal(err)
	}
	r, err := m.o.Get(context.Background(), "caiso", "lmp")
	if err != nil {
		t.Fatal(err)
	}
	return sd != nil || r.Phase == PhaseRollingBack || r.Phase == PhaseRolledBack
}

func (m *rollbackMachine) Tick(t *rapid.T) {
	m.now = m.now.Add(time.Duration(rapid.IntRange(0, 180).Draw(t, "seconds")) * time.Second)
	m.act(t, func() error {
		_, err := m.o.Tick(context.Background(), "caiso", "lmp")
		if _, aerr := m.tr.Advance(context.Background(), m.target); err == nil {
			err = aerr
		}
		return err
	})
}

func (m *rollbackMachine) Health(t *rapid.T) {
	m.errRate = rapid.SampledFrom([]float64{0.001, 0.05, -1}).Draw(t, "errRate")
}

func (m *rollbackMachine) Alert(t *rapid.T) {
	severity := rapid.SampledFrom([]string{"critical", "warning"}).Draw(t, "severity")
	status := rapid.SampledFrom([]string{"firing", "resolved"}).Draw(t, "status")
	fp := rapid.SampledFrom([]string{"a", "b", "c"}).Draw(t, "fingerprint")
	before := m.latched()
	m.act(t, func() error {
		_, err := m.runs.Alerts(context.Background(), m.sets[m.variant], []runs.Alert{{Status: status, Fingerprint: severity + fp,
			Labels: map[string]string{"alertname": "Errors", "severity": severity, "app": "lmp"}}})
		return err
	})
	m.noteLatch(before, severity == "critical" && status == "firing")
}

func (m *rollbackMachine) ManualRun(t *rapid.T) {
	action := rapid.SampledFrom([]string{runs.ActionRollback, runs.ActionPause, runs.ActionResume, runs.ActionPromote}).Draw(t, "action")
	before := m.latched()
	m.act(t, func() error {
		_, err := m.runs.Act(context.Background(), "caiso", "lmp", "v2", action, "by hand", "admin/test")
		if errors.Is(err, runs.ErrRunNotFound) {
			return nil // no analysis yet
		}
		return err
	})
	m.noteLatch(before, action == runs.ActionRollback)
}

func (m *rollbackMachine) ManualRollout(t *rapid.T) {
	action := rapid.SampledFrom([]string{ActionPause, ActionResume, ActionRollback, ActionSkipStep, ActionPromote}).Draw(t, "action")
	m.act(t, func() error {
		_, err := m.o.Act(context.Background(), "caiso", "lmp", action, "by hand", "admin/test")
		return err
	})
}

// Argo analyses the canary too, naming its revision or another one.
func (m *rollbackMachine) Argo(t *rapid.T) {
	revision := rapid.SampledFrom([]string{"v2", "other", ""}).Draw(t, "revision")
	pol, _ := m.sets[m.variant].Get("ingest")
	before := m.latched()
	m.act(t, func() error {
		_, err := m.runs.Analyze(context.Background(), m.o.o.Evaluator, pol, runs.Ref{Namespace: "caiso", Name: "lmp", Revision: revision},
			map[string]string{"namespace": "caiso", "name": "lmp"}, time.Time{}, runs.OriginArgo)
		return err
	})
	m.noteLatch(before, false)
}

func (m *rollbackMachine) Reload(t *rapid.T) {
	m.variant = rapid.SampledFrom([]string{"zero", "stepDown", "none"}).Draw(t, "onRollback")
}

func (m *rollbackMachine) Restart(t *rapid.T) {
	m.close()
	m.open(t)
}

func (m *rollbackMachine) Router(t *rapid.T) {
	down := rapid.Bool().Draw(t, "down")
	m.router.mu.Lock()
	defer m.router.mu.Unlock()
	m.router.fail = nil
	if down {
		m.router.fail = errors.New("router down")
	}
}

func (m *rollbackMachine) latched() bool {
	_, ok := m.runs.RollbackLatch("caiso", "lmp", "v2")
	return ok
}

// noteLatch remembers that the kill switch was asked to act: a rollback
// latch set on v2, or asserted again (a redelivered alert, a second manual
// rollback), while the kill switch was on.
func (m *rollbackMachine) noteLatch(before, asserted bool) {
	if m.variant != "none" && m.latched() && (!before || asserted) {
		m.killSwitched = true
	}
}

// Check holds invariant 1: once a rollback takes effect, no weight written
// is above the one before it, however many triggers arrive; and a rollback
// latched with the kill switch on has a step-down under way.
func (m *rollbackMachine) Check(t *rapid.T) {
	weights := m.router.history()
	if m.triggered {
		prev := -1
		if m.from > 0 {
			prev = weights[m.from-1]
		}
		for i := m.from; i < len(weights); i++ {
			if prev >= 0 && weights[i] > prev {
				t.Fatalf("a rollback raised the canary's weight: %v (rollback from index %d)", weights, m.from)
			}
			prev = weights[i]
		}
	}
	if m.killSwitched {
		if sd, err := m.tr.Get(context.Background(), m.target); err != nil || sd == nil {
			t.Fatalf("a rollback latched with the kill switch on, but no step-down (err %v)", err)
		}
	}
}

// settle lets time pass with the router working, until nothing is left
// to do, and holds the end of invariant 1: a rollback ends at 0.
func (m *rollbackMachine) settle(t *rapid.T) {
	m.router.mu.Lock()
	m.router.fail = nil
	m.router.mu.Unlock()
	for range 60 {
		m.now = m.now.Add(time.Minute)
		m.act(t, func() error {
			_, err := m.o.Tick(context.Background(), "caiso", "lmp")
			if _, aerr := m.tr.Advance(context.Background(), m.target); err == nil {
				err = aerr
			}
			return err
		})
	}
	m.Check(t)
	r, err := m.o.Get(context.Background(), "caiso", "lmp")
	if err != nil {
		t.Fatal(err)
	}
	weights := m.router.history()
	last := -1
	if len(weights) > 0 {
		last = weights[len(weights)-1]
	}
	_, latched := m.runs.RollbackLatch("caiso", "lmp", "v2")
	sd, _ := m.tr.Get(context.Background(), m.target)
	switch {
	case r.Phase == PhaseRolledBack && last != 0:
		t.Fatalf("rolled back at weight %d: %v", last, weights)
	case sd != nil && (!sd.Done || last != 0):
		t.Fatalf("a step-down did not end at 0: %+v, weights %v", sd, weights)
	case latched && r.Phase != PhaseCompleted && r.Phase != PhaseRolledBack:
		t.Fatalf("a rollback latch stands but the rollout is %s: %v", r.Phase, weights)
	}
}

// TestRollbackNeverRaisesProperty: random sequences of analyses (pass,
// fail, no data, any revision), alerts (firing, resolved, redelivered,
// rollback and pause), manual actions on the run and on the rollout,
// policy reloads (onRollback zero, stepDown, none), router failures and
// restarts, against the model above.
func TestRollbackNeverRaisesProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := newRollbackMachine(t, proptest.Dir(t))
		defer m.close()
		t.Repeat(rapid.StateMachineActions(m))
		m.settle(t)
	})
}
