package main

// The embedded PromQL engine's numbers, pinned to the last bit: every
// example policy test, every example series file evaluated at each of its
// minutes and replayed by `canary backtest`, and the demo's policy over a
// fixed, seeded scrape served through the engine's Prometheus API. The
// golden files were recorded with the TSDB-backed engine, before its
// storage was replaced by the in-memory one, so that the replacement is
// shown to give Prometheus's values exactly (floats are written with
// strconv's shortest round-trip form, so a last-bit change shows).
//
// Rewrite them with `go test ./cmd/canary -run TestEngineGolden -update`,
// and only for a change that is meant to move the numbers.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/analysis/backtest"
	"github.com/aurum/canary/analysis/policytest"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/queries/embedded"
	"github.com/aurum/canary/queries/prometheus"
	"github.com/aurum/canary/rules"
)

// durationRE finds the wall-clock durations a result carries, the only
// part of it that is not a function of the data.
var durationRE = regexp.MustCompile(`"durationSeconds":[^,}]+`)

// engineGolden collects one golden file: a list of labelled JSON values.
type engineGolden struct {
	t   *testing.T
	buf bytes.Buffer
}

// add writes v as indented JSON under label, durations zeroed.
func (g *engineGolden) add(label string, v any) {
	g.t.Helper()
	raw, err := json.Marshal(v)
	require.NoError(g.t, err, label)
	g.addJSON(label, raw)
}

func (g *engineGolden) addJSON(label string, raw []byte) {
	g.t.Helper()
	raw = durationRE.ReplaceAll(raw, []byte(`"durationSeconds":0`))
	var out bytes.Buffer
	require.NoError(g.t, json.Indent(&out, raw, "", " "), label)
	fmt.Fprintf(&g.buf, "## %s\n%s\n", label, out.Bytes())
}

func (g *engineGolden) addText(label, text string) {
	fmt.Fprintf(&g.buf, "## %s\n%s\n", label, text)
}

func (g *engineGolden) check(name string) {
	g.t.Helper()
	golden(g.t, filepath.Join("engine", name), g.buf.String())
}

// TestEngineGoldenPolicyTests evaluates every analysis of every example
// test file, as `canary test` does, and records the whole result, not only
// what the test file expects; each group is also replayed by backtest at
// its interval, which runs the policy's queries as range queries.
func TestEngineGoldenPolicyTests(t *testing.T) {
	var files []string
	for _, pattern := range []string{"../../examples/tests/*.test.yaml", "../../examples/gitops/tests/*.test.yaml", "testdata/pass.test.yaml", "testdata/fail.test.yaml"} {
		m, err := filepath.Glob(pattern)
		require.NoError(t, err)
		files = append(files, m...)
	}
	require.GreaterOrEqual(t, len(files), 7)
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		if strings.Contains(path, "gitops") {
			name = "gitops-" + name
		}
		t.Run(name, func(t *testing.T) {
			g := &engineGolden{t: t}
			_, stdout, _ := canary(t, "test", path)
			g.addText("canary test", stdout)
			f, set := loadPolicyTest(t, path)
			for gi, grp := range f.Tests {
				recordGroup(t, g, fmt.Sprintf("group %d %q", gi, grp.Name), set, grp)
			}
			g.check(name + ".txt")
		})
	}
}

// loadPolicyTest reads a test file and its policies as policytest does.
func loadPolicyTest(t *testing.T, path string) (policytest.File, *rules.Set) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var f policytest.File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&f))
	var policies []string
	for _, pattern := range f.PolicyFiles {
		m, err := filepath.Glob(filepath.Join(filepath.Dir(path), pattern))
		require.NoError(t, err)
		policies = append(policies, m...)
	}
	set, err := rules.LoadFiles(policies)
	require.NoError(t, err)
	return f, set
}

