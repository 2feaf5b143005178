// Package testprom runs a real Prometheus server for tests.
//
// Tests talk to the Debian `prometheus` binary over the wire instead of a
// fake, so that what they check (PromQL results, error bodies, status codes)
// is what production sees. Each server gets its own port and an empty
// storage directory, so tests never see each other's data. Data is seeded
// through the remote-write receiver rather than scraped: a scrape target
// takes about 5 s to be discovered, a remote write is queryable at once.
package testprom

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aurum/canary/internal/testproc"
)

const (
	// readyTimeout bounds the wait for /-/ready. An empty server is ready in
	// well under a second; the margin is for a loaded CI machine.
	readyTimeout = 30 * time.Second
	// startAttempts is how many fresh ports Start tries. Picking a free port
	// and handing it to another process is racy; a retry makes a clash
	// harmless.
	startAttempts = 3
)

// minimalConfig scrapes nothing: all data comes from remote writes.
const minimalConfig = "global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\n"

// Server is a running Prometheus. It is stopped when the test that started
// it ends.
type Server struct {
	url  string
	proc *testproc.Process
}

// Start runs a Prometheus on a free port of 127.0.0.1 with a fresh storage
// directory and the remote-write receiver enabled, and returns once it is
// ready. It fails the test when the binary is missing: a skipped test would
// look like a passing one.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus binary not found: install the Debian package `prometheus` (make test does): %v", err)
	}
	dir := t.TempDir()
	configFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte(minimalConfig), 0o600); err != nil {
		t.Fatalf("write prometheus config: %v", err)
	}

	var errs []error
	for attempt := range startAttempts {
		s, err := start(bin, configFile, filepath.Join(dir, "data"+strconv.Itoa(attempt)))
		if err == nil {
			t.Cleanup(func() {
				s.Stop()
				if t.Failed() {
					t.Logf("prometheus output:\n%s", s.Output())
				}
			})
			return s
		}
		errs = append(errs, err)
	}
	t.Fatalf("start prometheus: %v", errors.Join(errs...))
	return nil
}

// start launches one Prometheus and waits until it is ready. On failure it
// kills the process and puts its output into the error.
func start(bin, configFile, dataDir string) (*Server, error) {
	port, err := testproc.FreePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s := &Server{url: "http://" + addr}
	s.proc, err = testproc.Start("prometheus", exec.Command(bin,
		"--config.file="+configFile,
		"--storage.tsdb.path="+dataDir,
		"--web.listen-address="+addr,
		"--web.enable-remote-write-receiver",
		"--web.enable-lifecycle",
	))
	if err != nil {
		return nil, err
	}
	if err := s.proc.WaitHTTP(context.Background(), s.url+"/-/ready", readyTimeout); err != nil {
		s.Stop()
		return nil, fmt.Errorf("%w\nprometheus output:\n%s", err, s.Output())
	}
	return s, nil
}

// URL is the base URL of the server, e.g. http://127.0.0.1:41234.
func (s *Server) URL() string { return s.url }

// Stop kills the server and waits for it to exit. Tests call it to simulate
// an outage; the URL then refuses connections. Calling it again is a no-op.
// Kill, not SIGTERM: an outage is abrupt, and a clean shutdown of the TSDB
// only costs time here.
func (s *Server) Stop() { s.proc.Stop() }

// Output is what the server printed so far.
func (s *Server) Output() string { return s.proc.Output() }
