package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/IBM/sarama"

	"github.com/aurum/canary/queries"
)

func badQuery(format string, args ...any) error {
	return &queries.Error{Kind: queries.ErrBadQuery, Msg: "bad kafka query: " + fmt.Sprintf(format, args...)}
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
		return &queries.Error{Kind: queries.ErrBadQuery, Msg: "kafka authentication failed: " + what + ": " + err.Error(), Cause: err}
	case errors.Is(err, sarama.ErrTopicAuthorizationFailed),
		errors.Is(err, sarama.ErrGroupAuthorizationFailed),
		errors.Is(err, sarama.ErrClusterAuthorizationFailed):
		return &queries.Error{Kind: queries.ErrBadQuery, Msg: "kafka denied access: " + what + ": " + err.Error(), Cause: err}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		// Sarama's own read or dial deadline, which is never shorter than
		// the query's: report it as the timeout it is.
		return &queries.Error{Kind: queries.ErrTimeout, Msg: "kafka request timed out: " + what + ": " + err.Error(), Cause: err}
	}
	return &queries.Error{Kind: queries.ErrUnavailable, Msg: "kafka unavailable: " + what + ": " + err.Error(), Cause: err}
}

// contextError explains why qctx ended while the query was at step: the
// caller canceled, the caller's deadline passed, or the per-query timeout
// fired.
func contextError(ctx, qctx context.Context, step string) error {
	err := queries.EndedError(ctx, qctx, "kafka")
	if step != "" {
		err.Msg += " (while " + step + ")"
	}
	return err
}
