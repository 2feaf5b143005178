package embedded_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/queries/embedded"
	"github.com/aurum/canary/rules"
)

// The example series file and policy `canary eval --series` is shown with:
// 20 series of 31 one-minute samples, and a policy of 7 PromQL queries
// (rates, ratios and histogram_quantiles over 5-minute windows).
const (
	benchSeries   = "../../examples/series/caiso-errors.yaml"
	benchPolicies = "../../examples/policies"
)

var benchParams = map[string]string{"namespace": "caiso", "name": "lmp-ingest"}

func benchPolicy(b *testing.B) *rules.Policy {
	b.Helper()
	set, err := rules.Load(benchPolicies)
	require.NoError(b, err)
	pol, err := set.Get("iso-ingest")
	require.NoError(b, err)
	return pol
}

// BenchmarkEvalSeriesFile is `canary eval --series` without the CLI: read
// and load the example series file into a new engine, evaluate the
// example policy at the file's end, close the engine.
func BenchmarkEvalSeriesFile(b *testing.B) {
	pol := benchPolicy(b)
	b.ReportAllocs()
	for b.Loop() {
		engine, sf, err := embedded.LoadFile(benchSeries)
		if err != nil {
			b.Fatal(err)
		}
		ev := analysis.NewEvaluator(analysis.Options{Sources: queries.Registry{{Kind: rules.KindPrometheus}: engine}})
		res, err := ev.Evaluate(b.Context(), pol, benchParams, sf.End())
		if err != nil {
			b.Fatal(err)
		}
		if res.Verdict != analysis.VerdictFail {
			b.Fatalf("verdict %s, want fail", res.Verdict)
		}
		if err := engine.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvaluateLoaded evaluates the example policy over the example
// series already loaded: the queries alone, as a demo or a test group
// that evaluates one engine many times pays them.
func BenchmarkEvaluateLoaded(b *testing.B) {
	pol := benchPolicy(b)
	engine, sf, err := embedded.LoadFile(benchSeries)
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, engine.Close()) })
	ev := analysis.NewEvaluator(analysis.Options{Sources: queries.Registry{{Kind: rules.KindPrometheus}: engine}})
	b.ReportAllocs()
	for b.Loop() {
		res, err := ev.Evaluate(b.Context(), pol, benchParams, sf.End())
		if err != nil {
			b.Fatal(err)
		}
		if res.Verdict != analysis.VerdictFail {
			b.Fatalf("verdict %s, want fail", res.Verdict)
		}
	}
}
