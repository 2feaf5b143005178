// Package gatewayapi moves canary traffic with a Gateway API HTTPRoute: the
// backendRef weights of the rules that route to the stable Service, and, for
// a routing match, extra rules that send the chosen requests to the canary
// Service alone.
//
// The HTTPRoute belongs to the user (their chart made it); the router edits
// it in place and touches only what concerns the two Services. A step maps to
// the route like this:
//
//   - Every rule with a backendRef to the stable Service is a "stable rule".
//     Its stable backendRef gets weight Total−Weight and a canary backendRef
//     (added beside it, a copy of the stable one with the canary's name and
//     port) gets Weight. Gateway API weights are proportional, so with Total
//     100 they read as percentages and with Total 1000 as tenths of one.
//   - A Match adds, before each stable rule, a generated rule named
//     "canary-match-<n>" whose matches are the stable rule's matches, each
//     with one more header match, and whose only backendRef is the canary.
//     Gateway API gives precedence to the match with more header matches when
//     paths and methods tie, so the generated rule wins over its stable rule
//     for the requests it selects; placing it first also settles any tie
//     (and the implementation-specific precedence of regex paths) in its
//     favour, as ties within a route go to the first rule in list order.
//   - Reset sets the canary weight to 0, keeping the canary backendRef, and
//     removes the generated rules.
//
// Every write is a Get, a change and an Update carrying the resourceVersion
// read, retried on conflict, so concurrent writers (a controller, a person
// with kubectl) never lose each other's changes.
package gatewayapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aurum/canary/traffic"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

const (
	// ManagedAnnotation marks an HTTPRoute the router has changed. It is an
	// annotation rather than the app.kubernetes.io/managed-by label because
	// that label usually names the tool that created the route (Helm), and
	// overwriting it would mislead that tool and the people reading it.
	ManagedAnnotation = "canary.aurum.dev/managed"
	// FieldManager is the field manager the router's updates are recorded
	// under in the route's managedFields.
	FieldManager = "aurum-canary"

	// managedByLabel is the well-known label naming a resource's manager.
	managedByLabel = "app.kubernetes.io/managed-by"
	// argoPluginLabel is what the Argo Rollouts Gateway API plugin sets on
	// every route it is moving traffic on, and removes when it is done.
	argoPluginLabel = "rollouts.argoproj.io/gatewayapi-canary"
)

// Config names the route and Services a Router works on.
type Config struct {
	// Namespace holds the HTTPRoute and, unless its backendRefs say
	// otherwise, the Services.
	Namespace string
	// HTTPRoute is the existing route to change.
	HTTPRoute string
	// StableService is the Service the route's rules send traffic to now.
	StableService string
	// CanaryService is the Service the canary traffic goes to.
	CanaryService string
	// Port is the canary Service's port; 0 keeps the stable backendRef's
	// port, for canary Services that mirror the stable one.
	Port int32
	// TakeOver lets the router change a route another controller (Argo
	// Rollouts, Flagger) manages. That controller will likely undo the
	// changes, so it is for migrating away from it.
	TakeOver bool
}

// validate checks the names are Kubernetes names before any of them reaches
// the API server, where a bad one would fail with a less useful message.
// conflictBackoff spaces retries after a write lost to another writer of
// the route (a controller, a person with kubectl). client-go's
// DefaultRetry gives up after five tries 10ms apart, which writers in a
// tight loop exhaust; jitter keeps retrying writers out of lockstep.
var conflictBackoff = wait.Backoff{Steps: 10, Duration: 10 * time.Millisecond, Factor: 1.5, Jitter: 0.5, Cap: time.Second}

func (c Config) validate() error {
	var errs []error
	check := func(what, value string, f func(string) []string) {
		if value == "" {
			errs = append(errs, fmt.Errorf("%s is empty", what))
			return
		}
		if msgs := f(value); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("%s %q: %s", what, value, strings.Join(msgs, "; ")))
		}
	}
	check("namespace", c.Namespace, validation.IsDNS1123Label)
	check("httproute", c.HTTPRoute, validation.IsDNS1123Subdomain)
	check("stable service", c.StableService, validation.IsDNS1035Label)
	check("canary service", c.CanaryService, validation.IsDNS1035Label)
	if c.StableService != "" && c.StableService == c.CanaryService {
		errs = append(errs, fmt.Errorf("stable and canary service are both %q", c.StableService))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d: want 1 to 65535, or 0 for the stable backendRef's port", c.Port))
	}
	return errors.Join(errs...)
}

