package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/queries/cache"
	"github.com/aurum/canary/rollout"
	"github.com/aurum/canary/rollout/deploy"
	"github.com/aurum/canary/rollout/notify"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs"
	"github.com/aurum/canary/runs/bolt"
	"github.com/aurum/canary/traffic"
	"github.com/aurum/canary/traffic/routers"
	"github.com/aurum/canary/webhooks"
	"github.com/aurum/canary/webhooks/ui"
)

// serveConfig is the configuration of `canary serve`. Every field has a
// flag and a CANARY_* variable; a file (--config) sets the rest, such as
// several Prometheus servers with their own auth and TLS.
type serveConfig struct {
	Listen   string   `yaml:"listen"`
	Policies []string `yaml:"policies"`
	DataDir  string   `yaml:"dataDir"`
	History  int      `yaml:"history"`
	// HistoryFlush bounds how long an analysis record waits to share a
	// commit: what a crash may lose of plain analysis records (never a
	// latch or a transition).
	HistoryFlush model.Duration `yaml:"historyFlush"`
	// RunRetention is how long an idle canary's runs are kept;
	// LatchedRunRetention the same for one holding a rollback latch.
	RunRetention        model.Duration `yaml:"runRetention"`
	LatchedRunRetention model.Duration `yaml:"latchedRunRetention"`
	// MaxRuns bounds the canaries kept.
	MaxRuns int `yaml:"maxRuns"`
	TLS     struct {
		CertFile string `yaml:"certFile"`
		KeyFile  string `yaml:"keyFile"`
	} `yaml:"tls"`
	BodyLimit       int64          `yaml:"bodyLimit"`
	ShutdownTimeout model.Duration `yaml:"shutdownTimeout"`
	ReloadInterval  model.Duration `yaml:"reloadInterval"`
	Log             struct {
		Level  string `yaml:"level"`
		Format string `yaml:"format"`
	} `yaml:"log"`
	Evaluation struct {
		Timeout     model.Duration `yaml:"timeout"`
		Concurrency int            `yaml:"concurrency"`
	} `yaml:"evaluation"`
	Flagger struct {
		InconclusiveFails bool `yaml:"inconclusiveFails"`
	} `yaml:"flagger"`
	// Auth holds each route group's token files and whether groups may
	// be left open.
	Auth authConfig `yaml:"auth"`
	// Kubeconfig gives the kill switch its Kubernetes access; empty means
	// in-cluster, then $KUBECONFIG or ~/.kube/config.
	Kubeconfig string `yaml:"kubeconfig"`
	// Notifications are the routes canary's own notifications take:
	// Alertmanager, Slack, Teams, signed webhooks.
	Notifications notify.Config `yaml:"notifications"`
	// Web is the web UI served at /ui.
	Web           webConfig `yaml:"web"`
	sourcesConfig `yaml:",inline"`
}

// webConfig shapes the web UI.
type webConfig struct {
	// Prefix is the path the UI is reached under behind a proxy, such as
	// an Ingress path (/canary); empty for none.
	Prefix string `yaml:"prefix"`
	// MaxStreamClients bounds the pages following the live stream.
	MaxStreamClients int `yaml:"maxStreamClients"`
}

// authConfig maps a route group (analysis, flagger, alertmanager, admin)
// to files of accepted bearer tokens. AllowOpen lets canary serve start
// with the alertmanager or admin group open, which it otherwise refuses.
type authConfig struct {
	AllowOpen bool
	Groups    map[string]groupAuth
}

type groupAuth struct {
	TokenFiles []string `yaml:"tokenFiles"`
}

