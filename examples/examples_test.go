package examples_test

// These tests check that every example works with the real tool it is
// written for:
//   - gitops/: the real `canary check` and `canary test`, built from this
//     repository, run the CI line of gitops/README.md;
//   - argo-rollouts/: the manifests decode strictly into Argo Rollouts' own
//     API types, and Argo's own web metric provider, with the template's
//     args resolved, measures a canary through `canary serve`'s handler;
//   - flagger/: the Canary decodes strictly against Flagger's documented
//     schema, both confirm gates call the gate of the rollout check's
//     policy, and every webhook, posted as Flagger posts it, gets the
//     answer Flagger needs from `canary serve`'s handler (the gates hold a
//     canary without evidence);
//   - alertmanager/: amtool and promtool accept the files, and the real
//     Alertmanager, started with the example config, delivers a canary alert
//     that latches a rollback Flagger's rollback hook then reports;
//   - the READMEs: every manual override shown gives a reason and is
//     accepted as written.

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"github.com/aurum/canary/runs"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/metricproviders/webmetric"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"
	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/analysis/policytest"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/queries/embedded"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs/bolt"
	"github.com/aurum/canary/webhooks"
)

const (
	gitopsDir      = "gitops"
	gitopsPolicies = "gitops/policies"
	gitopsTests    = "gitops/tests"

	// serviceHost is where every example reaches `canary serve`.
	serviceHost = "canary.canary.svc:8080"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// ---------------------------------------------------------------------------
// gitops/: canary check and canary test, as CI runs them.

var (
	buildOnce sync.Once
	binDir    string
	binErr    error
)

// canaryBinary builds cmd/canary once per test binary and returns its path.
func canaryBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "canary-examples-")
		if binErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, "canary"), "./cmd/canary")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/canary: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, "canary")
}

type cmdResult struct {
	code           int
	stdout, stderr string
}

// run runs a command in dir and returns its exit code and output; it fails
// the test only when the command cannot run at all.
func run(t *testing.T, dir string, env []string, name string, args ...string) cmdResult {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run %s %v: %v", name, args, err)
	}
	return cmdResult{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// loadTestFile decodes a `canary test` file with the engine's own types.
func loadTestFile(t *testing.T, path string) policytest.File {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f policytest.File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f
}

func gitopsTestFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(gitopsTests, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files in %s: %v", gitopsTests, err)
	}
	return files
}

func loadGitopsPolicies(t *testing.T) *rules.Set {
	t.Helper()
	set, err := rules.Load(gitopsPolicies)
	if err != nil {
		t.Fatalf("gitops policies do not load:\n%v", err)
	}
	return set
}

// TestGitopsCoverage: every ISO policy has passing and failing analyses in
// the tests, including a failing Kafka lag, and every policy file is
// exercised by some test file.
func TestGitopsCoverage(t *testing.T) {
	set := loadGitopsPolicies(t)
	type cover struct{ pass, fail, lagFail bool }
	covered := map[string]*cover{}
	tested := map[string]bool{}
	for _, file := range gitopsTestFiles(t) {
		f := loadTestFile(t, file)
		for _, pattern := range f.PolicyFiles {
			matches, _ := filepath.Glob(filepath.Join(filepath.Dir(file), pattern))
			if len(matches) == 0 {
				t.Errorf("%s: policy_files %q matches nothing", file, pattern)
			}
			for _, m := range matches {
				tested[filepath.Clean(m)] = true
			}
		}
		for _, g := range f.Tests {
			for _, at := range g.AnalysisTests {
				c := covered[at.Policy]
				if c == nil {
					c = &cover{}
					covered[at.Policy] = c
				}
				switch at.ExpVerdict {
				case "pass":
					c.pass = true
				case "fail":
					c.fail = true
					c.lagFail = c.lagFail || at.ExpRules["kafka-lag"] == "fail"
				}
			}
		}
	}
	for _, iso := range []string{"caiso", "miso", "pjm"} {
		name := iso + "-lmp"
		if _, err := set.Get(name); err != nil {
			t.Errorf("no policy %s in %s: %v", name, gitopsPolicies, err)
			continue
		}
		c := covered[name]
		switch {
		case c == nil:
			t.Errorf("policy %s: no test", name)
		case !c.pass || !c.fail:
			t.Errorf("policy %s: tests need a passing and a failing analysis, have pass=%v fail=%v", name, c.pass, c.fail)
		case !c.lagFail:
			t.Errorf("policy %s: no test fails its kafka-lag rule", name)
		}
	}
	for _, p := range set.Policies {
		if !tested[filepath.Clean(p.File)] {
			t.Errorf("policy file %s is in no test file's policy_files", p.File)
		}
	}
}

