package importer_test

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/argoproj/argo-rollouts/utils/evaluate"
	argotemplate "github.com/argoproj/argo-rollouts/utils/template"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/rules/importer"
)

// The imported policy must give the verdict Argo Rollouts gives. These
// tests run Argo's own evaluation code (utils/evaluate.EvaluateResult, the
// function its Prometheus provider calls with the result it built) on
// recorded results, and the engine's Decide on the same numbers, for every
// documented template of testdata/argo.
//
// The phases map onto verdicts as the policy's decision does: Successful
// is pass, Failed fail, Inconclusive inconclusive, and Error (which Argo
// retries) inconclusive, the verdict of a rule that errored. A run is the
// worst of its metrics (Argo's order: Successful < Inconclusive < Error <
// Failed); dry-run metrics do not count.
//
// Where the engine knowingly differs, the test holds it to what it says:
//   - a result the engine has no data for (an empty vector, NaN, ±Inf)
//     takes the rule's noData outcome, which the import chose as the
//     strictest of Argo's phases for those results and noted when they
//     differ; -Inf, which no rate or quantile gives, is not considered;
//   - a NaN or ±Inf series among finite ones is left out, so the verdict is
//     Argo's on the finite values.

// argoMetric is one metric of a template with what the import made of it.
type argoMetric struct {
	metric v1alpha1.Metric
	query  *rules.Query
	rule   string
	// noted: the import noted that Argo's phases on no data differ.
	noted bool
	dry   bool
	// scalar: Argo hands the conditions a number, not a list.
	scalar bool
	// consts are the numbers of the conditions, to draw values near.
	consts []float64
}

type argoCase struct {
	name string
	tmpl importer.ArgoTemplate
	// spec is the template's, in Argo's own types.
	spec    v1alpha1.AnalysisTemplateSpec
	policy  *rules.Policy
	metrics []argoMetric
}

var numberRE = regexp.MustCompile(`\d+(\.\d+)?`)

func argoCases(t *testing.T) []argoCase {
	t.Helper()
	files, err := filepath.Glob("testdata/argo/*.yaml")
	require.NoError(t, err)
	var cases []argoCase
	for _, file := range files {
		data, err := os.ReadFile(file)
		require.NoError(t, err)
		tmpls, _, err := importer.DecodeArgo(file, data)
		if err != nil {
			continue // a failure golden
		}
		for _, tm := range tmpls {
			doc, notes, err := importer.FromArgo(tm)
			require.NoError(t, err)
			if doc == nil {
				continue
			}
			pol, err := doc.Check()
			require.NoError(t, err)
			spec, err := importer.ArgoSpec(tm)
			require.NoError(t, err)
			c := argoCase{name: filepath.Base(file) + "/" + tm.Name, tmpl: tm, spec: spec, policy: pol}
			for _, m := range spec.Metrics {
				if m.Provider.Prometheus == nil {
					continue
				}
				am := argoMetric{metric: m}
				for _, d := range spec.DryRun {
					if ok, _ := regexp.MatchString(d.MetricName, m.Name); ok {
						am.dry = true
					}
				}
				for _, r := range pol.Rules {
					if r.Name == m.Name {
						am.rule = r.Name
						am.query = r.Inputs[0]
						am.scalar = am.query.ValueKind() == rules.KindScalar
					}
				}
				if am.rule == "" && !am.dry {
					t.Fatalf("%s: metric %s has no rule", c.name, m.Name)
				}
				for _, n := range notes {
					if strings.Contains(n.From, "metric "+m.Name) && strings.Contains(n.Text, "one noData outcome") {
						am.noted = true
					}
				}
				for _, s := range numberRE.FindAllString(m.SuccessCondition+" "+m.FailureCondition, -1) {
					f, _ := strconv.ParseFloat(s, 64)
					am.consts = append(am.consts, f)
				}
				c.metrics = append(c.metrics, am)
			}
			cases = append(cases, c)
		}
	}
	require.GreaterOrEqual(t, len(cases), 6)
	return cases
}

// argoVerdict maps a phase as the policy's decision does.
func argoVerdict(p v1alpha1.AnalysisPhase) analysis.Verdict {
	switch p {
	case v1alpha1.AnalysisPhaseSuccessful:
		return analysis.VerdictPass
	case v1alpha1.AnalysisPhaseFailed:
		return analysis.VerdictFail
	}
	return analysis.VerdictInconclusive
}

var verdictRank = map[analysis.Verdict]int{analysis.VerdictPass: 0, analysis.VerdictInconclusive: 1, analysis.VerdictFail: 2}

func worse(a, b analysis.Verdict) analysis.Verdict {
	if verdictRank[b] > verdictRank[a] {
		return b
	}
	return a
}

// argoResult is what Argo's Prometheus provider hands EvaluateResult for
// samples: a []float64 of a vector's (or matrix's) values, or a float64 for
// a scalar.
func argoResult(m argoMetric, values []float64) any {
	if m.scalar {
		return values[0]
	}
	return values
}

