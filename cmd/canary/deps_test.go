package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLeanDependencies keeps what `canary` never calls out of the binary
// (issue 17: 100 MB and 1,325 packages before, paid for by every image
// pull, cold build and vulnerability scan):
//
//   - Prometheus's server. The embedded PromQL engine needs only promql
//     and its parser; Prometheus's TSDB, configuration, service discovery
//     and remote storage once came along (through tsdb), and with them the
//     AWS, Azure and Google Cloud SDKs, Consul, Nomad, Docker and a dozen
//     more discovery clients. promql's storage interface package imports
//     three small leaves under tsdb/ (chunk encodings, chunk metadata, file
//     helpers); those are allowed, and nothing else under tsdb/ is.
//   - client-go's generated clientsets (k8s.io/client-go/kubernetes, its
//     scheme, typed clients and fakes) and discovery, which register and
//     link every Kubernetes API group: traffic/kube builds the clients the
//     routers and the Deployment manager need (Ingresses, HTTPRoutes,
//     Deployments), and the demo has its own API of Ingresses and
//     Deployments. client-go's dynamic client, for the look-up of Argo
//     Rollouts and Flagger objects, is one package and allowed.
//   - client-go's generic typed client (gentype) and client-go/testing,
//     which it imports for its fakes: with them came server-side apply's
//     field management, the Kubernetes OpenAPI models, gnostic and
//     protobuf descriptors, 49 packages and 2.7 MB that the linker does not
//     drop. traffic/kube sends the same requests with its own client.
//   - gin's MessagePack codec, left out by the nomsgpack build tag.
//   - Argo Rollouts' API: `canary import argo` decodes templates into the
//     importer's own types, as Argo's package brought all of Argo's
//     generated API code (about 2 MB of the stripped binary) for a dozen
//     fields. Tests may import Argo's packages, to hold the importer to
//     Argo's own code.
//
// It lists the packages as `make build` builds them: with the Makefile's
// tags and without cgo.
func TestLeanDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	require.NoError(t, err, "the go command is needed to list the binary's packages")
	makefile, err := os.ReadFile("../../Makefile")
	require.NoError(t, err)
	tags := regexp.MustCompile(`(?m)^TAGS\s*:?=\s*(\S+)`).FindSubmatch(makefile)
	require.NotNil(t, tags, "the Makefile sets no TAGS")
	cmd := exec.Command(goTool, "list", "-tags", string(tags[1]), "-deps", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		t.Fatalf("go list -deps: %v\n%s", err, ee.Stderr)
	}
	require.NoError(t, err)
	pkgs := strings.Fields(string(out))
	require.Contains(t, pkgs, "github.com/prometheus/prometheus/promql", "the embedded engine is Prometheus's PromQL engine")

	const prom = "github.com/prometheus/prometheus/"
	allowed := map[string]bool{prom + "tsdb/chunkenc": true, prom + "tsdb/chunks": true, prom + "tsdb/fileutil": true}
	forbidden := []string{
		prom + "tsdb", prom + "config", prom + "discovery", prom + "storage/remote", prom + "scrape", prom + "web",
		"github.com/aws/", "github.com/Azure/", "cloud.google.com/go", "google.golang.org/api",
		"github.com/hashicorp/consul", "github.com/hashicorp/nomad", "github.com/docker/", "github.com/ovh/",
		"github.com/linode/", "github.com/hetznercloud/", "github.com/digitalocean/", "github.com/gophercloud/",
		"k8s.io/client-go/kubernetes", "k8s.io/client-go/discovery",
		"k8s.io/client-go/gentype", "k8s.io/client-go/testing",
		"sigs.k8s.io/gateway-api/pkg/client",
		"github.com/ugorji/go",
		"github.com/argoproj/argo-rollouts/",
	}
	var bad []string
	for _, p := range pkgs {
		if allowed[p] {
			continue
		}
		for _, f := range forbidden {
			if p == f || strings.HasPrefix(p, strings.TrimSuffix(f, "/")+"/") {
				bad = append(bad, p)
				break
			}
		}
	}
	require.Empty(t, bad, "packages ./cmd/canary must not link; find who imports them with `go mod why` or `go list -deps -f '{{.ImportPath}}: {{.Imports}}'`")
	t.Logf("./cmd/canary links %d packages", len(pkgs))
}
