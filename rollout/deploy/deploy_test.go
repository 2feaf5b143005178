package deploy_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/internal/testkube"
	"github.com/aurum/canary/internal/testprom"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/queries/prometheus"
	"github.com/aurum/canary/rollout"
	"github.com/aurum/canary/rollout/deploy"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs"
	"github.com/aurum/canary/runs/bolt"
	"github.com/aurum/canary/traffic"
	"github.com/aurum/canary/traffic/kube"
	"github.com/aurum/canary/traffic/nginx"
	"github.com/aurum/canary/traffic/routers"
)

func TestMain(m *testing.M) { os.Exit(testkube.Main(m)) }

// deployPolicy reads the canary's error ratio, p99 and the namespace's
// quota from a real Prometheus. Latency is a threshold on trial (dryRun),
// and a quota above 80% caps the canary at 5%.
const deployPolicy = `
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: deploy}
spec:
  params: {namespace: {}, name: {}}
  queries:
    error_rate: {prometheus: 'max(error_ratio{namespace="{{ .namespace }}",app="{{ .name }}",track="canary"})'}
    p99_ms: {prometheus: 'max(p99_ms{namespace="{{ .namespace }}",app="{{ .name }}",track="canary"})'}
    quota_used: {prometheus: 'max(quota_used{namespace="{{ .namespace }}"})'}
  rules:
    - {name: error-rate, expr: error_rate <= 0.01}
    - {name: latency-on-trial, expr: p99_ms < 100, dryRun: true}
  decision:
    rules:
      - {name: quota, expr: quota_used > 0.8, action: cap, weight: 5, maxHold: 30m}
  traffic:
    router: nginx
    namespace: "{{ .namespace }}"
    ingress: "{{ .name }}"
    stableService: "{{ .name }}-primary"
    canaryService: "{{ .name }}-canary"
  rollout:
    steps: [{weight: 10}, {weight: 30}, {weight: 60}]
    interval: 1m
    stepDuration: 2m
    promotion: 2m
---
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: strict-shadow}
spec:
  dryRun: true
  params: {namespace: {}, name: {}}
  queries:
    error_rate: {prometheus: 'max(error_ratio{namespace="{{ .namespace }}",app="{{ .name }}",track="canary"})'}
  rules:
    - {name: strict-error-rate, expr: error_rate <= 0.0001}
`

// world is canary serve's orchestrator over a real store, a real
// kube-apiserver (no kubelet: controller below writes the Deployments'
// status as the Deployment controller would) and a real Prometheus, with
// a clock the test moves.
type world struct {
	t    *testing.T
	c    *testkube.Cluster
	ns   string
	prom *testprom.Server
	path string
	set  *rules.Set
	now  time.Time

	st *bolt.Bolt
	o  *rollout.Orchestrator
	// stuck names Deployments the controller does not roll out.
	stuck map[string]bool
}

func newWorld(t *testing.T) *world {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(file, []byte(deployPolicy), 0o644))
	set, err := rules.Load(file)
	require.NoError(t, err)
	c := testkube.Shared(t)
	w := &world{t: t, c: c, ns: c.Namespace(t), prom: testprom.Start(t), path: filepath.Join(dir, "canary.db"), set: set,
		now: time.Date(2026, 11, 28, 22, 0, 0, 0, time.UTC), stuck: map[string]bool{}}
	w.metrics(0.001, 40, 0.5)
	w.createStable("lmp", "registry.example/lmp:v1")
	w.open()
	return w
}

