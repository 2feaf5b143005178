// Command canary is the Aurum Canary engine: it validates, tests and
// evaluates canary-analysis policies, and (with serve) answers Argo Rollouts,
// Flagger and Alertmanager as a webhook service.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	// Policies name time zones (decision rules); the distroless image has
	// no zoneinfo, so the binary carries its own.
	_ "time/tzdata"
)

// Exit codes. eval's verdict codes let a CI step gate on a policy.
const (
	exitOK           = 0
	exitError        = 1
	exitFail         = 2
	exitInconclusive = 3
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// cli carries what every subcommand writes to, so tests can run the command
// in-process and read its output.
type cli struct {
	stdout, stderr io.Writer
	// color is on when stdout is a terminal and NO_COLOR is unset.
	color bool
}

type command struct {
	name, usage, summary string
	run                  func(ctx context.Context, c *cli, args []string) int
}

func commands() []command {
	return []command{
		{"serve", "serve [flags]", "run the webhook service for Argo Rollouts, Flagger and Alertmanager", runServe},
		{"check", "check PATH...", "validate policy files and directories", runCheck},
		{"eval", "eval --policy NAME --param k=v ... [--prometheus URL | --series FILE] [--kafka-brokers ADDRS] [--config FILE] [--at TIME] [-o table|json]", "evaluate a policy once and print the verdict", runEval},
		{"backtest", "backtest --policy NAME --param k=v ... (--prometheus URL | --series FILE) --from T --to T [--step 1m] [--out report.html]", "replay a policy over history: when would it have failed, and why", runBacktest},
		{"import", "import argo|flagger|keptn [--out DIR [--force]] [--mesh-provider P] FILE...", "turn Argo Rollouts, Flagger and Keptn templates into policies", runImport},
		{"test", "test [--run REGEX] [--junit FILE] FILE...", "run policy unit tests over recorded series", runTest},
		{"demo", "demo [--scenario healthy,deploy,errors,lag,alert|all] [--serve]", "run a whole canary rollout on this machine: no Kubernetes, no Prometheus", runDemo},
		{"rollout", "rollout start|status|list|promote|rollback|pause|resume|skip-step ...", "drive a rollout through canary serve's orchestrator", runRollout},
		{"runs", "runs list|status|rollback|promote|pause|resume [NAMESPACE/NAME] ...", "show runs and their latches; latch or lift one by hand", runRuns},
		{"notify", "notify test --route NAME [--config FILE] [--kind K] [--severity S]", "send a sample notification through a route of canary serve's config", runNotify},
		{"traffic", "traffic set|reset|status --router nginx|gatewayapi ...", "move canary traffic: weights, headers, user shares, cookies, countries", runTraffic},
		{"version", "version [-o table|json]", "print the version, commit, build date and Go version", runVersion},
	}
}

func run(args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr, color: isTerminal(stdout) && os.Getenv("NO_COLOR") == ""}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		c.usage(stdout)
		if len(args) == 0 {
			return exitError
		}
		return exitOK
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, cmd := range commands() {
		if cmd.name == args[0] {
			return cmd.run(ctx, c, args[1:])
		}
	}
	fmt.Fprintf(stderr, "canary: unknown command %q\n\n", args[0])
	c.usage(stderr)
	return exitError
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: canary COMMAND [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, cmd := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", cmd.name, cmd.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'canary COMMAND -h' for a command's flags.")
}

// newFlags returns a flag set that reports errors instead of exiting.
func (c *cli) newFlags(cmd string) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	for _, cm := range commands() {
		if cm.name == cmd {
			fs.Usage = func() {
				fmt.Fprintf(c.stderr, "Usage: canary %s\n\n%s.\n\nFlags:\n", cm.usage, upperFirst(cm.summary))
				fs.PrintDefaults()
			}
		}
	}
	return fs
}

// parseArgs parses flags wherever they appear among the positional
// arguments, as `canary test FILE --run X` needs; the standard flag package
// stops at the first positional argument.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// flagExit maps a flag parsing error to an exit code: -h is not an error.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitError
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

// paramFlag collects repeatable k=v params.
type paramFlag map[string]string

func (p paramFlag) String() string { return "" }

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
