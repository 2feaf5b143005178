package docs_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
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
//     openapi.yaml, and an existing policy with the params it declares;
//   - the Flagger Canary's hooks send the params their policy requires.

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
	for _, md := range markdownFiles(t) {
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
	require.GreaterOrEqual(t, n, 4, "the guides embed the example manifests")
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

// TestGuideURLs: every URL of the service the docs show is an operation of
// the API, naming a policy that exists with params it declares.
func TestGuideURLs(t *testing.T) {
	templates := openAPIPaths(t)
	pols := knownPolicies(t)
	n := 0
	for _, md := range markdownFiles(t) {
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
			case tmpl == "/v1/runs/{namespace}/{name}":
				for _, k := range keys {
					require.Equal(t, "limit", k, "%s: %s", md, m[0])
				}
			default:
				require.Empty(t, keys, "%s: %s takes no query parameters", md, m[0])
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
