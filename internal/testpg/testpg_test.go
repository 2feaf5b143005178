package testpg

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// queryFloat runs a query with plain pgx, so that this package's tests do
// not depend on the source they help to test.
func queryFloat(t *testing.T, dsn, sql string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var v float64
	require.NoError(t, conn.QueryRow(ctx, sql).Scan(&v))
	return v
}

func connect(dsn string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

func TestServer(t *testing.T) {
	t.Parallel()
	s := Start(t)
	require.Regexp(t, `^postgres://postgres@127\.0\.0\.1:\d+/postgres\?sslmode=disable$`, s.DSN())
	s.Exec(t, "create table t (v numeric); insert into t values (1.5), (2)")
	s.Exec(t, "insert into t values ($1)", 3)

	tests := []struct {
		name string
		sql  string
		want float64
	}{
		{name: "data written by Exec", sql: "select sum(v) from t", want: 6.5},
		{name: "fsync is off", sql: "select (current_setting('fsync') = 'off')::int", want: 1},
		{name: "listens on loopback", sql: "select (inet_server_addr() = '127.0.0.1')::int", want: 1},
		{name: "UTF8", sql: "select (current_setting('server_encoding') = 'UTF8')::int", want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, queryFloat(t, s.DSN(), tt.sql))
		})
	}

	t.Run("not as root", func(t *testing.T) {
		// As root the server runs as the postgres system user; otherwise
		// as the user running the tests.
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
		require.NoError(t, err)
		var uid string
		for line := range strings.Lines(string(status)) {
			if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
				uid = strings.Fields(rest)[0]
			}
		}
		require.NotEmpty(t, uid)
		require.NotEqual(t, "0", uid)
	})

	t.Run("Exec fails the test", func(t *testing.T) {
		msg := fatal(t, func(tb testing.TB) { s.Exec(tb, "selec 1") })
		require.Contains(t, msg, `exec "selec 1": ERROR: syntax error at or near "selec" (SQLSTATE 42601)`)
	})
}

func TestPasswordAuthentication(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Exec(t, "create role canary login password 's3cret'")

	tests := []struct {
		name     string
		dsn      string
		wantErr  string
		wantUser string
	}{
		{name: "superuser needs none", dsn: s.DSN()},
		{name: "right password", dsn: s.DSNAs("canary", "s3cret")},
		{name: "wrong password", dsn: s.DSNAs("canary", "wrong"), wantErr: `password authentication failed for user "canary"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := connect(tt.dsn)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
		})
	}
}

func TestStop(t *testing.T) {
	t.Parallel()
	s := Start(t)
	require.NoError(t, connect(s.DSN()))

	start := time.Now()
	s.Stop()
	s.Stop() // a second Stop, and the one in Cleanup, do nothing
	require.Less(t, time.Since(start), stopTimeout, "fast shutdown, not the kill after the timeout")
	require.ErrorContains(t, connect(s.DSN()), "connection refused")
	require.Contains(t, s.Output(), "shutting down")
}

// A long TMPDIR makes a temporary directory too long for a Unix socket
// path; Start must then put the cluster elsewhere.
func TestLongTempDir(t *testing.T) {
	// t.Setenv rules out t.Parallel.
	long := filepath.Join(os.TempDir(), "testpg-"+strings.Repeat("x", 100))
	require.NoError(t, os.Mkdir(long, 0o700))
	t.Cleanup(func() { require.NoError(t, os.RemoveAll(long)) })
	t.Setenv("TMPDIR", long)
	require.Greater(t, len(t.TempDir()+"/pg/.s.PGSQL.65535"), maxSocketPath, "TMPDIR is long enough to matter")

	s := Start(t)
	require.Equal(t, float64(1), queryFloat(t, s.DSN(), "select 1"))
}

// fatalTB records the message of Fatalf and ends the goroutine, as the
// real Fatalf does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fatal runs f with a fatalTB and returns what it failed with.
func fatal(t *testing.T, f func(tb testing.TB)) string {
	t.Helper()
	ftb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(ftb)
	}()
	<-done
	return ftb.msg
}

func TestMissingBinaries(t *testing.T) {
	// t.Setenv rules out t.Parallel, but this test starts no server.
	empty := t.TempDir()
	t.Setenv("PG_BIN", empty)
	msg := fatal(t, func(tb testing.TB) { Start(tb) })
	require.Contains(t, msg, "PG_BIN="+empty+": no initdb there")
	require.Contains(t, msg, "install the Debian package `postgresql`")
}

func TestNewest(t *testing.T) {
	tests := []struct {
		name string
		dirs []string
		want string
	}{
		{name: "one", dirs: []string{"/usr/lib/postgresql/15/bin"}, want: "/usr/lib/postgresql/15/bin"},
		{
			name: "numeric, not lexical",
			dirs: []string{"/usr/lib/postgresql/9.6/bin", "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/10/bin"},
			want: "/usr/lib/postgresql/15/bin",
		},
		{
			name: "minor versions",
			dirs: []string{"/usr/lib/postgresql/9.4/bin", "/usr/lib/postgresql/9.6/bin", "/usr/lib/postgresql/9.5/bin"},
			want: "/usr/lib/postgresql/9.6/bin",
		},
		{
			name: "not a version sorts first",
			dirs: []string{"/usr/lib/postgresql/dev/bin", "/usr/lib/postgresql/13/bin"},
			want: "/usr/lib/postgresql/13/bin",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, newest(tt.dirs))
		})
	}
}
