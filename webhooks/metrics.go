package webhooks

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/aurum/canary/queries"
)

const namespace = "canary"

// Metrics are the HTTP service's own metrics: requests, the policies in
// service, queries sent to sources, and alerts received. What happens to
// runs (analyses, latches) is counted by runs.Metrics, from the runs'
// events. Labels are bounded: policy names come from the loaded policies,
// sources from the configuration, and error classes from
// queries.Classify; never a raw query or error text.
type Metrics struct {
	queryDuration  *prometheus.HistogramVec
	queryErrors    *prometheus.CounterVec
	policiesLoaded prometheus.Gauge
	reloadErrors   prometheus.Counter
	lastReload     prometheus.Gauge
	httpRequests   *prometheus.CounterVec
	httpDuration   *prometheus.HistogramVec
	alerts         *prometheus.CounterVec
}

// NewMetrics registers the metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		queryDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "query_duration_seconds",
			Help:    "Duration of queries sent to a source (cache hits are not queries).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"source"}),
		queryErrors: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "query_errors_total",
			Help: "Failed queries, by source and error class (timeout, unavailable, bad_query, canceled, unknown_source, panic, other).",
		}, []string{"source", "class"}),
		policiesLoaded: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "policies_loaded",
			Help: "Policies in service.",
		}),
		reloadErrors: f.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "policy_reload_errors_total",
			Help: "Policy reloads rejected because a file did not load, each rejection once however often it is retried; the last good policies stayed in service.",
		}),
		lastReload: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "policy_last_reload_success_timestamp_seconds",
			Help: "When the policies were last loaded successfully.",
		}),
		httpRequests: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_requests_total",
			Help: "HTTP requests, by route and status code.",
		}, []string{"handler", "code"}),
		httpDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "http_request_duration_seconds",
			Help:    "HTTP request latency, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"handler"}),
		alerts: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "alertmanager_alerts_total",
			Help: "Alerts received from Alertmanager, by status.",
		}, []string{"status"}),
	}
	m.alerts.WithLabelValues("firing")
	m.alerts.WithLabelValues("resolved")
	return m
}

// InstrumentSource wraps a source so that every query it runs is timed and
// every failure counted under the source's name (kind, or kind/name).
func (m *Metrics) InstrumentSource(kind, name string, src queries.Source) queries.Source {
	label := kind
	if name != "" {
		label += "/" + name
	}
	dur := m.queryDuration.WithLabelValues(label)
	for _, class := range []string{"timeout", "unavailable", "bad_query", "canceled", "unknown_source", "panic", "other"} {
		m.queryErrors.WithLabelValues(label, class)
	}
	return queries.SourceFunc(func(ctx context.Context, q queries.Query) (queries.Result, error) {
		start := time.Now()
		res, err := src.Query(ctx, q)
		dur.Observe(time.Since(start).Seconds())
		if err != nil {
			m.queryErrors.WithLabelValues(label, queries.Classify(err)).Inc()
		}
		return res, err
	})
}
