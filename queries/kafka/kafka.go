// Package kafka is the query source that reads consumer-group lag from a
// Kafka cluster: how far a group's committed offsets trail the newest
// offsets of the partitions it consumes, or how fast that distance grows.
//
// A canary of an ingestion pipeline that falls behind shows it first as lag,
// long before error rates move; this source lets a rule say
// `lag.value < 10000` or `growth.value <= 0` about the canary's consumer
// group.
//
// One evaluation costs one OffsetFetch request to the group's coordinator
// and one batched ListOffsets request per partition leader (a second one
// only when partitions without a commit need their oldest offset). Metadata
// is cached and refreshed only when it is old or a broker says it is wrong,
// so a group over a thousand partitions costs the same handful of requests
// as one over three.
//
// A server configuration names clusters like this:
//
//	kafka:
//	  - name: ingest
//	    brokers: [kafka-0:9093, kafka-1:9093]
//	    version: 3.6.0
//	    sasl: {mechanism: SCRAM-SHA-512, username: canary, passwordFile: /etc/canary/kafka-password}
//	    tls: {ca_file: /etc/canary/kafka-ca.pem}
//	    timeout: 5s
//
// and a policy queries one with
//
//	kafka: {cluster: ingest, group: enricher-canary, topics: [events], aggregate: sum}
package kafka

import (
	"cmp"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/common/config"

	"github.com/aurum/canary/queries"
)

// Defaults for the zero values of ClusterConfig.
const (
	// DefaultClientID is the client.id brokers see in their request logs
	// and quotas.
	DefaultClientID = "canary"
	// DefaultVersion is the Kafka protocol version assumed for the cluster.
	// 2.8.0 is what Sarama defaults to; every broker since 2.8 speaks it,
	// and the requests this source sends have not changed since.
	DefaultVersion = "2.8.0"
	// DefaultTimeout bounds one call to Query. Lag is read with two or three
	// small requests that a healthy cluster answers in milliseconds; a
	// cluster that needs seconds is in trouble, and the analysis should hear
	// so within one evaluation interval.
	DefaultTimeout = 5 * time.Second
)

// SASL mechanisms ClusterConfig.SASL accepts.
const (
	MechanismPlain       = "PLAIN"
	MechanismSCRAMSHA256 = "SCRAM-SHA-256"
	MechanismSCRAMSHA512 = "SCRAM-SHA-512"
)

// metadataMaxAge is how old the cached partition list and leaders of a
// topic may get before an evaluation refreshes them. Partitions added to a
// topic show up within this time even when nothing has committed to them
// yet (a commit to an unknown partition refreshes at once), and a steady
// evaluation loop pays one Metadata request per topic set per minute, not
// one per evaluation.
const metadataMaxAge = time.Minute

// minVersion is the oldest Kafka this source can read lag from: OffsetFetch
// for all of a group's partitions at once needs version 2 of the request,
// which came with Kafka 0.10.2.
var minVersion = sarama.V0_10_2_0

// ClusterConfig says how to reach one Kafka cluster. Its YAML form is the
// `kafka:` entry of the server configuration; durations are Go durations
// ("5s").
type ClusterConfig struct {
	// Brokers are the bootstrap addresses, host:port. One reachable broker
	// is enough: the others are learned from the cluster's metadata.
	Brokers []string `yaml:"brokers"`
	// ClientID is the client.id sent with every request. Empty means
	// DefaultClientID.
	ClientID string `yaml:"clientID"`
	// Version is the Kafka version the cluster runs, e.g. "3.6.0"; it picks
	// the request versions. Empty means DefaultVersion. Versions before
	// 0.10.2 are rejected.
	Version string `yaml:"version"`
	// SASL authenticates the connections; the zero value sends no
	// credentials.
	SASL SASLConfig `yaml:"sasl"`
	// TLS encrypts the connections (ca, cert, key, insecure_skip_verify, as
	// in Prometheus's tls_config); nil means plaintext. Client certificate
	// files are re-read at each handshake, so rotating them needs no
	// restart.
	TLS *config.TLSConfig `yaml:"tls"`
	// Timeout bounds one call to Query, every request it makes included.
	// Zero means DefaultTimeout.
	Timeout time.Duration `yaml:"timeout"`
}

// SASLConfig holds the SASL credentials of a cluster. Its String and
// LogValue methods leave the password out, so printing or logging a
// ClusterConfig does not leak it.
type SASLConfig struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty turns SASL
	// off. PLAIN sends the password as it is: use it only with TLS.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	// Password is set by code only (from the environment, say). A
	// configuration file names a PasswordFile instead, so that the file
	// can be shared and checked in without the secret.
	Password string `yaml:"-"`
	// PasswordFile is read once, by New; one trailing newline is dropped.
	// Set Password or PasswordFile, not both.
	PasswordFile string `yaml:"passwordFile"`
}

