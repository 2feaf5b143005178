package main

import (
	"errors"
	"fmt"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/aurum/canary/rollout/deploy"
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

// kubeClients are the Kubernetes clients of the traffic routers and the
// orchestrator: traffic/kube's lean typed clients, and a dynamic client
// for the look-up of Argo Rollouts and Flagger objects, whose types
// canary does not link.
type kubeClients struct {
	// Clients are the routers'.
	routers.Clients
	// Deployments are the Deployment manager's (rollout/deploy); nil
	// leaves the orchestrator without Deployments to manage.
	Deployments func(namespace string) deploy.Deployments
	// Dynamic, when set, finds the controllers that manage a Deployment.
	Dynamic dynamic.Interface
}

// newKubeClients builds the clients for the API server cfg names.
func newKubeClients(cfg *rest.Config) (*kubeClients, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "aurum-canary/" + buildVersion()
	k, err := kube.New(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes dynamic client: %w", err)
	}
	return &kubeClients{
		Clients: routers.Clients{
			Ingresses:  func(ns string) nginx.Ingresses { return k.Ingresses(ns) },
			HTTPRoutes: func(ns string) gatewayapi.HTTPRoutes { return k.HTTPRoutes(ns) },
		},
		Deployments: func(ns string) deploy.Deployments { return k.Deployments(ns) },
		Dynamic:     dyn,
	}, nil
}
