package charts_test

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// buildCommand is what the Dockerfile's build stage must run, word for word.
const buildCommand = `CGO_ENABLED=0 go build -tags nomsgpack -trimpath -gcflags all=-dwarf=false -ldflags "-s -w -X main.version=${VERSION} -X main.buildDate=${BUILD_DATE}" -o /out/canary ./cmd/canary`

// buildDateArg is the BUILD_DATE build arg the tests pass.
const buildDateArg = "2026-12-01T10:00:00Z"

// maxBinaryBytes is the size the README promises for the stripped binary
// (issue 17: it was 100 MB while Prometheus's TSDB and client-go's
// clientsets came along). A dependency that pushes past it should be a
// decision, not a surprise.
const maxBinaryBytes = 50_000_000

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, COPY, ...
	args string
	line int
}

// stage is one FROM and the instructions under it.
type stage struct {
	from, name string
	body       []instruction
}

// parseDockerfile reads the instructions of a Dockerfile into stages. It
// understands what our Dockerfile uses: comments, backslash continuations
// and FROM ... AS name; a parser directive or heredoc would fail a check
// below rather than be misread.
func parseDockerfile(t testing.TB, path string) []stage {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var (
		stages []stage
		cur    strings.Builder
		start  int
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(line, "#") {
			continue // a comment inside a continued instruction
		}
		if cur.Len() == 0 {
			start = n
		}
		if body, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(strings.TrimSpace(body) + " ")
			continue
		}
		cur.WriteString(line)
		word, args, _ := strings.Cut(cur.String(), " ")
		in := instruction{cmd: strings.ToUpper(word), args: strings.TrimSpace(args), line: start}
		cur.Reset()
		if in.cmd == "FROM" {
			fields := strings.Fields(in.args)
			st := stage{from: fields[0]}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				st.name = fields[2]
			}
			stages = append(stages, st)
			continue
		}
		require.NotEmpty(t, stages, "%s:%d: %s before FROM", path, start, in.cmd)
		stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
	}
	require.NoError(t, sc.Err())
	require.Zero(t, cur.Len(), "%s: ends in a continuation", path)
	return stages
}