func recordGroup(t *testing.T, g *engineGolden, label string, set *rules.Set, grp policytest.Group) {
	t.Helper()
	interval := time.Duration(grp.Interval)
	if interval == 0 {
		interval = policytest.DefaultInterval
	}
	start := time.Time(grp.Start)
	if start.IsZero() {
		start = time.Unix(0, 0).UTC()
	}
	engine, err := embedded.New(embedded.Options{})
	require.NoError(t, err)
	defer engine.Close()
	require.NoError(t, engine.Load(start, interval, grp.InputSeries), label)
	src := queries.Registry{{Kind: rules.KindPrometheus}: engine}
	ev := analysis.NewEvaluator(analysis.Options{Sources: src})

	type replay struct {
		policy string
		params map[string]string
	}
	var (
		replays []replay
		last    time.Duration
	)
	for ai, at := range grp.AnalysisTests {
		pol, err := set.Get(at.Policy)
		require.NoError(t, err)
		when := start.Add(time.Duration(at.EvalTime))
		res, err := ev.Evaluate(t.Context(), pol, at.Params, when)
		alabel := fmt.Sprintf("%s analysis %d %s at %s", label, ai, at.Policy, time.Duration(at.EvalTime))
		if err != nil {
			g.addText(alabel, "error: "+err.Error())
			continue
		}
		g.add(alabel, res)
		last = max(last, time.Duration(at.EvalTime))
		if !slices.ContainsFunc(replays, func(r replay) bool { return r.policy == at.Policy && fmt.Sprint(r.params) == fmt.Sprint(at.Params) }) {
			replays = append(replays, replay{at.Policy, at.Params})
		}
	}
	for ri, r := range replays {
		pol, err := set.Get(r.policy)
		require.NoError(t, err)
		tl, err := backtest.Run(t.Context(), src, pol, r.params, start, start.Add(last), interval)
		rlabel := fmt.Sprintf("%s backtest %d %s %v", label, ri, r.policy, r.params)
		if err != nil {
			g.addText(rlabel, "error: "+err.Error())
			continue
		}
		g.add(rlabel, tl)
	}
}

// TestEngineGoldenSeriesFiles evaluates iso-ingest over each example
// series file at every minute with `canary eval --series --at`, and
// replays it with `canary backtest --series`, as a user runs them.
func TestEngineGoldenSeriesFiles(t *testing.T) {
	files, err := filepath.Glob("../../examples/series/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	policy := []string{"--policies", "../../examples/policies", "--policy", "iso-ingest", "--param", "namespace=caiso", "--param", "name=lmp-ingest"}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			g := &engineGolden{t: t}
			_, sf, err := embedded.LoadFile(path)
			require.NoError(t, err)
			minutes := int(sf.End().Sub(sf.Start) / time.Minute)
			for m := 0; m <= minutes; m++ {
				at := strconv.Itoa(m) + "m"
				code, stdout, stderr := canary(t, append([]string{"eval", "--series", path, "--at", at, "-o", "json"}, policy...)...)
				require.NotEqual(t, exitError, code, stderr)
				g.addJSON("eval --at "+at+" (exit "+strconv.Itoa(code)+")", []byte(stdout))
			}
			code, stdout, stderr := canary(t, append([]string{"backtest", "--series", path, "-o", "json"}, policy...)...)
			require.NotEqual(t, exitError, code, stderr)
			g.addJSON("backtest (exit "+strconv.Itoa(code)+")", []byte(stdout))
			g.check("series-" + name + ".txt")
		})
	}
}

