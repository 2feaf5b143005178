// Package deploy manages the Deployments of a standalone rollout, on
// Flagger's primary/canary model: the stable Deployment keeps serving while
// a canary Deployment, made from it with the new version, takes a share of
// the traffic; promotion copies the canary's pod template into the stable
// Deployment, and the canary is scaled to 0 at the end, promoted or rolled
// back.
//
// Every operation is idempotent: it computes what the objects should be
// and writes only what differs, so that an orchestrator that was killed
// between an operation and recording it simply does it again. The package
// knows nothing of rollouts; the orchestrator (package rollout) decides
// when each operation runs and records it.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"
)

// Labels and annotations this package writes.
const (
	// TrackLabel marks the canary's pods (track: canary), so that the
	// canary Service and the policy's queries can tell them apart.
	TrackLabel  = "track"
	TrackCanary = "canary"
	// StableAnnotation, on a canary Deployment, names the stable one it
	// was made from: a Deployment without it is not ours to change.
	StableAnnotation = "canary.aurum.dev/stable"
	// VersionAnnotation records the version a canary runs.
	VersionAnnotation = "canary.aurum.dev/version"
	// ManagedByLabel is the usual Kubernetes label, set on the canary.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedBy      = "aurum-canary"
)

// DefaultProgressDeadline is how long a Deployment may take to become
// available when neither the rollout nor the Deployment says: Kubernetes'
// own default for progressDeadlineSeconds.
const DefaultProgressDeadline = 10 * time.Minute

// Sentinel errors.
var (
	// ErrManaged marks a Deployment that Argo Rollouts or Flagger manage:
	// two controllers moving one Deployment fight.
	ErrManaged = errors.New("deployment managed by another controller")
	// ErrBadSpec marks a spec that cannot be applied (an unknown
	// container, a canary that is not ours).
	ErrBadSpec = errors.New("bad deployment spec")
)

// Spec names a rollout's Deployments and the version it ships.
type Spec struct {
	// Namespace and Name are the stable Deployment's.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Canary is the canary Deployment's name; Name + "-canary" when
	// empty.
	Canary string `json:"canary,omitempty"`
	// Images set containers' images (container name to image) in the
	// stable's pod template to make the canary's.
	Images map[string]string `json:"images,omitempty"`
	// Template, when set, is the canary's pod template (from a manifest
	// of the new version) instead of the stable's; Images apply on top.
	Template *corev1.PodTemplateSpec `json:"template,omitempty"`
	// Replicas is the canary's replica count; the stable's when nil.
	Replicas *int32 `json:"replicas,omitempty"`
	// Version is recorded on the canary.
	Version string `json:"version,omitempty"`
}

// CanaryName is the canary Deployment's name.
func (s Spec) CanaryName() string {
	if s.Canary != "" {
		return s.Canary
	}
	return s.Name + "-canary"
}

// Status is one Deployment's state, as a rollout's status shows it.
type Status struct {
	Name string `json:"name"`
	// Images are the pod template's containers' images, by container.
	Images map[string]string `json:"images,omitempty"`
	// Desired is spec.replicas; the rest are the controller's counts.
	Desired   int32 `json:"desired"`
	Current   int32 `json:"current"`
	Updated   int32 `json:"updated"`
	Ready     int32 `json:"ready"`
	Available int32 `json:"available"`
	// Generation is metadata.generation; ObservedGeneration the one the
	// controller last acted on.
	Generation         int64 `json:"generation"`
	ObservedGeneration int64 `json:"observedGeneration"`
	// Missing is set when the Deployment does not exist.
	Missing bool `json:"missing,omitempty"`
	// Failed is why the controller gave up on the rollout of the current
	// template (its progress deadline), or empty.
	Failed string `json:"failed,omitempty"`
}

// Complete reports whether the Deployment runs its current template on
// every desired replica, all available, and nothing else: the controller
// has seen the latest spec, every replica is updated and available, and no
// old one is left.
func (s Status) Complete() bool {
	return !s.Missing && s.ObservedGeneration >= s.Generation && s.Updated >= s.Desired &&
		s.Available >= s.Desired && s.Current == s.Desired
}

// Counts are the replica counts a rollout's events keep.
type Counts struct {
	Desired   int32 `json:"desired"`
	Updated   int32 `json:"updated"`
	Available int32 `json:"available"`
}

// Counts returns s's replica counts.
func (s Status) Counts() Counts {
	return Counts{Desired: s.Desired, Updated: s.Updated, Available: s.Available}
}

