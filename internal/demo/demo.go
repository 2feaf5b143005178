// Package demo is the world `canary demo` runs a canary rollout in, on one
// machine with only Go: no Kubernetes, no Prometheus, no Kafka broker.
//
// A World holds real pieces, each on 127.0.0.1 with a free port:
//
//   - two versions of a small ingestion service, the baseline (track
//     "primary") and the canary (track "canary"), each an HTTP server with
//     its own Prometheus registry exposing the metrics the example policy
//     iso-ingest reads: ingest_requests_total{namespace,app,track,code},
//     ingest_request_duration_seconds (buckets DurationBuckets),
//     ingest_records_total and ingest_last_success_timestamp_seconds. Their
//     error rate, added latency, records per request and Kafka consume rate
//     are knobs to turn while they run;
//   - a small in-memory Kubernetes API of Ingresses and Deployments holding
//     the stable Ingress and the stable Deployment, for the orchestrator's
//     nginx router (traffic/nginx) to write the canary Ingress into and its
//     Deployment manager (rollout/deploy) to make, promote and retire the
//     canary Deployment in;
//   - an edge proxy standing in for ingress-nginx, which routes each
//     request by the canary Ingress's annotations as they are at that
//     moment, with ingress-nginx's semantics;
//   - a load generator sending requests from simulated users through the
//     edge;
//   - a scraper standing in for Prometheus, which appends every sample into
//     an embedded PromQL engine and serves it over Prometheus's HTTP API,
//     so that analyses query it through the production Prometheus client;
//   - a kfake Kafka cluster with a producer and one consumer group per
//     service, whose lag the Kafka source reads.
//
// Everything runs in real time. The rates and intervals are Config, so
// tests run the same world in seconds.
package demo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/aurum/canary/queries/embedded"
	"github.com/aurum/canary/traffic/nginx"
)

// Defaults for the zero values of Config.
const (
	// DefaultNamespace and DefaultApp are the params the example policy
	// iso-ingest takes as namespace and name.
	DefaultNamespace = "demo"
	DefaultApp       = "lmp-ingest"
	// DefaultHost is the stable Ingress's host.
	DefaultHost = "lmp.demo"
	// DefaultRate is the load in requests per second: enough that a 5%
	// canary share still sees a couple of requests a second.
	DefaultRate = 50
	// DefaultScrapeInterval is how often the services are scraped.
	// Prometheus defaults to a minute; a demo that shows a rollout in
	// minutes needs a finer grain.
	DefaultScrapeInterval = time.Second
	// DefaultUsers is how many simulated users send the load.
	DefaultUsers = 200
	// DefaultOptInShare is the share of users carrying the opt-in cookie,
	// when Config.OptInCookie names one.
	DefaultOptInShare = 0.1
	// DefaultTopic is the Kafka topic the services' consumer groups read.
	DefaultTopic = "caiso-lmp"
	// DefaultPartitions is the topic's partition count.
	DefaultPartitions = 2
	// DefaultProduceRate is how many messages per second the producer
	// appends to the topic: enough that a consumer which stops falls past
	// the demo policy's lag limit (150) within one of its 3 s steps.
	DefaultProduceRate = 50
)

// shutdownTimeout bounds how long Close waits for requests in flight.
const shutdownTimeout = 2 * time.Second

// Config shapes a World. The zero value is usable: zero fields take the
// Default constants.
type Config struct {
	// Namespace holds the Ingresses and Services, and is the namespace
	// label of the metrics.
	Namespace string
	// App is the app label of the metrics and names the Kubernetes
	// objects: the stable Ingress <App>, the Services <App>-primary and
	// <App>-canary, and the consumer groups of the same names.
	App string
	// Host is the host of the stable Ingress's rule, sent as the Host
	// header of the load.
	Host string
	// Rate is the load in requests per second.
	Rate float64
	// ScrapeInterval is how often the services' metrics are scraped.
	ScrapeInterval time.Duration
	// Seed seeds every random draw (user IDs and countries, latencies,
	// errors, weight rolls), so that two runs with one seed draw the same
	// sequences; goroutine timing still differs between runs.
	Seed uint64
	// Users is the number of simulated users.
	Users int
	// OptInCookie, when set, names a cookie that OptInShare of the users
	// send with the value "always", as users who opted into a beta would:
	// the cookie strategy of the nginx router routes on such a cookie.
	OptInCookie string
	// OptInShare is the share of users with the opt-in cookie, 0 to 1.
	OptInShare float64
	// Topic and Partitions describe the Kafka topic.
	Topic      string
	Partitions int32
	// ProduceRate is how many messages per second are appended to Topic.
	ProduceRate float64
	// Logger receives the world's warnings (a failed scrape, a failed
	// commit); nil discards them.
	Logger *slog.Logger
}

