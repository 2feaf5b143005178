package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
)

// commandPaths are the paths of every command of the CLI, the root's ""
// first: "rollout status", "completion bash", ...
func commandPaths() []string {
	var paths []string
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		paths = append(paths, commandName(cmd))
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk((&cli{}).newRoot(false))
	return paths
}

// TestHelpEveryCommand: every command and group answers -h, --help and
// `canary help X` with exit 0 and its help on stdout, in one layout, as
// testdata/golden/help/ pins it.
func TestHelpEveryCommand(t *testing.T) {
	paths := commandPaths()
	require.Greater(t, len(paths), 30)
	for _, path := range paths {
		t.Run(cmpOr(path, "canary"), func(t *testing.T) {
			args := strings.Fields(path)
			code, stdout, stderr := canary(t, append(args, "--help")...)
			require.Equal(t, exitOK, code, stderr)
			require.Empty(t, stderr)
			golden(t, filepath.Join("help", strings.ReplaceAll(cmpOr(path, "canary"), " ", "_")+".txt"), stdout)
			for _, part := range []string{"Usage:\n  canary ", "\n\nFlags:\n"} {
				require.Contains(t, stdout, part, "every help has the same parts")
			}
			// cobra's own commands explain themselves in their description.
			if path != "" && !strings.HasPrefix(path, "help") && !strings.HasPrefix(path, "completion ") {
				require.Contains(t, stdout, "\n\nExamples:\n", "every command of ours shows an example")
			}

			code, short, _ := canary(t, append(args, "-h")...)
			require.Equal(t, exitOK, code)
			require.Equal(t, stdout, short, "-h is --help")
			code, viaHelp, _ := canary(t, append([]string{"help"}, args...)...)
			require.Equal(t, exitOK, code)
			require.Equal(t, stdout, viaHelp, "canary help %s is canary %s --help", path, path)
		})
	}
}

func cmpOr(s, dflt string) string {
	if s == "" {
		return dflt
	}
	return s
}

