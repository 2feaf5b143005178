package rules

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStructuredQueries(t *testing.T) {
	set, err := Load("testdata/good/kinds.yaml")
	require.NoError(t, err)
	pol := set.Policies[0]
	params, err := pol.ResolveParams(map[string]string{"namespace": "caiso", "name": "lmp"})
	require.NoError(t, err)

	tests := []struct {
		name       string
		query      string
		kind       ValueKind
		source     string
		text       string
		fields     map[string]string
		maxSeries  int
		paramsRead []string
	}{
		{name: "kafka max", query: "lag", kind: KindScalar, source: "main",
			fields: map[string]string{"group": "caiso-ingest-canary", "topics": "caiso-lmp,caiso-canary-dlq", "aggregate": "max"}, maxSeries: 1},
		{name: "kafka growth", query: "lag_growth", kind: KindScalar, source: "main",
			fields: map[string]string{"group": "caiso-ingest-canary", "value": "growth"}, maxSeries: 1},
		{name: "kafka per partition", query: "partition_lag", kind: KindSamples,
			fields: map[string]string{"group": "caiso-ingest-canary", "aggregate": "none"}, maxSeries: maxPartitions},
		{name: "http", query: "api", kind: KindRecord, fields: map[string]string{
			"url": "http://lmp.caiso.svc:8080/healthz", "header.X-Probe": "canary-canary", "expect": "200-299,304",
			"json": "queue.depth", "timeout": "2s", "retries": "1"}, maxSeries: 1},
		{name: "tcp", query: "broker", kind: KindRecord, fields: map[string]string{"address": "kafka.caiso.svc:9092"}, maxSeries: 1},
		{name: "postgres", query: "db", kind: KindRecord, source: "analytics",
			text: "select count(*) from lmp where app = 'lmp'", fields: map[string]string{"timeout": "2s"}, maxSeries: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := pol.Query(tt.query)
			require.Equal(t, tt.kind, q.ValueKind())
			require.Equal(t, tt.source, q.Source)
			require.Equal(t, tt.maxSeries, q.MaxSeries)
			text, fields, err := q.Render(params)
			require.NoError(t, err)
			require.Equal(t, tt.text, text)
			require.Equal(t, tt.fields, fields)
		})
	}

	// Rules know which record fields they read: a NaN elsewhere in the
	// record is not their concern.
	fields := map[string]map[string][]string{}
	for _, r := range pol.Rules {
		fields[r.Name] = r.RecordFields
	}
	require.Equal(t, map[string][]string{"api": {"up", "latency_ms"}}, fields["api"])
	require.Equal(t, map[string][]string{"api": {"value"}}, fields["queue"])
	require.Nil(t, fields["lag"])
	require.Equal(t, []string{"up", "status", "latency_ms", "value"}, RecordFields(KindHTTP))
}

func TestTrafficSection(t *testing.T) {
	set, err := Load("testdata/good/traffic.yaml")
	require.NoError(t, err)
	tr := set.Policies[0].Traffic
	require.NotNil(t, tr)
	require.Equal(t, OnRollbackStepDown, tr.OnRollback)
	require.Equal(t, []int{50, 20}, tr.StepDown)
	require.Equal(t, "30s", tr.StepDownInterval.String())
	spec, err := tr.Render(map[string]string{"namespace": "caiso", "name": "lmp"})
	require.NoError(t, err)
	require.Equal(t, TrafficSpec{Router: RouterNginx, Namespace: "caiso", Ingress: "lmp", StableService: "lmp-primary", CanaryService: "lmp-canary"}, spec)
}
