package charts_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// releaseHeadingRE is a release's heading in CHANGELOG.md.
var releaseHeadingRE = regexp.MustCompile(`(?m)^## (v\d+\.\d+\.\d+)$`)

// TestChartVersionIsTheRelease: the chart is released with canary, so its
// version and appVersion are the newest release in CHANGELOG.md, and the
// image tag it deploys by default is that release's tag.
func TestChartVersionIsTheRelease(t *testing.T) {
	root := repoRoot(t)
	changelog, err := os.ReadFile(filepath.Join(root, "CHANGELOG.md"))
	require.NoError(t, err)
	releases := releaseHeadingRE.FindAllStringSubmatch(string(changelog), -1)
	require.NotEmpty(t, releases, "CHANGELOG.md has no `## vX.Y.Z` heading")
	newest := releases[0][1]

	chart := chartMeta(t)
	require.Equal(t, newest, chart.AppVersion, "Chart.yaml appVersion against CHANGELOG.md's newest release")
	require.Equal(t, strings.TrimPrefix(newest, "v"), chart.Version, "Chart.yaml version against CHANGELOG.md's newest release")
}

// chartVersions are Chart.yaml's versions.
type chartVersions struct {
	Version    string `json:"version"`
	AppVersion string `json:"appVersion"`
}

// chartMeta reads Chart.yaml's versions.
func chartMeta(t testing.TB) chartVersions {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "charts", "canary", "Chart.yaml"))
	require.NoError(t, err)
	var chart chartVersions
	require.NoError(t, yaml.Unmarshal(data, &chart))
	return chart
}
