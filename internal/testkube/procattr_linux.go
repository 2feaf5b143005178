package testkube

import "syscall"

// serverAttr is how etcd and kube-apiserver start: with SIGKILL from the
// kernel when the test process dies without running its cleanups, as after
// a test timeout or a SIGKILL. Otherwise they would outlive it, holding
// their ports, and a shared cluster would outlive every test binary.
func serverAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
