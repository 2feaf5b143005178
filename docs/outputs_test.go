package docs_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDocumentedOutputs: what the docs show a command print is what it
// prints. A block marked output=ARG:ARG:... holds the exact stdout of
// `canary ARG ARG ...` run from the repository's root (a line "..." stands
// for any lines), and exit=N the exit code it documents (0 by default).
func TestDocumentedOutputs(t *testing.T) {
	n := 0
	for _, md := range docFiles(t) {
		for _, f := range fences(t, md) {
			spec := infoValue(f.info, "output")
			if spec == "" {
				continue
			}
			n++
			args := strings.Split(spec, ":")
			t.Run(md+":"+strconv.Itoa(f.line), func(t *testing.T) {
				want := 0
				if e := infoValue(f.info, "exit"); e != "" {
					var err error
					want, err = strconv.Atoi(e)
					require.NoError(t, err)
				}
				stdout, stderr, code := runFromRoot(t, args...)
				require.Equal(t, want, code, "canary %s\n%s", strings.Join(args, " "), stderr)
				require.NoError(t, matchElided(f.text, stdout),
					"%s:%d: the block is not what canary %s prints:\n%s", md, f.line, strings.Join(args, " "), stdout)
			})
		}
	}
	require.GreaterOrEqual(t, n, 2, "the README shows an eval and a backtest")
}

// matchElided matches got against want line by line, where a line "..."
// of want matches any number of lines of got.
func matchElided(want, got string) error {
	w := strings.Split(strings.TrimSuffix(want, "\n"), "\n")
	g := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	var match func(i, j int) bool
	match = func(i, j int) bool {
		if i == len(w) {
			return j == len(g)
		}
		if w[i] == "..." {
			for k := j; k <= len(g); k++ {
				if match(i+1, k) {
					return true
				}
			}
			return false
		}
		return j < len(g) && w[i] == g[j] && match(i+1, j+1)
	}
	if !match(0, 0) {
		return errors.New("the lines differ")
	}
	return nil
}
