package queries

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{name: "nil", err: nil, want: ""},
		{name: "timeout", err: fmt.Errorf("query %q: %w", "q", ErrTimeout), want: "timeout"},
		{name: "deadline", err: context.DeadlineExceeded, want: "timeout"},
		{name: "canceled", err: fmt.Errorf("x: %w", context.Canceled), want: "canceled"},
		{name: "unavailable", err: fmt.Errorf("x: %w", ErrUnavailable), want: "unavailable"},
		{name: "bad query", err: ErrBadQuery, want: "bad_query"},
		{name: "unknown source", err: &SourceError{Kind: "kafka", Name: "main"}, want: "unknown_source"},
		{name: "panic", err: &Error{Kind: ErrPanic, Msg: "query source panicked: boom"}, want: "panic"},
		{name: "panic wins over what it panicked with", err: &Error{Kind: ErrPanic, Msg: "x", Cause: context.DeadlineExceeded}, want: "panic"},
		{name: "anything else", err: errors.New("boom"), want: "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, Classify(tt.err))
		})
	}
}

func TestRegistry(t *testing.T) {
	src := SourceFunc(func(context.Context, Query) (Result, error) { return Result{}, nil })
	r := Registry{{Kind: "prometheus"}: src, {Kind: "prometheus", Name: "eu"}: src}
	_, err := r.Lookup("prometheus", "")
	require.NoError(t, err)
	_, err = r.Lookup("prometheus", "eu")
	require.NoError(t, err)
	_, err = r.Lookup("prometheus", "us")
	require.ErrorIs(t, err, ErrUnknownSource)
	require.EqualError(t, err, `no prometheus source "us" is configured`)
	_, err = r.Lookup("kafka", "")
	require.EqualError(t, err, `no kafka source "default" is configured`)
}
