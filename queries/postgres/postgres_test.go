package postgres_test

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/internal/testpg"
	"github.com/aurum/canary/internal/testproc"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/queries/postgres"
)

// secret is the password of the canary role. Tests check that it never
// shows up in an error, a warning or a log line.
const secret = "hunter2-Sup3r-S3cret"

// seed starts a server holding a table canary with one row (v = 7) and a
// sequence, and a login role canary whose password is secret.
func seed(t *testing.T) *testpg.Server {
	t.Helper()
	srv := testpg.Start(t)
	srv.Exec(t, `
		create table canary (v integer);
		insert into canary values (7);
		create sequence seq;
		create role canary login password '`+secret+`';
		grant select on canary to canary;
		grant usage on sequence seq to canary;
	`)
	return srv
}

func newSource(t *testing.T, cfg postgres.Config) *postgres.Source {
	t.Helper()
	s, err := postgres.New(cfg, nil)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func query(t *testing.T, s *postgres.Source, text string, fields map[string]string) (queries.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.Query(ctx, queries.Query{Text: text, Fields: fields})
}

// requireUp checks a successful probe and returns its value.
func requireUp(t *testing.T, res queries.Result) float64 {
	t.Helper()
	require.Empty(t, res.Warnings)
	require.Len(t, res.Values, 3)
	require.Equal(t, 1.0, res.Values["up"])
	require.False(t, math.IsNaN(res.Values["latency_ms"]))
	require.Greater(t, res.Values["latency_ms"], 0.0)
	require.Less(t, res.Values["latency_ms"], 5000.0)
	return res.Values["value"]
}

// requireDown checks a probe that found the server unavailable and returns
// its warning.
func requireDown(t *testing.T, res queries.Result) string {
	t.Helper()
	require.Equal(t, 0.0, res.Values["up"])
	require.True(t, math.IsNaN(res.Values["value"]), "value %v", res.Values["value"])
	require.True(t, math.IsNaN(res.Values["latency_ms"]), "latency_ms %v", res.Values["latency_ms"])
	require.Len(t, res.Warnings, 1)
	return res.Warnings[0]
}

// TestSource runs the tests that can share a server, one after the other:
// some of them look at the server's sessions.
func TestSource(t *testing.T) {
	t.Parallel()
	srv := seed(t)
	for _, tt := range []struct {
		name string
		test func(*testing.T, *testpg.Server)
	}{
		{name: "query", test: testQuery},
		{name: "bad query", test: testBadQuery},
		{name: "unavailable", test: testUnavailable},
		{name: "timeout", test: testTimeout},
		{name: "caller context", test: testCallerContext},
		{name: "dsn file", test: testDSNFile},
		{name: "pool", test: testPool},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.test(t, srv) })
	}
}

