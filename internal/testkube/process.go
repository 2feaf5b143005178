package testkube

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"sync"
	"time"
)

// process is a running etcd or kube-apiserver.
type process struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been waited for
	output *syncBuffer

	killOnce sync.Once
}

// startProcess runs bin with args, its stdout and stderr going into one
// buffer.
func startProcess(name, bin string, args ...string) (*process, error) {
	p := &process{
		name:   name,
		cmd:    exec.Command(bin, args...),
		exited: make(chan struct{}),
		output: &syncBuffer{},
	}
	// One writer for both streams: os/exec then serialises the writes.
	p.cmd.Stdout = p.output
	p.cmd.Stderr = p.output
	p.cmd.SysProcAttr = serverAttr()
	started := make(chan error, 1)
	go func() {
		// The kernel sends the parent-death signal when the thread that
		// started the process ends, not the process (go.dev/issue/27505):
		// this goroutine keeps its thread until the server has exited.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := p.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	return p, nil
}

// kill kills the process and waits for it to exit. SIGKILL rather than a
// graceful shutdown: kube-apiserver's takes seconds, and everything either
// server holds is thrown away with the test's directory.
func (p *process) kill() {
	p.killOnce.Do(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
}

// alive is nil while the process runs, and says how it ended otherwise.
func (p *process) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited: %v", p.name, p.cmd.ProcessState)
	default:
		return nil
	}
}

// waitFor calls check every pollInterval until it returns nil, the process
// exits, or ctx ends. The error then has the last check's error.
func (p *process) waitFor(ctx context.Context, what string, check func(context.Context) error) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		last := check(ctx)
		if last == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before it was %s: %v (last check: %v)", p.name, what, p.cmd.ProcessState, last)
		case <-ctx.Done():
			return fmt.Errorf("%s not %s: %w (last check: %v)", p.name, what, context.Cause(ctx), last)
		case <-tick.C:
		}
	}
}

// freePorts asks the kernel for n distinct ports that are free right now.
// All listeners stay open until the last port is known, so that the kernel
// cannot hand out one port twice.
func freePorts(n int) ([]int, error) {
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

// syncBuffer is a bytes.Buffer that a process and the test may use at the
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
