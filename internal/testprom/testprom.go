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
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
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
	url    string
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been waited for
	output *syncBuffer

	stopOnce sync.Once
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
					t.Logf("prometheus output:\n%s", s.output.String())
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
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s := &Server{
		url:    "http://" + addr,
		exited: make(chan struct{}),
		output: &syncBuffer{},
	}
	s.cmd = exec.Command(bin,
		"--config.file="+configFile,
		"--storage.tsdb.path="+dataDir,
		"--web.listen-address="+addr,
		"--web.enable-remote-write-receiver",
		"--web.enable-lifecycle",
	)
	// One writer for both streams: os/exec then serialises the writes.
	s.cmd.Stdout = s.output
	s.cmd.Stderr = s.output
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(); err != nil {
		s.Stop()
		return nil, fmt.Errorf("%w\nprometheus output:\n%s", err, s.output.String())
	}
	return s, nil
}

// freePort asks the kernel for a port that is free right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls /-/ready until it answers 200, the process exits, or
// readyTimeout passes.
func (s *Server) waitReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/-/ready", nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("prometheus exited before it was ready: %v", s.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("prometheus not ready after %s", readyTimeout)
		case <-tick.C:
		}
	}
}

// URL is the base URL of the server, e.g. http://127.0.0.1:41234.
func (s *Server) URL() string { return s.url }

// Stop kills the server and waits for it to exit. Tests call it to simulate
// an outage; the URL then refuses connections. Calling it again is a no-op.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		// Kill, not SIGTERM: an outage is abrupt, and a clean shutdown of the
		// TSDB only costs time here.
		_ = s.cmd.Process.Kill()
		<-s.exited
	})
}

// Output is what the server printed so far.
func (s *Server) Output() string { return s.output.String() }

// syncBuffer is a bytes.Buffer that the process and the test may use at the
// same time.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
