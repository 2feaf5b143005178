// Package testproc runs the real server binaries that test harnesses start,
// such as Prometheus, Alertmanager, PostgreSQL, etcd and kube-apiserver.
//
// Every harness needs the same plumbing around a child process: one buffer
// for what it prints, which the test reads while the process still writes;
// a way to learn that it has exited, so that a wait for readiness fails at
// once instead of at its timeout; a stop that is safe to call from a test
// and again from its cleanup; and free ports to listen on. What differs
// between harnesses (the readiness probe, a graceful shutdown, the user a
// server runs as) stays in the harness.
package testproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"sync"
	"time"
)

// pollInterval is how often WaitHTTP asks again. Cheap requests to
// 127.0.0.1; a short interval takes little off every start.
const pollInterval = 20 * time.Millisecond

// Process is a started child process. Its stdout and stderr go into one
// buffer, and a goroutine waits for it, so that it never stays a zombie and
// Exited can tell everyone that it ended.
type Process struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait has returned
	err    error         // what cmd.Wait returned; read only after exited
	output Buffer

	stopOnce sync.Once
}

// Start starts cmd, with its stdout and stderr going into the buffer that
// Output reads; whatever cmd.Stdout and cmd.Stderr were is replaced. name
// is how errors call the program, such as "prometheus".
//
// cmd starts from a goroutine that keeps its OS thread until the process
// has exited. A parent-death signal that the caller sets in
// cmd.SysProcAttr (Pdeathsig, Linux) is sent when the thread that started
// the child ends, not the test process (go.dev/issue/27505): without the
// locked thread the server could be signalled in the middle of a test.
func Start(name string, cmd *exec.Cmd) (*Process, error) {
	p := &Process{name: name, cmd: cmd, exited: make(chan struct{})}
	// One writer for both streams: os/exec then serialises the writes, and
	// the output reads in the order the process wrote it.
	cmd.Stdout = &p.output
	cmd.Stderr = &p.output
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("run %s: %w", cmd.Path, err)
	}
	return p, nil
}

// Exited is closed once the process has exited and been waited for. After
// that, the caller's cmd.ProcessState says how it ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Wait blocks until the process has exited and returns what exec.Cmd.Wait
// returned: nil for exit status 0, an *exec.ExitError otherwise. Tests
// that stop a server gracefully use it to check that it exited cleanly.
func (p *Process) Wait() error {
	<-p.exited
	return p.err
}

// Output is what the process has printed so far, stdout and stderr
// interleaved as written.
func (p *Process) Output() string { return p.output.String() }

// Stop kills the process and waits for it to exit. SIGKILL rather than a
// graceful shutdown: the harnesses throw a server's files away with the
// test, and tests that stop a server do so to simulate an abrupt outage.
// Calling Stop again, or after the process has exited, is a no-op.
func (p *Process) Stop() {
	p.stopOnce.Do(func() {
		// An error only says that the process has already exited.
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
}

// WaitHTTP polls url until it answers 200 OK, the process exits, timeout
// passes or ctx ends. Any other answer or a refused connection counts as
// not ready yet. The error names the program: "prometheus exited before it
// was ready: exit status 1" or "prometheus not ready after 30s". Checking
// for an exit is what makes a server that rejects its flags fail the test
// at once rather than after the whole timeout.
func (p *Process) WaitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	notReady := fmt.Errorf("%s not ready after %s", p.name, timeout)
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, notReady)
	defer cancel()
	// A second per request: a server that accepts the connection but hangs
	// must not use up the whole timeout in one try.
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			// Drained, so that the connection is reused for the next try.
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before it was ready: %v", p.name, p.cmd.ProcessState)
		case <-ctx.Done():
			if cause := context.Cause(ctx); !errors.Is(cause, notReady) {
				return fmt.Errorf("%s not ready: %w", p.name, cause)
			}
			return notReady
		case <-tick.C:
		}
	}
}

// FreePort asks the kernel for a port of 127.0.0.1 that is free right now.
// Another process may take it before the server binds it; harnesses retry
// with a fresh port when that happens.
func FreePort() (int, error) {
	ports, err := FreePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// FreePorts asks the kernel for n distinct ports of 127.0.0.1 that are free
// right now, for a server that listens on several. All listeners stay open
// until the last port is known, so that the kernel cannot hand out one port
// twice.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Buffer is a bytes.Buffer that one goroutine may write while another
// reads it: a process's output while the test looks at it, or a logger's
// while handlers on other goroutines log. The zero value is empty and
// ready to use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
