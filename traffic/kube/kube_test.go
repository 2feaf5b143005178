package kube_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aurum/canary/internal/testkube"
	"github.com/aurum/canary/traffic/kube"
)

func TestMain(m *testing.M) { os.Exit(testkube.Main(m)) }

// TestDeployments runs the Deployments client against a real
// kube-apiserver: every call rollout/deploy makes (get, create, update,
// list, the status subresource the tests play the controller with), and
// the API errors it branches on, which must come back typed.
func TestDeployments(t *testing.T) {
	c := testkube.Shared(t)
	ns := c.Namespace(t)
	ctx := t.Context()
	k, err := kube.New(c.Config())
	require.NoError(t, err)
	deployments := k.Deployments(ns)

	labels := map[string]string{"app": "lmp"}
	replicas := int32(2)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "lmp", Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "ingest", Image: "registry.example/lmp:v1"}}},
			},
		},
	}
	created, err := deployments.Create(ctx, d, metav1.CreateOptions{FieldManager: "kube-test"})
	require.NoError(t, err)
	require.Equal(t, ns, created.Namespace)
	require.NotEmpty(t, created.UID)
	require.Equal(t, int64(1), created.Generation)

	_, err = deployments.Create(ctx, d, metav1.CreateOptions{})
	require.True(t, apierrors.IsAlreadyExists(err), "%v", err)
	_, err = deployments.Get(ctx, "nope", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "%v", err)

	next := created.DeepCopy()
	next.Spec.Template.Spec.Containers[0].Image = "registry.example/lmp:v2"
	updated, err := deployments.Update(ctx, next, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Equal(t, int64(2), updated.Generation, "a template change is a new generation")
	_, err = deployments.Update(ctx, next, metav1.UpdateOptions{})
	require.True(t, apierrors.IsConflict(err), "an update of a version no longer current: %v", err)

	updated.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2}
	withStatus, err := deployments.UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	require.NoError(t, err)
	got, err := deployments.Get(ctx, "lmp", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, withStatus.Status, got.Status)
	require.Equal(t, "registry.example/lmp:v2", got.Spec.Template.Spec.Containers[0].Image)

	list, err := deployments.List(ctx, metav1.ListOptions{LabelSelector: "app=lmp"})
	require.NoError(t, err)
	require.Len(t, list.Items, 1)
	other, err := k.Deployments(c.Namespace(t)).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.Empty(t, other.Items, "a client sees its own namespace only")
}
