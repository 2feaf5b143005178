package testkube

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
)

const (
	// gatewayModule is the Go module whose manifests InstallGatewayAPI
	// applies: the one whose clientset Gateway returns, so the CRD and the
	// Go types always come from the same release.
	gatewayModule = "sigs.k8s.io/gateway-api"
	// crdTimeout bounds the wait for an installed CRD to be served. The
	// HTTPRoute CRD carries many CEL rules, which the server compiles
	// first.
	crdTimeout = time.Minute
	// fieldManager names this package in the objects' managedFields.
	fieldManager = "testkube"
	// createDelay is how long after a CRD became Established the server
	// holds every create of its resources for 2 s: in a cluster of several
	// servers, another one might not serve the resource yet
	// (apiextensions-apiserver, customresource_handler.go). The condition's
	// time is stored to the second, so the window ends 1 to 2 s after the
	// CRD was really Established. The margin is for rounding.
	createDelay = 2*time.Second + 10*time.Millisecond
)

// gatewayCRDs are the manifests, relative to the module's directory, that
// InstallGatewayAPI applies. The traffic routers change HTTPRoutes only; an
// HTTPRoute may name a Gateway that does not exist, so the Gateway and
// GatewayClass CRDs are not needed.
var gatewayCRDs = []string{
	"config/crd/standard/gateway.networking.k8s.io_httproutes.yaml",
}

// crdResource is the API of CustomResourceDefinitions. The CRDs go through
// the dynamic client: the typed one lives in k8s.io/apiextensions-apiserver,
// a module this repository does not otherwise need.
var crdResource = schema.GroupVersionResource{
	Group:    "apiextensions.k8s.io",
	Version:  "v1",
	Resource: "customresourcedefinitions",
}

// InstallGatewayAPI installs the standard HTTPRoute CRD of the Gateway API
// module in go.mod, and returns once HTTPRoutes are served. Only the first
// call on a cluster installs; later ones return at once, so every test
// that uses HTTPRoutes may call it on a shared cluster.
//
// The CRD is the real one, with its OpenAPI schema, defaults and CEL rules:
// the server rejects an HTTPRoute that a Gateway controller would never
// see.
func (c *Cluster) InstallGatewayAPI(t testing.TB) {
	t.Helper()
	c.installCRDs(t, "Gateway API", loadGatewayCRDs)
}

// InstallArgoRollouts installs Argo Rollouts' Rollout CRD, the real one
// from the argo-rollouts module in go.mod, and returns once Rollouts are
// served; only the first call on a cluster installs. Nothing runs the
// Rollouts: tests use them to see that a Deployment one names is left
// alone.
func (c *Cluster) InstallArgoRollouts(t testing.TB) {
	t.Helper()
	c.installCRDs(t, "Argo Rollouts", loadArgoCRDs)
}

// InstallFlagger installs a Canary CRD of Flagger's group, version and
// names whose schema keeps any field: Flagger publishes no Go module with
// its CRDs, and the tests only need Canaries to exist and be listed.
func (c *Cluster) InstallFlagger(t testing.TB) {
	t.Helper()
	c.installCRDs(t, "Flagger", func() ([]*unstructured.Unstructured, error) {
		obj := &unstructured.Unstructured{}
		return []*unstructured.Unstructured{obj}, obj.UnmarshalJSON([]byte(flaggerCRD))
	})
}

// flaggerCRD is a Canary CRD with Flagger's names and an open schema.
const flaggerCRD = `{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
"metadata":{"name":"canaries.flagger.app"},
"spec":{"group":"flagger.app","scope":"Namespaced",
"names":{"kind":"Canary","listKind":"CanaryList","plural":"canaries","singular":"canary"},
"versions":[{"name":"v1beta1","served":true,"storage":true,
"schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]}}`

// installCRDs installs the CRDs load returns under the name what, once
// per cluster, and waits until they are served.
func (c *Cluster) installCRDs(t testing.TB, what string, load func() ([]*unstructured.Unstructured, error)) {
	t.Helper()
	c.gatewayMu.Lock()
	defer c.gatewayMu.Unlock()
	if c.installed[what] {
		return
	}
	crds, err := load()
	if err != nil {
		t.Fatalf("install %s: %v", what, err)
	}
	ctx, cancel := context.WithTimeoutCause(t.Context(), crdTimeout,
		fmt.Errorf("install %s: not done after %s", what, crdTimeout))
	defer cancel()
	client, err := dynamic.NewForConfig(c.Config())
	if err != nil {
		t.Fatalf("install %s: %v", what, err)
	}
	crdClient := client.Resource(crdResource)
	for _, crd := range crds {
		// Objects handed to Create must not be shared: another cluster of
		// the same binary installs from the same cache.
		_, err := crdClient.Create(ctx, crd.DeepCopy(), metav1.CreateOptions{FieldManager: fieldManager})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("install %s: create CRD %s: %v", what, crd.GetName(), err)
		}
	}
	var settled time.Time
	for _, crd := range crds {
		since, err := c.waitServed(ctx, crdClient, client, crd)
		if err != nil {
			t.Fatalf("install %s: %v", what, err)
		}
		if end := since.Add(createDelay); end.After(settled) {
			settled = end
		}
	}
	// Wait out the server's own delay here, once, rather than have the
	// tests' first creates stall for it (see createDelay).
	select {
	case <-time.After(time.Until(settled)):
	case <-ctx.Done():
		t.Fatalf("install %s: %v", what, context.Cause(ctx))
	}
	if c.installed == nil {
		c.installed = map[string]bool{}
	}
	c.installed[what] = true
}