func testQuery(t *testing.T, srv *testpg.Server) {
	tests := []struct {
		name   string
		dsn    string // default srv.DSN()
		text   string
		fields map[string]string
		want   float64
	}{
		{name: "constant", text: "select 42", want: 42},
		{name: "from a table", text: "select v from canary", want: 7},
		{name: "aggregate", text: "select count(*) from canary", want: 1},
		{name: "as a role with a password", dsn: srv.DSNAs("canary", secret), text: "select v * 2 from canary", want: 14},
		{name: "replica check", text: "select pg_is_in_recovery()::int", want: 0},
		{name: "NULL is NaN", text: "select null::integer", want: math.NaN()},
		{name: "NULL numeric is NaN", text: "select max(v)::numeric from canary where false", want: math.NaN()},
		{name: "smallint", text: "select (-3)::smallint", want: -3},
		{name: "integer", text: "select 2147483647::integer", want: 2147483647},
		{name: "bigint", text: "select 9007199254740992::bigint", want: 9007199254740992},
		{name: "real", text: "select 1.5::real", want: 1.5},
		{name: "double precision", text: "select 0.1::double precision", want: 0.1},
		{name: "numeric", text: "select 12.345::numeric", want: 12.345},
		{name: "decimal", text: "select 99.5::decimal(5, 2)", want: 99.5},
		{name: "numeric from arithmetic", text: "select 1.0 / 8", want: 0.125},
		{name: "large numeric", text: "select 1e30::numeric", want: 1e30},
		{name: "numeric NaN", text: "select 'NaN'::numeric", want: math.NaN()},
		{name: "infinity", text: "select 'Infinity'::float8", want: math.Inf(1)},
		{name: "trailing semicolon", text: "select 1;", want: 1},
		{name: "timeout field", text: "select 5", fields: map[string]string{"timeout": "2s"}, want: 5},
		{
			name:   "statement timeout on the server",
			text:   "select extract(epoch from current_setting('statement_timeout')::interval) * 1000",
			fields: map[string]string{"timeout": "1500ms"},
			want:   1500,
		},
		{name: "read-only transaction", text: "select (current_setting('transaction_read_only') = 'on')::int", want: 1},
		{name: "application name", text: "select (current_setting('application_name') = 'aurum-canary')::int", want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dsn := tt.dsn
			if dsn == "" {
				dsn = srv.DSN()
			}
			s := newSource(t, postgres.Config{DSN: dsn})
			res, err := query(t, s, tt.text, tt.fields)
			require.NoError(t, err)
			got := requireUp(t, res)
			if math.IsNaN(tt.want) {
				require.True(t, math.IsNaN(got), "got %v, want NaN", got)
				return
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func testBadQuery(t *testing.T, srv *testpg.Server) {
	// The superuser: even it cannot write through a probe.
	s := newSource(t, postgres.Config{DSN: srv.DSN()})
	tests := []struct {
		name    string
		q       queries.Query
		wantErr string
	}{
		{
			name:    "syntax",
			q:       queries.Query{Text: "selec 1"},
			wantErr: `postgres rejected the query: ERROR: syntax error at or near "selec" (SQLSTATE 42601)`,
		},
		{
			name:    "unknown table",
			q:       queries.Query{Text: "select v from nope"},
			wantErr: `ERROR: relation "nope" does not exist (SQLSTATE 42P01)`,
		},
		{
			name:    "division by zero",
			q:       queries.Query{Text: "select 1 / 0"},
			wantErr: "ERROR: division by zero (SQLSTATE 22012)",
		},
		{
			// PostgreSQL names the outer statement.
			name:    "insert in a CTE",
			q:       queries.Query{Text: "with w as (insert into canary values (1) returning v) select v from w"},
			wantErr: "ERROR: cannot execute SELECT in a read-only transaction (SQLSTATE 25006) (queries run in a read-only transaction: they may only read)",
		},
		{
			name:    "create table",
			q:       queries.Query{Text: "create table evil (x int)"},
			wantErr: "ERROR: cannot execute CREATE TABLE in a read-only transaction (SQLSTATE 25006)",
		},
		{
			name:    "delete",
			q:       queries.Query{Text: "delete from canary"},
			wantErr: "ERROR: cannot execute DELETE in a read-only transaction (SQLSTATE 25006)",
		},
		{
			name:    "select for update",
			q:       queries.Query{Text: "select v from canary for update"},
			wantErr: "ERROR: cannot execute SELECT FOR UPDATE in a read-only transaction (SQLSTATE 25006)",
		},
		{
			name:    "nextval",
			q:       queries.Query{Text: "select nextval('seq')"},
			wantErr: "ERROR: cannot execute nextval() in a read-only transaction (SQLSTATE 25006)",
		},
		{
			name:    "turning read-only off",
			q:       queries.Query{Text: "select set_config('transaction_read_only', 'off', true)"},
			wantErr: "ERROR: transaction read-write mode must be set before any query (SQLSTATE 25001)",
		},
		{
			name:    "a second statement",
			q:       queries.Query{Text: "select 1; delete from canary"},
			wantErr: "ERROR: cannot insert multiple commands into a prepared statement (SQLSTATE 42601)",
		},
		{
			name:    "more than one row",
			q:       queries.Query{Text: "select generate_series(1, 3)"},
			wantErr: "postgres query must return one row with one numeric column, but it returned more than one row",
		},
		{
			name:    "no rows",
			q:       queries.Query{Text: "select v from canary where v < 0"},
			wantErr: "but it returned no rows",
		},
		{
			name:    "two columns",
			q:       queries.Query{Text: "select 1, 2"},
			wantErr: "but it returned 2 columns",
		},
		{
			name:    "text column",
			q:       queries.Query{Text: "select 'x' as name"},
			wantErr: `but its column "name" is of type text; cast it, e.g. with ::numeric`,
		},
		{
			name:    "boolean column",
			q:       queries.Query{Text: "select true as ok"},
			wantErr: `its column "ok" is of type bool`,
		},
		{
			name:    "interval column",
			q:       queries.Query{Text: "select now() - now()"},
			wantErr: "is of type interval",
		},
		{
			name:    "not a query",
			q:       queries.Query{Text: "set work_mem = '8MB'"},
			wantErr: "but it returned no result: it is not a query",
		},
		{
			name:    "empty",
			q:       queries.Query{Text: " \n"},
			wantErr: "empty postgres query",
		},
		{
			name:    "unknown field",
			q:       queries.Query{Text: "select 1", Fields: map[string]string{"topic": "x"}},
			wantErr: `unknown postgres query field "topic" (allowed: timeout)`,
		},
		{
			name:    "bad timeout",
			q:       queries.Query{Text: "select 1", Fields: map[string]string{"timeout": "soon"}},
			wantErr: `postgres query field timeout: "soon" is not a positive duration such as 500ms`,
		},
		{
			name:    "zero timeout",
			q:       queries.Query{Text: "select 1", Fields: map[string]string{"timeout": "0s"}},
			wantErr: `"0s" is not a positive duration`,
		},
		{
			name:    "range",
			q:       queries.Query{Text: "select 1", Range: time.Hour, Step: time.Minute},
			wantErr: "postgres queries return one value, not a range",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := s.Query(ctx, tt.q)
			require.ErrorIs(t, err, queries.ErrBadQuery)
			require.Equal(t, "bad_query", queries.Classify(err))
			require.ErrorContains(t, err, tt.wantErr)
			require.Zero(t, res)
		})
	}

	t.Run("nothing was written", func(t *testing.T) {
		res, err := query(t, s, "select count(*) * 100 + (select count(*) from pg_class where relname = 'evil') from canary", nil)
		require.NoError(t, err)
		require.Equal(t, 100.0, requireUp(t, res))
		res, err = query(t, s, "select last_value from seq", nil)
		require.NoError(t, err)
		require.Equal(t, 1.0, requireUp(t, res), "nextval never ran")
	})

	t.Run("still usable", func(t *testing.T) {
		res, err := query(t, s, "select 1", nil)
		require.NoError(t, err)
		require.Equal(t, 1.0, requireUp(t, res))
	})
}

func TestServerStopped(t *testing.T) {
	t.Parallel()
	srv := seed(t)
	s := newSource(t, postgres.Config{DSN: srv.DSNAs("canary", secret)})
	res, err := query(t, s, "select v from canary", nil)
	require.NoError(t, err)
	require.Equal(t, 7.0, requireUp(t, res))

	srv.Stop()
	// The first query after the stop finds the pooled connection closed
	// by the shutdown, retries on a new one, and finds nobody there.
	for _, name := range []string{"pooled connection", "new connection"} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			res, err := query(t, s, "select v from canary", nil)
			require.NoError(t, err, "a server that is down is a measurement")
			warning := requireDown(t, res)
			require.Contains(t, warning, "cannot connect to postgres: 127.0.0.1:")
			require.Contains(t, warning, "connection refused")
			require.NotContains(t, warning, secret)
			require.NotContains(t, warning, srv.DSNAs("canary", secret))
			require.Less(t, time.Since(start), time.Second)
		})
	}
}