// withDefaults fills the zero fields and checks the rest, reporting every
// problem at once.
func (c Config) withDefaults() (Config, error) {
	c.Namespace = cmp.Or(c.Namespace, DefaultNamespace)
	c.App = cmp.Or(c.App, DefaultApp)
	c.Host = cmp.Or(c.Host, DefaultHost)
	c.Rate = cmp.Or(c.Rate, DefaultRate)
	c.ScrapeInterval = cmp.Or(c.ScrapeInterval, DefaultScrapeInterval)
	c.Users = cmp.Or(c.Users, DefaultUsers)
	if c.OptInCookie != "" && c.OptInShare == 0 {
		c.OptInShare = DefaultOptInShare
	}
	c.Topic = cmp.Or(c.Topic, DefaultTopic)
	c.Partitions = cmp.Or(c.Partitions, DefaultPartitions)
	c.ProduceRate = cmp.Or(c.ProduceRate, DefaultProduceRate)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}

	var errs []error
	for _, msg := range validation.IsDNS1123Label(c.Namespace) {
		errs = append(errs, fmt.Errorf("namespace %q: %s", c.Namespace, msg))
	}
	// <App>-primary and <App>-canary must be Service names.
	for _, msg := range validation.IsDNS1035Label(c.App + "-primary") {
		errs = append(errs, fmt.Errorf("app %q: %s", c.App, msg))
	}
	for _, msg := range validation.IsDNS1123Subdomain(c.Host) {
		errs = append(errs, fmt.Errorf("host %q: %s", c.Host, msg))
	}
	if c.Rate < 0 {
		errs = append(errs, fmt.Errorf("rate %v: must not be negative", c.Rate))
	}
	if c.ScrapeInterval < 0 {
		errs = append(errs, fmt.Errorf("scrape interval %s: must not be negative", c.ScrapeInterval))
	}
	if c.Users < 0 {
		errs = append(errs, fmt.Errorf("users %d: must not be negative", c.Users))
	}
	if c.Users > 900000 {
		errs = append(errs, fmt.Errorf("users %d: at most 900000 distinct six-digit IDs exist", c.Users))
	}
	if c.OptInShare < 0 || c.OptInShare > 1 {
		errs = append(errs, fmt.Errorf("opt-in share %v: must be between 0 and 1", c.OptInShare))
	}
	if c.Partitions < 0 {
		errs = append(errs, fmt.Errorf("partitions %d: must be positive", c.Partitions))
	}
	if c.ProduceRate < 0 {
		errs = append(errs, fmt.Errorf("produce rate %v: must not be negative", c.ProduceRate))
	}
	return c, errors.Join(errs...)
}

// Random streams of Config.Seed, one per component, so that e.g. a change
// in the load does not change the canary's error draws.
const (
	streamUsers = iota + 1
	streamEdge
	streamPrimary
	streamCanary
	streamKafka
)

// World is a whole canary rollout environment on 127.0.0.1. NewWorld
// builds it, with every address already known; Start sets it in motion;
// Close stops it. It is safe for concurrent use.
type World struct {
	cfg     Config
	logger  *slog.Logger
	primary *Service
	canary  *Service
	edge    *edge
	cluster *cluster
	engine  *embedded.Engine
	kafka   *kafkaWorld
	load    *loadGen
	scraper *scraper

	edgeSrv, promSrv   *server
	upstream, clientTr *http.Transport

	mu      sync.Mutex
	started bool
	// serving is set once the servers answer on their listeners, which
	// from then on belong to them.
	serving bool
	closed  bool
	stop    context.CancelFunc
	// wg counts the background work, servingWG the servers.
	wg, servingWG sync.WaitGroup

	closeOnce sync.Once
}

