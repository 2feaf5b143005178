package rules

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestBadPolicies pins the exact report for each broken file in
// testdata/bad: every problem, with file:line:col, policy and rule.
func TestBadPolicies(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := Load(f)
			require.Error(t, err)
			var errs Errors
			require.True(t, errors.As(err, &errs), "want Errors, got %T", err)
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err)
			require.Equal(t, string(want), got)
		})
	}
}

func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile("testdata/good/policy.yaml")
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "team/a"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, ".git"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "team/a/p.yml"), good, 0o644))
	// Hidden directories such as .git and non-YAML files are not policies.
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".git/x.yaml"), []byte("junk: ["), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "README.md"), []byte("# policies"), 0o644))
	set, err := Load(dir)
	require.NoError(t, err)
	require.Len(t, set.Policies, 1)
	pol, err := set.Get("good")
	require.NoError(t, err)
	require.Len(t, pol.Rules, 3)
	_, err = set.Get("nope")
	require.ErrorIs(t, err, ErrUnknownPolicy)

	// A second copy under another name is a duplicate policy.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "copy.yaml"), good, 0o644))
	_, err = Load(dir)
	require.ErrorContains(t, err, `policy "good": duplicate policy name (first at`)
}

// TestLoadThroughSymlink: git-sync publishes its checkout as a symlink to
// a directory, which a walk does not follow by itself.
func TestLoadThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile("testdata/good/policy.yaml")
	require.NoError(t, err)
	real := filepath.Join(dir, "rev-1234")
	require.NoError(t, os.MkdirAll(real, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(real, "p.yaml"), good, 0o644))
	link := filepath.Join(dir, "checkout")
	require.NoError(t, os.Symlink(real, link))
	set, err := Load(link)
	require.NoError(t, err)
	require.Len(t, set.Policies, 1)
	l := NewLoader(link)
	require.NoError(t, l.Reload())
	tried, err := l.ReloadIfChanged()
	require.NoError(t, err)
	require.False(t, tried)
}

func TestLoadMissingPath(t *testing.T) {
	_, err := Load("testdata/does-not-exist")
	require.ErrorContains(t, err, "testdata/does-not-exist: stat testdata/does-not-exist: no such file or directory")
}

func TestCompiledPolicy(t *testing.T) {
	set, err := Load("testdata/good/policy.yaml")
	require.NoError(t, err)
	pol := set.Policies[0]
	q := pol.Query("error_rate")
	require.Equal(t, []string{"namespace", "name", "track", "path", "window"}, q.ParamRefs)
	require.Equal(t, KindScalar, q.ValueKind())
	require.Equal(t, KindSamples, pol.Query("lag").ValueKind())
	lat := pol.Query("latency")
	require.Equal(t, KindRange, lat.ValueKind())
	require.Equal(t, int64(600), int64(lat.Range.Seconds()))
	r := pol.Rules[0]
	require.Equal(t, []string{"error_rate"}, r.InputNames)
	require.NotNil(t, r.Explain)
	require.Equal(t, "<=", r.Explain.Op)
	require.Equal(t, OutcomeInconclusive, r.NoData)
	require.Equal(t, ActionRollback, pol.Decision.OnFail)
	require.Equal(t, ActionPause, pol.Decision.OnInconclusive)
}

// TestReloadToNoPolicies: a reload that finds no policy, such as a policy
// directory emptied by a bad sync, is refused like a broken one: the last
// good set stays in service and Status says why.
func TestReloadToNoPolicies(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile("testdata/good/policy.yaml")
	require.NoError(t, err)
	path := filepath.Join(dir, "p.yaml")
	require.NoError(t, os.WriteFile(path, good, 0o644))
	l := NewLoader(dir)
	require.NoError(t, l.Reload())
	served, success := l.Set(), l.Status().LastSuccess
	require.Len(t, served.Policies, 1)

	require.NoError(t, os.Remove(path))
	tried, err := l.ReloadIfChanged()
	require.True(t, tried)
	require.ErrorIs(t, err, ErrNoPolicies)
	require.EqualError(t, err, "no policies found in "+dir+": refusing to load an empty set")
	require.Same(t, served, l.Set(), "the last good set stays in service")
	st := l.Status()
	require.ErrorIs(t, st.Err, ErrNoPolicies)
	require.Equal(t, success, st.LastSuccess)
	// The same empty content is not reported again on every poll.
	tried, _ = l.ReloadIfChanged()
	require.False(t, tried)
	require.ErrorIs(t, l.Reload(), ErrNoPolicies)

	// A file of empty documents holds no policy either.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "empty.yaml"), []byte("---\n# nothing yet\n---\n"), 0o644))
	tried, err = l.ReloadIfChanged()
	require.True(t, tried)
	require.ErrorIs(t, err, ErrNoPolicies)
	require.Same(t, served, l.Set())

	// A first load to nothing serves nothing, and says why, once: the
	// watcher's next poll does not report the same empty directory again.
	empty := NewLoader(t.TempDir(), dir)
	require.ErrorIs(t, empty.Reload(), ErrNoPolicies)
	require.Nil(t, empty.Set())
	tried, _ = empty.ReloadIfChanged()
	require.False(t, tried, "the first poll after a failed start reports nothing new")

	// Load itself may return an empty set: its callers decide.
	set, err := Load(dir)
	require.NoError(t, err)
	require.Empty(t, set.Policies)

	require.NoError(t, os.WriteFile(path, good, 0o644))
	tried, err = l.ReloadIfChanged()
	require.True(t, tried)
	require.NoError(t, err)
	require.NoError(t, l.Status().Err)
}
