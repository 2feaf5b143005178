package main

import (
	"errors"
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/aurum/canary/traffic/gatewayapi"
	"github.com/aurum/canary/traffic/kube"
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
	k, err := kube.New(cfg)
	if err != nil {
		return routers.Clients{}, err
	}
	return routers.Clients{
		Ingresses:  func(ns string) nginx.Ingresses { return k.Ingresses(ns) },
		HTTPRoutes: func(ns string) gatewayapi.HTTPRoutes { return k.HTTPRoutes(ns) },
	}, nil
}
