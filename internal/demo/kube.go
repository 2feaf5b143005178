package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"

	"github.com/aurum/canary/traffic/nginx"
)

// AnnotationChange is one change of a canary Ingress's annotations, as
// World.AnnotationHistory records them.
type AnnotationChange struct {
	// At is when the change was written.
	At time.Time
	// Ingress is the name of the Ingress that changed.
	Ingress string
	// Annotations are all of its annotations after the change; nil when
	// the Ingress was deleted.
	Annotations map[string]string
}

// servicePort is the port of both Services, which the Ingresses name.
const servicePort = 80

// Resources, as API errors name them.
var (
	ingressesResource   = networkingv1.Resource("ingresses")
	deploymentsResource = appsv1.Resource("deployments")
)

// cluster is the demo's Kubernetes: the Ingresses and Deployments of an
// API server that lives in memory, with the stable Ingress and the stable
// Deployment to start with. It keeps what the nginx router and the
// Deployment manager (rollout/deploy) rely on from a real API server: a
// resourceVersion that changes with every write, 404 NotFound, 409
// AlreadyExists, writes refused with 409 Conflict when they carry a
// resourceVersion that is no longer current (a merge patch's, an update's),
// a generation that moves with the spec, and server-set metadata (uid,
// creation time).
//
// Every write of an Ingress of the demo's namespace updates the edge's
// routing and the annotation history before it returns, so that when the
// router's patch returns, the edge already routes by it. Every write of a
// Deployment is rolled out at once (see rollOut).
//
// It replaces client-go's fake clientset, which did the same job but
// linked every API group's types and clients into `canary` for the demo's
// two resources.
type cluster struct {
	namespace string
	stable    string // the stable Ingress's name
	now       func() time.Time
	// setRouting receives the routing after every Ingress write.
	setRouting func(*routing)

	mu          sync.Mutex
	version     int64 // the last resourceVersion written
	objects     map[types.NamespacedName]*networkingv1.Ingress
	deployments map[types.NamespacedName]*appsv1.Deployment
	last        map[string]map[string]string // annotations of the Ingresses besides the stable one
	history     []AnnotationChange
}

// admit checks a new object's name and namespace against the request's
// namespace, as an API server does on create, and sets the metadata it
// sets: namespace, UID, creation time and the first generation.
func (c *cluster) admit(obj metav1.Object, kind, namespace string) error {
	if obj.GetName() == "" {
		return apierrors.NewBadRequest(kind + " name is empty")
	}
	if ns := obj.GetNamespace(); ns != "" && ns != namespace {
		return apierrors.NewBadRequest(fmt.Sprintf("%s namespace %q does not match the request's %q", kind, ns, namespace))
	}
	obj.SetNamespace(namespace)
	obj.SetUID(uuid.NewUUID())
	obj.SetCreationTimestamp(metav1.NewTime(c.now().Truncate(time.Second)))
	obj.SetGeneration(1)
	return nil
}

