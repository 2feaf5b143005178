package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/queries/embedded"
	"github.com/aurum/canary/queries/prometheus"
	"github.com/aurum/canary/rules"
)

// defaultPolicies is where policies are read from when no --policies flag
// is given: the examples, so a first run needs no set-up.
const defaultPolicies = "examples/policies"

func runEval(ctx context.Context, c *cli, args []string) int {
	fs := c.newFlags("eval")
	var (
		policyPaths multiFlag
		params      = paramFlag{}
		policyName  = fs.String("policy", "", "name of the policy to evaluate (required)")
		prom        = addPrometheusFlags(fs, "URL of the Prometheus server to query", "timeout of one Prometheus query, retries included", prometheus.DefaultTimeout)
		seriesFile  = fs.String("series", "", "series file (promtool notation) to evaluate against instead of Prometheus")
		configFile  = fs.String("config", "", "a canary serve config file: its sources (prometheus, kafka, postgres) are used")
		kafkaAddrs  = fs.String("kafka-brokers", "", "brokers of the default Kafka cluster, comma-separated")
		pgDSNFile   = fs.String("postgres-dsn-file", "", "file holding the DSN of the default PostgreSQL database (or set CANARY_POSTGRES_DSN)")
		at          = fs.String("at", "", "evaluation time: RFC3339, Unix seconds, or with --series an offset from the series start (e.g. 30m); default now, or with --series the last sample")
		output      = fs.String("o", "table", "output format: table or json")
		timeout     = fs.Duration("timeout", analysis.DefaultTimeout, "deadline for the whole evaluation")
	)
	fs.Var(&policyPaths, "policies", "policy file or directory (repeatable; default "+defaultPolicies+")")
	fs.Var(params, "param", "a param as key=value (repeatable)")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return flagExit(err)
	}
	switch {
	case len(rest) > 0:
		return c.usageError(fs, "unexpected arguments: %s", strings.Join(rest, " "))
	case *policyName == "":
		return c.usageError(fs, "--policy is required")
	case *prom.url != "" && *seriesFile != "":
		return c.usageError(fs, "give --prometheus or --series, not both")
	case *output != "table" && *output != "json":
		return c.usageError(fs, "-o must be table or json")
	}
	pol, ok := c.loadPolicy("eval", policyPaths, *policyName)
	if !ok {
		return exitError
	}

	cfg := defaultServeConfig()
	if *configFile != "" {
		if err := loadServeConfig(*configFile, &cfg); err != nil {
			fmt.Fprintf(c.stderr, "canary eval: %v\n", err)
			return exitError
		}
	}
	if *prom.url != "" {
		cfg.Prometheus = []prometheusConfig{prom.config()}
	}
	if *kafkaAddrs != "" {
		cfg.Kafka = defaultKafka(cfg.Kafka, *kafkaAddrs)
	}
	if *pgDSNFile != "" {
		cfg.Postgres = defaultPostgres(cfg.Postgres, *pgDSNFile)
	}
	cfg.Postgres = postgresFromEnv(cfg.Postgres)
	// One evaluation: nothing to share or reuse.
	cfg.Cache.TTL = 0
	sources, closeSources, err := buildSources(cfg.sourcesConfig, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		fmt.Fprintf(c.stderr, "canary eval: %v\n", err)
		return exitError
	}
	defer closeSources()

	var evalAt time.Time
	if *seriesFile != "" {
		engine, sf, err := embedded.LoadFile(*seriesFile)
		if err != nil {
			fmt.Fprintf(c.stderr, "canary eval: %v\n", err)
			return exitError
		}
		defer engine.Close()
		sources[queries.Key{Kind: rules.KindPrometheus}] = engine
		evalAt = sf.End()
		if *at != "" {
			if evalAt, err = parseTime(*at, sf.Start); err != nil {
				return c.usageError(fs, "--at: %v", err)
			}
		}
	} else if *at != "" {
		if evalAt, err = parseTime(*at, time.Time{}); err != nil {
			return c.usageError(fs, "--at: %v", err)
		}
	}

	// Without a source every rule would be an error and the verdict
	// inconclusive: that is a usage mistake, not a finding about the canary.
	if missing := missingSources(pol, sources); len(missing) > 0 {
		fmt.Fprintf(c.stderr, "canary: eval: policy %s reads %s, and no such source is given: %s\n", pol.Name, strings.Join(missing, ", "), sourceHint(missing))
		return exitError
	}

	ev := analysis.NewEvaluator(analysis.Options{
		Sources: sources,
		Timeout: *timeout,
	})
	res, err := ev.Evaluate(ctx, pol, params, evalAt)
	if err != nil {
		fmt.Fprintf(c.stderr, "canary eval: %v\n", err)
		return exitError
	}
	if *output == "json" {
		if !c.writeJSON("eval", res) {
			return exitError
		}
	} else {
		c.printResult(c.stdout, res)
	}
	switch res.Verdict {
	case analysis.VerdictFail:
		return exitFail
	case analysis.VerdictInconclusive:
		return exitInconclusive
	}
	return exitOK
}

