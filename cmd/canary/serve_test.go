package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/internal/testkube"
	"github.com/aurum/canary/internal/testproc"
	"github.com/aurum/canary/internal/testprom"
	"github.com/aurum/canary/runs"
)

// childEnv marks the re-executed test binary that runs `canary serve`.
const childEnv = "CANARY_TEST_SERVE_CHILD"

// mainEnv marks the re-executed test binary that is the canary binary:
// main with the process's own arguments (see asBinary).
const mainEnv = "CANARY_TEST_MAIN"

// TestMain doubles as `canary serve` for the child processes the
// durability tests start: they re-execute the test binary with childEnv
// set, configured through CANARY_* variables as a deployment would be.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(run([]string{"serve"}, os.Stdout, os.Stderr))
	}
	if os.Getenv(mainEnv) == "1" {
		main() // as the binary, under the name it was run by
	}
	os.Exit(testkube.Main(m))
}

// child is a `canary serve` process. Tests signal it through cmd; done
// holds its exit status once it has exited, and whoever takes that from
// done puts it back for the next to look.
type child struct {
	proc *testproc.Process
	cmd  *exec.Cmd
	url  string
	done chan error
	// token is the admin and alertmanager token the child accepts; call
	// sends it.
	token  string
	client *http.Client
}

func (c *child) output() string { return c.proc.Output() }

// testToken is the admin and alertmanager token of the children.
const testToken = "t0ken-for-tests"

// startServe starts `canary serve` in a child process configured by env
// (CANARY_* variables, as a deployment would) and waits until it is ready.
// Unless env says otherwise, its admin and alertmanager routes take
// testToken, as canary serve requires.
func startServe(t *testing.T, env map[string]string) *child {
	t.Helper()
	c := spawnServe(t, env)
	if err := c.proc.WaitHTTP(t.Context(), c.url+"/readyz", 30*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, c.output())
	}
	return c
}

