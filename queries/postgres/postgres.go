// Package postgres is the query source that probes a PostgreSQL server: it
// runs one read-only SQL statement that returns one number, and reports
// whether the server answered, how fast, and what the number was.
//
// A probe measures the database, so a server that is down, unreachable,
// refuses the login or is too slow is a result (up 0), not an error: a
// policy can then say "roll back when the database is down". Only a query
// that can never succeed (bad SQL, a write, the wrong shape of result) is an
// error, wrapping queries.ErrBadQuery, because retrying cannot fix it.
//
// Every statement runs in a READ ONLY transaction that is always rolled
// back, under a server-side statement timeout, so a policy can neither
// write nor leave a query running. Read-only still lets a statement call
// functions with side effects outside the database (pg_terminate_backend,
// for one): give the source a role with the least privileges the queries
// need, such as pg_monitor or pg_read_all_data.
package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/aurum/canary/queries"
)

// Defaults for the zero values of Config.
const (
	// DefaultTimeout bounds one call to Query, connecting included. A
	// health probe that needs longer has found an unhealthy database.
	DefaultTimeout = 5 * time.Second
	// DefaultMaxConns caps the connections a Source opens. Probes are
	// short and few; a handful of connections keeps the load on the
	// database, and on its max_connections, small.
	DefaultMaxConns = 4
)

// Names of the values in a Result.
const (
	// ValueUp is 1 when the query ran, 0 when the server could not be
	// reached, refused the login, failed, or did not answer in time.
	ValueUp = "up"
	// ValueLatency is the round trip of the query in milliseconds, from
	// sending it to reading its result; NaN when up is 0.
	ValueLatency = "latency_ms"
	// ValueValue is the number the query returned; NaN for NULL, and when
	// up is 0.
	ValueValue = "value"
)

// FieldTimeout is the only field a query may set: a Go duration ("200ms")
// that replaces Config.Timeout for that query.
const FieldTimeout = "timeout"

// cancelGrace is how long a query whose context ended waits for the
// server to confirm the cancel request before the connection is cut. pgx
// adds a pause of 100ms after a cancel request, so that it cannot hit the
// connection's next statement.
const cancelGrace = 250 * time.Millisecond

// idleTimeout closes connections unused for this long: probes run every
// minute or so, and an idle connection held for hours only occupies a slot
// on the server.
const idleTimeout = 5 * time.Minute

// applicationName tells a DBA looking at pg_stat_activity who is connected,
// unless the DSN names the application itself.
const applicationName = "aurum-canary"

// Config says how to reach one PostgreSQL server.
type Config struct {
	// DSN is a connection string, as a URL
	// (postgres://user:password@host:5432/db?sslmode=verify-full) or as
	// keyword=value pairs. It holds a password, so it is never logged nor
	// put into an error or a warning. It comes from the server's
	// configuration or environment, never from a request or a policy.
	// Settings it leaves out come from the PG* environment variables
	// (PGPASSWORD, PGSSLMODE...), as with libpq.
	DSN string `yaml:"dsn"`
	// DSNFile names a file holding the DSN, such as a mounted secret, read
	// once by New. Set DSN or DSNFile, not both.
	DSNFile string `yaml:"dsnFile"`
	// Timeout bounds one call to Query, connecting included, and is the
	// statement timeout on the server. A query that overruns it is
	// canceled on the server, which takes Query up to 350ms more. Zero
	// means DefaultTimeout.
	Timeout time.Duration `yaml:"timeout"`
	// MaxConns caps the open connections; a query waits for a free one
	// within its timeout. Zero means DefaultMaxConns.
	MaxConns int32 `yaml:"maxConns"`
}

// Source probes one PostgreSQL server. It is safe for concurrent use; it
// keeps a pool of connections, so build one per server, keep it, and Close
// it at shutdown.
type Source struct {
	pool    *pgxpool.Pool
	timeout time.Duration
	dsn     string // only to scrub it from messages, should one echo it
	logger  *slog.Logger
}

var _ queries.Source = (*Source)(nil)

