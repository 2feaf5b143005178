package rules

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestProbeTargetEntries: what an allowedHosts or allowedNamespaces entry
// may be; testdata/bad/bad-probes.yaml pins what each bad one is told.
func TestProbeTargetEntries(t *testing.T) {
	for _, h := range []string{
		"lmp.caiso.svc", "lmp.caiso.svc.cluster.local", "localhost", "*.caiso.svc.cluster.local", "*.svc",
		"xn--bcher-kva.example", "10.1.2.3", "::1", "fd00::1", "10.0.0.0/8", "10.1.2.3/32", "fd00::/8", "0.0.0.0/0",
	} {
		require.Empty(t, probeHostProblem(h), "%q", h)
	}
	for _, h := range []string{
		"", "LMP", "https://x", "x:80", "[::1]:80", "x/y", "10.0.0.1/8", "*", "*.", "a.*", "*.*.svc", "a_b",
		"x.", "1.2.3", "1.2.3.256", "-a", "a-", "fe80::1%eth0", "FD00::1", "a b", "10.0.0.0/33",
	} {
		require.NotEmpty(t, probeHostProblem(h), "%q", h)
	}
	for _, ns := range []string{"caiso", "kube-system", "a", "0"} {
		require.Empty(t, namespaceProblem(ns), "%q", ns)
	}
	for _, ns := range []string{"", "Caiso", "a.b", "-a", "a-", "a_b", "*", "a234567890123456789012345678901234567890123456789012345678901234"} {
		require.NotEmpty(t, namespaceProblem(ns), "%q", ns)
	}
}

func TestProbesSection(t *testing.T) {
	pol := goodPolicy(t)
	require.Nil(t, pol.Probes, "no section, no restriction of the policy's own")

	set, err := Load("testdata/good/sections.yaml")
	require.NoError(t, err)
	require.Equal(t, &ProbeTargets{
		Hosts:      []string{"kafka.caiso.svc", "*.caiso.svc.cluster.local", "10.20.0.0/16"},
		Namespaces: []string{"caiso", "miso"},
	}, set.Policies[0].Probes)
}

// TestNotificationsSection: the defaults without the section, and what a
// section sets; testdata/bad/bad-notifications.yaml pins the errors.
func TestNotificationsSection(t *testing.T) {
	pol := goodPolicy(t)
	require.Equal(t, Notifications{InconclusiveAfter: DefaultInconclusiveAfter, DegradedAnalyses: 3}, pol.Notifications)

	set, err := Load("testdata/good/sections.yaml")
	require.NoError(t, err)
	require.Equal(t, Notifications{Severity: map[string]string{"paused": "critical", "degraded": "info"},
		InconclusiveAfter: 5, DegradedMargin: 0.1, DegradedAnalyses: 4}, set.Policies[0].Notifications)
}