// open starts the orchestrator over the store, as a new process does.
func (w *world) open() {
	w.t.Helper()
	st, err := bolt.Open(w.path, bolt.Options{})
	require.NoError(w.t, err)
	w.t.Cleanup(func() { st.Close() })
	w.st = st
	clock := func() time.Time { return w.now }
	rs, err := runs.New(context.Background(), runs.Options{Store: st, Now: clock})
	require.NoError(w.t, err)
	src, err := prometheus.New(prometheus.Config{URL: w.prom.URL()}, nil)
	require.NoError(w.t, err)
	// The orchestrator writes through traffic/kube's lean clients, as
	// canary serve does; the test reads and plays the controller through
	// client-go's clientset.
	k, err := kube.New(w.c.Config())
	require.NoError(w.t, err)
	clients := routers.Clients{Ingresses: func(ns string) nginx.Ingresses { return k.Ingresses(ns) }}
	tr := rollout.NewTraffic(rollout.TrafficOptions{Store: st, Now: clock,
		Routers: func(target routers.Target) (traffic.Router, error) { return routers.New(target, clients, nil) }})
	rs.Subscribe(rollout.NewKillSwitch(tr, func() *rules.Set { return w.set }, nil))
	dyn, err := dynamic.NewForConfig(w.c.Config())
	require.NoError(w.t, err)
	w.o = rollout.New(rollout.Options{
		Store: st, Runs: rs, Traffic: tr, Now: clock, Policies: func() *rules.Set { return w.set },
		Deployments: deploy.New(func(ns string) deploy.Deployments { return k.Deployments(ns) }, dyn),
		// Queries go to Prometheus at the real time, where the samples
		// are; the orchestrator's steps follow the test's clock.
		Evaluator: analysis.NewEvaluator(analysis.Options{Sources: queries.Registry{{Kind: "prometheus"}: src}}),
	})
}

// kill drops the orchestrator as kill -9 would: nothing more is written,
// nothing is flushed by it. The store file stays for the next open.
func (w *world) kill() {
	require.NoError(w.t, w.st.Close())
	w.o = nil
}

// metrics writes the canary's error ratio and p99, and the namespace's
// quota use, as of now.
func (w *world) metrics(errorRatio, p99, quota float64) {
	w.t.Helper()
	now := time.Now()
	canary := func(name string, v float64) testprom.Series {
		return testprom.Series{Labels: map[string]string{"__name__": name, "namespace": w.ns, "app": "lmp", "track": "canary"},
			Samples: []testprom.Sample{{T: now, V: v}}}
	}
	w.prom.Write(w.t, canary("error_ratio", errorRatio), canary("p99_ms", p99),
		testprom.Series{Labels: map[string]string{"__name__": "quota_used", "namespace": w.ns}, Samples: []testprom.Sample{{T: now, V: quota}}})
}

func (w *world) createStable(name, image string) {
	w.t.Helper()
	replicas := int32(3)
	labels := map[string]string{"app": name, "track": "stable"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: name, Labels: map[string]string{"app": name}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "app", Image: image},
					{Name: "sidecar", Image: "registry.example/proxy:1"},
				}},
			},
		},
	}
	ctx := context.Background()
	_, err := w.c.Kubernetes().AppsV1().Deployments(w.ns).Create(ctx, d, metav1.CreateOptions{})
	require.NoError(w.t, err)
	pathType := networkingv1.PathTypePrefix
	_, err = w.c.Kubernetes().NetworkingV1().Ingresses(w.ns).Create(ctx, &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: name},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
			Host: name + ".example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/", PathType: &pathType,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
					Name: name + "-primary", Port: networkingv1.ServiceBackendPort{Number: 8080}}},
			}}}},
		}}},
	}, metav1.CreateOptions{})
	require.NoError(w.t, err)
	w.controller()
}

// controller does what the Deployment controller and the kubelets would:
// every Deployment not stuck gets a status saying its current template
// runs on all its replicas, all available.
func (w *world) controller() {
	w.t.Helper()
	ctx := context.Background()
	list, err := w.c.Kubernetes().AppsV1().Deployments(w.ns).List(ctx, metav1.ListOptions{})
	require.NoError(w.t, err)
	for _, d := range list.Items {
		if w.stuck[d.Name] {
			continue
		}
		n := *d.Spec.Replicas
		want := appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
		if d.Status.ObservedGeneration == want.ObservedGeneration && d.Status.Replicas == n && d.Status.AvailableReplicas == n && d.Status.UpdatedReplicas == n {
			continue
		}
		d.Status = want
		_, err := w.c.Kubernetes().AppsV1().Deployments(w.ns).UpdateStatus(ctx, &d, metav1.UpdateOptions{})
		require.NoError(w.t, err)
	}
}

