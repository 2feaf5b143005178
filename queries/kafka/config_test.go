package kafka

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/common/config"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.yaml.in/yaml/v3"

	"github.com/aurum/canary/queries"
)

func TestNewRejects(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	brokers := []string{"127.0.0.1:9092"}

	for _, tt := range []struct {
		name string
		cfg  ClusterConfig
		want string
	}{
		{name: "no brokers", cfg: ClusterConfig{}, want: "kafka: no brokers"},
		{name: "broker without port", cfg: ClusterConfig{Brokers: []string{"kafka-0"}}, want: `kafka broker "kafka-0": want host:port`},
		{
			name: "broker with credentials",
			cfg:  ClusterConfig{Brokers: []string{"kafka-0:9092", "canary:s3cret@kafka-1:9092"}},
			want: "kafka broker 2 holds user info ('@'): want host:port, and credentials in sasl",
		},
		{
			name: "broker URL with credentials",
			cfg:  ClusterConfig{Brokers: []string{"kafka://canary:s3cret@kafka-1:9092"}},
			want: "kafka broker 1 holds user info ('@'): want host:port, and credentials in sasl",
		},
		{name: "negative timeout", cfg: ClusterConfig{Brokers: brokers, Timeout: -time.Second}, want: "kafka timeout -1s is negative"},
		{name: "bad version", cfg: ClusterConfig{Brokers: brokers, Version: "3.x"}, want: `kafka version "3.x": want a Kafka release such as 3.6.0`},
		{name: "old version", cfg: ClusterConfig{Brokers: brokers, Version: "0.10.1.0"}, want: "kafka version 0.10.1.0 is too old: reading lag needs 0.10.2.0 or later"},
		{
			name: "unknown mechanism",
			cfg:  ClusterConfig{Brokers: brokers, SASL: SASLConfig{Mechanism: "GSSAPI", Username: "u", Password: "p"}},
			want: `kafka sasl: unknown mechanism "GSSAPI": want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`,
		},
		{
			name: "credentials without mechanism",
			cfg:  ClusterConfig{Brokers: brokers, SASL: SASLConfig{Username: "u"}},
			want: "kafka sasl: credentials are set but no mechanism",
		},
		{
			name: "no username",
			cfg:  ClusterConfig{Brokers: brokers, SASL: SASLConfig{Mechanism: "PLAIN", Password: "p"}},
			want: "kafka sasl PLAIN: no username",
		},
		{
			name: "no password",
			cfg:  ClusterConfig{Brokers: brokers, SASL: SASLConfig{Mechanism: "SCRAM-SHA-256", Username: "u"}},
			want: "kafka sasl SCRAM-SHA-256: no password or passwordFile",
		},
		{
			name: "password and file",
			cfg:  ClusterConfig{Brokers: brokers, SASL: SASLConfig{Mechanism: "PLAIN", Username: "u", Password: "p", PasswordFile: empty}},
			want: "kafka sasl: set password or passwordFile, not both",
		},
		{
			name: "missing password file",
			cfg:  ClusterConfig{Brokers: brokers, SASL: SASLConfig{Mechanism: "PLAIN", Username: "u", PasswordFile: filepath.Join(dir, "nope")}},
			want: "kafka sasl password file: open " + filepath.Join(dir, "nope") + ": no such file or directory",
		},
		{
			name: "empty password file",
			cfg:  ClusterConfig{Brokers: brokers, SASL: SASLConfig{Mechanism: "PLAIN", Username: "u", PasswordFile: empty}},
			want: "kafka sasl password file " + empty + " is empty",
		},
		{
			name: "tls ca file missing",
			cfg:  ClusterConfig{Brokers: brokers, TLS: &config.TLSConfig{CAFile: filepath.Join(dir, "ca.pem")}},
			want: "kafka tls: unable to read CA cert",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, nil)
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.want)
			require.NotContains(t, err.Error(), "s3cret")
		})
	}
}

