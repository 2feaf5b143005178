package queries

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// ended returns a ctx that is done: canceled with cause, or past a
// deadline with cause when deadline is set.
func ended(t *testing.T, deadline bool, cause error) context.Context {
	t.Helper()
	if deadline {
		ctx, cancel := context.WithDeadlineCause(context.Background(), time.Now().Add(-time.Second), cause)
		t.Cleanup(cancel)
		return ctx
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	return ctx
}

func TestContextErrors(t *testing.T) {
	probeTimeout := &Timeout{Name: "tcp probe", D: 3 * time.Second}
	custom := errors.New("shutting down")
	tests := []struct {
		name string
		err  error
		kind error
		msg  string
		is   []error
	}{
		{name: "caller canceled", err: CallerError(ended(t, false, nil), "tcp probe of db:5432"),
			kind: context.Canceled, msg: "tcp probe of db:5432 canceled: context canceled"},
		{name: "caller canceled with a cause", err: CallerError(ended(t, false, custom), "tcp probe of db:5432"),
			kind: context.Canceled, msg: "tcp probe of db:5432 canceled: shutting down", is: []error{custom}},
		{name: "caller's deadline", err: CallerError(ended(t, true, nil), "http probe GET /"),
			kind: ErrTimeout, msg: "http probe GET /: the caller's deadline passed first: context deadline exceeded",
			is: []error{context.DeadlineExceeded}},
		{name: "source timeout", err: EndedError(context.Background(), ended(t, true, &Timeout{Name: "per-query", D: time.Second}), "kafka"),
			kind: ErrTimeout, msg: "kafka query timed out: per-query timeout of 1s reached", is: []error{context.DeadlineExceeded}},
		{name: "caller canceled a source query", err: EndedError(ended(t, false, nil), ended(t, false, nil), "prometheus"),
			kind: context.Canceled, msg: "prometheus query canceled: context canceled"},
		{name: "caller's deadline over a source query", err: EndedError(ended(t, true, nil), ended(t, true, nil), "prometheus"),
			kind: ErrTimeout, msg: "prometheus query timed out: context deadline exceeded"},
		{name: "a done ctx, timed out", err: ContextError(ended(t, true, probeTimeout)),
			kind: ErrTimeout, msg: "query timed out: context deadline exceeded: tcp probe timeout of 3s reached", is: []error{probeTimeout}},
		{name: "a done ctx, canceled", err: ContextError(ended(t, false, nil)),
			kind: context.Canceled, msg: "query context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.ErrorIs(t, tt.err, tt.kind)
			require.Equal(t, tt.msg, tt.err.Error())
			for _, want := range tt.is {
				require.ErrorIs(t, tt.err, want)
			}
		})
	}
}

func TestError(t *testing.T) {
	cause := &Timeout{Name: "per-query", D: time.Second}
	err := error(&Error{Kind: ErrTimeout, Msg: "kafka query timed out", Cause: cause})
	require.Equal(t, "kafka query timed out", err.Error())
	require.ErrorIs(t, err, ErrTimeout)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var got *Timeout
	require.ErrorAs(t, err, &got)
	require.Equal(t, time.Second, got.D)
	require.Equal(t, "timeout", Classify(err))

	bare := &Error{Kind: ErrBadQuery, Msg: "empty query"}
	require.Equal(t, []error{ErrBadQuery}, bare.Unwrap())
	require.Equal(t, "bad_query", Classify(bare))
}

func TestUnknownFields(t *testing.T) {
	known := func(name string) bool { return name == "address" || name == "timeout" }
	tests := []struct {
		name   string
		fields map[string]string
		want   string
	}{
		{name: "all known", fields: map[string]string{"address": "db:5432", "timeout": "1s"}, want: ""},
		{name: "none", fields: nil, want: ""},
		{name: "one unknown", fields: map[string]string{"adress": "db:5432"}, want: `unknown field "adress" (known: address, timeout)`},
		{name: "several, sorted", fields: map[string]string{"tmeout": "1s", "adress": "x", "address": "y"},
			want: `unknown fields "adress", "tmeout" (known: address, timeout)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, UnknownFields(tt.fields, "address, timeout", known))
		})
	}
}