// NewWorld builds a World: the services, the edge and the Prometheus API
// listen (but do not answer until Start), the cluster holds the
// stable Ingress and the Kafka cluster runs. Close releases it, started or
// not.
func NewWorld(cfg Config) (_ *World, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("demo config: %w", err)
	}
	w := &World{cfg: cfg, logger: cfg.Logger}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()

	if w.primary, err = newService(cfg.Namespace, cfg.App, TrackPrimary, newRand(cfg.Seed, streamPrimary)); err != nil {
		return nil, fmt.Errorf("demo primary service: %w", err)
	}
	if w.canary, err = newService(cfg.Namespace, cfg.App, TrackCanary, newRand(cfg.Seed, streamCanary)); err != nil {
		return nil, fmt.Errorf("demo canary service: %w", err)
	}

	// The edge's connections to the services, and the load's to the edge,
	// in separate pools sized for the load: Go's default of two idle
	// connections per host would open and drop connections all the time.
	w.upstream = &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}
	w.clientTr = &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}

	w.edge = newEdge(newRand(cfg.Seed, streamEdge), w.upstream, w.primary, w.canary)
	if w.cluster, err = newCluster(cfg, w.edge.routing.Store); err != nil {
		return nil, fmt.Errorf("demo cluster: %w", err)
	}
	if w.edgeSrv, err = newServer(w.edge); err != nil {
		return nil, fmt.Errorf("demo edge: %w", err)
	}

	if w.engine, err = embedded.New(embedded.Options{Logger: cfg.Logger}); err != nil {
		return nil, fmt.Errorf("demo prometheus: %w", err)
	}
	if w.promSrv, err = newServer(w.engine.Handler()); err != nil {
		return nil, fmt.Errorf("demo prometheus: %w", err)
	}

	if w.kafka, err = newKafkaWorld(cfg, cfg.Logger); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}

	w.load = newLoadGen(cfg, w.Edge(), w.clientTr, newRand(cfg.Seed, streamUsers), cfg.Logger)
	w.scraper = &scraper{
		engine:   w.engine,
		client:   &http.Client{Transport: w.clientTr},
		interval: cfg.ScrapeInterval,
		logger:   cfg.Logger,
	}
	for _, s := range []*Service{w.primary, w.canary} {
		w.scraper.targets = append(w.scraper.targets, target{
			job:      s.Name(),
			instance: s.ln.Addr().String(),
			url:      s.URL() + "/metrics",
		})
	}
	return w, nil
}

// Start sets the world in motion: the servers answer, the load generator,
// the scraper, the producer and the consumers run. It returns once the
// Kafka producer is connected and both consumer groups exist (with offset
// 0 committed), so a lag query right after Start finds them. The
// background work stops when ctx ends or at Close; the servers answer
// until Close either way. Start may be called once.
func (w *World) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.closed:
		return errors.New("demo: start after close")
	case w.started:
		return errors.New("demo: already started")
	}
	w.started = true

	if err := w.kafka.connect(); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	consumers := map[*Service]*consumer{}
	for _, s := range []*Service{w.primary, w.canary} {
		c := w.kafka.newConsumer(s.Name())
		if err := w.kafka.commit(c); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		consumers[s] = c
	}

	ctx, w.stop = context.WithCancel(ctx)
	w.serving = true
	for name, srv := range w.servers() {
		// Servers are stopped by Close, not by ctx, and are waited
		// for there.
		w.servingWG.Go(func() {
			if err := srv.serve(); err != nil {
				w.logger.Error("demo server failed", "server", name, "err", err)
			}
		})
	}
	w.wg.Go(func() { w.load.run(ctx) })
	w.wg.Go(func() { w.scraper.run(ctx) })
	w.wg.Go(func() { w.kafka.produce(ctx, newRand(w.cfg.Seed, streamKafka)) })
	for s, c := range consumers {
		w.wg.Go(func() { w.kafka.consume(ctx, c, s.ConsumeRate) })
	}
	return nil
}

// servers are the world's HTTP servers by name, those built so far.
func (w *World) servers() map[string]*server {
	m := map[string]*server{}
	if w.primary != nil {
		m["primary service"] = w.primary.server
	}
	if w.canary != nil {
		m["canary service"] = w.canary.server
	}
	if w.edgeSrv != nil {
		m["edge"] = w.edgeSrv
	}
	if w.promSrv != nil {
		m["prometheus api"] = w.promSrv
	}
	return m
}

