package docs_test

import (
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/aurum/canary/"

// arrows is the layout README.md draws: each top-level package and the
// project packages its code may import (directly or below them).
// Dependencies point down; nothing imports upward.
var arrows = map[string][]string{
	"cmd":      {"webhooks", "rollout", "runs", "analysis", "rules", "stats", "queries", "traffic", "internal"},
	"webhooks": {"rollout", "runs", "analysis", "rules", "stats", "queries", "traffic", "docs"},
	"rollout":  {"runs", "analysis", "rules", "stats", "queries", "traffic"},
	"runs":     {"analysis", "rules", "stats", "queries"},
	"analysis": {"rules", "stats", "queries"},
	"rules":    {"stats"},
	"stats":    {},
	"queries":  {},
	"traffic":  {},
	// The demo's world and the test harnesses: below everything that
	// serves, above the sources and routers they stand up.
	"internal": {"queries", "traffic"},
	"docs":     {},
	"examples": {},
	"charts":   {},
}

// readmeArrows is how README.md states the layout; the test holds the two
// together.
const readmeArrows = "cmd → webhooks → rollout → runs → analysis → rules → stats"

// top is the top-level package a package belongs to.
func top(path string) string {
	p := strings.TrimPrefix(path, module)
	first, _, _ := strings.Cut(p, "/")
	return first
}

// TestLayoutArrows checks every package's imports (test files aside)
// against the arrows, so that "dependencies point down" stays true.
func TestLayoutArrows(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", module+"...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "go list: %s", stderr.String())
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Greater(t, len(lines), 20, "go list found too few packages")
	for _, line := range lines {
		fields := strings.Fields(line)
		pkg := fields[0]
		from := top(pkg)
		allowed, known := arrows[from]
		require.True(t, known, "package %s is in no layer of the layout: add its top-level directory to arrows and to README.md", pkg)
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			to := top(imp)
			if to == from {
				continue
			}
			require.True(t, slices.Contains(allowed, to), "%s imports %s: %s may import only %v (README.md: %s)", pkg, imp, from, allowed, readmeArrows)
		}
	}
}

// TestLayoutInReadme: the README states the same arrows.
func TestLayoutInReadme(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	for _, want := range []string{readmeArrows, "rollout → traffic", "analysis → queries"} {
		require.True(t, strings.Contains(string(data), want), "README.md does not state the layout arrow %q", want)
	}
}
