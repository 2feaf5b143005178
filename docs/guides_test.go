package docs_test

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/aurum/canary/rules"
)

// The integration guides are checked against what they describe:
//
//   - a block marked ```yaml file=PATH holds the same data as that file
//     of the repository (comments aside), and one marked file=PATH
//     subset=a.b is part of the file's node at a.b, so the guides and the
//     example manifests cannot drift apart;
//   - every URL of the service in the docs names an operation of
//     openapi.yaml, and an existing policy with the params it declares,
//     or query parameters the operation documents;
//   - the Flagger Canary's hooks send the params their policy requires.
//
// The README is held to the first two as well (readmeFile).

// yamlDocs decodes every document of a YAML stream.
func yamlDocs(t *testing.T, name string, data []byte) []any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []any
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, name)
		if v != nil {
			docs = append(docs, v)
		}
	}
	return docs
}

// infoValue returns the value of key=value in a fence's info string.
func infoValue(info, key string) string {
	for _, w := range infoWords(info) {
		if v, ok := strings.CutPrefix(w, key+"="); ok {
			return v
		}
	}
	return ""
}

func hasWord(info, word string) bool { return slices.Contains(infoWords(info), word) }

func markdownFiles(t *testing.T) []string {
	t.Helper()
	mds, err := filepath.Glob("*.md")
	require.NoError(t, err)
	require.NotEmpty(t, mds)
	return mds
}

// readmeFile is the repository's README, seen from this directory.
const readmeFile = "../README.md"

// docFiles are the documents checked against the code: the docs' Markdown
// files and the README.
func docFiles(t *testing.T) []string {
	t.Helper()
	return append(markdownFiles(t), readmeFile)
}

