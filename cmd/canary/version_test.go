package main

import (
	"encoding/json"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestVersion(t *testing.T) {
	t.Run("table", func(t *testing.T) {
		code, stdout, stderr := canary(t, "version")
		require.Equal(t, exitOK, code, stderr)
		for _, field := range []string{"version:", "commit:", "built:", "go:       " + runtime.Version(), "platform: " + runtime.GOOS + "/" + runtime.GOARCH} {
			require.Contains(t, stdout, field)
		}
	})
	t.Run("json", func(t *testing.T) {
		code, stdout, stderr := canary(t, "version", "-o", "json")
		require.Equal(t, exitOK, code, stderr)
		var b buildInfo
		require.NoError(t, json.Unmarshal([]byte(stdout), &b), stdout)
		require.Equal(t, readBuildInfo(), b)
		require.Equal(t, runtime.Version(), b.GoVersion)
		require.NotEmpty(t, b.Version)
	})
	t.Run("stamped", func(t *testing.T) {
		defer func(v, d string) { version, buildDate = v, d }(version, buildDate)
		version, buildDate = "v0.2.0", "2026-12-05T10:00:00Z"
		b := readBuildInfo()
		require.Equal(t, "v0.2.0", b.Version, "the stamped version wins over the module's")
		require.Equal(t, "2026-12-05T10:00:00Z", b.BuildDate, "the stamped date wins over the commit's")
		require.Equal(t, "v0.2.0", buildVersion())
	})
	t.Run("yaml", func(t *testing.T) {
		code, stdout, stderr := canary(t, "version", "-o", "yaml")
		require.Equal(t, exitOK, code, stderr)
		require.Contains(t, stdout, "goVersion: "+runtime.Version())
	})
	t.Run("bad output", func(t *testing.T) {
		code, _, stderr := canary(t, "version", "-o", "xml")
		require.Equal(t, exitError, code)
		require.Equal(t, "canary: version: -o must be table, json or yaml, not \"xml\"\nRun 'canary version --help' for usage.\n", stderr)
	})
}