func (w *world) start(edit ...func(*rollout.Spec)) *rollout.Rollout {
	w.t.Helper()
	spec := rollout.Spec{Name: "lmp", Version: "v2", Policy: "deploy", Params: map[string]string{"namespace": w.ns, "name": "lmp"},
		Deployment: &deploy.Spec{Name: "lmp", Images: map[string]string{"app": "registry.example/lmp:v2"}}}
	for _, e := range edit {
		e(&spec)
	}
	r, err := w.o.Start(context.Background(), spec)
	require.NoError(w.t, err)
	return r
}

// tick moves the clock by d, ticks the rollout, and lets the controller
// act on what it wrote.
func (w *world) tick(d time.Duration) *rollout.Rollout {
	w.t.Helper()
	w.now = w.now.Add(d)
	r, err := w.o.Tick(context.Background(), w.ns, "lmp")
	require.NoError(w.t, err)
	w.controller()
	return r
}

// until ticks a minute at a time until done holds, at most n times.
func (w *world) until(n int, done func(*rollout.Rollout) bool) *rollout.Rollout {
	w.t.Helper()
	var r *rollout.Rollout
	for range n {
		if r = w.tick(time.Minute); done(r) {
			return r
		}
	}
	w.t.Fatalf("after %d ticks the rollout is %s at %d%%: %s\n%s", n, r.Phase, r.AppliedWeight, r.Reason, history(r))
	return r
}

func history(r *rollout.Rollout) string {
	var b strings.Builder
	for _, e := range r.History {
		fmt.Fprintf(&b, "  %s %s→%s step %d weight %d: %s\n", e.Type, e.From, e.To, e.Step, e.Weight, e.Reason)
	}
	return b.String()
}

func (w *world) deployment(name string) *appsv1.Deployment {
	w.t.Helper()
	d, err := w.c.Kubernetes().AppsV1().Deployments(w.ns).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(w.t, err)
	return d
}

func (w *world) weight() string {
	w.t.Helper()
	ing, err := w.c.Kubernetes().NetworkingV1().Ingresses(w.ns).Get(context.Background(), "lmp-canary", metav1.GetOptions{})
	require.NoError(w.t, err)
	return ing.Annotations["nginx.ingress.kubernetes.io/canary-weight"]
}

func image(d *appsv1.Deployment, container string) string {
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == container {
			return c.Image
		}
	}
	return ""
}

func phases(r *rollout.Rollout) []rollout.Phase {
	var out []rollout.Phase
	for _, e := range r.History {
		if e.Type == "transition" && e.From != e.To {
			out = append(out, e.To)
		}
	}
	return out
}