// newCluster builds the cluster with cfg's stable Ingress and Deployment
// and hands the edge its first routing.
func newCluster(cfg Config, setRouting func(*routing)) (*cluster, error) {
	c := &cluster{
		namespace:   cfg.Namespace,
		stable:      cfg.App,
		now:         time.Now,
		setRouting:  setRouting,
		objects:     map[types.NamespacedName]*networkingv1.Ingress{},
		deployments: map[types.NamespacedName]*appsv1.Deployment{},
		last:        map[string]map[string]string{},
	}
	ctx := context.Background()
	if _, err := c.ingresses(cfg.Namespace).Create(ctx, stableIngress(cfg), metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	if _, err := c.deploymentsOf(cfg.Namespace).Create(ctx, stableDeployment(cfg), metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	return c, nil
}

// ingresses returns the client of a namespace's Ingresses.
func (c *cluster) ingresses(namespace string) *ingressClient {
	return &ingressClient{c: c, namespace: namespace}
}

// ingressClient is one namespace's Ingresses, as nginx.Ingresses.
type ingressClient struct {
	c         *cluster
	namespace string
}

var _ nginx.Ingresses = (*ingressClient)(nil)

// Get returns a copy of the Ingress, or a NotFound error.
func (i *ingressClient) Get(ctx context.Context, name string, _ metav1.GetOptions) (*networkingv1.Ingress, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	i.c.mu.Lock()
	defer i.c.mu.Unlock()
	ing, ok := i.c.objects[types.NamespacedName{Namespace: i.namespace, Name: name}]
	if !ok {
		return nil, apierrors.NewNotFound(ingressesResource, name)
	}
	return ing.DeepCopy(), nil
}

// List returns copies of the namespace's Ingresses, by name. Selectors
// are refused rather than ignored: nothing in the demo filters.
func (i *ingressClient) List(ctx context.Context, opts metav1.ListOptions) (*networkingv1.IngressList, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.LabelSelector != "" || opts.FieldSelector != "" {
		return nil, apierrors.NewBadRequest("the demo's Kubernetes does not filter lists")
	}
	i.c.mu.Lock()
	defer i.c.mu.Unlock()
	return &networkingv1.IngressList{
		ListMeta: metav1.ListMeta{ResourceVersion: strconv.FormatInt(i.c.version, 10)},
		Items:    i.c.list(i.namespace),
	}, nil
}

// Create stores a copy of ing with the metadata an API server sets.
func (i *ingressClient) Create(ctx context.Context, ing *networkingv1.Ingress, _ metav1.CreateOptions) (*networkingv1.Ingress, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	stored := ing.DeepCopy()
	if err := i.c.admit(stored, "ingress", i.namespace); err != nil {
		return nil, err
	}
	i.c.mu.Lock()
	defer i.c.mu.Unlock()
	key := types.NamespacedName{Namespace: i.namespace, Name: ing.Name}
	if _, ok := i.c.objects[key]; ok {
		return nil, apierrors.NewAlreadyExists(ingressesResource, ing.Name)
	}
	return i.c.write(key, stored), nil
}

// Patch applies a JSON merge patch, the only kind the nginx router sends.
// A resourceVersion in the patch is a precondition, as on a real API
// server: the patch fails with a Conflict when the Ingress has changed
// since that version was read.
func (i *ingressClient) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, _ metav1.PatchOptions, subresources ...string) (*networkingv1.Ingress, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if pt != types.MergePatchType || len(subresources) > 0 {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the demo's Kubernetes takes merge patches of ingresses only, not %s of %v", pt, subresources))
	}
	i.c.mu.Lock()
	defer i.c.mu.Unlock()
	key := types.NamespacedName{Namespace: i.namespace, Name: name}
	cur, ok := i.c.objects[key]
	if !ok {
		return nil, apierrors.NewNotFound(ingressesResource, name)
	}
	orig, err := json.Marshal(cur)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	patched, err := jsonpatch.MergePatch(orig, data)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("merge patch: %v", err))
	}
	next := &networkingv1.Ingress{}
	if err := json.Unmarshal(patched, next); err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("patched ingress: %v", err))
	}
	if next.ResourceVersion != cur.ResourceVersion {
		return nil, apierrors.NewConflict(ingressesResource, name,
			errors.New("the object has been modified; please apply your changes to the latest version and try again"))
	}
	// What the server owns stays as it was.
	next.Name, next.Namespace, next.UID = cur.Name, cur.Namespace, cur.UID
	next.CreationTimestamp, next.Generation = cur.CreationTimestamp, cur.Generation
	if !equalSpec(cur, next) {
		next.Generation++
	}
	return i.c.write(key, next), nil
}

// equalSpec reports whether two Ingresses have the same spec.
func equalSpec(a, b *networkingv1.Ingress) bool {
	x, errA := json.Marshal(a.Spec)
	y, errB := json.Marshal(b.Spec)
	return errA == nil && errB == nil && string(x) == string(y)
}

// write stores ing under key with a new resourceVersion and returns a copy;
// a write in the demo's namespace updates the routing and the history.
// The caller holds c.mu.
func (c *cluster) write(key types.NamespacedName, ing *networkingv1.Ingress) *networkingv1.Ingress {
	c.version++
	ing.ResourceVersion = strconv.FormatInt(c.version, 10)
	c.objects[key] = ing
	if key.Namespace == c.namespace {
		c.observe()
	}
	return ing.DeepCopy()
}

// list returns copies of a namespace's Ingresses, by name. The caller
// holds c.mu.
func (c *cluster) list(namespace string) []networkingv1.Ingress {
	var out []networkingv1.Ingress
	for _, key := range slices.SortedFunc(maps.Keys(c.objects), func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) }) {
		if key.Namespace == namespace {
			out = append(out, *c.objects[key].DeepCopy())
		}
	}
	return out
}