// find returns the stage's instructions of one kind.
func (s stage) find(cmd string) []instruction {
	var out []instruction
	for _, in := range s.body {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// buildRun returns the build stage's RUN that builds canary, without any
// RUN flags (--mount=...), which are BuildKit's and not the command's.
func buildRun(t testing.TB, build stage) string {
	t.Helper()
	var runs []string
	for _, in := range build.find("RUN") {
		args := in.args
		for strings.HasPrefix(args, "--") {
			_, args, _ = strings.Cut(args, " ")
			args = strings.TrimSpace(args)
		}
		if strings.Contains(args, "go build") {
			runs = append(runs, args)
		}
	}
	require.Len(t, runs, 1, "the build stage must have exactly one RUN with go build")
	return runs[0]
}

func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	stages := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
	require.Len(t, stages, 2, "a build stage and the final image")
	build, final := stages[0], stages[1]

	t.Run("build stage", func(t *testing.T) {
		require.Equal(t, "golang:1.26", build.from)
		require.Equal(t, "build", build.name)
		require.Equal(t, buildCommand, buildRun(t, build))
		// `make build` and the image build the same binary: same tags.
		makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
		require.NoError(t, err)
		tags := regexp.MustCompile(`(?m)^TAGS\s*:?=\s*(\S+)`).FindSubmatch(makefile)
		require.NotNil(t, tags, "the Makefile sets no TAGS")
		require.Contains(t, buildCommand, " -tags "+string(tags[1])+" ", "the Dockerfile builds with the Makefile's tags")

		// The toolchain of the image must be new enough for go.mod: a
		// go line of 1.26.x needs the 1.26 image, which has the newest
		// patch release.
		gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
		require.NoError(t, err)
		m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
		require.NotNil(t, m, "go.mod has no go line")
		require.Equal(t, "golang:"+string(m[1]), build.from, "the build image's Go must match go.mod's go line")

		// Module download is its own layer, before the sources.
		var order []string
		for _, in := range build.body {
			order = append(order, in.cmd+" "+in.args)
		}
		require.Subset(t, order, []string{"COPY go.mod go.sum ./", "RUN go mod download", "COPY . ."})
		require.Less(t, indexOf(order, "RUN go mod download"), indexOf(order, "COPY . ."))
		require.Contains(t, order, "ARG VERSION=dev")
		require.Contains(t, order, `ARG BUILD_DATE=""`)
	})

	t.Run("final image", func(t *testing.T) {
		require.Equal(t, "gcr.io/distroless/static-debian12:nonroot", final.from)
		users := final.find("USER")
		require.Len(t, users, 1)
		// distroless's nonroot, by number, so that Kubernetes can verify
		// runAsNonRoot; the chart's podSecurityContext uses the same ids.
		require.Equal(t, "65532:65532", users[0].args)
		require.Equal(t, []instruction{{cmd: "ENTRYPOINT", args: `["/canary"]`}}, stripLines(final.find("ENTRYPOINT")))
		require.Equal(t, []instruction{{cmd: "CMD", args: `["serve", "--config", "/etc/canary/canary.yml"]`}}, stripLines(final.find("CMD")))
		require.Equal(t, []instruction{{cmd: "EXPOSE", args: "8080"}}, stripLines(final.find("EXPOSE")))
		require.Empty(t, final.find("RUN"), "the final image has no shell to run anything with")

		var copies []string
		for _, in := range final.find("COPY") {
			copies = append(copies, in.args)
		}
		require.Contains(t, copies, "--from=build /out/canary /canary")
		require.Contains(t, copies, "--from=build --chown=65532:65532 --chmod=0700 /out/data /var/lib/canary")

		labels := strings.Join(argsOf(final.find("LABEL")), " ")
		for _, key := range []string{"title", "description", "source", "version", "revision"} {
			require.Contains(t, labels, "org.opencontainers.image."+key+"=", "label %s", key)
		}
	})

	t.Run("binary", func(t *testing.T) {
		bin := canary(t)
		f, err := elf.Open(bin)
		require.NoError(t, err)
		defer f.Close()
		for _, p := range f.Progs {
			require.NotEqual(t, elf.PT_INTERP, p.Type, "a static binary has no program interpreter")
			require.NotEqual(t, elf.PT_DYNAMIC, p.Type, "a static binary has no dynamic segment")
		}
		require.Nil(t, f.Section(".dynamic"), "a static binary has no .dynamic section")
		libs, err := f.ImportedLibraries()
		require.NoError(t, err)
		require.Empty(t, libs)
		// -s -w: no symbol table, no DWARF.
		require.Nil(t, f.Section(".symtab"), "-s strips the symbol table")
		for _, s := range f.Sections {
			require.False(t, strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_"),
				"-w strips DWARF, found %s", s.Name)
		}
		info, err := os.Stat(bin)
		require.NoError(t, err)
		require.LessOrEqual(t, info.Size(), int64(maxBinaryBytes),
			"the stripped binary is %.1f MB; the README promises at most %d MB", float64(info.Size())/1e6, maxBinaryBytes/1_000_000)
		t.Logf("the stripped binary is %.1f MB", float64(info.Size())/1e6)

		// -trimpath: no path of the build machine in the binary.
		data, err := os.ReadFile(bin)
		require.NoError(t, err)
		require.NotContains(t, string(data), root, "-trimpath keeps the source directory out")

		out, err := exec.Command(bin, "version", "-o", "json").Output()
		require.NoError(t, err, "%s", out)
		var v struct{ Version, BuildDate string }
		require.NoError(t, json.Unmarshal(out, &v), "%s", out)
		require.Equal(t, "v0.0.0-charts-test", v.Version, "VERSION is stamped into main.version")
		require.Equal(t, buildDateArg, v.BuildDate, "BUILD_DATE is stamped into main.buildDate")
	})
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

func stripLines(ins []instruction) []instruction {
	out := make([]instruction, len(ins))
	for i, in := range ins {
		out[i] = instruction{cmd: in.cmd, args: in.args}
	}
	return out
}

func argsOf(ins []instruction) []string {
	var out []string
	for _, in := range ins {
		out = append(out, in.args)
	}
	return out
}

// buildFromDockerfile runs the Dockerfile's build command, as the build
// stage's shell would, in a copy of the build context that .dockerignore
// leaves, with only the output path changed. VERSION is the build arg.
func buildFromDockerfile(t testing.TB, out, version string) {
	t.Helper()
	root := repoRoot(t)
	stages := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
	command := buildRun(t, stages[0])
	require.Contains(t, command, " -o /out/canary ")
	command = strings.Replace(command, " -o /out/canary ", " -o "+shellQuote(out)+" ", 1)

	ctx := filepath.Join(filepath.Dir(out), "context")
	require.NoError(t, os.RemoveAll(ctx))
	copyContext(t, root, ctx)

	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Dir = ctx
	// The image's environment: VERSION from the build arg; GOFLAGS of the
	// machine running the tests would not be in the image.
	cmd.Env = append(os.Environ(), "VERSION="+version, "BUILD_DATE="+buildDateArg, "GOFLAGS=", "GOWORK=off")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s\n%s", command, b)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// copyContext copies what `COPY . .` would see: the files of root that
// .dockerignore does not exclude.
func copyContext(t testing.TB, root, dst string) {
	t.Helper()
	patterns := readDockerignore(t, filepath.Join(root, ".dockerignore"))
	require.NoError(t, os.MkdirAll(dst, 0o755))
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == "." {
			return err
		}
		if ignored(patterns, filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			return copyFile(path, target)
		default:
			return nil // symlinks and the like: none in the module
		}
	})
	require.NoError(t, err)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// readDockerignore reads the patterns of a .dockerignore. Exceptions (!)
// are refused: the matcher below does not implement them.
func readDockerignore(t testing.TB, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var patterns []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		require.False(t, strings.HasPrefix(line, "!"), ".dockerignore: exceptions are not supported by this test: %s", line)
		patterns = append(patterns, strings.TrimPrefix(filepath.ToSlash(filepath.Clean(line)), "/"))
	}
	return patterns
}

// ignored reports whether a context path matches a pattern the way Docker
// matches it: a pattern matches a path or any directory above it; `**/`
// matches any number of leading directories; `*` stays within one.
func ignored(patterns []string, rel string) bool {
	parts := strings.Split(rel, "/")
	for _, p := range patterns {
		for i := 1; i <= len(parts); i++ {
			prefix := strings.Join(parts[:i], "/")
			if rest, ok := strings.CutPrefix(p, "**/"); ok {
				// Any leading directories, then the rest of the pattern.
				for j := 0; j < i; j++ {
					if ok, _ := filepath.Match(rest, strings.Join(parts[j:i], "/")); ok {
						return true
					}
				}
				continue
			}
			if ok, _ := filepath.Match(p, prefix); ok {
				return true
			}
		}
	}
	return false
}

func TestDockerignoreMatcher(t *testing.T) {
	patterns := []string{".git", "bin", "**/testdata", "**/*_test.go", "*.md"}
	tests := []struct {
		name string
		path string
		want bool
	}{
		{name: "top-level directory", path: ".git/config", want: true},
		{name: "directory itself", path: "bin", want: true},
		{name: "nested testdata", path: "rules/testdata/a.yaml", want: true},
		{name: "test file deep", path: "queries/kafka/kafka_test.go", want: true},
		{name: "test file at root", path: "main_test.go", want: true},
		{name: "top-level markdown", path: "README.md", want: true},
		{name: "markdown below the root is kept", path: "docs/x.md", want: false},
		{name: "source", path: "cmd/canary/main.go", want: false},
		{name: "go.mod", path: "go.mod", want: false},
		{name: "name that only starts like a pattern", path: "binary/x.go", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, ignored(patterns, tt.path))
		})
	}
}
