package demo

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Tracks, the values of the track label, as the iso-ingest policy's
// baseline_track and canary_track defaults name them.
const (
	TrackPrimary = "primary"
	TrackCanary  = "canary"
)

// DurationBuckets are the buckets of ingest_request_duration_seconds, in
// seconds (+Inf is implicit). The base latency of the demo services is a
// few tens of milliseconds, inside the first bucket, so an added latency
// of a few hundred milliseconds moves the p99 visibly.
var DurationBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5}

// Base latency of a request, before the added latency: uniform in
// [baseLatency, baseLatency+latencyJitter).
const (
	baseLatency   = 5 * time.Millisecond
	latencyJitter = 20 * time.Millisecond
)

// DefaultRecordsPerRequest is how many records a successful request stores
// until SetRecordsPerRequest says otherwise.
const DefaultRecordsPerRequest = 10

// Service is one version of the demo's ingestion service: an HTTP server
// on 127.0.0.1 that answers every request as one fetch of market data,
// storing some records, and exposes the metrics the iso-ingest policy reads
// on /metrics from its own registry. Its behaviour knobs are atomic, so
// they can be turned while it serves: that is how the demo makes a canary
// go bad.
type Service struct {
	name  string
	track string

	*server
	reg *prometheus.Registry
	m   serviceMetrics
	rnd *lockedRand

	errorRate   atomic.Uint64 // math.Float64bits of the share of 500s
	latency     atomic.Int64  // added latency, in nanoseconds
	records     atomic.Int64
	consumeRate atomic.Uint64 // math.Float64bits of messages per second
	requests    atomic.Int64
}

// serviceMetrics are the iso-ingest metrics of one service. namespace, app
// and track are constant labels: each service has its own registry, as each
// pod of a real deployment does.
type serviceMetrics struct {
	requests    *prometheus.CounterVec
	duration    prometheus.Histogram
	records     prometheus.Counter
	lastSuccess prometheus.Gauge
}

func newServiceMetrics(reg prometheus.Registerer, labels prometheus.Labels) serviceMetrics {
	f := promauto.With(reg)
	m := serviceMetrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name:        "ingest_requests_total",
			Help:        "Fetch requests served, by HTTP status code.",
			ConstLabels: labels,
		}, []string{"code"}),
		duration: f.NewHistogram(prometheus.HistogramOpts{
			Name:        "ingest_request_duration_seconds",
			Help:        "Time to serve a fetch request.",
			ConstLabels: labels,
			Buckets:     DurationBuckets,
		}),
		records: f.NewCounter(prometheus.CounterOpts{
			Name:        "ingest_records_total",
			Help:        "Records stored by successful fetches.",
			ConstLabels: labels,
		}),
		lastSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name:        "ingest_last_success_timestamp_seconds",
			Help:        "Unix time of the last successful fetch.",
			ConstLabels: labels,
		}),
	}
	// Both codes exist from the start: a counter that appears at 1 loses
	// its first increment to rate(), and the error rate would read 0 for
	// a whole scrape after the first 500.
	m.requests.WithLabelValues("200")
	m.requests.WithLabelValues("500")
	return m
}

// newService opens the service's listener; serve starts answering on it.
func newService(namespace, app, track string, rnd *lockedRand) (*Service, error) {
	s := &Service{
		name:  app + "-" + track,
		track: track,
		reg:   prometheus.NewRegistry(),
		rnd:   rnd,
	}
	s.m = newServiceMetrics(s.reg, prometheus.Labels{"namespace": namespace, "app": app, "track": track})
	s.records.Store(DefaultRecordsPerRequest)
	s.consumeRate.Store(math.Float64bits(math.Inf(1)))

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/", s.ingest)
	srv, err := newServer(mux)
	if err != nil {
		return nil, err
	}
	s.server = srv
	return s, nil
}

// Name is the Kubernetes Service name the Ingresses point at:
// <app>-primary or <app>-canary.
func (s *Service) Name() string { return s.name }

// Track is the value of the track label: TrackPrimary or TrackCanary.
func (s *Service) Track() string { return s.track }

