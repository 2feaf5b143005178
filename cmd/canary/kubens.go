package main

import (
	"k8s.io/client-go/tools/clientcmd"
)

// resolveNamespace is the namespace a command that takes one acts in: the
// one given (-n, or CANARY_NAMESPACE as its default), else the namespace
// of the kubeconfig's current context, as kubectl reads it ($KUBECONFIG,
// else ~/.kube/config), else "". `kubectl canary rollout status NAME` so
// looks where `kubectl get` would.
func resolveNamespace(given string) string {
	if given != "" {
		return given
	}
	return kubeconfigNamespace(clientcmd.NewDefaultClientConfigLoadingRules())
}

// kubeconfigNamespace is the namespace the current context of the
// kubeconfig the rules find names; "" when there is no kubeconfig, no
// current context, or it names no namespace.
func kubeconfigNamespace(rules *clientcmd.ClientConfigLoadingRules) string {
	cfg, err := rules.Load()
	if err != nil || cfg == nil {
		return ""
	}
	if ctx, ok := cfg.Contexts[cfg.CurrentContext]; ok && ctx != nil {
		return ctx.Namespace
	}
	return ""
}