// UnmarshalYAML reads `auth: {allowOpen: true, admin: {tokenFiles: [...]}, ...}`.
func (a *authConfig) UnmarshalYAML(n *yaml.Node) error {
	var raw map[string]yaml.Node
	if err := n.Decode(&raw); err != nil {
		return err
	}
	for k, v := range raw {
		if k == "allowOpen" {
			if err := v.Decode(&a.AllowOpen); err != nil {
				return fmt.Errorf("auth.allowOpen: %w", err)
			}
			continue
		}
		if !slices.Contains(webhooks.Groups, k) {
			return fmt.Errorf("line %d: auth: unknown route group %q (known: allowOpen, %s)", v.Line, k, strings.Join(webhooks.Groups, ", "))
		}
		var g groupAuth
		dec := v
		if err := decodeStrictNode(&dec, &g); err != nil {
			return fmt.Errorf("auth.%s: %w", k, err)
		}
		if a.Groups == nil {
			a.Groups = map[string]groupAuth{}
		}
		a.Groups[k] = g
	}
	return nil
}

// decodeStrictNode decodes a node, refusing unknown fields.
func decodeStrictNode(n *yaml.Node, v any) error {
	data, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	return dec.Decode(v)
}

func defaultServeConfig() serveConfig {
	var c serveConfig
	c.Listen = ":8080"
	c.Policies = []string{defaultPolicies}
	c.DataDir = "data"
	c.History = runs.DefaultHistory
	c.HistoryFlush = model.Duration(bolt.DefaultFlushInterval)
	c.RunRetention = model.Duration(runs.DefaultRetention)
	c.LatchedRunRetention = model.Duration(runs.DefaultLatchedRetention)
	c.MaxRuns = runs.DefaultMaxCanaries
	c.BodyLimit = webhooks.DefaultBodyLimit
	c.ShutdownTimeout = model.Duration(25 * time.Second)
	c.ReloadInterval = model.Duration(5 * time.Second)
	c.Log.Level, c.Log.Format = "info", "logfmt"
	c.Evaluation.Timeout = model.Duration(analysis.DefaultTimeout)
	c.Evaluation.Concurrency = analysis.DefaultConcurrency
	c.Cache.TTL = model.Duration(cache.DefaultTTL)
	c.Web.MaxStreamClients = ui.DefaultMaxClients
	return c
}

// serveFlags are the flags of `canary serve`, each also read from the
// environment as CANARY_<NAME> (dashes as underscores) when not given.
type serveFlags struct {
	fs          *pflag.FlagSet
	configFile  string
	listen      string
	policies    multiFlag
	dataDir     string
	prometheus  string
	kafka       string
	pgDSNFile   string
	kubeconfig  string
	logLevel    string
	logFormat   string
	history     int
	flush       time.Duration
	retention   time.Duration
	allowOpen   bool
	tlsCert     string
	tlsKey      string
	cacheTTL    time.Duration
	evalTimeout time.Duration
	shutdown    time.Duration
	reload      time.Duration
	bodyLimit   int64
	inconclFail bool
	webPrefix   string
	webClients  int
	tokenFiles  map[string]*multiFlag
}

