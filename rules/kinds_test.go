package rules

import (
	"math"
	"reflect"
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

// TestKindDeclarations: each kind's declaration is one a reader can trust:
// a field has one shape, a record is all numbers, each named by its tag.
func TestKindDeclarations(t *testing.T) {
	for _, k := range queryKinds {
		t.Run(k.name, func(t *testing.T) {
			seen := map[string]bool{}
			sources, texts := 0, 0
			for _, f := range k.fields {
				require.False(t, seen[f.name], "field %s declared twice", f.name)
				seen[f.name] = true
				shapes := 0
				for _, is := range []bool{f.list, f.headers, f.source, f.text} {
					if is {
						shapes++
					}
				}
				require.LessOrEqual(t, shapes, 1, "field %s: list, headers, source and text are exclusive", f.name)
				checks := 0
				for _, is := range []bool{f.choices != nil, f.duration, f.integer, f.statusCodes} {
					if is {
						checks++
					}
				}
				require.LessOrEqual(t, checks, 1, "field %s: one check at most", f.name)
				require.False(t, f.statusCodes && !f.list, "field %s: status codes come as a list", f.name)
				require.False(t, (f.source || f.headers) && checks > 0, "field %s: its values are not checked", f.name)
				if f.source {
					sources++
				}
				if f.text {
					texts++
				}
			}
			require.LessOrEqual(t, sources, 1, "one source alias at most")
			require.LessOrEqual(t, texts, 1, "one text at most")
			require.False(t, k.record != nil && k.series, "a record is one value: maxSeries cannot apply")
			if k.record == nil {
				require.Nil(t, RecordFields(k.name))
				require.Nil(t, NewRecord(k.name, nil))
				return
			}
			typ := reflect.TypeOf(k.record)
			require.Len(t, RecordFields(k.name), typ.NumField())
			values := map[string]float64{}
			for i, name := range RecordFields(k.name) {
				require.Equal(t, reflect.Float64, typ.Field(i).Type.Kind(), "%s.%s", typ.Name(), typ.Field(i).Name)
				require.NotEmpty(t, name, "%s.%s has no expr tag", typ.Name(), typ.Field(i).Name)
				values[name] = float64(i + 1)
			}
			rec := reflect.ValueOf(NewRecord(k.name, values))
			for i := range typ.NumField() {
				require.Equal(t, float64(i+1), rec.Field(i).Float())
			}
			// A value the source did not give is NaN: no data.
			require.True(t, math.IsNaN(reflect.ValueOf(NewRecord(k.name, nil)).Field(0).Float()))
		})
	}
	api := NewRecord(KindHTTP, map[string]float64{"up": 1, "status": 200, "latency_ms": 12}).(HTTPProbe)
	require.Equal(t, [3]float64{1, 200, 12}, [3]float64{api.Up, api.Status, api.LatencyMs})
	require.True(t, math.IsNaN(api.Value))
}
