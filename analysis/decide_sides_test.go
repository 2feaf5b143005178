package analysis

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand"
	"strconv"
	"testing"
	"time"

	"github.com/expr-lang/expr/vm"
	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/rules"
)

// TestDecideSidesAgreeWithProgram pins the shortcut Decide takes for a rule
// that compares two numbers: judging it from its two sides must give the
// verdict, and on an error the reason, that running its program gives,
// NaN, infinities and signed zeros included.
func TestDecideSidesAgreeWithProgram(t *testing.T) {
	pol := loadPolicy(t, "testdata/comparisons.yaml", "comparisons")

	// Every comparison of float64 sides takes the shortcut but one with an
	// int side (len), which the program compares as ints.
	for _, r := range pol.Rules {
		want := r.Explain != nil && r.Name != "points-int"
		got := r.Explain != nil && standalone(r.Explain.Left) && standalone(r.Explain.Right)
		require.Equal(t, want, got, r.Name)
	}

	nan, inf := math.NaN(), math.Inf(1)
	values := []float64{0, math.Copysign(0, -1), 1, -1, 0.004, 0.01, 0.011, 500, 501, 2.5, 1e300, -1e300, nan, inf, -inf}
	limits := []string{"0.01", "1e-3", "5", "1.2.3"}
	rng := rand.New(rand.NewSource(1))
	pick := func() float64 {
		if rng.Intn(4) == 0 {
			return (rng.Float64() - 0.5) * math.Pow(10, float64(rng.Intn(8)-3))
		}
		return values[rng.Intn(len(values))]
	}
	var machine vm.VM
	for i := 0; i < 3000; i++ {
		qs := make(QueryResults, len(pol.Queries))
		for j, q := range pol.Queries {
			qs[j] = QueryResult{Name: q.Name, Kind: q.Kind}
			switch q.ValueKind() {
			case rules.KindScalar:
				qs[j].Value = floatPtr(pick())
			case rules.KindRange:
				for n := 1 + rng.Intn(6); n > 0; n-- {
					qs[j].Points = append(qs[j].Points, pick())
				}
			case rules.KindRecord:
				qs[j].setRecord(map[string]float64{"up": float64(rng.Intn(2)), "status": 200 + float64(rng.Intn(2)), "latency_ms": pick()})
			}
		}
		params := map[string]string{"limit": limits[rng.Intn(len(limits))]}
		res := Decide(pol, params, qs, time.Unix(0, 0))

		env := map[string]any{rules.ParamsVar: params}
		for j := range qs {
			if v, ok := qs[j].envValue(); ok {
				env[qs[j].Name] = v
			}
		}
		for j, r := range pol.Rules {
			rr := res.Rules[j]
			if rr.NoData {
				continue
			}
			out, err := machine.Run(r.Program, env)
			if err != nil {
				require.Equal(t, rules.OutcomeError, rr.Verdict, "%s with %v", r.Name, env)
				require.Equal(t, "expression error: "+firstLine(err.Error()), rr.Reason, r.Name)
				continue
			}
			want := rules.OutcomeFail
			if out.(bool) {
				want = rules.OutcomePass
			}
			require.Equal(t, want, rr.Verdict, "%s with %v: %s", r.Name, env, rr.Reason)
		}
	}
}

// TestDecideSidesShareTheMemoryBudget pins a rule whose sides each stay
// within expr's memory budget while the whole expression does not: it is
// the program's error, not a verdict from the sides.
func TestDecideSidesShareTheMemoryBudget(t *testing.T) {
	pol := loadPolicy(t, "testdata/comparisons.yaml", "budget")
	r := pol.Rules[0]
	require.False(t, standalone(r.Explain.Right), "a side that builds a range spends the budget")

	qs := QueryResults{{Name: "a", Kind: pol.Queries[0].Kind, Value: floatPtr(1)}}
	res := Decide(pol, map[string]string{}, qs, time.Unix(0, 0))
	_, err := new(vm.VM).Run(r.Program, map[string]any{"a": 1.0, rules.ParamsVar: map[string]string{}})
	require.Error(t, err)
	require.Equal(t, rules.OutcomeError, res.Rules[0].Verdict)
	require.Equal(t, "expression error: "+firstLine(err.Error()), res.Rules[0].Reason)
}

// TestAppendValueWholeNumbers pins the quick path for whole numbers to what
// strconv writes for them, -0 included.
func TestAppendValueWholeNumbers(t *testing.T) {
	tests := []struct {
		name string
		in   float64
	}{
		{name: "zero", in: 0},
		{name: "negative zero", in: math.Copysign(0, -1)},
		{name: "one", in: 1},
		{name: "minus one", in: -1},
		{name: "largest below 1e15", in: 1e15 - 1},
		{name: "most negative above -1e15", in: -(1e15 - 1)},
		{name: "fifteen digits", in: 123456789012345},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, string(strconv.AppendFloat(nil, tt.in, 'f', 0, 64)), FormatValue(tt.in))
		})
	}
}

