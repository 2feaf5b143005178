// Package queries turns rendered queries into numbers. A Source is one
// method; each backend (Prometheus, the embedded PromQL engine, and later
// Kafka and health probes) lives in its own sub-package. The package knows
// nothing of policies: it receives query text that was already rendered and
// validated.
package queries

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors, tested with errors.Is.
var (
	// ErrUnknownSource marks a query naming a source that is not configured.
	ErrUnknownSource = errors.New("unknown source")
	// ErrTimeout marks a query that ran out of time.
	ErrTimeout = errors.New("query timed out")
	// ErrUnavailable marks a source that could not be reached or answered
	// with a server error.
	ErrUnavailable = errors.New("source unavailable")
	// ErrBadQuery marks a query the source rejected; retrying cannot help.
	ErrBadQuery = errors.New("bad query")
	// ErrPanic marks a query whose source panicked. The panic was
	// recovered: the error says what the source panicked with, and the
	// process goes on.
	ErrPanic = errors.New("source panicked")
)

// Classify sorts an error from a query source into a small fixed set, for
// use as a metric label: "timeout", "unavailable", "bad_query", "canceled",
// "unknown_source", "panic" or "other", and "" for a nil error. It relies
// only on the sentinels of this package and on context errors, so it fits
// any source that wraps them.
func Classify(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrPanic):
		// First: a panic is a bug to find, whatever else the error says.
		return "panic"
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	case errors.Is(err, ErrBadQuery):
		return "bad_query"
	case errors.Is(err, ErrUnknownSource):
		return "unknown_source"
	default:
		return "other"
	}
}

// Source runs one rendered query. Implementations must honour ctx and be safe
// for concurrent use.
type Source interface {
	Query(ctx context.Context, q Query) (Result, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context, q Query) (Result, error)

// Query runs f.
func (f SourceFunc) Query(ctx context.Context, q Query) (Result, error) { return f(ctx, q) }

// Query is a rendered query.
type Query struct {
	// Text is the query in the source's language: PromQL, or SQL for
	// PostgreSQL.
	Text string
	// Fields are the other rendered settings of sources whose queries are
	// more than a text, by name: a Kafka query's group and topics, an HTTP
	// probe's url and headers. Each source documents the fields it reads
	// and rejects unknown ones. Lists are comma-separated.
	Fields map[string]string
	// Run identifies the run being analysed, for sources that compare an
	// evaluation with the previous one of the same run (Kafka lag growth);
	// empty outside a run.
	Run string
	// Time is the evaluation time; zero means now.
	Time time.Time
	// Range, when non-zero, asks for the points in (Time-Range, Time] at
	// Step resolution instead of one instant value.
	Range time.Duration
	Step  time.Duration
	// Allow is the policy's own list of the hosts its probes may reach,
	// set by the caller for each query; nil or an empty list means the
	// policy restricts nothing. Probes also apply their server-wide list:
	// a target must pass both. Sources that reach no policy-chosen host
	// ignore it.
	Allow *Allowlist
}

// Result is what a source returned.
type Result struct {
	Samples []Sample
	// Values is a record: named numbers measured together, such as a
	// probe's up, status and latency_ms. Sources return either samples or
	// a record.
	Values map[string]float64
	// Warnings the source attached to an otherwise good answer.
	Warnings []string
}

// Sample is one series of a result.
type Sample struct {
	Labels map[string]string
	// Value is the instant value, or the last point of a range query.
	Value float64
	// Points are the values of a range query, oldest first.
	Points []Point
}

// Point is one value of a range query.
type Point struct {
	Time  time.Time
	Value float64
}

// Sources finds the source a query names, by kind ("prometheus") and name
// ("" for the default source of that kind).
type Sources interface {
	Lookup(kind, name string) (Source, error)
}

// Registry is a fixed set of sources keyed by kind and name.
type Registry map[Key]Source

// Key identifies a configured source.
type Key struct{ Kind, Name string }

// Lookup returns the source or an error wrapping ErrUnknownSource.
func (r Registry) Lookup(kind, name string) (Source, error) {
	if s, ok := r[Key{kind, name}]; ok {
		return s, nil
	}
	if name == "" {
		return nil, &SourceError{Kind: kind, Name: "default"}
	}
	return nil, &SourceError{Kind: kind, Name: name}
}

// SourceError names a source that is not configured.
type SourceError struct{ Kind, Name string }

func (e *SourceError) Error() string {
	return fmt.Sprintf("no %s source %q is configured", e.Kind, e.Name)
}

// Is makes a SourceError match ErrUnknownSource.
func (e *SourceError) Is(target error) bool { return target == ErrUnknownSource }
