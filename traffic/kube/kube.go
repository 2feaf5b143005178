// Package kube builds the Kubernetes API clients the traffic routers and
// the orchestrator use: Ingresses (networking.k8s.io/v1) for traffic/nginx,
// HTTPRoutes (gateway.networking.k8s.io/v1) for traffic/gatewayapi and
// Deployments (apps/v1) for rollout/deploy.
//
// They are typed clients (Client) that send the requests client-go's
// generic typed clients send, over client-go's REST client, with a scheme
// that knows these three API groups and nothing else.
// The generated clientsets (k8s.io/client-go/kubernetes and the Gateway
// API's versioned clientset) send the same requests, but each registers
// every API group it knows in its scheme and links client-go's discovery,
// measured at 189 packages and 13 MB of `canary` for two resources.
// client-go's dynamic client, which rollout/deploy uses to find Argo
// Rollouts and Flagger objects, is one more package.
//
// The scheme is built once, on first use, rather than in an init(): a
// program that never talks to Kubernetes pays nothing for it.
package kube

import (
	"fmt"
	"net/http"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/rest"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// codecs are the scheme and what the clients encode with: a scheme that
// knows the three API groups and the options every request carries, as a
// generated clientset's scheme does for all of its groups.
type codecs struct {
	scheme     *runtime.Scheme
	serializer serializer.CodecFactory
	parameters runtime.ParameterCodec
}

// schemeCodecs builds the codecs on first use.
var schemeCodecs = sync.OnceValue(func() codecs {
	scheme := runtime.NewScheme()
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	// Registering known, generated types cannot fail; a failure would be
	// a programming error of this package, as in a clientset's init.
	utilruntime.Must(networkingv1.AddToScheme(scheme))
	utilruntime.Must(appsv1.AddToScheme(scheme))
	utilruntime.Must(gwv1.Install(scheme))
	return codecs{scheme: scheme, serializer: serializer.NewCodecFactory(scheme), parameters: runtime.NewParameterCodec(scheme)}
})

// Ingresses is a client of one namespace's Ingresses: client-go's typed
// IngressInterface without the methods the routers never call.
type Ingresses = Client[*networkingv1.Ingress, *networkingv1.IngressList]

// HTTPRoutes is a client of one namespace's HTTPRoutes.
type HTTPRoutes = Client[*gwv1.HTTPRoute, *gwv1.HTTPRouteList]

// Deployments is a client of one namespace's Deployments: client-go's
// typed DeploymentInterface without the delete, watch, scale and apply
// methods.
type Deployments = Client[*appsv1.Deployment, *appsv1.DeploymentList]

// Clients reach one API server for any namespace.
type Clients struct {
	networking rest.Interface
	gateway    rest.Interface
	apps       rest.Interface
}

// New builds the clients for the API server and credentials cfg names,
// sharing one HTTP client (and its connections) between the groups.
func New(cfg *rest.Config) (*Clients, error) {
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	networking, err := restClient(cfg, networkingv1.SchemeGroupVersion, httpClient)
	if err != nil {
		return nil, err
	}
	gateway, err := restClient(cfg, gwv1.SchemeGroupVersion, httpClient)
	if err != nil {
		return nil, err
	}
	apps, err := restClient(cfg, appsv1.SchemeGroupVersion, httpClient)
	if err != nil {
		return nil, err
	}
	return &Clients{networking: networking, gateway: gateway, apps: apps}, nil
}

// restClient is the REST client of one API group, configured as a
// generated clientset configures its own (setConfigDefaults).
func restClient(cfg *rest.Config, gv schema.GroupVersion, httpClient *http.Client) (*rest.RESTClient, error) {
	c := *cfg
	c.GroupVersion = &gv
	c.APIPath = "/apis"
	codecs := schemeCodecs()
	c.NegotiatedSerializer = rest.CodecFactoryForGeneratedClient(codecs.scheme, codecs.serializer).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientForConfigAndClient(&c, httpClient)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for %s: %w", gv, err)
	}
	return rc, nil
}

// Ingresses returns a client of the namespace's Ingresses.
func (c *Clients) Ingresses(namespace string) *Ingresses {
	return &Ingresses{rest: c.networking, resource: "ingresses", namespace: namespace,
		newObject: func() *networkingv1.Ingress { return &networkingv1.Ingress{} },
		newList:   func() *networkingv1.IngressList { return &networkingv1.IngressList{} }}
}

// HTTPRoutes returns a client of the namespace's HTTPRoutes.
func (c *Clients) HTTPRoutes(namespace string) *HTTPRoutes {
	return &HTTPRoutes{rest: c.gateway, resource: "httproutes", namespace: namespace,
		newObject: func() *gwv1.HTTPRoute { return &gwv1.HTTPRoute{} },
		newList:   func() *gwv1.HTTPRouteList { return &gwv1.HTTPRouteList{} }}
}

// Deployments returns a client of the namespace's Deployments.
func (c *Clients) Deployments(namespace string) *Deployments {
	return &Deployments{rest: c.apps, resource: "deployments", namespace: namespace,
		newObject: func() *appsv1.Deployment { return &appsv1.Deployment{} },
		newList:   func() *appsv1.DeploymentList { return &appsv1.DeploymentList{} }}
}