// Replicas is the counts in short, for events: updated/desired, available.
func (s Status) Replicas() string {
	if s.Missing {
		return s.Name + " missing"
	}
	return fmt.Sprintf("%s %d/%d updated, %d available", s.Name, s.Updated, s.Desired, s.Available)
}

// State is both Deployments of a rollout.
type State struct {
	Stable Status `json:"stable"`
	Canary Status `json:"canary"`
}

// Deployments is one namespace's Deployments: the calls of client-go's
// typed DeploymentInterface the manager makes. traffic/kube's Deployments
// client serves, as does a clientset's AppsV1().Deployments(namespace).
type Deployments interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*appsv1.Deployment, error)
	Create(ctx context.Context, d *appsv1.Deployment, opts metav1.CreateOptions) (*appsv1.Deployment, error)
	Update(ctx context.Context, d *appsv1.Deployment, opts metav1.UpdateOptions) (*appsv1.Deployment, error)
}

// Kube manages Deployments through the Kubernetes API.
type Kube struct {
	deployments func(namespace string) Deployments
	dynamic     dynamic.Interface
}

// New returns the manager of the Deployments deployments(namespace)
// reaches. dyn, when set, is used to find Argo Rollouts and Flagger
// objects that manage a Deployment; without it only the Deployment's own
// marks (owners, labels, annotations) are checked.
func New(deployments func(namespace string) Deployments, dyn dynamic.Interface) *Kube {
	return &Kube{deployments: deployments, dynamic: dyn}
}

// Check reads the stable Deployment and refuses it when Argo Rollouts or
// Flagger manage it (ErrManaged), or when it does not exist. It returns
// the stable's progress deadline.
func (k *Kube) Check(ctx context.Context, s Spec) (time.Duration, error) {
	stable, err := k.deployments(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
	if err != nil {
		return 0, fmt.Errorf("stable deployment %s/%s: %w", s.Namespace, s.Name, err)
	}
	if err := k.unmanaged(ctx, stable); err != nil {
		return 0, err
	}
	if _, err := canaryFrom(stable, s); err != nil {
		return 0, err
	}
	deadline := DefaultProgressDeadline
	if p := stable.Spec.ProgressDeadlineSeconds; p != nil && *p > 0 {
		deadline = time.Duration(*p) * time.Second
	}
	return deadline, nil
}

// managers are the API groups of the controllers whose Deployments are
// refused.
var managers = []string{"argoproj.io", "flagger.app"}

// Argo Rollouts' Rollouts and Flagger's Canaries, which name the
// Deployments they manage.
var (
	argoRollouts   = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}
	flaggerCanary  = schema.GroupVersionResource{Group: "flagger.app", Version: "v1beta1", Resource: "canaries"}
	managerObjects = []struct {
		gvr  schema.GroupVersionResource
		path []string
	}{
		{argoRollouts, []string{"spec", "workloadRef"}},
		{flaggerCanary, []string{"spec", "targetRef"}},
	}
)

// unmanaged refuses a Deployment that Argo Rollouts or Flagger own (an
// owner reference, as Flagger's primaries have), mark (a label or an
// annotation of theirs), or name (a Rollout's workloadRef, a Canary's
// targetRef, in its namespace). A cluster without their CRDs has none.
func (k *Kube) unmanaged(ctx context.Context, d *appsv1.Deployment) error {
	for _, o := range d.OwnerReferences {
		for _, g := range managers {
			if strings.HasPrefix(o.APIVersion, g+"/") {
				return fmt.Errorf("%w: deployment %s/%s is owned by %s %s", ErrManaged, d.Namespace, d.Name, o.Kind, o.Name)
			}
		}
	}
	for _, keys := range []map[string]string{d.Labels, d.Annotations} {
		for key := range keys {
			for _, g := range managers {
				if prefix, _, ok := strings.Cut(key, "/"); ok && (prefix == g || strings.HasSuffix(prefix, "."+g)) {
					return fmt.Errorf("%w: deployment %s/%s carries %s", ErrManaged, d.Namespace, d.Name, key)
				}
			}
		}
	}
	if k.dynamic == nil {
		return nil
	}
	for _, m := range managerObjects {
		list, err := k.dynamic.Resource(m.gvr).Namespace(d.Namespace).List(ctx, metav1.ListOptions{})
		if apierrors.IsNotFound(err) {
			continue // not installed
		}
		if err != nil {
			return fmt.Errorf("look for %s naming deployment %s/%s: %w", m.gvr.GroupResource(), d.Namespace, d.Name, err)
		}
		for _, item := range list.Items {
			ref, _, _ := unstructured.NestedStringMap(item.Object, m.path...)
			if ref["name"] == d.Name && (ref["kind"] == "" || ref["kind"] == "Deployment") {
				return fmt.Errorf("%w: %s %s manages deployment %s/%s", ErrManaged, m.gvr.GroupResource(), item.GetName(), d.Namespace, d.Name)
			}
		}
	}
	return nil
}

