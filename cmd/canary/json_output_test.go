package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestJSONOutputUnescaped: -o json writes reasons and expressions as they
// read (0.05 > 0.01), not HTML-escaped (0.05 \u003e 0.01), as the HTTP
// API does; the output is still JSON.
func TestJSONOutputUnescaped(t *testing.T) {
	args := []string{"--policy", "iso-ingest", "--param", "namespace=caiso", "--param", "name=lmp-ingest",
		"--series", "../../examples/series/caiso-errors.yaml", "--policies", "../../examples/policies", "-o", "json"}
	for _, command := range []string{"eval", "backtest"} {
		t.Run(command, func(t *testing.T) {
			code, stdout, stderr := canary(t, append([]string{command}, args...)...)
			require.Equal(t, exitFail, code, stderr)
			require.True(t, json.Valid([]byte(stdout)), stdout)
			for _, esc := range []string{`\u003c`, `\u003e`, `\u0026`} {
				require.NotContains(t, stdout, esc)
			}
			require.True(t, strings.Contains(stdout, "0.05 > 0.01") || strings.Contains(stdout, "0.01003 > 0.01"), "a reason as it reads:\n%s", stdout)
		})
	}
}
