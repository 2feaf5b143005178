package testpg

import "syscall"

// serverAttr is how the server process starts: as cred, and with SIGINT
// (a fast shutdown) from the kernel when the test process dies without
// running its cleanups, as after a test timeout or a SIGKILL. Otherwise
// the server would outlive it, holding its port and files.
func serverAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGINT}
}