// TestGitopsCanaryCheckAndTest runs the real binary: `canary check` on the
// policies and `canary test` on the tests, each group passing, and the CI
// line of gitops/README.md exactly as written.
func TestGitopsCanaryCheckAndTest(t *testing.T) {
	bin := canaryBinary(t)
	set := loadGitopsPolicies(t)

	t.Run("check", func(t *testing.T) {
		r := run(t, gitopsDir, nil, bin, "check", "policies/")
		if r.code != 0 {
			t.Fatalf("canary check policies/: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		for _, p := range set.Policies {
			if !strings.Contains(r.stdout, p.Name) {
				t.Errorf("canary check does not list policy %s:\n%s", p.Name, r.stdout)
			}
		}
		want := fmt.Sprintf("SUCCESS: %d policies in %d files", len(set.Policies), len(set.Files))
		if !strings.Contains(r.stdout, want) {
			t.Errorf("canary check: want %q in\n%s", want, r.stdout)
		}
	})

	t.Run("test", func(t *testing.T) {
		files := gitopsTestFiles(t)
		junit := filepath.Join(t.TempDir(), "junit.xml")
		args := []string{"test", "--junit", junit}
		for _, f := range files {
			rel, _ := filepath.Rel(gitopsDir, f)
			args = append(args, rel)
		}
		r := run(t, gitopsDir, nil, bin, args...)
		if r.code != 0 {
			t.Fatalf("canary %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
		suites := readJUnit(t, junit)
		total := 0
		for _, f := range files {
			rel, _ := filepath.Rel(gitopsDir, f)
			s, ok := suites[rel]
			if !ok {
				t.Errorf("junit has no suite for %s", rel)
				continue
			}
			if s.Error != nil {
				t.Errorf("%s cannot be used: %s", rel, s.Error.Text)
			}
			passed := map[string]bool{}
			for _, c := range s.Cases {
				if c.Failure != nil {
					t.Errorf("%s: %q failed:\n%s", rel, c.Name, c.Failure.Text)
					continue
				}
				passed[c.Name] = true
			}
			for _, g := range loadTestFile(t, f).Tests {
				total++
				if !passed[g.Name] {
					t.Errorf("%s: group %q did not pass", rel, g.Name)
				}
				if !strings.Contains(r.stdout, "PASS  "+g.Name+"\n") {
					t.Errorf("%s: no PASS line for %q in\n%s", rel, g.Name, r.stdout)
				}
			}
		}
		if want := fmt.Sprintf("SUCCESS: %d tests passed", total); !strings.Contains(r.stdout, want) {
			t.Errorf("want %q in\n%s", want, r.stdout)
		}
	})

	// The README's CI step, run by a shell from the gitops directory with
	// canary on PATH: it must pass here, and fail on a broken policy and
	// on a test whose expectation no longer holds.
	ciLine := readmeCILine(t)
	path := "PATH=" + filepath.Dir(bin) + string(os.PathListSeparator) + os.Getenv("PATH")

	t.Run("README CI step", func(t *testing.T) {
		r := run(t, gitopsDir, []string{path}, "sh", "-c", ciLine)
		if r.code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", ciLine, r.code, r.stdout, r.stderr)
		}
	})

	t.Run("README CI step catches a broken policy", func(t *testing.T) {
		dir := copyDir(t, gitopsDir)
		mutate(t, filepath.Join(dir, "policies", "caiso.yaml"), "expr: staleness_s < 660", "expr: stalenes_s < 660")
		r := run(t, dir, []string{path}, "sh", "-c", ciLine)
		if r.code == 0 {
			t.Fatalf("%s passed with a typo in a rule:\n%s", ciLine, r.stdout)
		}
		if !regexp.MustCompile(`policies/caiso\.yaml:\d+:\d+: policy "caiso-lmp", rule "freshness": .*stalenes_s`).MatchString(r.stderr) {
			t.Errorf("the problem is not reported as file:line:col:\n%s", r.stderr)
		}
	})

	t.Run("README CI step catches a failing expectation", func(t *testing.T) {
		dir := copyDir(t, gitopsDir)
		// The lag ceiling raised far above the test's lag: the lag test
		// now passes where it must fail.
		mutate(t, filepath.Join(dir, "policies", "caiso.yaml"), "expr: lag < 2000 ||", "expr: lag < 200000 ||")
		r := run(t, dir, []string{path}, "sh", "-c", ciLine)
		if r.code == 0 {
			t.Fatalf("%s passed with a policy its tests reject:\n%s", ciLine, r.stdout)
		}
		if !strings.Contains(r.stdout, "FAIL  canary falling behind on Kafka fails the lag rule") {
			t.Errorf("the lag test did not fail:\n%s", r.stdout)
		}
	})
}

type junitSuite struct {
	Name  string `xml:"name,attr"`
	Cases []struct {
		Name    string `xml:"name,attr"`
		Failure *struct {
			Text string `xml:",chardata"`
		} `xml:"failure"`
	} `xml:"testcase"`
	Error *struct {
		Text string `xml:",chardata"`
	} `xml:"error"`
}

func readJUnit(t *testing.T, path string) map[string]junitSuite {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Suites []junitSuite `xml:"testsuite"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("junit report: %v\n%s", err, data)
	}
	out := map[string]junitSuite{}
	for _, s := range doc.Suites {
		out[s.Name] = s
	}
	return out
}

// readmeCILine is the command line in the sh block of the README's CI
// section.
func readmeCILine(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(gitopsDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, ci, ok := strings.Cut(string(data), "\n## CI\n")
	if !ok {
		t.Fatal("gitops/README.md has no CI section")
	}
	_, block, ok := strings.Cut(ci, "```sh\n")
	if !ok {
		t.Fatal("gitops/README.md's CI section has no sh block")
	}
	line, _, _ := strings.Cut(block, "\n")
	if want := "canary check policies/ && canary test tests/*.yaml"; line != want {
		t.Fatalf("gitops/README.md's CI step is %q, want %q", line, want)
	}
	return line
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// mutate replaces the one occurrence of old in the file.
func mutate(t *testing.T, path, old, new string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), old); n != 1 {
		t.Fatalf("%s: %q occurs %d times, want 1", path, old, n)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------------------
// Params a caller passes to a policy.

// checkParams checks what a caller passes to a policy: every required
// param is given, and every given key is declared (an undeclared one would
// be dropped silently). Literal values must match the param's pattern;
// placeholders, such as Argo's {{args.x}}, are checked where they resolve.
func checkParams(t *testing.T, where string, pol *rules.Policy, given map[string]string) {
	t.Helper()
	declared := map[string]*rules.Param{}
	for _, p := range pol.Params {
		declared[p.Name] = p
		if _, ok := given[p.Name]; !ok && !p.HasDefault {
			t.Errorf("%s: policy %s requires param %q, which is not passed", where, pol.Name, p.Name)
		}
	}
	for k, v := range given {
		p, ok := declared[k]
		if !ok {
			t.Errorf("%s: param %q is not declared by policy %s, which would drop it", where, k, pol.Name)
			continue
		}
		if !strings.Contains(v, "{{") && p.Regexp != nil && !p.Regexp.MatchString(v) {
			t.Errorf("%s: param %s=%q does not match the policy's pattern %q", where, k, v, p.Pattern)
		}
	}
}

// ---------------------------------------------------------------------------
// An in-process canary serve over recorded series.

// groupSeries returns the input series of the named group of a test file,
// ready to be loaded so that their last sample is now: the webhooks
// evaluate at the wall clock, so the recorded success timestamps, which
// count from 0, are moved to start.
func groupSeries(t *testing.T, file, group string, start time.Time) []embedded.InputSeries {
	t.Helper()
	f := loadTestFile(t, file)
	i := slices.IndexFunc(f.Tests, func(g policytest.Group) bool { return g.Name == group })
	if i < 0 {
		t.Fatalf("%s has no group %q", file, group)
	}
	var out []embedded.InputSeries
	for _, s := range f.Tests[i].InputSeries {
		if strings.HasPrefix(s.Series, "ingest_last_success_timestamp_seconds{") {
			s.Values = shiftValues(t, s.Values, start.Unix())
		}
		out = append(out, s)
	}
	return out
}

// shiftValues adds offset to every number of a promtool values string of
// the forms used for timestamps in the tests: a+bxn and axn terms.
func shiftValues(t *testing.T, values string, offset int64) string {
	t.Helper()
	terms := strings.Fields(values)
	for i, term := range terms {
		m := regexp.MustCompile(`^(\d+)((?:[+-]\d+)?x\d+)?$`).FindStringSubmatch(term)
		if m == nil {
			t.Fatalf("cannot shift values term %q", term)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		terms[i] = strconv.FormatInt(n+offset, 10) + m[2]
	}
	return strings.Join(terms, " ")
}

// server is an in-process canary serve: the gitops policies, the embedded
// PromQL engine holding the series as the last 30 minutes, a bbolt run
// store and bearer tokens for the route groups.
type server struct {
	url string
}

func startServer(t *testing.T, series func(start time.Time) []embedded.InputSeries, tokens map[string]string) *server {
	t.Helper()
	dir := t.TempDir()
	loader := rules.NewLoader(gitopsPolicies)
	if err := loader.Reload(); err != nil {
		t.Fatal(err)
	}
	engine, err := embedded.New(embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Close() })
	start := time.Now().Add(-30 * time.Minute).Truncate(time.Second)
	if err := engine.Load(start, time.Minute, series(start)); err != nil {
		t.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(dir, "canary.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	runs, err := runs.New(context.Background(), runs.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]string{}
	for group, token := range tokens {
		p := filepath.Join(dir, group+"-token")
		if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		files[group] = []string{p}
	}
	auth, err := webhooks.LoadAuth(files)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := webhooks.New(webhooks.Options{
		Policies:  loader,
		Evaluator: analysis.NewEvaluator(analysis.Options{Sources: queries.Registry{{Kind: "prometheus"}: engine}}),
		Runs:      runs,
		Auth:      auth,
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &server{url: hs.URL}
}

// redirect points an example's URL at the in-process server, keeping its
// path and query. The example must address the in-cluster service.
func (s *server) redirect(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	if u.Scheme != "http" || u.Host != serviceHost {
		t.Fatalf("%s: want http://%s", raw, serviceHost)
	}
	return s.url + u.RequestURI()
}

// ---------------------------------------------------------------------------
// argo-rollouts/

type argoManifests struct {
	rollout   *v1alpha1.Rollout
	templates map[string]*v1alpha1.AnalysisTemplate
	services  map[string]*corev1.Service
	ingresses map[string]*networkingv1.Ingress
}

// yamlDocs splits a file into its documents, each re-encoded on its own
// (anchors are per document, so aliases stay resolvable).
func yamlDocs(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs [][]byte
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out, err := yaml.Marshal(&n)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, out)
	}
}

// loadArgo decodes every document of the example strictly, with the API
// types of Argo Rollouts and Kubernetes: an unknown or misspelt field fails.
func loadArgo(t *testing.T) argoManifests {
	t.Helper()
	m := argoManifests{
		templates: map[string]*v1alpha1.AnalysisTemplate{},
		services:  map[string]*corev1.Service{},
		ingresses: map[string]*networkingv1.Ingress{},
	}
	files, _ := filepath.Glob("argo-rollouts/*.yaml")
	if len(files) == 0 {
		t.Fatal("no manifests in argo-rollouts/")
	}
	for _, file := range files {
		for i, doc := range yamlDocs(t, file) {
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := sigsyaml.Unmarshal(doc, &head); err != nil {
				t.Fatalf("%s doc %d: %v", file, i, err)
			}
			var obj any
			switch head.APIVersion + " " + head.Kind {
			case "argoproj.io/v1alpha1 Rollout":
				obj = &v1alpha1.Rollout{}
			case "argoproj.io/v1alpha1 AnalysisTemplate":
				obj = &v1alpha1.AnalysisTemplate{}
			case "v1 Service":
				obj = &corev1.Service{}
			case "networking.k8s.io/v1 Ingress":
				obj = &networkingv1.Ingress{}
			default:
				t.Fatalf("%s doc %d: unexpected %s %s", file, i, head.APIVersion, head.Kind)
			}
			if err := sigsyaml.UnmarshalStrict(doc, obj); err != nil {
				t.Fatalf("%s doc %d (%s): %v", file, i, head.Kind, err)
			}
			switch o := obj.(type) {
			case *v1alpha1.Rollout:
				if m.rollout != nil {
					t.Fatalf("%s: a second Rollout", file)
				}
				m.rollout = o
			case *v1alpha1.AnalysisTemplate:
				m.templates[o.Name] = o
			case *corev1.Service:
				m.services[o.Name] = o
			case *networkingv1.Ingress:
				m.ingresses[o.Name] = o
			}
		}
	}
	if m.rollout == nil {
		t.Fatal("argo-rollouts/ has no Rollout")
	}
	return m
}

// TestArgoRolloutsManifests checks the Rollout and its AnalysisTemplate
// against each other, the Services and Ingress beside them, and the
// policy the web metric names.
func TestArgoRolloutsManifests(t *testing.T) {
	m := loadArgo(t)
	set := loadGitopsPolicies(t)
	ro := m.rollout

	c := ro.Spec.Strategy.Canary
	if c == nil {
		t.Fatal("the Rollout has no canary strategy")
	}
	if ro.Namespace == "" {
		t.Error("the Rollout has no namespace")
	}
	for role, name := range map[string]string{"canaryService": c.CanaryService, "stableService": c.StableService} {
		s, ok := m.services[name]
		switch {
		case name == "":
			t.Errorf("strategy.canary.%s is empty: the nginx traffic router needs it", role)
		case !ok:
			t.Errorf("strategy.canary.%s %q is not among the Services of the example", role, name)
		case s.Namespace != ro.Namespace:
			t.Errorf("Service %s is in namespace %q, the Rollout in %q", name, s.Namespace, ro.Namespace)
		}
	}
	if c.TrafficRouting == nil || c.TrafficRouting.Nginx == nil {
		t.Fatal("the Rollout has no trafficRouting.nginx")
	}
	ingName := c.TrafficRouting.Nginx.StableIngress
	ing, ok := m.ingresses[ingName]
	if !ok {
		t.Fatalf("trafficRouting.nginx.stableIngress %q is not among the Ingresses of the example", ingName)
	}
	if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" {
		t.Errorf("Ingress %s: ingressClassName must be nginx for Argo's nginx router", ingName)
	}
	backends := 0
	for _, r := range ing.Spec.Rules {
		if r.HTTP == nil {
			continue
		}
		for _, p := range r.HTTP.Paths {
			if p.Backend.Service == nil || p.Backend.Service.Name != c.StableService {
				t.Errorf("Ingress %s path %s: backend is not the stable Service %s", ingName, p.Path, c.StableService)
				continue
			}
			backends++
		}
	}
	if backends == 0 {
		t.Errorf("Ingress %s routes nothing to the stable Service: Argo would copy no path to the canary Ingress", ingName)
	}
	if ro.Spec.Selector == nil {
		t.Fatal("the Rollout has no selector")
	}
	for k, v := range ro.Spec.Selector.MatchLabels {
		if ro.Spec.Template.Labels[k] != v {
			t.Errorf("the Rollout's selector %s=%s does not match its pod template", k, v)
		}
	}
	if c.CanaryMetadata == nil || c.CanaryMetadata.Labels["track"] != "canary" ||
		c.StableMetadata == nil || c.StableMetadata.Labels["track"] != "primary" {
		t.Error(`the policies tell canary and baseline apart by track="canary"|"primary": set them with canaryMetadata and stableMetadata`)
	}

	var kinds []string
	var analyses []*v1alpha1.RolloutAnalysis
	for i, s := range c.Steps {
		var fields []string
		if s.SetWeight != nil {
			fields = append(fields, "setWeight")
			if *s.SetWeight < 0 || *s.SetWeight > 100 {
				t.Errorf("steps[%d]: setWeight %d", i, *s.SetWeight)
			}
		}
		if s.Pause != nil {
			fields = append(fields, "pause")
		}
		if s.Analysis != nil {
			fields = append(fields, "analysis")
			analyses = append(analyses, s.Analysis)
		}
		if len(fields) != 1 {
			t.Errorf("steps[%d] sets %v, want exactly one of setWeight, pause, analysis", i, fields)
		}
		kinds = append(kinds, fields...)
	}
	for _, k := range []string{"setWeight", "pause", "analysis"} {
		if !slices.Contains(kinds, k) {
			t.Errorf("the Rollout has no %s step", k)
		}
	}

	for i, a := range analyses {
		where := fmt.Sprintf("analysis step %d", i)
		if len(a.Templates) != 1 {
			t.Errorf("%s: want one template, have %d", where, len(a.Templates))
			continue
		}
		tmpl, ok := m.templates[a.Templates[0].TemplateName]
		if !ok {
			t.Errorf("%s: AnalysisTemplate %q is not in the example", where, a.Templates[0].TemplateName)
			continue
		}
		if tmpl.Namespace != ro.Namespace {
			t.Errorf("AnalysisTemplate %s is in namespace %q, the Rollout in %q", tmpl.Name, tmpl.Namespace, ro.Namespace)
		}
		declared := map[string]bool{}
		for _, arg := range tmpl.Spec.Args {
			declared[arg.Name] = true
		}
		for _, arg := range a.Args {
			if !declared[arg.Name] {
				t.Errorf("%s: arg %q is not declared by AnalysisTemplate %s, so Argo ignores it", where, arg.Name, tmpl.Name)
			}
			if arg.Name == "revision" && (arg.ValueFrom == nil || arg.ValueFrom.PodTemplateHashValue == nil || *arg.ValueFrom.PodTemplateHashValue != v1alpha1.Latest) {
				t.Errorf("%s: revision must come from valueFrom.podTemplateHashValue: Latest (the canary's pod template hash)", where)
			}
		}
		// Resolving fails on any arg that neither side supplies; the
		// resolved values must suit the policy's params.
		args := resolveArgoArgs(t, ro, a, tmpl, "6f9c7d5b8", map[string]string{"token": "x"})
		for _, metric := range tmpl.Spec.Metrics {
			if metric.Provider.Web == nil {
				continue
			}
			u, err := url.Parse(resolveMetric(t, metric, args).Provider.Web.URL)
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			pol, err := set.Get(strings.TrimPrefix(u.Path, "/v1/analysis/"))
			if err != nil {
				continue // reported by checkArgoTemplate
			}
			given := map[string]string{}
			for k, vs := range u.Query() {
				if k != "revision" {
					given[k] = vs[0]
				}
			}
			checkParams(t, where+" resolved url", pol, given)
		}
	}

	for _, tmpl := range m.templates {
		checkArgoTemplate(t, tmpl, set)
	}
}

// checkArgoTemplate checks an AnalysisTemplate as Argo validates a metric,
// and its web metric against the policy it calls.
func checkArgoTemplate(t *testing.T, tmpl *v1alpha1.AnalysisTemplate, set *rules.Set) {
	t.Helper()
	if len(tmpl.Spec.Metrics) != 1 {
		t.Fatalf("AnalysisTemplate %s: want one metric, have %d", tmpl.Name, len(tmpl.Spec.Metrics))
	}
	metric := tmpl.Spec.Metrics[0]
	where := fmt.Sprintf("AnalysisTemplate %s metric %s", tmpl.Name, metric.Name)

	// What Argo's own ValidateMetric checks of the fields used here, and
	// the values the example stands for.
	if metric.FailureLimit == nil || metric.ConsecutiveErrorLimit == nil {
		t.Fatalf("%s: set failureLimit and consecutiveErrorLimit explicitly", where)
	}
	failureLimit := metric.FailureLimit.IntValue()
	consecutiveErrors := metric.ConsecutiveErrorLimit.IntValue()
	if failureLimit != 0 {
		t.Errorf("%s: failureLimit %d; a failed analysis must abort at once", where, failureLimit)
	}
	if consecutiveErrors < 4 {
		t.Errorf("%s: consecutiveErrorLimit %d is below Argo's default (4): a short outage of canary serve would abort healthy rollouts", where, consecutiveErrors)
	}
	if metric.Interval == "" {
		t.Errorf("%s: no interval", where)
	} else if _, err := metric.Interval.Duration(); err != nil {
		t.Errorf("%s: interval: %v", where, err)
	}
	if metric.Count == nil || metric.Count.IntValue() < 1 {
		t.Errorf("%s: an analysis step needs a count, or its run never completes", where)
	} else if metric.Count.IntValue() < failureLimit {
		t.Errorf("%s: count must be >= failureLimit", where)
	}
	providers, err := json.Marshal(metric.Provider)
	if err != nil {
		t.Fatal(err)
	}
	var names map[string]json.RawMessage
	if err := json.Unmarshal(providers, &names); err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names["web"] == nil {
		t.Fatalf("%s: want exactly the web provider, have %s", where, providers)
	}

	if metric.SuccessCondition != `result == "pass"` || metric.FailureCondition != `result == "fail"` {
		t.Errorf(`%s: want successCondition result == "pass" and failureCondition result == "fail" (inconclusive then pauses), have %q and %q`,
			where, metric.SuccessCondition, metric.FailureCondition)
	}
	web := metric.Provider.Web
	if web.JSONPath != "{$.verdict}" {
		t.Errorf("%s: jsonPath %q, want {$.verdict}", where, web.JSONPath)
	}
	if _, err := webmetric.NewWebMetricJsonParser(metric); err != nil {
		t.Errorf("%s: jsonPath: %v", where, err)
	}
	if web.Method != "" && web.Method != v1alpha1.WebMetricMethodGet {
		t.Errorf("%s: method %s; the example's params are in the URL", where, web.Method)
	}
	if web.TimeoutSeconds > 10 {
		t.Errorf("%s: timeoutSeconds %d", where, web.TimeoutSeconds)
	}

	args := map[string]v1alpha1.Argument{}
	for _, a := range tmpl.Spec.Args {
		args[a.Name] = a
	}
	argRef := regexp.MustCompile(`^\{\{args\.([A-Za-z0-9_-]+)\}\}$`)
	checkRef := func(what, v string) string {
		m := argRef.FindStringSubmatch(v)
		if m == nil {
			return ""
		}
		if _, ok := args[m[1]]; !ok {
			t.Errorf("%s: %s uses {{args.%s}}, which the template does not declare", where, what, m[1])
		}
		return m[1]
	}

	u, err := url.Parse(web.URL)
	if err != nil {
		t.Fatalf("%s: url: %v", where, err)
	}
	if u.Scheme != "http" || u.Host != serviceHost {
		t.Errorf("%s: url %s does not address canary serve at http://%s", where, web.URL, serviceHost)
	}
	policyName, ok := strings.CutPrefix(u.Path, "/v1/analysis/")
	if !ok || policyName == "" || strings.Contains(policyName, "/") {
		t.Fatalf("%s: url path %q, want /v1/analysis/<policy>", where, u.Path)
	}
	pol, err := set.Get(policyName)
	if err != nil {
		t.Fatalf("%s: the url names policy %q, which is not in %s: %v", where, policyName, gitopsPolicies, err)
	}
	given := map[string]string{}
	for k, vs := range u.Query() {
		if len(vs) != 1 {
			t.Errorf("%s: query param %s given %d times", where, k, len(vs))
		}
		if k == "token" {
			t.Errorf("%s: the token belongs in the Authorization header, not the URL", where)
		}
		if checkRef("query param "+k, vs[0]) == "" && strings.Contains(vs[0], "{{") {
			t.Errorf("%s: query param %s=%q is not a plain {{args.x}}", where, k, vs[0])
		}
		if k != "revision" {
			given[k] = vs[0]
		}
	}
	for _, k := range []string{"namespace", "name", "revision"} {
		if !u.Query().Has(k) {
			t.Errorf("%s: the url passes no %s: canary serve keys runs by namespace, name and revision", where, k)
		}
	}
	checkParams(t, where+" url", pol, given)

	var auth string
	for _, h := range web.Headers {
		if h.Key == "Authorization" {
			auth = h.Value
		}
	}
	tokenArg, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || checkRef("Authorization header", tokenArg) == "" {
		t.Fatalf("%s: want an Authorization header \"Bearer {{args.<token>}}\", have %q", where, auth)
	}
	if a := args[argRef.FindStringSubmatch(tokenArg)[1]]; a.ValueFrom == nil || a.ValueFrom.SecretKeyRef == nil {
		t.Errorf("%s: the token arg %s must come from a Secret (valueFrom.secretKeyRef)", where, a.Name)
	}
}

// resolveArgoArgs resolves the args of an analysis step as Argo's
// controller does (utils/analysis BuildArgumentsForRolloutAnalysisRun and
// MergeArgs): the step's args override the template's; fieldRef reads the
// Rollout's metadata, podTemplateHashValue: Latest is the canary's pod
// template hash, secretKeyRef reads secrets (key -> value here).
func resolveArgoArgs(t *testing.T, ro *v1alpha1.Rollout, step *v1alpha1.RolloutAnalysis, tmpl *v1alpha1.AnalysisTemplate,
	hash string, secrets map[string]string) map[string]string {
	t.Helper()
	given := map[string]string{}
	for _, a := range step.Args {
		v := a.Value
		if f := a.ValueFrom; f != nil {
			switch {
			case f.PodTemplateHashValue != nil && *f.PodTemplateHashValue == v1alpha1.Latest:
				v = hash
			case f.FieldRef != nil && f.FieldRef.FieldPath == "metadata.name":
				v = ro.Name
			case f.FieldRef != nil && f.FieldRef.FieldPath == "metadata.namespace":
				v = ro.Namespace
			default:
				t.Fatalf("arg %s: valueFrom %+v is not resolved by this test", a.Name, *f)
			}
		}
		given[a.Name] = v
	}
	out := map[string]string{}
	for _, a := range tmpl.Spec.Args {
		if v, ok := given[a.Name]; ok {
			out[a.Name] = v
			continue
		}
		switch {
		case a.Value != nil:
			out[a.Name] = *a.Value
		case a.ValueFrom != nil && a.ValueFrom.SecretKeyRef != nil:
			v, ok := secrets[a.ValueFrom.SecretKeyRef.Key]
			if !ok {
				t.Fatalf("arg %s: no secret key %s", a.Name, a.ValueFrom.SecretKeyRef.Key)
			}
			out[a.Name] = v
		default:
			// Argo's own message for it.
			t.Errorf("AnalysisTemplate %s: argument \"%s\" was not supplied", tmpl.Name, a.Name)
		}
	}
	return out
}

// resolveMetric substitutes the args into the metric as Argo's
// ResolveMetricArgs does: in its JSON, with values JSON-escaped.
func resolveMetric(t *testing.T, metric v1alpha1.Metric, args map[string]string) v1alpha1.Metric {
	t.Helper()
	data, err := json.Marshal(metric)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for k, v := range args {
		q := strconv.Quote(v)
		s = strings.ReplaceAll(s, "{{args."+k+"}}", q[1:len(q)-1])
	}
	if strings.Contains(s, "{{args.") {
		t.Fatalf("unresolved args in %s", s)
	}
	var out v1alpha1.Metric
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestArgoRolloutsWebMetric runs Argo Rollouts' own web metric provider,
// which also evaluates the success and failure conditions with Argo's
// code, with the example's metric and args, against canary serve's
// handler over CAISO's recorded series.
func TestArgoRolloutsWebMetric(t *testing.T) {
	m := loadArgo(t)
	var step *v1alpha1.RolloutAnalysis
	for _, s := range m.rollout.Spec.Strategy.Canary.Steps {
		if s.Analysis != nil {
			step = s.Analysis
			break
		}
	}
	if step == nil {
		t.Fatal("the Rollout has no analysis step")
	}
	tmpl := m.templates[step.Templates[0].TemplateName]
	if tmpl == nil {
		t.Fatalf("no AnalysisTemplate %s", step.Templates[0].TemplateName)
	}
	const token, hash = "argo-analysis-token", "6f9c7d5b8"
	args := resolveArgoArgs(t, m.rollout, step, tmpl, hash, map[string]string{"token": token})
	metric := resolveMetric(t, tmpl.Spec.Metrics[0], args)
	tests := filepath.Join(gitopsTests, "caiso.test.yaml")

	healthy := func(start time.Time) []embedded.InputSeries {
		return groupSeries(t, tests, "healthy canary passes", start)
	}
	cases := []struct {
		name   string
		series func(time.Time) []embedded.InputSeries
		token  string
		phase  v1alpha1.AnalysisPhase
		value  string
	}{
		{name: "healthy canary is Successful", series: healthy, token: token, phase: v1alpha1.AnalysisPhaseSuccessful, value: `"pass"`},
		{name: "error spike is Failed", token: token, phase: v1alpha1.AnalysisPhaseFailed, value: `"fail"`,
			series: func(start time.Time) []embedded.InputSeries {
				return groupSeries(t, tests, "error spike on the canary rolls back", start)
			}},
		{name: "canary without traffic is Inconclusive", token: token, phase: v1alpha1.AnalysisPhaseInconclusive, value: `"inconclusive"`,
			series: func(start time.Time) []embedded.InputSeries {
				return slices.DeleteFunc(healthy(start), func(s embedded.InputSeries) bool {
					return strings.HasPrefix(s.Series, "ingest_request") && strings.Contains(s.Series, `track="canary"`)
				})
			}},
		{name: "a wrong token is an Error, not a Failure", series: healthy, token: "wrong", phase: v1alpha1.AnalysisPhaseError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, tc.series, map[string]string{webhooks.GroupAnalysis: token})
			mt := metric
			mt.Provider.Web = metric.Provider.Web.DeepCopy()
			mt.Provider.Web.URL = srv.redirect(t, mt.Provider.Web.URL)
			if tc.token != token {
				for i := range mt.Provider.Web.Headers {
					mt.Provider.Web.Headers[i].Value = strings.ReplaceAll(mt.Provider.Web.Headers[i].Value, token, tc.token)
				}
			}
			client, err := webmetric.NewWebMetricHttpClient(mt)
			if err != nil {
				t.Fatal(err)
			}
			parser, err := webmetric.NewWebMetricJsonParser(mt)
			if err != nil {
				t.Fatal(err)
			}
			logger := logrus.New()
			logger.SetOutput(io.Discard)
			p := webmetric.NewWebMetricProvider(*logrus.NewEntry(logger), client, parser)
			run := &v1alpha1.AnalysisRun{}
			run.Namespace = m.rollout.Namespace
			meas := p.Run(run, mt)
			if meas.Phase != tc.phase {
				t.Fatalf("phase %s, want %s (value %s, message %q)", meas.Phase, tc.phase, meas.Value, meas.Message)
			}
			if tc.value != "" && meas.Value != tc.value {
				t.Errorf("value %s, want %s", meas.Value, tc.value)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// flagger/

// The Canary's schema, as Flagger documents it (flagger.app/v1beta1
// Canary, CanaryAnalysis and CanaryWebhook field names), decoded strictly:
// a field Flagger does not know fails here instead of being dropped by
// the API server.
type (
	flaggerCanary struct {
		APIVersion string          `yaml:"apiVersion"`
		Kind       string          `yaml:"kind"`
		Metadata   flaggerMetadata `yaml:"metadata"`
		Spec       flaggerSpec     `yaml:"spec"`
	}
	flaggerMetadata struct {
		Name        string            `yaml:"name"`
		Namespace   string            `yaml:"namespace"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	}
	flaggerRef struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Name       string `yaml:"name"`
	}
	flaggerSpec struct {
		Provider                string          `yaml:"provider"`
		TargetRef               flaggerRef      `yaml:"targetRef"`
		IngressRef              *flaggerRef     `yaml:"ingressRef"`
		MetricsServer           string          `yaml:"metricsServer"`
		ProgressDeadlineSeconds *int            `yaml:"progressDeadlineSeconds"`
		SkipAnalysis            bool            `yaml:"skipAnalysis"`
		Suspend                 bool            `yaml:"suspend"`
		RevertOnDeletion        bool            `yaml:"revertOnDeletion"`
		Service                 flaggerService  `yaml:"service"`
		Analysis                flaggerAnalysis `yaml:"analysis"`
	}
	flaggerService struct {
		Name          string `yaml:"name"`
		Port          int    `yaml:"port"`
		PortName      string `yaml:"portName"`
		TargetPort    any    `yaml:"targetPort"`
		PortDiscovery bool   `yaml:"portDiscovery"`
	}
	flaggerAnalysis struct {
		Interval              string           `yaml:"interval"`
		Threshold             int              `yaml:"threshold"`
		MaxWeight             int              `yaml:"maxWeight"`
		StepWeight            int              `yaml:"stepWeight"`
		StepWeights           []int            `yaml:"stepWeights"`
		StepWeightPromotion   int              `yaml:"stepWeightPromotion"`
		Iterations            int              `yaml:"iterations"`
		PrimaryReadyThreshold *int             `yaml:"primaryReadyThreshold"`
		CanaryReadyThreshold  *int             `yaml:"canaryReadyThreshold"`
		Match                 []map[string]any `yaml:"match"`
		Mirror                bool             `yaml:"mirror"`
		MirrorWeight          int              `yaml:"mirrorWeight"`
		Metrics               []map[string]any `yaml:"metrics"`
		Alerts                []map[string]any `yaml:"alerts"`
		Webhooks              []flaggerWebhook `yaml:"webhooks"`
	}
	flaggerWebhook struct {
		Type       string            `yaml:"type"`
		Name       string            `yaml:"name"`
		URL        string            `yaml:"url"`
		MuteAlert  bool              `yaml:"muteAlert"`
		Timeout    string            `yaml:"timeout"`
		Metadata   map[string]string `yaml:"metadata"`
		Retries    int               `yaml:"retries"`
		DisableTLS bool              `yaml:"disableTLS"`
	}
)

// flaggerTokenPlaceholder stands for the Flagger token in the example's
// URLs, substituted at deploy time.
const flaggerTokenPlaceholder = "${CANARY_FLAGGER_TOKEN}"

func loadFlagger(t *testing.T) flaggerCanary {
	t.Helper()
	data, err := os.ReadFile("flagger/canary.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c flaggerCanary
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("flagger/canary.yaml: %v", err)
	}
	return c
}

// flaggerRoute is what each webhook type must call: the endpoint (with
// the policy for check and gate) of canary serve built for it.
func flaggerRoute(typ string) (suffix string, perPolicy bool) {
	switch typ {
	case "pre-rollout", "rollout":
		return "/check", true
	case "confirm-rollout", "confirm-traffic-increase", "confirm-promotion":
		return "/gate", true
	case "rollback":
		return "/v1/flagger/rollback", false
	case "event":
		return "/v1/flagger/events", false
	}
	return "", false
}

// TestFlaggerCanary checks the Canary against Flagger's schema and every
// webhook against the endpoint its type needs and the policy it calls.
func TestFlaggerCanary(t *testing.T) {
	c := loadFlagger(t)
	set := loadGitopsPolicies(t)
	if c.APIVersion != "flagger.app/v1beta1" || c.Kind != "Canary" {
		t.Fatalf("want flagger.app/v1beta1 Canary, have %s %s", c.APIVersion, c.Kind)
	}
	if c.Metadata.Name == "" || c.Metadata.Namespace == "" {
		t.Error("the Canary needs a name and a namespace: they are the name and namespace params")
	}
	s := c.Spec
	if s.Provider != "nginx" {
		t.Errorf("provider %q, want nginx", s.Provider)
	}
	if s.IngressRef == nil || s.IngressRef.Kind != "Ingress" || s.IngressRef.APIVersion != "networking.k8s.io/v1" || s.IngressRef.Name == "" {
		t.Errorf("the nginx provider needs an ingressRef to a networking.k8s.io/v1 Ingress, have %+v", s.IngressRef)
	}
	if s.TargetRef.Kind != "Deployment" || s.TargetRef.Name == "" {
		t.Errorf("targetRef %+v", s.TargetRef)
	}
	if s.Service.Port == 0 {
		t.Error("service.port is required")
	}
	a := s.Analysis
	if d, err := time.ParseDuration(a.Interval); err != nil || d < 10*time.Second {
		t.Errorf("analysis.interval %q: want a duration of at least 10s (Flagger's minimum)", a.Interval)
	}
	if a.Threshold < 1 {
		t.Errorf("analysis.threshold %d", a.Threshold)
	}
	if a.StepWeight <= 0 || a.MaxWeight <= 0 || a.MaxWeight > 100 || a.StepWeight > a.MaxWeight {
		t.Errorf("analysis: stepWeight %d, maxWeight %d", a.StepWeight, a.MaxWeight)
	}

	types := map[string]bool{}
	for _, w := range a.Webhooks {
		where := fmt.Sprintf("webhook %s (%s)", w.Name, w.Type)
		types[w.Type] = true
		if w.Name == "" {
			t.Errorf("%s: no name", where)
		}
		if w.Timeout != "" {
			if d, err := time.ParseDuration(w.Timeout); err != nil || d > 10*time.Second {
				t.Errorf("%s: timeout %q", where, w.Timeout)
			}
		}
		u, err := url.Parse(w.URL)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		if u.Scheme != "http" || u.Host != serviceHost {
			t.Errorf("%s: url %s does not address canary serve at http://%s", where, w.URL, serviceHost)
		}
		if got := u.Query().Get("token"); got != flaggerTokenPlaceholder {
			t.Errorf("%s: want ?token=%s (Flagger cannot send headers), have %q", where, flaggerTokenPlaceholder, got)
		}
		suffix, perPolicy := flaggerRoute(w.Type)
		switch {
		case suffix == "":
			t.Errorf("%s: not a webhook type canary serve answers", where)
		case !perPolicy:
			if u.Path != suffix {
				t.Errorf("%s: path %s, want %s", where, u.Path, suffix)
			}
		default:
			rest, ok := strings.CutPrefix(u.Path, "/v1/flagger/")
			policyName, ok2 := strings.CutSuffix(rest, suffix)
			if !ok || !ok2 || policyName == "" || strings.Contains(policyName, "/") {
				t.Errorf("%s: path %s, want /v1/flagger/<policy>%s", where, u.Path, suffix)
				continue
			}
			pol, err := set.Get(policyName)
			if err != nil {
				t.Errorf("%s: policy %q is not in %s: %v", where, policyName, gitopsPolicies, err)
				continue
			}
			given := map[string]string{"name": c.Metadata.Name, "namespace": c.Metadata.Namespace}
			for k, v := range w.Metadata {
				if k == "name" || k == "namespace" {
					t.Errorf("%s: metadata %s is overridden by the Canary's own %s", where, k, k)
				}
				given[k] = v
			}
			checkParams(t, where+" metadata", pol, given)
		}
	}
	for _, typ := range []string{"pre-rollout", "rollout", "confirm-traffic-increase", "confirm-promotion", "rollback", "event"} {
		if !types[typ] {
			t.Errorf("no %s webhook", typ)
		}
	}
	checkFlaggerGates(t, a.Webhooks)
}

// checkFlaggerGates checks the safe wiring of the traffic: each weight
// increase and the promotion are gated (confirm-traffic-increase and
// confirm-promotion, one each) by the gate endpoint of the very policy and
// params the rollout check analyses. The check lets an inconclusive
// analysis through (a failed check would count towards a rollback); the
// gate never does, so an analysis without evidence never moves traffic.
func checkFlaggerGates(t *testing.T, hooks []flaggerWebhook) {
	t.Helper()
	byType := map[string][]flaggerWebhook{}
	for _, w := range hooks {
		byType[w.Type] = append(byType[w.Type], w)
	}
	if len(byType["rollout"]) != 1 {
		t.Fatalf("want one rollout check, have %d", len(byType["rollout"]))
	}
	check := byType["rollout"][0]
	cu, err := url.Parse(check.URL)
	if err != nil {
		t.Fatal(err)
	}
	policyPath, ok := strings.CutSuffix(cu.Path, "/check")
	if !ok {
		t.Fatalf("rollout check %s does not call /v1/flagger/<policy>/check", check.URL)
	}
	for _, typ := range []string{"confirm-traffic-increase", "confirm-promotion"} {
		gates := byType[typ]
		if len(gates) != 1 {
			t.Errorf("want one %s webhook, have %d", typ, len(gates))
			continue
		}
		g := gates[0]
		gu, err := url.Parse(g.URL)
		if err != nil {
			t.Fatal(err)
		}
		if gu.Scheme != cu.Scheme || gu.Host != cu.Host || gu.Path != policyPath+"/gate" {
			t.Errorf("%s %s: want the gate of the rollout check's policy, %s://%s%s/gate", typ, g.URL, cu.Scheme, cu.Host, policyPath)
		}
		if gu.Query().Get("token") == "" {
			t.Errorf("%s %s: no ?token=", typ, g.URL)
		}
		if !maps.Equal(g.Metadata, check.Metadata) {
			t.Errorf("%s: metadata %v, the rollout check's %v: the gate must judge the same analysis", typ, g.Metadata, check.Metadata)
		}
	}
}

// flaggerPost posts to a hook what Flagger posts (pkg/controller/webhook.go):
// name, namespace, phase, checksum and the hook's metadata.
func flaggerPost(t *testing.T, target string, c flaggerCanary, w flaggerWebhook, checksum string) (int, string) {
	t.Helper()
	payload := map[string]any{
		"name": c.Metadata.Name, "namespace": c.Metadata.Namespace,
		"phase": "Progressing", "checksum": checksum,
	}
	md := map[string]string{}
	for k, v := range w.Metadata {
		md[k] = v
	}
	if w.Type == "event" {
		md["eventMessage"] = "Advance lmp-ingest.pjm canary weight 10"
		md["eventType"] = "Normal"
		md["timestamp"] = strconv.FormatInt(time.Now().UnixMilli(), 10)
	}
	if len(md) > 0 {
		payload["metadata"] = md
	}
	body, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(target, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s: %v", w.Name, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// TestFlaggerWebhooks posts every webhook of the Canary as Flagger does to
// canary serve's handler, over PJM's recorded series, and checks the answer
// by Flagger's rule (a status up to 202 is success).
func TestFlaggerWebhooks(t *testing.T) {
	c := loadFlagger(t)
	const token, checksum = "flagger-token", "85d557f47b"
	tests := filepath.Join(gitopsTests, "pjm.test.yaml")
	cases := []struct {
		name  string
		group string
		// drop removes series from the group's, for a canary without
		// evidence.
		drop func(embedded.InputSeries) bool
		// ok says which types must succeed; the others must fail.
		ok map[string]bool
	}{
		{name: "healthy canary advances", group: "healthy canary catching up on a backlog passes",
			ok: map[string]bool{"event": true, "pre-rollout": true, "rollout": true, "confirm-traffic-increase": true, "confirm-promotion": true}},
		{name: "stale canary is held and counts failed checks", group: "canary that stopped storing prices fails freshness",
			ok: map[string]bool{"event": true}},
		// No request metrics from the canary: the analysis is
		// inconclusive. The checks let it through (it is no failure),
		// the gates hold the weight and the promotion.
		{name: "canary without evidence is held at the gates", group: "healthy canary catching up on a backlog passes",
			drop: func(s embedded.InputSeries) bool {
				return strings.HasPrefix(s.Series, "ingest_request") && strings.Contains(s.Series, `track="canary"`)
			},
			ok: map[string]bool{"event": true, "pre-rollout": true, "rollout": true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, func(start time.Time) []embedded.InputSeries {
				series := groupSeries(t, tests, tc.group, start)
				if tc.drop != nil {
					series = slices.DeleteFunc(series, tc.drop)
				}
				return series
			}, map[string]string{webhooks.GroupFlagger: token})
			// Events first, as Flagger emits them when a revision starts.
			hooks := slices.Clone(c.Spec.Analysis.Webhooks)
			slices.SortStableFunc(hooks, func(a, b flaggerWebhook) int {
				return boolInt(b.Type == "event") - boolInt(a.Type == "event")
			})
			for _, w := range hooks {
				target := srv.redirect(t, strings.ReplaceAll(w.URL, flaggerTokenPlaceholder, token))
				code, body := flaggerPost(t, target, c, w, checksum)
				if success := code <= 202; success != tc.ok[w.Type] {
					t.Errorf("%s (%s): %d %q; Flagger needs success=%v", w.Name, w.Type, code, strings.TrimSpace(body), tc.ok[w.Type])
				}
				if code == http.StatusBadRequest || code == http.StatusUnauthorized || code == http.StatusNotFound {
					t.Errorf("%s (%s): %d %q: the hook is misconfigured", w.Name, w.Type, code, strings.TrimSpace(body))
				}
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ---------------------------------------------------------------------------
// alertmanager/

const (
	amConfig      = "alertmanager/alertmanager.yml"
	amRules       = "alertmanager/canary-alerts.rules.yml"
	amRulesTest   = "alertmanager/canary-alerts.test.yml"
	amReceiverURL = "http://canary.canary.svc:8080/v1/alertmanager"
	amCredentials = "/etc/alertmanager/secrets/canary/token"
)

func lookPath(t *testing.T, bin, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %s (make test does): %v", bin, pkg, err)
	}
	return p
}

// promAlerts are the alerts the rules test expects, with their labels.
func promAlerts(t *testing.T) map[string]map[string]string {
	t.Helper()
	data, err := os.ReadFile(amRulesTest)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []struct {
					ExpLabels map[string]string `yaml:"exp_labels"`
				} `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for _, tc := range f.Tests {
		for _, rt := range tc.AlertRuleTest {
			for _, a := range rt.ExpAlerts {
				out[rt.Alertname] = a.ExpLabels
			}
		}
	}
	return out
}

// amReceiver is the part of an Alertmanager receiver the test reads.
type amReceiver struct {
	Name           string `yaml:"name"`
	WebhookConfigs []struct {
		URL          string `yaml:"url"`
		SendResolved *bool  `yaml:"send_resolved"`
		HTTPConfig   struct {
			Authorization struct {
				Type            string `yaml:"type"`
				CredentialsFile string `yaml:"credentials_file"`
			} `yaml:"authorization"`
		} `yaml:"http_config"`
	} `yaml:"webhook_configs"`
}

// TestAlertmanagerConfigAndRules: amtool accepts the config as written and
// routes the alerts of the rules (checked by promtool) to canary serve, and
// nothing else.
func TestAlertmanagerConfigAndRules(t *testing.T) {
	amtool := lookPath(t, "amtool", "prometheus-alertmanager")
	promtool := lookPath(t, "promtool", "prometheus")

	if r := run(t, ".", nil, amtool, "check-config", amConfig); r.code != 0 {
		t.Fatalf("amtool check-config %s: exit %d\n%s%s", amConfig, r.code, r.stdout, r.stderr)
	}
	if r := run(t, ".", nil, promtool, "check", "rules", amRules); r.code != 0 {
		t.Fatalf("promtool check rules: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, "alertmanager", nil, promtool, "test", "rules", filepath.Base(amRulesTest)); r.code != 0 {
		t.Fatalf("promtool test rules: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	route := func(labels map[string]string) string {
		args := []string{"config", "routes", "test", "--config.file=" + amConfig}
		for _, k := range slices.Sorted(maps.Keys(labels)) {
			args = append(args, k+"="+labels[k])
		}
		r := run(t, ".", nil, amtool, args...)
		if r.code != 0 {
			t.Fatalf("amtool %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		return strings.TrimSpace(r.stdout)
	}
	alerts := promAlerts(t)
	if len(alerts) == 0 {
		t.Fatal("the rules test expects no alerts")
	}
	set := loadGitopsPolicies(t)
	for name, labels := range alerts {
		if got := route(labels); got != "canary" {
			t.Errorf("alert %s %v goes to %q, want canary", name, labels, got)
		}
		// Every policy matches it for a run of its pipeline: one of its
		// alerts entries names only labels the alert has, with the same
		// value where the value is no template over the run's params.
		for _, p := range set.Policies {
			matched := false
			for _, a := range p.Alerts {
				ok := len(a.MatchRegexText) == 0
				for k, v := range a.MatchText {
					got, has := labels[k]
					ok = ok && has && (strings.Contains(v, "{{") || got == v)
				}
				matched = matched || ok
			}
			if !matched {
				t.Errorf("alert %s %v carries none of policy %s's alert label sets", name, labels, p.Name)
			}
		}
	}
	if got := route(map[string]string{"alertname": "IngestErrors", "severity": "critical", "namespace": "pjm", "app": "lmp-ingest"}); got != "market-data-team" {
		t.Errorf("an alert without canary=\"true\" goes to %q, want the default receiver", got)
	}

	// The canary receiver: resolved alerts too (they lift pauses), and the
	// token from a file.
	data, err := os.ReadFile(amConfig)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Receivers []amReceiver `yaml:"receivers"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(cfg.Receivers, func(r amReceiver) bool { return r.Name == "canary" })
	if i < 0 || len(cfg.Receivers[i].WebhookConfigs) != 1 {
		t.Fatal("want a receiver named canary with one webhook config")
	}
	wc := cfg.Receivers[i].WebhookConfigs[0]
	if wc.URL != amReceiverURL {
		t.Errorf("canary receiver url %q, want %q", wc.URL, amReceiverURL)
	}
	if wc.SendResolved == nil || !*wc.SendResolved {
		t.Error("canary receiver: set send_resolved: true, so that resolved alerts lift the pauses they latched")
	}
	if a := wc.HTTPConfig.Authorization; a.Type != "Bearer" || a.CredentialsFile != amCredentials {
		t.Errorf("canary receiver: want http_config.authorization type Bearer with credentials_file %s, have %+v", amCredentials, a)
	}
}

// alertmanager is a real Alertmanager process.
type alertmanager struct {
	url    string
	output *lockedBuffer
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startAlertmanager runs the Debian prometheus-alertmanager with the config
// file on a free port of 127.0.0.1, gossip off, and waits until it is ready.
// Handing a free port to another process is racy, so a start that fails
// because the port was taken meanwhile is tried again on another.
func startAlertmanager(t *testing.T, config string) *alertmanager {
	t.Helper()
	bin := lookPath(t, "prometheus-alertmanager", "prometheus-alertmanager")
	for attempt := 1; ; attempt++ {
		am, err := tryAlertmanager(t, bin, config)
		if err == nil {
			return am
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
	}
}

func tryAlertmanager(t *testing.T, bin, config string) (*alertmanager, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	am := &alertmanager{url: "http://" + addr, output: &lockedBuffer{}}
	cmd := exec.Command(bin,
		"--config.file="+config,
		"--storage.path="+filepath.Join(t.TempDir(), "data"),
		"--web.listen-address="+addr,
		"--web.external-url="+am.url,
		"--cluster.listen-address=", // no gossip: it would bind 0.0.0.0:9094
		"--log.level=debug",
	)
	cmd.Stdout, cmd.Stderr = am.output, am.output
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(am.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Cleanup(func() {
					stop()
					if t.Failed() {
						t.Logf("alertmanager output:\n%s", am.output.String())
					}
				})
				return am, nil
			}
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("alertmanager exited with the example config:\n%s", am.output.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("alertmanager not ready after 30s:\n%s", am.output.String())
		}
	}
}

func (am *alertmanager) fire(t *testing.T, labels map[string]string) {
	t.Helper()
	body, _ := json.Marshal([]map[string]any{{
		"labels":      labels,
		"annotations": map[string]string{"summary": "lmp-ingest canary in pjm: 10% of fetches fail"},
		"startsAt":    time.Now().UTC(),
	}})
	resp, err := http.Post(am.url+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		out, _ := io.ReadAll(resp.Body)
		t.Fatalf("post alert: %s: %s", resp.Status, out)
	}
}

// TestAlertmanagerLatchesRollback starts the real Alertmanager with the
// example config, changed only to reach the in-process canary serve and to
// read its token from a temporary file, and fires the canary alert the
// rules produce: canary serve latches a rollback for the PJM canary's run,
// and Flagger's rollback hook then answers 200.
func TestAlertmanagerLatchesRollback(t *testing.T) {
	const amToken, flaggerToken, checksum = "am-token-s3cret", "flagger-token", "85d557f47b"
	srv := startServer(t, func(start time.Time) []embedded.InputSeries {
		return groupSeries(t, filepath.Join(gitopsTests, "pjm.test.yaml"), "healthy canary catching up on a backlog passes", start)
	}, map[string]string{webhooks.GroupAlertmanager: amToken, webhooks.GroupFlagger: flaggerToken})

	c := loadFlagger(t)
	hook := func(typ string) flaggerWebhook {
		i := slices.IndexFunc(c.Spec.Analysis.Webhooks, func(w flaggerWebhook) bool { return w.Type == typ })
		if i < 0 {
			t.Fatalf("the Canary has no %s webhook", typ)
		}
		return c.Spec.Analysis.Webhooks[i]
	}
	post := func(typ string) (int, string) {
		w := hook(typ)
		return flaggerPost(t, srv.redirect(t, strings.ReplaceAll(w.URL, flaggerTokenPlaceholder, flaggerToken)), c, w, checksum)
	}
	// The run starts and passes its analysis: no rollback yet.
	for typ, want := range map[string]int{"event": http.StatusAccepted, "rollout": http.StatusOK, "rollback": http.StatusForbidden} {
		if code, body := post(typ); code != want {
			t.Fatalf("%s hook: %d %q, want %d", typ, code, body, want)
		}
	}

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(amToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "alertmanager.yml")
	data, err := os.ReadFile(amConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(config, data, 0o600); err != nil {
		t.Fatal(err)
	}
	mutate(t, config, amReceiverURL, srv.url+"/v1/alertmanager")
	mutate(t, config, amCredentials, tokenFile)
	am := startAlertmanager(t, config)

	labels := promAlerts(t)["IngestCanaryErrors"]
	if labels == nil {
		t.Fatal("the rules test expects no IngestCanaryErrors alert")
	}
	am.fire(t, labels)

	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body := post("rollback")
		if code == http.StatusOK {
			if !strings.Contains(body, "IngestCanaryErrors") {
				t.Errorf("rollback hook: %q does not name the alert", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the alert never latched a rollback (rollback hook: %d %q)", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The latch now answers the analysis and the gates too.
	for _, typ := range []string{"rollout", "confirm-promotion"} {
		if code, body := post(typ); code <= 202 {
			t.Errorf("%s hook after the alert: %d %q, want a failure", typ, code, body)
		}
	}
	if strings.Contains(am.output.String(), amToken) {
		t.Error("alertmanager logged the token")
	}
}

// ---------------------------------------------------------------------------
// Manual overrides in the READMEs.

// overrideActions are the actions a person takes on a run or a rollout,
// each of which needs a reason.
var overrideActions = []string{"rollback", "promote", "pause", "resume", "skip-step"}

// readmeCommand is a line of an sh code block of a README.
type readmeCommand struct{ where, line string }

// readmeCommands returns the lines of the sh code blocks of every
// Markdown file under examples/, in order, with where they are.
func readmeCommands(t *testing.T) []readmeCommand {
	t.Helper()
	var out []readmeCommand
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".md") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		inSh := false
		for i, line := range strings.Split(string(data), "\n") {
			switch {
			case strings.HasPrefix(line, "```"):
				inSh = !inSh && strings.TrimPrefix(line, "```") == "sh"
			case inSh && strings.TrimSpace(line) != "" && !strings.HasPrefix(strings.TrimSpace(line), "#"):
				out = append(out, readmeCommand{fmt.Sprintf("%s:%d", path, i+1), strings.TrimSpace(line)})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// shellWords splits a command line as sh does for what the READMEs use:
// words, '...' and "..." quoting; $(...) is kept as written.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		switch ch := line[i]; {
		case ch == ' ' || ch == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case ch == '\'' || ch == '"':
			end := strings.IndexByte(line[i+1:], ch)
			if end < 0 {
				t.Fatalf("unterminated %c in %q", ch, line)
			}
			cur.WriteString(line[i+1 : i+1+end])
			i += end + 1
			inWord = true
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// TestManualOverridesInReadmes finds every manual override the examples'
// READMEs show, `canary runs|rollout <action>` and curl to /v1/runs or
// /v1/rollouts, checks each gives a reason, and runs them in order, as
// written but for the server's address and the token file, against
// canary serve's handler with a PJM canary's run: each must be accepted,
// and the run must record the reasons.
func TestManualOverridesInReadmes(t *testing.T) {
	const adminToken, flaggerToken, checksum = "admin-token-s3cret", "flagger-token", "85d557f47b"
	srv := startServer(t, func(start time.Time) []embedded.InputSeries {
		return groupSeries(t, filepath.Join(gitopsTests, "pjm.test.yaml"), "healthy canary catching up on a backlog passes", start)
	}, map[string]string{webhooks.GroupAdmin: adminToken, webhooks.GroupFlagger: flaggerToken})
	// The run, started by Flagger's event.
	c := loadFlagger(t)
	i := slices.IndexFunc(c.Spec.Analysis.Webhooks, func(w flaggerWebhook) bool { return w.Type == "event" })
	if i < 0 {
		t.Fatal("the Canary has no event webhook")
	}
	ev := c.Spec.Analysis.Webhooks[i]
	if code, body := flaggerPost(t, srv.redirect(t, strings.ReplaceAll(ev.URL, flaggerTokenPlaceholder, flaggerToken)), c, ev, checksum); code != http.StatusAccepted {
		t.Fatalf("event hook: %d %q", code, body)
	}
	tokenFile := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(tokenFile, []byte(adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	var reasons []string
	ran := map[string]int{}
	for _, cmd := range readmeCommands(t) {
		where, line := cmd.where, cmd.line
		words := shellWords(t, line)
		switch {
		case len(words) >= 3 && words[0] == "canary" && (words[1] == "runs" || words[1] == "rollout") && slices.Contains(overrideActions, words[2]):
			reason := ""
			for j := 3; j+1 < len(words); j++ {
				if words[j] == "--reason" {
					reason = words[j+1]
				}
			}
			if strings.TrimSpace(reason) == "" {
				t.Errorf("%s: %q gives no --reason: canary refuses a manual override without one", where, line)
				continue
			}
			reasons = append(reasons, reason)
			for j := 3; j+1 < len(words); j++ {
				switch words[j] {
				case "--server":
					words[j+1] = srv.redirect(t, words[j+1]+"/")
					words[j+1] = strings.TrimSuffix(words[j+1], "/")
				case "--token-file":
					words[j+1] = tokenFile
				}
			}
			r := run(t, ".", nil, canaryBinary(t), words[1:]...)
			if r.code != 0 {
				t.Errorf("%s: %s: exit %d\n%s%s", where, line, r.code, r.stdout, r.stderr)
			}
			ran["canary"]++
		case len(words) > 0 && words[0] == "curl" && (strings.Contains(line, "/v1/runs/") || strings.Contains(line, "/v1/rollouts/")):
			method, target, body := "GET", "", ""
			auth := false
			for j := 1; j < len(words); j++ {
				switch w := words[j]; {
				case w == "-X" && j+1 < len(words):
					method = words[j+1]
					j++
				case w == "-d" && j+1 < len(words):
					body = words[j+1]
					j++
				case w == "-H" && j+1 < len(words):
					auth = auth || words[j+1] == "Authorization: Bearer $(cat admin-token)"
					j++
				case strings.HasPrefix(w, "http"):
					target = w
				}
			}
			if method != "POST" {
				continue
			}
			var payload struct {
				Reason string `json:"reason"`
			}
			if err := json.Unmarshal([]byte(body), &payload); err != nil || strings.TrimSpace(payload.Reason) == "" {
				t.Errorf("%s: %q posts no {\"reason\": ...} (%v)", where, line, err)
				continue
			}
			if !auth {
				t.Errorf("%s: %q sends no admin token (-H \"Authorization: Bearer $(cat admin-token)\")", where, line)
			}
			reasons = append(reasons, payload.Reason)
			req, err := http.NewRequest(method, srv.redirect(t, target), strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+adminToken)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: %s: %s %s", where, line, resp.Status, out)
			}
			ran["curl"]++
		}
	}
	if ran["canary"] == 0 || ran["curl"] == 0 {
		t.Fatalf("the READMEs show no manual override (canary runs: %d, curl: %d): examples/README.md's section is gone?", ran["canary"], ran["curl"])
	}

	resp, err := http.DefaultClient.Do(func() *http.Request {
		req, _ := http.NewRequest("GET", srv.url+"/v1/runs/pjm/lmp-ingest", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		return req
	}())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	for _, r := range reasons {
		if !strings.Contains(string(out), r) {
			t.Errorf("the run does not record the reason %q:\n%s", r, out)
		}
	}
}