// canaryFrom is the canary Deployment made from the stable one: its spec
// with the new pod template (the manifest's, or the stable's with the new
// images), track: canary on the selector and the pods, and the canary's
// replicas.
func canaryFrom(stable *appsv1.Deployment, s Spec) (*appsv1.Deployment, error) {
	spec := stable.Spec.DeepCopy()
	if s.Template != nil {
		spec.Template = *s.Template.DeepCopy()
	}
	for _, container := range slices.Sorted(maps.Keys(s.Images)) {
		i := slices.IndexFunc(spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Name == container })
		if i < 0 {
			var names []string
			for _, c := range spec.Template.Spec.Containers {
				names = append(names, c.Name)
			}
			return nil, fmt.Errorf("%w: deployment %s/%s has no container %q (it has %s)", ErrBadSpec, stable.Namespace, stable.Name,
				container, strings.Join(names, ", "))
		}
		spec.Template.Spec.Containers[i].Image = s.Images[container]
	}
	if spec.Selector == nil {
		return nil, fmt.Errorf("%w: deployment %s/%s has no selector", ErrBadSpec, stable.Namespace, stable.Name)
	}
	spec.Selector.MatchLabels = maps.Clone(spec.Selector.MatchLabels)
	if spec.Selector.MatchLabels == nil {
		spec.Selector.MatchLabels = map[string]string{}
	}
	spec.Selector.MatchLabels[TrackLabel] = TrackCanary
	spec.Template.Labels = maps.Clone(spec.Template.Labels)
	if spec.Template.Labels == nil {
		spec.Template.Labels = map[string]string{}
	}
	// The canary's pods carry the stable's labels, so that its selector
	// matches them, and track: canary.
	for k, v := range stable.Spec.Selector.MatchLabels {
		if _, ok := spec.Template.Labels[k]; !ok {
			spec.Template.Labels[k] = v
		}
	}
	spec.Template.Labels[TrackLabel] = TrackCanary
	replicas := int32(1)
	if stable.Spec.Replicas != nil && *stable.Spec.Replicas > 0 {
		replicas = *stable.Spec.Replicas
	}
	if s.Replicas != nil {
		replicas = *s.Replicas
	}
	spec.Replicas = &replicas
	spec.Paused = false
	labels := maps.Clone(stable.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[TrackLabel], labels[ManagedByLabel] = TrackCanary, ManagedBy
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: stable.Namespace, Name: s.CanaryName(), Labels: labels,
			Annotations: map[string]string{StableAnnotation: stable.Name, VersionAnnotation: s.Version},
		},
		Spec: *spec,
	}, nil
}

// ApplyCanary creates or updates the canary Deployment from the stable
// one, and returns its status. A canary Deployment that exists but was not
// made from this stable one is refused (ErrBadSpec): it is somebody else's.
func (k *Kube) ApplyCanary(ctx context.Context, s Spec) (Status, error) {
	deployments := k.deployments(s.Namespace)
	var out *appsv1.Deployment
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		stable, err := deployments.Get(ctx, s.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("stable deployment %s/%s: %w", s.Namespace, s.Name, err)
		}
		if err := k.unmanaged(ctx, stable); err != nil {
			return err
		}
		want, err := canaryFrom(stable, s)
		if err != nil {
			return err
		}
		cur, err := deployments.Get(ctx, want.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			out, err = deployments.Create(ctx, want, metav1.CreateOptions{FieldManager: ManagedBy})
			return err
		}
		if err != nil {
			return err
		}
		if cur.Annotations[StableAnnotation] != s.Name {
			return fmt.Errorf("%w: deployment %s/%s exists and was not made from %s by this engine (no %s annotation): rename the canary or remove it",
				ErrBadSpec, s.Namespace, want.Name, s.Name, StableAnnotation)
		}
		next := cur.DeepCopy()
		next.Labels, next.Annotations = want.Labels, mergeStrings(cur.Annotations, want.Annotations)
		next.Spec.Template, next.Spec.Replicas, next.Spec.Paused = want.Spec.Template, want.Spec.Replicas, false
		if equality.Semantic.DeepEqual(cur, next) {
			out = cur
			return nil
		}
		out, err = deployments.Update(ctx, next, metav1.UpdateOptions{FieldManager: ManagedBy})
		return err
	})
	if err != nil {
		return Status{Name: s.CanaryName()}, err
	}
	return statusOf(out), nil
}

