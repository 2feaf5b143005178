package main

import (
	"context"
	"fmt"

	"github.com/aurum/canary/rollout/notify"
	"github.com/aurum/canary/rules"
)

// runCheck validates policies: exit 0 when every file loads, 1 with every
// problem printed as file:line:col otherwise.
func runCheck(_ context.Context, c *cli, args []string) int {
	fs := c.newFlags("check")
	config := fs.String("config", "", "a canary serve config file: policies are also checked against the sources it configures, as serve does")
	paths, err := parseArgs(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(paths) == 0 {
		fs.Usage()
		return exitError
	}
	var opts rules.Options
	if *config != "" {
		cfg := defaultServeConfig()
		if err := loadServeConfig(*config, &cfg); err != nil {
			fmt.Fprintf(c.stderr, "canary check: %v\n", err)
			return exitError
		}
		opts.Sources = cfg.sourceNames()
		// Notification routes are checked as serve builds them: secrets
		// read, templates tried.
		if _, err := notify.Build(cfg.Notifications, nil); err != nil {
			fmt.Fprintf(c.stderr, "canary check: %s: %v\n", *config, err)
			return exitError
		}
	}
	set, err := rules.LoadWith(opts, paths...)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		if es, ok := err.(rules.Errors); ok {
			fmt.Fprintf(c.stderr, "FAILED: %d problem(s)\n", len(es))
		}
		return exitError
	}
	for _, p := range set.Policies {
		fmt.Fprintf(c.stdout, "  %-28s %d queries, %d rules  (%s:%d)\n", p.Name, len(p.Queries), len(p.Rules), p.File, p.Line)
	}
	fmt.Fprintf(c.stdout, "SUCCESS: %d policies in %d files\n", len(set.Policies), len(set.Files))
	return exitOK
}