// Close stops the world and releases everything: the background work
// first (no new requests), then the servers (requests in flight may finish
// for up to two seconds), then the engine and the Kafka cluster. It may be
// called more than once, and on a World that never started.
func (w *World) Close() {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		serving := w.serving
		if w.stop != nil {
			w.stop()
		}
		w.mu.Unlock()

		// The background work first, so that no new requests start.
		w.wg.Wait()
		for _, tr := range []*http.Transport{w.clientTr, w.upstream} {
			if tr != nil {
				tr.CloseIdleConnections()
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		var down sync.WaitGroup
		for name, srv := range w.servers() {
			down.Go(func() {
				if err := srv.shutdown(ctx, serving); err != nil {
					w.logger.Warn("demo server shutdown", "server", name, "err", err)
				}
			})
		}
		down.Wait()
		w.servingWG.Wait()
		for _, tr := range []*http.Transport{w.clientTr, w.upstream} {
			if tr != nil {
				tr.CloseIdleConnections()
			}
		}
		if w.engine != nil {
			if err := w.engine.Close(); err != nil {
				w.logger.Warn("demo prometheus close", "err", err)
			}
		}
		if w.kafka != nil {
			w.kafka.close()
		}
	})
}

// Config is the world's configuration, with the defaults filled in.
func (w *World) Config() Config { return w.cfg }

// Primary is the baseline service: track "primary", Service <App>-primary.
func (w *World) Primary() *Service { return w.primary }

// Canary is the canary service: track "canary", Service <App>-canary.
func (w *World) Canary() *Service { return w.canary }

// Ingresses are the Ingresses of a namespace of the demo's Kubernetes, for
// the nginx router to write the canary Ingress with (see NginxConfig). The
// world's namespace holds the stable Ingress <App> (host Config.Host, path
// / to Service <App>-primary port 80). Every write to an Ingress of that
// namespace takes effect on the edge before the call returns.
func (w *World) Ingresses(namespace string) nginx.Ingresses { return w.cluster.ingresses(namespace) }

// Deployments are the Deployments of a namespace of the demo's
// Kubernetes, for the orchestrator's Deployment manager (rollout/deploy).
// The world's namespace holds the stable Deployment <App> (container
// DeploymentContainer, image DeploymentImage:v1, 3 replicas). A Deployment
// written is rolled out at once: the demo has no controller or kubelet, so
// its status says every replica runs the new generation, available.
func (w *World) Deployments(namespace string) Deployments {
	return w.cluster.deploymentsOf(namespace)
}

// NginxConfig is the nginx router configuration for this world's objects:
// stable Ingress <App>, Services <App>-primary and <App>-canary, and the
// canary Ingress the router creates, <App>-canary.
func (w *World) NginxConfig() nginx.Config {
	return nginx.Config{
		Namespace:     w.cfg.Namespace,
		StableIngress: w.cfg.App,
		StableService: w.primary.Name(),
		CanaryService: w.canary.Name(),
	}
}

// AnnotationHistory is every change of the annotations of the Ingresses
// other than the stable one (the canary Ingress), oldest first, starting
// with the state when the World was built. A deleted Ingress appears with
// nil Annotations.
func (w *World) AnnotationHistory() []AnnotationChange { return w.cluster.annotationHistory() }

// Edge is the URL of the edge proxy, http://127.0.0.1:<port>. It routes by
// path only: a request is for the stable Ingress's host whatever its Host
// header, so that a bare curl works.
func (w *World) Edge() string { return w.edgeSrv.url() }

// Prometheus is the URL of the embedded engine's Prometheus HTTP API
// (embedded.Engine.Handler), for queries/prometheus.New.
func (w *World) Prometheus() string { return w.promSrv.url() }

// Engine is the embedded PromQL engine the scraper fills, for callers that
// want to query in process rather than over HTTP.
func (w *World) Engine() *embedded.Engine { return w.engine }

// KafkaBrokers are the addresses of the Kafka cluster, for
// queries/kafka.New.
func (w *World) KafkaBrokers() []string { return w.kafka.brokers() }

// Scrapes is how many scrape rounds (every service once) have completed.
func (w *World) Scrapes() int64 { return w.scraper.rounds.Load() }

// SetRate changes the load in requests per second; 0 stops it.
func (w *World) SetRate(perSecond float64) { w.load.setRate(perSecond) }

// LoadStats counts the load generator's requests.
type LoadStats struct {
	// Sent requests, including those that failed.
	Sent int64
	// Failed requests: no answer (a connection error, a timeout), not an
	// HTTP error status.
	Failed int64
	// Skipped requests, not sent because too many were open.
	Skipped int64
}

// Load counts the requests the load generator has made so far.
func (w *World) Load() LoadStats {
	return LoadStats{Sent: w.load.sent.Load(), Failed: w.load.failed.Load(), Skipped: w.load.skipped.Load()}
}
