package importer

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// goldenMeshProvider is --mesh-provider for the files that need one.
var goldenMeshProvider = map[string]string{"podinfo.yaml": "nginx"}

var update = flag.Bool("update", false, "rewrite the golden files of testdata/ with what the import gives now")

// importFile runs one tool's import of a file as canary import does: the
// documents, then the notes, or the error.
func importFile(tool, file string) ([]Document, []Note, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, err
	}
	return Import(tool, []string{file}, map[string][]byte{file: data}, Options{MeshProvider: goldenMeshProvider[filepath.Base(file)]})
}

// render writes what the import gave in the golden files' form.
func render(docs []Document, notes []Note, err error) []byte {
	var b bytes.Buffer
	if err != nil {
		fmt.Fprintf(&b, "error: %v\n", err)
		return b.Bytes()
	}
	for i, d := range docs {
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(d.YAML)
	}
	b.WriteString("# not carried over:\n")
	for _, n := range notes {
		fmt.Fprintf(&b, "# - %s\n", n)
	}
	return b.Bytes()
}

// TestGolden imports every upstream example of testdata/TOOL/ and compares
// the policies and the notes with its .golden file; every policy loads.
func TestGolden(t *testing.T) {
	for _, tool := range []string{"argo", "flagger", "keptn"} {
		files, err := filepath.Glob(filepath.Join("testdata", tool, "*.yaml"))
		require.NoError(t, err)
		require.NotEmpty(t, files)
		for _, file := range files {
			t.Run(tool+"/"+filepath.Base(file), func(t *testing.T) {
				docs, notes, err := importFile(tool, file)
				for _, d := range docs {
					_, cerr := d.Check()
					require.NoError(t, cerr, "%s does not load", d.Name)
				}
				got := render(docs, notes, err)
				golden := strings.TrimSuffix(file, ".yaml") + ".golden"
				if *update {
					require.NoError(t, os.WriteFile(golden, got, 0o644))
				}
				want, rerr := os.ReadFile(golden)
				require.NoError(t, rerr, "run go test -update to write %s", golden)
				require.Equal(t, string(want), string(got), "%s: run go test ./rules/importer -update and review the diff", golden)
			})
		}
	}
}
