package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aurum/canary/rollout/notify"
)

// runNotify checks notification routes: `canary notify test --route NAME`
// sends a sample, plainly marked as a test, through the route of canary
// serve's configuration, and says whether the receiver took it.
func runNotify(ctx context.Context, c *cli, args []string) int {
	if len(args) == 0 || args[0] != "test" {
		fmt.Fprintln(c.stderr, "Usage: canary notify test --route NAME [--config FILE]   (canary notify test -h for the flags)")
		return exitError
	}
	fs := c.newFlags("notify")
	config := fs.String("config", os.Getenv("CANARY_CONFIG"), "canary serve's config file, whose notifications.routes hold the route (env CANARY_CONFIG)")
	route := fs.String("route", "", "the route to send the sample through (required)")
	kind := fs.String("kind", string(notify.KindRollbackLatched), "the sample's kind: "+kindList())
	severity := fs.String("severity", string(notify.SeverityInfo), "the sample's severity: info, warning, critical")
	rest, err := parseArgs(fs, args[1:])
	if err != nil {
		return flagExit(err)
	}
	switch {
	case len(rest) > 0:
		return c.usageError(fs, "notify test takes no arguments, got %q", strings.Join(rest, " "))
	case *config == "":
		return c.usageError(fs, "notify test needs --config: the routes are in canary serve's config file")
	case *route == "":
		return c.usageError(fs, "notify test needs --route NAME")
	case !slices.Contains(notify.Kinds, notify.Kind(*kind)):
		return c.usageError(fs, "unknown kind %q (known: %s)", *kind, kindList())
	case !slices.Contains(notify.Severities, notify.Severity(*severity)):
		return c.usageError(fs, "unknown severity %q (known: info, warning, critical)", *severity)
	}
	cfg := defaultServeConfig()
	if err := loadServeConfig(*config, &cfg); err != nil {
		fmt.Fprintf(c.stderr, "canary notify test: %v\n", err)
		return exitError
	}
	routes, err := notify.Build(cfg.Notifications, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintf(c.stderr, "canary notify test: %v\n", err)
		return exitError
	}
	var names []string
	for _, r := range routes {
		names = append(names, r.Name)
		if r.Name != *route {
			continue
		}
		n := notify.Sample(r.Name)
		n.Kind, n.Severity, n.Link = notify.Kind(*kind), notify.Severity(*severity), strings.TrimSuffix(cfg.Notifications.Link, "/")
		if !r.Filter.Takes(n) {
			fmt.Fprintf(c.stderr, "note: the route's filter would not take a %s %s notification; sending it all the same\n", n.Severity, n.Kind)
		}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := r.Sender.Notify(sctx, n); err != nil {
			fmt.Fprintf(c.stderr, "canary notify test: route %s (%s): %v\n", r.Name, r.Kind, err)
			return exitError
		}
		fmt.Fprintf(c.stdout, "sent a test notification through route %s (%s): %s\n", r.Name, r.Kind, n.Summary)
		return exitOK
	}
	fmt.Fprintf(c.stderr, "canary notify test: no route %q in %s (routes: %s)\n", *route, *config, strings.Join(names, ", "))
	return exitError
}

func kindList() string {
	var ks []string
	for _, k := range notify.Kinds {
		ks = append(ks, string(k))
	}
	return strings.Join(ks, ", ")
}
