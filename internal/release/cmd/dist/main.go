// Command dist builds the release archives, SBOMs and checksums into a
// directory; `make dist` runs it with the version and date from git.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/aurum/canary/internal/release"
)

func main() { os.Exit(run()) }

func run() int {
	fs := flag.NewFlagSet("dist", flag.ContinueOnError)
	var (
		version = fs.String("version", "", "release version, vX.Y.Z (required)")
		date    = fs.String("date", "", "build date, RFC 3339: the commit's date (required)")
		out     = fs.String("out", "dist", "directory to write the archives to")
		targets = fs.String("targets", "", "comma-separated GOOS/GOARCH list (default: every release platform)")
		tags    = fs.String("tags", "", "comma-separated build tags, as make build's")
	)
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	o := release.Options{
		Version: *version, Date: *date, Out: *out,
		Root: ".", Package: "./cmd/canary",
		Files: []string{"LICENSE", "README.md", "CHANGELOG.md"},
		// The kubectl plugin: `kubectl canary` runs kubectl-canary.
		Links: []string{"kubectl-canary"},
		Log:   os.Stdout,
	}
	if *tags != "" {
		o.Tags = strings.Split(*tags, ",")
	}
	if *targets != "" {
		for _, t := range strings.Split(*targets, ",") {
			goos, goarch, ok := strings.Cut(strings.TrimSpace(t), "/")
			if !ok {
				fmt.Fprintf(os.Stderr, "dist: -targets: %q is not GOOS/GOARCH\n", t)
				return 2
			}
			o.Targets = append(o.Targets, release.Target{OS: goos, Arch: goarch})
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if _, err := release.Dist(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "dist: %v\n", err)
		return 1
	}
	return 0
}