// TestHealthyDeployPromotes: the canary Deployment is made from the stable
// one with the new image and track: canary, becomes available, takes the
// schedule's traffic; promotion gives the stable the new image, moves the
// weight back to 0 and scales the canary to 0. A failing dry-run rule and
// a failing shadow policy change nothing, and are counted.
func TestHealthyDeployPromotes(t *testing.T) {
	w := newWorld(t)
	w.metrics(0.001, 450, 0.5) // latency-on-trial fails: it is dry
	r := w.start(func(s *rollout.Spec) { s.Shadow = []string{"strict-shadow"} })
	require.Equal(t, rollout.PhasePending, r.Phase)

	r = w.tick(0)
	require.Equal(t, rollout.PhaseDeploying, r.Phase)
	r = w.tick(time.Second)
	require.Equal(t, rollout.PhaseDeploying, r.Phase, "the canary is applied, not yet available")
	require.Equal(t, rollout.StageCanaryApplied, r.Deploy.Stage)
	r = w.tick(5 * time.Second)
	require.Equal(t, rollout.PhaseProgressing, r.Phase, history(r))
	canary := w.deployment("lmp-canary")
	require.Equal(t, "registry.example/lmp:v2", image(canary, "app"))
	require.Equal(t, "registry.example/proxy:1", image(canary, "sidecar"))
	require.Equal(t, map[string]string{"app": "lmp", "track": "canary"}, canary.Spec.Selector.MatchLabels)
	require.Equal(t, "canary", canary.Spec.Template.Labels["track"])
	require.Equal(t, int32(3), *canary.Spec.Replicas)
	require.Equal(t, "lmp", canary.Annotations[deploy.StableAnnotation])
	require.Equal(t, "10", w.weight())

	r = w.until(30, func(r *rollout.Rollout) bool { return r.Phase.Terminal() })
	require.Equal(t, rollout.PhaseCompleted, r.Phase, history(r))
	require.Equal(t, []rollout.Phase{rollout.PhasePending, rollout.PhaseDeploying, rollout.PhaseProgressing, rollout.PhasePromoting, rollout.PhaseFinalising, rollout.PhaseCompleted}, phases(r))
	stable := w.deployment("lmp")
	require.Equal(t, "registry.example/lmp:v2", image(stable, "app"), "the stable runs the new version")
	require.Equal(t, "stable", stable.Spec.Template.Labels["track"], "with its own labels")
	require.Equal(t, int32(0), *w.deployment("lmp-canary").Spec.Replicas)
	require.Equal(t, "0", w.weight())
	require.Equal(t, 0, r.AppliedWeight)

	// The status shows the Deployments, and each event their counts.
	st := r.Status()
	require.NotNil(t, st.Deployments)
	require.Equal(t, int32(3), st.Deployments.Stable.Available)
	require.Equal(t, map[string]string{"app": "registry.example/lmp:v2", "sidecar": "registry.example/proxy:1"}, st.Deployments.Stable.Images)
	require.Equal(t, int32(0), st.Deployments.Canary.Desired)
	var steps int
	for _, e := range r.History {
		if e.Type == "traffic" {
			require.NotNil(t, e.Replicas, "a step shows the Deployments' counts: %+v", e)
			require.Equal(t, int32(3), e.Replicas.Stable.Desired)
			steps++
		}
	}
	require.GreaterOrEqual(t, steps, 5)

	// The dry-run rule failed at every analysis and changed nothing; the
	// shadow policy would have failed too.
	require.Len(t, r.DryRuns, 2)
	own, shadow := r.DryRuns[0], r.DryRuns[1]
	require.Equal(t, "deploy", own.Policy)
	require.Positive(t, own.Fail)
	require.Zero(t, own.Pass)
	require.Equal(t, own.Fail, own.Changed)
	require.Equal(t, analysis.VerdictFail, own.Last.Verdict)
	require.True(t, shadow.Shadow)
	require.Equal(t, "strict-shadow", shadow.Policy)
	require.Positive(t, shadow.Fail)
	require.Contains(t, shadow.Last.Reason, "strict-error-rate: 0.001 > 0.0001")
}

// TestFailingDeployRollsBack: a failing canary rolls back: traffic to 0
// first, then the canary scaled to 0; the stable is untouched.
func TestFailingDeployRollsBack(t *testing.T) {
	w := newWorld(t)
	before := w.deployment("lmp")
	w.start()
	r := w.until(5, func(r *rollout.Rollout) bool { return r.Phase == rollout.PhaseProgressing })
	require.Equal(t, "10", w.weight())
	w.metrics(0.05, 40, 0.5)
	r = w.until(10, func(r *rollout.Rollout) bool { return r.Phase.Terminal() })
	require.Equal(t, rollout.PhaseRolledBack, r.Phase, history(r))
	require.Contains(t, r.Reason, "error-rate: 0.05 > 0.01")
	require.Equal(t, "0", w.weight())
	require.Equal(t, int32(0), *w.deployment("lmp-canary").Spec.Replicas)
	after := w.deployment("lmp")
	require.Equal(t, before.Spec, after.Spec, "the stable is untouched")
	require.Equal(t, before.Generation, after.Generation)
	// Traffic went to 0 before the canary was scaled down.
	var zero, scaled int
	for i, e := range r.History {
		if e.Type == "traffic" && e.Weight == 0 {
			zero = i
		}
		if e.Type == "deployment" && strings.Contains(e.Reason, "scaled to 0") {
			scaled = i
		}
	}
	require.Positive(t, zero)
	require.Greater(t, scaled, zero, history(r))
}

