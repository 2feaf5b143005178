package runs

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

const namespace = "canary"

// Metrics are the runs' metrics, and the counter of recovered panics that
// every component of the service shares. It is a Subscriber: analyses are
// counted from the events, so every path that answers one (Argo, Flagger,
// the orchestrator) is counted alike. Labels are bounded: policy names
// come from the loaded policies, verdicts and kinds are fixed sets.
type Metrics struct {
	reg              prometheus.Registerer
	analyses         *prometheus.CounterVec
	dryRuns          *prometheus.CounterVec
	analysisDuration *prometheus.HistogramVec
	storeErrors      prometheus.Counter
	panics           *prometheus.CounterVec
	revisions        prometheus.Counter
	expired          prometheus.Counter
}

// Panic components, the values of canary_panics_total's label.
var panicComponents = []string{"http", "query", "subscriber", "alerts", "retention", "orchestrator", "stepdown", "reload", "notify", "ui"}

// NewMetrics registers the metrics with reg (nil registers nothing).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		reg: reg,
		analyses: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "analysis_total",
			Help: "Analyses answered, by policy and verdict, whoever asked (Argo Rollouts, Flagger, the orchestrator).",
		}, []string{"policy", "verdict"}),
		dryRuns: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "dryrun_analysis_total",
			Help: "Analyses of policies with dry-run rules or a dryRun spec, by policy, the verdict they would have given counting them, " +
				"and whether that changes the verdict or the decision (changed: true or false).",
		}, []string{"policy", "verdict", "changed"}),
		analysisDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "analysis_duration_seconds",
			Help:    "Time to evaluate an analysis, queries included; analyses answered from a latch are not evaluated.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"policy"}),
		storeErrors: f.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "store_errors_total",
			Help: "Failed writes or reads of the run store.",
		}),
		panics: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "panics_total",
			Help: "Panics recovered into errors, by component; each one is a bug to report.",
		}, []string{"component"}),
		revisions: f.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "run_revisions_total",
			Help: "Revisions that became a canary's current one.",
		}),
		expired: f.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "runs_expired_total",
			Help: "Runs deleted by retention.",
		}),
	}
	for _, c := range panicComponents {
		m.panics.WithLabelValues(c)
	}
	return m
}

// Panicked counts a recovered panic of a component.
func (m *Metrics) Panicked(component string) { m.panics.WithLabelValues(component).Inc() }

// StoreError counts a failed store operation outside Runs (the
// orchestrator's documents).
func (m *Metrics) StoreError() { m.storeErrors.Inc() }

// Notify counts what happened.
func (m *Metrics) Notify(_ context.Context, e Event) error {
	switch e.Kind {
	case EventAnalysis:
		if a := e.Answer; a != nil && a.Result != nil {
			m.analyses.WithLabelValues(a.Policy, string(a.Verdict)).Inc()
			if d := a.DryRun; d != nil {
				m.dryRuns.WithLabelValues(a.Policy, string(d.Verdict), strconv.FormatBool(d.Changed)).Inc()
			}
			if a.Latched == "" {
				m.analysisDuration.WithLabelValues(a.Policy).Observe(time.Duration(a.Duration).Seconds())
			}
		}
	case EventRevision:
		m.revisions.Inc()
	case EventExpired:
		m.expired.Inc()
	}
	return nil
}

// watch exposes the gauges read from r on scrape: latches by kind, the
// canaries and runs kept, and the store's size.
func (m *Metrics) watch(r *Runs) {
	if m.reg == nil {
		return
	}
	for _, kind := range LatchKinds {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "latches",
			Help:        "Active latches on kept runs, by kind.",
			ConstLabels: prometheus.Labels{"kind": string(kind)},
		}, func() float64 { return float64(r.LatchCounts()[kind]) }))
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "runs",
		Help: "Runs kept, every revision of every canary.",
	}, func() float64 { _, n := r.Count(); return float64(n) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "store_size_bytes",
		Help: "Size of the run store on disk.",
	}, func() float64 { return float64(r.store.Size()) }))
}