// String describes c without its password.
func (c SASLConfig) String() string {
	if c.Mechanism == "" {
		return "none"
	}
	return c.Mechanism + " as " + c.Username
}

// LogValue keeps the password out of structured logs.
func (c SASLConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("mechanism", c.Mechanism), slog.String("username", c.Username))
}

// Source reads consumer lag from one Kafka cluster. It is safe for
// concurrent use. Build one per cluster and keep it: it holds the
// cluster's connections, its cached metadata and the previous lags that
// `value: growth` compares with.
type Source struct {
	brokers      []string
	version      sarama.KafkaVersion
	saramaConfig func() *sarama.Config
	timeout      time.Duration
	timeoutCause error // context cause of the per-query timeout, built once
	logger       *slog.Logger

	// now is the clock for metadata age and for the growth store's
	// bookkeeping; tests move it.
	now            func() time.Time
	metadataMaxAge time.Duration
	growth         *growthStore

	mu     sync.Mutex
	cur    *conn // nil until the first query, and after a failure
	closed bool
}

var _ queries.Source = (*Source)(nil)

// New checks cfg, reads the SASL password file and prepares the Sarama
// configuration. It does not contact the cluster: the client is created by
// the first query, so that a cluster that is down at start-up is reported
// by the queries that need it, like one that goes down later.
func New(cfg ClusterConfig, logger *slog.Logger) (*Source, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafka: no brokers")
	}
	for i, b := range cfg.Brokers {
		if strings.Contains(b, "@") {
			// user:password@host:port, or a URL with credentials: not
			// to be quoted back.
			return nil, fmt.Errorf("kafka broker %d holds user info ('@'): want host:port, and credentials in sasl", i+1)
		}
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			return nil, fmt.Errorf("kafka broker %q: want host:port", b)
		}
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("kafka timeout %s is negative", cfg.Timeout)
	}
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	cfg.ClientID = cmp.Or(cfg.ClientID, DefaultClientID)
	cfg.Version = cmp.Or(cfg.Version, DefaultVersion)
	version, err := sarama.ParseKafkaVersion(cfg.Version)
	if err != nil {
		return nil, fmt.Errorf("kafka version %q: want a Kafka release such as 3.6.0 (or 0.11.0.2: releases before 1.0 have four parts)", cfg.Version)
	}
	if !version.IsAtLeast(minVersion) {
		return nil, fmt.Errorf("kafka version %s is too old: reading lag needs %s or later", cfg.Version, minVersion)
	}
	password, err := saslPassword(cfg.SASL)
	if err != nil {
		return nil, err
	}
	var tlsCfg *tls.Config
	if cfg.TLS != nil {
		if tlsCfg, err = config.NewTLSConfig(cfg.TLS); err != nil {
			return nil, fmt.Errorf("kafka tls: %w", err)
		}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	const socketSlack = 250 * time.Millisecond
	build := func() *sarama.Config {
		sc := sarama.NewConfig()
		sc.ClientID = cfg.ClientID
		sc.Version = version
		// Every blocking call is also bounded by the query's context (see
		// Query), but Sarama takes no context: these make the goroutine
		// left behind by a timed-out query end soon after it, and a dial
		// to a dead broker give way to the next one within the budget.
		// Reads and writes get a little longer than the query, so that the
		// query's own deadline fires first and the error names it, rather
		// than a socket timeout racing it.
		sc.Net.DialTimeout = cfg.Timeout / 2
		sc.Net.ReadTimeout = cfg.Timeout + socketSlack
		sc.Net.WriteTimeout = cfg.Timeout + socketSlack
		sc.Metadata.Timeout = cfg.Timeout
		// One retry rides out a leader election; more would outlast the
		// query, whose caller retries at its own pace anyway.
		sc.Metadata.Retry.Max = 1
		sc.Metadata.Retry.Backoff = min(100*time.Millisecond, cfg.Timeout/10)
		// Only the topics queried are tracked, and their metadata is
		// refreshed by the queries themselves when it is old or wrong
		// (metadataMaxAge): no background refresh of a cluster with
		// thousands of topics we never read.
		sc.Metadata.Full = false
		sc.Metadata.RefreshFrequency = 0
		// Reading lag must never create a topic that a query misspelled.
		sc.Metadata.AllowAutoTopicCreation = false
		if cfg.SASL.Mechanism != "" {
			sc.Net.SASL.Enable = true
			sc.Net.SASL.Mechanism = sarama.SASLMechanism(cfg.SASL.Mechanism)
			sc.Net.SASL.User = cfg.SASL.Username
			sc.Net.SASL.Password = password
			if !version.IsAtLeast(sarama.V1_0_0_0) {
				// SaslAuthenticate (handshake v1) came with Kafka 1.0.
				sc.Net.SASL.Version = sarama.SASLHandshakeV0
			}
			switch cfg.SASL.Mechanism {
			case MechanismSCRAMSHA256:
				sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return newSCRAMClient(sha256.New) }
			case MechanismSCRAMSHA512:
				sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return newSCRAMClient(sha512.New) }
			}
		}
		if tlsCfg != nil {
			sc.Net.TLS.Enable = true
			// Sarama fills in ServerName per broker on a copy.
			sc.Net.TLS.Config = tlsCfg.Clone()
		}
		return sc
	}
	if err := build().Validate(); err != nil {
		return nil, fmt.Errorf("kafka client config: %w", err)
	}
	return &Source{
		brokers:        append([]string(nil), cfg.Brokers...),
		version:        version,
		saramaConfig:   build,
		timeout:        cfg.Timeout,
		timeoutCause:   &queries.Timeout{Name: "per-query", D: cfg.Timeout},
		logger:         logger.With("brokers", strings.Join(cfg.Brokers, ",")),
		now:            time.Now,
		metadataMaxAge: metadataMaxAge,
		growth:         newGrowthStore(),
	}, nil
}

