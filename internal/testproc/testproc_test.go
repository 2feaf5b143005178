package testproc

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// start starts a process and stops it when the test ends.
func start(t *testing.T, name string, args ...string) *Process {
	t.Helper()
	p, err := Start(name, exec.Command(name, args...))
	require.NoError(t, err)
	t.Cleanup(p.Stop)
	return p
}

func TestStart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		script     string
		wantErr    string
		wantOutput string
	}{
		{name: "exit 0", script: "exit 0"},
		{name: "exit status", script: "exit 3", wantErr: "exit status 3"},
		{name: "both streams in write order", script: "echo one; echo two >&2; echo three",
			wantOutput: "one\ntwo\nthree\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := start(t, "sh", "-c", tt.script)
			err := p.Wait()
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tt.wantOutput, p.Output())
			select {
			case <-p.Exited():
			default:
				t.Fatal("Exited is open after Wait returned")
			}
		})
	}

	t.Run("missing binary", func(t *testing.T) {
		t.Parallel()
		_, err := Start("nothing", exec.Command("/nonexistent/nothing"))
		require.ErrorContains(t, err, "run /nonexistent/nothing: ")
	})
}

func TestStop(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		before  func(p *Process) // what happens to the process before Stop
		wantErr string
	}{
		{name: "running", before: func(*Process) {}, wantErr: "signal: killed"},
		{name: "twice", before: func(p *Process) { p.Stop() }, wantErr: "signal: killed"},
		{name: "concurrently", before: func(p *Process) { go p.Stop() }, wantErr: "signal: killed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := start(t, "sleep", "60")
			tt.before(p)
			p.Stop()
			select {
			case <-p.Exited():
			default:
				t.Fatal("Exited is open after Stop returned")
			}
			require.EqualError(t, p.Wait(), tt.wantErr)
		})
	}

	t.Run("after exit", func(t *testing.T) {
		t.Parallel()
		p := start(t, "true")
		require.NoError(t, p.Wait())
		p.Stop()
		require.NoError(t, p.Wait(), "Stop after the exit changed how it ended")
	})
}

func TestWaitHTTP(t *testing.T) {
	t.Parallel()
	// ready answers 503 to the first two requests and 200 from then on, as
	// a server that is still starting up does.
	var calls atomic.Int32
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(ready.Close)
	starting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(starting.Close)
	refused := closedURL(t)

	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	// The processes run sleep or sh themselves: a process that sh -c
	// forks would keep the output pipe open after Stop kills sh, and Wait
	// would wait for it.
	tests := []struct {
		name    string
		args    []string
		ctx     context.Context
		url     string
		timeout time.Duration
		wantErr string
	}{
		{name: "ready after a few tries", args: []string{"sleep", "60"}, url: ready.URL, timeout: 30 * time.Second},
		{name: "exits first", args: []string{"sh", "-c", "exit 2"}, url: starting.URL, timeout: 30 * time.Second,
			wantErr: "sh exited before it was ready: exit status 2"},
		{name: "exits while refusing connections", args: []string{"sh", "-c", "exit 1"}, url: refused, timeout: 30 * time.Second,
			wantErr: "sh exited before it was ready: exit status 1"},
		{name: "times out", args: []string{"sleep", "60"}, url: starting.URL, timeout: 200 * time.Millisecond,
			wantErr: "sleep not ready after 200ms"},
		{name: "context ends", args: []string{"sleep", "60"}, ctx: canceled, url: starting.URL, timeout: 30 * time.Second,
			wantErr: "sleep not ready: context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			p := start(t, tt.args[0], tt.args[1:]...)
			err := p.WaitHTTP(ctx, tt.url, tt.timeout)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tt.wantErr)
		})
	}
}

// closedURL is the URL of a port that refuses connections.
func closedURL(t *testing.T) string {
	t.Helper()
	port, err := FreePort()
	require.NoError(t, err)
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

func TestFreePorts(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			ports, err := FreePorts(n)
			require.NoError(t, err)
			require.Len(t, ports, n)
			seen := map[int]bool{}
			for _, port := range ports {
				require.False(t, seen[port], "port %d twice in %v", port, ports)
				seen[port] = true
				// Free means a server can bind it now.
				l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
				require.NoError(t, err)
				require.NoError(t, l.Close())
			}
		})
	}
}

func TestBuffer(t *testing.T) {
	t.Parallel()
	// Writers and a reader at once: the race detector checks the locking.
	var b Buffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				_, _ = b.Write([]byte("x"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	require.Len(t, b.String(), 400)
}
