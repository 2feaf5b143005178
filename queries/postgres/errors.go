package postgres

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/aurum/canary/queries"
)

// Stages of a probe, for messages: a timeout while connecting says
// something else than one while the query runs.
const (
	stageWait    = "waiting for a free connection"
	stageConnect = "connecting"
	stageBegin   = "starting the transaction"
	stageQuery   = "running the query"
)

// stageError is an error of pgx, with the stage it happened in.
type stageError struct {
	stage string
	err   error
}

func (e *stageError) Error() string { return e.stage + ": " + e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

func stageOf(err error) string {
	if se, ok := errors.AsType[*stageError](err); ok {
		return se.stage
	}
	return stageQuery
}

// unavailable tells whether err means the server is unavailable, rather
// than that the query is wrong, and if so says why.
func unavailable(err error) (string, bool) {
	stage, cause := stageQuery, err
	if se, ok := errors.AsType[*stageError](err); ok {
		stage, cause = se.stage, se.err
	}
	if stage == stageConnect {
		// Refused, unreachable, DNS, TLS, a failed login, a database that
		// does not exist, too many connections: a probe that cannot log in
		// cannot tell a healthy server from a broken one. The
		// ConnectError's own text starts with the user and database,
		// which belong to the DSN; the error it wraps names the address
		// and what happened there.
		if ce, ok := errors.AsType[*pgconn.ConnectError](cause); ok && ce.Unwrap() != nil {
			cause = ce.Unwrap()
		}
		return "cannot connect to postgres: " + cause.Error(), true
	}
	pgErr, ok := errors.AsType[*pgconn.PgError](cause)
	if !ok {
		// Not an answer from the server: the connection broke (reset,
		// EOF, a server that went away between two statements).
		return "postgres connection failed while " + stage + ": " + cause.Error(), true
	}
	if pgErr.Code == "57014" {
		// query_canceled: the statement timeout fired on the server
		// before the client's, or someone canceled the backend.
		return "postgres query timed out: " + pgErr.Error(), true
	}
	switch pgErr.Code[:min(2, len(pgErr.Code))] {
	case "08", // connection exception
		"40", // transaction rollback: on a standby, conflicts with recovery
		"53", // insufficient resources: disk full, out of memory, too many connections
		"57", // operator intervention: shutting down, crash recovery
		"58", // system error: I/O errors
		"F0", // configuration file error
		"XX": // internal error: data corruption
		return "postgres unavailable while " + stage + ": " + pgErr.Error(), true
	}
	return "", false
}

// badQuery is the error for a query the server rejected: syntax, unknown
// names, privileges, a write in the read-only transaction, a division by
// zero. PostgreSQL's own message is kept whole, with its detail and hint.
func badQuery(err error) *queries.Error {
	pgErr, ok := errors.AsType[*pgconn.PgError](err)
	if !ok {
		return &queries.Error{Kind: queries.ErrBadQuery, Msg: "postgres rejected the query: " + err.Error(), Cause: err}
	}
	var b strings.Builder
	b.WriteString("postgres rejected the query: ")
	b.WriteString(pgErr.Error())
	if pgErr.Code == "25006" {
		// read_only_sql_transaction: "cannot execute INSERT in a
		// read-only transaction" does not say who made it read-only.
		b.WriteString(" (queries run in a read-only transaction: they may only read)")
	}
	if pgErr.Detail != "" {
		b.WriteString("; detail: " + pgErr.Detail)
	}
	if pgErr.Hint != "" {
		b.WriteString("; hint: " + pgErr.Hint)
	}
	return &queries.Error{Kind: queries.ErrBadQuery, Msg: b.String(), Cause: err}
}

// shapeError is the error for a query whose result is not one number.
func shapeError(what string) *queries.Error {
	return &queries.Error{
		Kind: queries.ErrBadQuery,
		Msg:  "postgres query must return one row with one numeric column, but " + what,
	}
}
