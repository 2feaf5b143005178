package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/spf13/cobra"

	"github.com/aurum/canary/analysis/backtest"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/queries/embedded"
	"github.com/aurum/canary/rules"
)

// defaultBacktestTimeout bounds one range query of a backtest. A range
// query over a day reads far more than a canary's instant queries, so it
// gets longer than eval's per-query timeout.
const defaultBacktestTimeout = time.Minute

// backtestFlags are backtest's flags.
type backtestFlags struct {
	policyPaths multiFlag
	params      paramFlag
	policyName  string
	prom        prometheusFlags
	seriesFile  string
	configFile  string
	from, to    string
	step        time.Duration
	out         string
	output      string
}

func (c *cli) newBacktestCmd() *cobra.Command {
	f := &backtestFlags{params: paramFlag{}}
	cmd := &cobra.Command{
		Use:   "backtest --policy NAME --param k=v ... (--prometheus URL | --series FILE) --from T [--to T] [flags]",
		Short: "replay a policy over history: when would it have failed, and why",
		Long: `Replay a policy over history: when would it have failed, and why.

Every step from --from to --to is evaluated as an analysis at that time would
have been. The exit code is 0 when no step failed, 2 when some step failed,
1 when the replay could not run.`,
		Example: `  canary backtest --policy iso-ingest --param namespace=caiso --param name=lmp-ingest --prometheus http://prometheus:9090 --from -24h --out report.html
  canary backtest --policy iso-ingest --param namespace=caiso --param name=lmp-ingest --series examples/series/caiso-errors.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return exit(c.backtest(cmd, f)) },
	}
	fs := cmd.Flags()
	fs.StringVar(&f.policyName, "policy", "", "name of the policy to replay (required)")
	f.prom = addPrometheusFlags(fs, "URL of the Prometheus server holding the history", "timeout of one Prometheus range query, retries included", defaultBacktestTimeout)
	fs.StringVar(&f.seriesFile, "series", "", "series file (promtool notation) to replay instead of Prometheus")
	fs.StringVar(&f.configFile, "config", "", "a canary serve config file: its prometheus sources are used")
	fs.StringVar(&f.from, "from", "", "first step: RFC3339, Unix seconds; with --prometheus also now or a negative duration such as -24h; with --series an offset from the series start (default: the series start)")
	fs.StringVar(&f.to, "to", "", "last step, as --from (default now, or with --series the last sample)")
	fs.DurationVar(&f.step, "step", time.Minute, "time between evaluations")
	fs.StringVar(&f.out, "out", "", "write a chart too: a .html page or an .svg image")
	addOutputFlag(cmd, &f.output)
	fs.Var(&f.policyPaths, "policies", "policy file or directory (repeatable; default "+defaultPolicies+")")
	fs.Var(f.params, "param", "a param as key=value (repeatable)")
	c.completePolicies(cmd, &f.policyPaths, &f.policyName)
	_ = cmd.MarkFlagFilename("series", "yaml", "yml")
	_ = cmd.MarkFlagFilename("config", "yaml", "yml")
	_ = cmd.MarkFlagFilename("out", "html", "svg")
	return cmd
}

// backtest replays the policy; the exit code says whether a step failed.
func (c *cli) backtest(cmd *cobra.Command, f *backtestFlags) int {
	ctx := c.ctx
	var err error
	chart := strings.ToLower(filepath.Ext(f.out))
	switch {
	case f.policyName == "":
		return c.usageError(cmd, "--policy is required")
	case *f.prom.url != "" && f.seriesFile != "":
		return c.usageError(cmd, "give --prometheus or --series, not both")
	case *f.prom.url == "" && f.seriesFile == "" && f.configFile == "":
		return c.usageError(cmd, "give --prometheus, --series or --config: a backtest needs history to replay")
	case f.seriesFile == "" && f.from == "":
		return c.usageError(cmd, "--from is required with --prometheus or --config")
	case f.step <= 0:
		return c.usageError(cmd, "--step must be positive")
	case f.out != "" && chart != ".html" && chart != ".svg":
		return c.usageError(cmd, "--out must name a .html or an .svg file, got %q", f.out)
	}
	// text is what table was called before -o took yaml.
	if err := checkOutput(f.output, "text"); err != nil {
		return c.usageError(cmd, "%v", err)
	}
	pol, ok := c.loadPolicy(cmd, f.policyPaths, f.policyName)
	if !ok {
		return exitError
	}

	var (
		sources    queries.Registry
		start, end time.Time // the defaults, unless --from and --to say
		parse      func(string) (time.Time, error)
	)
	if f.seriesFile != "" {
		engine, sf, err := embedded.LoadFile(f.seriesFile)
		if err != nil {
			return c.errorf(cmd, "%v", err)
		}
		defer engine.Close()
		sources = queries.Registry{{Kind: rules.KindPrometheus}: engine}
		start, end = sf.Start, sf.End()
		parse = func(s string) (time.Time, error) { return parseTime(s, sf.Start) }
	} else {
		// Only Prometheus holds history: Kafka, probes and PostgreSQL
		// measure the present, and their rules are errors in a replay.
		var cfg sourcesConfig
		if f.configFile != "" {
			full := defaultServeConfig()
			if err := loadServeConfig(f.configFile, &full); err != nil {
				return c.errorf(cmd, "%v", err)
			}
			cfg.Prometheus = full.Prometheus
		}
		if *f.prom.url != "" {
			cfg.Prometheus = []prometheusConfig{f.prom.config()}
		}
		if len(cfg.Prometheus) == 0 {
			return c.errorf(cmd, "%s configures no prometheus source", f.configFile)
		}
		var closeSources func()
		sources, closeSources, err = buildSources(cfg, slog.New(slog.DiscardHandler), nil)
		if err != nil {
			return c.errorf(cmd, "%v", err)
		}
		defer closeSources()
		now := time.Now()
		end = now.Truncate(f.step)
		parse = func(s string) (time.Time, error) { return parseWindowTime(s, now, f.step) }
	}
	if f.from != "" {
		if start, err = parse(f.from); err != nil {
			return c.usageError(cmd, "--from: %v", err)
		}
	}
	if f.to != "" {
		if end, err = parse(f.to); err != nil {
			return c.usageError(cmd, "--to: %v", err)
		}
	}

	tl, err := backtest.Run(ctx, sources, pol, f.params, start, end, f.step)
	if err != nil {
		return c.errorf(cmd, "%v", err)
	}
	if code := c.render(cmd, f.output, tl, func() { tl.WriteText(c.stdout) }); code != exitOK {
		return code
	}
	if f.out != "" {
		if err := writeChart(f.out, chart, tl); err != nil {
			return c.errorf(cmd, "%v", err)
		}
		fmt.Fprintf(c.stderr, "canary: backtest: wrote %s\n", f.out)
	}
	if tl.FirstFailure != nil {
		return exitFail
	}
	return exitOK
}

// writeChart renders the timeline as ext says and writes it to path.
func writeChart(path, ext string, tl *backtest.Timeline) error {
	var b bytes.Buffer
	write := tl.WriteHTML
	if ext == ".svg" {
		write = tl.WriteSVG
	}
	if err := write(&b); err != nil {
		return err
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write chart: %w", err)
	}
	return nil
}

// parseWindowTime reads a time against a live Prometheus: what parseTime
// reads, "now", or a negative duration such as -24h meaning that long
// before now. Relative times are rounded down to a whole step, so that the
// steps of a report fall on round times and two runs a few seconds apart
// replay the same steps.
func parseWindowTime(s string, now time.Time, step time.Duration) (time.Time, error) {
	switch {
	case s == "now":
		return now.Truncate(step), nil
	case strings.HasPrefix(s, "-"):
		d, err := model.ParseDuration(s[1:])
		if err != nil {
			return time.Time{}, fmt.Errorf("bad duration %q: %w", s, err)
		}
		return now.Add(-time.Duration(d)).Truncate(step), nil
	}
	t, err := parseTime(s, time.Time{})
	if err != nil {
		return time.Time{}, errors.New("want RFC3339 (2026-11-26T14:00:00Z), Unix seconds, now, or a negative duration such as -24h")
	}
	return t, nil
}
