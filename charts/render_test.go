package charts_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
)

// release and namespace are what the tests install the chart as, unless a
// test gives a namespace of its own. The chart's full name is then
// "canary" too.
const (
	release   = "canary"
	namespace = "canary"
)

// customGroup is the API group of the prometheus-operator kinds the chart
// renders (ServiceMonitor, PrometheusRule). Their Go types are not a
// dependency of this repository, so they are checked as unstructured
// objects.
const customGroup = "monitoring.coreos.com"

// strictDecoder decodes manifests into the typed Kubernetes objects and
// fails on any field the type does not have, as the API server's strict
// field validation does.
var strictDecoder = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// object is one rendered manifest.
type object struct {
	source string // the template, from helm's "# Source:" line
	u      *unstructured.Unstructured
	typed  runtime.Object // nil for the prometheus-operator kinds
}

func (o object) String() string { return o.u.GetKind() + " " + o.u.GetName() + " (" + o.source + ")" }

// manifests are the objects of one rendering.
type manifests []object

// ciValues returns the values files in charts/canary/ci, which the chart
// must lint, render and install with.
func ciValues(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir(t), "ci", "*.yaml"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 5, "charts/canary/ci has a values file per configuration")
	return files
}

// render runs helm template with the given arguments (values files, --set,
// --namespace) and decodes what it prints.
func render(t testing.TB, args ...string) manifests {
	t.Helper()
	if !slices.Contains(args, "--namespace") {
		args = append(args, "--namespace", namespace)
	}
	out, err := runHelm(t, append([]string{"template", release, chartDir(t)}, args...)...)
	require.NoError(t, err)
	return decodeManifests(t, out)
}

// decodeManifests splits helm's output into documents and decodes each:
// strictly into its Kubernetes type, or as unstructured for the
// prometheus-operator kinds.
func decodeManifests(t testing.TB, out string) manifests {
	t.Helper()
	var objs manifests
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(out)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		source := ""
		for _, line := range strings.Split(string(doc), "\n") {
			if s, ok := strings.CutPrefix(line, "# Source: "); ok {
				source = s
			}
		}
		js, err := utilyaml.ToJSON(doc)
		require.NoError(t, err, "%s", source)
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue // only comments
		}
		u := &unstructured.Unstructured{}
		require.NoError(t, u.UnmarshalJSON(js), "%s:\n%s", source, doc)
		o := object{source: source, u: u}
		if u.GroupVersionKind().Group != customGroup {
			o.typed, _, err = strictDecoder.Decode(doc, nil, nil)
			require.NoError(t, err, "%s does not decode strictly:\n%s", source, doc)
		}
		objs = append(objs, o)
	}
	require.NotEmpty(t, objs)
	return objs
}

// all returns the objects of a kind.
func (m manifests) all(kind string) []object {
	var out []object
	for _, o := range m {
		if o.u.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// get returns the one object of a kind and name, failing the test if there
// is none.
func (m manifests) get(t testing.TB, kind, name string) object {
	t.Helper()
	for _, o := range m.all(kind) {
		if o.u.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %q rendered", kind, name)
	return object{}
}

func (m manifests) has(kind, name string) bool {
	for _, o := range m.all(kind) {
		if o.u.GetName() == name {
			return true
		}
	}
	return false
}

// deployment returns the chart's Deployment.
func (m manifests) deployment(t testing.TB) *appsv1.Deployment {
	t.Helper()
	deps := m.all("Deployment")
	require.Len(t, deps, 1)
	d, ok := deps[0].typed.(*appsv1.Deployment)
	require.True(t, ok)
	return d
}

// configMap returns a ConfigMap by name.
func (m manifests) configMap(t testing.TB, name string) *corev1.ConfigMap {
	t.Helper()
	cm, ok := m.get(t, "ConfigMap", name).typed.(*corev1.ConfigMap)
	require.True(t, ok)
	return cm
}

// canaryYML returns the rendered canary.yml, as text and decoded.
func (m manifests) canaryYML(t testing.TB) (string, map[string]any) {
	t.Helper()
	text, ok := m.configMap(t, release).Data["canary.yml"]
	require.True(t, ok, "the ConfigMap has no canary.yml")
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(text), &cfg))
	return text, cfg
}

// container returns a container of the pod by name, init containers
// included.
func container(t testing.TB, spec corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return corev1.Container{}
}

// volume returns a volume of the pod by name.
func volume(t testing.TB, spec corev1.PodSpec, name string) corev1.Volume {
	t.Helper()
	for _, v := range spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %q", name)
	return corev1.Volume{}
}

// mountAt returns the container's mount at path.
func mountAt(c corev1.Container, path string) (corev1.VolumeMount, bool) {
	for _, m := range c.VolumeMounts {
		if m.MountPath == path {
			return m, true
		}
	}
	return corev1.VolumeMount{}, false
}

// stringsIn returns every string in a decoded YAML value, depth first.
func stringsIn(v any) []string {
	var out []string
	switch v := v.(type) {
	case string:
		out = append(out, v)
	case map[string]any:
		for _, x := range v {
			out = append(out, stringsIn(x)...)
		}
	case []any:
		for _, x := range v {
			out = append(out, stringsIn(x)...)
		}
	}
	return out
}

// keysIn returns every map key in a decoded YAML value.
func keysIn(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			out = append(out, k)
			out = append(out, keysIn(x)...)
		}
	case []any:
		for _, x := range v {
			out = append(out, keysIn(x)...)
		}
	}
	return out
}