// subset reports where part differs from whole: every key of a mapping in
// part is in whole with a value part is a subset of; a list in part is a
// prefix of whole's list, item by item.
func subset(part, whole any, at string) error {
	switch p := part.(type) {
	case map[string]any:
		w, ok := whole.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: a mapping in the guide, %T in the file", at, whole)
		}
		for k, v := range p {
			wv, ok := w[k]
			if !ok {
				return fmt.Errorf("%s.%s: not in the file", at, k)
			}
			if err := subset(v, wv, at+"."+k); err != nil {
				return err
			}
		}
		return nil
	case []any:
		w, ok := whole.([]any)
		if !ok || len(w) < len(p) {
			return fmt.Errorf("%s: a list of %d in the guide, %v in the file", at, len(p), whole)
		}
		for i := range p {
			if err := subset(p[i], w[i], fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
		return nil
	}
	if !reflect.DeepEqual(part, whole) {
		return fmt.Errorf("%s: %v in the guide, %v in the file", at, part, whole)
	}
	return nil
}

// TestGuideBlocksMatchFiles: blocks marked file=PATH hold the file's data.
func TestGuideBlocksMatchFiles(t *testing.T) {
	n := 0
	for _, md := range docFiles(t) {
		for _, f := range fences(t, md) {
			path := infoValue(f.info, "file")
			if path == "" {
				continue
			}
			n++
			at := fmt.Sprintf("%s:%d", md, f.line)
			data, err := os.ReadFile(filepath.Join("..", path))
			require.NoError(t, err, "%s names %s", at, path)
			file := yamlDocs(t, path, data)
			block := yamlDocs(t, at, []byte(f.text))
			sub := infoValue(f.info, "subset")
			if sub == "" {
				require.Equal(t, file, block, "%s: the block differs from %s (comments aside)", at, path)
				continue
			}
			require.Len(t, block, 1, "%s: a subset block is one document", at)
			node := file[0]
			for _, k := range strings.Split(sub, ".") {
				m, ok := node.(map[string]any)
				require.True(t, ok, "%s: %s has no %s", at, path, sub)
				node = m[k]
			}
			require.NoError(t, subset(block[0], node, sub), "%s: the block is not part of %s", at, path)
		}
	}
	require.GreaterOrEqual(t, n, 6, "the guides and the README embed the example manifests")
}

// knownPolicies loads the policies the docs and the examples define.
func knownPolicies(t *testing.T) map[string]*rules.Policy {
	t.Helper()
	pols := map[string]*rules.Policy{}
	set, err := rules.Load("../examples/policies", "../examples/gitops/policies")
	require.NoError(t, err)
	for _, p := range set.Policies {
		pols[p.Name] = p
	}
	for _, md := range markdownFiles(t) {
		for _, f := range fences(t, md) {
			if w := infoWords(f.info); len(w) >= 2 && w[0] == "yaml" && w[1] == "example" {
				ps, err := rules.Parse(md, []byte(f.text))
				require.NoError(t, err)
				for _, p := range ps {
					pols[p.Name] = p
				}
			}
		}
	}
	return pols
}

// openAPIPaths are the path templates of openapi.yaml.
func openAPIPaths(t *testing.T) []string {
	t.Helper()
	var doc struct {
		Paths map[string]any `yaml:"paths"`
	}
	data, err := os.ReadFile("openapi.yaml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, &doc))
	require.NotEmpty(t, doc.Paths)
	return sortedKeys(doc.Paths)
}

// openAPIQueryParams maps each path template of openapi.yaml to the query
// parameters its operations document, path-level and per operation, with
// $refs to components/parameters resolved.
func openAPIQueryParams(t *testing.T) map[string][]string {
	t.Helper()
	type param struct {
		Ref  string `yaml:"$ref"`
		Name string `yaml:"name"`
		In   string `yaml:"in"`
	}
	var doc struct {
		Paths      map[string]map[string]yaml.Node `yaml:"paths"`
		Components struct {
			Parameters map[string]param `yaml:"parameters"`
		} `yaml:"components"`
	}
	data, err := os.ReadFile("openapi.yaml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, &doc))
	resolve := func(p param) param {
		if name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/"); ok {
			r, found := doc.Components.Parameters[name]
			require.True(t, found, "openapi.yaml: %s is not defined", p.Ref)
			return r
		}
		return p
	}
	out := map[string][]string{}
	for path, item := range doc.Paths {
		for key, node := range item {
			var params []param
			switch key {
			case "parameters":
				require.NoError(t, node.Decode(&params))
			case "summary", "description", "servers", "$ref":
				continue
			default: // an operation
				var op struct {
					Parameters []param `yaml:"parameters"`
				}
				require.NoError(t, node.Decode(&op))
				params = op.Parameters
			}
			for _, p := range params {
				if p = resolve(p); p.In == "query" && !slices.Contains(out[path], p.Name) {
					out[path] = append(out[path], p.Name)
				}
			}
		}
	}
	return out
}

// matchPath returns the template a path matches and the values of its
// {params}; literal segments win over params.
func matchPath(templates []string, path string) (string, map[string]string) {
	segs := strings.Split(path, "/")
	best, bestScore := "", -1
	var bestVars map[string]string
	for _, tmpl := range templates {
		tsegs := strings.Split(tmpl, "/")
		if len(tsegs) != len(segs) {
			continue
		}
		score, vars := 0, map[string]string{}
		for i := range tsegs {
			switch {
			case tsegs[i] == segs[i]:
				score++
			case strings.HasPrefix(tsegs[i], "{") && segs[i] != "":
				vars[strings.Trim(tsegs[i], "{}")] = segs[i]
			default:
				score = -1
			}
			if score < 0 {
				break
			}
		}
		if score > bestScore {
			best, bestScore, bestVars = tmpl, score, vars
		}
	}
	return best, bestVars
}

// serviceURLRE finds URLs of canary serve in the docs: the in-cluster
// Service, or a port-forward.
var serviceURLRE = regexp.MustCompile("https?://(?:canary\\.canary\\.svc|localhost):8080(/[^\\s\"'`)]*)")

// reserved query parameters: they name the run, and the token.
var runParams = []string{"namespace", "name", "revision"}

// TestGuideURLs: every URL of the service the docs and the README show is
// an operation of the API, naming a policy that exists with params it
// declares, or passing query parameters the API documents for it.
func TestGuideURLs(t *testing.T) {
	templates := openAPIPaths(t)
	queryParams := openAPIQueryParams(t)
	pols := knownPolicies(t)
	n := 0
	for _, md := range docFiles(t) {
		data, err := os.ReadFile(md)
		require.NoError(t, err)
		for _, m := range serviceURLRE.FindAllStringSubmatch(string(data), -1) {
			n++
			path, query, _ := strings.Cut(m[1], "?")
			tmpl, vars := matchPath(templates, path)
			require.NotEmpty(t, tmpl, "%s: %s is not a path of openapi.yaml", md, m[0])
			var keys []string
			for _, kv := range strings.Split(query, "&") {
				if k, _, _ := strings.Cut(kv, "="); k != "" {
					keys = append(keys, k)
				}
			}
			switch {
			case tmpl == "/v1/analysis/{policy}":
				pol := pols[vars["policy"]]
				require.NotNil(t, pol, "%s: %s names policy %q, which no example defines", md, m[0], vars["policy"])
				require.NotContains(t, keys, "token", "%s: /v1/analysis takes its token as a header only", md)
				for _, k := range keys {
					if !slices.Contains(runParams, k) {
						require.NotNil(t, pol.Param(k), "%s: %s passes %q, which policy %s does not declare", md, m[0], k, pol.Name)
					}
				}
				for _, p := range pol.Params {
					if !p.HasDefault {
						require.Contains(t, keys, p.Name, "%s: %s lacks the required param %q", md, m[0], p.Name)
					}
				}
			case strings.HasPrefix(tmpl, "/v1/flagger/"):
				if name, ok := vars["policy"]; ok {
					require.NotNil(t, pols[name], "%s: %s names policy %q, which no example defines", md, m[0], name)
				}
				for _, k := range keys {
					require.Equal(t, "token", k, "%s: the Flagger routes read params from the payload, not from %s", md, m[0])
				}
			default:
				for _, k := range keys {
					require.Contains(t, queryParams[tmpl], k, "%s: %s passes %q, which openapi.yaml does not document for %s", md, m[0], k, tmpl)
				}
			}
		}
	}
	require.Greater(t, n, 10, "URLs of the service found in the docs")
}

// TestFlaggerHooksSendParams: the Canary of the Flagger guide sends, as
// metadata, every param its policy requires and only params it declares.
func TestFlaggerHooksSendParams(t *testing.T) {
	pols := knownPolicies(t)
	templates := openAPIPaths(t)
	hooks := 0
	for _, f := range fences(t, "flagger.md") {
		if !strings.HasPrefix(f.info, "yaml") {
			continue
		}
		for _, doc := range yamlDocs(t, "flagger.md", []byte(f.text)) {
			var canary struct {
				Kind string `yaml:"kind"`
				Spec struct {
					Analysis struct {
						Webhooks []struct {
							Type     string            `yaml:"type"`
							URL      string            `yaml:"url"`
							Metadata map[string]string `yaml:"metadata"`
						} `yaml:"webhooks"`
					} `yaml:"analysis"`
				} `yaml:"spec"`
			}
			data, err := yaml.Marshal(doc)
			require.NoError(t, err)
			require.NoError(t, yaml.Unmarshal(data, &canary))
			if canary.Kind != "Canary" {
				continue
			}
			for _, h := range canary.Spec.Analysis.Webhooks {
				m := serviceURLRE.FindStringSubmatch(h.URL)
				require.NotNil(t, m, "hook %s: %s", h.Type, h.URL)
				path, _, _ := strings.Cut(m[1], "?")
				tmpl, vars := matchPath(templates, path)
				want := map[string]string{
					"pre-rollout": "/v1/flagger/{policy}/check", "rollout": "/v1/flagger/{policy}/check",
					"confirm-rollout": "/v1/flagger/{policy}/gate", "confirm-traffic-increase": "/v1/flagger/{policy}/gate",
					"confirm-promotion": "/v1/flagger/{policy}/gate", "rollback": "/v1/flagger/rollback", "event": "/v1/flagger/events",
				}[h.Type]
				require.Equal(t, want, tmpl, "a %s hook goes to %s", h.Type, want)
				hooks++
				pol := pols[vars["policy"]]
				if pol == nil {
					continue
				}
				for k := range h.Metadata {
					require.NotNil(t, pol.Param(k), "hook %s: metadata %q is not a param of %s", h.Type, k, pol.Name)
				}
				for _, p := range pol.Params {
					if !p.HasDefault && !slices.Contains([]string{"name", "namespace"}, p.Name) {
						require.Contains(t, h.Metadata, p.Name, "hook %s: %s requires %q", h.Type, pol.Name, p.Name)
					}
				}
			}
		}
	}
	require.GreaterOrEqual(t, hooks, 5, "the Flagger guide shows a Canary with its hooks")
}

// canaryBin is the canary binary the CLI tests run, built once.
var canaryBin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "canary-docs-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "canary")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/canary").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/canary: %w\n%s", err, out)
	}
	return bin, nil
})