// TestExitCodes holds the exit codes the README and the reference
// document, command by command, and the one-line errors of usage
// mistakes.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	// A policy whose query reads a series the file does not have: no
	// data, so its rule is inconclusive, and so is the verdict.
	nodata := filepath.Join(dir, "nodata.yaml")
	require.NoError(t, os.WriteFile(nodata, []byte(`
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: nodata}
spec:
  params: {name: {}}
  queries:
    errors: {prometheus: 'sum(rate(no_such_metric_total{app="{{ .name }}"}[5m]))'}
  rules:
    - {name: errors, expr: errors < 1}
`), 0o644))
	const examples = "../../examples/policies"
	evalArgs := []string{"eval", "--policies", examples, "--policy", "iso-ingest", "--param", "namespace=caiso", "--param", "name=lmp-ingest"}
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string // the whole of stderr, when set
		// readme is what the README's CLI table says this exit code
		// means for the command ("0 pass"), when it documents it.
		readme string
	}{
		{name: "eval pass", args: append(evalArgs, "--series", "../../examples/series/caiso-healthy.yaml"), code: exitOK, readme: "0 pass"},
		{name: "eval fail", args: append(evalArgs, "--series", "../../examples/series/caiso-errors.yaml"), code: exitFail, readme: "2 fail"},
		{name: "eval inconclusive", args: []string{"eval", "--policies", nodata, "--policy", "nodata", "--param", "name=a",
			"--series", "../../examples/series/caiso-healthy.yaml"}, code: exitInconclusive, readme: "3 inconclusive"},
		{name: "eval could not evaluate", args: append(evalArgs, "--series", "no-such-file.yaml"), code: exitError, readme: "1 could not evaluate"},
		{name: "eval yaml", args: append(evalArgs, "--series", "../../examples/series/caiso-healthy.yaml", "-o", "yaml"), code: exitOK},
		{name: "backtest no step failed", args: []string{"backtest", "--policies", examples, "--policy", "iso-ingest", "--param", "namespace=caiso",
			"--param", "name=lmp-ingest", "--series", "../../examples/series/caiso-healthy.yaml"}, code: exitOK, readme: "0 no step failed"},
		{name: "backtest some step failed", args: []string{"backtest", "--policies", examples, "--policy", "iso-ingest", "--param", "namespace=caiso",
			"--param", "name=lmp-ingest", "--series", "../../examples/series/caiso-errors.yaml"}, code: exitFail, readme: "2 some step failed"},
		{name: "test all pass", args: []string{"test", "testdata/pass.test.yaml"}, code: exitOK, readme: "0 all pass"},
		{name: "test some fail", args: []string{"test", "testdata/fail.test.yaml"}, code: exitError, readme: "1 otherwise"},
		{name: "check clean", args: []string{"check", examples}, code: exitOK, readme: "0 clean"},
		{name: "check problems", args: []string{"check", "testdata/broken-policy.yaml"}, code: exitError, readme: "1 problems"},
		{name: "check json", args: []string{"check", examples, "-o", "json"}, code: exitOK},
		{name: "import partial", args: []string{"import", "argo", "../../rules/importer/testdata/argo/success-rate.yaml"}, code: exitPartial, readme: "2 written with notes"},
		{name: "version", args: []string{"version"}, code: exitOK, readme: "0"},
		{name: "rollout refused: no server", args: []string{"rollout", "status", "x/y", "--server", "http://127.0.0.1:1"}, code: exitError, readme: "1 refused or failed"},
		{name: "runs refused: no server", args: []string{"runs", "list", "--server", "http://127.0.0.1:1"}, code: exitError, readme: "1 refused or failed"},

		{name: "no command", args: nil, code: exitError},
		{name: "a group without its command", args: []string{"rollout"}, code: exitError},
		{name: "unknown command", args: []string{"evl"}, code: exitError,
			stderr: "canary: unknown command \"evl\" (did you mean \"eval\"?)\nRun 'canary --help' for usage.\n"},
		{name: "unknown subcommand", args: []string{"rollout", "stauts", "x"}, code: exitError,
			stderr: "canary: rollout: unknown command \"stauts\" (did you mean \"start\" or \"status\"?)\nRun 'canary rollout --help' for usage.\n"},
		{name: "unknown flag", args: []string{"eval", "--polcy", "x"}, code: exitError,
			stderr: "canary: eval: unknown flag: --polcy (did you mean --policy?)\nRun 'canary eval --help' for usage.\n"},
		{name: "a single-dash long flag", args: []string{"test", "-junit", "x.xml", "a.test.yaml"}, code: exitError,
			stderr: "canary: test: unknown shorthand flag: 'j' in -junit (did you mean --junit?)\nRun 'canary test --help' for usage.\n"},
		{name: "an inherited flag misspelt", args: []string{"rollout", "status", "x", "--sever", "http://x"}, code: exitError,
			stderr: "canary: rollout status: unknown flag: --sever (did you mean --server?)\nRun 'canary rollout status --help' for usage.\n"},
		{name: "a bad output format", args: []string{"rollout", "list", "-o", "xml"}, code: exitError,
			stderr: "canary: rollout list: -o must be table, json or yaml, not \"xml\"\nRun 'canary rollout list --help' for usage.\n"},
		{name: "a manual action without a reason", args: []string{"runs", "pause", "caiso/lmp"}, code: exitError,
			stderr: "canary: runs pause: pause needs --reason: manual overrides are recorded with why and by whom\nRun 'canary runs pause --help' for usage.\n"},
	}
	documented := readmeExitCodes(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := canary(t, tt.args...)
			require.Equal(t, tt.code, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
			if tt.readme != "" {
				require.Equal(t, strconv.Itoa(code), strings.Fields(tt.readme)[0])
				cell, ok := documented[tt.args[0]]
				require.True(t, ok, "the README's CLI table has no row for canary %s", tt.args[0])
				require.Regexp(t, `(^|[ ,;(])`+regexp.QuoteMeta(tt.readme)+`\b`, cell, "the README's exit codes of canary %s", tt.args[0])
			}
			if tt.stderr != "" {
				require.Equal(t, tt.stderr, stderr)
			}
			if code == exitError && stderr != "" {
				require.True(t, strings.HasPrefix(stderr, "canary: ") || strings.Contains(stderr, ":"), "errors start with canary: %s", stderr)
			}
		})
	}
}