// waitServed waits until the CRD is Established and a list of its
// resources succeeds, and returns when the CRD became Established.
// Established alone is not enough: for a moment after it, requests for the
// new resource may still get a 404.
func (c *Cluster) waitServed(ctx context.Context, crdClient dynamic.NamespaceableResourceInterface,
	client dynamic.Interface, crd *unstructured.Unstructured) (time.Time, error) {
	name := crd.GetName()
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")

	var since time.Time
	check := func(ctx context.Context) error {
		got, err := crdClient.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		var ok bool
		if since, ok = established(got); !ok {
			return fmt.Errorf("CRD %s is not Established", name)
		}
		for _, v := range versions {
			spec, _ := v.(map[string]any)
			version, _, _ := unstructured.NestedString(spec, "name")
			gvr := schema.GroupVersionResource{Group: group, Version: version, Resource: plural}
			if _, err := client.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
				return fmt.Errorf("list %s: %w", gvr, err)
			}
		}
		return nil
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		last := check(ctx)
		if last == nil {
			return since, nil
		}
		if err := c.alive(); err != nil {
			return time.Time{}, err
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%s not served: %w (last check: %v)", name, context.Cause(ctx), last)
		case <-tick.C:
		}
	}
}

// established reports whether a CRD has the condition Established=True,
// and since when.
func established(crd *unstructured.Unstructured) (time.Time, bool) {
	conditions, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conditions {
		cond, ok := c.(map[string]any)
		if !ok || cond["type"] != "Established" || cond["status"] != "True" {
			continue
		}
		// Without a readable time, assume it just happened: waiting the
		// full delay is safe.
		since := time.Now()
		if s, ok := cond["lastTransitionTime"].(string); ok {
			if t, err := time.Parse(time.RFC3339, s); err == nil {
				since = t
			}
		}
		return since, true
	}
	return time.Time{}, false
}

// loadArgoCRDs reads and decodes Argo Rollouts' Rollout CRD once per test
// binary.
var loadArgoCRDs = sync.OnceValues(func() ([]*unstructured.Unstructured, error) {
	dir, err := moduleDir("github.com/argoproj/argo-rollouts")
	if err != nil {
		return nil, err
	}
	return decodeManifest(filepath.Join(dir, "manifests", "crds", "rollout-crd.yaml"))
})

// loadGatewayCRDs reads and decodes gatewayCRDs once per test binary.
var loadGatewayCRDs = sync.OnceValues(func() ([]*unstructured.Unstructured, error) {
	dir, err := moduleDir(gatewayModule)
	if err != nil {
		return nil, err
	}
	var crds []*unstructured.Unstructured
	for _, name := range gatewayCRDs {
		objs, err := decodeManifest(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		crds = append(crds, objs...)
	}
	return crds, nil
})

// moduleDir is the directory of the module path as the main module
// requires it. `go list -m` knows about replace directives, GOFLAGS and a
// GOMODCACHE set with `go env -w`. `go test` puts its own go first on the
// test's PATH, and the test runs inside the main module.
func moduleDir(path string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("find module %s: go list -m: %w: %s", path, err, strings.TrimSpace(stderr.String()))
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		// An empty Dir means the module is required but not downloaded.
		return "", fmt.Errorf("find module %s: not in the module cache: run go mod download %s", path, path)
	}
	return dir, nil
}

// decodeManifest decodes the CustomResourceDefinitions in a YAML file of
// one or more documents.
func decodeManifest(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	docs := yaml.NewYAMLReader(bufio.NewReader(f))
	var objs []*unstructured.Unstructured
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		data, err := yaml.ToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if string(data) == "null" {
			continue // an empty document, as before a leading ---
		}
		// Unstructured's own UnmarshalJSON keeps integers int64, as the
		// dynamic client needs them; encoding/json would make them
		// float64.
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(data); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if gvk := obj.GroupVersionKind(); gvk.Group != crdResource.Group || gvk.Kind != "CustomResourceDefinition" {
			return nil, fmt.Errorf("%s: %s %s is no CustomResourceDefinition", path, gvk, obj.GetName())
		}
		objs = append(objs, obj)
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("%s: no CustomResourceDefinition", path)
	}
	return objs, nil
}