// HTTPRoutes is what the router needs of the Kubernetes API: the
// HTTPRoutes of its namespace, read and updated. The Gateway API's typed
// client (clientset.GatewayV1().HTTPRoutes(namespace)) is one;
// traffic/kube builds a lean one.
type HTTPRoutes interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*gwv1.HTTPRoute, error)
	Update(ctx context.Context, route *gwv1.HTTPRoute, opts metav1.UpdateOptions) (*gwv1.HTTPRoute, error)
}

// Router applies traffic steps to one HTTPRoute. It keeps no state of its
// own, the route is the state, so it is safe for concurrent use.
type Router struct {
	routes HTTPRoutes
	cfg    Config
	logger *slog.Logger
}

var _ traffic.Router = (*Router)(nil)

// New returns a Router for the route cfg names, among routes, the
// HTTPRoutes of cfg.Namespace. It does not contact the API server: the
// route may be created after the router. A nil logger discards.
func New(routes HTTPRoutes, cfg Config, logger *slog.Logger) (*Router, error) {
	if routes == nil {
		return nil, errors.New("gateway api router: no client")
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("gateway api router: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Router{
		routes: routes,
		cfg:    cfg,
		logger: logger.With("httproute", cfg.Namespace+"/"+cfg.HTTPRoute),
	}, nil
}

// object names the route for errors and State.Objects.
func (r *Router) object() string {
	return "httproute " + r.cfg.Namespace + "/" + r.cfg.HTTPRoute
}

// Apply makes step the canary's traffic on the route: the weights of every
// stable rule, and the generated match rules, replacing earlier ones. Steps
// the route cannot carry faithfully are refused with traffic.ErrUnsupported.
func (r *Router) Apply(ctx context.Context, step traffic.Step) error {
	if err := step.Validate(); err != nil {
		return fmt.Errorf("%s: %w", r.object(), err)
	}
	header, err := headerFor(step)
	if err != nil {
		return fmt.Errorf("%s: %w", r.object(), err)
	}
	if header != nil && header.Type != nil && *header.Type == gwv1.HeaderMatchRegularExpression && !anchored(header.Value) {
		// Envoy-based gateways match a regex against the whole value,
		// nginx-based ones anywhere in it: only an anchored pattern means
		// the same on both.
		r.logger.WarnContext(ctx, "header pattern is not anchored with ^ and $; gateways differ on whether it must match the whole value",
			"pattern", header.Value)
	}
	changed, err := r.update(ctx, func(route *gwv1.HTTPRoute) error {
		if err := r.edit(route).apply(step, header); err != nil {
			return err
		}
		if route.Annotations == nil {
			route.Annotations = map[string]string{}
		}
		route.Annotations[ManagedAnnotation] = "true"
		return nil
	})
	if err != nil {
		return fmt.Errorf("apply step: %w", err)
	}
	strategy := ""
	if step.Match != nil {
		strategy = string(step.Match.Strategy)
	}
	if changed {
		r.logger.InfoContext(ctx, "applied traffic step", "weight", step.Weight, "total", total(step), "match", strategy)
	} else {
		r.logger.DebugContext(ctx, "traffic step already in place", "weight", step.Weight, "total", total(step), "match", strategy)
	}
	return nil
}

// Reset sends all traffic to the stable Service: the canary backendRefs stay
// with weight 0, so the next rollout finds them, and the generated match
// rules go. The stable weight becomes the rule's old stable+canary total, so
// State reads back the same Total.
func (r *Router) Reset(ctx context.Context) error {
	changed, err := r.update(ctx, func(route *gwv1.HTTPRoute) error {
		return r.edit(route).reset()
	})
	if err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	if changed {
		r.logger.InfoContext(ctx, "reset traffic to stable")
	}
	return nil
}

// State reads the canary's traffic back from the route. Weight and Total
// come from the first stable rule's canary and stable backendRefs (both 0
// before the first Apply); the Match from the first generated rule. A
// user-id or geo match reads back as a header match with its pattern: the
// route carries the regex, not how it was made.
func (r *Router) State(ctx context.Context) (traffic.State, error) {
	route, err := r.get(ctx)
	if err != nil {
		return traffic.State{}, fmt.Errorf("state: %w", err)
	}
	st, err := r.edit(route).state()
	if err != nil {
		return traffic.State{}, fmt.Errorf("state: %s: %w", r.object(), err)
	}
	st.Objects = []string{r.object()}
	return st, nil
}

// get reads the route, turning NotFound into traffic.ErrNotFound.
func (r *Router) get(ctx context.Context) (*gwv1.HTTPRoute, error) {
	route, err := r.routes.Get(ctx, r.cfg.HTTPRoute, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%s: %w", r.object(), traffic.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", r.object(), err)
	}
	return route, nil
}

