package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/IBM/sarama"

	"github.com/aurum/canary/queries"
)

// queryError is what Query returns: a message written for people, a
// sentinel for errors.Is (and so for queries.Classify), and the underlying
// error (a sarama.KError, a *net.OpError, a context cause) for errors.As.
type queryError struct {
	kind  error // a sentinel of package queries, or context.Canceled
	msg   string
	cause error // may be nil
}

func (e *queryError) Error() string { return e.msg }

func (e *queryError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

// timeoutError is the cause of the per-query timeout, so that the error
// names the timeout that fired and its length. It still matches
// context.DeadlineExceeded.
type timeoutError struct{ d time.Duration }

func (e *timeoutError) Error() string { return fmt.Sprintf("per-query timeout of %s reached", e.d) }
func (e *timeoutError) Unwrap() error { return context.DeadlineExceeded }

func badQuery(format string, args ...any) error {
	return &queryError{kind: queries.ErrBadQuery, msg: "bad kafka query: " + fmt.Sprintf(format, args...)}
}

// requestError sorts the error of a Sarama call made while doing what.
// Failed authentication and authorization are bad queries, as a 401 or 403
// is for the Prometheus source: the same request fails the same way until
// someone changes the configuration. Everything else (refused, reset or
// timed-out connections, running out of brokers, unexpected broker errors)
// means the cluster could not answer.
func requestError(what string, err error) error {
	switch {
	case errors.Is(err, sarama.ErrSASLAuthenticationFailed),
		errors.Is(err, sarama.ErrIllegalSASLState),
		errors.Is(err, sarama.ErrUnsupportedSASLMechanism):
		return &queryError{kind: queries.ErrBadQuery, msg: "kafka authentication failed: " + what + ": " + err.Error(), cause: err}
	case errors.Is(err, sarama.ErrTopicAuthorizationFailed),
		errors.Is(err, sarama.ErrGroupAuthorizationFailed),
		errors.Is(err, sarama.ErrClusterAuthorizationFailed):
		return &queryError{kind: queries.ErrBadQuery, msg: "kafka denied access: " + what + ": " + err.Error(), cause: err}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		// Sarama's own read or dial deadline, which is never shorter than
		// the query's: report it as the timeout it is.
		return &queryError{kind: queries.ErrTimeout, msg: "kafka request timed out: " + what + ": " + err.Error(), cause: err}
	}
	return &queryError{kind: queries.ErrUnavailable, msg: "kafka unavailable: " + what + ": " + err.Error(), cause: err}
}

// contextError explains why qctx ended while the query was at step: the
// caller canceled, the caller's deadline passed, or the per-query timeout
// fired.
func contextError(ctx, qctx context.Context, step string) error {
	cause := context.Cause(qctx)
	kind := queries.ErrTimeout
	msg := "kafka query timed out: "
	if ctx.Err() != nil {
		cause = context.Cause(ctx)
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			kind, msg = context.Canceled, "kafka query canceled: "
		}
	}
	msg += cause.Error()
	if step != "" {
		msg += " (while " + step + ")"
	}
	return &queryError{kind: kind, msg: msg, cause: cause}
}
