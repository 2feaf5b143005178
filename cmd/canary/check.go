package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/aurum/canary/rollout/notify"
	"github.com/aurum/canary/rules"
)

func (c *cli) newCheckCmd() *cobra.Command {
	var config, output string
	cmd := &cobra.Command{
		Use:   "check [--config FILE] PATH...",
		Short: "validate policy files and directories",
		Long: `Validate policy files and directory trees (*.yaml, *.yml; hidden directories
such as .git are skipped).

The exit code is 0 when every file loads, 1 with every problem printed as
file:line:col otherwise. With --config, policies are also checked against the
sources a canary serve config file configures, as canary serve loads them.`,
		Example: `  canary check examples/policies
  canary check --config canary.yml policies/`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, paths []string) error { return exit(c.check(cmd, config, output, paths)) },
	}
	cmd.Flags().StringVar(&config, "config", "", "a canary serve config file: policies are also checked against the sources it configures, as serve does")
	addOutputFlag(cmd, &output)
	_ = cmd.MarkFlagFilename("config", "yaml", "yml")
	return cmd
}

// checkedPolicy is one policy canary check loaded, as -o json|yaml
// prints it.
type checkedPolicy struct {
	Name    string `json:"name"`
	File    string `json:"file"`
	Line    int    `json:"line"`
	Queries int    `json:"queries"`
	Rules   int    `json:"rules"`
}

// check validates policies: exit 0 when every file loads, 1 with every
// problem printed as file:line:col otherwise.
func (c *cli) check(cmd *cobra.Command, config, output string, paths []string) int {
	if err := checkOutput(output); err != nil {
		return c.usageError(cmd, "%v", err)
	}
	var opts rules.Options
	if config != "" {
		cfg := defaultServeConfig()
		if err := loadServeConfig(config, &cfg); err != nil {
			return c.errorf(cmd, "%v", err)
		}
		opts.Sources = cfg.sourceNames()
		// Notification routes are checked as serve builds them: secrets
		// read, templates tried.
		if _, err := notify.Build(cfg.Notifications, nil); err != nil {
			return c.errorf(cmd, "%s: %v", config, err)
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
	checked := struct {
		Policies []checkedPolicy `json:"policies"`
		Files    int             `json:"files"`
	}{Policies: []checkedPolicy{}, Files: len(set.Files)}
	for _, p := range set.Policies {
		checked.Policies = append(checked.Policies, checkedPolicy{Name: p.Name, File: p.File, Line: p.Line, Queries: len(p.Queries), Rules: len(p.Rules)})
	}
	return c.render(cmd, output, checked, func() {
		for _, p := range set.Policies {
			fmt.Fprintf(c.stdout, "  %-28s %d queries, %d rules  (%s:%d)\n", p.Name, len(p.Queries), len(p.Rules), p.File, p.Line)
		}
		fmt.Fprintf(c.stdout, "SUCCESS: %d policies in %d files\n", len(set.Policies), len(set.Files))
	})
}