// TestDecideGoCompiledAgreesWithPrograms holds Decide with the rules'
// Go-compiled conditions and sides (rules.Condition, rules.Number) to
// Decide with programs only, field by field and byte by byte in the JSON
// a caller sees: verdicts, values, thresholds, reasons, expression errors.
// The inputs are random, with NaN, infinities, signed zeros, queries that
// failed, lack data or hold no number, and params that do not parse.
func TestDecideGoCompiledAgreesWithPrograms(t *testing.T) {
	files := []string{"testdata/comparisons.yaml", "testdata/ten-rules.yaml", "testdata/six-queries.yaml",
		"testdata/checkout.yaml", "testdata/market-hours.yaml", "testdata/probes.yaml", "testdata/compare.yaml"}
	nan, inf := math.NaN(), math.Inf(1)
	values := []float64{0, math.Copysign(0, -1), 1, -1, 2, 0.004, 0.01, 0.011, 500, 2.5, 1e300, -1e300, nan, inf, -inf}
	limits := []string{"0.01", "1e-3", "5", "-0", "1.2.3", "1e400", "", "NaN", "0x1p-3"}
	rng := rand.New(rand.NewSource(1))
	pick := func() float64 {
		if rng.Intn(4) == 0 {
			return (rng.Float64() - 0.5) * math.Pow(10, float64(rng.Intn(8)-3))
		}
		return values[rng.Intn(len(values))]
	}
	var compiled int
	for _, file := range files {
		fast, err := rules.Load(file)
		require.NoError(t, err)
		slow, err := rules.Load(file)
		require.NoError(t, err)
		for p, pol := range fast.Policies {
			programs := slow.Policies[p]
			for _, r := range programs.Rules {
				if r.Condition != nil {
					compiled++
				}
				r.Condition = nil
				if r.Explain != nil {
					r.Explain.Left.Number, r.Explain.Right.Number = nil, nil
				}
			}
			for i := 0; i < 300; i++ {
				all := pol.AllQueries()
				qs := make(QueryResults, len(all))
				for j, q := range all {
					qs[j] = QueryResult{Name: q.Name, Kind: q.Kind}
					switch n := rng.Intn(20); {
					case n == 0:
						qs[j].fail(errors.New("boom"))
						continue
					case n == 1:
						qs[j].NoData = true
						continue
					case n == 2:
						// Neither data nor a value.
						continue
					}
					switch q.ValueKind() {
					case rules.KindScalar:
						qs[j].Value = floatPtr(pick())
					case rules.KindRange:
						for n := 1 + rng.Intn(12); n > 0; n-- {
							qs[j].Points = append(qs[j].Points, pick())
						}
					case rules.KindSamples:
						for n := 1 + rng.Intn(3); n > 0; n-- {
							qs[j].Samples = append(qs[j].Samples, rules.Sample{Labels: map[string]string{"n": strconv.Itoa(n)}, Value: pick()})
						}
					case rules.KindRecord:
						rec := map[string]float64{}
						for _, f := range rules.RecordFields(q.Kind) {
							rec[f] = pick()
						}
						rec["up"] = float64(rng.Intn(2))
						qs[j].setRecord(rec)
					}
				}
				params := map[string]string{}
				for _, par := range pol.Params {
					if rng.Intn(8) > 0 {
						params[par.Name] = par.Default
					}
					if rng.Intn(3) == 0 {
						params[par.Name] = limits[rng.Intn(len(limits))]
					}
				}
				at := time.Unix(rng.Int63n(2_000_000_000), 0)
				// Both hold the same qs, which JSON cannot write with
				// infinite points.
				want, got := Decide(programs, params, qs, at), Decide(pol, params, qs, at)
				want.Queries, got.Queries = nil, nil
				wantJSON, err := json.Marshal(want)
				require.NoError(t, err)
				gotJSON, err := json.Marshal(got)
				require.NoError(t, err)
				require.Equal(t, string(wantJSON), string(gotJSON), "%s %s", file, pol.Name)
			}
		}
	}
	require.Greater(t, compiled, 20, "rules compiled to Go")
}

// TestDecideReasonsWriteEachValueAsAppendSides pins the reasons' numbers
// to rules.AppendSides (each side as FormatValue writes it unless that
// misleads; a measured side that is a negligible share of the other as
// 0) when the same numbers recur across rules, as Decide copies a number
// it already wrote rather than formatting it again, and when there are
// more distinct numbers than it remembers.
func TestDecideReasonsWriteEachValueAsAppendSides(t *testing.T) {
	pol := loadPolicy(t, "testdata/comparisons.yaml", "go-compiled")
	few := []float64{0.004, 0.01, math.Copysign(0, -1), 1.5, -2.25, math.NaN(), math.Inf(-1), 1e300, 1234.5678}
	rng := rand.New(rand.NewSource(1))
	var sided int
	for i := 0; i < 500; i++ {
		qs := make(QueryResults, len(pol.Queries))
		for j, q := range pol.Queries {
			qs[j] = QueryResult{Name: q.Name, Kind: q.Kind}
			v := few[rng.Intn(len(few))]
			if i%2 == 1 {
				v = rng.NormFloat64() * math.Pow(10, float64(rng.Intn(10)-5))
			}
			switch q.ValueKind() {
			case rules.KindScalar:
				qs[j].Value = floatPtr(v)
			case rules.KindRange:
				qs[j].Points = []float64{v, 1, 2, 3}
			case rules.KindRecord:
				qs[j].setRecord(map[string]float64{"up": 1, "status": 200, "latency_ms": v})
			}
		}
		res := Decide(pol, map[string]string{"limit": "0.004"}, qs, time.Unix(0, 0))
		for j, rr := range res.Rules {
			if rr.Threshold == nil {
				continue
			}
			sided++
			op := pol.Rules[j].Explain.Op
			if rr.Verdict != rules.OutcomePass {
				op = rules.Negate(op)
			}
			left, right := float64(*rr.Value), float64(*rr.Threshold)
			if !pol.Rules[j].Explain.Left.IsConst {
				left = rules.Readable(left, float64(*rr.Threshold))
			}
			if !pol.Rules[j].Explain.Right.IsConst {
				right = rules.Readable(right, float64(*rr.Value))
			}
			require.Equal(t, string(rules.AppendSides(nil, left, op, right)), rr.Reason, rr.Name)
		}
	}
	require.Greater(t, sided, 5000)
}
