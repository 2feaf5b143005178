package nginx

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/aurum/canary/traffic"
)

// ingressClassAnnotation is the class annotation that predates
// spec.ingressClassName; ingress-nginx still honours it.
const ingressClassAnnotation = "kubernetes.io/ingress.class"

// create makes the canary Ingress from the stable one, with the step's
// annotations already on it, so it never serves traffic in some default
// state between a create and a patch.
func (r *Router) create(ctx context.Context, stable *networkingv1.Ingress, want map[string]string) error {
	ing, err := r.canaryFor(stable, want)
	if err != nil {
		return err
	}
	if err := r.checkOverlap(ctx, ing); err != nil {
		return err
	}
	if _, err := r.ingresses.Create(ctx, ing, metav1.CreateOptions{FieldManager: r.cfg.FieldManager}); err != nil {
		return fmt.Errorf("create ingress %s: %w", r.canaryRef(), err)
	}
	r.logger.Info("canary ingress created", "stable_ingress", stable.Name,
		"weight", want[r.key(annWeight)], "strategy", want[StrategyAnnotation])
	return nil
}

// canaryFor builds the canary Ingress for stable: its rules with only the
// paths that lead to the stable Service, pointed at the canary Service on
// the same port, and the TLS entries of the hosts kept.
//
// Labels are not copied: a label such as app.kubernetes.io/instance would
// make Argo CD or Helm count the canary Ingress as theirs, and prune it.
// Neither are the stable Ingress's other annotations: ingress-nginx takes
// them from the stable Ingress for the canary too, all but session
// affinity, load-balance and upstream-hash-by.
func (r *Router) canaryFor(stable *networkingv1.Ingress, want map[string]string) (*networkingv1.Ingress, error) {
	var rules []networkingv1.IngressRule
	hosts := map[string]bool{}
	for _, rule := range stable.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		var paths []networkingv1.HTTPIngressPath
		for _, p := range rule.HTTP.Paths {
			svc := p.Backend.Service
			if svc == nil || svc.Name != r.cfg.StableService {
				continue
			}
			p := *p.DeepCopy()
			p.Backend = networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
				Name: r.cfg.CanaryService,
				// A named port must exist on the canary Service
				// under the same name.
				Port: svc.Port,
			}}
			paths = append(paths, p)
		}
		if len(paths) == 0 {
			continue
		}
		rules = append(rules, networkingv1.IngressRule{
			Host:             rule.Host,
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}},
		})
		hosts[rule.Host] = true
	}
	if len(rules) == 0 {
		return nil, fmt.Errorf("stable ingress %s has no path backed by service %q, so there is no traffic to split: check the stable service name",
			r.ref(stable.Name), r.cfg.StableService)
	}

	var tls []networkingv1.IngressTLS
	for _, t := range stable.Spec.TLS {
		if len(t.Hosts) == 0 {
			// An entry without hosts names no host to filter on.
			tls = append(tls, *t.DeepCopy())
			continue
		}
		var kept []string
		for _, h := range t.Hosts {
			if hosts[h] {
				kept = append(kept, h)
			}
		}
		if len(kept) > 0 {
			tls = append(tls, networkingv1.IngressTLS{Hosts: kept, SecretName: t.SecretName})
		}
	}

	annotations := maps.Clone(want)
	if class, ok := stable.Annotations[ingressClassAnnotation]; ok {
		annotations[ingressClassAnnotation] = class
	}
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{
			Name:        r.cfg.CanaryIngress,
			Namespace:   r.cfg.Namespace,
			Labels:      map[string]string{ManagedByLabel: ManagedByValue},
			Annotations: annotations,
		},
		Spec: networkingv1.IngressSpec{Rules: rules, TLS: tls},
	}
	if c := stable.Spec.IngressClassName; c != nil {
		class := *c
		ing.Spec.IngressClassName = &class
	}
	return ing, nil
}

