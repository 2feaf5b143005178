// Package nginx moves canary traffic with ingress-nginx canary annotations.
//
// ingress-nginx splits traffic between two Ingresses that serve the same
// host and path: the stable Ingress (the user's, left untouched) and a
// canary Ingress carrying nginx.ingress.kubernetes.io/canary: "true" and the
// rules that pick requests for it. The router creates the canary Ingress
// the first time it needs it, as a copy of the stable Ingress's paths that
// lead to the stable Service, pointed at the canary Service. After that it
// changes only the annotations it owns on it, so other annotations (a
// proxy-body-size, a team label) and other writers are left alone.
//
// A Step maps to annotations under the prefix (nginx.ingress.kubernetes.io
// unless configured) like this; canary: "true" is always written and so is
// canary-weight, "0" when the step has no weight, so a weight someone set by
// hand cannot linger beside a routing match:
//
//	step                     annotations
//	weight w                 canary-weight: w
//	weight w of total t      canary-weight: w, canary-weight-total: t (t not 100)
//	header h, value v        canary-by-header: h, canary-by-header-value: v
//	header h, pattern p      canary-by-header: h, canary-by-header-pattern: p
//	user-id, geo             as header (the pattern from traffic.UserIDPattern
//	                         or traffic.GeoPattern; the router only writes it)
//	cookie c                 canary-by-cookie: c, affinity: cookie,
//	                         session-cookie-name: c-affinity,
//	                         affinity-canary-behavior: sticky
//
// nginx tries the header first, then the cookie, then the weight: a request
// whose header or cookie does not match falls through to the weight, which
// is why a header or cookie match may come with a weight. A user-id or geo
// match may not (traffic.Step.Validate refuses it), as the weight would send
// random other users to the canary too.
//
// Every write is a JSON merge patch of the annotations alone, carrying the
// resourceVersion read, so the API server refuses it with 409 Conflict if
// the Ingress changed meanwhile; the router then reads it again and retries.
// Keys the router owns but the step does not need are set to null, which a
// merge patch reads as "delete".
package nginx

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"

	"github.com/aurum/canary/traffic"
)

// Defaults for Config.
const (
	// DefaultAnnotationPrefix is ingress-nginx's own default for its
	// --annotations-prefix flag.
	DefaultAnnotationPrefix = "nginx.ingress.kubernetes.io"
	// DefaultFieldManager names the router's writes in the Ingress's
	// managedFields.
	DefaultFieldManager = "aurum-canary"
)

// Markers the router puts on the canary Ingresses it manages.
const (
	// ManagedByLabel is the well-known label naming an object's manager;
	// the router sets it to ManagedByValue on the canary Ingress.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// ManagedByValue is the router's value for ManagedByLabel.
	ManagedByValue = "aurum-canary"
	// StableIngressAnnotation names the stable Ingress a canary Ingress
	// belongs to, so that two routers configured for different stable
	// Ingresses cannot both claim one canary Ingress.
	StableIngressAnnotation = "canary.aurum.dev/stable-ingress"
	// StrategyAnnotation records the routing strategy of the last step
	// applied. It tells State a user-id or geo match from a plain header
	// pattern (nginx sees no difference), and it records that the
	// session-affinity annotations are the router's to remove, which they
	// are only while the cookie strategy is in force.
	StrategyAnnotation = "canary.aurum.dev/strategy"
)

// Config names the Ingresses and Services a Router works on.
type Config struct {
	// Namespace holds both Ingresses and both Services.
	Namespace string
	// StableIngress is the user's Ingress, which routes to StableService.
	// The router reads it and never changes it.
	StableIngress string
	// StableService is the Service the stable Ingress routes to; only its
	// paths are copied into the canary Ingress.
	StableService string
	// CanaryService is the Service the canary Ingress routes to. It must
	// expose the same port (number or name) as StableService.
	CanaryService string
	// CanaryIngress is the Ingress the router creates and annotates;
	// default "<StableIngress>-canary", Flagger's naming.
	CanaryIngress string
	// AnnotationPrefix is ingress-nginx's --annotations-prefix; default
	// DefaultAnnotationPrefix.
	AnnotationPrefix string
	// TakeOver lets the router manage a canary Ingress that another
	// controller (Argo Rollouts, Flagger) or a person created. The router
	// adds its markers but leaves ownerReferences alone: deleting them
	// would change what garbage collection removes, which is the owner's
	// call. While a foreign ownerReference remains, TakeOver must stay set.
	TakeOver bool
	// FieldManager names the router's writes; default DefaultFieldManager.
	FieldManager string
}