func TestNewDefaults(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(pw, []byte("s3cret\n"), 0o600))
	s, err := New(ClusterConfig{
		Brokers: []string{"127.0.0.1:9092"},
		SASL:    SASLConfig{Mechanism: MechanismSCRAMSHA512, Username: "canary", PasswordFile: pw},
	}, nil)
	require.NoError(t, err)
	defer s.Close()
	require.Equal(t, DefaultTimeout, s.timeout)
	sc := s.saramaConfig()
	require.Equal(t, DefaultClientID, sc.ClientID)
	require.Equal(t, sarama.V2_8_0_0, sc.Version)
	require.Equal(t, "s3cret", sc.Net.SASL.Password, "one trailing newline dropped")
	require.Greater(t, sc.Net.ReadTimeout, DefaultTimeout, "the query's deadline fires before the socket's")
	require.False(t, sc.Metadata.AllowAutoTopicCreation)
	require.False(t, sc.Metadata.Full)
	require.NotNil(t, sc.Net.SASL.SCRAMClientGeneratorFunc)
}

// TestConfigYAML decodes a config as the server does: go.yaml.in/yaml/v3
// with KnownFields.
func TestConfigYAML(t *testing.T) {
	decode := func(text string) (ClusterConfig, error) {
		var c ClusterConfig
		dec := yaml.NewDecoder(strings.NewReader(text))
		dec.KnownFields(true)
		err := dec.Decode(&c)
		return c, err
	}
	c, err := decode(`
brokers: [kafka-0:9093, kafka-1:9093]
clientID: canary-eu
version: 3.6.0
sasl: {mechanism: SCRAM-SHA-512, username: canary, passwordFile: /etc/canary/kafka-password}
tls: {ca_file: /etc/canary/ca.pem, insecure_skip_verify: false}
timeout: 7s
`)
	require.NoError(t, err)
	require.Equal(t, ClusterConfig{
		Brokers:  []string{"kafka-0:9093", "kafka-1:9093"},
		ClientID: "canary-eu",
		Version:  "3.6.0",
		SASL:     SASLConfig{Mechanism: "SCRAM-SHA-512", Username: "canary", PasswordFile: "/etc/canary/kafka-password"},
		TLS:      &config.TLSConfig{CAFile: "/etc/canary/ca.pem"},
		Timeout:  7 * time.Second,
	}, c)

	_, err = decode("brokers: [k:1]\nsasl: {mechanism: PLAIN, username: u, password: hunter2}\n")
	require.ErrorContains(t, err, "field password not found", "no passwords in config files")
}

func TestPasswordStaysOutOfLogs(t *testing.T) {
	cfg := ClusterConfig{Brokers: []string{"k:1"}, SASL: SASLConfig{Mechanism: "PLAIN", Username: "u", Password: "hunter2"}}
	require.NotContains(t, fmt.Sprintf("%v %+v", cfg, cfg), "hunter2")
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("config", "sasl", cfg.SASL)
	require.NotContains(t, b.String(), "hunter2")
	require.Contains(t, b.String(), "sasl.username=u")
}

// TestSASL authenticates against kfake with each mechanism; the SCRAM ones
// run this package's own SCRAM client.
func TestSASL(t *testing.T) {
	for _, mech := range []string{MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512} {
		t.Run(mech, func(t *testing.T) {
			tc := newTestCluster(t, 1, kfake.EnableSASL(), kfake.Superuser(mech, "canary", "pencil"))
			sc := sarama.NewConfig()
			sc.Net.SASL.Enable = true
			sc.Net.SASL.Mechanism = sarama.SASLMechanism(mech)
			sc.Net.SASL.User, sc.Net.SASL.Password = "canary", "pencil"
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient {
				if mech == MechanismSCRAMSHA512 {
					return newSCRAMClient(sha512.New)
				}
				return newSCRAMClient(sha256.New)
			}
			tc.seedClient(sc)
			tc.createTopic("t", 1)
			tc.produce("t", 5, 0)
			tc.commit("g", map[tp]int64{{"t", 0}: 1})

			s := newSource(t, tc, func(c *ClusterConfig) {
				c.SASL = SASLConfig{Mechanism: mech, Username: "canary", Password: "pencil"}
			})
			res, err := query(s, map[string]string{"group": "g"})
			require.NoError(t, err)
			require.Equal(t, map[string]float64{"g": 4}, values(res))

			wrong := newSource(t, tc, func(c *ClusterConfig) {
				c.SASL = SASLConfig{Mechanism: mech, Username: "canary", Password: "pen"}
			})
			_, err = query(wrong, map[string]string{"group": "g"})
			// kfake drops the connection on a failed authentication where
			// Kafka answers SASL_AUTHENTICATION_FAILED first; how that
			// answer is sorted is TestRequestError's business.
			require.Error(t, err)
		})
	}
}

