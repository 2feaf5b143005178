// Package policytest runs unit tests for policies, in the spirit of
// `promtool test rules`: a test file names policy files, input series in
// promtool's expanding notation, and analyses to run at given times with the
// verdict, decision, rule outcomes and query values they must produce.
//
// The analyses run through the production evaluator; only the source is
// swapped for the embedded PromQL engine loaded with the input series.
//
//	policy_files: [../policies/*.yaml]
//	tests:
//	  - name: error spike rolls back
//	    interval: 1m
//	    input_series:
//	      - series: 'ingest_requests_total{app="lmp",track="canary",code="500"}'
//	        values: '0+5x30'
//	    analysis_tests:
//	      - policy: iso-ingest
//	        params: {namespace: caiso, name: lmp}
//	        eval_time: 20m
//	        exp_verdict: fail
//	        exp_decision: rollback
//	        exp_rules: {error-rate: fail}
//	        exp_values: {error_rate: 0.05}
package policytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/queries/embedded"
	"github.com/aurum/canary/rules"
)

// DefaultInterval spaces input samples when a test names no interval, as
// promtool's evaluation_interval does.
const DefaultInterval = time.Minute

// File is a test file.
type File struct {
	PolicyFiles []string `yaml:"policy_files"`
	Tests       []Group  `yaml:"tests"`
}

// Group is one named test: input series and the analyses to check over them.
type Group struct {
	Name string `yaml:"name"`
	// Interval spaces the input samples; default DefaultInterval.
	Interval Duration `yaml:"interval"`
	// Start is the time of the first sample: RFC3339 or Unix seconds;
	// default the Unix epoch, as in promtool.
	Start         Timestamp              `yaml:"start"`
	InputSeries   []embedded.InputSeries `yaml:"input_series"`
	AnalysisTests []AnalysisTest         `yaml:"analysis_tests"`
}

// AnalysisTest is one analysis and what it must produce.
type AnalysisTest struct {
	Policy string            `yaml:"policy"`
	Params map[string]string `yaml:"params"`
	// EvalTime is the offset from the group's start.
	EvalTime   Duration `yaml:"eval_time"`
	ExpVerdict string   `yaml:"exp_verdict"`
	// ExpDecision, ExpRules and ExpValues are optional.
	ExpDecision string             `yaml:"exp_decision"`
	ExpRules    map[string]string  `yaml:"exp_rules"`
	ExpValues   map[string]float64 `yaml:"exp_values"`
}

// Duration is a Prometheus-style duration in YAML ("30s", "5m", "1h").
type Duration time.Duration

// UnmarshalYAML parses the duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := model.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: bad duration %q", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Timestamp is RFC3339 or Unix seconds in YAML.
type Timestamp time.Time

// UnmarshalYAML parses the time.
func (t *Timestamp) UnmarshalYAML(n *yaml.Node) error {
	if tm, err := time.Parse(time.RFC3339Nano, n.Value); err == nil {
		*t = Timestamp(tm)
		return nil
	}
	if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
		*t = Timestamp(time.Unix(0, int64(f*1e9)).UTC())
		return nil
	}
	return fmt.Errorf("line %d: bad start %q: want RFC3339 or Unix seconds", n.Line, n.Value)
}

// Options select what to run.
type Options struct {
	// Run, when set, runs only the groups whose name it matches.
	Run *regexp.Regexp
}

// FileResult is the outcome of one test file.
type FileResult struct {
	File string
	// Err is set when the file itself could not be used: bad YAML, missing
	// or broken policy files. Its groups did not run.
	Err    error
	Groups []GroupResult
}

// Failed reports whether anything in the file failed.
func (r FileResult) Failed() bool {
	if r.Err != nil {
		return true
	}
	for _, g := range r.Groups {
		if g.Failed() {
			return true
		}
	}
	return false
}

// GroupResult is the outcome of one group.
type GroupResult struct {
	Name string
	// Failures are human-readable, one per failed expectation.
	Failures []string
	Duration time.Duration
}

// Failed reports whether the group failed.
func (g GroupResult) Failed() bool { return len(g.Failures) > 0 }

// RunFile runs one test file.
func RunFile(ctx context.Context, path string, opts Options) FileResult {
	res := FileResult{File: path}
	f, set, err := load(path)
	if err != nil {
		res.Err = err
		return res
	}
	for i, g := range f.Tests {
		name := g.Name
		if name == "" {
			name = fmt.Sprintf("unnamed#%d", i)
		}
		if opts.Run != nil && !opts.Run.MatchString(name) {
			continue
		}
		start := time.Now()
		failures := runGroup(ctx, set, g)
		res.Groups = append(res.Groups, GroupResult{Name: name, Failures: failures, Duration: time.Since(start)})
	}
	return res
}

