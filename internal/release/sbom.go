// Package release builds what `make dist` publishes: one archive per
// platform with the static binary, the licence and the docs, a CycloneDX
// SBOM of each binary, and a SHA256SUMS file that `sha256sum -c` checks.
//
// The SBOM is read from the binary itself (the module list the Go linker
// records), not from go.mod: it lists exactly what was linked, which is
// what a vulnerability scanner needs to know.
package release

import (
	"debug/buildinfo"
	"fmt"
	"io"
	"net/url"
	"runtime/debug"
	"sort"
	"strings"

	cdx "github.com/CycloneDX/cyclonedx-go"
)

// License is the project's licence, as an SPDX identifier.
const License = "Apache-2.0"

// SBOM describes the Go binary at path: the application (named by its
// main module, at version) and every module linked into it, with the Go
// standard library as a component of its own so scanners match Go's CVEs.
// created is the SBOM's timestamp (RFC 3339); the build date keeps two
// builds of one commit byte-identical.
func SBOM(path, version, created string) (*cdx.BOM, error) {
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the build information of %s: %w", path, err)
	}
	main := cdx.Component{
		BOMRef:     purl(info.Main.Path, version),
		Type:       cdx.ComponentTypeApplication,
		Name:       info.Main.Path,
		Version:    version,
		PackageURL: purl(info.Main.Path, version),
		Licenses:   &cdx.Licenses{{License: &cdx.License{ID: License}}},
	}
	var props []cdx.Property
	for _, s := range info.Settings {
		// Only what describes the build: -ldflags carries nothing secret
		// today, but flags are not a place to leak into a published file.
		switch s.Key {
		case "GOOS", "GOARCH", "CGO_ENABLED", "-trimpath", "vcs.revision", "vcs.time", "vcs.modified":
			props = append(props, cdx.Property{Name: "go:build:" + s.Key, Value: s.Value})
		}
	}
	if len(props) > 0 {
		main.Properties = &props
	}

	stdlib := cdx.Component{
		BOMRef:     purl("stdlib", info.GoVersion),
		Type:       cdx.ComponentTypeLibrary,
		Name:       "stdlib",
		Version:    info.GoVersion,
		PackageURL: purl("stdlib", info.GoVersion),
		Scope:      cdx.ScopeRequired,
	}
	components := []cdx.Component{stdlib}
	for _, d := range info.Deps {
		m := d
		if d.Replace != nil {
			m = d.Replace
		}
		c := cdx.Component{
			BOMRef:     purl(m.Path, m.Version),
			Type:       cdx.ComponentTypeLibrary,
			Name:       m.Path,
			Version:    m.Version,
			PackageURL: purl(m.Path, m.Version),
			Scope:      cdx.ScopeRequired,
		}
		if d.Replace != nil {
			c.Properties = &[]cdx.Property{{Name: "go:module:replaces", Value: d.Path + "@" + d.Version}}
		}
		components = append(components, c)
	}
	sort.Slice(components, func(i, j int) bool { return components[i].BOMRef < components[j].BOMRef })

	refs := make([]string, len(components))
	deps := make([]cdx.Dependency, 0, len(components)+1)
	for i, c := range components {
		refs[i] = c.BOMRef
		deps = append(deps, cdx.Dependency{Ref: c.BOMRef})
	}
	// The binary records which modules are linked, not who imports whom:
	// every module is a direct dependency of the application here, which
	// is true of the linked result.
	deps = append([]cdx.Dependency{{Ref: main.BOMRef, Dependencies: &refs}}, deps...)

	bom := cdx.NewBOM()
	bom.SerialNumber = "" // a random serial would make two builds differ
	bom.Metadata = &cdx.Metadata{
		Timestamp: created,
		Component: &main,
		Tools:     &cdx.ToolsChoice{Components: &[]cdx.Component{generator()}},
	}
	bom.Components = &components
	bom.Dependencies = &deps
	return bom, nil
}

// generator names the library that wrote the SBOM, at the version linked
// into this program.
func generator() cdx.Component {
	c := cdx.Component{Type: cdx.ComponentTypeLibrary, Name: "github.com/CycloneDX/cyclonedx-go"}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, d := range info.Deps {
			if d.Path == c.Name {
				c.Version = d.Version
			}
		}
	}
	return c
}

// WriteSBOM encodes bom as CycloneDX JSON.
func WriteSBOM(w io.Writer, bom *cdx.BOM) error {
	enc := cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON)
	enc.SetPretty(true).SetEscapeHTML(false)
	if err := enc.Encode(bom); err != nil {
		return fmt.Errorf("encoding the SBOM: %w", err)
	}
	return nil
}

// purl is the package URL of a Go module, as scanners (Grype, Trivy,
// OSV) look Go modules up: pkg:golang/<path>@<version>, the path's
// segments escaped but its slashes kept.
func purl(path, version string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return "pkg:golang/" + strings.Join(segs, "/") + "@" + url.PathEscape(version)
}