// URL is the service's base URL, http://127.0.0.1:<port>.
func (s *Service) URL() string { return s.url() }

// Registry is the service's own metrics registry, for a caller that wants
// to gather it without HTTP.
func (s *Service) Registry() *prometheus.Registry { return s.reg }

// SetErrorRate sets the share of requests answered with a 500, from 0 to
// 1; values outside are clamped, and NaN counts as 0.
func (s *Service) SetErrorRate(share float64) {
	if math.IsNaN(share) {
		share = 0
	}
	s.errorRate.Store(math.Float64bits(min(max(share, 0), 1)))
}

// ErrorRate is the share of requests answered with a 500.
func (s *Service) ErrorRate() float64 { return math.Float64frombits(s.errorRate.Load()) }

// SetLatency adds d to every request's latency; a negative d counts as 0.
func (s *Service) SetLatency(d time.Duration) { s.latency.Store(int64(max(d, 0))) }

// Latency is the latency added to every request.
func (s *Service) Latency() time.Duration { return time.Duration(s.latency.Load()) }

// SetRecordsPerRequest sets how many records each successful request
// stores (ingest_records_total); a negative n counts as 0. A canary that
// stores fewer records per fetch than its baseline fails the policy's
// throughput rule.
func (s *Service) SetRecordsPerRequest(n int) { s.records.Store(int64(max(n, 0))) }

// RecordsPerRequest is how many records each successful request stores.
func (s *Service) RecordsPerRequest() int { return int(s.records.Load()) }

// SetConsumeRate sets how many Kafka messages per second the service's
// consumer group (<app>-<track>) commits. +Inf, the default, keeps up with
// whatever is produced; below the produce rate the group falls behind and
// its lag grows. A negative or NaN rate counts as 0, which stops
// consuming.
func (s *Service) SetConsumeRate(perSecond float64) {
	if math.IsNaN(perSecond) || perSecond < 0 {
		perSecond = 0
	}
	s.consumeRate.Store(math.Float64bits(perSecond))
}

// ConsumeRate is the consumer group's commit rate in messages per second.
func (s *Service) ConsumeRate() float64 { return math.Float64frombits(s.consumeRate.Load()) }

// Requests is how many fetch requests the service has answered, errors
// included.
func (s *Service) Requests() int64 { return s.requests.Load() }

// fetchReply is the body of a fetch answer.
type fetchReply struct {
	Track   string `json:"track"`
	Records int    `json:"records"`
	Error   string `json:"error,omitempty"`
}

// ingest answers one fetch: it waits out the latency, fails with the
// error rate, and otherwise stores records.
func (s *Service) ingest(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	delay := baseLatency + time.Duration(s.rnd.Int64N(int64(latencyJitter))) + s.Latency()
	t := time.NewTimer(delay)
	select {
	case <-t.C:
	case <-r.Context().Done():
		// The client left: nothing was served, so nothing is counted.
		t.Stop()
		return
	}

	code, reply := http.StatusOK, fetchReply{Track: s.track}
	if s.rnd.Float64() < s.ErrorRate() {
		code, reply.Error = http.StatusInternalServerError, "upstream ISO API failed"
	}
	s.requests.Add(1)
	s.m.requests.WithLabelValues(strconv.Itoa(code)).Inc()
	s.m.duration.Observe(time.Since(start).Seconds())
	if code == http.StatusOK {
		reply.Records = s.RecordsPerRequest()
		s.m.records.Add(float64(reply.Records))
		s.m.lastSuccess.Set(float64(time.Now().UnixNano()) / 1e9)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(reply)
}

// lockedRand is a seeded random source safe for concurrent use: the demo's
// random draws (users, latencies, errors, weight rolls) come from Config.Seed
// so that a run can be repeated, although goroutine timing still varies.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

// newRand returns a source for one stream of the seed, so that components
// draw independently of each other.
func newRand(seed, stream uint64) *lockedRand {
	return &lockedRand{r: rand.New(rand.NewPCG(seed, stream))}
}

func (l *lockedRand) Float64() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Float64()
}

func (l *lockedRand) IntN(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.IntN(n)
}

func (l *lockedRand) Int64N(n int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Int64N(n)
}