// saslPassword checks the SASL settings and returns the password, read from
// PasswordFile if that is set. Its errors never hold the password.
func saslPassword(c SASLConfig) (string, error) {
	switch c.Mechanism {
	case "":
		if c.Username != "" || c.Password != "" || c.PasswordFile != "" {
			return "", errors.New("kafka sasl: credentials are set but no mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
		}
		return "", nil
	case MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512:
	default:
		return "", fmt.Errorf("kafka sasl: unknown mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.Mechanism)
	}
	if c.Username == "" {
		return "", fmt.Errorf("kafka sasl %s: no username", c.Mechanism)
	}
	switch {
	case c.Password != "" && c.PasswordFile != "":
		return "", errors.New("kafka sasl: set password or passwordFile, not both")
	case c.PasswordFile != "":
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("kafka sasl password file: %w", err)
		}
		p := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if p == "" {
			return "", fmt.Errorf("kafka sasl password file %s is empty", c.PasswordFile)
		}
		return p, nil
	case c.Password == "":
		return "", fmt.Errorf("kafka sasl %s: no password or passwordFile", c.Mechanism)
	}
	return c.Password, nil
}

// conn is one Sarama client with what the source knows about its metadata.
// A conn that failed is retired: new queries get a new one, and the old
// one is closed when the last query using it lets go.
type conn struct {
	client sarama.Client

	refs    int  // queries using the conn; guarded by Source.mu
	retired bool // no new queries; guarded by Source.mu
	closed  bool // guarded by Source.mu

	mu    sync.Mutex
	fresh map[string]time.Time // topic → when this source last refreshed its metadata
}

// errClosed is returned by queries on a closed source.
var errClosed = &queries.Error{Kind: queries.ErrUnavailable, Msg: "kafka source is closed"}

// acquire returns the current client, creating it if there is none. Sarama
// creates a client without any I/O when it need not fetch all metadata, so
// this does not block.
func (s *Source) acquire() (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	if s.cur == nil {
		client, err := sarama.NewClient(s.brokers, s.saramaConfig())
		if err != nil {
			return nil, &queries.Error{Kind: queries.ErrUnavailable, Msg: "kafka client: " + err.Error(), Cause: err}
		}
		s.cur = &conn{client: client, fresh: map[string]time.Time{}}
	}
	s.cur.refs++
	return s.cur, nil
}

// release lets go of c; retire says c failed and must not be used again.
func (s *Source) release(c *conn, retire bool) {
	s.mu.Lock()
	c.refs--
	if retire {
		s.retireLocked(c)
	}
	closeNow := s.idleLocked(c)
	s.mu.Unlock()
	if closeNow {
		_ = c.client.Close()
	}
}

// retire takes c out of use without waiting for its queries to end; the
// last one to end closes it.
func (s *Source) retire(c *conn) {
	s.mu.Lock()
	s.retireLocked(c)
	closeNow := s.idleLocked(c)
	s.mu.Unlock()
	if closeNow {
		_ = c.client.Close()
	}
}

func (s *Source) retireLocked(c *conn) {
	if c.retired {
		return
	}
	c.retired = true
	if s.cur == c {
		s.cur = nil
		s.logger.Debug("dropping the kafka client; the next query connects again")
	}
}

// idleLocked reports, once, that c is retired and unused: time to close
// it.
func (s *Source) idleLocked(c *conn) bool {
	if !c.retired || c.refs > 0 || c.closed {
		return false
	}
	c.closed = true
	return true
}

// Close closes the connections to the cluster, at once or, for a query
// still running, when it ends. Queries after Close fail. The previous lags
// kept for `value: growth` are dropped with the source.
func (s *Source) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	c := s.cur
	closeNow := false
	if c != nil {
		s.retireLocked(c)
		closeNow = s.idleLocked(c)
	}
	s.mu.Unlock()
	if closeNow {
		return c.client.Close()
	}
	return nil
}