// New checks cfg and builds the connection pool. It does not connect: a
// server that is down at start-up is reported by the first query, like one
// that goes down later. Its errors never contain the DSN.
func New(cfg Config, logger *slog.Logger) (*Source, error) {
	dsn, err := readDSN(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("postgres timeout %s is negative", cfg.Timeout)
	}
	if cfg.MaxConns < 0 {
		return nil, fmt.Errorf("postgres maxConns %d is negative", cfg.MaxConns)
	}
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	cfg.MaxConns = cmp.Or(cfg.MaxConns, DefaultMaxConns)
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	poolCfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("invalid postgres dsn: %s", parseErrorReason(err, dsn))
	}
	// A probe needs a connection or two; idle ones are closed rather than
	// kept against a server that may count them.
	poolCfg.MaxConns = cfg.MaxConns
	poolCfg.MinConns = 0
	poolCfg.MaxConnIdleTime = idleTimeout
	// Ping every connection before use, not only those idle for a second
	// (pgxpool's default): a connection the server closed meanwhile (a
	// restart, pg_terminate_backend) is then replaced instead of making a
	// healthy server look down. A probe runs once a minute or so; the
	// extra round trip is cheap.
	poolCfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return true }
	connCfg := poolCfg.ConnConfig
	// The exec mode sends a query as one unnamed statement of the extended
	// protocol: one round trip, no statement cache to go stale when a
	// schema changes, and the server refuses more than one statement, so
	// "select 1; delete ..." cannot slip through. (With the simple
	// protocol, which pgx uses for queries without arguments by default,
	// it could.)
	connCfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	// By default pgx cuts the connection when a context ends, and the
	// server finishes the statement for nobody: up to statement_timeout
	// for a caller that gave up. A cancel request stops it at once.
	connCfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: cancelGrace}
	}
	if connCfg.RuntimeParams == nil {
		connCfg.RuntimeParams = map[string]string{}
	}
	if _, ok := connCfg.RuntimeParams["application_name"]; !ok {
		connCfg.RuntimeParams["application_name"] = applicationName
	}
	// With no minimum of connections the pool does not connect here: a
	// server that is down at start-up is a probe result, not a start-up
	// failure.
	pool, err := pgxpool.NewWithConfig(context.Background(), poolCfg)
	if err != nil {
		return nil, fmt.Errorf("postgres pool: %s", scrub(err.Error(), dsn))
	}
	return &Source{
		pool:    pool,
		timeout: cfg.Timeout,
		dsn:     dsn,
		logger:  logger.With("host", net.JoinHostPort(connCfg.Host, strconv.Itoa(int(connCfg.Port))), "database", connCfg.Database),
	}, nil
}

// readDSN takes the DSN from cfg or from the file it names.
func readDSN(cfg Config) (string, error) {
	switch {
	case cfg.DSN != "" && cfg.DSNFile != "":
		return "", errors.New("postgres dsn and dsnFile are both set: set one")
	case cfg.DSN != "":
		return cfg.DSN, nil
	case cfg.DSNFile == "":
		return "", errors.New("postgres dsn is empty: set dsn or dsnFile")
	}
	b, err := os.ReadFile(cfg.DSNFile)
	if err != nil {
		// The error names the file, which is not secret; it holds none of
		// the contents.
		return "", fmt.Errorf("postgres dsnFile: %w", err)
	}
	// Editors and `echo` end files with a newline, which is not part of
	// the DSN.
	dsn := strings.TrimSpace(string(b))
	if dsn == "" {
		return "", fmt.Errorf("postgres dsnFile %s is empty", cfg.DSNFile)
	}
	return dsn, nil
}

// parseErrorReason says what is wrong with a DSN without repeating it.
// pgconn's ParseConfigError quotes the DSN with the password masked, but
// only "on a best-effort basis", and the error it wraps (from net/url, for
// one) may quote the DSN whole; so only its fixed message is kept, the part
// after the quoted DSN.
func parseErrorReason(err error, dsn string) string {
	var perr *pgconn.ParseConfigError
	if !errors.As(err, &perr) {
		return scrub(err.Error(), dsn)
	}
	msg := perr.Error()
	if inner := perr.Unwrap(); inner != nil {
		msg = strings.TrimSuffix(msg, " ("+inner.Error()+")")
	}
	// The message follows the last "`: ", so what comes after it is (a
	// part of) the message, never of the DSN.
	if i := strings.LastIndex(msg, "`: "); i >= 0 {
		return msg[i+len("`: "):]
	}
	return "cannot parse it"
}