// spawnServe starts the child without waiting for it.
func spawnServe(t *testing.T, env map[string]string) *child {
	t.Helper()
	port, err := testproc.FreePort()
	require.NoError(t, err)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=1", "CANARY_LISTEN="+addr)
	tokens := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(tokens, []byte("tester "+testToken+"\n"), 0o600))
	defaults := map[string]string{"CANARY_AUTH_ADMIN_TOKEN_FILE": tokens, "CANARY_AUTH_ALERTMANAGER_TOKEN_FILE": tokens}
	for k, v := range defaults {
		if _, ok := env[k]; !ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	for k, v := range env {
		if v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	proc, err := testproc.Start("canary serve", cmd)
	require.NoError(t, err)
	c := &child{proc: proc, cmd: cmd, url: "http://" + addr, done: make(chan error, 1), token: testToken, client: http.DefaultClient}
	go func() { c.done <- proc.Wait() }()
	t.Cleanup(func() {
		proc.Stop()
		if t.Failed() {
			t.Logf("canary serve output:\n%s", c.output())
		}
	})
	return c
}

func (c *child) call(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, c.url+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(data)
}

// TestServeSurvivesKill latches a rollback, kills the server with SIGKILL,
// starts it again over the same data dir: the latch and the history are
// there. Then the same after a graceful SIGTERM.
func TestServeSurvivesKill(t *testing.T) {
	prom := testprom.Start(t)
	seedLive(t, prom)
	dataDir := t.TempDir()
	env := map[string]string{
		"CANARY_DATA_DIR":   dataDir,
		"CANARY_POLICIES":   "testdata/live.yaml",
		"CANARY_PROMETHEUS": prom.URL(),
		"CANARY_LOG_LEVEL":  "debug",
	}
	srv := startServe(t, env)
	analyze := "/v1/analysis/live?namespace=caiso&name=good&revision=rs-1"
	for range 2 {
		code, out := srv.call(t, "GET", analyze, "")
		require.Equal(t, 200, code, out)
		require.Contains(t, out, `"verdict":"pass"`)
	}
	code, out := srv.call(t, "POST", "/v1/runs/caiso/good/rollback", `{"reason":"PJM prices look wrong"}`)
	require.Equal(t, 200, code, out)

	// The answer above was acknowledged: it must survive SIGKILL.
	require.NoError(t, srv.cmd.Process.Signal(syscall.SIGKILL))
	<-srv.done
	srv.done <- nil

	srv = startServe(t, env)
	check := func(evaluations uint64) {
		t.Helper()
		code, out := srv.call(t, "GET", "/v1/runs/caiso/good", "")
		require.Equal(t, 200, code, out)
		var got struct {
			Run     runs.Run
			History []runs.Evaluation
		}
		require.NoError(t, json.Unmarshal([]byte(out), &got))
		require.Equal(t, "rs-1", got.Run.Revision)
		require.True(t, got.Run.Has(runs.LatchRollback), out)
		require.EqualValues(t, evaluations, got.Run.Evaluations)
		require.Len(t, got.History, int(evaluations))
		require.Equal(t, "error-rate", got.History[0].Rules[0].Name)
		code, out = srv.call(t, "POST", "/v1/flagger/rollback", `{"name":"good","namespace":"caiso","checksum":"rs-1"}`)
		require.Equal(t, 200, code)
		require.JSONEq(t, `{"message": "rollback latched by manual: PJM prices look wrong; to lift: canary runs resume caiso/good --revision rs-1 --reason \"…\""}`, out)
		require.Equal(t, "admin/tester", got.Run.Latches[0].By, "who latched it is on record")
	}
	check(2)
	code, out = srv.call(t, "GET", analyze, "")
	require.Equal(t, 200, code)
	require.Contains(t, out, `"decision":"rollback"`)

	// A graceful stop drains and exits 0; nothing is lost either.
	require.NoError(t, srv.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-srv.done:
		require.NoError(t, err, srv.output())
		srv.done <- err
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit after SIGTERM:\n%s", srv.output())
	}
	require.Contains(t, srv.output(), "shutting down")
	srv = startServe(t, env)
	check(3)
}

// TestServeReloadOnSIGHUP: a broken policy change is rejected and the
// running set stays; a fixed one is picked up on SIGHUP.
func TestServeReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	policy, err := os.ReadFile("testdata/live.yaml")
	require.NoError(t, err)
	file := filepath.Join(dir, "live.yaml")
	require.NoError(t, os.WriteFile(file, policy, 0o644))
	srv := startServe(t, map[string]string{
		"CANARY_DATA_DIR": t.TempDir(), "CANARY_POLICIES": dir,
		// Polling is slow here so that SIGHUP is what reloads.
		"CANARY_RELOAD_INTERVAL": "1h",
	})
	policies := func() (int, []string) {
		_, out := srv.call(t, "GET", "/v1/policies", "")
		var got struct {
			Policies []struct{ Name string }
			Status   struct{ Errors []string }
		}
		require.NoError(t, json.Unmarshal([]byte(out), &got))
		return len(got.Policies), got.Status.Errors
	}
	n, errs := policies()
	require.Equal(t, 3, n)
	require.Empty(t, errs)

	require.NoError(t, os.WriteFile(file, append(policy, []byte("---\nkind: Policy\n")...), 0o644))
	require.NoError(t, srv.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { _, errs := policies(); return len(errs) > 0 }, 10*time.Second, 20*time.Millisecond)
	n, errs = policies()
	require.Equal(t, 3, n, "the last good set stays in service")
	require.Contains(t, errs[0], "live.yaml:50:1: missing apiVersion")
	code, _ := srv.call(t, "GET", "/readyz", "")
	require.Equal(t, 200, code)

	extra := strings.ReplaceAll(string(policy), "name: live", "name: live-copy")
	extra = strings.ReplaceAll(extra, "name: one-zone", "name: one-zone-copy")
	extra = strings.ReplaceAll(extra, "name: bad-promql", "name: bad-promql-copy")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "copy.yaml"), []byte(extra), 0o644))
	require.NoError(t, os.WriteFile(file, policy, 0o644))
	require.NoError(t, srv.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { n, _ := policies(); return n == 6 }, 10*time.Second, 20*time.Millisecond)
}

