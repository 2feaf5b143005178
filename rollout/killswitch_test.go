package rollout

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs"
	"github.com/aurum/canary/runs/bolt"
	"github.com/aurum/canary/traffic"
	"github.com/aurum/canary/traffic/nginx"
	"github.com/aurum/canary/traffic/routers"
)

// engine is a Traffic engine over a real store, with a router that records
// weights, reads them back and can be made to fail, and a clock.
type engine struct {
	t      *testing.T
	path   string
	st     *bolt.Bolt
	tr     *Traffic
	router *fakeRouter
	mu     sync.Mutex
	now    time.Time
	target routers.Target
}

func newEngine(t *testing.T) *engine {
	e := &engine{t: t, path: filepath.Join(t.TempDir(), "canary.db"), router: &fakeRouter{},
		now:    time.Date(2026, 11, 28, 22, 0, 0, 0, time.UTC),
		target: routers.Target{Router: "nginx", Namespace: "caiso", Ingress: "lmp", StableService: "lmp-primary", CanaryService: "lmp-canary"}}
	e.open()
	return e
}

func (e *engine) open() {
	st, err := bolt.Open(e.path, bolt.Options{})
	require.NoError(e.t, err)
	e.t.Cleanup(func() { st.Close() })
	e.st = st
	e.tr = NewTraffic(TrafficOptions{Store: st, Now: e.clock,
		Routers: func(routers.Target) (traffic.Router, error) { return e.router, nil }})
}

func (e *engine) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *engine) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
	_, err := e.tr.Advance(context.Background(), e.target)
	require.NoError(e.t, err)
}

func (e *engine) at(w int) {
	require.NoError(e.t, e.router.Apply(context.Background(), traffic.Step{Weight: w}))
}

// TestRollbackNeverRaises is the case of issue 11: a canary at 10% with a
// step-down of [50, 20] was set to 50 when a rollback latched. Now each
// weight of a plan that is not below the canary's is skipped.
func TestRollbackNeverRaises(t *testing.T) {
	tests := []struct {
		name  string
		at    int
		plan  []int
		after [][]int // weights after the rollback, then after each interval
	}{
		{name: "below every step: straight to 0", at: 10, plan: []int{50, 20}, after: [][]int{{10, 0}}},
		{name: "between the steps", at: 30, plan: []int{50, 20}, after: [][]int{{30, 20}, {30, 20, 0}}},
		{name: "above every step", at: 80, plan: []int{50, 20}, after: [][]int{{80, 50}, {80, 50, 20}, {80, 50, 20, 0}}},
		{name: "zero: at once", at: 80, after: [][]int{{80, 0}}},
		{name: "equal weights are not applied twice", at: 50, plan: []int{50, 20}, after: [][]int{{50, 20}, {50, 20, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t)
			e.at(tt.at)
			sd, err := e.tr.RollBack(context.Background(), e.target, Plan{Weights: tt.plan, Interval: time.Minute, From: -1}, "caiso/lmp@v2", "alert")
			require.NoError(t, err)
			require.Equal(t, tt.after[0], e.router.history())
			for _, want := range tt.after[1:] {
				e.advance(time.Minute)
				require.Equal(t, want, e.router.history())
			}
			sd, err = e.tr.Get(context.Background(), e.target)
			require.NoError(t, err)
			require.True(t, sd.Done)
			require.Equal(t, 0, sd.Weight)
		})
	}
}

// TestRedeliveryJoins: every redelivery of the same alert used to start
// the schedule again (back to 50). A rollback standing is joined.
func TestRedeliveryJoins(t *testing.T) {
	e := newEngine(t)
	ctx := context.Background()
	e.at(80)
	plan := Plan{Weights: []int{50, 20}, Interval: time.Minute, From: -1}
	_, err := e.tr.RollBack(ctx, e.target, plan, "caiso/lmp@v2", "alert")
	require.NoError(t, err)
	e.advance(time.Minute)
	require.Equal(t, []int{80, 50, 20}, e.router.history())
	for range 3 {
		_, err = e.tr.RollBack(ctx, e.target, plan, "caiso/lmp@v2", "alert again")
		require.NoError(t, err)
		// Another trigger (the orchestrator) for the same traffic joins too.
		_, err = e.tr.RollBack(ctx, e.target, Plan{Weights: []int{60}, Interval: time.Minute, From: 80}, "caiso/lmp@v2", "orchestrator")
		require.NoError(t, err)
	}
	require.Equal(t, []int{80, 50, 20}, e.router.history(), "nothing restarted, nothing raised")
	e.advance(time.Minute)
	require.Equal(t, []int{80, 50, 20, 0}, e.router.history())
	// Done: a later trigger of the same rollback is a no-op.
	_, err = e.tr.RollBack(ctx, e.target, plan, "caiso/lmp@v2", "alert again")
	require.NoError(t, err)
	require.Equal(t, []int{80, 50, 20, 0}, e.router.history())
}

