package rollout

import (
	"context"
	"errors"
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

// holdPolicy holds the canary while its quota runs warm, caps it at 15%
// above 80% and at 5% above 90%, each with its own maxHold.
const holdPolicy = `
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: quota}
spec:
  params: {namespace: {}, name: {}}
  queries:
    error_rate: {prometheus: 'error_rate{app="{{ .name }}"}'}
    quota_used: {prometheus: 'quota_used{app="{{ .name }}"}'}
  rules:
    - {name: error-rate, expr: error_rate <= 0.01}
  decision:
    rules:
      - {name: warm, expr: quota_used > 0.6, action: hold, maxHold: 20m}
      - {name: quota, expr: quota_used > 0.8, action: cap, weight: 15}
      - {name: quota-high, expr: quota_used > 0.9, action: cap, weight: 5, maxHold: 10m}
  traffic:
    router: nginx
    namespace: "{{ .namespace }}"
    ingress: "{{ .name }}"
    stableService: "{{ .name }}-primary"
    canaryService: "{{ .name }}-canary"
  rollout:
    initialWeight: 10
    stepWeight: 20
    maxWeight: 70
    warmup: 1m
    interval: 1m
    stepDuration: 3m
    promotion: 2m
    failureLimit: 1
`

// holdModel is what the hold and cap rules ask for at a quota level: the
// lowest cap (-1 for none) and the shortest maxHold, or held false.
func holdModel(quota float64) (held bool, cap int, maxHold time.Duration) {
	cap, maxHold = -1, 24*time.Hour
	if quota > 0.6 {
		held, maxHold = true, 20*time.Minute
	}
	if quota > 0.8 {
		held, cap, maxHold = true, 15, min(maxHold, rules.DefaultMaxHold)
	}
	if quota > 0.9 {
		held, cap, maxHold = true, 5, min(maxHold, 10*time.Minute)
	}
	return held, cap, maxHold
}

// holdMachine drives one rollout over a real store through quota levels,
// health, time, manual actions and restarts, and checks every tick against
// the model of holds: a cap lowers the weight and never raises it, a hold
// never raises it, maxHold rolls back, and the rollout goes on where it
// was when the rules clear.
type holdMachine struct {
	path   string
	set    *rules.Set
	st     *bolt.Bolt
	o      *Orchestrator
	router *fakeRouter
	now    time.Time
	// quota and errRate are what the queries return; negative: no data.
	quota, errRate float64
}

func newHoldMachine(t *rapid.T, dir string) *holdMachine {
	file := filepath.Join(dir, "quota.yaml")
	if err := os.WriteFile(file, []byte(holdPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := rules.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	m := &holdMachine{path: filepath.Join(dir, "canary.db"), set: set, router: &fakeRouter{},
		now: time.Date(2026, 11, 28, 22, 0, 0, 0, time.UTC), quota: 0.3, errRate: 0.001}
	m.open(t)
	if _, err := m.o.Start(context.Background(), Spec{Namespace: "caiso", Name: "lmp", Version: "v2", Policy: "quota",
		Params: map[string]string{"namespace": "caiso", "name": "lmp"}}); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *holdMachine) open(t *rapid.T) {
	st, err := bolt.Open(m.path, bolt.Options{NoSync: true, FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	m.st = st
	clock := func() time.Time { return m.now }
	rs, err := runs.New(context.Background(), runs.Options{Store: st, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTraffic(TrafficOptions{Store: st, Now: clock,
		Routers: func(routers.Target) (traffic.Router, error) { return m.router, nil }})
	src := queries.SourceFunc(func(_ context.Context, q queries.Query) (queries.Result, error) {
		v := m.errRate
		if strings.HasPrefix(q.Text, "quota_used") {
			v = m.quota
		}
		if v < 0 {
			return queries.Result{}, nil
		}
		return queries.Result{Samples: []queries.Sample{{Value: v}}}, nil
	})
	m.o = New(Options{Store: st, Runs: rs, Traffic: tr, Policies: func() *rules.Set { return m.set }, Now: clock,
		Evaluator: analysis.NewEvaluator(analysis.Options{Sources: queries.Registry{{Kind: "prometheus"}: src}, Now: clock})})
}

func (m *holdMachine) get(t *rapid.T) *Rollout {
	r, err := m.o.Get(context.Background(), "caiso", "lmp")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (m *holdMachine) Quota(t *rapid.T) {
	m.quota = rapid.SampledFrom([]float64{0.3, 0.7, 0.85, 0.95, -1}).Draw(t, "quota")
}

func (m *holdMachine) Health(t *rapid.T) {
	// Mostly healthy: a failure rolls the rollout back, which ends the
	// story for holds.
	m.errRate = rapid.SampledFrom([]float64{0.001, 0.001, 0.001, 0.05, -1}).Draw(t, "errRate")
}

func (m *holdMachine) Restart(t *rapid.T) {
	before := m.get(t)
	m.st.Close()
	m.open(t)
	after := m.get(t)
	if (before.Hold == nil) != (after.Hold == nil) || before.TargetWeight != after.TargetWeight || before.Phase != after.Phase {
		t.Fatalf("a restart changed the rollout: %+v → %+v", before, after)
	}
}

func (m *holdMachine) Manual(t *rapid.T) {
	action := rapid.SampledFrom([]string{ActionPause, ActionResume, ActionSkipStep, ActionPromote}).Draw(t, "action")
	prev := m.get(t)
	before := len(m.router.history())
	r, err := m.o.Act(context.Background(), "caiso", "lmp", action, "by hand", "admin/test")
	switch {
	case err != nil && !errors.Is(err, ErrBadAction):
		t.Fatalf("%s: %v", action, err)
	case err == nil && action == ActionSkipStep && prev.Hold != nil:
		t.Fatalf("skip-step raised a held rollout: %+v", r)
	case err != nil:
		return
	}
	if prev.Hold != nil && r.Hold != nil {
		m.neverRaised(t, prev, r, before, action)
		if action == ActionPromote && r.Phase == PhasePromoting && r.Hold.Weight != r.Schedule.Steps[len(r.Schedule.Steps)-1].Weight {
			t.Fatalf("a promote of a held rollout must leave the top weight for the release: %+v", r.Hold)
		}
	}
}

// neverRaised holds that nothing a held rollout wrote, nor its target, is
// above the weight it had.
func (m *holdMachine) neverRaised(t *rapid.T, prev, cur *Rollout, from int, what string) {
	if cur.TargetWeight > prev.TargetWeight {
		t.Fatalf("%s raised a held rollout's target from %d to %d", what, prev.TargetWeight, cur.TargetWeight)
	}
	for _, w := range m.router.history()[from:] {
		if w > prev.AppliedWeight {
			t.Fatalf("%s wrote weight %d to a held rollout at %d: %v", what, w, prev.AppliedWeight, m.router.history())
		}
	}
}

func (m *holdMachine) Tick(t *rapid.T) {
	m.now = m.now.Add(time.Duration(rapid.IntRange(0, 150).Draw(t, "seconds")) * time.Second)
	prev := m.get(t)
	from := len(m.router.history())
	if _, err := m.o.Tick(context.Background(), "caiso", "lmp"); err != nil {
		t.Fatalf("tick: %v", err)
	}
	cur := m.get(t)
	now := m.now
	analyzed := cur.LastEvaluation != nil && (prev.LastEvaluation == nil || !cur.LastEvaluation.At.Equal(prev.LastEvaluation.At)) &&
		(prev.Phase == PhaseProgressing || prev.Phase == PhasePromoting)
	wantHeld, wantCap, wantMax := holdModel(m.quota)
	if m.quota < 0 {
		wantHeld = false
	}

	// A rollback never raises, hold or no hold.
	if prev.Phase == PhaseRollingBack || prev.Phase == PhaseRolledBack {
		for _, w := range m.router.history()[from:] {
			if w > prev.AppliedWeight {
				t.Fatalf("a rollback wrote weight %d above %d", w, prev.AppliedWeight)
			}
		}
	}
	// While held, nothing rises; a cap holds the weight under it.
	if prev.Hold != nil && cur.Hold != nil {
		m.neverRaised(t, prev, cur, from, "a tick")
		if cur.Step != prev.Step {
			t.Fatalf("a held rollout stepped from %d to %d", prev.Step, cur.Step)
		}
	}
	if h := cur.Hold; h != nil {
		if h.Cap != nil && (cur.TargetWeight > *h.Cap || cur.AppliedWeight > *h.Cap) {
			t.Fatalf("capped at %d but at %d (target %d)", *h.Cap, cur.AppliedWeight, cur.TargetWeight)
		}
		// A paused rollout waits for a person, hold or no hold; the
		// expiry acts once it resumes.
		if !now.Before(h.Until()) && cur.Phase != PhasePaused {
			t.Fatalf("held past maxHold: since %s for %s, now %s", h.Since, time.Duration(h.MaxHold), now)
		}
		if cur.TargetWeight > h.Weight {
			t.Fatalf("held above the weight it had: %d > %d", cur.TargetWeight, h.Weight)
		}
	}

	if analyzed {
		d := cur.LastEvaluation.Decision
		// The hold the analysis asked for is the model's.
		if d == analysis.DecisionHold && !wantHeld {
			t.Fatalf("a hold at quota %g", m.quota)
		}
		if d == analysis.DecisionContinue && cur.LastEvaluation.Verdict == analysis.VerdictPass && wantHeld {
			t.Fatalf("no hold at quota %g", m.quota)
		}
		if d == analysis.DecisionHold && cur.Hold != nil {
			gotCap := -1
			if cur.Hold.Cap != nil {
				gotCap = *cur.Hold.Cap
			}
			if gotCap != wantCap || time.Duration(cur.Hold.MaxHold) != wantMax {
				t.Fatalf("quota %g: cap %d maxHold %s, want cap %d maxHold %s", m.quota, gotCap, time.Duration(cur.Hold.MaxHold), wantCap, wantMax)
			}
			if prev.Hold == nil {
				// A hold begins where the rollout is.
				if !cur.Hold.Since.Equal(now) || cur.Hold.Weight != prev.TargetWeight {
					t.Fatalf("a hold began at %s weight %d; want %s, %d", cur.Hold.Since, cur.Hold.Weight, now, prev.TargetWeight)
				}
				m.neverRaised(t, prev, cur, from, "a new hold")
			}
		}
		if d == analysis.DecisionHold && cur.Hold == nil && cur.Phase != PhaseRollingBack && cur.Phase != PhaseRolledBack {
			t.Fatalf("a hold decision left the rollout %s unheld", cur.Phase)
		}
	}

	// maxHold expiry rolls back, unless the rules cleared at that tick.
	// The maxHold is that of the rules holding at the latest analysis: an
	// analysis at this tick that holds again is checked on cur above.
	if h := prev.Hold; h != nil && !now.Before(h.Until()) && (prev.Phase == PhaseProgressing || prev.Phase == PhasePromoting) {
		released := analyzed && cur.LastEvaluation.Decision == analysis.DecisionContinue && cur.LastEvaluation.Verdict == analysis.VerdictPass
		heldAgain := analyzed && cur.LastEvaluation.Decision == analysis.DecisionHold
		if !released && !heldAgain && cur.Phase != PhaseRollingBack && cur.Phase != PhaseRolledBack && cur.Phase != PhasePaused {
			t.Fatalf("held since %s for more than %s, and %s", h.Since, time.Duration(h.MaxHold), cur.Phase)
		}
	}

	// A release goes on where the rollout was: its weight, its step, and
	// the time into it.
	if h := prev.Hold; h != nil && cur.Hold == nil && cur.Phase == prev.Phase && (cur.Phase == PhaseProgressing || cur.Phase == PhasePromoting) {
		switch {
		case cur.Phase == PhaseProgressing && cur.Step == prev.Step:
			if cur.TargetWeight != h.Weight || !cur.StepSince.Equal(now.Add(-time.Duration(h.Elapsed))) {
				t.Fatalf("released to weight %d step since %s; want %d since %s", cur.TargetWeight, cur.StepSince, h.Weight, now.Add(-time.Duration(h.Elapsed)))
			}
		case cur.Phase == PhaseProgressing && cur.Step == prev.Step+1:
			if time.Duration(h.Elapsed) < time.Duration(cur.Schedule.Steps[prev.Step].Duration) {
				t.Fatalf("released and stepped on with %s of a %s step left", time.Duration(h.Elapsed), time.Duration(cur.Schedule.Steps[prev.Step].Duration))
			}
		case cur.Phase == PhasePromoting:
			if cur.TargetWeight != h.Weight && cur.TargetWeight != 100 {
				t.Fatalf("released a promotion to weight %d; want %d", cur.TargetWeight, h.Weight)
			}
		default:
			t.Fatalf("released from step %d to %d", prev.Step, cur.Step)
		}
	}
}

// Check: a rollout outside progressing and promoting holds nothing.
func (m *holdMachine) Check(t *rapid.T) {
	r := m.get(t)
	if r.Hold != nil && r.Phase != PhaseProgressing && r.Phase != PhasePromoting && r.Phase != PhasePaused {
		t.Fatalf("a %s rollout holds %+v", r.Phase, r.Hold)
	}
}

// TestHoldNeverRaisesProperty: random sequences of quota levels, health,
// time, manual actions and restarts, against the model of holds and caps.
func TestHoldNeverRaisesProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := newHoldMachine(t, proptest.Dir(t))
		defer m.st.Close()
		t.Repeat(rapid.StateMachineActions(m))
	})
}
