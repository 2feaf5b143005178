package main

import (
	"errors"
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
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/queries/embedded"
	"github.com/aurum/canary/queries/prometheus"
	"github.com/aurum/canary/rules"
)

// defaultPolicies is where policies are read from when no --policies flag
// is given: the examples, so a first run needs no set-up.
const defaultPolicies = "examples/policies"

// evalFlags are eval's flags.
type evalFlags struct {
	policyPaths multiFlag
	params      paramFlag
	policyName  string
	prom        prometheusFlags
	seriesFile  string
	configFile  string
	kafkaAddrs  string
	pgDSNFile   string
	at          string
	output      string
	timeout     time.Duration
}

func (c *cli) newEvalCmd() *cobra.Command {
	f := &evalFlags{params: paramFlag{}}
	cmd := &cobra.Command{
		Use:   "eval --policy NAME --param k=v ... [--prometheus URL | --series FILE] [flags]",
		Short: "evaluate a policy once and print the verdict",
		Long: `Evaluate a policy once and print the verdict.

The exit code is the verdict, for a CI step to gate on: 0 pass, 2 fail,
3 inconclusive, 1 when the policy could not be evaluated.`,
		Example: `  canary eval --policy iso-ingest --param namespace=caiso --param name=lmp-ingest --prometheus http://prometheus:9090
  canary eval --policy iso-ingest --param namespace=caiso --param name=lmp-ingest --series examples/series/caiso-errors.yaml --at 14m -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return exit(c.eval(cmd, f))
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.policyName, "policy", "", "name of the policy to evaluate (required)")
	f.prom = addPrometheusFlags(fs, "URL of the Prometheus server to query", "timeout of one Prometheus query, retries included", prometheus.DefaultTimeout)
	fs.StringVar(&f.seriesFile, "series", "", "series file (promtool notation) to evaluate against instead of Prometheus")
	fs.StringVar(&f.configFile, "config", "", "a canary serve config file: its sources (prometheus, kafka, postgres) are used")
	fs.StringVar(&f.kafkaAddrs, "kafka-brokers", "", "brokers of the default Kafka cluster, comma-separated")
	fs.StringVar(&f.pgDSNFile, "postgres-dsn-file", "", "file holding the DSN of the default PostgreSQL database (or set CANARY_POSTGRES_DSN)")
	fs.StringVar(&f.at, "at", "", "evaluation time: RFC3339, Unix seconds, or with --series an offset from the series start (e.g. 30m); default now, or with --series the last sample")
	addOutputFlag(cmd, &f.output)
	fs.DurationVar(&f.timeout, "timeout", analysis.DefaultTimeout, "deadline for the whole evaluation")
	fs.Var(&f.policyPaths, "policies", "policy file or directory (repeatable; default "+defaultPolicies+")")
	fs.Var(f.params, "param", "a param as key=value (repeatable)")
	c.completePolicies(cmd, &f.policyPaths, &f.policyName)
	_ = cmd.MarkFlagFilename("series", "yaml", "yml")
	_ = cmd.MarkFlagFilename("config", "yaml", "yml")
	return cmd
}

// eval evaluates the policy once; its exit code is the verdict.
func (c *cli) eval(cmd *cobra.Command, f *evalFlags) int {
	ctx := c.ctx
	switch {
	case f.policyName == "":
		return c.usageError(cmd, "--policy is required")
	case *f.prom.url != "" && f.seriesFile != "":
		return c.usageError(cmd, "give --prometheus or --series, not both")
	}
	if err := checkOutput(f.output); err != nil {
		return c.usageError(cmd, "%v", err)
	}
	pol, ok := c.loadPolicy(cmd, f.policyPaths, f.policyName)
	if !ok {
		return exitError
	}

	cfg := defaultServeConfig()
	if f.configFile != "" {
		if err := loadServeConfig(f.configFile, &cfg); err != nil {
			return c.errorf(cmd, "%v", err)
		}
	}
	if *f.prom.url != "" {
		cfg.Prometheus = []prometheusConfig{f.prom.config()}
	}
	if f.kafkaAddrs != "" {
		cfg.Kafka = defaultKafka(cfg.Kafka, f.kafkaAddrs)
	}
	if f.pgDSNFile != "" {
		cfg.Postgres = defaultPostgres(cfg.Postgres, f.pgDSNFile)
	}
	cfg.Postgres = postgresFromEnv(cfg.Postgres)
	// One evaluation: nothing to share or reuse.
	cfg.Cache.TTL = 0
	sources, closeSources, err := buildSources(cfg.sourcesConfig, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		return c.errorf(cmd, "%v", err)
	}
	defer closeSources()

	var evalAt time.Time
	if f.seriesFile != "" {
		engine, sf, err := embedded.LoadFile(f.seriesFile)
		if err != nil {
			return c.errorf(cmd, "%v", err)
		}
		defer engine.Close()
		sources[queries.Key{Kind: rules.KindPrometheus}] = engine
		evalAt = sf.End()
		if f.at != "" {
			if evalAt, err = parseTime(f.at, sf.Start); err != nil {
				return c.usageError(cmd, "--at: %v", err)
			}
		}
	} else if f.at != "" {
		if evalAt, err = parseTime(f.at, time.Time{}); err != nil {
			return c.usageError(cmd, "--at: %v", err)
		}
	}

	// Without a source every rule would be an error and the verdict
	// inconclusive: that is a usage mistake, not a finding about the canary.
	if missing := missingSources(pol, sources); len(missing) > 0 {
		return c.errorf(cmd, "policy %s reads %s, and no such source is given: %s", pol.Name, strings.Join(missing, ", "), sourceHint(missing))
	}

	ev := analysis.NewEvaluator(analysis.Options{
		Sources: sources,
		Timeout: f.timeout,
	})
	res, err := ev.Evaluate(ctx, pol, f.params, evalAt)
	if err != nil {
		return c.errorf(cmd, "%v", err)
	}
	if code := c.render(cmd, f.output, res, func() { c.printResult(c.stdout, res) }); code != exitOK {
		return code
	}
	switch res.Verdict {
	case analysis.VerdictFail:
		return exitFail
	case analysis.VerdictInconclusive:
		return exitInconclusive
	}
	return exitOK
}

// loadPolicy loads the policies at paths (the examples when none are
// given) and returns the one named, or reports why it cannot.
func (c *cli) loadPolicy(cmd *cobra.Command, paths []string, name string) (*rules.Policy, bool) {
	if len(paths) == 0 {
		if _, err := os.Stat(defaultPolicies); err != nil {
			c.errorf(cmd, "no --policies given, and the default %s is not here (%s): give --policies DIR", defaultPolicies, errors.Unwrap(err))
			return nil, false
		}
		paths = []string{defaultPolicies}
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			c.errorf(cmd, "--policies %s: %v", p, errors.Unwrap(err))
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
		c.errorf(cmd, "%v (loaded: %s)", err, strings.Join(names, ", "))
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

func addPrometheusFlags(fs *pflag.FlagSet, urlHelp, timeoutHelp string, timeout time.Duration) prometheusFlags {
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
