package docs_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// TestInstallDocs: the README's install commands name the newest release,
// the archive names `make dist` writes, the build args the Dockerfile
// declares and the chart values that exist.
func TestInstallDocs(t *testing.T) {
	readme := readFile(t, "../README.md")
	_, section, ok := strings.Cut(readme, "\n## Installing\n")
	require.True(t, ok, "README has no Installing section")
	section, _, _ = strings.Cut(section, "\n## ")

	changelog := readFile(t, "../CHANGELOG.md")
	m := regexp.MustCompile(`(?m)^## (v\d+\.\d+\.\d+)$`).FindStringSubmatch(changelog)
	require.NotNil(t, m, "CHANGELOG.md has no release heading")
	release := m[1]

	require.Contains(t, section, "go install github.com/aurum/canary/cmd/canary@"+release)
	for _, name := range regexp.MustCompile(`canary_([0-9][^ /]*)_(linux|darwin)_(amd64|arm64)`).FindAllStringSubmatch(section, -1) {
		require.Equal(t, strings.TrimPrefix(release, "v"), name[1], "archive %s is not the newest release's", name[0])
	}
	require.Regexp(t, `(?m)^dist:`, readFile(t, "../Makefile"), "README runs make dist")

	// Every --build-arg the README passes is an ARG of the Dockerfile, and
	// every ARG is passed.
	var args []string
	for _, a := range regexp.MustCompile(`--build-arg ([A-Z_]+)=`).FindAllStringSubmatch(section, -1) {
		args = append(args, a[1])
	}
	var declared []string
	for _, a := range regexp.MustCompile(`(?m)^ARG ([A-Z_]+)=`).FindAllStringSubmatch(readFile(t, "../Dockerfile"), -1) {
		if !slices.Contains(declared, a[1]) {
			declared = append(declared, a[1])
		}
	}
	slices.Sort(args)
	slices.Sort(declared)
	require.Equal(t, declared, args, "README's docker build against the Dockerfile's ARGs")

	var values map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(readFile(t, "../charts/canary/values.yaml")), &values))
	for _, set := range regexp.MustCompile(`--set ([a-zA-Z.]+)=`).FindAllStringSubmatch(section, -1) {
		var cur any = values
		for _, key := range strings.Split(set[1], ".") {
			obj, ok := cur.(map[string]any)
			require.True(t, ok, "--set %s: %s is not a map in values.yaml", set[1], key)
			cur, ok = obj[key]
			require.True(t, ok, "--set %s: values.yaml has no %s", set[1], key)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(data)
}
