package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/stretchr/testify/require"
)

func TestPurl(t *testing.T) {
	for _, tc := range []struct{ path, version, want string }{
		{"github.com/aurum/canary", "v0.2.0", "pkg:golang/github.com/aurum/canary@v0.2.0"},
		{"stdlib", "go1.26.8", "pkg:golang/stdlib@go1.26.8"},
		{"k8s.io/client-go", "v0.37.2", "pkg:golang/k8s.io/client-go@v0.37.2"},
		{"example.com/a b", "v1.0.0+incompatible", "pkg:golang/example.com/a%20b@v1.0.0+incompatible"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			require.Equal(t, tc.want, purl(tc.path, tc.version))
		})
	}
}

func TestDistRefusesAVersionThatIsNoRelease(t *testing.T) {
	for _, v := range []string{"", "dev", "0.2.0", "v0.2", "a93c26a", "v0.2.0-dirty "} {
		t.Run(v, func(t *testing.T) {
			_, err := Dist(context.Background(), Options{Version: v, Date: "2026-12-05T10:00:00Z", Out: t.TempDir()})
			require.ErrorContains(t, err, "not a semantic version")
		})
	}
}

// TestDist builds the release for this machine's platform from the
// repository, as `make dist` does, and checks what a user of the archive
// gets: a binary that runs and says its version, the licence and docs, an
// SBOM that lists exactly the modules linked into the binary, checksums
// that `sha256sum -c` accepts, and the same bytes when built twice.
func TestDist(t *testing.T) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	const version, date = "v0.2.0-test", "2026-12-05T10:00:00Z"
	host := Target{runtime.GOOS, runtime.GOARCH}
	// The Makefile's tags, as make dist passes them.
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	require.NoError(t, err)
	tags := regexp.MustCompile(`(?m)^TAGS\s*:?=\s*(\S+)`).FindSubmatch(makefile)
	require.NotNil(t, tags, "the Makefile sets no TAGS")
	require.Contains(t, string(makefile), "-tags $(TAGS)", "make dist passes the Makefile's tags")
	opts := Options{
		Version: version, Date: date, Root: root, Package: "./cmd/canary",
		Files: []string{"LICENSE", "README.md", "CHANGELOG.md"}, Links: []string{"kubectl-canary"}, Targets: []Target{host},
		Tags: strings.Split(string(tags[1]), ","), Out: filepath.Join(t.TempDir(), "dist"),
	}
	written, err := Dist(context.Background(), opts)
	require.NoError(t, err)
	base := "canary_0.2.0-test_" + host.OS + "_" + host.Arch
	names := make([]string, len(written))
	for i, w := range written {
		names[i] = filepath.Base(w)
	}
	require.ElementsMatch(t, []string{base + ".tar.gz", base + ".sbom.cdx.json", "SHA256SUMS"}, names)

	t.Run("archive", func(t *testing.T) {
		files := untar(t, filepath.Join(opts.Out, base+".tar.gz"))
		require.ElementsMatch(t, []string{base + "/", base + "/canary", base + "/kubectl-canary", base + "/LICENSE", base + "/README.md", base + "/CHANGELOG.md"}, keys(files))
		require.Equal(t, "-> canary", files[base+"/kubectl-canary"], "the kubectl plugin is a link to the binary, not a second copy")
		license, err := os.ReadFile(filepath.Join(root, "LICENSE"))
		require.NoError(t, err)
		require.Equal(t, string(license), files[base+"/LICENSE"])
		require.Contains(t, string(license), "Apache License\n                           Version 2.0")

		bin := filepath.Join(t.TempDir(), "canary")
		require.NoError(t, os.WriteFile(bin, []byte(files[base+"/canary"]), 0o755))
		out, err := exec.Command(bin, "version", "-o", "json").Output()
		require.NoError(t, err)
		var v struct{ Version, BuildDate, GoVersion, Platform string }
		require.NoError(t, json.Unmarshal(out, &v), "%s", out)
		require.Equal(t, version, v.Version)
		require.Equal(t, date, v.BuildDate)
		require.Equal(t, runtime.Version(), v.GoVersion)
		require.Equal(t, host.String(), v.Platform)

		// Built with the tags: without gin's MessagePack codec, which
		// nomsgpack leaves out.
		info, err := exec.Command("go", "version", "-m", bin).Output()
		require.NoError(t, err)
		require.Contains(t, string(info), "-tags="+string(tags[1]))
		require.NotContains(t, string(info), "github.com/ugorji/go")
	})

	t.Run("sbom", func(t *testing.T) {
		f, err := os.Open(filepath.Join(opts.Out, base+".sbom.cdx.json"))
		require.NoError(t, err)
		defer f.Close()
		var bom cdx.BOM
		require.NoError(t, cdx.NewBOMDecoder(f, cdx.BOMFileFormatJSON).Decode(&bom))
		require.Equal(t, "github.com/aurum/canary", bom.Metadata.Component.Name)
		require.Equal(t, version, bom.Metadata.Component.Version)
		require.Equal(t, date, bom.Metadata.Timestamp)
		require.Equal(t, License, (*bom.Metadata.Component.Licenses)[0].License.ID)

		// The modules `go version -m` reads from the same binary.
		bin := filepath.Join(t.TempDir(), "canary")
		files := untar(t, filepath.Join(opts.Out, base+".tar.gz"))
		require.NoError(t, os.WriteFile(bin, []byte(files[base+"/canary"]), 0o755))
		out, err := exec.Command("go", "version", "-m", bin).Output()
		require.NoError(t, err)
		var want []string
		for line := range strings.Lines(string(out)) {
			fields := strings.Fields(line)
			if len(fields) >= 3 && fields[0] == "dep" {
				want = append(want, "pkg:golang/"+fields[1]+"@"+fields[2])
			}
		}
		require.NotEmpty(t, want)
		var got []string
		for _, c := range *bom.Components {
			if c.Name != "stdlib" {
				got = append(got, c.PackageURL)
			}
		}
		require.ElementsMatch(t, want, got, "the SBOM lists the modules linked into the binary")
		require.True(t, slices.ContainsFunc(*bom.Components, func(c cdx.Component) bool {
			return c.PackageURL == "pkg:golang/stdlib@"+runtime.Version()
		}), "the Go standard library is a component")
	})

	t.Run("checksums", func(t *testing.T) {
		cmd := exec.Command("sha256sum", "-c", "SHA256SUMS")
		cmd.Dir = opts.Out
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Equal(t, 2, strings.Count(string(out), ": OK"), "%s", out)
	})

	t.Run("reproducible", func(t *testing.T) {
		again := opts
		again.Out = filepath.Join(t.TempDir(), "again")
		_, err := Dist(context.Background(), again)
		require.NoError(t, err)
		for _, name := range names {
			a, err := os.ReadFile(filepath.Join(opts.Out, name))
			require.NoError(t, err)
			b, err := os.ReadFile(filepath.Join(again.Out, name))
			require.NoError(t, err)
			require.True(t, bytes.Equal(a, b), "%s differs between two builds of one commit", name)
		}
	})
}

// untar reads a .tar.gz into a map of entry name to contents; a symbolic
// link's are "-> TARGET".
func untar(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	gz, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		require.NoError(t, err)
		if h.Typeflag == tar.TypeSymlink {
			files[h.Name] = "-> " + h.Linkname
			continue
		}
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		files[h.Name] = string(data)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
