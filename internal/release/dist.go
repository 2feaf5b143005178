package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Target is one platform a release is built for.
type Target struct{ OS, Arch string }

func (t Target) String() string { return t.OS + "/" + t.Arch }

// Targets are the platforms of a release: the Linux nodes canary runs on,
// and the laptops operators run the CLI from.
var Targets = []Target{{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "amd64"}, {"darwin", "arm64"}}

// Options says what Dist builds and where.
type Options struct {
	// Version is the release's semantic version (vX.Y.Z, or a git
	// describe suffix after it for a snapshot).
	Version string
	// Date is the build date (RFC 3339): the commit's date, so that two
	// builds of one commit give the same archives.
	Date string
	// Root is the module root; Package the main package to build.
	Root, Package string
	// Files are copied into every archive beside the binary, relative to Root.
	Files []string
	// Links are other names of the binary in every archive, as symbolic
	// links to it: kubectl-canary, which kubectl runs as `kubectl canary`.
	Links []string
	// Targets defaults to Targets.
	Targets []Target
	// Out is the directory the archives, SBOMs and SHA256SUMS go to.
	Out string
	// Tags are the build tags, as `make build` passes them (the
	// Makefile's TAGS), so that a release archive holds the binary
	// `make build` and the image build.
	Tags []string
	// Go is the go command; "go" when empty.
	Go string
	// Log receives one line per artifact.
	Log io.Writer
}

// semverRE is what a release version looks like. A describe suffix
// (v0.2.0-3-gabc1234) is a valid semver pre-release, so a snapshot built
// between tags still sorts before the next release.
var semverRE = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// Dist builds one archive per target, an SBOM beside each, and
// SHA256SUMS over all of them. It returns the paths it wrote.
func Dist(ctx context.Context, o Options) ([]string, error) {
	if !semverRE.MatchString(o.Version) {
		return nil, fmt.Errorf("version %q is not a semantic version vX.Y.Z: tag the release (git tag v0.2.0) or set VERSION", o.Version)
	}
	date, err := time.Parse(time.RFC3339, o.Date)
	if err != nil {
		return nil, fmt.Errorf("build date %q: %w", o.Date, err)
	}
	if o.Go == "" {
		o.Go = "go"
	}
	if len(o.Targets) == 0 {
		o.Targets = Targets
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", o.Out, err)
	}
	tmp, err := os.MkdirTemp("", "canary-dist-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	var written []string
	for _, t := range o.Targets {
		base := fmt.Sprintf("canary_%s_%s_%s", strings.TrimPrefix(o.Version, "v"), t.OS, t.Arch)
		bin := filepath.Join(tmp, base, "canary")
		if err := build(ctx, o, t, bin); err != nil {
			return nil, err
		}
		archive := filepath.Join(o.Out, base+".tar.gz")
		files := []archiveFile{{name: "canary", path: bin, mode: 0o755}}
		for _, l := range o.Links {
			files = append(files, archiveFile{name: l, mode: 0o777, link: "canary"})
		}
		for _, f := range o.Files {
			files = append(files, archiveFile{name: filepath.Base(f), path: filepath.Join(o.Root, f), mode: 0o644})
		}
		if err := writeArchive(archive, base, date, files); err != nil {
			return nil, err
		}
		bom, err := SBOM(bin, o.Version, date.UTC().Format(time.RFC3339))
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := WriteSBOM(&buf, bom); err != nil {
			return nil, err
		}
		sbom := filepath.Join(o.Out, base+".sbom.cdx.json")
		if err := os.WriteFile(sbom, buf.Bytes(), 0o644); err != nil {
			return nil, err
		}
		written = append(written, archive, sbom)
		fmt.Fprintf(o.Log, "%s: %s, %s\n", t, archive, sbom)
	}
	sums := filepath.Join(o.Out, "SHA256SUMS")
	if err := writeSums(sums, written); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "checksums: %s\n", sums)
	return append(written, sums), nil
}

// build is `make build` for one target: static, trimmed paths, stripped
// (and so compiled without DWARF), the version and date stamped, with the
// build tags.
func build(ctx context.Context, o Options, t Target, out string) error {
	ldflags := fmt.Sprintf("-s -w -X main.version=%s -X main.buildDate=%s", o.Version, o.Date)
	args := []string{"build"}
	if len(o.Tags) > 0 {
		args = append(args, "-tags", strings.Join(o.Tags, ","))
	}
	args = append(args, "-trimpath", "-gcflags", "all=-dwarf=false", "-ldflags", ldflags, "-o", out, o.Package)
	cmd := exec.CommandContext(ctx, o.Go, args...)
	cmd.Dir = o.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+t.OS, "GOARCH="+t.Arch)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s for %s: %w\n%s", o.Package, t, err, msg)
	}
	return nil
}

// archiveFile is an entry of an archive: a file's contents, or with link
// set, a symbolic link to the entry of that name.
type archiveFile struct {
	name, path string
	mode       int64
	link       string
}

// writeArchive writes a gzipped tar whose entries sit in one directory
// named dir, with fixed owners and times so the bytes depend only on the
// contents.
func writeArchive(path, dir string, date time.Time, files []archiveFile) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	hdr := func(name string, mode, size int64, typ byte) *tar.Header {
		return &tar.Header{Name: name, Mode: mode, Size: size, Typeflag: typ, ModTime: date, Uname: "root", Gname: "root", Format: tar.FormatPAX}
	}
	if err := tw.WriteHeader(hdr(dir+"/", 0o755, 0, tar.TypeDir)); err != nil {
		return err
	}
	for _, af := range files {
		if af.link != "" {
			h := hdr(dir+"/"+af.name, af.mode, 0, tar.TypeSymlink)
			h.Linkname = af.link
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			continue
		}
		data, err := os.ReadFile(af.path)
		if err != nil {
			return fmt.Errorf("archiving %s: %w", af.path, err)
		}
		if err := tw.WriteHeader(hdr(dir+"/"+af.name, af.mode, int64(len(data)), tar.TypeReg)); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// writeSums writes the files' SHA-256 in the format `sha256sum -c` reads.
func writeSums(path string, files []string) error {
	sort.Strings(files)
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(sum[:]), filepath.Base(f))
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
