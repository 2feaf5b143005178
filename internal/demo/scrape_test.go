package demo

import (
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// TestFlatten checks that a parsed exposition turns back into the series
// Prometheus stores: histogram buckets with le (+Inf included), _sum and
// _count, summary quantiles, counters and gauges.
func TestFlatten(t *testing.T) {
	const text = `# HELP ingest_request_duration_seconds Time to serve a fetch request.
# TYPE ingest_request_duration_seconds histogram
ingest_request_duration_seconds_bucket{track="canary",le="0.1"} 3
ingest_request_duration_seconds_bucket{track="canary",le="2.5"} 4
ingest_request_duration_seconds_bucket{track="canary",le="+Inf"} 5
ingest_request_duration_seconds_sum{track="canary"} 3.5
ingest_request_duration_seconds_count{track="canary"} 5
# TYPE rpc_seconds summary
rpc_seconds{quantile="0.99"} 0.2
rpc_seconds_sum 1.5
rpc_seconds_count 10
# TYPE ingest_requests_total counter
ingest_requests_total{code="500"} 2
# TYPE ingest_last_success_timestamp_seconds gauge
ingest_last_success_timestamp_seconds 1.7e+09
`
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(text))
	require.NoError(t, err)
	var got []string
	for _, mf := range families {
		for _, s := range flatten(mf) {
			got = append(got, model.Metric(toLabelSet(s.labels)).String()+" "+formatFloat(s.value))
		}
	}
	sort.Strings(got)
	require.Equal(t, []string{
		`ingest_last_success_timestamp_seconds 1.7e+09`,
		`ingest_request_duration_seconds_bucket{le="+Inf", track="canary"} 5`,
		`ingest_request_duration_seconds_bucket{le="0.1", track="canary"} 3`,
		`ingest_request_duration_seconds_bucket{le="2.5", track="canary"} 4`,
		`ingest_request_duration_seconds_count{track="canary"} 5`,
		`ingest_request_duration_seconds_sum{track="canary"} 3.5`,
		`ingest_requests_total{code="500"} 2`,
		`rpc_seconds_count 10`,
		`rpc_seconds_sum 1.5`,
		`rpc_seconds{quantile="0.99"} 0.2`,
	}, got)
}

func toLabelSet(m map[string]string) model.Metric {
	out := model.Metric{}
	for k, v := range m {
		out[model.LabelName(k)] = model.LabelValue(v)
	}
	return out
}
