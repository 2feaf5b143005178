package ui

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/rollout"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs"
)

// TestOverview joins runs and rollouts: a run driven by a rollout shows
// its weight and phase, a rollout without a run is a row of its own, a
// latch is the state, and the newest come first.
func TestOverview(t *testing.T) {
	now := time.Now()
	rs := []*runs.Run{
		{Namespace: "caiso", Name: "old", Revision: "a", LastVerdict: analysis.VerdictPass, UpdatedAt: now.Add(-time.Hour)},
		{Namespace: "caiso", Name: "driven", Revision: "v2", LastVerdict: analysis.VerdictPass, UpdatedAt: now.Add(-time.Minute)},
		{Namespace: "pjm", Name: "held", Revision: "b", UpdatedAt: now, Latches: []runs.Latch{{Kind: runs.LatchPause}, {Kind: runs.LatchRollback}}},
	}
	sts := []rollout.Status{
		{Namespace: "caiso", Name: "driven", Version: "v2", Status: rollout.PhaseProgressing, CurrentWeight: 25, Step: 2, Steps: 3, Group: "isos"},
		{Namespace: "miso", Name: "fresh", Version: "v1", Status: rollout.PhasePending, UpdatedAt: now.Add(-2 * time.Minute)},
	}
	rows := Overview(rs, sts)
	var names []string
	for _, r := range rows {
		names = append(names, r.Namespace+"/"+r.Name+" "+r.State)
	}
	require.Equal(t, []string{"pjm/held rolled back", "caiso/driven progressing", "miso/fresh pending", "caiso/old pass"}, names)
	require.Equal(t, 25, *rows[1].Weight)
	require.Equal(t, "isos", rows[1].Group)
	require.Nil(t, rows[3].Weight, "no rollout of ours moves it")
	require.NotNil(t, rows[3].Latches, "an empty list, not null")
}

// TestRenderQueries renders a policy's queries with a run's params and
// links the PromQL ones to Prometheus's graph page.
func TestRenderQueries(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(`apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: p}
spec:
  params: {name: {}}
  queries:
    rate: {prometheus: 'sum(rate(requests_total{app="{{ .name }}"}[5m]))'}
  rules:
    - {name: r, expr: rate > 0}
`), 0o644))
	set, err := rules.Load(dir)
	require.NoError(t, err)
	pol, err := set.Get("p")
	require.NoError(t, err)
	qs := RenderQueries(pol, map[string]string{"name": "lmp"}, func(string) string { return "http://prom:9090/" })
	require.Len(t, qs, 1)
	require.Equal(t, `sum(rate(requests_total{app="lmp"}[5m]))`, qs[0].Text)
	u, err := url.Parse(qs[0].Link)
	require.NoError(t, err)
	require.Equal(t, "/graph", u.Path)
	require.Equal(t, qs[0].Text, u.Query().Get("g0.expr"))
	bad := RenderQueries(pol, map[string]string{}, nil)
	require.Contains(t, bad[0].Error, "name")
	v := Policy(pol)
	require.Equal(t, filepath.Join(dir, "p.yaml"), v.File)
	require.Equal(t, 9, v.Rules[0].Line)
}

func TestCheckPrefix(t *testing.T) {
	for _, tt := range []struct {
		prefix string
		ok     bool
	}{
		{"", true}, {"/canary", true}, {"/ops/canary-ui", true},
		{"canary", false}, {"/canary/", false}, {"/", false}, {"/a b", false}, {`/"><script>`, false},
	} {
		t.Run(tt.prefix, func(t *testing.T) {
			err := CheckPrefix(tt.prefix)
			require.Equal(t, tt.ok, err == nil, err)
			if !tt.ok {
				_, err := NewSite(tt.prefix)
				require.Error(t, err)
			}
		})
	}
	site, err := NewSite("/canary")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(site.Prefix(), "/canary"))
}
