package postgres

import (
	"errors"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/queries"
)

// TestUnavailable covers the SQLSTATEs a test server cannot easily be
// made to send.
func TestUnavailable(t *testing.T) {
	pgErr := func(code, msg string) error {
		return &pgconn.PgError{Severity: "ERROR", Code: code, Message: msg}
	}
	tests := []struct {
		name string
		err  error
		want string // empty: a bad query
	}{
		{
			name: "connect",
			err:  &stageError{stage: stageConnect, err: errors.New("dial error: connection refused")},
			want: "cannot connect to postgres: dial error: connection refused",
		},
		{
			name: "connection lost",
			err:  &stageError{stage: stageBegin, err: io.ErrUnexpectedEOF},
			want: "postgres connection failed while starting the transaction: unexpected EOF",
		},
		{
			name: "connection exception",
			err:  &stageError{stage: stageQuery, err: pgErr("08006", "connection failure")},
			want: "postgres unavailable while running the query: ERROR: connection failure (SQLSTATE 08006)",
		},
		{
			name: "recovery conflict on a standby",
			err:  &stageError{stage: stageQuery, err: pgErr("40001", "canceling statement due to conflict with recovery")},
			want: "postgres unavailable while running the query: ERROR: canceling statement due to conflict with recovery (SQLSTATE 40001)",
		},
		{
			name: "disk full",
			err:  &stageError{stage: stageQuery, err: pgErr("53100", "could not extend file")},
			want: "postgres unavailable while running the query: ERROR: could not extend file (SQLSTATE 53100)",
		},
		{
			name: "shutting down",
			err:  &stageError{stage: stageBegin, err: pgErr("57P01", "terminating connection due to administrator command")},
			want: "postgres unavailable while starting the transaction: ERROR: terminating connection due to administrator command (SQLSTATE 57P01)",
		},
		{
			name: "I/O error",
			err:  &stageError{stage: stageQuery, err: pgErr("58030", "could not read block")},
			want: "postgres unavailable while running the query: ERROR: could not read block (SQLSTATE 58030)",
		},
		{
			name: "corruption",
			err:  &stageError{stage: stageQuery, err: pgErr("XX001", "invalid page in block")},
			want: "postgres unavailable while running the query: ERROR: invalid page in block (SQLSTATE XX001)",
		},
		{
			name: "statement timeout",
			err:  &stageError{stage: stageQuery, err: pgErr("57014", "canceling statement due to statement timeout")},
			want: "postgres query timed out: ERROR: canceling statement due to statement timeout (SQLSTATE 57014)",
		},
		{name: "syntax", err: &stageError{stage: stageQuery, err: pgErr("42601", "syntax error")}},
		{name: "read-only", err: &stageError{stage: stageQuery, err: pgErr("25006", "cannot execute INSERT")}},
		{name: "permission", err: &stageError{stage: stageQuery, err: pgErr("42501", "permission denied")}},
		{name: "data", err: &stageError{stage: stageQuery, err: pgErr("22012", "division by zero")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, down := unavailable(tt.err)
			require.Equal(t, tt.want != "", down)
			require.Equal(t, tt.want, got)
			if !down {
				require.ErrorIs(t, badQuery(tt.err), queries.ErrBadQuery)
			}
		})
	}
}

func TestBadQueryMessage(t *testing.T) {
	err := badQuery(&stageError{stage: stageQuery, err: &pgconn.PgError{
		Severity: "ERROR",
		Code:     "42883",
		Message:  "function nope(integer) does not exist",
		Hint:     "No function matches the given name and argument types.",
	}})
	require.EqualError(t, err, "postgres rejected the query: ERROR: function nope(integer) does not exist (SQLSTATE 42883); hint: No function matches the given name and argument types.")
	require.ErrorIs(t, err, queries.ErrBadQuery)
	_, ok := errors.AsType[*pgconn.PgError](err)
	require.True(t, ok, "the PostgreSQL error stays reachable")
}

func TestScrub(t *testing.T) {
	const dsn = "postgres://canary:s3cret@db:5432/app?sslmode=verify-full"
	tests := []struct {
		name string
		msg  string
		dsn  string
		want string
	}{
		{name: "nothing to scrub", msg: "connection refused", dsn: dsn, want: "connection refused"},
		{name: "the DSN", msg: "cannot parse " + dsn + ": bad", dsn: dsn, want: "cannot parse <dsn>: bad"},
		{
			name: "the DSN in another spelling",
			msg:  `failed: "postgresql://canary:s3cret@db/app"`, dsn: dsn,
			want: `failed: "postgresql://canary:xxxxx@db/app"`,
		},
		{name: "no DSN known", msg: "at postgres://canary:s3cret@db/app", dsn: "", want: "at postgres://canary:xxxxx@db/app"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, scrub(tt.msg, tt.dsn))
		})
	}
}
