package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"

	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/queries/cache"
	httpprobe "github.com/aurum/canary/queries/http"
	"github.com/aurum/canary/queries/kafka"
	"github.com/aurum/canary/queries/postgres"
	promsource "github.com/aurum/canary/queries/prometheus"
	tcpprobe "github.com/aurum/canary/queries/tcp"
	"github.com/aurum/canary/rules"
)

// sourcesConfig names the data sources policies may query. Credentials come
// from files or the environment, never from a policy or a request.
type sourcesConfig struct {
	Prometheus []prometheusConfig `yaml:"prometheus"`
	// Kafka clusters, by the name policies give as kafka.cluster.
	Kafka []kafkaConfig `yaml:"kafka"`
	// Postgres databases, by the name policies give as
	// postgres.database.
	Postgres []postgresConfig `yaml:"postgres"`
	Probes   struct {
		HTTP struct {
			Timeout model.Duration `yaml:"timeout"`
		} `yaml:"http"`
		TCP struct {
			Timeout model.Duration `yaml:"timeout"`
		} `yaml:"tcp"`
		// Allow restricts every policy's HTTP and TCP probes to these
		// hosts and Kubernetes namespaces; a policy's own probes section
		// can only narrow it.
		Allow queries.Allowlist `yaml:"allow"`
	} `yaml:"probes"`
	Cache struct {
		// TTL of cached query results; 0 turns caching off (identical
		// queries in flight are still shared).
		TTL model.Duration `yaml:"ttl"`
	} `yaml:"cache"`
}

type prometheusConfig struct {
	// Name is what policies write as `source:`; empty is the default.
	Name    string         `yaml:"name"`
	URL     string         `yaml:"url"`
	Timeout model.Duration `yaml:"timeout"`
	Retries int            `yaml:"retries"`
	// MaxBytes caps an answer; a larger one is a query error.
	MaxBytes   int64                   `yaml:"maxBytes"`
	HTTPClient config.HTTPClientConfig `yaml:"http"`
}

type kafkaConfig struct {
	Name                string `yaml:"name"`
	kafka.ClusterConfig `yaml:",inline"`
}

type postgresConfig struct {
	Name            string `yaml:"name"`
	postgres.Config `yaml:",inline"`
}

// sourceNames lists the configured sources by query kind, for the
// policies' source names to be checked at load. The probes' default
// sources always exist; a Prometheus is always configured (serve adds the
// local one when none is given).
func (c sourcesConfig) sourceNames() rules.Sources {
	s := rules.Sources{}
	for _, p := range c.Prometheus {
		s[rules.KindPrometheus] = append(s[rules.KindPrometheus], p.Name)
	}
	for _, k := range c.Kafka {
		s[rules.KindKafka] = append(s[rules.KindKafka], k.Name)
	}
	for _, p := range c.Postgres {
		s[rules.KindPostgres] = append(s[rules.KindPostgres], p.Name)
	}
	if len(s[rules.KindPrometheus]) == 0 {
		s[rules.KindPrometheus] = []string{""}
	}
	return s
}

// postgresDSNEnv is where a database's DSN may come from instead of the
// config file: CANARY_POSTGRES_DSN for the default database,
// CANARY_POSTGRES_<NAME>_DSN for a named one.
func postgresDSNEnv(name string) string {
	if name == "" {
		return "CANARY_POSTGRES_DSN"
	}
	return "CANARY_POSTGRES_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name)) + "_DSN"
}

// instrumenter wraps a source for metrics; nil leaves it as it is.
type instrumenter func(kind, name string, src queries.Source) queries.Source

