package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// version and buildDate are stamped at build time by `make build` and
// `make dist` (-ldflags "-X main.version=v0.2.0 -X main.buildDate=...").
// A plain `go build` or `go install` leaves them unset, and what Go records
// about the module and the checkout fills in.
var (
	version   = "dev"
	buildDate = ""
)

// buildInfo is what `canary version` reports: enough to match a binary to
// a release, a commit and a toolchain in a bug report.
type buildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	Dirty     bool   `json:"dirty,omitempty"`
	BuildDate string `json:"buildDate,omitempty"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, BuildDate: buildDate, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	// `go install github.com/aurum/canary/cmd/canary@v0.2.0` records the
	// module version; a build from a checkout records "(devel)".
	if b.Version == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		b.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.modified":
			b.Dirty = s.Value == "true"
		case "vcs.time":
			if b.BuildDate == "" {
				b.BuildDate = s.Value
			}
		}
	}
	return b
}

// buildVersion is the one-word version for logs and the User-Agent.
func buildVersion() string {
	b := readBuildInfo()
	if b.Version == "dev" && len(b.Commit) >= 12 {
		return "dev+" + b.Commit[:12]
	}
	return b.Version
}

func (c *cli) newVersionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "version [-o table|json|yaml]",
		Short:   "print the version, commit, build date and Go version",
		Long:    "Print the version, commit, build date, Go version and platform of this binary.",
		Example: "  canary version -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return exit(c.usageError(cmd, "%v", err))
			}
			b := readBuildInfo()
			return exit(c.render(cmd, output, b, func() {
				commit := b.Commit
				if commit == "" {
					commit = "unknown"
				} else if b.Dirty {
					commit += " (modified)"
				}
				rows := [][2]string{
					{"version", b.Version},
					{"commit", commit},
					{"built", orUnknown(b.BuildDate)},
					{"go", b.GoVersion},
					{"platform", b.Platform},
				}
				var sb strings.Builder
				for _, r := range rows {
					fmt.Fprintf(&sb, "%-9s %s\n", r[0]+":", r[1])
				}
				fmt.Fprint(c.stdout, sb.String())
			}))
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
