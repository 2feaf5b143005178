package main

import (
	"errors"
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/aurum/canary/traffic/gatewayapi"
	"github.com/aurum/canary/traffic/nginx"
	"github.com/aurum/canary/traffic/routers"
)

// kubeConfig finds the Kubernetes API: the kubeconfig file given, else the
// in-cluster service account, else $KUBECONFIG or ~/.kube/config, as
// kubectl does.
func kubeConfig(path string) (*rest.Config, error) {
	if path != "" {
		return clientcmd.BuildConfigFromFlags("", path)
	}
	if cfg, err := rest.InClusterConfig(); err == nil {
		return cfg, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, errors.New("no Kubernetes access: not in a cluster and no kubeconfig (give --kubeconfig or set KUBECONFIG)")
		}
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return cfg, nil
}

// kubeClients builds the clients the traffic routers use.
func kubeClients(cfg *rest.Config) (routers.Clients, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "aurum-canary/" + buildVersion()
	k, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return routers.Clients{}, fmt.Errorf("kubernetes client: %w", err)
	}
	g, err := gatewayclient.NewForConfig(cfg)
	if err != nil {
		return routers.Clients{}, fmt.Errorf("gateway api client: %w", err)
	}
	return routers.Clients{
		Ingresses:  func(ns string) nginx.Ingresses { return k.NetworkingV1().Ingresses(ns) },
		HTTPRoutes: func(ns string) gatewayapi.HTTPRoutes { return g.GatewayV1().HTTPRoutes(ns) },
	}, nil
}
