package rules

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// writePolicyDir writes files×rulesPerFile rules as a Git checkout would hold
// them: one policy per file, ten queries each.
func writePolicyDir(tb testing.TB, files, rulesPerFile int) string {
	dir := tb.TempDir()
	for f := range files {
		var b strings.Builder
		fmt.Fprintf(&b, "apiVersion: canary.aurum.dev/v1\nkind: Policy\nmetadata:\n  name: pipeline-%d\nspec:\n", f)
		b.WriteString("  params:\n    namespace: {}\n    name: {}\n    window: {default: 5m, pattern: '[0-9]+[smh]'}\n  queries:\n")
		for q := range 10 {
			fmt.Fprintf(&b, "    q%d:\n      prometheus: sum(rate(metric_%d_total{namespace=\"{{ .namespace }}\",app=\"{{ .name }}\"}[{{ .window }}]))\n", q, q)
		}
		b.WriteString("  rules:\n")
		for r := range rulesPerFile {
			fmt.Fprintf(&b, "    - name: rule-%d\n      expr: q%d <= q%d * 1.2 + 0.001 && pctChange(q%d, q%d) < 50\n      weight: 2\n",
				r, r%10, (r+1)%10, r%10, (r+3)%10)
		}
		require.NoError(tb, os.WriteFile(filepath.Join(dir, fmt.Sprintf("p%02d.yaml", f)), []byte(b.String()), 0o644))
	}
	return dir
}

// BenchmarkLoad200Rules loads and compiles a directory of 20 policies with
// 10 rules each: what a reload costs.
func BenchmarkLoad200Rules(b *testing.B) {
	dir := writePolicyDir(b, 20, 10)
	b.ReportAllocs()
	for b.Loop() {
		set, err := Load(dir)
		if err != nil {
			b.Fatal(err)
		}
		if len(set.Policies) != 20 {
			b.Fatalf("loaded %d policies", len(set.Policies))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/load")
}
