package routers

import (
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/aurum/canary/traffic/nginx"
)

func TestNew(t *testing.T) {
	cs := fake.NewClientset()
	clients := Clients{Ingresses: func(ns string) nginx.Ingresses { return cs.NetworkingV1().Ingresses(ns) }}
	spec := Target{Router: "nginx", Namespace: "caiso", Ingress: "lmp", StableService: "lmp-primary", CanaryService: "lmp-canary"}
	_, err := New(spec, clients, nil)
	require.NoError(t, err)
	spec.Router = "istio"
	_, err = New(spec, clients, nil)
	require.EqualError(t, err, `unknown router "istio" (known: nginx, gatewayapi)`)
	spec.Router = "gatewayapi"
	_, err = New(spec, clients, nil)
	require.ErrorContains(t, err, "no Gateway API client configured")
}

func TestTargetKey(t *testing.T) {
	a := Target{Router: KindNginx, Namespace: "caiso", Ingress: "lmp", CanaryService: "lmp-canary"}
	b := a
	b.CanaryService = "other"
	require.Equal(t, a.Key(), b.Key(), "the same objects, the same traffic")
	c := a
	c.Namespace = "miso"
	require.NotEqual(t, a.Key(), c.Key())
}
