package demo

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/aurum/canary/rollout/deploy"
)

// TestClusterActsAsAnAPIServer pins the API server behaviour the nginx
// router relies on (its retries, its ownership checks), which the demo's
// in-memory cluster must give as a real kube-apiserver does.
func TestClusterActsAsAnAPIServer(t *testing.T) {
	cfg, err := Config{}.withDefaults()
	require.NoError(t, err)
	var routings atomic.Int32
	c, err := newCluster(cfg, func(*routing) { routings.Add(1) })
	require.NoError(t, err)
	require.Equal(t, int32(1), routings.Load(), "the stable Ingress is routed from the start")
	ctx := t.Context()
	ings := c.ingresses(cfg.Namespace)

	stable, err := ings.Get(ctx, cfg.App, metav1.GetOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, stable.UID)
	require.NotEmpty(t, stable.ResourceVersion)
	require.False(t, stable.CreationTimestamp.IsZero())

	_, err = ings.Get(ctx, "nope", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "%v", err)
	_, err = ings.Create(ctx, stable, metav1.CreateOptions{})
	require.True(t, apierrors.IsAlreadyExists(err), "%v", err)
	_, err = ings.List(ctx, metav1.ListOptions{LabelSelector: "app=x"})
	require.True(t, apierrors.IsBadRequest(err), "a selector is refused, not ignored: %v", err)

	canary := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: cfg.App + "-canary",
		Annotations: map[string]string{"nginx.ingress.kubernetes.io/canary": "true", "keep": "me"}}}
	created, err := ings.Create(ctx, canary, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Equal(t, cfg.Namespace, created.Namespace)
	require.Empty(t, canary.ResourceVersion, "the caller's object is not changed")

	patch := func(rv, weight string) (*networkingv1.Ingress, error) {
		body := fmt.Sprintf(`{"metadata":{"resourceVersion":%q,"annotations":{"nginx.ingress.kubernetes.io/canary-weight":%q,"keep":null}}}`, rv, weight)
		return ings.Patch(ctx, created.Name, types.MergePatchType, []byte(body), metav1.PatchOptions{})
	}
	patched, err := patch(created.ResourceVersion, "10")
	require.NoError(t, err)
	require.Equal(t, map[string]string{"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "10"}, patched.Annotations,
		"merge patch sets a key and deletes one set to null")
	require.NotEqual(t, created.ResourceVersion, patched.ResourceVersion)
	require.Equal(t, created.UID, patched.UID)

	_, err = patch(created.ResourceVersion, "20")
	require.True(t, apierrors.IsConflict(err), "a patch of a version no longer current: %v", err)
	_, err = ings.Patch(ctx, created.Name, types.JSONPatchType, []byte(`[]`), metav1.PatchOptions{})
	require.True(t, apierrors.IsBadRequest(err), "%v", err)
	_, err = ings.Patch(ctx, "nope", types.MergePatchType, []byte(`{}`), metav1.PatchOptions{})
	require.True(t, apierrors.IsNotFound(err), "%v", err)

	list, err := ings.List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.Len(t, list.Items, 2)
	other, err := c.ingresses("elsewhere").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.Empty(t, other.Items, "namespaces are apart")

	history := c.annotationHistory()
	require.Len(t, history, 2, "the canary's creation and its one accepted patch")
	require.Equal(t, "10", history[1].Annotations["nginx.ingress.kubernetes.io/canary-weight"])
	require.Equal(t, int32(3), routings.Load(), "every write re-routes the edge")
}

// The demo's Deployments are what the Deployment manager takes.
var _ deploy.Deployments = Deployments(nil)

// TestClusterServesDeployments runs the Deployment manager (rollout/deploy)
// against the demo's cluster through a whole deploy, and pins the API
// server behaviour it relies on: typed errors, a resourceVersion checked
// on update, a generation that moves with the spec only, and a status the
// demo's stand-in controller sets at once.
func TestClusterServesDeployments(t *testing.T) {
	cfg, err := Config{}.withDefaults()
	require.NoError(t, err)
	c, err := newCluster(cfg, func(*routing) {})
	require.NoError(t, err)
	ctx := t.Context()
	apps := c.deploymentsOf(cfg.Namespace)

	stable, err := apps.Get(ctx, cfg.App, metav1.GetOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, stable.UID)
	require.Equal(t, int64(1), stable.Generation)
	require.Equal(t, DeploymentImage+":v1", stable.Spec.Template.Spec.Containers[0].Image)
	_, err = apps.Get(ctx, "nope", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "%v", err)
	_, err = apps.Create(ctx, stable, metav1.CreateOptions{})
	require.True(t, apierrors.IsAlreadyExists(err), "%v", err)

	relabelled := stable.DeepCopy()
	relabelled.Labels["team"] = "grid"
	relabelled.Status = appsv1.DeploymentStatus{}
	got, err := apps.Update(ctx, relabelled, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Equal(t, int64(1), got.Generation, "metadata alone is not a new generation")
	require.Equal(t, stable.Status, got.Status, "the status is the server's, not the caller's")
	_, err = apps.Update(ctx, relabelled, metav1.UpdateOptions{})
	require.True(t, apierrors.IsConflict(err), "an update of a version no longer current: %v", err)
	_, err = c.deploymentsOf("elsewhere").Get(ctx, cfg.App, metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "namespaces are apart: %v", err)

	// A whole deploy, as the orchestrator runs it.
	k := deploy.New(func(ns string) deploy.Deployments { return c.deploymentsOf(ns) }, nil)
	spec := deploy.Spec{Namespace: cfg.Namespace, Name: cfg.App, Images: map[string]string{DeploymentContainer: DeploymentImage + ":v2"}, Version: "v2"}
	_, err = k.Check(ctx, spec)
	require.NoError(t, err)
	canary, err := k.ApplyCanary(ctx, spec)
	require.NoError(t, err)
	require.True(t, canary.Complete(), "the demo rolls a Deployment out at once: %+v", canary)
	require.Equal(t, DeploymentImage+":v2", canary.Images[DeploymentContainer])
	promoted, err := k.PromoteStable(ctx, spec)
	require.NoError(t, err)
	require.Equal(t, int64(2), promoted.Generation, "a new template is a new generation")
	require.True(t, promoted.Complete(), "%+v", promoted)
	retired, err := k.ScaleCanary(ctx, spec, 0)
	require.NoError(t, err)
	require.Equal(t, int32(0), retired.Desired)
	st, err := k.State(ctx, spec)
	require.NoError(t, err)
	require.Equal(t, DeploymentImage+":v2", st.Stable.Images[DeploymentContainer])
	require.True(t, st.Stable.Complete() && st.Canary.Complete(), "%+v", st)
}