// TestStepDownResumesAfterRestart: the switch's schedule lived only in
// memory; now a restart picks it up where it was.
func TestStepDownResumesAfterRestart(t *testing.T) {
	e := newEngine(t)
	ctx := context.Background()
	e.at(80)
	_, err := e.tr.RollBack(ctx, e.target, Plan{Weights: []int{50, 20}, Interval: time.Minute, From: -1}, "caiso/lmp@v2", "alert")
	require.NoError(t, err)
	require.NoError(t, e.st.Close())
	e.open() // a new process
	e.mu.Lock()
	e.now = e.now.Add(time.Minute)
	e.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { e.tr.Run(ctx, 0); close(done) }()
	require.Eventually(t, func() bool { return len(e.router.history()) == 3 }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, []int{80, 50, 20}, e.router.history())
	cancel()
	<-done
}

// TestRaiseRefusedDuringRollback: nothing raises a canary's traffic while
// a rollback of it stands, until a new rollout releases it.
func TestRaiseRefusedDuringRollback(t *testing.T) {
	e := newEngine(t)
	ctx := context.Background()
	e.at(40)
	_, err := e.tr.RollBack(ctx, e.target, Plan{Weights: []int{20}, Interval: time.Minute, From: -1}, "caiso/lmp@v2", "alert")
	require.NoError(t, err)
	require.ErrorIs(t, e.tr.Set(ctx, e.target, 30), ErrRollingBack)
	require.ErrorIs(t, e.tr.Release(ctx, e.target), ErrRollingBack, "not while it is lowering the weight")
	require.NoError(t, e.tr.Set(ctx, e.target, 0), "lowering is always allowed")
	e.advance(time.Minute)
	require.ErrorIs(t, e.tr.Set(ctx, e.target, 30), ErrRollingBack, "done, but not released")
	require.NoError(t, e.tr.Release(ctx, e.target))
	require.NoError(t, e.tr.Set(ctx, e.target, 30))
}

// TestStepDownRetries: a weight that fails is retried with backoff, and a
// weight lowered by other hands is not raised back.
func TestStepDownRetries(t *testing.T) {
	e := newEngine(t)
	ctx := context.Background()
	e.at(80)
	e.router.mu.Lock()
	e.router.fail = errors.New("webhook denied the patch")
	e.router.mu.Unlock()
	_, err := e.tr.RollBack(ctx, e.target, Plan{Weights: []int{50, 20}, Interval: time.Minute, From: -1}, "caiso/lmp@v2", "alert")
	require.ErrorContains(t, err, "webhook denied the patch")
	sd, err := e.tr.Get(ctx, e.target)
	require.NoError(t, err)
	require.Equal(t, 1, sd.Failures)
	require.Equal(t, []int{50, 20, 0}, sd.Weights, "nothing applied, nothing skipped")

	// A redelivery retries at once; still failing, it says so again.
	_, err = e.tr.RollBack(ctx, e.target, Plan{From: -1}, "caiso/lmp@v2", "alert")
	require.ErrorContains(t, err, "webhook denied the patch")
	e.router.mu.Lock()
	e.router.fail = nil
	// Meanwhile someone lowered the canary to 10 by hand.
	e.router.weights = append(e.router.weights, 10)
	e.router.mu.Unlock()
	e.advance(time.Minute)
	e.advance(time.Minute)
	e.advance(time.Minute)
	require.Equal(t, []int{80, 10, 0}, e.router.history(), "50 and 20 skipped: they would have raised it")
}

// TestStepDownUnknownWeightCutsToZero: when the router cannot say what
// the canary has, a graceful step could raise it: cut at once.
func TestStepDownUnknownWeightCutsToZero(t *testing.T) {
	e := newEngine(t)
	e.router.stateErr = errors.New("forbidden")
	_, err := e.tr.RollBack(context.Background(), e.target, Plan{Weights: []int{50, 20}, Interval: time.Minute, From: -1}, "caiso/lmp@v2", "alert")
	require.NoError(t, err)
	require.Equal(t, []int{0}, e.router.history())
}

func stableIngress() *networkingv1.Ingress {
	pathType := networkingv1.PathTypePrefix
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: "caiso", Name: "lmp"},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
			Host: "lmp.example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/", PathType: &pathType,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
					Name: "lmp-primary", Port: networkingv1.ServiceBackendPort{Number: 8080}}},
			}}}},
		}}},
	}
}

const switchPolicy = `
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: p}
spec:
  params: {namespace: {}, name: {}}
  queries: {x: {prometheus: 'up{app="{{ .name }}"}'}}
  rules: [{name: up, expr: x == 1}]
  decision: {latchOnFail: true}
  traffic:
    router: nginx
    namespace: "{{ .namespace }}"
    ingress: "{{ .name }}"
    stableService: "{{ .name }}-primary"
    canaryService: "{{ .name }}-canary"
`

// switchWorld is runs and the kill switch over a real store, with the real
// nginx router on a fake Kubernetes API.
type switchWorld struct {
	runs   *runs.Runs
	client *fake.Clientset
	set    *rules.Set
	up     float64
}