// observe records the annotation changes of the namespace's Ingresses and
// hands the edge its new routing. The caller holds c.mu.
func (c *cluster) observe() {
	items := c.list(c.namespace)
	now := c.now()
	seen := map[string]bool{}
	for i := range items {
		ing := &items[i]
		if ing.Name == c.stable {
			continue
		}
		seen[ing.Name] = true
		prev, existed := c.last[ing.Name]
		if existed && maps.Equal(prev, ing.Annotations) {
			continue
		}
		ann := maps.Clone(ing.Annotations)
		if ann == nil {
			ann = map[string]string{}
		}
		c.last[ing.Name] = ann
		c.history = append(c.history, AnnotationChange{At: now, Ingress: ing.Name, Annotations: maps.Clone(ann)})
	}
	for _, name := range slices.Sorted(maps.Keys(c.last)) {
		if !seen[name] {
			delete(c.last, name)
			c.history = append(c.history, AnnotationChange{At: now, Ingress: name})
		}
	}
	c.setRouting(routingOf(items, c.namespace, c.stable))
}

// annotationHistory returns a copy of the history, oldest first.
func (c *cluster) annotationHistory() []AnnotationChange {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]AnnotationChange, len(c.history))
	for i, h := range c.history {
		h.Annotations = maps.Clone(h.Annotations)
		out[i] = h
	}
	return out
}

// routingOf finds, as ingress-nginx does, the stable Ingress's first
// service path and the canary Ingress for the same host and path: among the
// Ingresses with canary "true" serving that host and path, the oldest
// (then the first by name), since nginx honours only one canary per path.
func routingOf(ings []networkingv1.Ingress, namespace, stableName string) *routing {
	var stable *networkingv1.Ingress
	for i := range ings {
		if ings[i].Name == stableName {
			stable = &ings[i]
		}
	}
	if stable == nil {
		return &routing{}
	}
	host, path, stableBackend := firstServicePath(stable, namespace)
	if stableBackend == nil {
		return &routing{}
	}

	var canaries []*networkingv1.Ingress
	for i := range ings {
		ing := &ings[i]
		if ing.Name == stableName {
			continue
		}
		if on, _ := strconv.ParseBool(ing.Annotations[annCanary]); !on {
			continue
		}
		if servicePath(ing, namespace, host, path) != nil {
			canaries = append(canaries, ing)
		}
	}
	if len(canaries) == 0 {
		return newRouting(stableBackend, stable.Annotations, nil, nil)
	}
	slices.SortFunc(canaries, func(a, b *networkingv1.Ingress) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	canary := canaries[0]
	return newRouting(stableBackend, stable.Annotations, servicePath(canary, namespace, host, path), canary.Annotations)
}

// firstServicePath is the first rule path of ing backed by a Service.
func firstServicePath(ing *networkingv1.Ingress, namespace string) (host, path string, b *backend) {
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for _, p := range rule.HTTP.Paths {
			if p.Backend.Service != nil {
				return rule.Host, p.Path, backendOf(namespace, p.Backend.Service)
			}
		}
	}
	return "", "", nil
}

// servicePath is the backend of ing's path for host and path, or nil.
func servicePath(ing *networkingv1.Ingress, namespace, host, path string) *backend {
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP == nil || rule.Host != host {
			continue
		}
		for _, p := range rule.HTTP.Paths {
			if p.Path == path && p.Backend.Service != nil {
				return backendOf(namespace, p.Backend.Service)
			}
		}
	}
	return nil
}

// backendOf names the upstream as ingress-nginx does:
// namespace-service-port.
func backendOf(namespace string, svc *networkingv1.IngressServiceBackend) *backend {
	port := svc.Port.Name
	if port == "" {
		port = strconv.Itoa(int(svc.Port.Number))
	}
	return &backend{service: svc.Name, key: namespace + "-" + svc.Name + "-" + port}
}

// stableIngress is the cluster's starting object: the stable Ingress
// (host cfg.Host, path / to the primary Service), which the nginx router
// finds and copies its canary Ingress from.
func stableIngress(cfg Config) *networkingv1.Ingress {
	prefix := networkingv1.PathTypePrefix
	class := "nginx"
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{
			Name:      cfg.App,
			Namespace: cfg.Namespace,
			Labels:    map[string]string{"app": cfg.App},
		},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			Rules: []networkingv1.IngressRule{{
				Host: cfg.Host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{
						Path:     "/",
						PathType: &prefix,
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: cfg.App + "-" + TrackPrimary,
							Port: networkingv1.ServiceBackendPort{Number: servicePort},
						}},
					}},
				}},
			}},
		},
	}
}

// The stable Deployment's container and image repository.
const (
	DeploymentContainer = "ingest"
	DeploymentImage     = "registry.demo/lmp-ingest"
)