// Ingresses is what the router needs of the Kubernetes API: the Ingresses
// of its namespace, read, listed, created and merge-patched. client-go's
// typed IngressInterface (clientset.NetworkingV1().Ingresses(namespace))
// is one; traffic/kube builds a lean one.
type Ingresses interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*networkingv1.Ingress, error)
	List(ctx context.Context, opts metav1.ListOptions) (*networkingv1.IngressList, error)
	Create(ctx context.Context, ing *networkingv1.Ingress, opts metav1.CreateOptions) (*networkingv1.Ingress, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (*networkingv1.Ingress, error)
}

// Router writes ingress-nginx canary annotations. It implements
// traffic.Router and is safe for concurrent use: it keeps no state between
// calls besides its configuration, and the API server orders the writes.
type Router struct {
	ingresses Ingresses
	cfg       Config
	logger    *slog.Logger
}

var _ traffic.Router = (*Router)(nil)

// conflictBackoff spaces retries after a write lost to another writer of
// the same Ingress (a controller, a person with kubectl). client-go's
// DefaultRetry gives up after five tries 10ms apart, which writers in a
// tight loop exhaust; jitter keeps retrying writers out of lockstep.
var conflictBackoff = wait.Backoff{Steps: 10, Duration: 10 * time.Millisecond, Factor: 1.5, Jitter: 0.5, Cap: time.Second}

// New returns a Router for cfg, after filling its defaults and checking
// every name, with all problems reported at once. ingresses are the
// Ingresses of cfg.Namespace. A nil logger discards.
func New(ingresses Ingresses, cfg Config, logger *slog.Logger) (*Router, error) {
	if ingresses == nil {
		return nil, errors.New("nginx router: no Kubernetes client")
	}
	if cfg.CanaryIngress == "" && cfg.StableIngress != "" {
		cfg.CanaryIngress = cfg.StableIngress + "-canary"
	}
	cfg.AnnotationPrefix = cmp.Or(cfg.AnnotationPrefix, DefaultAnnotationPrefix)
	cfg.FieldManager = cmp.Or(cfg.FieldManager, DefaultFieldManager)
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("nginx router: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Router{
		ingresses: ingresses,
		cfg:       cfg,
		logger:    logger.With("router", "nginx", "ingress", cfg.Namespace+"/"+cfg.CanaryIngress),
	}, nil
}

// validate checks the names as the API server would, so that a typo fails
// when the router is built rather than on the first rollout step.
func (c Config) validate() error {
	var errs []error
	check := func(field, value string, fn func(string) []string) {
		if value == "" {
			errs = append(errs, fmt.Errorf("%s is required", field))
			return
		}
		for _, msg := range fn(value) {
			errs = append(errs, fmt.Errorf("%s %q: %s", field, value, msg))
		}
	}
	check("namespace", c.Namespace, validation.IsDNS1123Label)
	check("stable ingress", c.StableIngress, validation.IsDNS1123Subdomain)
	check("canary ingress", c.CanaryIngress, validation.IsDNS1123Subdomain)
	// Service names are stricter than most names: DNS-1035 labels.
	check("stable service", c.StableService, validation.IsDNS1035Label)
	check("canary service", c.CanaryService, validation.IsDNS1035Label)
	// The prefix becomes the prefix part of annotation keys.
	check("annotation prefix", c.AnnotationPrefix, validation.IsDNS1123Subdomain)
	if c.StableIngress != "" && c.CanaryIngress == c.StableIngress {
		errs = append(errs, fmt.Errorf("canary ingress %q: must differ from the stable ingress", c.CanaryIngress))
	}
	if c.StableService != "" && c.CanaryService == c.StableService {
		errs = append(errs, fmt.Errorf("canary service %q: must differ from the stable service", c.CanaryService))
	}
	// The API server's limit on managedFields manager names.
	if len(c.FieldManager) > 128 {
		errs = append(errs, fmt.Errorf("field manager %q: longer than 128 characters", c.FieldManager))
	}
	return errors.Join(errs...)
}