func testUnavailable(t *testing.T, srv *testpg.Server) {
	tests := []struct {
		name        string
		dsn         string
		wantWarning string
	}{
		{
			name:        "wrong password",
			dsn:         srv.DSNAs("canary", secret+"-wrong"),
			wantWarning: `FATAL: password authentication failed for user "canary" (SQLSTATE 28P01)`,
		},
		{
			name:        "unknown role",
			dsn:         srv.DSNAs("nobody", secret),
			wantWarning: `password authentication failed for user "nobody"`,
		},
		{
			name:        "unknown database",
			dsn:         strings.Replace(srv.DSN(), "/postgres?", "/nodb?", 1),
			wantWarning: `FATAL: database "nodb" does not exist (SQLSTATE 3D000)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSource(t, postgres.Config{DSN: tt.dsn})
			res, err := query(t, s, "select 1", nil)
			require.NoError(t, err)
			warning := requireDown(t, res)
			require.Contains(t, warning, "cannot connect to postgres: 127.0.0.1:")
			require.Contains(t, warning, tt.wantWarning)
			require.NotContains(t, warning, tt.dsn)
			require.NotContains(t, warning, secret)
		})
	}
}

func testTimeout(t *testing.T, srv *testpg.Server) {
	tests := []struct {
		name   string
		cfg    postgres.Config
		fields map[string]string
	}{
		{name: "config", cfg: postgres.Config{DSN: srv.DSN(), Timeout: 2 * time.Second}},
		{name: "field", cfg: postgres.Config{DSN: srv.DSN()}, fields: map[string]string{"timeout": "2s"}},
	}
	// 2 s, not less: on a loaded machine connecting and beginning the
	// transaction alone can take a few hundred milliseconds, and the
	// timeout must land in the query for the message to say so.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSource(t, tt.cfg)
			start := time.Now()
			res, err := query(t, s, "select pg_sleep(60)", tt.fields)
			require.NoError(t, err, "a slow server is a measurement")
			require.Less(t, time.Since(start), 30*time.Second, "the timeout cut the minute-long query")
			warning := requireDown(t, res)
			require.Equal(t, "postgres query timed out while running the query: per-query timeout of 2s reached", warning)

			// The statement timeout stopped the query on the server too.
			require.Eventually(t, func() bool {
				return count(t, srv, "select count(*) from pg_stat_activity where query = 'select pg_sleep(60)'") == 0
			}, 10*time.Second, 20*time.Millisecond)

			res, err = query(t, s, "select 1", tt.fields)
			require.NoError(t, err)
			require.Equal(t, 1.0, requireUp(t, res), "the source recovers")
		})
	}
}

func testCallerContext(t *testing.T, srv *testpg.Server) {
	s := newSource(t, postgres.Config{DSN: srv.DSN()})
	tests := []struct {
		name      string
		ctx       func() (context.Context, context.CancelFunc)
		wantIs    error
		wantClass string
	}{
		{
			name: "deadline",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 200*time.Millisecond)
			},
			wantIs:    context.DeadlineExceeded,
			wantClass: "timeout",
		},
		{
			name: "canceled",
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(200*time.Millisecond, cancel)
				return ctx, cancel
			},
			wantIs:    context.Canceled,
			wantClass: "canceled",
		},
		{
			name: "canceled before",
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			wantIs:    context.Canceled,
			wantClass: "canceled",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			start := time.Now()
			_, err := s.Query(ctx, queries.Query{Text: "select pg_sleep(10)"})
			require.ErrorIs(t, err, tt.wantIs)
			require.Equal(t, tt.wantClass, queries.Classify(err))
			require.ErrorContains(t, err, "postgres query abandoned: ")
			require.Less(t, time.Since(start), time.Second)

			// The server stopped the query too, long before the statement
			// timeout of 5s.
			require.Eventually(t, func() bool {
				return count(t, srv, "select count(*) from pg_stat_activity where query = 'select pg_sleep(10)'") == 0
			}, time.Second, 10*time.Millisecond)
		})
	}
}

// TestSecretNeverShown runs every kind of failure with a DSN that holds a
// password and checks that neither the DSN nor the password appears in an
// error, a warning or a log line.
func TestSecretNeverShown(t *testing.T) {
	t.Parallel()
	srv := seed(t)
	var logs testproc.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dsn := srv.DSNAs("canary", secret)
	wrong := srv.DSNAs("canary", secret+"x")

	var shown []string
	probe := func(dsn, text string, fields map[string]string) {
		s, err := postgres.New(postgres.Config{DSN: dsn}, logger)
		require.NoError(t, err)
		defer s.Close()
		res, err := query(t, s, text, fields)
		if err != nil {
			shown = append(shown, err.Error())
		}
		shown = append(shown, res.Warnings...)
	}
	probe(dsn, "selec 1", nil)
	probe(dsn, "select 1, 2", nil)
	probe(dsn, "select * from pg_authid", nil) // permission denied
	probe(dsn, "select pg_sleep(1)", map[string]string{"timeout": "50ms"})
	probe(wrong, "select 1", nil)
	probe(strings.Replace(dsn, "/postgres?", "/nodb?", 1), "select 1", nil)
	for _, bad := range []string{
		strings.Replace(dsn, "127.0.0.1:", "127.0.0.1:x", 1),                 // bad port
		strings.Replace(dsn, secret, secret+"%zz", 1),                        // bad escape in the password
		"host=127.0.0.1 password=" + secret + " port=notaport",               // keyword/value
		"host=127.0.0.1 password='" + secret + " sslmode=disable",            // unterminated quote
		"postgres://canary:" + secret + "@127.0.0.1/db?sslmode=" + secret,    // invalid sslmode
		"postgres://canary:" + secret + "@127.0.0.1/db?connect_timeout=soon", // invalid setting
	} {
		_, err := postgres.New(postgres.Config{DSN: bad}, logger)
		require.ErrorContains(t, err, "invalid postgres dsn: ")
		require.NotContains(t, err.Error(), bad)
		shown = append(shown, err.Error())
	}

	srv.Stop()
	probe(dsn, "select 1", nil)

	require.Len(t, shown, 13)
	require.NotEmpty(t, logs.String())
	shown = append(shown, logs.String())
	for _, msg := range shown {
		require.NotContains(t, msg, secret)
		require.NotContains(t, msg, dsn)
	}
}

func testDSNFile(t *testing.T, srv *testpg.Server) {
	dir := t.TempDir()
	file := filepath.Join(dir, "dsn")
	// A trailing newline, as editors and `echo` write.
	require.NoError(t, os.WriteFile(file, []byte(srv.DSNAs("canary", secret)+"\n"), 0o600))
	s := newSource(t, postgres.Config{DSNFile: file})
	res, err := query(t, s, "select v from canary", nil)
	require.NoError(t, err)
	require.Equal(t, 7.0, requireUp(t, res))
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	tests := []struct {
		name    string
		cfg     postgres.Config
		wantErr string
	}{
		{name: "no dsn", cfg: postgres.Config{}, wantErr: "postgres dsn is empty: set dsn or dsnFile"},
		{
			name:    "both",
			cfg:     postgres.Config{DSN: "postgres://localhost/db", DSNFile: empty},
			wantErr: "postgres dsn and dsnFile are both set: set one",
		},
		{
			name:    "missing file",
			cfg:     postgres.Config{DSNFile: filepath.Join(dir, "missing")},
			wantErr: "postgres dsnFile: open " + filepath.Join(dir, "missing") + ": no such file or directory",
		},
		{name: "empty file", cfg: postgres.Config{DSNFile: empty}, wantErr: "postgres dsnFile " + empty + " is empty"},
		{
			name:    "negative timeout",
			cfg:     postgres.Config{DSN: "postgres://localhost/db", Timeout: -time.Second},
			wantErr: "postgres timeout -1s is negative",
		},
		{
			name:    "negative max conns",
			cfg:     postgres.Config{DSN: "postgres://localhost/db", MaxConns: -1},
			wantErr: "postgres maxConns -1 is negative",
		},
		{
			name:    "bad port",
			cfg:     postgres.Config{DSN: "postgres://u:pw@localhost:x/db"},
			wantErr: "invalid postgres dsn: invalid port",
		},
		{
			name:    "bad setting",
			cfg:     postgres.Config{DSN: "postgres://u:pw@localhost/db?connect_timeout=soon"},
			wantErr: "invalid postgres dsn: invalid connect_timeout",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := postgres.New(tt.cfg, nil)
			require.EqualError(t, err, tt.wantErr)
			require.Nil(t, s)
		})
	}
}

// TestNoConnectAtNew checks that a server that is down at start-up is no
// error: the first query reports it.
func TestNoConnectAtNew(t *testing.T) {
	s := newSource(t, postgres.Config{DSN: "postgres://canary@127.0.0.1:1/db?sslmode=disable"})
	res, err := query(t, s, "select 1", nil)
	require.NoError(t, err)
	require.Contains(t, requireDown(t, res), "connection refused")
}

func testPool(t *testing.T, srv *testpg.Server) {
	// An application name of its own, to count its sessions alone.
	s := newSource(t, postgres.Config{DSN: srv.DSNAs("canary", secret) + "&application_name=pool", MaxConns: 2})
	active := "select count(*) from pg_stat_activity where application_name = 'pool'"

	t.Run("concurrent queries share the connections", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for range 20 {
			wg.Go(func() {
				res, err := s.Query(context.Background(), queries.Query{Text: "select v from canary, pg_sleep(0.02)"})
				switch {
				case err != nil:
					errs <- err
				case res.Values["up"] != 1 || res.Values["value"] != 7:
					errs <- errors.New("bad result")
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.Equal(t, 2.0, count(t, srv, active))
	})

	t.Run("a connection the server closed is replaced", func(t *testing.T) {
		srv.Exec(t, "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'pool'")
		require.Eventually(t, func() bool { return count(t, srv, active) == 0 }, 2*time.Second, 10*time.Millisecond)
		for range 3 {
			res, err := query(t, s, "select v from canary", nil)
			require.NoError(t, err)
			require.Equal(t, 7.0, requireUp(t, res), "a healthy server is not reported down")
		}
	})

	t.Run("waiting for a free connection", func(t *testing.T) {
		one := newSource(t, postgres.Config{DSN: srv.DSN(), MaxConns: 1})
		done := make(chan error)
		go func() {
			_, err := one.Query(context.Background(), queries.Query{Text: "select 1 from pg_sleep(0.5)"})
			done <- err
		}()
		require.Eventually(t, func() bool {
			return count(t, srv, "select count(*) from pg_stat_activity where query = 'select 1 from pg_sleep(0.5)'") == 1
		}, 2*time.Second, 10*time.Millisecond)
		res, err := query(t, one, "select 1", map[string]string{"timeout": "100ms"})
		require.NoError(t, err)
		require.Equal(t, "postgres query timed out while waiting for a free connection: per-query timeout of 100ms reached", requireDown(t, res))
		require.NoError(t, <-done)
	})

	t.Run("closed", func(t *testing.T) {
		s.Close()
		require.Eventually(t, func() bool { return count(t, srv, active) == 0 }, 2*time.Second, 10*time.Millisecond)
		_, err := query(t, s, "select 1", nil)
		require.ErrorIs(t, err, queries.ErrUnavailable)
		require.EqualError(t, err, "postgres source is closed")
	})
}

// count runs a query returning a number as the superuser, with plain pgx.
func count(t *testing.T, srv *testpg.Server, sql string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, srv.DSN())
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n float64
	require.NoError(t, conn.QueryRow(ctx, sql).Scan(&n))
	return n
}
