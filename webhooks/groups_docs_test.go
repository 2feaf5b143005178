package webhooks

import (
	"context"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// guardingGroups asks the server which route group guards each route: it
// calls the route without a token and then with each group's token, and
// returns, by "METHOD /path", the groups whose token gets past the 401
// ("open" when no token is needed).
func guardingGroups(t *testing.T) map[string][]string {
	t.Helper()
	e := newEnvWithGroupTokens(t)
	param := regexp.MustCompile(`[:*]\w+`)
	out := map[string][]string{}
	for _, r := range e.srv.router.Routes() {
		if r.Method == http.MethodHead {
			continue
		}
		path := param.ReplaceAllString(r.Path, "x")
		key := r.Method + " " + r.Path
		if code := status(t, r.Method, e.url+path, ""); code != http.StatusUnauthorized {
			out[key] = []string{"open"}
			continue
		}
		for _, g := range Groups {
			if code := status(t, r.Method, e.url+path, g+"-token"); code != http.StatusUnauthorized {
				out[key] = append(out[key], g)
			}
		}
		require.NotEmpty(t, out[key], "%s takes no group's token", key)
	}
	require.NotEmpty(t, out)
	return out
}

// status sends a request without a body and returns its status code, not
// reading the body: a live stream answers its headers and goes on.
func status(t *testing.T, method, url, token string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err, "%s %s", method, url)
	resp.Body.Close()
	return resp.StatusCode
}

// documentedGroups reads a sentence of the form
// "`group` (`/prefix`, `/prefix` …)" for each group, from the paragraph of
// file that starts with lead.
func documentedGroups(t *testing.T, file, lead string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	text := string(data)
	i := strings.Index(text, lead)
	require.GreaterOrEqual(t, i, 0, "%s: no paragraph starting %q", file, lead)
	para, _, _ := strings.Cut(text[i:], "\n\n")
	para = strings.Join(strings.Fields(para), " ")
	out := map[string][]string{}
	for _, m := range regexp.MustCompile("`(\\w+)` \\(([^)]*)\\)").FindAllStringSubmatch(para, -1) {
		for _, p := range regexp.MustCompile("`(/[^`]*)`").FindAllStringSubmatch(m[2], -1) {
			out[m[1]] = append(out[m[1]], strings.TrimSuffix(p[1], "…"))
		}
	}
	require.NotEmpty(t, out, "%s: no `group` (`/path`, …) in %q", file, para)
	return out
}

// TestRouteGroupsDocumented: the operations guide and the chart's README
// say which paths each token group guards; every route of the server is
// under a path its guarding group's list names, and every path named is
// a route of that group. The ui group also takes the admin group's tokens.
func TestRouteGroupsDocumented(t *testing.T) {
	got := guardingGroups(t)
	docs := map[string]map[string][]string{
		"docs/operations.md":      documentedGroups(t, "../docs/operations.md", "Each route group takes bearer tokens"),
		"charts/canary/README.md": documentedGroups(t, "../charts/canary/README.md", "`canary serve` requires a bearer token on each route group"),
	}
	for file, doc := range docs {
		t.Run(file, func(t *testing.T) {
			require.ElementsMatch(t, Groups, slices.Collect(maps.Keys(doc)), "the groups %s names", file)
			used := map[string]bool{}
			for route, groups := range got {
				if groups[0] == "open" {
					continue
				}
				group := groups[0]
				if len(groups) == 2 && groups[0] == GroupAdmin && groups[1] == GroupUI {
					group = GroupUI // the ui group's routes take admin tokens too
				} else {
					require.Len(t, groups, 1, "%s takes the tokens of %v", route, groups)
				}
				_, path, _ := strings.Cut(route, " ")
				i := slices.IndexFunc(doc[group], func(prefix string) bool { return strings.HasPrefix(path, prefix) })
				require.GreaterOrEqual(t, i, 0, "%s (group %s) is under none of the paths %s gives %s: %v", route, group, file, group, doc[group])
				used[group+" "+doc[group][i]] = true
			}
			for group, prefixes := range doc {
				for _, p := range prefixes {
					require.True(t, used[group+" "+p], "%s says %s guards %s, which is none of its routes", file, group, p)
				}
			}
		})
	}
}