// scrub removes the DSN from a message, and masks the user info of any URL
// left in it. pgx and PostgreSQL do not put the DSN or its password into
// their errors; this is a second line of defence, for the DSN as a whole
// and for a URL in another spelling, should that ever change.
func scrub(msg, dsn string) string {
	if dsn != "" {
		msg = strings.ReplaceAll(msg, dsn, "<dsn>")
	}
	return queries.RedactURLs(msg)
}

// Close closes the idle connections; those of queries in flight are closed
// when the queries end. Queries after Close fail.
func (s *Source) Close() { s.pool.Close() }

// Query runs q.Text, one SQL statement that returns one row of one numeric
// column (smallint, integer, bigint, real, double precision or numeric),
// and returns a record: up, latency_ms and value. q.Time is ignored (a
// probe measures now), and range queries are refused.
//
// A server that cannot be reached, refuses the login, is shutting down or
// does not answer within the timeout yields up 0 and a warning that says
// why. A query the server rejects, or whose result is not one number, is
// an error wrapping queries.ErrBadQuery with PostgreSQL's message. When ctx
// ends first, the error wraps ctx's error. After Close, the error wraps
// queries.ErrUnavailable.
func (s *Source) Query(ctx context.Context, q queries.Query) (queries.Result, error) {
	timeout, err := s.check(q)
	if err != nil {
		return queries.Result{}, err
	}
	qctx, cancel := context.WithTimeoutCause(ctx, timeout, &queries.Timeout{Name: "per-query", D: timeout})
	defer cancel()

	value, latency, err := s.run(qctx, q.Text, timeout)
	switch {
	case err == nil:
		return queries.Result{Values: map[string]float64{
			ValueUp:      1,
			ValueLatency: float64(latency) / float64(time.Millisecond),
			ValueValue:   value,
		}}, nil
	case ctx.Err() != nil:
		// The caller gave up, or its own deadline passed: that says
		// nothing about the database.
		return queries.Result{}, &queries.Error{
			Kind:  ctx.Err(),
			Msg:   "postgres query abandoned: " + context.Cause(ctx).Error(),
			Cause: context.Cause(ctx),
		}
	case qctx.Err() != nil:
		return s.down(ctx, fmt.Sprintf("postgres query timed out while %s: %v", stageOf(err), context.Cause(qctx))), nil
	}
	qerr, ok := errors.AsType[*queries.Error](err)
	if !ok {
		reason, down := unavailable(err)
		if down {
			return s.down(ctx, reason), nil
		}
		qerr = badQuery(err)
	}
	// PostgreSQL echoes parts of the query, never the DSN; this is one more
	// line of defence.
	qerr.Msg = scrub(qerr.Msg, s.dsn)
	return queries.Result{}, qerr
}

// check validates q and returns its timeout.
func (s *Source) check(q queries.Query) (time.Duration, error) {
	if strings.TrimSpace(q.Text) == "" {
		return 0, &queries.Error{Kind: queries.ErrBadQuery, Msg: "empty postgres query"}
	}
	if q.Range != 0 {
		return 0, &queries.Error{Kind: queries.ErrBadQuery, Msg: "postgres queries return one value, not a range: remove the range"}
	}
	timeout := s.timeout
	// Sorted, so that the same query always gets the same error.
	for _, name := range slices.Sorted(maps.Keys(q.Fields)) {
		v := q.Fields[name]
		if name != FieldTimeout {
			return 0, &queries.Error{
				Kind: queries.ErrBadQuery,
				Msg:  fmt.Sprintf("unknown postgres query field %q (allowed: %s)", name, FieldTimeout),
			}
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return 0, &queries.Error{
				Kind: queries.ErrBadQuery,
				Msg:  fmt.Sprintf("postgres query field %s: %q is not a positive duration such as 500ms", FieldTimeout, v),
			}
		}
		timeout = d
	}
	return timeout, nil
}

// down is the result of a probe that found the server unavailable.
func (s *Source) down(ctx context.Context, reason string) queries.Result {
	reason = scrub(reason, s.dsn)
	s.logger.DebugContext(ctx, "postgres probe down", "reason", reason)
	return queries.Result{
		Values: map[string]float64{
			ValueUp:      0,
			ValueLatency: math.NaN(),
			ValueValue:   math.NaN(),
		},
		Warnings: []string{reason},
	}
}

