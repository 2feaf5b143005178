package main

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
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

func runVersion(_ context.Context, c *cli, args []string) int {
	fs := c.newFlags("version")
	output := fs.String("o", "table", "output format: table or json")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "canary: version: unexpected argument %q\n", fs.Arg(0))
		return exitError
	}
	b := readBuildInfo()
	switch *output {
	case "json":
		data, err := json.MarshalIndent(b, "", "  ")
		if err != nil {
			fmt.Fprintf(c.stderr, "canary: version: %v\n", err)
			return exitError
		}
		fmt.Fprintln(c.stdout, string(data))
	case "table":
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
	default:
		fmt.Fprintf(c.stderr, "canary: version: -o must be table or json, not %q\n", *output)
		return exitError
	}
	return exitOK
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