// TestMain runs the tests, then removes the binary they built.
func TestMain(m *testing.M) {
	code := m.Run()
	if bin, err := canaryBin(); err == nil {
		os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

// canary runs the canary binary and returns its combined output.
func canary(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin, err := canaryBin()
	require.NoError(t, err)
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}

// runFromRoot runs the canary binary from the repository's root, as the
// docs' command lines are written, and returns its stdout, its stderr and
// its exit code.
func runFromRoot(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	bin, err := canaryBin()
	require.NoError(t, err)
	cmd := exec.Command(bin, args...)
	cmd.Dir = ".."
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return out.String(), errOut.String(), exit.ExitCode()
	}
	require.NoError(t, err)
	return out.String(), errOut.String(), 0
}

// subcommands are the commands whose first argument is an action, and
// the actions whose flags stand for the command's when a document names
// the command alone.
var subcommands = map[string][]string{
	"runs":    {"list", "status", "rollback"},
	"rollout": {"start", "status", "pause"},
	"traffic": {"set", "status", "reset"},
	"notify":  {"test"},
}

// cliFlags knows canary's commands and reads their flags from -h, once
// each.
type cliFlags struct {
	t     *testing.T
	known []string
	cache map[string][]string
}

func newCLIFlags(t *testing.T) *cliFlags {
	out, _ := canary(t, "-h")
	var known []string
	for _, m := range regexp.MustCompile(`(?m)^  ([a-z]+) `).FindAllStringSubmatch(out, -1) {
		known = append(known, m[1])
	}
	require.Contains(t, known, "serve", "canary -h lists its commands:\n%s", out)
	return &cliFlags{t: t, known: known, cache: map[string][]string{}}
}

// flagLineRE is a flag of a help's Flags or Global Flags, as pflag prints
// it: "  -o, --output string" or "      --policy string".
var flagLineRE = regexp.MustCompile(`(?m)^ +(?:-([a-zA-Z0-9]), )?--([a-zA-Z0-9-]+)`)

// of returns the flags of `canary cmd [sub]` as its -h prints them; with
// no sub for a command that takes one, those of the actions subcommands
// lists.
func (c *cliFlags) of(cmd, sub string) []string {
	key := cmd + " " + sub
	if flags, ok := c.cache[key]; ok {
		return flags
	}
	var flags []string
	subs := []string{sub}
	if sub == "" && subcommands[cmd] != nil {
		subs = subcommands[cmd]
	}
	for _, s := range subs {
		args := []string{cmd}
		if s != "" {
			args = append(args, s)
		}
		out, err := canary(c.t, append(args, "-h")...)
		require.NoError(c.t, err, "canary %s -h:\n%s", strings.Join(args, " "), out)
		for _, m := range flagLineRE.FindAllStringSubmatch(out, -1) {
			if m[1] != "" {
				flags = append(flags, m[1])
			}
			flags = append(flags, m[2])
		}
	}
	require.NotEmpty(c.t, flags, "canary %s %s -h prints no flags", cmd, sub)
	c.cache[key] = flags
	return flags
}

var (
	// commandFlagRE finds the flags of a command line: -x or --name,
	// after a space, a bracket, a parenthesis or a bar.
	commandFlagRE = regexp.MustCompile(`(?:^|[\s\[(|])--?([a-zA-Z][a-zA-Z0-9-]*)`)
	inlineCodeRE  = regexp.MustCompile("`([^`\n]+)`")
	// bareFlagRE is an inline code span that is a flag alone, perhaps
	// with a value: `--history-flush`, `--log-format logfmt|json`.
	bareFlagRE  = regexp.MustCompile(`^--([a-z][a-z0-9-]*[a-z0-9])(?:[ =]|$)`)
	headingRE   = regexp.MustCompile(`^(#{2,3}) `)
	actionRE    = regexp.MustCompile(`^[a-z][a-z-]*$`)
	headedCmdRE = regexp.MustCompile("`canary ([a-z]+)`")
)

// commandLine is one `canary ...` invocation a document shows.
type commandLine struct {
	at   string
	text string
}

// commandLines returns the canary command lines of a Markdown file: those
// of its sh blocks (continuations joined, comments and pipes cut off) and
// its inline code spans that start with "canary ".
func commandLines(t *testing.T, md string) []commandLine {
	var out []commandLine
	for _, f := range fences(t, md) {
		if w := infoWords(f.info); len(w) == 0 || (w[0] != "sh" && w[0] != "bash") {
			continue
		}
		joined := strings.ReplaceAll(f.text, "\\\n", " ")
		for i, line := range strings.Split(joined, "\n") {
			line = strings.TrimSpace(line)
			if !strings.HasPrefix(line, "canary ") {
				continue
			}
			for _, cut := range []string{" #", " | ", " && ", "; "} {
				line, _, _ = strings.Cut(line, cut)
			}
			out = append(out, commandLine{at: fmt.Sprintf("%s:%d", md, f.line+i), text: line})
		}
	}
	data, err := os.ReadFile(md)
	require.NoError(t, err)
	inFence := false
	for i, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
		}
		if inFence {
			continue
		}
		for _, m := range inlineCodeRE.FindAllStringSubmatch(strings.ReplaceAll(line, `\|`, "|"), -1) {
			if strings.HasPrefix(m[1], "canary ") {
				out = append(out, commandLine{at: fmt.Sprintf("%s:%d", md, i+1), text: m[1]})
			}
		}
	}
	return out
}

