package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/rules"
)

// TestImportExitCodes runs canary import as a user does and checks what
// goes where: policies on stdout or in --out, notes on stderr, and the exit
// codes the guides document.
func TestImportExitCodes(t *testing.T) {
	const td = "../../rules/importer/testdata/"
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string // a part of stdout
		stderr string // a part of stderr
	}{
		{"carried over with notes", []string{"argo", td + "argo/success-rate.yaml"}, exitPartial, "name: success-rate", "Not carried over:"},
		{"nothing importable", []string{"argo", td + "argo/web.yaml"}, exitError, "", "no policy could be made"},
		{"unknown tool", []string{"spinnaker", td + "argo/web.yaml"}, exitError, "", `unknown tool "spinnaker"`},
		{"missing file", []string{"argo", td + "argo/nope.yaml"}, exitError, "", "no such file"},
		{"no files", []string{"argo"}, exitError, "", "give the tool (argo, flagger or keptn) and the files to import"},
		{"flagger without a provider", []string{"flagger", td + "flagger/podinfo.yaml"}, exitError, "", "pass --mesh-provider"},
		{"flagger with one", []string{"flagger", "--mesh-provider", "nginx", td + "flagger/podinfo.yaml"}, exitPartial, "int(request_duration) <= 500", "webhooks are not carried over"},
		{"carried over whole", []string{"argo", "testdata/import-clean.yaml"}, exitOK, "result[0] <= 0.01", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(append([]string{"import"}, tc.args...), &out, &errOut)
			require.Equal(t, tc.code, code, "stderr:\n%s", errOut.String())
			require.Contains(t, out.String(), tc.stdout)
			require.Contains(t, errOut.String(), tc.stderr)
			if tc.stderr == "" {
				require.Empty(t, errOut.String())
			}
			if code != exitError {
				_, err := rules.Parse("stdout", out.Bytes())
				require.NoError(t, err, "canary check accepts what canary import prints")
			}
		})
	}
}

// TestImportOut writes files with --out, which canary check then loads, and
// does not replace a file without --force.
func TestImportOut(t *testing.T) {
	dir := t.TempDir()
	in := "../../rules/importer/testdata/argo/templates.yaml"
	var out, errOut bytes.Buffer
	require.Equal(t, exitPartial, run([]string{"import", "argo", "--out", dir, in}, &out, &errOut), errOut.String())
	require.Empty(t, out.String())
	require.Contains(t, errOut.String(), "wrote "+filepath.Join(dir, "rates.yaml"))
	_, err := rules.Load(dir)
	require.NoError(t, err)

	out.Reset()
	errOut.Reset()
	require.Equal(t, exitOK, run([]string{"check", dir}, &out, &errOut), errOut.String())
	require.Contains(t, out.String(), "SUCCESS: 2 policies")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "rates.yaml"), []byte("# edited by hand\n"), 0o644))
	errOut.Reset()
	require.Equal(t, exitError, run([]string{"import", "argo", "--out", dir, in}, &out, &errOut))
	require.Contains(t, errOut.String(), "use --force")
	data, _ := os.ReadFile(filepath.Join(dir, "rates.yaml"))
	require.True(t, strings.HasPrefix(string(data), "# edited by hand"))
	require.Equal(t, exitPartial, run([]string{"import", "argo", "--out", dir, "--force", in}, &out, &errOut))
}
