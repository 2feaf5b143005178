package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/aurum/canary/analysis/backtest"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/queries/embedded"
	"github.com/aurum/canary/rules"
)

// defaultBacktestTimeout bounds one range query of a backtest. A range
// query over a day reads far more than a canary's instant queries, so it
// gets longer than eval's per-query timeout.
const defaultBacktestTimeout = time.Minute

func runBacktest(ctx context.Context, c *cli, args []string) int {
	fs := c.newFlags("backtest")
	var (
		policyPaths multiFlag
		params      = paramFlag{}
		policyName  = fs.String("policy", "", "name of the policy to replay (required)")
		prom        = addPrometheusFlags(fs, "URL of the Prometheus server holding the history", "timeout of one Prometheus range query, retries included", defaultBacktestTimeout)
		seriesFile  = fs.String("series", "", "series file (promtool notation) to replay instead of Prometheus")
		configFile  = fs.String("config", "", "a canary serve config file: its prometheus sources are used")
		from        = fs.String("from", "", "first step: RFC3339, Unix seconds; with --prometheus also now or a negative duration such as -24h; with --series an offset from the series start (default: the series start)")
		to          = fs.String("to", "", "last step, as --from (default now, or with --series the last sample)")
		step        = fs.Duration("step", time.Minute, "time between evaluations")
		out         = fs.String("out", "", "write a chart too: a .html page or an .svg image")
		output      = fs.String("o", "text", "output format: text or json")
	)
	fs.Var(&policyPaths, "policies", "policy file or directory (repeatable; default "+defaultPolicies+")")
	fs.Var(params, "param", "a param as key=value (repeatable)")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return flagExit(err)
	}
	chart := strings.ToLower(filepath.Ext(*out))
	switch {
	case len(rest) > 0:
		return c.usageError(fs, "unexpected arguments: %s", strings.Join(rest, " "))
	case *policyName == "":
		return c.usageError(fs, "--policy is required")
	case *prom.url != "" && *seriesFile != "":
		return c.usageError(fs, "give --prometheus or --series, not both")
	case *prom.url == "" && *seriesFile == "" && *configFile == "":
		return c.usageError(fs, "give --prometheus, --series or --config: a backtest needs history to replay")
	case *seriesFile == "" && *from == "":
		return c.usageError(fs, "--from is required with --prometheus or --config")
	case *step <= 0:
		return c.usageError(fs, "--step must be positive")
	case *out != "" && chart != ".html" && chart != ".svg":
		return c.usageError(fs, "--out must name a .html or an .svg file, got %q", *out)
	case *output != "text" && *output != "json":
		return c.usageError(fs, "-o must be text or json")
	}
	pol, ok := c.loadPolicy("backtest", policyPaths, *policyName)
	if !ok {
		return exitError
	}

	var (
		sources    queries.Registry
		start, end time.Time // the defaults, unless --from and --to say
		parse      func(string) (time.Time, error)
	)
	if *seriesFile != "" {
		engine, sf, err := embedded.LoadFile(*seriesFile)
		if err != nil {
			fmt.Fprintf(c.stderr, "canary backtest: %v\n", err)
			return exitError
		}
		defer engine.Close()
		sources = queries.Registry{{Kind: rules.KindPrometheus}: engine}
		start, end = sf.Start, sf.End()
		parse = func(s string) (time.Time, error) { return parseTime(s, sf.Start) }
	} else {
		// Only Prometheus holds history: Kafka, probes and PostgreSQL
		// measure the present, and their rules are errors in a replay.
		var cfg sourcesConfig
		if *configFile != "" {
			full := defaultServeConfig()
			if err := loadServeConfig(*configFile, &full); err != nil {
				fmt.Fprintf(c.stderr, "canary backtest: %v\n", err)
				return exitError
			}
			cfg.Prometheus = full.Prometheus
		}
		if *prom.url != "" {
			cfg.Prometheus = []prometheusConfig{prom.config()}
		}
		if len(cfg.Prometheus) == 0 {
			fmt.Fprintf(c.stderr, "canary backtest: %s configures no prometheus source\n", *configFile)
			return exitError
		}
		var closeSources func()
		sources, closeSources, err = buildSources(cfg, slog.New(slog.DiscardHandler), nil)
		if err != nil {
			fmt.Fprintf(c.stderr, "canary backtest: %v\n", err)
			return exitError
		}
		defer closeSources()
		now := time.Now()
		end = now.Truncate(*step)
		parse = func(s string) (time.Time, error) { return parseWindowTime(s, now, *step) }
	}
	if *from != "" {
		if start, err = parse(*from); err != nil {
			return c.usageError(fs, "--from: %v", err)
		}
	}
	if *to != "" {
		if end, err = parse(*to); err != nil {
			return c.usageError(fs, "--to: %v", err)
		}
	}

	tl, err := backtest.Run(ctx, sources, pol, params, start, end, *step)
	if err != nil {
		fmt.Fprintf(c.stderr, "canary backtest: %v\n", err)
		return exitError
	}
	if *output == "json" {
		if !c.writeJSON("backtest", tl) {
			return exitError
		}
	} else {
		tl.WriteText(c.stdout)
	}
	if *out != "" {
		if err := writeChart(*out, chart, tl); err != nil {
			fmt.Fprintf(c.stderr, "canary backtest: %v\n", err)
			return exitError
		}
		fmt.Fprintf(c.stderr, "canary backtest: wrote %s\n", *out)
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
