package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLeanDependencies keeps Prometheus's server out of the binary. The
// embedded PromQL engine needs only promql and its parser; Prometheus's
// TSDB, configuration, service discovery and remote storage once came
// along with it (through tsdb), and with them the AWS, Azure and Google
// Cloud SDKs, Consul, Nomad, Docker and a dozen more discovery clients,
// which `canary` never calls but which every image pull, cold build and
// vulnerability scan paid for.
//
// promql's storage interface package imports three small leaves under
// tsdb/ (chunk encodings, chunk metadata, file helpers); those are
// allowed, and nothing else under tsdb/ is.
//
// Nothing of Argo Rollouts is linked either: `canary import argo` decodes
// templates into the importer's own types, as Argo's API package brought
// all of Argo's generated API code (about 2 MB of the stripped binary) for
// a dozen fields. Tests may import Argo's packages, to hold the importer
// to Argo's own code.
func TestLeanDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	require.NoError(t, err, "the go command is needed to list the binary's packages")
	cmd := exec.Command(goTool, "list", "-deps", ".")
	// As `make build` and the Dockerfile build it.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		t.Fatalf("go list -deps: %v\n%s", err, ee.Stderr)
	}
	require.NoError(t, err)
	pkgs := strings.Fields(string(out))
	require.Contains(t, pkgs, "github.com/prometheus/prometheus/promql", "the embedded engine is Prometheus's PromQL engine")

	const prom = "github.com/prometheus/prometheus/"
	allowedTSDB := map[string]bool{prom + "tsdb/chunkenc": true, prom + "tsdb/chunks": true, prom + "tsdb/fileutil": true}
	forbidden := []string{prom + "tsdb", prom + "config", prom + "discovery", prom + "storage/remote", prom + "scrape", prom + "web",
		"github.com/aws/", "github.com/Azure/", "cloud.google.com/go", "google.golang.org/api",
		"github.com/hashicorp/consul", "github.com/hashicorp/nomad", "github.com/docker/", "github.com/ovh/",
		"github.com/linode/", "github.com/hetznercloud/", "github.com/digitalocean/", "github.com/gophercloud/",
		"github.com/argoproj/argo-rollouts/"}
	var bad []string
	for _, p := range pkgs {
		if allowedTSDB[p] {
			continue
		}
		for _, f := range forbidden {
			if p == f || strings.HasPrefix(p, strings.TrimSuffix(f, "/")+"/") {
				bad = append(bad, p)
				break
			}
		}
	}
	require.Empty(t, bad, "packages ./cmd/canary must not link; find who imports them with `go mod why -m` or `go list -deps`")
	t.Logf("./cmd/canary links %d packages", len(pkgs))
}