func newServeFlags(c *cli) *serveFlags {
	d := defaultServeConfig()
	f := &serveFlags{fs: pflag.NewFlagSet("serve", pflag.ContinueOnError), tokenFiles: map[string]*multiFlag{}}
	fs := f.fs
	fs.SetOutput(c.stderr)
	fs.StringVar(&f.configFile, "config", "", "configuration file (YAML); flags and CANARY_* variables override it")
	fs.StringVar(&f.listen, "listen", d.Listen, "address to listen on")
	fs.Var(&f.policies, "policies", "policy file or directory, e.g. a Git checkout (repeatable; default "+defaultPolicies+")")
	fs.StringVar(&f.dataDir, "data-dir", d.DataDir, "directory of the embedded run store")
	fs.StringVar(&f.prometheus, "prometheus", "", "URL of the default Prometheus server")
	fs.StringVar(&f.kafka, "kafka-brokers", "", "brokers of the default Kafka cluster, comma-separated (host:port,...)")
	fs.StringVar(&f.pgDSNFile, "postgres-dsn-file", "", "file holding the DSN of the default PostgreSQL database (or set CANARY_POSTGRES_DSN)")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig for the kill switch (default: in-cluster, $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&f.logLevel, "log-level", d.Log.Level, "log level: debug, info, warn, error")
	fs.StringVar(&f.logFormat, "log-format", d.Log.Format, "log format: logfmt or json")
	fs.IntVar(&f.history, "history", d.History, "evaluations kept per run")
	fs.DurationVar(&f.flush, "history-flush", time.Duration(d.HistoryFlush), "how long an analysis record may wait to share a commit (a crash may lose this much of them; latches are always synced first)")
	fs.DurationVar(&f.retention, "run-retention", time.Duration(d.RunRetention), "how long an idle canary's runs and history are kept (one with a rollback latch: until it is lifted, at most latchedRunRetention)")
	fs.BoolVar(&f.allowOpen, "allow-open-routes", false, "start even when the alertmanager or admin routes have no token (they are then open to anyone who reaches the service)")
	fs.StringVar(&f.tlsCert, "tls-cert-file", "", "serve HTTPS with this certificate (PEM); reloaded when it changes")
	fs.StringVar(&f.tlsKey, "tls-key-file", "", "the certificate's private key (PEM)")
	fs.DurationVar(&f.cacheTTL, "cache-ttl", time.Duration(d.Cache.TTL), "how long query results are reused (0 disables)")
	fs.DurationVar(&f.evalTimeout, "evaluation-timeout", time.Duration(d.Evaluation.Timeout), "deadline of one analysis, all queries included")
	fs.DurationVar(&f.shutdown, "shutdown-timeout", time.Duration(d.ShutdownTimeout), "how long in-flight requests may finish on shutdown")
	fs.DurationVar(&f.reload, "reload-interval", time.Duration(d.ReloadInterval), "how often policy files are checked for changes")
	fs.Int64Var(&f.bodyLimit, "body-limit", d.BodyLimit, "largest accepted request body in bytes")
	fs.BoolVar(&f.inconclFail, "flagger-inconclusive-fails", false, "answer Flagger checks that are inconclusive with a failure (default: pass and log)")
	fs.StringVar(&f.webPrefix, "web-prefix", d.Web.Prefix, "path the web UI is reached under behind a proxy, e.g. /canary for an Ingress path")
	fs.IntVar(&f.webClients, "web-max-stream-clients", d.Web.MaxStreamClients, "web UI pages that may follow the live event stream at once")
	for _, g := range webhooks.Groups {
		m := &multiFlag{}
		f.tokenFiles[g] = m
		fs.Var(m, "auth-"+g+"-token-file", "file of bearer tokens (one per line) required on the "+g+" routes (repeatable)")
	}
	return f
}

// parse reads flags, then CANARY_* variables for flags not given, then the
// config file, and applies what was given over the file.
func (f *serveFlags) parse(args []string) (serveConfig, error) {
	if err := f.fs.Parse(args); err != nil {
		return serveConfig{}, err
	}
	if f.fs.NArg() > 0 {
		return serveConfig{}, fmt.Errorf("unexpected arguments: %s", strings.Join(f.fs.Args(), " "))
	}
	return f.config()
}