// TestCanaryNeverAvailable: a canary that never becomes available fails
// the rollout at its progress deadline, without ever taking traffic.
func TestCanaryNeverAvailable(t *testing.T) {
	w := newWorld(t)
	w.stuck["lmp-canary"] = true
	deadline := rollout.Duration(5 * time.Minute)
	w.start(func(s *rollout.Spec) { s.Schedule = &rollout.Override{ProgressDeadline: &deadline} })
	r := w.tick(0)
	require.Equal(t, rollout.PhaseDeploying, r.Phase)
	r = w.tick(4 * time.Minute)
	require.Equal(t, rollout.PhaseDeploying, r.Phase, "within the deadline it waits")
	r = w.until(5, func(r *rollout.Rollout) bool { return r.Phase.Terminal() })
	require.Equal(t, rollout.PhaseRolledBack, r.Phase)
	require.Contains(t, r.Reason, "canary deployment not available within its progress deadline (5m0s): lmp-canary 0/3 updated, 0 available")
	require.Equal(t, int32(0), *w.deployment("lmp-canary").Spec.Replicas)
	require.Equal(t, "registry.example/lmp:v1", image(w.deployment("lmp"), "app"))
	for _, e := range r.History {
		require.False(t, e.Type == "traffic" && e.Weight > 0, "the canary took traffic: %+v", e)
	}

	t.Run("a canary the API server refuses rolls back at once", func(t *testing.T) {
		w := newWorld(t)
		w.start(func(s *rollout.Spec) { s.Deployment.Images = map[string]string{"app": ""} })
		r := w.until(3, func(r *rollout.Rollout) bool { return r.Phase.Terminal() })
		require.Equal(t, rollout.PhaseRolledBack, r.Phase)
		require.Contains(t, r.Reason, "canary deployment refused: ")
		require.Contains(t, r.Reason, "image: Required value")
	})
	t.Run("the controller's own deadline fails it at once", func(t *testing.T) {
		w := newWorld(t)
		w.stuck["lmp-canary"] = true
		w.start()
		w.tick(0)
		w.tick(time.Second)
		d := w.deployment("lmp-canary")
		d.Status.ObservedGeneration = d.Generation
		d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
			Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "lmp-canary-5d8f" has timed out progressing.`}}
		_, err := w.c.Kubernetes().AppsV1().Deployments(w.ns).UpdateStatus(context.Background(), d, metav1.UpdateOptions{})
		require.NoError(t, err)
		r := w.until(3, func(r *rollout.Rollout) bool { return r.Phase.Terminal() })
		require.Equal(t, rollout.PhaseRolledBack, r.Phase)
		require.Contains(t, r.Reason, `canary deployment lmp-canary failed: ReplicaSet "lmp-canary-5d8f" has timed out progressing.`)
	})
}

// TestKilledDuringPromotionResumes: the orchestrator is killed at every
// recorded step of the promotion (the stable given the new template and
// rolling it out, the traffic moved back, the canary scaled down), and a
// new one on the same store finishes it; a stable that is slow to roll out
// is waited for across the restart.
func TestKilledDuringPromotionResumes(t *testing.T) {
	w := newWorld(t)
	w.start()
	r := w.until(30, func(r *rollout.Rollout) bool { return r.Phase == rollout.PhaseFinalising })
	// The stable rolls out slowly: the first kill finds it updated but
	// not rolled out.
	w.stuck["lmp"] = true
	r = w.tick(time.Second)
	require.Equal(t, rollout.StageStableUpdated, r.Deploy.Stage, history(r))
	require.Equal(t, "registry.example/lmp:v2", image(w.deployment("lmp"), "app"))
	require.Equal(t, "100", w.weight(), "traffic stays on the canary until the stable is rolled out")

	w.kill()
	w.open()
	r = w.tick(time.Second)
	require.Equal(t, rollout.PhaseFinalising, r.Phase)
	require.Equal(t, rollout.StageStableUpdated, r.Deploy.Stage)
	delete(w.stuck, "lmp")
	w.controller()
	stages := []string{r.Deploy.Stage}
	for range 10 {
		w.kill()
		w.open()
		if r = w.tick(time.Second); r.Phase.Terminal() {
			break
		}
		stages = append(stages, r.Deploy.Stage)
	}
	require.Equal(t, rollout.PhaseCompleted, r.Phase, history(r))
	require.Contains(t, stages, rollout.StageStableReady)
	require.Equal(t, "registry.example/lmp:v2", image(w.deployment("lmp"), "app"))
	require.Equal(t, int32(0), *w.deployment("lmp-canary").Spec.Replicas)
	require.Equal(t, "0", w.weight())
	// The stable took the template once: the restarts did not write it
	// again.
	require.Equal(t, int64(2), w.deployment("lmp").Generation)
	var promotions int
	for _, e := range r.History {
		if strings.Contains(e.Reason, "takes the canary's pod template") {
			promotions++
		}
	}
	require.Equal(t, 1, promotions, history(r))
}

// TestQuotaCapLowersAndReleases: a quota above 80% caps the canary at 5%;
// once it clears the rollout goes back to its step's weight and goes on
// where it was.
func TestQuotaCapLowersAndReleases(t *testing.T) {
	w := newWorld(t)
	w.start()
	r := w.until(10, func(r *rollout.Rollout) bool { return r.Step == 1 && r.AppliedWeight == 30 })
	stepSince := r.StepSince
	w.metrics(0.001, 40, 0.9)
	r = w.tick(time.Minute)
	require.NotNil(t, r.Hold, history(r))
	require.Equal(t, 5, *r.Hold.Cap)
	require.Equal(t, 30, r.Hold.Weight)
	require.Equal(t, 5, r.AppliedWeight)
	require.Equal(t, "5", w.weight())
	held := r.Hold.Since
	for range 5 {
		r = w.tick(time.Minute)
		require.Equal(t, 1, r.Step, "a held rollout does not step")
		require.Equal(t, "5", w.weight())
	}
	w.metrics(0.001, 40, 0.5)
	r = w.tick(time.Minute)
	require.Nil(t, r.Hold)
	require.Equal(t, 1, r.Step)
	require.Equal(t, 30, r.AppliedWeight)
	require.Equal(t, "30", w.weight())
	require.Equal(t, w.now.Add(-held.Sub(stepSince)), r.StepSince, "the step's clock goes on from where the hold stopped it")
	r = w.until(30, func(r *rollout.Rollout) bool { return r.Phase.Terminal() })
	require.Equal(t, rollout.PhaseCompleted, r.Phase, history(r))

	t.Run("a hold that outlasts maxHold rolls back", func(t *testing.T) {
		w := newWorld(t)
		w.start()
		w.until(10, func(r *rollout.Rollout) bool { return r.Phase == rollout.PhaseProgressing })
		w.metrics(0.001, 40, 0.9)
		r := w.tick(time.Minute)
		require.NotNil(t, r.Hold)
		r = w.until(40, func(r *rollout.Rollout) bool { return r.Phase.Terminal() })
		require.Equal(t, rollout.PhaseRolledBack, r.Phase)
		require.Contains(t, r.Reason, "held by quota for 30m0s (maxHold) without clearing")
		require.Equal(t, "registry.example/lmp:v1", image(w.deployment("lmp"), "app"))
	})
}

// TestRefusesManagedDeployments: a Deployment that Argo Rollouts or
// Flagger manage is refused, whichever way they manage it.
func TestRefusesManagedDeployments(t *testing.T) {
	w := newWorld(t)
	start := func(name string) error {
		_, err := w.o.Start(context.Background(), rollout.Spec{Name: "lmp", Version: "v2", Policy: "deploy",
			Params:     map[string]string{"namespace": w.ns, "name": "lmp"},
			Deployment: &deploy.Spec{Name: name, Canary: name + "-canary", Images: map[string]string{"app": "registry.example/lmp:v2"}}})
		return err
	}
	ctx := context.Background()
	apps := w.c.Kubernetes().AppsV1().Deployments(w.ns)

	w.createStable("owned", "registry.example/lmp:v1")
	d := w.deployment("owned")
	d.OwnerReferences = []metav1.OwnerReference{{APIVersion: "flagger.app/v1beta1", Kind: "Canary", Name: "owned", UID: "0b7c8d4e-1f2a-4b3c-9d8e-7f6a5b4c3d2e"}}
	_, err := apps.Update(ctx, d, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.ErrorIs(t, start("owned"), rollout.ErrConflict)
	require.ErrorContains(t, start("owned"), "deployment "+w.ns+"/owned is owned by Canary owned")

	w.createStable("marked", "registry.example/lmp:v1")
	d = w.deployment("marked")
	d.Annotations = map[string]string{"rollout.argoproj.io/revision": "3"}
	_, err = apps.Update(ctx, d, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.ErrorIs(t, start("marked"), rollout.ErrConflict)

	w.c.InstallArgoRollouts(t)
	w.c.InstallFlagger(t)
	dyn, err := dynamic.NewForConfig(w.c.Config())
	require.NoError(t, err)
	w.createStable("argo", "registry.example/lmp:v1")
	_, err = dyn.Resource(schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}).Namespace(w.ns).Create(ctx,
		&unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": map[string]any{"name": "argo-rollout"},
			"spec": map[string]any{
				"workloadRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "argo"},
				"strategy":    map[string]any{"canary": map[string]any{"steps": []any{map[string]any{"setWeight": int64(20)}}}},
			},
		}}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.ErrorContains(t, start("argo"), "rollouts.argoproj.io argo-rollout manages deployment "+w.ns+"/argo")

	w.createStable("flagger", "registry.example/lmp:v1")
	_, err = dyn.Resource(schema.GroupVersionResource{Group: "flagger.app", Version: "v1beta1", Resource: "canaries"}).Namespace(w.ns).Create(ctx,
		&unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "metadata": map[string]any{"name": "flagger"},
			"spec": map[string]any{"targetRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "flagger"}},
		}}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.ErrorContains(t, start("flagger"), "canaries.flagger.app flagger manages deployment "+w.ns+"/flagger")

	// Others are refused for what they are.
	require.ErrorIs(t, start("missing"), rollout.ErrBadSpec)
	_, err = w.o.Start(ctx, rollout.Spec{Name: "lmp", Version: "v2", Policy: "deploy", Params: map[string]string{"namespace": w.ns, "name": "lmp"},
		Deployment: &deploy.Spec{Name: "lmp", Images: map[string]string{"web": "x:2"}}})
	require.ErrorContains(t, err, `has no container "web" (it has app, sidecar)`)
	_, err = w.o.Start(ctx, rollout.Spec{Name: "lmp", Version: "v2", Policy: "strict-shadow", Params: map[string]string{"namespace": w.ns, "name": "lmp"}})
	require.ErrorContains(t, err, "policy strict-shadow is dryRun: it never fails, so it cannot gate a rollout")
	require.NoError(t, start("lmp"), "the unmanaged one starts")
}