// argoPhase is Argo's phase for a measurement.
func argoPhase(m argoMetric, result any) v1alpha1.AnalysisPhase {
	phase, _ := evaluate.EvaluateResult(result, m.metric, *logrus.NewEntry(logrus.New()))
	return phase
}

func finite(vs []float64) []float64 {
	var out []float64
	for _, v := range vs {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			out = append(out, v)
		}
	}
	return out
}

// expected is the verdict the engine must give a metric's values, and
// whether it must equal Argo's.
func expected(t *rapid.T, m argoMetric, values []float64) (analysis.Verdict, bool) {
	fin := finite(values)
	argo := argoVerdict(argoPhase(m, argoResult(m, values)))
	if len(fin) == 0 {
		// No data: the rule's noData outcome, the strictest of Argo's
		// phases for an empty result, NaN and +Inf.
		cases := [][]float64{{math.NaN()}, {math.Inf(1)}}
		if !m.scalar {
			cases = append(cases, []float64{})
		}
		want := analysis.VerdictPass
		for _, c := range cases {
			want = worse(want, argoVerdict(argoPhase(m, argoResult(m, c))))
		}
		// Unless the import noted otherwise, Argo agrees on an empty
		// result and NaN, and is no stricter on +Inf.
		switch {
		case m.noted || len(values) > 0 && math.IsInf(values[0], -1):
		case len(values) > 0 && math.IsInf(values[0], 1):
			if verdictRank[argo] > verdictRank[want] {
				t.Fatalf("metric %s: +Inf: Argo says %s, stricter than the noData outcome %s, and the import noted nothing", m.metric.Name, argo, want)
			}
		case want != argo:
			t.Fatalf("metric %s: no data %v: Argo says %s, the noData outcome is %s, and the import noted nothing", m.metric.Name, values, argo, want)
		}
		return want, want == argo
	}
	if len(fin) < len(values) {
		// Non-finite series are left out: Argo's verdict on the rest.
		return argoVerdict(argoPhase(m, argoResult(m, fin))), false
	}
	return argo, true
}

// drawValues draws a metric's result: empty, NaN, ±Inf, finite values near
// the conditions' constants, or a mix, one to five series.
func drawValues(t *rapid.T, m argoMetric, label string) []float64 {
	near := func(t *rapid.T, label string) float64 {
		if len(m.consts) > 0 && rapid.Bool().Draw(t, label+"-near") {
			c := rapid.SampledFrom(m.consts).Draw(t, label+"-const")
			return c + rapid.SampledFrom([]float64{0, -1e-9, 1e-9, -0.01, 0.01, -1, 1}).Draw(t, label+"-delta")
		}
		return rapid.Float64Range(-2, 2000).Draw(t, label+"-any")
	}
	value := func(t *rapid.T, label string) float64 {
		switch rapid.IntRange(0, 9).Draw(t, label+"-kind") {
		case 0:
			return math.NaN()
		case 1:
			return math.Inf(1)
		case 2:
			return math.Inf(-1)
		}
		return near(t, label)
	}
	n := 1
	if !m.scalar {
		n = rapid.IntRange(0, 5).Draw(t, label+"-series")
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = value(t, fmt.Sprintf("%s-%d", label, i))
	}
	return out
}

// decide runs the engine on the metrics' values.
func decide(c argoCase, values map[string][]float64, params map[string]string) *analysis.Result {
	qs := make(analysis.QueryResults, len(c.policy.Queries))
	for i, q := range c.policy.Queries {
		var res queries.Result
		for _, m := range c.metrics {
			if m.query == q {
				for j, v := range values[m.metric.Name] {
					s := queries.Sample{Labels: map[string]string{"series": strconv.Itoa(j)}, Value: v}
					if q.Range > 0 {
						s.Points = []queries.Point{{Time: time.Unix(0, 0), Value: v}}
					}
					res.Samples = append(res.Samples, s)
				}
			}
		}
		text, _, err := q.Render(params)
		if err != nil {
			panic(err)
		}
		qs[i] = analysis.NewQueryResult(q, text, res, nil)
	}
	return analysis.Decide(c.policy, params, qs, time.Unix(1700000000, 0))
}

// params gives every param a value, as a caller would.
func params(pol *rules.Policy) map[string]string {
	out := map[string]string{}
	for _, p := range pol.Params {
		out[p.Name] = "canary-svc"
		if p.HasDefault {
			out[p.Name] = p.Default
		}
	}
	return out
}

