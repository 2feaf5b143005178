package tcpprobe_test

import (
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// unanswered returns the address of a listener that never answers a new
// connection: its accept queue, one connection long, is full and nothing
// accepts. Linux drops a SYN to a full queue, so a dial waits for its
// timeout as it would for a host that has gone away, but on loopback and
// deterministically. (A non-routable address such as 10.255.255.1 is not:
// in some sandboxes a proxy answers for it.)
func unanswered(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Close(fd) })
	require.NoError(t, syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	// net.Listen would use the system's somaxconn (4096) as the backlog;
	// 0 lets one connection wait.
	require.NoError(t, syscall.Listen(fd, 0))
	sa, err := syscall.Getsockname(fd)
	require.NoError(t, err)
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)

	for range 8 {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return addr // the queue is full
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	t.Fatalf("the accept queue of %s did not fill up", addr)
	return ""
}
