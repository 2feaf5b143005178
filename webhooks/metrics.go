package webhooks

import (
	"context"
	"github.com/aurum/canary/runs"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/aurum/canary/queries"
)

const namespace = "canary"

// Metrics are the engine's own metrics. Labels are bounded: policy names
// come from the loaded policies, sources from the configuration, and error
// classes from queries.Classify; never a raw query or error text.
type Metrics struct {
	analyses         *prometheus.CounterVec
	analysisDuration *prometheus.HistogramVec
	queryDuration    *prometheus.HistogramVec
	queryErrors      *prometheus.CounterVec
	policiesLoaded   prometheus.Gauge
	reloadErrors     prometheus.Counter
	lastReload       prometheus.Gauge
	httpRequests     *prometheus.CounterVec
	httpDuration     *prometheus.HistogramVec
	storeErrors      prometheus.Counter
	alerts           *prometheus.CounterVec
	trafficCuts      *prometheus.CounterVec
	reg              prometheus.Registerer
}

// NewMetrics registers the metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		reg: reg,
		analyses: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "analysis_total",
			Help: "Analyses answered, by policy and verdict.",
		}, []string{"policy", "verdict"}),
		analysisDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "analysis_duration_seconds",
			Help:    "Time to answer an analysis, queries and the store write included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"policy"}),
		queryDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "query_duration_seconds",
			Help:    "Duration of queries sent to a source (cache hits are not queries).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"source"}),
		queryErrors: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "query_errors_total",
			Help: "Failed queries, by source and error class (timeout, unavailable, bad_query, canceled, other).",
		}, []string{"source", "class"}),
		policiesLoaded: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "policies_loaded",
			Help: "Policies in service.",
		}),
		reloadErrors: f.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "policy_reload_errors_total",
			Help: "Policy reloads rejected because a file did not load; the last good policies stayed in service.",
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
		storeErrors: f.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "store_errors_total",
			Help: "Failed writes or reads of the run store.",
		}),
		alerts: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "alertmanager_alerts_total",
			Help: "Alerts received from Alertmanager, by status.",
		}, []string{"status"}),
	}
	m.trafficCuts = f.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "traffic_cuts_total",
		Help: "Kill-switch traffic cuts after a latched rollback, by result (ok, error).",
	}, []string{"result"})
	m.trafficCuts.WithLabelValues("ok")
	m.trafficCuts.WithLabelValues("error")
	m.alerts.WithLabelValues("firing")
	m.alerts.WithLabelValues("resolved")
	return m
}

// watchLatches exposes canary_latches{kind}, read from the runs on scrape.
func (m *Metrics) watchLatches(rs *runs.Runs) {
	if m.reg == nil || rs == nil {
		return
	}
	for _, kind := range []runs.LatchKind{runs.LatchRollback, runs.LatchPause, runs.LatchPromote} {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "latches",
			Help:        "Active latches on current runs, by kind.",
			ConstLabels: prometheus.Labels{"kind": string(kind)},
		}, func() float64 { return float64(rs.LatchCounts()[kind]) }))
	}
}

// InstrumentSource wraps a source so that every query it runs is timed and
// every failure counted under the source's name (kind, or kind/name).
func (m *Metrics) InstrumentSource(kind, name string, src queries.Source) queries.Source {
	label := kind
	if name != "" {
		label += "/" + name
	}
	dur := m.queryDuration.WithLabelValues(label)
	for _, class := range []string{"timeout", "unavailable", "bad_query", "canceled", "other"} {
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
