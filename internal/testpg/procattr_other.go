//go:build !linux

package testpg

import "syscall"

// serverAttr is how the server process starts: as cred. Only Linux can
// tie the server's life to the test process's.
func serverAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}