// TestCommandFlags: every canary command line in the docs and the README
// uses flags the command has, so the CLI table, the guides and the serve
// section cannot name a flag that was renamed or never existed.
func TestCommandFlags(t *testing.T) {
	cli := newCLIFlags(t)
	n := 0
	for _, md := range docFiles(t) {
		for _, cl := range commandLines(t, md) {
			words := strings.Fields(cl.text)
			if len(words) < 2 || !slices.Contains(cli.known, words[1]) {
				continue // `canary COMMAND -h` and the like
			}
			cmd, subs, rest := words[1], []string{""}, words[2:]
			if subcommands[cmd] != nil && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
				// `canary runs status|rollback …`: the flags of any of them
				subs = strings.Split(rest[0], "|")
				rest = rest[1:]
				for _, sub := range subs {
					if !actionRE.MatchString(sub) {
						subs = []string{""} // `canary runs …`: any action
						break
					}
				}
			}
			var flags []string
			for _, sub := range subs {
				flags = append(flags, cli.of(cmd, sub)...)
			}
			for _, m := range commandFlagRE.FindAllStringSubmatch(strings.Join(rest, " "), -1) {
				if m[1] == "h" || m[1] == "help" {
					continue // every command's
				}
				n++
				require.Contains(t, flags, m[1], "%s: `%s` names -%s, which `canary %s %s -h` does not list", cl.at, cl.text, m[1], cmd, strings.Join(subs, "|"))
			}
		}
	}
	require.Greater(t, n, 40, "flags of canary command lines found in the docs")
}