// TestServeConfig checks precedence: flags over CANARY_* variables over the
// config file over defaults, and paths relative to the config file.
func TestServeConfig(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "canary.yml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(`
listen: 127.0.0.1:9000
policies: [policies]
dataDir: /var/lib/canary
history: 50
cache: {ttl: 10s}
prometheus:
  - url: http://prometheus:9090
    timeout: 5s
  - name: eu
    url: https://prometheus-eu:9090
    http:
      authorization: {credentials_file: eu-token}
      tls_config: {ca_file: ca.pem}
auth:
  allowOpen: true
  admin: {tokenFiles: [admin-token]}
tls: {certFile: tls.crt, keyFile: tls.key}
runRetention: 30d
`), 0o644))
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, c serveConfig)
		err   string
	}{
		{name: "defaults", check: func(t *testing.T, c serveConfig) {
			require.Equal(t, ":8080", c.Listen)
			require.Equal(t, []string{"examples/policies"}, c.Policies)
			require.Equal(t, "data", c.DataDir)
			require.Equal(t, "http://127.0.0.1:9090", c.Prometheus[0].URL)
			require.Equal(t, model.Duration(5*time.Second), c.Cache.TTL)
			require.Equal(t, model.Duration(100*time.Millisecond), c.HistoryFlush)
			require.Equal(t, model.Duration(14*24*time.Hour), c.RunRetention)
			require.Equal(t, model.Duration(90*24*time.Hour), c.LatchedRunRetention)
			require.Equal(t, 10000, c.MaxRuns)
		}},
		{name: "file", args: []string{"--config", cfgFile}, check: func(t *testing.T, c serveConfig) {
			require.Equal(t, "127.0.0.1:9000", c.Listen)
			require.Equal(t, []string{filepath.Join(dir, "policies")}, c.Policies)
			require.Equal(t, "/var/lib/canary", c.DataDir)
			require.Equal(t, 50, c.History)
			require.Len(t, c.Prometheus, 2)
			require.Equal(t, "eu", c.Prometheus[1].Name)
			require.Equal(t, filepath.Join(dir, "eu-token"), c.Prometheus[1].HTTPClient.Authorization.CredentialsFile)
			require.Equal(t, filepath.Join(dir, "ca.pem"), c.Prometheus[1].HTTPClient.TLSConfig.CAFile)
			require.Equal(t, []string{filepath.Join(dir, "admin-token")}, c.Auth.Groups["admin"].TokenFiles)
			require.True(t, c.Auth.AllowOpen)
			require.Equal(t, filepath.Join(dir, "tls.crt"), c.TLS.CertFile)
			require.Equal(t, model.Duration(30*24*time.Hour), c.RunRetention)
		}},
		{name: "env over file", args: []string{"--config", cfgFile},
			env: map[string]string{"CANARY_LISTEN": ":7000", "CANARY_POLICIES": "a,b", "CANARY_PROMETHEUS": "http://other:9090"},
			check: func(t *testing.T, c serveConfig) {
				require.Equal(t, ":7000", c.Listen)
				require.Equal(t, []string{"a", "b"}, c.Policies)
				require.Equal(t, "http://other:9090", c.Prometheus[0].URL)
				require.Equal(t, "eu", c.Prometheus[1].Name)
			}},
		{name: "flags over env", args: []string{"--config", cfgFile, "--listen", ":6000", "--auth-flagger-token-file", "/run/secrets/flagger"},
			env: map[string]string{"CANARY_LISTEN": ":7000", "CANARY_CONFIG": "/nonexistent"},
			check: func(t *testing.T, c serveConfig) {
				require.Equal(t, ":6000", c.Listen)
				require.Equal(t, []string{"/run/secrets/flagger"}, c.Auth.Groups["flagger"].TokenFiles)
			}},
		{name: "config from env", env: map[string]string{"CANARY_CONFIG": cfgFile}, check: func(t *testing.T, c serveConfig) {
			require.Equal(t, 50, c.History)
		}},
		{name: "strict file", args: []string{"--config", writeFile(t, dir, "bad.yml", "listn: :80\n")}, err: "field listn not found"},
		{name: "unknown auth group", args: []string{"--config", writeFile(t, dir, "auth.yml", "auth: {argo: {tokenFiles: [x]}}\n")}, err: `unknown route group "argo"`},
		{name: "strict auth group", args: []string{"--config", writeFile(t, dir, "auth2.yml", "auth: {admin: {tokenFile: x}}\n")}, err: "field tokenFile not found"},
		{name: "bad env value", env: map[string]string{"CANARY_HISTORY": "many"}, err: "CANARY_HISTORY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var stderr bytes.Buffer
			f := newServeFlags(&cli{stdout: io.Discard, stderr: &stderr})
			cfg, err := f.parse(tt.args)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			tt.check(t, cfg)
		})
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

// TestBadSourceIsAnError: a source that does not build is an error that
// names it, not a crash.
func TestBadSourceIsAnError(t *testing.T) {
	t.Setenv("CANARY_POSTGRES_DSN", "postgres://user:s3cret@[::1:5432/db")
	code, _, stderr := canary(t, "eval", "--policies", "../../examples/policies", "--policy", "iso-ingest",
		"--param", "namespace=caiso", "--param", "name=lmp-ingest", "--kafka-brokers", "127.0.0.1:9092")
	require.Equal(t, exitError, code)
	require.Contains(t, stderr, `postgres database ""`)
	require.NotContains(t, stderr, "s3cret")
}

// TestServeClosedByDefault: every route used to be open by default, with
// nothing in the log. canary serve now refuses to start with the
// alertmanager or admin routes open, unless told to, and then says so.
func TestServeClosedByDefault(t *testing.T) {
	noTokens := map[string]string{
		"CANARY_DATA_DIR": t.TempDir(), "CANARY_POLICIES": "testdata/live.yaml",
		"CANARY_AUTH_ADMIN_TOKEN_FILE": "", "CANARY_AUTH_ALERTMANAGER_TOKEN_FILE": "",
	}
	c := spawnServe(t, noTokens)
	select {
	case err := <-c.done:
		require.Error(t, err, "it must not start")
		require.Contains(t, c.output(), "refusing to start with open routes: the alertmanager and admin routes have no token")
	case <-time.After(30 * time.Second):
		t.Fatalf("canary serve started with open routes:\n%s", c.output())
	}

	noTokens["CANARY_ALLOW_OPEN_ROUTES"] = "true"
	c = startServe(t, noTokens)
	c.token = ""
	for _, g := range []string{"analysis", "flagger", "alertmanager", "admin", "ui"} {
		require.Contains(t, c.output(), `msg="route group is open: any caller that reaches the service may use it" group=`+g)
	}
	code, out := c.call(t, "GET", "/v1/policies", "")
	require.Equal(t, 200, code)
	require.Contains(t, out, `"openRoutes":["analysis","flagger","alertmanager","admin","ui"]`)
}

// TestServeTLS: with a certificate, canary serve speaks HTTPS only, so
// Flagger's ?token= never crosses the network in clear text, and a
// rotated certificate is served without a restart.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	pool := x509.NewCertPool()
	first := writeCert(t, certFile, keyFile, "canary-1", pool)
	c := spawnServe(t, map[string]string{
		"CANARY_DATA_DIR": t.TempDir(), "CANARY_POLICIES": "testdata/live.yaml",
		"CANARY_TLS_CERT_FILE": certFile, "CANARY_TLS_KEY_FILE": keyFile,
	})
	c.url = strings.Replace(c.url, "http://", "https://", 1)
	c.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	require.Eventually(t, func() bool {
		resp, err := c.client.Get(c.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, 30*time.Second, 50*time.Millisecond, c.output())
	served := func() string {
		resp, err := c.client.Get(c.url + "/healthz")
		require.NoError(t, err)
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].Subject.CommonName
	}
	require.Equal(t, first, served())

	// The admin CLI checks the server against a CA of its own choosing.
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o600))
	code, stdout, stderr := canary(t, "runs", "list", "--server", c.url, "--token-file", tokenFile, "--ca-file", certFile)
	require.Equal(t, exitOK, code, stdout+stderr)
	code, _, stderr = canary(t, "runs", "list", "--server", c.url, "--token-file", tokenFile)
	require.Equal(t, exitError, code)
	require.Contains(t, stderr, "certificate")

	// Plain HTTP is not served.
	resp, err := http.Get(strings.Replace(c.url, "https://", "http://", 1) + "/healthz")
	if err == nil {
		resp.Body.Close()
		require.NotEqual(t, 200, resp.StatusCode)
	}

	second := writeCert(t, certFile, keyFile, "canary-2", pool)
	require.Eventually(t, func() bool {
		c.client.CloseIdleConnections()
		return served() == second
	}, 10*time.Second, 100*time.Millisecond, "the rotated certificate is served")
}

// writeCert writes a self-signed certificate for localhost, adds it to
// pool, and returns its common name.
func writeCert(t *testing.T, certFile, keyFile, cn string, pool *x509.CertPool) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool.AddCert(cert)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	return cn
}
