package prometheus

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWait(t *testing.T) {
	s := &Source{backoff: 100 * time.Millisecond, maxBackoff: MaxRetryBackoff}
	tests := []struct {
		name     string
		attempt  int
		min, max time.Duration
	}{
		{name: "first retry", attempt: 1, min: 50 * time.Millisecond, max: 100 * time.Millisecond},
		{name: "doubles", attempt: 2, min: 100 * time.Millisecond, max: 200 * time.Millisecond},
		{name: "capped", attempt: 6, min: MaxRetryBackoff / 2, max: MaxRetryBackoff},
		{name: "no overflow", attempt: 70, min: MaxRetryBackoff / 2, max: MaxRetryBackoff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[time.Duration]bool{}
			for range 100 {
				d := s.wait(tt.attempt)
				require.GreaterOrEqual(t, d, tt.min)
				require.LessOrEqual(t, d, tt.max)
				seen[d] = true
			}
			require.Greater(t, len(seen), 1, "waits are jittered")
		})
	}
}
