// Package routers builds traffic routers from a description of the objects
// that carry a canary's traffic: the one place that knows every router, so
// that package traffic stays a seam and each router its own package.
package routers

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aurum/canary/traffic"
	"github.com/aurum/canary/traffic/gatewayapi"
	"github.com/aurum/canary/traffic/nginx"
)

// Router kinds.
const (
	KindNginx      = "nginx"
	KindGatewayAPI = "gatewayapi"
)

// Kinds lists the routers New builds.
var Kinds = []string{KindNginx, KindGatewayAPI}

// Target names the router and the objects that carry one canary's traffic.
type Target struct {
	// Router is one of Kinds.
	Router    string
	Namespace string
	// Ingress is the stable Ingress (nginx); HTTPRoute the route
	// (gatewayapi).
	Ingress, HTTPRoute           string
	StableService, CanaryService string
	// AnnotationPrefix overrides ingress-nginx's annotation prefix.
	AnnotationPrefix string
	// TakeOver lets the router change objects another controller created.
	TakeOver bool
}

// Key identifies the target's objects: two targets with the same key move
// the same traffic.
func (t Target) Key() string {
	return t.Router + ":" + t.Namespace + "/" + t.Ingress + t.HTTPRoute
}

// Clients are the API clients routers use, for any namespace; a router
// whose client is nil cannot be built. traffic/kube builds both from a
// kubeconfig; client-go's clientsets (and their fakes) serve too, as
// clientset.NetworkingV1().Ingresses and clientset.GatewayV1().HTTPRoutes.
type Clients struct {
	// Ingresses returns the Ingresses of a namespace, for nginx.
	Ingresses func(namespace string) nginx.Ingresses
	// HTTPRoutes returns the HTTPRoutes of a namespace, for gatewayapi.
	HTTPRoutes func(namespace string) gatewayapi.HTTPRoutes
}

// New builds the router the target names. An unknown kind is an error
// listing the known ones: a typo must not fall back to some default router.
func New(spec Target, clients Clients, logger *slog.Logger) (traffic.Router, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	switch spec.Router {
	case KindNginx:
		if clients.Ingresses == nil {
			return nil, errors.New("router nginx: no Kubernetes client configured")
		}
		return nginx.New(clients.Ingresses(spec.Namespace), nginx.Config{
			Namespace: spec.Namespace, StableIngress: spec.Ingress,
			StableService: spec.StableService, CanaryService: spec.CanaryService,
			AnnotationPrefix: spec.AnnotationPrefix, TakeOver: spec.TakeOver,
		}, logger)
	case KindGatewayAPI:
		if clients.HTTPRoutes == nil {
			return nil, errors.New("router gatewayapi: no Gateway API client configured")
		}
		return gatewayapi.New(clients.HTTPRoutes(spec.Namespace), gatewayapi.Config{
			Namespace: spec.Namespace, HTTPRoute: spec.HTTPRoute,
			StableService: spec.StableService, CanaryService: spec.CanaryService, TakeOver: spec.TakeOver,
		}, logger)
	}
	return nil, fmt.Errorf("unknown router %q (known: %s)", spec.Router, strings.Join(Kinds, ", "))
}
