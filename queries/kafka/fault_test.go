package kafka

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/aurum/canary/queries"
)

// seedSmall is one broker, topic t with 2 partitions of 10 messages, and
// group g with commits at 3 and 4: lag 13.
func seedSmall(t *testing.T) *testCluster {
	t.Helper()
	tc := newTestCluster(t, 1)
	tc.createTopic("t", 2)
	tc.produce("t", 10, 0, 1)
	tc.commit("g", map[tp]int64{{"t", 0}: 3, {"t", 1}: 4})
	return tc
}

var smallQuery = map[string]string{"group": "g", "topics": "t"}

// TestBrokerDown stops the only broker between evaluations, then starts
// it again on the same address (see switchListener).
func TestBrokerDown(t *testing.T) {
	for _, tt := range []struct {
		name   string
		fields map[string]string
	}{
		{name: "listed topics", fields: smallQuery},
		{name: "all committed topics", fields: map[string]string{"group": "g"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tc := seedSmall(t)
			const timeout = 2 * time.Second
			s := newSource(t, tc, func(c *ClusterConfig) { c.Timeout = timeout })

			res, err := query(s, tt.fields)
			require.NoError(t, err)
			require.Equal(t, map[string]float64{"g": 13}, values(res))

			tc.broker(0).stop()
			for range 2 { // the broken client, then a new one
				start := time.Now()
				_, err = query(s, tt.fields)
				requireKind(t, err, queries.ErrUnavailable, "kafka unavailable")
				require.Equal(t, "unavailable", queries.Classify(err))
				require.Less(t, time.Since(start), timeout)
			}

			tc.broker(0).start(t)
			res, err = query(s, tt.fields)
			require.NoError(t, err, "recovers without a restart")
			require.Equal(t, map[string]float64{"g": 13}, values(res))
		})
	}
}

// hang makes the broker swallow every request of kind key while on is
// set: it reads the request and never answers, as a broker stuck in a
// long GC pause or behind a black-holing network does.
func hang(tc *testCluster, key kmsg.Key, on *atomic.Bool) {
	tc.ControlKey(int16(key), func(kmsg.Request) (kmsg.Response, error, bool) {
		tc.KeepControl()
		return nil, nil, on.Load()
	})
}

// TestHungBroker checks that a query returns by its timeout when a broker
// accepts a request and never answers, and that the next query, once the
// broker answers again, succeeds.
func TestHungBroker(t *testing.T) {
	for _, tt := range []struct {
		name string
		key  kmsg.Key
		step string
	}{
		{name: "offset fetch", key: kmsg.OffsetFetch, step: `fetching the committed offsets of group "g"`},
		{name: "list offsets", key: kmsg.ListOffsets, step: "listing offsets on broker 0"},
		{name: "metadata", key: kmsg.Metadata, step: `fetching the metadata of topic "t"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tc := seedSmall(t)
			const timeout = 500 * time.Millisecond
			s := newSource(t, tc, func(c *ClusterConfig) { c.Timeout = timeout })
			var on atomic.Bool
			on.Store(true)
			hang(tc, tt.key, &on)

			start := time.Now()
			_, err := query(s, smallQuery)
			elapsed := time.Since(start)
			requireKind(t, err, queries.ErrTimeout, "per-query timeout of 500ms reached", tt.step)
			require.Equal(t, "timeout", queries.Classify(err))
			require.Less(t, elapsed, timeout+400*time.Millisecond, "returns at the timeout")

			on.Store(false)
			res, err := query(s, smallQuery)
			require.NoError(t, err)
			require.Equal(t, map[string]float64{"g": 13}, values(res))
		})
	}
}

func TestCanceled(t *testing.T) {
	tc := seedSmall(t)
	s := newSource(t, tc)

	t.Run("before the query", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		start := time.Now()
		_, err := s.Query(ctx, queries.Query{Fields: smallQuery})
		requireKind(t, err, context.Canceled, "kafka query canceled")
		require.Equal(t, "canceled", queries.Classify(err))
		require.Less(t, time.Since(start), 200*time.Millisecond)
	})

	t.Run("caller's deadline already passed", func(t *testing.T) {
		ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
		defer cancel()
		_, err := s.Query(ctx, queries.Query{Fields: smallQuery})
		requireKind(t, err, queries.ErrTimeout, "context deadline exceeded")
	})

	t.Run("while a broker does not answer", func(t *testing.T) {
		var on atomic.Bool
		on.Store(true)
		hang(tc, kmsg.ListOffsets, &on)
		defer on.Store(false)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, err := s.Query(ctx, queries.Query{Fields: smallQuery})
		requireKind(t, err, context.Canceled, "kafka query canceled", "listing offsets")
		require.Less(t, time.Since(start), time.Second, "returns at the cancellation, not at the 3s timeout")
	})
}

func TestClose(t *testing.T) {
	tc := seedSmall(t)
	s := newSource(t, tc)
	_, err := query(s, smallQuery)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "twice is fine")
	_, err = query(s, smallQuery)
	requireKind(t, err, queries.ErrUnavailable, "closed")
}