// TestBareFlags: a flag named on its own (`--run-retention`) is a flag of
// the command its section is about: the one its heading names
// (`canary traffic`), else, in operations.md, canary serve's. Other
// sections that name no command are not checked, nor policy.md, whose
// flags are other programs' (ingress-nginx's --annotations-prefix).
func TestBareFlags(t *testing.T) {
	cli := newCLIFlags(t)
	n := 0
	for _, md := range docFiles(t) {
		if md == "policy.md" {
			continue
		}
		data, err := os.ReadFile(md)
		require.NoError(t, err)
		dflt := ""
		if md == "operations.md" {
			dflt = "serve"
		}
		h2, h3 := dflt, ""
		inFence := false
		for i, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				inFence = !inFence
			}
			if inFence {
				continue
			}
			if m := headingRE.FindStringSubmatch(line); m != nil {
				cmd := ""
				if c := headedCmdRE.FindStringSubmatch(line); c != nil && slices.Contains(cli.known, c[1]) {
					cmd = c[1]
				}
				if m[1] == "##" {
					h2, h3 = cmp.Or(cmd, dflt), ""
				} else {
					h3 = cmd
				}
				continue
			}
			cmd := cmp.Or(h3, h2)
			if cmd == "" {
				continue
			}
			for _, span := range inlineCodeRE.FindAllStringSubmatch(line, -1) {
				m := bareFlagRE.FindStringSubmatch(span[1])
				if m == nil || strings.ContainsAny(span[1], "<>") {
					continue
				}
				n++
				require.Contains(t, cli.of(cmd, ""), m[1], "%s:%d: `%s` is not a flag of canary %s", md, i+1, span[1], cmd)
			}
		}
	}
	require.Greater(t, n, 10, "bare flags found in the docs")
}

