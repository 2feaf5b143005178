package rules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expr-lang/expr"
	"github.com/stretchr/testify/require"
)

// FuzzParse feeds arbitrary bytes to the policy parser: it must return
// policies or errors, never panic or hang.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/good", "testdata/bad", "../examples/policies"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, file := range files {
			data, err := os.ReadFile(file)
			require.NoError(f, err)
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pols, err := Parse("fuzz.yaml", data)
		if err == nil {
			for _, p := range pols {
				require.NotEmpty(t, p.Name)
				require.NotEmpty(t, p.Rules)
			}
		}
	})
}

// FuzzRenderParams checks the injection guarantee: whatever a caller sends,
// a value that passes validation cannot change the structure of the rendered
// PromQL, so the rendered text has exactly as many quotes, braces and
// brackets as it has with a harmless value.
func FuzzRenderParams(f *testing.F) {
	pol := goodPolicy(f)
	for _, s := range []string{"lmp-ingest", `x"} or vector(1) #`, "a\nb", "", "{{ .name }}", `\"`, "a.b_c-d", "ÿ"} {
		f.Add(s, "canary", "5m")
	}
	structure := func(s string) [6]int {
		return [6]int{
			strings.Count(s, `"`), strings.Count(s, "{"), strings.Count(s, "}"),
			strings.Count(s, "["), strings.Count(s, "]"), strings.Count(s, "("),
		}
	}
	base, err := pol.ResolveParams(map[string]string{"namespace": "ns", "name": "n"})
	require.NoError(f, err)
	want := map[string][6]int{}
	for _, q := range pol.Queries {
		text, _, err := q.Render(base)
		require.NoError(f, err)
		want[q.Name] = structure(text)
	}
	f.Fuzz(func(t *testing.T, name, track, window string) {
		params, err := pol.ResolveParams(map[string]string{"namespace": "ns", "name": name, "track": track, "window": window})
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidParams)
			return
		}
		for _, q := range pol.Queries {
			text, _, err := q.Render(params)
			require.NoError(t, err)
			require.Equal(t, want[q.Name], structure(text), "value changed the query's structure: %s", text)
		}
	})
}

func TestExprFunctions(t *testing.T) {
	tests := []struct {
		name string
		src  string
		x    float64
		want bool
	}{
		{name: "safeDiv by zero takes the fallback", src: "safeDiv(x, 0, 1) == 1", x: 5, want: true},
		{name: "safeDiv", src: "safeDiv(x, 2, 1) == 2.5", x: 5, want: true},
		{name: "within", src: "within(x, 100, 5)", x: 98, want: true},
		{name: "not within", src: "within(x, 100, 1)", x: 98, want: false},
		{name: "ratio with integer arguments", src: "ratio(x, 2) > 1", x: 3, want: true},
		{name: "pctChange", src: "pctChange(x, 100) <= 25", x: 125, want: true},
		{name: "isNaN", src: "isNaN(x)", x: 1, want: false},
		{name: "isInf", src: "isInf(x)", x: 1, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog, err := expr.Compile(tt.src, exprOptions(map[string]any{"x": float64(0)}, expr.AsBool())...)
			require.NoError(t, err)
			out, err := expr.Run(prog, map[string]any{"x": tt.x})
			require.NoError(t, err)
			require.Equal(t, tt.want, out)
		})
	}
}