// PromoteStable copies the canary's pod template into the stable
// Deployment, keeping the stable's own pod labels (its selector must go on
// matching them), and returns the stable's status: its Generation is the
// one whose rollout to wait for.
func (k *Kube) PromoteStable(ctx context.Context, s Spec) (Status, error) {
	deployments := k.deployments(s.Namespace)
	var out *appsv1.Deployment
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		canary, err := deployments.Get(ctx, s.CanaryName(), metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("canary deployment %s/%s: %w", s.Namespace, s.CanaryName(), err)
		}
		stable, err := deployments.Get(ctx, s.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("stable deployment %s/%s: %w", s.Namespace, s.Name, err)
		}
		next := stable.DeepCopy()
		next.Spec.Template = *canary.Spec.Template.DeepCopy()
		next.Spec.Template.Labels = maps.Clone(stable.Spec.Template.Labels)
		if equality.Semantic.DeepEqual(stable.Spec.Template, next.Spec.Template) {
			out = stable
			return nil
		}
		out, err = deployments.Update(ctx, next, metav1.UpdateOptions{FieldManager: ManagedBy})
		return err
	})
	if err != nil {
		return Status{Name: s.Name}, err
	}
	return statusOf(out), nil
}

// ScaleCanary sets the canary's replicas; 0 retires it. A canary that does
// not exist is already at 0.
func (k *Kube) ScaleCanary(ctx context.Context, s Spec, replicas int32) (Status, error) {
	deployments := k.deployments(s.Namespace)
	var out *appsv1.Deployment
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := deployments.Get(ctx, s.CanaryName(), metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.Annotations[StableAnnotation] != s.Name {
			return fmt.Errorf("%w: deployment %s/%s was not made from %s by this engine", ErrBadSpec, s.Namespace, cur.Name, s.Name)
		}
		if cur.Spec.Replicas != nil && *cur.Spec.Replicas == replicas {
			out = cur
			return nil
		}
		next := cur.DeepCopy()
		next.Spec.Replicas = &replicas
		out, err = deployments.Update(ctx, next, metav1.UpdateOptions{FieldManager: ManagedBy})
		return err
	})
	if apierrors.IsNotFound(err) {
		return Status{Name: s.CanaryName(), Missing: true}, nil
	}
	if err != nil {
		return Status{Name: s.CanaryName()}, err
	}
	return statusOf(out), nil
}

// State reads both Deployments.
func (k *Kube) State(ctx context.Context, s Spec) (State, error) {
	var st State
	var errs []error
	for _, x := range []struct {
		name string
		dst  *Status
	}{{s.Name, &st.Stable}, {s.CanaryName(), &st.Canary}} {
		d, err := k.deployments(s.Namespace).Get(ctx, x.name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			*x.dst = Status{Name: x.name, Missing: true}
		case err != nil:
			*x.dst = Status{Name: x.name}
			errs = append(errs, fmt.Errorf("deployment %s/%s: %w", s.Namespace, x.name, err))
		default:
			*x.dst = statusOf(d)
		}
	}
	return st, errors.Join(errs...)
}

func statusOf(d *appsv1.Deployment) Status {
	s := Status{
		Name: d.Name, Images: map[string]string{}, Current: d.Status.Replicas, Updated: d.Status.UpdatedReplicas,
		Ready: d.Status.ReadyReplicas, Available: d.Status.AvailableReplicas,
		Generation: d.Generation, ObservedGeneration: d.Status.ObservedGeneration, Desired: 1,
	}
	if d.Spec.Replicas != nil {
		s.Desired = *d.Spec.Replicas
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		s.Images[c.Name] = c.Image
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			s.Failed = c.Message
			if s.Failed == "" {
				s.Failed = c.Reason
			}
		}
	}
	return s
}

func mergeStrings(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, b)
	return out
}
