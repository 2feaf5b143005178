// Command canary is the Aurum Canary engine: it validates, tests and
// evaluates canary-analysis policies, and (with serve) answers Argo Rollouts,
// Flagger and Alertmanager as a webhook service.
//
// The CLI is built on cobra and pflag, as kubectl, helm and flux are: every
// command answers -h, `canary completion SHELL` completes commands, flags,
// policy, rollout and run names, and `canary docs DIR` writes the reference
// that docs/cli holds. Installed as kubectl-canary it is a kubectl plugin.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	// Policies name time zones (decision rules); the distroless image has
	// no zoneinfo, so the binary carries its own.
	_ "time/tzdata"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes. eval's verdict codes let a CI step gate on a policy.
const (
	exitOK           = 0
	exitError        = 1
	exitFail         = 2
	exitInconclusive = 3
)

// kubectlPlugin is the name the binary answers to as a kubectl plugin:
// `kubectl canary ...` runs kubectl-canary.
const kubectlPlugin = "kubectl-canary"

func main() { os.Exit(runAs(os.Args[0], os.Args[1:], os.Stdout, os.Stderr)) }

// cli carries what every subcommand writes to, so tests can run the command
// in-process and read its output.
type cli struct {
	stdout, stderr io.Writer
	// color is on when stdout is a terminal and NO_COLOR is unset.
	color bool
	// ctx is cancelled on SIGINT and SIGTERM.
	ctx context.Context
}

// exitCode is a command's exit status other than 0, returned as an error
// through cobra: what was wrong has been printed already.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// exit turns a command's exit status into what a cobra RunE returns.
func exit(code int) error {
	if code == exitOK {
		return nil
	}
	return exitCode(code)
}

// run runs canary with args, as the binary named canary.
func run(args []string, stdout, stderr io.Writer) int {
	return runAs("canary", args, stdout, stderr)
}

// runAs runs the CLI as the program argv0 names: kubectl-canary is
// canary as a kubectl plugin, which only shows in its help.
func runAs(argv0 string, args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := &cli{stdout: stdout, stderr: stderr, color: isTerminal(stdout) && os.Getenv("NO_COLOR") == "", ctx: ctx}
	root := c.newRoot(strings.TrimSuffix(filepath.Base(argv0), ".exe") == kubectlPlugin)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code)
	}
	// What cobra refused: an unknown command or flag, a wrong number of
	// arguments. One line, then where to look.
	c.usageLine(cmd, err.Error())
	return exitError
}

// commandName is a command's path without the program: "rollout status".
func commandName(cmd *cobra.Command) string {
	var parts []string
	for ; cmd != nil && cmd.HasParent(); cmd = cmd.Parent() {
		parts = append([]string{cmd.Name()}, parts...)
	}
	return strings.Join(parts, " ")
}

// errorf prints `canary: <command>: <message>` to stderr and returns
// exitError.
func (c *cli) errorf(cmd *cobra.Command, format string, args ...any) int {
	prefix := "canary: "
	if name := commandName(cmd); name != "" {
		prefix += name + ": "
	}
	fmt.Fprintf(c.stderr, prefix+format+"\n", args...)
	return exitError
}

