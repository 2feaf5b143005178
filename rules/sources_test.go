package rules

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// serverSources is the configuration testdata/sources is loaded against.
var serverSources = Sources{
	KindPrometheus: {"", "eu"},
	KindKafka:      {"main", ""},
	KindPostgres:   {"warehouse"},
}

// TestSourcesGolden pins the report for sources a server lacks: each at the
// field that names it, or at the query that names none.
func TestSourcesGolden(t *testing.T) {
	const file = "testdata/sources/policy.yaml"
	// Without a server's configuration nothing is checked.
	_, err := Load(file)
	require.NoError(t, err)

	_, err = LoadWith(Options{Sources: serverSources}, file)
	require.Error(t, err)
	var errs Errors
	require.True(t, errors.As(err, &errs), "want Errors, got %T", err)
	got := err.Error() + "\n"
	golden := strings.TrimSuffix(file, ".yaml") + ".golden"
	if *update {
		require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	require.Equal(t, string(want), got)

	// The loader loads with its options too, and keeps nothing broken.
	l := NewLoaderWith(Options{Sources: serverSources}, file)
	require.ErrorContains(t, l.Reload(), `query "us_up": prometheus source "us" is not configured`)
	require.Nil(t, l.Set())
	require.NoError(t, NewLoader(file).Reload())
}

func TestSources(t *testing.T) {
	const head = "apiVersion: canary.aurum.dev/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n  queries:\n"
	tests := []struct {
		name    string
		sources Sources
		queries string
		rule    string
		wantErr string
	}{
		{name: "nil sources check nothing", queries: "    x: {prometheus: up, source: anywhere}", rule: "x == 1"},
		{name: "the default prometheus", sources: Sources{KindPrometheus: {""}}, queries: "    x: {prometheus: up}", rule: "x == 1"},
		{
			name: "a kind the server lacks has no source at all", sources: Sources{KindPrometheus: {""}},
			queries: "    x: {kafka: {group: g}}", rule: "x < 1",
			wantErr: `p.yaml:6:5: policy "p", query "x": the default kafka cluster is not configured (the server configures no kafka cluster)`,
		},
		{
			name: "empty sources: not even the default prometheus", sources: Sources{},
			queries: "    x: {prometheus: up, source: eu}", rule: "x == 1",
			wantErr: `p.yaml:6:25: policy "p", query "x": prometheus source "eu" is not configured (the server configures no prometheus source)`,
		},
		{
			name: "the default missing, named ones listed", sources: Sources{KindKafka: {"main", "eu", "main"}},
			queries: "    x: {kafka: {group: g}}", rule: "x < 1",
			wantErr: `p.yaml:6:5: policy "p", query "x": the default kafka cluster is not configured (configured: "eu", "main"): name one with kafka.cluster`,
		},
		{
			name: "a cluster missing", sources: Sources{KindKafka: {"main", ""}},
			queries: "    lag:\n      kafka:\n        group: g\n        cluster: eu", rule: "lag < 1",
			wantErr: `p.yaml:9:9: policy "p", query "lag": kafka cluster "eu" is not configured (configured: the default, "main")`,
		},
		{
			name: "a database missing", sources: Sources{KindPostgres: {"warehouse"}},
			queries: "    db: {postgres: {database: lake, query: select 1}}", rule: "db.up == 1",
			wantErr: `p.yaml:6:21: policy "p", query "db": postgres database "lake" is not configured (configured: "warehouse")`,
		},
		{name: "probes need no configuration", sources: Sources{}, queries: "    a: {http: {url: 'http://x/'}}\n    b: {tcp: {address: 'x:1'}}", rule: "a.up + b.up == 2"},
		{
			name: "a named probe source must be configured", sources: Sources{},
			queries: "    a: {http: {url: 'http://x/'}, source: edge}", rule: "a.up == 1",
			wantErr: `p.yaml:6:35: policy "p", query "a": http source "edge" is not configured (configured: the default)`,
		},
		{name: "a named probe source that is", sources: Sources{KindTCP: {"edge"}}, queries: "    b: {tcp: {address: 'x:1'}, source: edge}", rule: "b.up == 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := head + tt.queries + "\n  rules:\n    - {name: r, expr: '" + tt.rule + "'}\n"
			pols, errs := parseDocs("p.yaml", []byte(src), Options{Sources: tt.sources})
			if tt.wantErr == "" {
				require.Empty(t, errs)
				require.Len(t, pols, 1)
				return
			}
			require.Equal(t, tt.wantErr, errs.Error())
		})
	}
}