// readmeExitCodes reads the exit-code column of the README's CLI table,
// by command.
func readmeExitCodes(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, table, ok := strings.Cut(string(data), "\n## CLI\n")
	require.True(t, ok, "README has a CLI section")
	out := map[string]string{}
	for _, line := range strings.Split(table, "\n") {
		rest, ok := strings.CutPrefix(line, "| [`canary ")
		if !ok {
			continue
		}
		cells := strings.Split(strings.TrimSuffix(rest, " |"), " | ")
		out[strings.FieldsFunc(rest, func(r rune) bool { return r == ' ' || r == '`' })[0]] = cells[len(cells)-1]
	}
	require.Contains(t, out, "eval")
	return out
}

// asBinary returns a command that runs this test binary as the canary
// binary (main, with its own arguments) under the name name, found on
// PATH as a user's shell would.
func asBinary(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	dir := t.TempDir()
	self, err := os.Executable()
	require.NoError(t, err)
	require.NoError(t, os.Symlink(self, filepath.Join(dir, name)))
	cmd := exec.Command(filepath.Join(dir, name), args...)
	cmd.Env = append(os.Environ(), mainEnv+"=1", "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return cmd
}

// TestKubectlPlugin: run as kubectl-canary, the binary is canary, named
// as kubectl shows it.
func TestKubectlPlugin(t *testing.T) {
	out, err := asBinary(t, kubectlPlugin, "rollout", "status", "--help").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "Usage:\n  kubectl canary rollout status [NAMESPACE/]NAME [flags]")

	out, err = asBinary(t, kubectlPlugin, "version", "-o", "json").Output()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), `"goVersion"`)

	cmd := asBinary(t, kubectlPlugin, "rollout", "stauts")
	out, err = cmd.CombinedOutput()
	require.Error(t, err)
	require.Equal(t, 1, cmd.ProcessState.ExitCode())
	require.Equal(t, "canary: rollout: unknown command \"stauts\" (did you mean \"start\" or \"status\"?)\nRun 'kubectl canary rollout --help' for usage.\n", string(out))

	out, err = asBinary(t, "canary", "rollout", "status", "--help").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "Usage:\n  canary rollout status")
}

// TestKubeconfigNamespace: a command that takes a namespace reads the
// kubeconfig context's when -n and CANARY_NAMESPACE do not say, as kubectl
// does.
func TestKubeconfigNamespace(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "config")
	require.NoError(t, os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
current-context: ops
contexts:
  - name: ops
    context: {cluster: c, user: u, namespace: caiso}
  - name: other
    context: {cluster: c, user: u}
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {}}]
`), 0o600))
	t.Setenv("KUBECONFIG", kc)
	t.Setenv("CANARY_NAMESPACE", "")
	f := &rolloutFlags{namespace: func() string { return "" }}
	ns, name := f.target("lmp-ingest")
	require.Equal(t, "caiso", ns)
	require.Equal(t, "lmp-ingest", name)
	ns, _ = f.target("ercot/lmp-ingest")
	require.Equal(t, "ercot", ns, "a namespace in the name wins")
	f.namespace = func() string { return "pjm" }
	ns, _ = f.target("lmp-ingest")
	require.Equal(t, "pjm", ns, "-n wins over the kubeconfig")

	require.NoError(t, os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\ncurrent-context: other\ncontexts: [{name: other, context: {cluster: c, user: u}}]\n"), 0o600))
	f.namespace = func() string { return "" }
	ns, _ = f.target("lmp-ingest")
	require.Equal(t, "default", ns, "a context without a namespace means default")
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "none"))
	ns, _ = f.target("lmp-ingest")
	require.Equal(t, "default", ns, "no kubeconfig means default")
}

// TestCompletionScripts: the completion script of every shell is made,
// and bash's loads in a real bash and completes commands and enumerated
// flag values by calling the binary back.
func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		code, stdout, stderr := canary(t, "completion", shell)
		require.Equal(t, exitOK, code, stderr)
		require.Contains(t, stdout, "canary", shell)
	}
	bash, err := exec.LookPath("bash")
	require.NoError(t, err, "bash is needed (Debian package bash)")
	complete := func(line string) []string {
		t.Helper()
		// The script reads the words with bash-completion's
		// _get_comp_words_by_ref: the package's when it is installed,
		// else the least of it.
		script := `if [[ -r /usr/share/bash-completion/bash_completion ]]; then
  source /usr/share/bash-completion/bash_completion
