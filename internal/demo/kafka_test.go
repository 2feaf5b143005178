package demo

import (
	"math"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAdvance checks the consumer's pacing: rate times time, shared
// between the partitions with a backlog, never past the log end, and no
// credit banked while caught up.
func TestAdvance(t *testing.T) {
	k := &kafkaWorld{partitions: 2, ends: make([]atomic.Int64, 2)}
	c := k.newConsumer("g")
	setEnds := func(a, b int64) { k.ends[0].Store(a); k.ends[1].Store(b) }

	// Caught up: nothing moves, and the idle second is not banked.
	require.False(t, k.advance(c, 10, 1))
	require.Zero(t, c.budget)

	setEnds(100, 100)
	require.True(t, k.advance(c, 10, 1))
	require.Equal(t, []int64{5, 5}, c.committed)

	// A fraction carries over.
	require.False(t, k.advance(c, 10, 0.05))
	require.True(t, k.advance(c, 10, 0.05))
	require.Equal(t, int64(11), c.committed[0]+c.committed[1])

	// One partition's small backlog leaves the rest of its share to the
	// other.
	setEnds(12, 100)
	c.committed = []int64{10, 10}
	c.budget = 0
	require.True(t, k.advance(c, 20, 1))
	require.Equal(t, []int64{12, 28}, c.committed)

	// Keeping up commits everything, and never past the end.
	require.True(t, k.advance(c, math.Inf(1), 1))
	require.Equal(t, []int64{12, 100}, c.committed)
	require.False(t, k.advance(c, 1000, 1))

	// A stopped consumer stays put.
	setEnds(50, 150)
	require.False(t, k.advance(c, 0, 10))
	require.Equal(t, []int64{12, 100}, c.committed)
}