// Apply makes step the canary's traffic, creating the canary Ingress if it
// does not exist yet. A step ingress-nginx cannot carry out as asked is
// refused with traffic.ErrUnsupported before anything is read; a canary
// Ingress someone else manages, with traffic.ErrNotOwned unless TakeOver
// is set; a missing stable Ingress with traffic.ErrNotFound.
func (r *Router) Apply(ctx context.Context, step traffic.Step) error {
	if err := step.Validate(); err != nil {
		return err
	}
	if err := checkMatch(step.Match); err != nil {
		return err
	}
	want := r.annotations(step)
	stable, err := r.ingresses.Get(ctx, r.cfg.StableIngress, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("stable ingress %s: %w", r.ref(r.cfg.StableIngress), traffic.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("get ingress %s: %w", r.ref(r.cfg.StableIngress), err)
	}
	if r.isCanary(stable) {
		return fmt.Errorf("stable ingress %s is itself a canary ingress (%s/canary is true): check the stable ingress name",
			r.ref(stable.Name), r.cfg.AnnotationPrefix)
	}
	return retry.OnError(conflictBackoff, retriable, func() error {
		cur, err := r.ingresses.Get(ctx, r.cfg.CanaryIngress, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return r.create(ctx, stable, want)
		}
		if err != nil {
			return fmt.Errorf("get ingress %s: %w", r.canaryRef(), err)
		}
		if err := r.claim(cur); err != nil {
			return err
		}
		if !routesTo(cur, r.cfg.CanaryService) {
			// The router keeps its hands off the spec of an existing
			// Ingress, so it cannot fix this; sending a weight to
			// whatever that Ingress does route to would be worse.
			return fmt.Errorf("canary ingress %s has no path backed by service %q: delete it to let the router recreate it, or check the canary service name",
				r.canaryRef(), r.cfg.CanaryService)
		}
		return r.patch(ctx, cur, want)
	})
}

// Reset sends all traffic to the stable version: canary: "true" and
// canary-weight: "0" stay, as Flagger leaves them, and every routing
// annotation goes. The canary Ingress itself stays, so the next rollout
// reuses it. A missing canary Ingress is already reset.
func (r *Router) Reset(ctx context.Context) error {
	want := r.annotations(traffic.Step{})
	return retry.RetryOnConflict(conflictBackoff, func() error {
		cur, err := r.ingresses.Get(ctx, r.cfg.CanaryIngress, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			r.logger.Debug("no canary ingress to reset")
			return nil
		}
		if err != nil {
			return fmt.Errorf("get ingress %s: %w", r.canaryRef(), err)
		}
		if err := r.claim(cur); err != nil {
			return err
		}
		return r.patch(ctx, cur, want)
	})
}

// State reads the canary Ingress back. A missing Ingress, or one whose
// canary annotation is not true, gets no traffic: Enabled is false and the
// Step is zero, as nginx ignores the other canary annotations then. Objects
// is empty when there is no canary Ingress to read.
func (r *Router) State(ctx context.Context) (traffic.State, error) {
	cur, err := r.ingresses.Get(ctx, r.cfg.CanaryIngress, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return traffic.State{}, nil
	}
	if err != nil {
		return traffic.State{}, fmt.Errorf("get ingress %s: %w", r.canaryRef(), err)
	}
	st := r.stateOf(cur.Annotations)
	st.Objects = []string{"ingress " + r.canaryRef()}
	return st, nil
}

// retriable reports whether a write lost a race and is worth redoing after
// reading the Ingress again: a conflict on a patch, or a create that found
// the canary Ingress created meanwhile (by a concurrent Apply, or by another
// controller, which the next round's ownership check then names).
func retriable(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
}

// ref names an Ingress in the router's namespace for errors and State.
func (r *Router) ref(name string) string { return r.cfg.Namespace + "/" + name }

func (r *Router) canaryRef() string { return r.ref(r.cfg.CanaryIngress) }

// key is the full key of an ingress-nginx annotation.
func (r *Router) key(name string) string { return r.cfg.AnnotationPrefix + "/" + name }

// isCanary reports whether ingress-nginx treats ing as a canary Ingress. It
// parses the value as ingress-nginx does (strconv.ParseBool), so "True" and
// "1" count as well as "true".
func (r *Router) isCanary(ing *networkingv1.Ingress) bool {
	on, _ := strconv.ParseBool(ing.Annotations[r.key(annCanary)])
	return on
}
