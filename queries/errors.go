package queries

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Error is how a source explains a failed query: a message written for
// people, a sentinel of this package (or context.Canceled) for errors.Is
// and Classify, and the underlying error (a server's answer, a network
// error, a context cause) for errors.As. Every backend returns it, so a
// failure reads and sorts the same whatever the source.
type Error struct {
	Kind  error
	Msg   string
	Cause error // may be nil
}

func (e *Error) Error() string { return e.Msg }

// Unwrap gives errors.Is and errors.As both the sentinel and the cause.
func (e *Error) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Cause}
}

// Timeout is the cause a source gives its own timeout
// (context.WithTimeoutCause), so that an error names the timeout that fired
// and its length. It still matches context.DeadlineExceeded.
type Timeout struct {
	// Name says whose timeout it is: "per-query", "http probe".
	Name string
	D    time.Duration
}

func (e *Timeout) Error() string { return fmt.Sprintf("%s timeout of %s reached", e.Name, e.D) }

// Unwrap makes a Timeout a context.DeadlineExceeded.
func (e *Timeout) Unwrap() error { return context.DeadlineExceeded }

// ContextError describes a caller's ctx that is done: a deadline is
// ErrTimeout, a cancellation context.Canceled, and the cause is kept so the
// error says which deadline fired, as context.WithTimeoutCause intends.
func ContextError(ctx context.Context) error {
	err, cause := ctx.Err(), context.Cause(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		if cause != err {
			return fmt.Errorf("%w: %w: %w", ErrTimeout, err, cause)
		}
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	if cause != err {
		return fmt.Errorf("query %w: %w", err, cause)
	}
	return fmt.Errorf("query %w", err)
}

// CallerError is the error of a probe whose caller's ctx ended before it
// could measure anything: context.Canceled, or ErrTimeout for a deadline of
// the caller's that came before the probe's own timeout. subject starts the
// message: "tcp probe of db:5432".
func CallerError(ctx context.Context, subject string) *Error {
	cause := context.Cause(ctx)
	e := &Error{Kind: context.Canceled, Msg: subject + " canceled: " + cause.Error(), Cause: cause}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		e.Kind = ErrTimeout
		e.Msg = subject + ": the caller's deadline passed first: " + cause.Error()
	}
	if cause != ctx.Err() {
		// A custom cause need not wrap the context error; keep both
		// matchable.
		e.Cause = errors.Join(cause, ctx.Err())
	}
	return e
}

// EndedError explains why qctx, the caller's ctx with the source's own
// timeout, ended: the caller canceled (context.Canceled), or the caller's
// deadline or the source's timeout passed (ErrTimeout). The message is
// "<source> query timed out: <cause>" or "<source> query canceled: <cause>";
// callers may add what the query was doing.
func EndedError(ctx, qctx context.Context, source string) *Error {
	cause := context.Cause(qctx)
	kind, msg := ErrTimeout, source+" query timed out: "
	if ctx.Err() != nil {
		cause = context.Cause(ctx)
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			kind, msg = context.Canceled, source+" query canceled: "
		}
	}
	return &Error{Kind: kind, Msg: msg + cause.Error(), Cause: cause}
}

// UnknownFields names the query fields a source does not read, sorted, for
// its bad-query error: `unknown fields "grup", "tpics" (known: group,
// topics)`. ok tells a known field; known lists them for the message. It
// is "" when every field is known.
func UnknownFields(fields map[string]string, known string, ok func(name string) bool) string {
	var unknown []string
	for name := range fields {
		if !ok(name) {
			unknown = append(unknown, strconv.Quote(name))
		}
	}
	if len(unknown) == 0 {
		return ""
	}
	slices.Sort(unknown)
	word := "field"
	if len(unknown) > 1 {
		word = "fields"
	}
	return fmt.Sprintf("unknown %s %s (known: %s)", word, strings.Join(unknown, ", "), known)
}