// config is the configuration once the flags are parsed: the flags given,
// then CANARY_* variables for flags not given, then the config file, then
// the defaults.
func (f *serveFlags) config() (serveConfig, error) {
	given := map[string]bool{}
	// Changed, not Visit: cobra parses the command's flag set, which
	// holds these same flags.
	f.fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Changed {
			given[fl.Name] = true
		}
	})
	var envErr error
	f.fs.VisitAll(func(fl *pflag.Flag) {
		if given[fl.Name] {
			return
		}
		env := "CANARY_" + strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_"))
		v, ok := os.LookupEnv(env)
		if !ok {
			return
		}
		for _, part := range splitList(fl, v) {
			if err := f.fs.Set(fl.Name, part); err != nil {
				envErr = errors.Join(envErr, fmt.Errorf("%s: %w", env, err))
			}
		}
		given[fl.Name] = true
	})
	if envErr != nil {
		return serveConfig{}, envErr
	}

	cfg := defaultServeConfig()
	if f.configFile != "" {
		if err := loadServeConfig(f.configFile, &cfg); err != nil {
			return serveConfig{}, err
		}
	}
	for name := range given {
		switch name {
		case "listen":
			cfg.Listen = f.listen
		case "policies":
			cfg.Policies = f.policies
		case "data-dir":
			cfg.DataDir = f.dataDir
		case "prometheus":
			cfg.Prometheus = setDefaultPrometheus(cfg.Prometheus, f.prometheus)
		case "kafka-brokers":
			cfg.Kafka = defaultKafka(cfg.Kafka, f.kafka)
		case "postgres-dsn-file":
			cfg.Postgres = defaultPostgres(cfg.Postgres, f.pgDSNFile)
		case "kubeconfig":
			cfg.Kubeconfig = f.kubeconfig
		case "log-level":
			cfg.Log.Level = f.logLevel
		case "log-format":
			cfg.Log.Format = f.logFormat
		case "history":
			cfg.History = f.history
		case "history-flush":
			cfg.HistoryFlush = model.Duration(f.flush)
		case "run-retention":
			cfg.RunRetention = model.Duration(f.retention)
		case "allow-open-routes":
			cfg.Auth.AllowOpen = f.allowOpen
		case "tls-cert-file":
			cfg.TLS.CertFile = f.tlsCert
		case "tls-key-file":
			cfg.TLS.KeyFile = f.tlsKey
		case "cache-ttl":
			cfg.Cache.TTL = model.Duration(f.cacheTTL)
		case "evaluation-timeout":
			cfg.Evaluation.Timeout = model.Duration(f.evalTimeout)
		case "shutdown-timeout":
			cfg.ShutdownTimeout = model.Duration(f.shutdown)
		case "reload-interval":
			cfg.ReloadInterval = model.Duration(f.reload)
		case "body-limit":
			cfg.BodyLimit = f.bodyLimit
		case "flagger-inconclusive-fails":
			cfg.Flagger.InconclusiveFails = f.inconclFail
		case "web-prefix":
			cfg.Web.Prefix = f.webPrefix
		case "web-max-stream-clients":
			cfg.Web.MaxStreamClients = f.webClients
		}
		if g, ok := strings.CutPrefix(name, "auth-"); ok {
			g = strings.TrimSuffix(g, "-token-file")
			if cfg.Auth.Groups == nil {
				cfg.Auth.Groups = map[string]groupAuth{}
			}
			cfg.Auth.Groups[g] = groupAuth{TokenFiles: *f.tokenFiles[g]}
		}
	}
	if len(cfg.Prometheus) == 0 {
		// Where a Prometheus is usually found next to a first try.
		cfg.Prometheus = setDefaultPrometheus(nil, "http://127.0.0.1:9090")
	}
	cfg.Postgres = postgresFromEnv(cfg.Postgres)
	return cfg, nil
}

// splitList splits a repeatable flag's environment value on commas.
func splitList(fl *pflag.Flag, v string) []string {
	if _, ok := fl.Value.(*multiFlag); ok {
		return strings.Split(v, ",")
	}
	return []string{v}
}

func setDefaultPrometheus(ps []prometheusConfig, url string) []prometheusConfig {
	for i := range ps {
		if ps[i].Name == "" {
			ps[i].URL = url
			return ps
		}
	}
	return append(ps, prometheusConfig{URL: url, HTTPClient: config.DefaultHTTPClientConfig})
}

// loadServeConfig decodes the file strictly over the defaults. Relative
// paths in it (policies, data dir, token and TLS files) are relative to the
// file's directory, as in Prometheus's own configuration.
func loadServeConfig(path string, cfg *serveConfig) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	for i := range cfg.Prometheus {
		cfg.Prometheus[i].HTTPClient = config.DefaultHTTPClientConfig
	}
	// An empty file means "all defaults".
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %w", path, err)
	}
	dir := filepath.Dir(path)
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	for i, p := range cfg.Policies {
		cfg.Policies[i] = rel(p)
	}
	cfg.DataDir = rel(cfg.DataDir)
	cfg.Kubeconfig = rel(cfg.Kubeconfig)
	for g, a := range cfg.Auth.Groups {
		for i, f := range a.TokenFiles {
			a.TokenFiles[i] = rel(f)
		}
		cfg.Auth.Groups[g] = a
	}
	cfg.TLS.CertFile, cfg.TLS.KeyFile = rel(cfg.TLS.CertFile), rel(cfg.TLS.KeyFile)
	for i := range cfg.Prometheus {
		cfg.Prometheus[i].HTTPClient.SetDirectory(dir)
		if err := cfg.Prometheus[i].HTTPClient.Validate(); err != nil {
			return fmt.Errorf("%s: prometheus %q: %w", path, cfg.Prometheus[i].Name, err)
		}
	}
	for i := range cfg.Kafka {
		k := &cfg.Kafka[i]
		k.SASL.PasswordFile = rel(k.SASL.PasswordFile)
		if k.TLS != nil {
			k.TLS.SetDirectory(dir)
		}
	}
	for i := range cfg.Postgres {
		cfg.Postgres[i].DSNFile = rel(cfg.Postgres[i].DSNFile)
	}
	cfg.Notifications.SetDirectory(dir)
	return nil
}