func load(path string) (*File, *rules.Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(f.PolicyFiles) == 0 {
		return nil, nil, fmt.Errorf("%s: policy_files is empty", path)
	}
	if len(f.Tests) == 0 {
		return nil, nil, fmt.Errorf("%s: no tests", path)
	}
	var files []string
	for _, pattern := range f.PolicyFiles {
		// Policy files are relative to the test file, so a test and its
		// policies can move together.
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(filepath.Dir(path), pattern)
		}
		matches, err := filepath.Glob(pattern)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: policy_files %q: %w", path, pattern, err)
		}
		if len(matches) == 0 {
			return nil, nil, fmt.Errorf("%s: policy_files %q matches no file", path, pattern)
		}
		files = append(files, matches...)
	}
	set, err := rules.LoadFiles(files)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: policy files do not load:\n%w", path, err)
	}
	return &f, set, nil
}

func runGroup(ctx context.Context, set *rules.Set, g Group) []string {
	interval := time.Duration(g.Interval)
	if interval == 0 {
		interval = DefaultInterval
	}
	start := time.Time(g.Start)
	if start.IsZero() {
		start = time.Unix(0, 0).UTC()
	}
	engine, err := embedded.New(embedded.Options{})
	if err != nil {
		return []string{err.Error()}
	}
	defer engine.Close()
	if err := engine.Load(start, interval, g.InputSeries); err != nil {
		return []string{fmt.Sprintf("input_series: %v", err)}
	}
	ev := analysis.NewEvaluator(analysis.Options{Sources: queries.Registry{{Kind: "prometheus"}: engine}})
	var failures []string
	for _, at := range g.AnalysisTests {
		failures = append(failures, check(ctx, ev, set, at, start)...)
	}
	return failures
}

// check runs one analysis and lists every expectation it missed.
func check(ctx context.Context, ev *analysis.Evaluator, set *rules.Set, at AnalysisTest, start time.Time) []string {
	evalTime := time.Duration(at.EvalTime)
	head := fmt.Sprintf("policy %q at %s", at.Policy, model.Duration(evalTime))
	pol, err := set.Get(at.Policy)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", head, err)}
	}
	if at.ExpVerdict == "" {
		return []string{head + ": exp_verdict is required"}
	}
	res, err := ev.Evaluate(ctx, pol, at.Params, start.Add(evalTime))
	if err != nil {
		if errors.Is(err, rules.ErrInvalidParams) && at.ExpVerdict == "invalid_params" {
			return nil
		}
		return []string{fmt.Sprintf("%s: %v", head, err)}
	}
	var diffs []string
	if string(res.Verdict) != at.ExpVerdict {
		diffs = append(diffs, fmt.Sprintf("  exp verdict: %s\n  got verdict: %s (%s)", at.ExpVerdict, res.Verdict, res.Reason))
	}
	if at.ExpDecision != "" && string(res.Decision) != at.ExpDecision {
		diffs = append(diffs, fmt.Sprintf("  exp decision: %s\n  got decision: %s", at.ExpDecision, res.Decision))
	}
	for _, name := range sortedKeys(at.ExpRules) {
		want := at.ExpRules[name]
		i := slices.IndexFunc(res.Rules, func(r analysis.RuleResult) bool { return r.Name == name })
		if i < 0 {
			diffs = append(diffs, fmt.Sprintf("  rule %q: no such rule in policy %q", name, pol.Name))
			continue
		}
		if got := res.Rules[i]; string(got.Verdict) != want {
			diffs = append(diffs, fmt.Sprintf("  rule %q: exp %s, got %s (%s)", name, want, got.Verdict, got.Reason))
		}
	}
	for _, name := range sortedKeys(at.ExpValues) {
		want := at.ExpValues[name]
		q := res.Queries.Get(name)
		switch {
		case q == nil:
			diffs = append(diffs, fmt.Sprintf("  query %q: no such query in policy %q", name, pol.Name))
		case q.Error != "":
			diffs = append(diffs, fmt.Sprintf("  query %q: exp %v, got error: %s", name, want, q.Error))
		case q.Value == nil:
			diffs = append(diffs, fmt.Sprintf("  query %q: exp %v, got no data", name, want))
		case !nearlyEqual(want, float64(*q.Value)):
			diffs = append(diffs, fmt.Sprintf("  query %q: exp %v, got %v", name, want, float64(*q.Value)))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	return []string{head + ":\n" + strings.Join(diffs, "\n")}
}

// nearlyEqual compares with a relative tolerance: rates computed by PromQL carry
// float rounding that the test author cannot write down.
func nearlyEqual(a, b float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