// TestArgoEquivalence draws results for every metric of every documented
// template and compares the imported policy's verdict with Argo's.
func TestArgoEquivalence(t *testing.T) {
	for _, c := range argoCases(t) {
		t.Run(c.name, func(t *testing.T) {
			ps := params(c.policy)
			rapid.Check(t, func(t *rapid.T) {
				values := map[string][]float64{}
				want := analysis.VerdictPass
				exact := true
				for _, m := range c.metrics {
					if m.dry {
						continue // in Argo too, a dry-run metric never decides
					}
					vs := drawValues(t, m, m.metric.Name)
					values[m.metric.Name] = vs
					v, ex := expected(t, m, vs)
					want = worse(want, v)
					exact = exact && ex
				}
				res := decide(c, values, ps)
				if res.Verdict != want {
					t.Fatalf("values %v: canary says %s (%s), want %s (exact Argo: %v)", values, res.Verdict, res.Reason, want, exact)
				}
			})
		})
	}
}

// TestArgoDocumentedPhases pins the phases Argo's documentation shows for
// NaN, +Inf and an empty array ("Handling Metric Results") on the imported
// rules: the engine gives each documented phase's verdict.
func TestArgoDocumentedPhases(t *testing.T) {
	byName := map[string]argoCase{}
	for _, c := range argoCases(t) {
		byName[c.tmpl.Name] = c
	}
	for _, tc := range []struct {
		template, metric string
		values           []float64
		want             analysis.Verdict
	}{
		{"nan-inf", "nan-passes", []float64{math.NaN()}, analysis.VerdictPass},
		{"nan-inf", "nan-inconclusive", []float64{math.NaN()}, analysis.VerdictInconclusive},
		{"nan-inf", "nan-fails", []float64{math.NaN()}, analysis.VerdictFail},
		{"nan-inf", "inf-fails", []float64{math.Inf(1)}, analysis.VerdictFail},
		{"empty-array", "empty-fails", []float64{}, analysis.VerdictFail},
		{"inconclusive", "success-rate", []float64{0.7}, analysis.VerdictInconclusive},
		{"inconclusive", "success-rate", []float64{0.4}, analysis.VerdictFail},
		{"inconclusive", "success-rate", []float64{0.95}, analysis.VerdictPass},
		{"success-rate", "success-rate", []float64{0.96, 0.2}, analysis.VerdictPass},
		{"success-rate", "success-rate", []float64{0.2, 0.96}, analysis.VerdictFail},
		{"range-query-example", "success-rate", []float64{999, 10}, analysis.VerdictPass},
		{"range-query-example", "success-rate", []float64{999, 1000}, analysis.VerdictFail},
	} {
		t.Run(tc.template+"/"+tc.metric, func(t *testing.T) {
			c, ok := byName[tc.template]
			require.True(t, ok)
			var only argoCase
			only = c
			only.metrics = nil
			for _, m := range c.metrics {
				if m.metric.Name == tc.metric {
					only.metrics = append(only.metrics, m)
				}
			}
			require.Len(t, only.metrics, 1)
			m := only.metrics[0]
			if len(finite(tc.values)) == len(tc.values) && len(tc.values) > 0 || !m.noted {
				require.Equal(t, tc.want, argoVerdict(argoPhase(m, argoResult(m, tc.values))), "Argo's own phase")
			}
			res := decide(only, map[string][]float64{tc.metric: tc.values}, params(c.policy))
			var rr *analysis.RuleResult
			for i := range res.Rules {
				if res.Rules[i].Name == m.rule {
					rr = &res.Rules[i]
				}
			}
			require.NotNil(t, rr)
			got := analysis.VerdictInconclusive
			switch rr.Verdict {
			case rules.OutcomePass:
				got = analysis.VerdictPass
			case rules.OutcomeFail:
				got = analysis.VerdictFail
			}
			// A decision rule makes the rule's pass inconclusive.
			for _, d := range res.Decisions {
				if d == m.rule+"-inconclusive" && got == analysis.VerdictPass {
					got = analysis.VerdictInconclusive
				}
			}
			require.Equal(t, tc.want, got, "%s", rr.Reason)
		})
	}
}

// TestArgoQueriesRender: Argo's own argument substitution and the
// imported query's template give the same PromQL for the same values.
func TestArgoQueriesRender(t *testing.T) {
	for _, c := range argoCases(t) {
		ps := params(c.policy)
		var args []v1alpha1.Argument
		for _, a := range c.spec.Args {
			name := a.Name
			// The param of an arg is its identifier form.
			v := ps[strings.NewReplacer("-", "_", ".", "_").Replace(name)]
			if v == "" {
				v = "unused"
			}
			args = append(args, v1alpha1.Argument{Name: name, Value: &v})
		}
		for _, m := range c.metrics {
			if m.query == nil {
				continue
			}
			want, err := argotemplate.ResolveArgs(m.metric.Provider.Prometheus.Query, args)
			require.NoError(t, err, c.name)
			got, _, err := m.query.Render(ps)
			require.NoError(t, err, c.name)
			require.Equal(t, want, got, "%s, metric %s", c.name, m.metric.Name)
		}
	}
}
