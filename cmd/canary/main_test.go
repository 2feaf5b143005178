package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/analysis"
)

var update = flag.Bool("update", false, "rewrite golden files")

// canary runs the command in-process and returns its exit code and output.
func canary(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "missing golden file; run go test ./cmd/canary -update")
	require.Equal(t, string(want), got)
}

// TestCLIGolden pins the output and exit code of each command for passing,
// failing and broken inputs.
func TestCLIGolden(t *testing.T) {
	// The examples are referred to relative to the repository root.
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // golden file for stdout, if any
		stderr string // golden file for stderr, if any
	}{
		{name: "check examples", args: []string{"check", "../../examples/policies"}, code: exitOK, stdout: "check-examples.txt"},
		{name: "check broken", args: []string{"check", "../../rules/testdata/bad/bad-expr.yaml", "testdata/broken-policy.yaml"}, code: exitError, stderr: "check-broken.txt"},
		{name: "test passing file", args: []string{"test", "testdata/pass.test.yaml"}, code: exitOK, stdout: "test-pass.txt"},
		{name: "test failing file", args: []string{"test", "testdata/pass.test.yaml", "testdata/fail.test.yaml"}, code: exitError, stdout: "test-fail.txt"},
		{name: "test bad file", args: []string{"test", "testdata/bad.test.yaml"}, code: exitError, stdout: "test-bad.txt"},
		{name: "test file with a broken policy", args: []string{"test", "testdata/bad-policy.test.yaml"}, code: exitError, stdout: "test-bad-policy.txt"},
		{name: "test --run selects groups", args: []string{"test", "testdata/fail.test.yaml", "--run", "^passes$"}, code: exitOK, stdout: "test-run.txt"},
		{name: "test examples", args: []string{"test", "../../examples/tests/iso-ingest.test.yaml", "../../examples/tests/lmp-feeds.test.yaml"}, code: exitOK},
		{name: "eval healthy series", args: []string{"eval", "--policies", "../../examples/policies", "--policy", "iso-ingest",
			"--param", "namespace=caiso", "--param", "name=lmp-ingest", "--series", "../../examples/series/caiso-healthy.yaml"}, code: exitOK, stdout: "eval-healthy.txt"},
		{name: "eval failing series", args: []string{"eval", "--policies", "../../examples/policies", "--policy", "iso-ingest",
			"--param", "namespace=caiso", "--param", "name=lmp-ingest", "--series", "../../examples/series/caiso-errors.yaml"}, code: exitFail, stdout: "eval-errors.txt"},
		{name: "eval at an offset before the spike", args: []string{"eval", "--policies", "../../examples/policies", "--policy", "iso-ingest",
			"--param", "namespace=caiso", "--param", "name=lmp-ingest", "--series", "../../examples/series/caiso-errors.yaml", "--at", "14m"}, code: exitOK},
		{name: "eval injection attempt", args: []string{"eval", "--policies", "../../examples/policies", "--policy", "iso-ingest",
			"--param", "namespace=caiso", "--param", `name=x"} or vector(1) #`, "--series", "../../examples/series/caiso-errors.yaml"}, code: exitError, stderr: "eval-injection.txt"},
		{name: "eval unknown policy", args: []string{"eval", "--policies", "../../examples/policies", "--policy", "nope", "--series", "x"}, code: exitError, stderr: "eval-unknown.txt"},
		{name: "eval with no source configured", args: []string{"eval", "--policies", "../../examples/policies", "--policy", "iso-ingest",
			"--param", "namespace=caiso", "--param", "name=lmp-ingest"}, code: exitError, stderr: "eval-no-source.txt"},
		{name: "eval with a missing policies directory", args: []string{"eval", "--policies", "testdata/no-such-dir", "--policy", "iso-ingest", "--series", "x"},
			code: exitError, stderr: "eval-no-policies.txt"},
		{name: "eval without --policies away from the repository root", args: []string{"eval", "--policy", "iso-ingest", "--series", "x"},
			code: exitError, stderr: "eval-no-default-policies.txt"},
		{name: "eval with two prometheus sources", args: []string{"eval", "--policy", "iso-ingest", "--prometheus", "http://x", "--series", "y"}, code: exitError},
		{name: "unknown command", args: []string{"frobnicate"}, code: exitError},
		{name: "help", args: []string{"help"}, code: exitOK, stdout: "help.txt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := canary(t, tt.args...)
			require.Equal(t, tt.code, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
			if tt.stdout != "" {
				golden(t, tt.stdout, stdout)
			}
			if tt.stderr != "" {
				golden(t, tt.stderr, stderr)
			}
		})
	}
}

func TestEvalJSON(t *testing.T) {
	code, stdout, stderr := canary(t, "eval", "--policies", "../../examples/policies", "--policy", "iso-ingest",
		"--param", "namespace=caiso", "--param", "name=lmp-ingest", "--series", "../../examples/series/caiso-errors.yaml", "-o", "json")
	require.Equal(t, exitFail, code, stderr)
	var res analysis.Result
	require.NoError(t, json.Unmarshal([]byte(stdout), &res))
	require.Equal(t, analysis.VerdictFail, res.Verdict)
	require.Equal(t, analysis.DecisionRollback, res.Decision)
	require.Equal(t, "error-rate: 0.05 > 0.01; errors-vs-baseline: 0.05 > 0.004741", res.Reason)
	require.Len(t, res.Rules, 5)
	require.Equal(t, "error-rate", res.Rules[0].Name)
	require.InDelta(t, 0.05, float64(*res.Rules[0].Value), 1e-12)
	q := res.Queries.Get("error_rate")
	require.NotNil(t, q)
	require.Contains(t, q.Query, `track="canary",code=~"5.."`)
	// The contract's field names, as an Argo Rollouts jsonPath reads them.
	var raw map[string]any
	require.NoError(t, json.Unmarshal([]byte(stdout), &raw))
	for _, k := range []string{"policy", "verdict", "decision", "score", "reason", "rules", "queries", "evaluatedAt"} {
		require.Contains(t, raw, k)
	}
	rule := raw["rules"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "verdict", "value", "expr", "reason"} {
		require.Contains(t, rule, k)
	}
}

func TestTestJUnit(t *testing.T) {
	out := filepath.Join(t.TempDir(), "junit.xml")
	code, _, _ := canary(t, "test", "--junit", out, "testdata/pass.test.yaml", "testdata/fail.test.yaml", "testdata/bad.test.yaml")
	require.Equal(t, exitError, code)
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	var doc junitSuites
	require.NoError(t, xml.Unmarshal(data, &doc))
	require.Len(t, doc.Suites, 3)
	require.Equal(t, 2, doc.Suites[0].Tests)
	require.Equal(t, 0, doc.Suites[0].Failures)
	require.Equal(t, 1, doc.Suites[1].Failures)
	require.Equal(t, "wrong expectations", doc.Suites[1].Cases[1].Name)
	require.Contains(t, doc.Suites[1].Cases[1].Failure.Text, "exp verdict: pass")
	require.Equal(t, 1, doc.Suites[2].Errors)
	require.True(t, strings.HasPrefix(string(data), "<?xml"))
}