else
  _get_comp_words_by_ref() { cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; }
fi
source <(canary completion bash) || exit 3
complete -p canary >/dev/null || exit 4
# Called here, not by readline: compopt has no completion to change.
compopt() { :; }
COMP_LINE=$1
COMP_POINT=${#COMP_LINE}
read -r -a COMP_WORDS <<< "$COMP_LINE"
if [[ $COMP_LINE == *" " ]]; then COMP_WORDS+=(""); fi
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
__start_canary canary "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"`
		cmd := asBinary(t, "canary")
		cmd.Path, cmd.Args = bash, []string{"bash", "-c", script, "bash", line}
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return strings.Fields(string(out))
	}
	require.ElementsMatch(t, []string{"rollout", "runs"}, complete("canary r"))
	require.ElementsMatch(t, []string{"skip-step", "start", "status"}, complete("canary rollout s"))
	require.ElementsMatch(t, []string{"table", "json", "yaml"}, complete("canary eval -o "))
	require.ElementsMatch(t, []string{"nginx", "gatewayapi"}, complete("canary traffic set --router "))
	require.Contains(t, complete("canary demo --scenario "), "errors")
	require.Contains(t, complete("canary eval --policies ../../examples/policies --policy "), "iso-ingest")
	require.ElementsMatch(t, []string{"--policies", "--policy"}, complete("canary eval --poli"))
}

// completions runs the binary's completion request (what a shell's
// completion script runs) for args and returns the candidates, without
// their descriptions and the directive line.
func completions(t *testing.T, args ...string) []string {
	t.Helper()
	code, stdout, stderr := canary(t, append([]string{cobra.ShellCompRequestCmd}, args...)...)
	require.Equal(t, exitOK, code, stderr)
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if !strings.HasPrefix(line, ":") {
			name, _, _ := strings.Cut(line, "\t")
			out = append(out, name)
		}
	}
	return out
}

// TestCompletePolicies: --policy completes the names of --policies'
// policies, --param the chosen one's params, --scenario a list.
func TestCompletePolicies(t *testing.T) {
	complete := func(args ...string) []string { t.Helper(); return completions(t, args...) }
	const policies = "../../examples/policies"
	require.Subset(t, complete("eval", "--policies", policies, "--policy", ""), []string{"iso-ingest", "lmp-realtime"})
	require.Subset(t, complete("backtest", "--policies", policies, "--policy", "iso-ingest", "--param", ""), []string{"namespace=", "name="})
	require.Empty(t, complete("eval", "--policies", "no-such-dir", "--policy", ""), "nothing to offer is no error")
	require.Equal(t, []string{"deploy,all", "deploy,healthy", "deploy,errors", "deploy,lag", "deploy,alert"}, complete("demo", "--scenario", "deploy,"))
	require.Equal(t, []string{"argo", "flagger", "keptn"}, complete("import", ""))
}

// TestDocsCurrent: docs/cli is what `canary docs` writes now. After a
// change to a command, run `make docs`.
func TestDocsCurrent(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := canary(t, "docs", dir)
	require.Equal(t, exitOK, code, stderr)
	committed := filepath.Join("..", "..", cliDocsDir)
	want, err := os.ReadDir(dir)
	require.NoError(t, err)
	got, err := os.ReadDir(committed)
	require.NoError(t, err, "no %s: run make docs", cliDocsDir)
	names := func(es []os.DirEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Name())
		}
		return out
	}
	require.Equal(t, names(want), names(got), "the pages of %s: run make docs", cliDocsDir)
	for _, e := range want {
		fresh, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		old, err := os.ReadFile(filepath.Join(committed, e.Name()))
		require.NoError(t, err)
		require.Equal(t, string(fresh), string(old), "%s/%s is out of date: run make docs", cliDocsDir, e.Name())
	}
	index, err := os.ReadFile(filepath.Join(committed, "canary.md"))
	require.NoError(t, err)
	require.Contains(t, string(index), "[canary rollout](canary_rollout.md)", "the index links every command")
}