// run takes a connection and runs sql in a read-only transaction. Its
// errors are stageErrors, or queries.Errors for results of the wrong shape.
func (s *Source) run(ctx context.Context, sql string, timeout time.Duration) (float64, time.Duration, error) {
	// The pool pings a connection that has been idle for a while before
	// handing it out, so one the server closed meanwhile (a restart, an
	// idle timeout) does not make a healthy server look down.
	conn, err := s.pool.Acquire(ctx)
	switch {
	case errors.Is(err, puddle.ErrClosedPool):
		return 0, 0, &queries.Error{Kind: queries.ErrUnavailable, Msg: "postgres source is closed", Cause: err}
	case err != nil && ctx.Err() != nil && s.pool.Stat().TotalConns() >= s.pool.Config().MaxConns:
		// Every connection was busy with other probes until time ran out.
		return 0, 0, &stageError{stage: stageWait, err: err}
	case err != nil:
		return 0, 0, &stageError{stage: stageConnect, err: err}
	}
	// A connection released inside a transaction (after a failed
	// rollback) is destroyed by the pool rather than reused.
	defer conn.Release()

	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, 0, &stageError{stage: stageBegin, err: err}
	}
	// Rolled back, never committed: whatever the statement did, if it
	// found a way to change anything, is undone.
	defer rollback(ctx, tx)

	// The server enforces the timeout too, so a statement stops even when
	// this process vanishes or the connection hangs. SET takes no
	// parameters; the value is a number this code formats.
	ms := max(timeout.Milliseconds(), 1)
	if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = "+strconv.FormatInt(ms, 10)); err != nil {
		return 0, 0, &stageError{stage: stageBegin, err: err}
	}

	start := time.Now()
	rows, err := tx.Query(ctx, sql)
	if err != nil {
		return 0, 0, &stageError{stage: stageQuery, err: err}
	}
	value, err := scanOne(rows)
	latency := time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	return value, latency, nil
}

// rollback ends tx. It has a moment of its own, since ctx may have ended:
// after a canceled statement the connection is fine, and keeping it spares
// a slow server a new login. A rollback that fails closes the connection,
// which ends the transaction too.
func rollback(ctx context.Context, tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelGrace)
	defer cancel()
	_ = tx.Rollback(ctx)
}

// scanOne reads the single number of rows, and closes rows.
func scanOne(rows pgx.Rows) (float64, error) {
	defer rows.Close()
	next := rows.Next()
	if err := rows.Err(); err != nil {
		return 0, &stageError{stage: stageQuery, err: err}
	}
	fields := rows.FieldDescriptions()
	switch {
	case len(fields) == 0:
		return 0, shapeError("it returned no result: it is not a query")
	case len(fields) > 1:
		return 0, shapeError(fmt.Sprintf("it returned %d columns", len(fields)))
	case !numeric(fields[0].DataTypeOID):
		return 0, shapeError(fmt.Sprintf("its column %q is of type %s; cast it, e.g. with ::numeric",
			fields[0].Name, typeName(rows.Conn().TypeMap(), fields[0].DataTypeOID)))
	case !next:
		return 0, shapeError("it returned no rows")
	}
	var v *float64
	if err := rows.Scan(&v); err != nil {
		return 0, shapeError("its value cannot be read: " + err.Error())
	}
	if rows.Next() {
		return 0, shapeError("it returned more than one row")
	}
	// An error after the first row, such as a division by zero in the
	// second, surfaces only now.
	if err := rows.Err(); err != nil {
		return 0, &stageError{stage: stageQuery, err: err}
	}
	if v == nil {
		return math.NaN(), nil
	}
	return *v, nil
}

// numeric reports whether a column of this type converts to a float64
// without guessing. Booleans, text, intervals and the like must be cast
// in SQL, where the intent is visible.
func numeric(oid uint32) bool {
	switch oid {
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID,
		pgtype.Float4OID, pgtype.Float8OID, pgtype.NumericOID:
		return true
	}
	return false
}

func typeName(m *pgtype.Map, oid uint32) string {
	if t, ok := m.TypeForOID(oid); ok {
		return t.Name
	}
	return "with OID " + strconv.FormatUint(uint64(oid), 10)
}
