package testkube

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// shared is the cluster that the tests of one test binary share.
var shared struct {
	mu      sync.Mutex
	inMain  bool     // Main is running the tests
	cluster *Cluster // started by the first Shared
	dir     string   // the cluster's directory, removed by Main
	err     error    // why the cluster could not start, for every later Shared
}

// Main runs the tests of a package that uses Shared, then stops the shared
// cluster, if a test started one, and removes its directory. The package
// calls it from its TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testkube.Main(m)) }
//
// When a test failed, Main prints what etcd and kube-apiserver printed.
func Main(m *testing.M) int {
	shared.mu.Lock()
	shared.inMain = true
	shared.mu.Unlock()

	code := m.Run()

	shared.mu.Lock()
	defer shared.mu.Unlock()
	if c := shared.cluster; c != nil {
		c.Stop()
		if code != 0 {
			fmt.Fprintf(os.Stderr, "testkube: shared cluster\n%s", c.Output())
		}
	}
	if shared.dir != "" {
		if err := os.RemoveAll(shared.dir); err != nil {
			fmt.Fprintf(os.Stderr, "testkube: remove the shared cluster's directory: %v\n", err)
		}
	}
	return code
}

// Shared returns the cluster of the test binary, and starts it on the
// first call. A cluster takes seconds to start; sharing one makes that a
// one-off cost. Tests keep apart by using namespaces of their own (see
// Namespace) and may run in parallel. InstallGatewayAPI may be called by
// every test that needs it; only the first call installs.
//
// The package's TestMain must run the tests through Main, which stops the
// cluster when they are done: a test's cleanup cannot, as the cluster
// outlives the test that started it. Without Main, Shared fails the test.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.inMain {
		t.Fatalf("testkube.Shared needs the package's TestMain to run the tests through testkube.Main, " +
			"which stops the shared cluster: func TestMain(m *testing.M) { os.Exit(testkube.Main(m)) }")
	}
	if shared.err != nil {
		t.Fatalf("shared cluster: %v", shared.err)
	}
	if shared.cluster == nil {
		shared.err = startShared()
		if shared.err != nil {
			t.Fatalf("shared cluster: %v", shared.err)
		}
	}
	if err := shared.cluster.alive(); err != nil {
		t.Fatalf("shared cluster: %v\n%s", err, shared.cluster.Output())
	}
	return shared.cluster
}

// startShared starts the shared cluster in a directory of its own, which
// Main removes: t.TempDir would be removed with the first test.
func startShared() error {
	bins, err := findBinaries()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "testkube-")
	if err != nil {
		return fmt.Errorf("directory for the shared cluster: %w", err)
	}
	c, err := start(bins, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return fmt.Errorf("start kube-apiserver: %w", err)
	}
	shared.cluster, shared.dir = c, dir
	return nil
}