// buildSources builds every configured source. Each is wrapped for metrics
// (when instrument is set) and then in the cache, so that a cache hit is
// not counted as a query. close releases the sources' connections.
func buildSources(cfg sourcesConfig, logger *slog.Logger, instrument instrumenter) (_ queries.Registry, _ func(), err error) {
	reg := queries.Registry{}
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	// A source that fails to build releases the ones built before it.
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	ttl := time.Duration(cfg.Cache.TTL)
	if ttl == 0 {
		ttl = -1 // cache.Options reads 0 as "default"; ours means off
	}
	add := func(kind, name string, src queries.Source) {
		if instrument != nil {
			src = instrument(kind, name, src)
		}
		reg[queries.Key{Kind: kind, Name: name}] = cache.New(src, cache.Options{TTL: ttl})
	}
	for _, pc := range cfg.Prometheus {
		ps, err := promsource.New(promsource.Config{
			URL: pc.URL, HTTPClient: pc.HTTPClient, Timeout: time.Duration(pc.Timeout), Retries: pc.Retries, MaxBytes: pc.MaxBytes,
		}, logger.With("source", "prometheus/"+pc.Name))
		if err != nil {
			return nil, nil, fmt.Errorf("prometheus %q: %w", pc.Name, err)
		}
		add(rules.KindPrometheus, pc.Name, ps)
	}
	for _, kc := range cfg.Kafka {
		ks, err := kafka.New(kc.ClusterConfig, logger.With("source", "kafka/"+kc.Name))
		if err != nil {
			return nil, nil, fmt.Errorf("kafka cluster %q: %w", kc.Name, err)
		}
		closers = append(closers, func() { _ = ks.Close() })
		add(rules.KindKafka, kc.Name, ks)
	}
	for _, pc := range cfg.Postgres {
		if pc.DSN == "" && pc.DSNFile == "" {
			pc.DSN = os.Getenv(postgresDSNEnv(pc.Name))
		}
		if pc.DSN == "" && pc.DSNFile == "" {
			return nil, nil, fmt.Errorf("postgres database %q: no dsn, dsnFile or %s", pc.Name, postgresDSNEnv(pc.Name))
		}
		ps, err := postgres.New(pc.Config, logger.With("source", "postgres/"+pc.Name))
		if err != nil {
			return nil, nil, fmt.Errorf("postgres database %q: %w", pc.Name, err)
		}
		closers = append(closers, ps.Close)
		add(rules.KindPostgres, pc.Name, ps)
	}
	// Probes need no configuration: their targets are in the policies.
	if err := cfg.Probes.Allow.Validate(); err != nil {
		return nil, nil, fmt.Errorf("probes.allow: %w", err)
	}
	add(rules.KindHTTP, "", httpprobe.New(httpprobe.Config{Timeout: time.Duration(cfg.Probes.HTTP.Timeout), Allow: cfg.Probes.Allow}))
	add(rules.KindTCP, "", tcpprobe.New(tcpprobe.Config{Timeout: time.Duration(cfg.Probes.TCP.Timeout), Allow: cfg.Probes.Allow}))
	return reg, closeAll, nil
}

// defaultKafka sets the brokers of the default Kafka cluster.
func defaultKafka(ks []kafkaConfig, brokers string) []kafkaConfig {
	list := strings.Split(brokers, ",")
	for i := range ks {
		if ks[i].Name == "" {
			ks[i].Brokers = list
			return ks
		}
	}
	return append(ks, kafkaConfig{ClusterConfig: kafka.ClusterConfig{Brokers: list}})
}

// defaultPostgres sets the DSN file of the default database.
func defaultPostgres(ps []postgresConfig, dsnFile string) []postgresConfig {
	for i := range ps {
		if ps[i].Name == "" {
			ps[i].DSNFile, ps[i].DSN = dsnFile, ""
			return ps
		}
	}
	return append(ps, postgresConfig{Config: postgres.Config{DSNFile: dsnFile}})
}

// postgresFromEnv adds the default database when CANARY_POSTGRES_DSN is set
// and none is configured: the DSN holds a password, so it is best kept out
// of files and flags.
func postgresFromEnv(ps []postgresConfig) []postgresConfig {
	if os.Getenv(postgresDSNEnv("")) == "" {
		return ps
	}
	for _, p := range ps {
		if p.Name == "" {
			return ps
		}
	}
	return append(ps, postgresConfig{})
}