// stableDeployment is the stable Deployment the orchestrator's deploy
// scenario makes the canary Deployment from and promotes; its pods are the
// primary Service's.
func stableDeployment(cfg Config) *appsv1.Deployment {
	replicas := int32(3)
	labels := map[string]string{"app": cfg.App, "track": TrackPrimary}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: cfg.App, Namespace: cfg.Namespace, Labels: map[string]string{"app": cfg.App}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: DeploymentContainer, Image: DeploymentImage + ":v1",
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				}}},
			},
		},
	}
}

// deploymentsOf returns the client of a namespace's Deployments.
func (c *cluster) deploymentsOf(namespace string) *deploymentClient {
	return &deploymentClient{c: c, namespace: namespace}
}

// Deployments is one namespace's Deployments in the demo's Kubernetes:
// the calls the Deployment manager (rollout/deploy) makes, which client-go's
// typed clients make the same way.
type Deployments interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*appsv1.Deployment, error)
	Create(ctx context.Context, d *appsv1.Deployment, opts metav1.CreateOptions) (*appsv1.Deployment, error)
	Update(ctx context.Context, d *appsv1.Deployment, opts metav1.UpdateOptions) (*appsv1.Deployment, error)
}

// deploymentClient is one namespace's Deployments.
type deploymentClient struct {
	c         *cluster
	namespace string
}

var _ Deployments = (*deploymentClient)(nil)

// Get returns a copy of the Deployment, or a NotFound error.
func (d *deploymentClient) Get(ctx context.Context, name string, _ metav1.GetOptions) (*appsv1.Deployment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.c.mu.Lock()
	defer d.c.mu.Unlock()
	dep, ok := d.c.deployments[types.NamespacedName{Namespace: d.namespace, Name: name}]
	if !ok {
		return nil, apierrors.NewNotFound(deploymentsResource, name)
	}
	return dep.DeepCopy(), nil
}

// Create stores a copy of dep with the metadata an API server sets, and
// rolls it out.
func (d *deploymentClient) Create(ctx context.Context, dep *appsv1.Deployment, _ metav1.CreateOptions) (*appsv1.Deployment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	stored := dep.DeepCopy()
	if err := d.c.admit(stored, "deployment", d.namespace); err != nil {
		return nil, err
	}
	d.c.mu.Lock()
	defer d.c.mu.Unlock()
	key := types.NamespacedName{Namespace: d.namespace, Name: dep.Name}
	if _, ok := d.c.deployments[key]; ok {
		return nil, apierrors.NewAlreadyExists(deploymentsResource, dep.Name)
	}
	return d.c.writeDeployment(key, stored), nil
}

// Update replaces the Deployment's spec and metadata, as a PUT does: the
// caller's resourceVersion must be the current one (409 Conflict
// otherwise), the status is the server's, and a new spec is a new
// generation.
func (d *deploymentClient) Update(ctx context.Context, dep *appsv1.Deployment, _ metav1.UpdateOptions) (*appsv1.Deployment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if dep.Namespace != "" && dep.Namespace != d.namespace {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("deployment namespace %q does not match the request's %q", dep.Namespace, d.namespace))
	}
	d.c.mu.Lock()
	defer d.c.mu.Unlock()
	key := types.NamespacedName{Namespace: d.namespace, Name: dep.Name}
	cur, ok := d.c.deployments[key]
	if !ok {
		return nil, apierrors.NewNotFound(deploymentsResource, dep.Name)
	}
	if dep.ResourceVersion != cur.ResourceVersion {
		return nil, apierrors.NewConflict(deploymentsResource, dep.Name,
			errors.New("the object has been modified; please apply your changes to the latest version and try again"))
	}
	next := dep.DeepCopy()
	// What the server owns stays as it was.
	next.Namespace, next.UID = cur.Namespace, cur.UID
	next.CreationTimestamp, next.Generation, next.Status = cur.CreationTimestamp, cur.Generation, cur.Status
	if !equality.Semantic.DeepEqual(cur.Spec, next.Spec) {
		next.Generation++
	}
	return d.c.writeDeployment(key, next), nil
}

// writeDeployment rolls dep out, stores it under key with a new
// resourceVersion and returns a copy. The caller holds c.mu.
//
// Rolling out plays the Deployment controller and the kubelets for the
// demo, which has neither: a Deployment written runs its current
// generation at once on all its replicas, all available.
func (c *cluster) writeDeployment(key types.NamespacedName, dep *appsv1.Deployment) *appsv1.Deployment {
	n := int32(1)
	if dep.Spec.Replicas != nil {
		n = *dep.Spec.Replicas
	}
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
	c.version++
	dep.ResourceVersion = strconv.FormatInt(c.version, 10)
	c.deployments[key] = dep
	return dep.DeepCopy()
}
