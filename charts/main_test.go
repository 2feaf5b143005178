// Package charts_test tests the Helm chart in charts/canary and the
// repository's Dockerfile.
//
// The chart is rendered and linted by the real helm, built from the Go
// module proxy at a pinned version. Its manifests are decoded strictly into
// the Kubernetes types, sent to a real kube-apiserver as a server-side dry
// run, and the canary.yml it renders is loaded by the real canary binary.
// There is no Docker engine on the CI machines, so the Dockerfile's build
// command is run as it is, on a copy of the build context, and the binary it
// makes is checked to be static.
package charts_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/internal/testkube"
)

// helmModule is the helm the tests run, the same as the Makefile's HELM.
const helmModule = "helm.sh/helm/v3/cmd/helm@v3.22.0"

// TestMain runs the tests through testkube.Main, which stops the shared
// kube-apiserver, then removes the binaries the tests built.
func TestMain(m *testing.M) {
	code := testkube.Main(m)
	if tools.dir != "" {
		_ = os.RemoveAll(tools.dir)
	}
	os.Exit(code)
}

// repoRoot is the repository's root: the test runs in charts/.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	return root
}

func chartDir(t testing.TB) string { return filepath.Join(repoRoot(t), "charts", "canary") }

// tools are the binaries the tests build once per test binary, in a
// directory that TestMain removes.
var tools struct {
	mu     sync.Mutex
	dir    string
	helm   string
	canary string
}

// toolDir is the directory of the shared binaries; the caller holds
// tools.mu. Not t.TempDir: the binaries outlive the test that builds them.
func toolDir(t testing.TB) string {
	t.Helper()
	if tools.dir == "" {
		dir, err := os.MkdirTemp("", "charts-test-")
		require.NoError(t, err)
		tools.dir = dir
	}
	return tools.dir
}

// helm returns the path of the pinned helm, built on first use. `go install`
// into a directory of our own builds it once: `go run` would link it again
// for every call. The first build downloads helm's modules through the
// module proxy and takes about two minutes; later ones come from the build
// cache.
func helm(t testing.TB) string {
	t.Helper()
	tools.mu.Lock()
	defer tools.mu.Unlock()
	if tools.helm != "" {
		return tools.helm
	}
	bin := filepath.Join(toolDir(t), "bin")
	cmd := exec.Command("go", "install", helmModule)
	// Outside the module: helm's dependencies are its own, not go.mod's.
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOWORK=off")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go install %s:\n%s", helmModule, out)
	tools.helm = filepath.Join(bin, "helm")
	return tools.helm
}

// runHelm runs helm with its cache, config and data kept in a temporary
// directory, and returns stdout and stderr together with the error.
func runHelm(t testing.TB, args ...string) (string, error) {
	t.Helper()
	bin := helm(t)
	tools.mu.Lock()
	home := filepath.Join(toolDir(t), "helm-home")
	tools.mu.Unlock()
	cmd := exec.Command(bin, args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// canary returns the path of a canary binary built by the Dockerfile's own
// build command (see dockerfile_test.go), built on first use.
func canary(t testing.TB) string {
	t.Helper()
	tools.mu.Lock()
	defer tools.mu.Unlock()
	if tools.canary != "" {
		return tools.canary
	}
	out := filepath.Join(toolDir(t), "canary")
	buildFromDockerfile(t, out, "v0.0.0-charts-test")
	tools.canary = out
	return out
}
