package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/aurum/canary/rollout/notify"
)

func (c *cli) newNotifyCmd() *cobra.Command {
	group := c.newGroup("notify", "send a sample notification through a route of canary serve's config",
		`Check the notification routes of canary serve's config file.`, "  canary notify test --config canary.yml --route ops")
	var config, route, kind, severity string
	test := &cobra.Command{
		Use:   "test --config FILE --route NAME [--kind K] [--severity S]",
		Short: "send a sample notification through a route",
		Long: `Send a sample, plainly marked as a test, through a route of canary serve's
configuration, and say whether the receiver took it.

The exit code is 0 when the receiver took it, 1 when it did not (its answer
is printed).`,
		Example: `  canary notify test --config canary.yml --route ops --severity critical`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return exit(c.notifyTest(cmd, config, route, kind, severity))
		},
	}
	fs := test.Flags()
	fs.StringVar(&config, "config", "", "canary serve's config file, whose notifications.routes hold the route (env CANARY_CONFIG)")
	fs.StringVar(&route, "route", "", "the route to send the sample through (required)")
	fs.StringVar(&kind, "kind", string(notify.KindRollbackLatched), "the sample's kind: "+kindList())
	fs.StringVar(&severity, "severity", string(notify.SeverityInfo), "the sample's severity: info, warning, critical")
	_ = test.MarkFlagFilename("config", "yaml", "yml")
	_ = test.RegisterFlagCompletionFunc("route", func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		cfg := defaultServeConfig()
		config := fromEnv(test.Flags(), "config", "CANARY_CONFIG")
		if config == "" || loadServeConfig(config, &cfg) != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []cobra.Completion
		for _, r := range cfg.Notifications.Routes {
			names = append(names, r.Name)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	})
	var kinds []string
	for _, k := range notify.Kinds {
		kinds = append(kinds, string(k))
	}
	var severities []string
	for _, s := range notify.Severities {
		severities = append(severities, string(s))
	}
	_ = test.RegisterFlagCompletionFunc("kind", cobra.FixedCompletions(kinds, cobra.ShellCompDirectiveNoFileComp))
	_ = test.RegisterFlagCompletionFunc("severity", cobra.FixedCompletions(severities, cobra.ShellCompDirectiveNoFileComp))
	group.AddCommand(test)
	return group
}

// notifyTest checks a notification route: it sends a sample, plainly
// marked as a test, through the route of canary serve's configuration, and
// says whether the receiver took it.
func (c *cli) notifyTest(cmd *cobra.Command, config, route, kind, severity string) int {
	ctx := c.ctx
	config = fromEnv(cmd.Flags(), "config", "CANARY_CONFIG")
	switch {
	case config == "":
		return c.usageError(cmd, "notify test needs --config: the routes are in canary serve's config file")
	case route == "":
		return c.usageError(cmd, "notify test needs --route NAME")
	case !slices.Contains(notify.Kinds, notify.Kind(kind)):
		return c.usageError(cmd, "unknown kind %q (known: %s)", kind, kindList())
	case !slices.Contains(notify.Severities, notify.Severity(severity)):
		return c.usageError(cmd, "unknown severity %q (known: info, warning, critical)", severity)
	}
	cfg := defaultServeConfig()
	if err := loadServeConfig(config, &cfg); err != nil {
		return c.errorf(cmd, "%v", err)
	}
	routes, err := notify.Build(cfg.Notifications, slog.New(slog.DiscardHandler))
	if err != nil {
		return c.errorf(cmd, "%v", err)
	}
	var names []string
	for _, r := range routes {
		names = append(names, r.Name)
		if r.Name != route {
			continue
		}
		n := notify.Sample(r.Name)
		n.Kind, n.Severity, n.Link = notify.Kind(kind), notify.Severity(severity), strings.TrimSuffix(cfg.Notifications.Link, "/")
		if !r.Filter.Takes(n) {
			fmt.Fprintf(c.stderr, "note: the route's filter would not take a %s %s notification; sending it all the same\n", n.Severity, n.Kind)
		}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := r.Sender.Notify(sctx, n); err != nil {
			return c.errorf(cmd, "route %s (%s): %v", r.Name, r.Kind, err)
		}
		fmt.Fprintf(c.stdout, "sent a test notification through route %s (%s): %s\n", r.Name, r.Kind, n.Summary)
		return exitOK
	}
	return c.errorf(cmd, "no route %q in %s (routes: %s)", route, config, strings.Join(names, ", "))
}

func kindList() string {
	var ks []string
	for _, k := range notify.Kinds {
		ks = append(ks, string(k))
	}
	return strings.Join(ks, ", ")
}
