package testkube

import (
	"context"
	"fmt"
	"os/exec"
	"time"

	"github.com/aurum/canary/internal/testproc"
)

// process is a running etcd or kube-apiserver. Stop kills it: SIGKILL
// rather than a graceful shutdown, as kube-apiserver's takes seconds and
// everything either server holds is thrown away with the test's directory.
type process struct {
	*testproc.Process
	name string
	cmd  *exec.Cmd
}

// startProcess runs bin with args, its stdout and stderr going into one
// buffer.
func startProcess(name, bin string, args ...string) (*process, error) {
	cmd := exec.Command(bin, args...)
	// The parent-death signal in serverAttr works because testproc.Start
	// keeps the thread that started the server until the server exits.
	cmd.SysProcAttr = serverAttr()
	p, err := testproc.Start(name, cmd)
	if err != nil {
		return nil, err
	}
	return &process{Process: p, name: name, cmd: cmd}, nil
}

// alive is nil while the process runs, and says how it ended otherwise.
func (p *process) alive() error {
	select {
	case <-p.Exited():
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
		case <-p.Exited():
			return fmt.Errorf("%s exited before it was %s: %v (last check: %v)", p.name, what, p.cmd.ProcessState, last)
		case <-ctx.Done():
			return fmt.Errorf("%s not %s: %w (last check: %v)", p.name, what, context.Cause(ctx), last)
		case <-tick.C:
		}
	}
}
