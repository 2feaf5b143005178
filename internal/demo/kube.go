package demo

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
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

var (
	ingressResource = networkingv1.SchemeGroupVersion.WithResource("ingresses")
	ingressKind     = networkingv1.SchemeGroupVersion.WithKind("Ingress")
)

// cluster is the demo's Kubernetes: a fake clientset holding the stable
// Ingress and the two Services, watched so that the edge and the annotation
// history follow every Ingress write.
//
// It watches with a reactor rather than a watch: the reactor runs inside
// the write, so when a write (the nginx router's patch, say) returns, the
// edge already routes by it and the history already holds it. A fake watch
// would deliver the change a moment later, through a channel of 100 events
// whose overflow panics inside the writer. The reactor sees every write made
// through the clientset's API, which is all the router and the tests make;
// writes straight into Tracker() bypass it.
type cluster struct {
	cs        *fake.Clientset
	namespace string
	stable    string // the stable Ingress's name
	now       func() time.Time
	// setRouting receives the routing after every Ingress write.
	setRouting func(*routing)

	mu      sync.Mutex
	last    map[string]map[string]string // annotations of the Ingresses besides the stable one
	history []AnnotationChange
}

// newCluster builds the fake cluster with cfg's stable Ingress and
// Services, and installs the reactor that keeps the edge's routing and the
// history current.
func newCluster(cfg Config, setRouting func(*routing)) (*cluster, error) {
	cs := fake.NewClientset(stableObjects(cfg)...)
	c := &cluster{
		cs:         cs,
		namespace:  cfg.Namespace,
		stable:     cfg.App,
		now:        time.Now,
		setRouting: setRouting,
		last:       map[string]map[string]string{},
	}
	// The clientset's own reactors, which the watching reactor runs
	// itself so that it sees their result.
	chain := slices.Clone(cs.ReactionChain)
	cs.PrependReactor("*", "ingresses", func(action k8stesting.Action) (bool, runtime.Object, error) {
		for _, r := range chain {
			if !r.Handles(action) {
				continue
			}
			handled, obj, err := r.React(action)
			if !handled {
				continue
			}
			if err == nil && mutates(action.GetVerb()) && action.GetNamespace() == c.namespace {
				c.observe()
			}
			return true, obj, err
		}
		return false, nil, nil
	})
	deployChain := slices.Clone(cs.ReactionChain)
	cs.PrependReactor("*", "deployments", func(action k8stesting.Action) (bool, runtime.Object, error) {
		for _, r := range deployChain {
			if !r.Handles(action) {
				continue
			}
			handled, obj, err := r.React(action)
			if !handled {
				continue
			}
			if err == nil {
				obj = c.rollOut(action, obj)
			}
			return true, obj, err
		}
		return false, nil, nil
	})
	if err := c.observe(); err != nil {
		return nil, err
	}
	return c, nil
}

// mutates reports whether an action verb writes.
func mutates(verb string) bool {
	switch verb {
	case "create", "update", "patch", "delete", "delete-collection":
		return true
	}
	return false
}

// observe reads every Ingress of the namespace from the tracker (never
// through the clientset: the reactor calling it holds the clientset's
// lock), records the annotation changes and hands the edge its new
// routing.
func (c *cluster) observe() error {
	obj, err := c.cs.Tracker().List(ingressResource, ingressKind, c.namespace)
	if err != nil {
		return fmt.Errorf("list ingresses: %w", err)
	}
	list, ok := obj.(*networkingv1.IngressList)
	if !ok {
		return fmt.Errorf("list ingresses: unexpected %T", obj)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	seen := map[string]bool{}
	for i := range list.Items {
		ing := &list.Items[i]
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
	c.setRouting(routingOf(list.Items, c.namespace, c.stable))
	return nil
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

// stableObjects are the cluster's starting objects: the stable Ingress
// (host cfg.Host, path / to the primary Service) and both Services, so that
// the nginx router finds what it expects.
func stableObjects(cfg Config) []runtime.Object {
	prefix := networkingv1.PathTypePrefix
	class := "nginx"
	primary := cfg.App + "-" + TrackPrimary
	ing := &networkingv1.Ingress{
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
							Name: primary,
							Port: networkingv1.ServiceBackendPort{Number: servicePort},
						}},
					}},
				}},
			}},
		},
	}
	objs := []runtime.Object{ing}
	for _, track := range []string{TrackPrimary, TrackCanary} {
		objs = append(objs, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{
				Name:      cfg.App + "-" + track,
				Namespace: cfg.Namespace,
				Labels:    map[string]string{"app": cfg.App, "track": track},
			},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": cfg.App, "track": track},
				Ports: []corev1.ServicePort{{
					Name: "http", Port: servicePort, TargetPort: intstr.FromString("http"),
				}},
			},
		})
	}
	// The stable Deployment the orchestrator's deploy scenario makes the
	// canary Deployment from and promotes; its pods are the primary
	// Service's.
	replicas := int32(3)
	labels := map[string]string{"app": cfg.App, "track": TrackPrimary}
	objs = append(objs, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: cfg.App, Namespace: cfg.Namespace, Labels: map[string]string{"app": cfg.App}, Generation: 1},
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
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: replicas, UpdatedReplicas: replicas, ReadyReplicas: replicas, AvailableReplicas: replicas},
	})
	return objs
}

// The stable Deployment's container and image repository.
const (
	DeploymentContainer = "ingest"
	DeploymentImage     = "registry.demo/lmp-ingest"
)

var deploymentResource = appsv1.SchemeGroupVersion.WithResource("deployments")

// rollOut plays the Deployment controller and the kubelets for the demo,
// which has neither: every Deployment written gets a new generation and
// at once a status saying it runs on all its replicas, all available.
// It returns the Deployment as stored.
func (c *cluster) rollOut(action k8stesting.Action, obj runtime.Object) runtime.Object {
	d, ok := obj.(*appsv1.Deployment)
	if !ok || (action.GetVerb() != "create" && action.GetVerb() != "update") || action.GetSubresource() != "" {
		return obj
	}
	d = d.DeepCopy()
	d.Generation++
	n := int32(1)
	if d.Spec.Replicas != nil {
		n = *d.Spec.Replicas
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
	if err := c.cs.Tracker().Update(deploymentResource, d, d.Namespace); err != nil {
		return obj
	}
	return d
}