// TestSASLRejected answers authentication as Kafka does, with
// SASL_AUTHENTICATION_FAILED (kfake itself just drops the connection).
func TestSASLRejected(t *testing.T) {
	tc := newTestCluster(t, 1, kfake.EnableSASL(), kfake.Superuser(MechanismPlain, "canary", "pencil"))
	tc.ControlKey(int16(kmsg.SASLAuthenticate), func(req kmsg.Request) (kmsg.Response, error, bool) {
		tc.KeepControl()
		resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		resp.SetVersion(req.GetVersion())
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := "Authentication failed: Invalid username or password"
		resp.ErrorMessage = &msg
		return resp, nil, true
	})
	s := newSource(t, tc, func(c *ClusterConfig) {
		c.SASL = SASLConfig{Mechanism: MechanismPlain, Username: "canary", Password: "pen"}
	})
	for _, fields := range []map[string]string{{"group": "g"}, {"group": "g", "topics": "t"}} {
		_, err := query(s, fields)
		requireKind(t, err, queries.ErrBadQuery, "kafka authentication failed", "Invalid username or password")
	}
}

func TestRequestError(t *testing.T) {
	for _, tt := range []struct {
		name  string
		err   error
		class string
		text  string
	}{
		{name: "authentication", err: sarama.ErrSASLAuthenticationFailed, class: "bad_query", text: "kafka authentication failed: x: "},
		{name: "group authorization", err: sarama.ErrGroupAuthorizationFailed, class: "bad_query", text: "kafka denied access: x: "},
		{name: "topic authorization", err: fmt.Errorf("t: %w", sarama.ErrTopicAuthorizationFailed), class: "bad_query", text: "kafka denied access"},
		{name: "read deadline", err: &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, class: "timeout", text: "kafka request timed out: x: "},
		{name: "refused", err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, class: "unavailable", text: "kafka unavailable: x: dial: connection refused"},
		{name: "out of brokers", err: sarama.ErrOutOfBrokers, class: "unavailable", text: "kafka unavailable: x: "},
		{name: "broker error", err: sarama.ErrRequestTimedOut, class: "unavailable", text: "kafka unavailable: x: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := requestError("x", tt.err)
			require.Equal(t, tt.class, queries.Classify(err))
			require.ErrorIs(t, err, tt.err, "the cause is kept")
			require.Contains(t, err.Error(), tt.text)
		})
	}
}

// TestTLS reads lag over TLS, trusting a CA given inline.
func TestTLS(t *testing.T) {
	caPEM, serverCert := selfSigned(t)
	tc := newTestCluster(t, 1, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{serverCert}}))
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(caPEM))
	sc := sarama.NewConfig()
	sc.Net.TLS.Enable = true
	sc.Net.TLS.Config = &tls.Config{RootCAs: pool}
	tc.seedClient(sc)
	tc.createTopic("t", 1)
	tc.produce("t", 5, 0)
	tc.commit("g", map[tp]int64{{"t", 0}: 2})

	s := newSource(t, tc, func(c *ClusterConfig) { c.TLS = &config.TLSConfig{CA: string(caPEM)} })
	res, err := query(s, map[string]string{"group": "g"})
	require.NoError(t, err)
	require.Equal(t, map[string]float64{"g": 3}, values(res))

	plain := newSource(t, tc, func(c *ClusterConfig) { c.Timeout = time.Second })
	_, err = query(plain, map[string]string{"group": "g"})
	require.Error(t, err, "plaintext to a TLS listener fails")
}

// selfSigned makes a certificate for 127.0.0.1 that is its own CA.
func selfSigned(t *testing.T) ([]byte, tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kfake"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