func newSwitchWorld(t *testing.T, extra string) *switchWorld {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	require.NoError(t, os.WriteFile(file, []byte(switchPolicy+extra), 0o644))
	set, err := rules.Load(file)
	require.NoError(t, err)
	st, err := bolt.Open(filepath.Join(dir, "canary.db"), bolt.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	w := &switchWorld{client: fake.NewClientset(stableIngress()), set: set, up: 1}
	w.runs, err = runs.New(context.Background(), runs.Options{Store: st})
	require.NoError(t, err)
	clients := routers.Clients{Ingresses: func(ns string) nginx.Ingresses { return w.client.NetworkingV1().Ingresses(ns) }}
	tr := NewTraffic(TrafficOptions{Store: st, Routers: func(target routers.Target) (traffic.Router, error) {
		return routers.New(target, clients, nil)
	}})
	w.runs.Subscribe(NewKillSwitch(tr, func() *rules.Set { return w.set }, nil))
	r, err := routers.New(routers.Target{Router: "nginx", Namespace: "caiso", Ingress: "lmp", StableService: "lmp-primary", CanaryService: "lmp-canary"}, clients, nil)
	require.NoError(t, err)
	require.NoError(t, r.Apply(context.Background(), traffic.Step{Weight: 40}))
	return w
}

func (w *switchWorld) weight(t *testing.T) string {
	t.Helper()
	ing, err := w.client.NetworkingV1().Ingresses("caiso").Get(context.Background(), "lmp-canary", metav1.GetOptions{})
	require.NoError(t, err)
	return ing.Annotations["nginx.ingress.kubernetes.io/canary-weight"]
}

func (w *switchWorld) analyze(t *testing.T) *runs.Answer {
	t.Helper()
	pol, err := w.set.Get("p")
	require.NoError(t, err)
	src := queries.SourceFunc(func(context.Context, queries.Query) (queries.Result, error) {
		return queries.Result{Samples: []queries.Sample{{Value: w.up}}}, nil
	})
	ev := analysis.NewEvaluator(analysis.Options{Sources: queries.Registry{{Kind: "prometheus"}: src}})
	a, err := w.runs.Analyze(context.Background(), ev, pol, runs.Ref{Namespace: "caiso", Name: "lmp", Revision: "v2"},
		map[string]string{"namespace": "caiso", "name": "lmp"}, time.Time{}, runs.OriginArgo)
	require.NoError(t, err)
	return a
}

func TestKillSwitch(t *testing.T) {
	t.Run("a manual rollback cuts before it is answered", func(t *testing.T) {
		w := newSwitchWorld(t, "")
		w.analyze(t)
		require.Equal(t, "40", w.weight(t))
		_, err := w.runs.Act(context.Background(), "caiso", "lmp", "", runs.ActionRollback, "bad data", "admin/alice")
		require.NoError(t, err)
		require.Equal(t, "0", w.weight(t))
	})
	t.Run("a latchOnFail rollback cuts too", func(t *testing.T) {
		// Issue 11: the switch was wired in the HTTP handlers, so a
		// rollback latched by a failed analysis never cut traffic.
		w := newSwitchWorld(t, "")
		w.up = 0
		a := w.analyze(t)
		require.Equal(t, analysis.DecisionRollback, a.Decision)
		require.Equal(t, "0", w.weight(t))
	})
	t.Run("onRollback none leaves traffic alone", func(t *testing.T) {
		w := newSwitchWorld(t, "    onRollback: none\n")
		w.analyze(t)
		_, err := w.runs.Act(context.Background(), "caiso", "lmp", "", runs.ActionRollback, "bad data", "admin/alice")
		require.NoError(t, err)
		require.Equal(t, "40", w.weight(t))
	})
	t.Run("stepDown starts below the canary's weight", func(t *testing.T) {
		w := newSwitchWorld(t, "    onRollback: stepDown\n    stepDown: {weights: [50, 30, 10], interval: 1h}\n")
		w.analyze(t)
		_, err := w.runs.Act(context.Background(), "caiso", "lmp", "", runs.ActionRollback, "bad data", "admin/alice")
		require.NoError(t, err)
		require.Equal(t, "30", w.weight(t), "40 → 30, never 50")
	})
	t.Run("a cut that fails is an error to the caller, and the latch stands", func(t *testing.T) {
		w := newSwitchWorld(t, "")
		w.analyze(t)
		// Argo Rollouts took the canary Ingress over: the router refuses to
		// touch it.
		ing, err := w.client.NetworkingV1().Ingresses("caiso").Get(context.Background(), "lmp-canary", metav1.GetOptions{})
		require.NoError(t, err)
		yes := true
		ing.OwnerReferences = []metav1.OwnerReference{{APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout", Name: "lmp", UID: "u1", Controller: &yes}}
		_, err = w.client.NetworkingV1().Ingresses("caiso").Update(context.Background(), ing, metav1.UpdateOptions{})
		require.NoError(t, err)
		run, err := w.runs.Act(context.Background(), "caiso", "lmp", "", runs.ActionRollback, "bad data", "admin/alice")
		require.ErrorIs(t, err, runs.ErrReaction)
		require.True(t, strings.Contains(err.Error(), "kill switch for caiso/lmp@v2"), err.Error())
		require.True(t, run.Has(runs.LatchRollback))
	})
}