// checkOverlap refuses to create a second canary Ingress for a host and
// path that already has one: ingress-nginx uses only the first canary of a
// path and ignores the rest, so one of the two controllers would move no
// traffic at all, silently. Argo Rollouts names its canary Ingress
// "<rollout>-<stable>-canary", which the ownership check on our own name
// cannot see. The check runs on creation only; without the right to list
// Ingresses it is skipped with a warning.
func (r *Router) checkOverlap(ctx context.Context, canary *networkingv1.Ingress) error {
	list, err := r.ingresses.List(ctx, metav1.ListOptions{})
	if apierrors.IsForbidden(err) {
		r.logger.Warn("cannot list ingresses to check for another canary of the same paths", "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("list ingresses in %s: %w", r.cfg.Namespace, err)
	}
	ours := map[[2]string]bool{}
	for _, rule := range canary.Spec.Rules {
		for _, p := range rule.HTTP.Paths {
			ours[[2]string{rule.Host, p.Path}] = true
		}
	}
	for i := range list.Items {
		other := &list.Items[i]
		if other.Name == canary.Name || !r.isCanary(other) || !sameClass(canary, other) {
			continue
		}
		for _, rule := range other.Spec.Rules {
			if rule.HTTP == nil {
				continue
			}
			for _, p := range rule.HTTP.Paths {
				if !ours[[2]string{rule.Host, p.Path}] {
					continue
				}
				who := r.foreignOwner(other)
				if who == "" {
					who = "aurum-canary"
				}
				return fmt.Errorf("ingress %s, managed by %s, is already the canary of host %q path %q, and ingress-nginx honours one canary per path: %w",
					r.ref(other.Name), who, rule.Host, p.Path, traffic.ErrNotOwned)
			}
		}
	}
	return nil
}

// patch brings cur's annotations, which the router has claimed, to want with one JSON merge patch holding
// only what changes: the keys to set, and null for each managed key to
// delete. The patch carries cur's resourceVersion, so the API server
// applies it only to the version read (409 Conflict otherwise, retried by
// the caller). Annotations the router does not own never appear in it.
func (r *Router) patch(ctx context.Context, cur *networkingv1.Ingress, want map[string]string) error {
	have := cur.Annotations
	if _, cookie := want[r.key(annAffinity)]; cookie && have[StrategyAnnotation] != string(traffic.StrategyCookie) {
		// The affinity annotations are not ours yet: take them only if
		// nobody set them to something else.
		for _, k := range affinityKeys {
			k := r.key(k)
			if v, ok := have[k]; ok && v != want[k] {
				return fmt.Errorf("ingress %s: %s is %q, set by someone else, and the cookie strategy needs it to be %q: remove it, or use another strategy",
					r.canaryRef(), k, v, want[k])
			}
		}
	}

	changes := map[string]any{}
	for k, v := range want {
		if old, ok := have[k]; !ok || old != v {
			changes[k] = v
		}
	}
	for _, k := range r.managedKeys(have) {
		if _, keep := want[k]; keep {
			continue
		}
		if _, ok := have[k]; ok {
			changes[k] = nil // JSON null: merge patch deletes the key
		}
	}
	meta := map[string]any{}
	if len(changes) > 0 {
		meta["annotations"] = changes
	}
	if cur.Labels[ManagedByLabel] != ManagedByValue {
		meta["labels"] = map[string]any{ManagedByLabel: ManagedByValue}
	}
	if len(meta) == 0 {
		r.logger.Debug("canary ingress already as wanted")
		return nil
	}
	// The API server always returns one; only an object never read from
	// a server lacks it, and then the patch is unconditional.
	if cur.ResourceVersion != "" {
		meta["resourceVersion"] = cur.ResourceVersion
	}
	body, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return fmt.Errorf("patch ingress %s: %w", r.canaryRef(), err)
	}
	_, err = r.ingresses.Patch(ctx, cur.Name, types.MergePatchType, body, metav1.PatchOptions{FieldManager: r.cfg.FieldManager})
	if err != nil {
		return fmt.Errorf("patch ingress %s: %w", r.canaryRef(), err)
	}
	r.logger.Info("canary ingress patched", "weight", want[r.key(annWeight)], "strategy", want[StrategyAnnotation],
		"changed", slices.Sorted(maps.Keys(changes)))
	return nil
}

// claim refuses an Ingress someone else manages, unless the router is to
// take it over; patch then adds the router's markers.
func (r *Router) claim(cur *networkingv1.Ingress) error {
	who := r.foreignOwner(cur)
	if who == "" {
		return nil
	}
	if !r.cfg.TakeOver {
		return fmt.Errorf("ingress %s is managed by %s: %w (take it over to manage it anyway)", r.canaryRef(), who, traffic.ErrNotOwned)
	}
	r.logger.Warn("taking over canary ingress", "owner", who)
	return nil
}

// foreignOwner names who manages ing if it is not this router, or returns
// "". The router's markers are the managed-by label and the stable-ingress
// annotation; an Ingress with neither was made by someone else, even if it
// looks right.
func (r *Router) foreignOwner(ing *networkingv1.Ingress) string {
	for _, ref := range ing.OwnerReferences {
		gv, _ := schema.ParseGroupVersion(ref.APIVersion)
		switch {
		case gv.Group == "argoproj.io" && ref.Kind == "Rollout":
			return fmt.Sprintf("Argo Rollouts (Rollout %s)", ref.Name)
		case gv.Group == "flagger.app" && ref.Kind == "Canary":
			return fmt.Sprintf("Flagger (Canary %s)", ref.Name)
		case ref.Controller != nil && *ref.Controller:
			return fmt.Sprintf("%s %s (%s)", ref.Kind, ref.Name, ref.APIVersion)
		}
	}
	label, labelled := ing.Labels[ManagedByLabel]
	if labelled && label != ManagedByValue {
		return fmt.Sprintf("%q (label %s)", label, ManagedByLabel)
	}
	stable, marked := ing.Annotations[StableIngressAnnotation]
	switch {
	case marked && stable != r.cfg.StableIngress:
		return fmt.Sprintf("aurum-canary for stable ingress %q", stable)
	case !labelled && !marked:
		return fmt.Sprintf("someone else (no %s label, no %s annotation)", ManagedByLabel, StableIngressAnnotation)
	}
	return ""
}

// routesTo reports whether any path of ing leads to service.
func routesTo(ing *networkingv1.Ingress, service string) bool {
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for _, p := range rule.HTTP.Paths {
			if p.Backend.Service != nil && p.Backend.Service.Name == service {
				return true
			}
		}
	}
	return false
}

// sameClass reports whether two Ingresses may be served by the same
// controller: an Ingress without a class may be picked up by the default
// class, so it matches any.
func sameClass(a, b *networkingv1.Ingress) bool {
	ca, cb := className(a), className(b)
	return ca == "" || cb == "" || ca == cb
}

func className(ing *networkingv1.Ingress) string {
	if c := ing.Spec.IngressClassName; c != nil {
		return *c
	}
	return ing.Annotations[ingressClassAnnotation]
}
