package docs_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestImportGuides: the migration guides show what canary import prints.
// A block marked import-output=TOOL:ARG...:FILE holds the exact stdout of
// `canary import TOOL ARG... FILE` run from the repository's root, and one
// marked import-stderr=... its exact stderr; the exit code is the one the
// guides document for a run with notes (2) or without (0).
func TestImportGuides(t *testing.T) {
	n := 0
	for _, md := range []string{"import-argo.md", "import-flagger.md", "import-keptn.md"} {
		for _, f := range fences(t, md) {
			for _, key := range []string{"import-output", "import-stderr"} {
				spec := infoValue(f.info, key)
				if spec == "" {
					continue
				}
				n++
				args := append([]string{"import"}, strings.Split(spec, ":")...)
				stdout, stderr, code := runFromRoot(t, args...)
				want := 0
				if stderr != "" {
					want = 2
				}
				require.Equal(t, want, code, "%s:%d: canary %s\n%s", md, f.line, strings.Join(args, " "), stderr)
				got := stdout
				if key == "import-stderr" {
					got = stderr
				}
				require.Equal(t, got, f.text, "%s:%d: the block is not what canary %s prints", md, f.line, strings.Join(args, " "))
			}
		}
	}
	require.Equal(t, 6, n, "each guide shows an import's stdout and stderr")
}