func (c *cli) newServeCmd() *cobra.Command {
	f := newServeFlags(c)
	cmd := &cobra.Command{
		Use:   "serve [flags]",
		Short: "run the webhook service for Argo Rollouts, Flagger and Alertmanager",
		Long: `Run the webhook service for Argo Rollouts, Flagger and Alertmanager, the runs
and rollouts API, the web UI and /metrics.

Every flag is also read from the environment as CANARY_<NAME> (dashes as
underscores; repeatable flags comma-separated) when it is not given, and a
config file (--config) sets the rest: flags over CANARY_* variables over the
file over the defaults. The exit code is 0 after a clean shutdown.`,
		Example: `  canary serve --policies policies/ --prometheus http://prometheus:9090 --auth-admin-token-file /run/secrets/admin
  CANARY_CONFIG=/etc/canary/canary.yml canary serve`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config()
			if err != nil {
				return exit(c.errorf(cmd, "%v", err))
			}
			logger, err := newLogger(c, cfg)
			if err != nil {
				return exit(c.errorf(cmd, "%v", err))
			}
			if err := serve(c.ctx, cfg, logger, nil); err != nil {
				logger.Error("canary serve stopped", "err", err)
				return exitCode(exitError)
			}
			return nil
		},
	}
	cmd.Flags().AddFlagSet(f.fs)
	_ = cmd.MarkFlagFilename("config", "yaml", "yml")
	_ = cmd.MarkFlagDirname("policies")
	_ = cmd.MarkFlagDirname("data-dir")
	_ = cmd.RegisterFlagCompletionFunc("log-level", cobra.FixedCompletions([]string{"debug", "info", "warn", "error"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("log-format", cobra.FixedCompletions([]string{"logfmt", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func newLogger(c *cli, cfg serveConfig) (*slog.Logger, error) {
	lc := &promslog.Config{Level: promslog.NewLevel(), Format: promslog.NewFormat(), Writer: c.stderr}
	if err := lc.Level.Set(cfg.Log.Level); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	if err := lc.Format.Set(cfg.Log.Format); err != nil {
		return nil, fmt.Errorf("log format: %w", err)
	}
	return promslog.New(lc), nil
}

// serve runs the webhook service until ctx is done or SIGTERM/SIGINT
// arrives. ready, when not nil, receives the listening address.
func serve(ctx context.Context, cfg serveConfig, logger *slog.Logger, ready chan<- string) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	svc, err := newService(ctx, cfg, logger, serviceOptions{})
	if err != nil {
		return err
	}
	defer svc.close()
	return svc.run(ctx, ready)
}

// serviceOptions inject what the demo provides instead of a cluster.
type serviceOptions struct {
	// Clients, when set, are the Kubernetes clients of the kill switch and
	// the orchestrator, instead of a kubeconfig's.
	Clients *kubeClients
	// OnEvent is the orchestrator's event callback.
	OnEvent func(*rollout.Rollout, rollout.Event)
	// Notifiers are routes of the program's own, beside the configured
	// ones.
	Notifiers []*notify.Route
}

// service is canary serve's components, wired.
type service struct {
	cfg          serveConfig
	logger       *slog.Logger
	loader       *rules.Loader
	store        *bolt.Bolt
	closeSources func()
	traffic      *rollout.Traffic
	orchestrator *rollout.Orchestrator
	server       *webhooks.Server
	runs         *runs.Runs
	auth         webhooks.Auth
	outbox       *notify.Outbox
	hub          *notify.Hub
	stream       *ui.Stream
}

// errOpenRoutes refuses a start with routes that would be open to anyone.
var errOpenRoutes = errors.New("refusing to start with open routes")

// checkAuth refuses to serve the alertmanager and admin routes without a
// token unless the configuration allows it, and warns of every open group:
// anyone who can reach an open alertmanager route can latch a rollback and
// cut traffic, and an open admin route can lift one.
func checkAuth(auth webhooks.Auth, allowOpen bool, logger *slog.Logger) error {
	open := auth.Open()
	var refused []string
	for _, g := range open {
		if slices.Contains(webhooks.Guarded, g) && !allowOpen {
			refused = append(refused, g)
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("%w: the %s routes have no token: give --auth-%s-token-file (auth.%s.tokenFiles), or --allow-open-routes (auth.allowOpen: true) to serve them to anyone who can reach this service",
			errOpenRoutes, strings.Join(refused, " and "), refused[0], refused[0])
	}
	for _, g := range open {
		logger.Warn("route group is open: any caller that reaches the service may use it", "group", g)
	}
	return nil
}

func newService(ctx context.Context, cfg serveConfig, logger *slog.Logger, opts serviceOptions) (_ *service, err error) {
	svc := &service{cfg: cfg, logger: logger}
	defer func() {
		if err != nil {
			svc.close() // what was opened before the error
		}
	}()
	tokenFiles := map[string][]string{}
	for g, a := range cfg.Auth.Groups {
		if len(a.TokenFiles) > 0 {
			tokenFiles[g] = a.TokenFiles
		}
	}
	if svc.auth, err = webhooks.LoadAuth(tokenFiles); err != nil {
		return nil, err
	}
	if err := checkAuth(svc.auth, cfg.Auth.AllowOpen, logger); err != nil {
		return nil, err
	}
	if err := ui.CheckPrefix(cfg.Web.Prefix); err != nil {
		return nil, err
	}

	// A policy that names a source this server lacks does not load: its
	// rules would only ever be errors.
	svc.loader = rules.NewLoaderWith(rules.Options{Sources: cfg.sourceNames()}, cfg.Policies...)
	if err := svc.loader.Reload(); err != nil {
		// Start anyway, not ready: the watcher picks up a fix, and the
		// errors are at /v1/policies.
		if errors.Is(err, rules.ErrNoPolicies) {
			logger.Error("no policies: not ready until a policy file appears under the policy paths", "paths", strings.Join(cfg.Policies, ","))
		} else {
			logger.Error("policies do not load; not ready until they do", "paths", strings.Join(cfg.Policies, ","), "err", err)
		}
	}

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	flush := time.Duration(cfg.HistoryFlush)
	if flush == 0 {
		flush = -1 // bolt reads 0 as "default"; ours means at once
	}
	if svc.store, err = bolt.Open(filepath.Join(cfg.DataDir, "canary.db"), bolt.Options{Logger: logger, FlushInterval: flush}); err != nil {
		return nil, err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := webhooks.NewMetrics(reg)
	runMetrics := runs.NewMetrics(reg)

	sources, closeSources, err := buildSources(cfg.sourcesConfig, logger, metrics.InstrumentSource)
	if err != nil {
		return nil, err
	}
	svc.closeSources = closeSources
	ev := analysis.NewEvaluator(analysis.Options{
		Sources: sources, Timeout: time.Duration(cfg.Evaluation.Timeout),
		Concurrency: cfg.Evaluation.Concurrency, Logger: logger,
	})
	if svc.runs, err = runs.New(ctx, runs.Options{Store: svc.store, History: cfg.History, Logger: logger, Metrics: runMetrics,
		Retention: time.Duration(cfg.RunRetention), LatchedRetention: time.Duration(cfg.LatchedRunRetention), MaxCanaries: cfg.MaxRuns}); err != nil {
		return nil, err
	}
	// Notifications subscribe to the runs before anything can change one.
	routes, err := notify.Build(cfg.Notifications, logger)
	if err != nil {
		return nil, err
	}
	if svc.outbox, err = notify.NewOutbox(ctx, notify.OutboxOptions{Store: svc.store, Routes: append(routes, opts.Notifiers...),
		Registerer: reg, Panicked: runMetrics.Panicked, Logger: logger}); err != nil {
		return nil, err
	}
	svc.hub = notify.NewHub(notify.HubOptions{Policies: svc.loader.Set, Sink: svc.outbox, Link: cfg.Notifications.Link,
		Panicked: runMetrics.Panicked, Logger: logger})
	svc.runs.Subscribe(svc.hub)
	// The web UI's live stream follows the same events, as a subscriber:
	// whatever changed a run, the open pages hear of it.
	svc.stream = ui.NewStream(ui.StreamOptions{MaxClients: cfg.Web.MaxStreamClients, Registerer: reg,
		Panicked: runMetrics.Panicked, Logger: logger})
	svc.runs.Subscribe(svc.stream)
	onEvent := func(r *rollout.Rollout, e rollout.Event) {
		svc.hub.Rollout(r, e)
		svc.stream.Rollout(r, e)
		if opts.OnEvent != nil {
			opts.OnEvent(r, e)
		}
	}

	clients := opts.Clients
	if clients == nil {
		clients = kubeAccess(cfg, svc.loader, logger)
	}
	if clients != nil {
		svc.traffic = rollout.NewTraffic(rollout.TrafficOptions{
			Store: svc.store, Registerer: reg, Panicked: runMetrics.Panicked, Logger: logger, OnDone: svc.hub.StepDownDone,
			Routers: func(t routers.Target) (traffic.Router, error) { return routers.New(t, clients.Clients, logger) },
		})
		svc.runs.Subscribe(rollout.NewKillSwitch(svc.traffic, svc.loader.Set, logger))
		// A nil *deploy.Kube in the interface would not read as "none".
		var deployments rollout.Deployments
		if clients.Deployments != nil {
			deployments = deploy.New(clients.Deployments, clients.Dynamic)
		}
		svc.orchestrator = rollout.New(rollout.Options{
			Store: svc.store, Runs: svc.runs, Evaluator: ev, Traffic: svc.traffic, Policies: svc.loader.Set,
			Deployments: deployments,
			Logger:      logger, OnEvent: onEvent, Panicked: runMetrics.Panicked, Retention: time.Duration(cfg.RunRetention),
		})
	}
	gin.SetMode(gin.ReleaseMode)
	svc.server, err = webhooks.New(webhooks.Options{
		Policies: svc.loader, Evaluator: ev, Runs: svc.runs, Metrics: metrics, Gatherer: reg,
		Logger: logger, Auth: svc.auth, BodyLimit: cfg.BodyLimit, Panicked: runMetrics.Panicked,
		FlaggerInconclusiveFails: cfg.Flagger.InconclusiveFails,
		Rollouts:                 svc.orchestrator,
		Notifications:            svc.outbox,
		UI:                       &webhooks.UIOptions{Prefix: cfg.Web.Prefix, Stream: svc.stream, Prometheus: cfg.prometheusLink()},
	})
	if err != nil {
		return nil, err
	}
	return svc, nil
}

func (svc *service) close() {
	if svc.closeSources != nil {
		svc.closeSources()
	}
	if svc.store != nil {
		svc.store.Close()
	}
}

// run serves HTTP (HTTPS with a certificate), runs the orchestrator, the
// step-down engine and retention, and reloads policies until ctx is done,
// then drains.
func (svc *service) run(ctx context.Context, ready chan<- string) error {
	cfg, logger, srv := svc.cfg, svc.logger, svc.server
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler: srv,
		// Bounded so a slow client cannot hold a connection forever; the
		// write timeout leaves room for the evaluation deadline.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      time.Duration(cfg.Evaluation.Timeout) + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if cfg.TLS.CertFile != "" || cfg.TLS.KeyFile != "" {
		certs, err := newCertReloader(cfg.TLS.CertFile, cfg.TLS.KeyFile, logger)
		if err != nil {
			ln.Close()
			return err
		}
		hs.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.get}
		ln = tls.NewListener(ln, hs.TLSConfig)
		scheme = "https"
	}
	// Open live streams would hold a shutdown until its timeout.
	hs.RegisterOnShutdown(svc.stream.Close)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	logger.Info("canary serving", "address", ln.Addr().String(), "scheme", scheme, "policies", strings.Join(cfg.Policies, ","),
		"data_dir", cfg.DataDir, "version", buildVersion(), "open_routes", strings.Join(svc.auth.Open(), ","))
	if ready != nil {
		ready <- ln.Addr().String()
	}

	bg, stopBackground := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopBackground()
	wg.Go(func() { svc.loader.Watch(bg, time.Duration(cfg.ReloadInterval), srv.OnReload) })
	// What a crash lost between a latch and its notification's write is
	// queued again (the outbox sends each notification once), and alerts
	// whose condition ended meanwhile are resolved.
	var rollouts []*rollout.Rollout
	if svc.orchestrator != nil {
		var err error
		if rollouts, _, err = svc.orchestrator.List(ctx); err != nil {
			rollouts = nil
			logger.Error("rollouts not read for notifications; their alerts are left as they are", "err", err)
		}
	}
	svc.hub.Reconcile(svc.runs, rollouts, time.Now())
	wg.Go(func() { svc.outbox.Run(bg) })
	// Retention looks a few times per retention period, and at least
	// hourly.
	wg.Go(func() {
		svc.runs.Janitor(bg, max(min(time.Duration(cfg.RunRetention)/4, time.Hour), 100*time.Millisecond))
	})
	if svc.traffic != nil {
		wg.Go(func() { svc.traffic.Run(bg, time.Duration(cfg.RunRetention)) })
	}
	if svc.orchestrator != nil {
		wg.Go(func() {
			if err := svc.orchestrator.Run(bg); err != nil {
				logger.Error("orchestrator stopped", "err", err)
			}
		})
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	for {
		select {
		case <-hup:
			logger.Info("SIGHUP: reloading policies")
			_ = srv.Reload()
		case err := <-served:
			return fmt.Errorf("http server: %w", err)
		case <-ctx.Done():
			logger.Info("shutting down", "timeout", time.Duration(cfg.ShutdownTimeout).String())
			srv.Drain()
			sctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownTimeout))
			defer cancel()
			if err := hs.Shutdown(sctx); err != nil {
				return fmt.Errorf("shutdown: %w", err)
			}
			return nil
		}
	}
}

// kubeAccess connects the kill switch and the orchestrator to Kubernetes,
// with a dynamic client for the Deployment manager's look-up of Argo
// Rollouts and Flagger objects. Without access both are off: analyses and
// latches work all the same, only traffic is not moved, which is logged
// loudly when a policy asks for it.
func kubeAccess(cfg serveConfig, loader *rules.Loader, logger *slog.Logger) *kubeClients {
	wanted := false
	if set := loader.Set(); set != nil {
		for _, p := range set.Policies {
			wanted = wanted || p.Traffic != nil
		}
	}
	kc, err := kubeConfig(cfg.Kubeconfig)
	if err == nil {
		var clients *kubeClients
		if clients, err = newKubeClients(kc); err == nil {
			logger.Info("kill switch on", "kubernetes", kc.Host)
			return clients
		}
	}
	if wanted || cfg.Kubeconfig != "" {
		logger.Warn("kill switch and orchestrator off: no Kubernetes access", "err", err)
	}
	return nil
}

// prometheusLink gives the URL of a configured Prometheus by its name, for
// the web UI's links to a rendered query.
func (c serveConfig) prometheusLink() ui.PrometheusLink {
	urls := map[string]string{}
	for _, p := range c.Prometheus {
		urls[p.Name] = p.URL
	}
	return func(source string) string { return urls[source] }
}