// usageLine prints a usage mistake as one line and where the command's
// help is.
func (c *cli) usageLine(cmd *cobra.Command, msg string) {
	c.errorf(cmd, "%s", msg)
	fmt.Fprintf(c.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
}

// usageError reports a usage mistake the command found itself, as cobra's
// are reported, and returns exitError.
func (c *cli) usageError(cmd *cobra.Command, format string, args ...any) int {
	c.usageLine(cmd, fmt.Sprintf(format, args...))
	return exitError
}

// helpTemplate is every command's help, in one layout: usage,
// description, examples, commands, flags, global flags.
const helpTemplate = `Usage:
  {{if .HasAvailableSubCommands}}{{.CommandPath}} COMMAND [flags]{{else}}{{.UseLine}}{{end}}

{{with (or .Long .Short)}}{{. | trimTrailingWhitespaces}}{{end}}
{{- if .HasExample}}

Examples:
{{.Example}}{{end}}
{{- if .HasAvailableSubCommands}}

Commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}
{{- if .HasAvailableLocalFlags}}

Flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}
{{- if .HasAvailableInheritedFlags}}

Global Flags:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}
{{- if .HasAvailableSubCommands}}

Run '{{.CommandPath}} COMMAND --help' for a command's flags.{{end}}
`

func (c *cli) newRoot(asPlugin bool) *cobra.Command {
	root := &cobra.Command{
		Use:   "canary",
		Short: "Canary analysis for Argo Rollouts, Flagger and Alertmanager",
		Long: `Aurum Canary decides, from Prometheus metrics, Kafka consumer lag and health probes,
whether a canary may advance, must hold, or must be rolled back, and says why.

Policies are YAML files of queries and rules. canary serve answers Argo Rollouts,
Flagger and Alertmanager as a webhook service and can drive a rollout on its own;
the other commands check, test, evaluate and replay policies, and steer what
canary serve runs.`,
		Args: c.noSubcommand,
		RunE: c.groupHelp,
		// Errors are printed by runAs, on one line; a runtime error is no
		// reason to print the usage.
		SilenceErrors:              true,
		SilenceUsage:               true,
		SuggestionsMinimumDistance: 2,
		CompletionOptions:          cobra.CompletionOptions{HiddenDefaultCmd: false},
	}
	if asPlugin {
		root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl canary"}
	}
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.SetHelpTemplate(helpTemplate)
	root.SetUsageTemplate(helpTemplate)
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(
		c.newServeCmd(),
		c.newCheckCmd(),
		c.newEvalCmd(),
		c.newBacktestCmd(),
		c.newImportCmd(),
		c.newTestCmd(),
		c.newDemoCmd(),
		c.newRolloutCmd(),
		c.newRunsCmd(),
		c.newNotifyCmd(),
		c.newTrafficCmd(),
		c.newVersionCmd(),
		c.newDocsCmd(),
	)
	// What cobra adds when it runs, added now, so that the reference
	// documents them too.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, cmd := range root.Commands() {
		if cmd.Name() == "completion" {
			cmd.Args, cmd.RunE, cmd.SuggestionsMinimumDistance = c.noSubcommand, c.groupHelp, 2
			cmd.Example = "  source <(canary completion bash)\n  canary completion zsh > \"${fpath[1]}/_canary\""
		}
	}
	describe(root)
	return root
}

// describe gives every command without a description its summary as one,
// so that each help has the same parts.
func describe(cmd *cobra.Command) {
	if cmd.Long == "" {
		cmd.Long = upperFirst(cmd.Short)
		if !strings.HasSuffix(cmd.Long, ".") {
			cmd.Long += "."
		}
	}
	for _, sub := range cmd.Commands() {
		describe(sub)
	}
}

// newGroup is a command whose first argument names one of its
// subcommands: rollout, runs, traffic, notify.
func (c *cli) newGroup(use, short, long, example string) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Long: long, Example: example, Args: c.noSubcommand, RunE: c.groupHelp,
		SuggestionsMinimumDistance: 2}
}

// groupHelp is what the root and a group do with no subcommand: print
// their help and fail, as there was nothing to do.
func (c *cli) groupHelp(cmd *cobra.Command, _ []string) error {
	if err := cmd.Help(); err != nil {
		return err
	}
	return exitCode(exitError)
}

// noSubcommand refuses an argument to the root or a group: it names no
// subcommand of theirs. The one line says which ones it is close to.
func (c *cli) noSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q", args[0])
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		quoted := make([]string, len(s))
		for i, name := range s {
			quoted[i] = strconv.Quote(name)
		}
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(quoted, " or "))
	}
	return errors.New(msg)
}

// flagError adds a "did you mean" to an unknown flag: the command's flag
// nearest by edit distance, or the long flag a single-dash word names
// (the standard library's flag package took -policy for --policy).
func flagError(cmd *cobra.Command, err error) error {
	msg := err.Error()
	var name string
	switch {
	case strings.HasPrefix(msg, "unknown flag: --"):
		name = strings.TrimPrefix(msg, "unknown flag: --")
	case strings.HasPrefix(msg, "unknown shorthand flag: "):
		// unknown shorthand flag: 'p' in -policy
		if _, word, ok := strings.Cut(msg, " in -"); ok {
			name, _, _ = strings.Cut(word, "=")
		}
	default:
		return err
	}
	if s := suggestFlag(cmd, name); s != "" {
		return fmt.Errorf("%s (did you mean --%s?)", msg, s)
	}
	return err
}

// suggestFlag is the flag of cmd nearest to name: the same name, or one at
// most two edits away (a third of the name for short ones), or one that
// starts with it.
func suggestFlag(cmd *cobra.Command, name string) string {
	best, bestD := "", 3
	if len(name) <= 4 {
		bestD = 2
	}
	visit := func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		d := levenshtein(name, f.Name)
		if strings.HasPrefix(f.Name, name) && len(name) >= 3 {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = f.Name, d
		}
	}
	cmd.Flags().VisitAll(visit)
	cmd.InheritedFlags().VisitAll(visit)
	return best
}

// levenshtein is the edit distance of a and b.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }
func (m *multiFlag) Type() string       { return "stringArray" }

// paramFlag collects repeatable k=v params.
type paramFlag map[string]string

func (p paramFlag) String() string { return "" }
func (p paramFlag) Type() string   { return "key=value" }

func (p paramFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	p[k] = v
	return nil
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