func (c *cli) usageError(fs *flag.FlagSet, format string, args ...any) int {
	fmt.Fprintf(c.stderr, "canary: "+format+"\n\n", args...)
	fs.Usage()
	return exitError
}

// loadPolicy loads the policies at paths (the examples when none are
// given) and returns the one named, or reports why it cannot.
func (c *cli) loadPolicy(cmd string, paths []string, name string) (*rules.Policy, bool) {
	if len(paths) == 0 {
		if _, err := os.Stat(defaultPolicies); err != nil {
			fmt.Fprintf(c.stderr, "canary: %s: no --policies given, and the default %s is not here (%s): give --policies DIR\n", cmd, defaultPolicies, errors.Unwrap(err))
			return nil, false
		}
		paths = []string{defaultPolicies}
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			fmt.Fprintf(c.stderr, "canary: %s: --policies %s: %v\n", cmd, p, errors.Unwrap(err))
			return nil, false
		}
	}
	set, err := rules.Load(paths...)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return nil, false
	}
	pol, err := set.Get(name)
	if err != nil {
		names := make([]string, len(set.Policies))
		for i, p := range set.Policies {
			names[i] = p.Name
		}
		fmt.Fprintf(c.stderr, "canary %s: %v (loaded: %s)\n", cmd, err, strings.Join(names, ", "))
		return nil, false
	}
	return pol, true
}

// prometheusFlags are the flags that name one Prometheus server, for the
// commands that read one (eval, backtest).
type prometheusFlags struct {
	url, tokenFile, caFile *string
	timeout                *time.Duration
}

func addPrometheusFlags(fs *flag.FlagSet, urlHelp, timeoutHelp string, timeout time.Duration) prometheusFlags {
	return prometheusFlags{
		url:       fs.String("prometheus", "", urlHelp),
		tokenFile: fs.String("prometheus-bearer-token-file", "", "file holding a bearer token for Prometheus"),
		caFile:    fs.String("prometheus-ca-file", "", "CA certificate file for Prometheus over TLS"),
		timeout:   fs.Duration("prometheus-timeout", timeout, timeoutHelp),
	}
}

// config is the source the flags name.
func (f prometheusFlags) config() prometheusConfig {
	hc := config.DefaultHTTPClientConfig
	hc.BearerTokenFile = *f.tokenFile
	hc.TLSConfig.CAFile = *f.caFile
	return prometheusConfig{URL: *f.url, HTTPClient: hc, Timeout: model.Duration(*f.timeout)}
}

// writeJSON prints v as indented JSON, the answer of -o json.
func (c *cli) writeJSON(cmd string, v any) bool {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(c.stderr, "canary %s: %v\n", cmd, err)
		return false
	}
	return true
}

