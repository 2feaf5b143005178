//go:build !linux

package testkube

import "syscall"

// serverAttr is how etcd and kube-apiserver start. Only Linux can tie their
// lives to the test process's.
func serverAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{}
}