// TestEngineGoldenDemo runs the demo's policy through the demo's path, the
// production Prometheus client over the engine's HTTP API, against
// samples appended one scrape at a time as the demo's scraper appends
// them. The demo itself runs on the wall clock with a random edge, so its
// scrapes are replaced by seeded ones: two tracks of a pipeline whose
// canary starts failing a share of its fetches half way through.
func TestEngineGoldenDemo(t *testing.T) {
	engine, err := embedded.New(embedded.Options{})
	require.NoError(t, err)
	defer engine.Close()
	t0 := time.Date(2026, 11, 26, 16, 7, 0, 0, time.UTC)
	scrapeDemo(t, engine, t0, 60)

	srv := httptest.NewServer(engine.Handler())
	defer srv.Close()
	prom, err := prometheus.New(prometheus.Config{URL: srv.URL}, nil)
	require.NoError(t, err)
	set, err := rules.LoadFiles([]string{"demo/lmp-demo.yaml"})
	require.NoError(t, err)
	pol, err := set.Get("lmp-demo")
	require.NoError(t, err)
	ev := analysis.NewEvaluator(analysis.Options{Sources: queries.Registry{{Kind: rules.KindPrometheus}: prom}})
	params := map[string]string{"namespace": "demo", "name": "lmp-ingest"}

	g := &engineGolden{t: t}
	for s := 4; s <= 60; s += 2 {
		at := t0.Add(time.Duration(s) * time.Second)
		res, err := ev.Evaluate(t.Context(), pol, params, at)
		require.NoError(t, err)
		// The Kafka query has no source here: its error names no value.
		g.add(fmt.Sprintf("analysis at +%ds", s), res)
	}
	// The range path of the API, as a backtest against a Prometheus uses it.
	tl, err := backtest.Run(t.Context(), queries.Registry{{Kind: rules.KindPrometheus}: prom}, pol, params, t0.Add(10*time.Second), t0.Add(60*time.Second), 5*time.Second)
	require.NoError(t, err)
	g.add("backtest +10s..+60s every 5s", tl)
	g.check("demo.txt")
}

// scrapeDemo appends n seeded scrapes, one a second from t0, of the series
// the demo's services expose, with the job and instance labels and the up
// series the demo's scraper adds.
func scrapeDemo(t *testing.T, engine *embedded.Engine, t0 time.Time, n int) {
	t.Helper()
	rnd := rand.New(rand.NewPCG(17, 2026))
	buckets := []string{"0.05", "0.1", "0.25", "0.5", "1", "+Inf"}
	type track struct {
		name     string
		ok, fail float64
		hist     []float64
	}
	tracks := []*track{{name: "primary", hist: make([]float64, len(buckets))}, {name: "canary", hist: make([]float64, len(buckets))}}
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Second)
		for _, tr := range tracks {
			base := map[string]string{"namespace": "demo", "app": "lmp-ingest", "track": tr.name,
				"job": "lmp-ingest-" + tr.name, "instance": "127.0.0.1:" + map[string]string{"primary": "9101", "canary": "9102"}[tr.name]}
			with := func(extra ...string) map[string]string {
				ls := make(map[string]string, len(base)+len(extra)/2)
				for k, v := range base {
					ls[k] = v
				}
				for j := 0; j+1 < len(extra); j += 2 {
					ls[extra[j]] = extra[j+1]
				}
				return ls
			}
			reqs := float64(20 + rnd.IntN(20))
			failShare := 0.002
			if tr.name == "canary" && i >= n/2 {
				failShare = 0.15
			}
			fails := float64(int(reqs*failShare + rnd.Float64()))
			tr.ok += reqs - fails
			tr.fail += fails
			for range int(reqs) {
				d := rnd.ExpFloat64() * 0.08
				for b, le := range buckets {
					if le == "+Inf" || d <= mustFloat(t, le) {
						tr.hist[b]++
					}
				}
			}
			require.NoError(t, engine.Append(with("__name__", "up", "namespace", "", "app", "", "track", ""), at, 1))
			require.NoError(t, engine.Append(with("__name__", "ingest_requests_total", "code", "200"), at, tr.ok))
			if tr.fail > 0 {
				require.NoError(t, engine.Append(with("__name__", "ingest_requests_total", "code", "503"), at, tr.fail))
			}
			for b, le := range buckets {
				require.NoError(t, engine.Append(with("__name__", "ingest_request_duration_seconds_bucket", "le", le), at, tr.hist[b]))
			}
			last := float64(at.Add(-time.Duration(rnd.IntN(900))*time.Millisecond).UnixMilli()) / 1000
			require.NoError(t, engine.Append(with("__name__", "ingest_last_success_timestamp_seconds"), at, last))
		}
	}
	// A scrape that comes late is refused, as Prometheus refuses it.
	err := engine.Append(map[string]string{"__name__": "up", "job": "lmp-ingest-canary", "instance": "127.0.0.1:9102"}, t0, 1)
	require.ErrorContains(t, err, "out of order sample")
}

func mustFloat(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	require.NoError(t, err)
	return f
}