// parseTime reads RFC3339, Unix seconds, or, when base is set, a duration
// offset from base.
func parseTime(s string, base time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC(), nil
	}
	if !base.IsZero() {
		if d, err := model.ParseDuration(s); err == nil {
			return base.Add(time.Duration(d)), nil
		}
	}
	return time.Time{}, errors.New("want RFC3339 (2026-11-26T14:00:00Z), Unix seconds, or an offset such as 30m with --series")
}

// printResult renders a result as a table: a header line with the verdict,
// one line per rule, then failed queries and the reason.
func (c *cli) printResult(w io.Writer, res *analysis.Result) {
	fmt.Fprintf(w, "policy %s   verdict %s   decision %s   score %s   at %s\n\n",
		res.Policy, c.paint(string(res.Verdict)), c.paint(string(res.Decision)),
		strconv.FormatFloat(res.Score, 'f', 2, 64), res.EvaluatedAt.UTC().Format(time.RFC3339))
	rows := [][]string{{"RULE", "VERDICT", "VALUE", "REASON"}}
	for _, r := range res.Rules {
		v := "-"
		if r.Value != nil {
			v = analysis.FormatValue(float64(*r.Value))
		}
		rows = append(rows, []string{r.Name, string(r.Verdict), v, r.Reason})
	}
	c.table(w, rows, 1)
	var problems []string
	for _, q := range res.Queries {
		switch {
		case q.Error != "":
			problems = append(problems, fmt.Sprintf("query %s failed: %s", q.Name, q.Error))
		case len(q.Warnings) > 0:
			problems = append(problems, fmt.Sprintf("query %s warnings: %s", q.Name, strings.Join(q.Warnings, "; ")))
		}
	}
	if len(problems) > 0 {
		fmt.Fprintln(w)
		for _, p := range problems {
			fmt.Fprintln(w, p)
		}
	}
	fmt.Fprintf(w, "\n%s: %s\n", c.paint(string(res.Verdict)), res.Reason)
}

// table writes aligned columns; the column at paintCol is coloured after
// padding, so escape codes do not upset the alignment.
func (c *cli) table(w io.Writer, rows [][]string, paintCol int) {
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], len(cell))
		}
	}
	for n, row := range rows {
		var b strings.Builder
		for i, cell := range row {
			if i == len(row)-1 {
				b.WriteString(cell)
				break
			}
			pad := strings.Repeat(" ", widths[i]-len(cell)+2)
			if i == paintCol && n > 0 {
				cell = c.paint(cell)
			}
			b.WriteString(cell + pad)
		}
		fmt.Fprintln(w, b.String())
	}
}

// missingSources lists the sources pol's queries read that r lacks, as
// "prometheus" for a kind's default and "kafka cluster \"main\"" for a
// named one, each once.
func missingSources(pol *rules.Policy, r queries.Registry) []string {
	var missing []string
	for _, q := range pol.AllQueries() {
		if _, err := r.Lookup(q.Kind, q.Source); err == nil {
			continue
		}
		m := q.Kind
		if q.Source != "" {
			m = fmt.Sprintf("%s source %q", q.Kind, q.Source)
		}
		if !slices.Contains(missing, m) {
			missing = append(missing, m)
		}
	}
	return missing
}

// sourceHint says which flags give the missing sources.
func sourceHint(missing []string) string {
	var hints []string
	add := func(h string) {
		if !slices.Contains(hints, h) {
			hints = append(hints, h)
		}
	}
	for _, m := range missing {
		switch m {
		case rules.KindPrometheus:
			add("--prometheus URL or --series FILE")
		case rules.KindKafka:
			add("--kafka-brokers ADDRS")
		case rules.KindPostgres:
			add("--postgres-dsn-file FILE")
		default:
			add("--config FILE naming it")
		}
	}
	return "give " + strings.Join(hints, ", ")
}
