package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aurum/canary/internal/testkube"
	"github.com/aurum/canary/internal/testprom"
)

// deployShadow is a dryRun policy a rollout carries beside its own.
const deployShadow = `
---
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: lmp-shadow}
spec:
  dryRun: true
  params: {namespace: {}, name: {}}
  queries:
    error_rate:
      prometheus: sum(rate(requests_total{app="{{ .name }}",code="500"}[5m])) / sum(rate(requests_total{app="{{ .name }}"}[5m]))
  rules:
    - {name: no-errors, expr: error_rate == 0}
`

// controller writes every Deployment's status of ns as the Deployment
// controller and the kubelets would, until ctx ends: no kubelet runs in
// the test cluster.
func controller(ctx context.Context, t *testing.T, c *testkube.Cluster, ns string) {
	for ctx.Err() == nil {
		list, err := c.Kubernetes().AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, d := range list.Items {
				n := *d.Spec.Replicas
				if d.Status.ObservedGeneration == d.Generation && d.Status.Replicas == n && d.Status.AvailableReplicas == n && d.Status.UpdatedReplicas == n {
					continue
				}
				d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
				_, _ = c.Kubernetes().AppsV1().Deployments(ns).UpdateStatus(ctx, &d, metav1.UpdateOptions{})
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestDeployThroughCLI is a whole deploy the way a team without Argo
// Rollouts or Flagger runs it: `canary rollout start --deployment --image`
// against `canary serve`, a real API server and a real Prometheus. The
// canary Deployment is made, promoted into the stable one and scaled to 0,
// and `canary rollout status` shows both Deployments and the shadow
// policy's count.
func TestDeployThroughCLI(t *testing.T) {
	prom := testprom.Start(t)
	seedLive(t, prom)
	c := testkube.Shared(t)
	ns := c.Namespace(t)
	createStableIngress(t, c, ns, "good")
	replicas := int32(2)
	labels := map[string]string{"app": "good", "track": "stable"}
	_, err := c.Kubernetes().AppsV1().Deployments(ns).Create(t.Context(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "good"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/good:v1"}}}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		controller(ctx, t, c, ns)
	}()
	t.Cleanup(func() { cancel(); <-done })

	policy := filepath.Join(t.TempDir(), "policy.yaml")
	require.NoError(t, os.WriteFile(policy, []byte(rolloutPolicy+deployShadow), 0o644))
	srv := startServe(t, map[string]string{
		"CANARY_DATA_DIR": t.TempDir(), "CANARY_POLICIES": policy, "CANARY_PROMETHEUS": prom.URL(),
		"CANARY_KUBECONFIG": kubeconfig(t, c), "CANARY_CACHE_TTL": "0s",
	})
	tokenFile := filepath.Join(t.TempDir(), "admin-token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("tester "+testToken+"\n"), 0o600))

	// No --version: the image's tag is the version.
	code, stdout, stderr := canary(t, "rollout", "start", "--server", srv.url, "--token-file", tokenFile, "--name", "good",
		"--policy", "lmp-rollout", "--param", "namespace="+ns, "--param", "name=good", "--shadow", "lmp-shadow",
		"--deployment", ns+"/good", "--image", "app=registry.example/good:v2", "--watch")
	require.Equal(t, exitOK, code, stdout+stderr)
	require.Contains(t, stdout, "deploying")
	require.Contains(t, stdout, "canary deployment good-canary applied: app=registry.example/good:v2, 2 replicas")
	require.Contains(t, stdout, "finalising")
	require.Contains(t, stdout, "completed")
	require.Contains(t, stdout, "stable 2/2 available, canary 2/2")

	stable, err := c.Kubernetes().AppsV1().Deployments(ns).Get(t.Context(), "good", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "registry.example/good:v2", stable.Spec.Template.Spec.Containers[0].Image)
	canaryDep, err := c.Kubernetes().AppsV1().Deployments(ns).Get(t.Context(), "good-canary", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, int32(0), *canaryDep.Spec.Replicas)
	require.Equal(t, "0", canaryIngressAnnotations(t, c, ns, "good")["nginx.ingress.kubernetes.io/canary-weight"])

	code, stdout, _ = canary(t, "rollout", "status", ns+"/good", "--server", srv.url, "--token-file", tokenFile)
	require.Equal(t, exitOK, code)
	require.Contains(t, stdout, "good v2")
	require.Contains(t, stdout, "stable good: 2 desired, 2 updated, 2 available  app=registry.example/good:v2")
	require.Contains(t, stdout, "canary good-canary: 0 desired")
	require.Contains(t, stdout, "shadow lmp-shadow: would have passed 0, failed ")

	// A start without what the canary runs is a usage error.
	code, _, stderr = canary(t, "rollout", "start", "--server", srv.url, "--token-file", tokenFile, "--name", "good",
		"--policy", "lmp-rollout", "--version", "v3", "--deployment", "good")
	require.Equal(t, exitError, code)
	require.Contains(t, stderr, "--deployment needs --image CONTAINER=IMAGE or --from-manifest FILE")
}

// TestDeploymentFlags: --deployment, --image and --from-manifest make the
// start's deployment, and the version defaults to the one image's tag.
func TestDeploymentFlags(t *testing.T) {
	manifest := filepath.Join(t.TempDir(), "lmp.yaml")
	require.NoError(t, os.WriteFile(manifest, []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: lmp, namespace: caiso}
spec:
  selector: {matchLabels: {app: lmp}}
  template:
    metadata: {labels: {app: lmp}}
    spec:
      containers: [{name: app, image: "registry.example/lmp:2.4.1"}]
`), 0o644))
	bad := filepath.Join(t.TempDir(), "svc.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("apiVersion: v1\nkind: Service\nmetadata: {name: lmp}\n"), 0o644))
	tests := []struct {
		name              string
		deployment, file  string
		images            map[string]string
		wantNS, wantName  string
		wantVersion, want string
	}{
		{name: "an image", deployment: "caiso/lmp", images: map[string]string{"app": "registry.example/lmp:v2"}, wantNS: "caiso", wantName: "lmp", wantVersion: "v2"},
		{name: "a digest has no version", deployment: "lmp", images: map[string]string{"app": "registry.example/lmp@sha256:0123"}, wantName: "lmp"},
		{name: "a registry port is no tag", deployment: "lmp", images: map[string]string{"app": "registry.example:5000/lmp"}, wantName: "lmp"},
		{name: "two images, no version", deployment: "lmp", images: map[string]string{"app": "a:1", "side": "b:2"}, wantName: "lmp"},
		{name: "a manifest names the deployment", file: manifest, wantNS: "caiso", wantName: "lmp", wantVersion: "2.4.1"},
		{name: "not a deployment", file: bad, want: `kind "Service", want Deployment`},
		{name: "nothing to run", deployment: "lmp", want: "--deployment needs --image"},
		{name: "no deployment", images: map[string]string{"app": "x:1"}, want: "go with --deployment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := deploymentSpec(tt.deployment, tt.file, tt.images, 0)
			if tt.want != "" {
				require.ErrorContains(t, err, tt.want)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantNS, d.Namespace)
			require.Equal(t, tt.wantName, d.Name)
			require.Equal(t, tt.wantVersion, versionOf(d))
		})
	}
}