// update reads the route, checks it is ours to change, changes a copy with
// mutate and writes it back if anything changed, all again from the read
// when another writer got in between. It reports whether it wrote.
func (r *Router) update(ctx context.Context, mutate func(*gwv1.HTTPRoute) error) (bool, error) {
	var changed bool
	err := retry.RetryOnConflict(conflictBackoff, func() error {
		changed = false
		route, err := r.get(ctx)
		if err != nil {
			return err
		}
		if other := otherController(route); other != "" {
			if !r.cfg.TakeOver {
				return fmt.Errorf("%s is managed by %s (take it over to change it anyway): %w", r.object(), other, traffic.ErrNotOwned)
			}
			r.logger.WarnContext(ctx, "changing a route another controller manages", "controller", other)
		}
		next := route.DeepCopy()
		if err := mutate(next); err != nil {
			return fmt.Errorf("%s: %w", r.object(), err)
		}
		if equality.Semantic.DeepEqual(route, next) {
			// Nothing to write: an idempotent Apply leaves the
			// resourceVersion, and the gateway's reconcile, alone.
			return nil
		}
		// The Update carries the resourceVersion read above; a write by
		// anyone else since then makes it fail with a conflict, and the
		// whole read-change-write runs again on the new object.
		// RetryOnConflict finds the conflict through the wrapping.
		if _, err := r.routes.Update(ctx, next, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
			return fmt.Errorf("update %s: %w", r.object(), err)
		}
		changed = true
		return nil
	})
	return changed, err
}

// otherController names the controller that manages route, or returns "".
// An owner reference from an Argo Rollouts Rollout or a Flagger Canary, any
// controller owner reference, the Argo Rollouts Gateway API plugin's
// in-progress label, and a managed-by label naming anything but Helm all
// mean a controller that will fight over the weights. Helm is let through:
// charts set managed-by to Helm on everything, and Helm writes only when a
// release is installed or upgraded.
func otherController(route *gwv1.HTTPRoute) string {
	for _, ref := range route.OwnerReferences {
		gv, _ := schema.ParseGroupVersion(ref.APIVersion)
		switch {
		case gv.Group == "argoproj.io" && ref.Kind == "Rollout":
			return "Argo Rollouts (Rollout " + ref.Name + ")"
		case gv.Group == "flagger.app" && ref.Kind == "Canary":
			return "Flagger (Canary " + ref.Name + ")"
		case ref.Controller != nil && *ref.Controller:
			return "its controller owner " + ref.Kind + " " + ref.Name
		}
	}
	if v, ok := route.Labels[argoPluginLabel]; ok {
		return "the Argo Rollouts Gateway API plugin (label " + argoPluginLabel + "=" + v + ")"
	}
	if v, ok := route.Labels[managedByLabel]; ok && !strings.EqualFold(v, "Helm") {
		return fmt.Sprintf("%q (label %s)", v, managedByLabel)
	}
	return ""
}

// total is the step's Total with its default.
func total(step traffic.Step) int {
	if step.Total == 0 {
		return 100
	}
	return step.Total
}
