package demo

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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