// TestServeConfigBlocks: a block marked ```yaml serve-config is a canary
// serve configuration file that loads strictly (a misspelt key is an
// error), and the policies its policies= names (comma-separated,
// relative to the repository; iso-ingest by default) load against its
// sources, as `canary check --config` and canary serve load them.
func TestServeConfigBlocks(t *testing.T) {
	n := 0
	for _, md := range docFiles(t) {
		for _, f := range fences(t, md) {
			if !hasWord(f.info, "serve-config") {
				continue
			}
			n++
			file := filepath.Join(t.TempDir(), "canary.yml")
			require.NoError(t, os.WriteFile(file, []byte(f.text), 0o600))
			args := []string{"check", "--config", file}
			for _, p := range strings.Split(cmp.Or(infoValue(f.info, "policies"), "examples/policies/iso-ingest.yaml"), ",") {
				args = append(args, filepath.Join("..", p))
			}
			out, err := canary(t, args...)
			require.NoError(t, err, "%s:%d: canary %s:\n%s", md, f.line, strings.Join(args, " "), out)
		}
	}
	require.GreaterOrEqual(t, n, 2, "the README and operations.md show serve configurations")
}

// TestExamplePoliciesSources: what the README says of serving the example
// policies. iso-ingest alone needs only Prometheus; the directory also
// names the Kafka cluster main and the database warehouse, and a server
// without them does not load it, each error at its file:line:col.
func TestExamplePoliciesSources(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "canary.yml")
	require.NoError(t, os.WriteFile(cfg, []byte("prometheus:\n  - url: http://127.0.0.1:9090\n"), 0o600))
	out, err := canary(t, "check", "--config", cfg, "../examples/policies/iso-ingest.yaml")
	require.NoError(t, err, out)
	out, err = canary(t, "check", "--config", cfg, "../examples/policies")
	require.Error(t, err, out)
	require.Regexp(t, `ingest-health\.yaml:\d+:\d+: policy "ingest-health", query "\w+": kafka cluster "main" is not configured`, out)
	require.Regexp(t, `ingest-health\.yaml:\d+:\d+: policy "ingest-health", query "\w+": postgres database "warehouse" is not configured`, out)
}
