package kafka

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/queries"
)

func TestGrowth(t *testing.T) {
	tc := newTestCluster(t, 1)
	tc.createTopic("t", 2)
	tc.produce("t", 10, 0, 1)
	tc.commit("g", map[tp]int64{{"t", 0}: 0, {"t", 1}: 0})
	s := newSource(t, tc)
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	eval := func(run string, at time.Time, extra map[string]string) queries.Result {
		t.Helper()
		fields := map[string]string{"group": "g", "topics": "t", "value": "growth"}
		for k, v := range extra {
			fields[k] = v
		}
		res, err := s.Query(t.Context(), queries.Query{Fields: fields, Run: run, Time: at})
		require.NoError(t, err)
		return res
	}
	none := map[string]string{"aggregate": "none"}

	// Lag at t0: 10 + 10.
	require.Empty(t, eval("r1", t0, nil).Samples, "first evaluation of a run: no data")
	require.Empty(t, eval("r1", t0, none).Samples, "another query of the same run has its own first")
	require.Empty(t, eval("", t0, nil).Samples, "no run: no data")

	// Lag at t1, 10 s later: partition 0 gets 30 more messages (lag 40),
	// partition 1 10 more and a commit at 20 (lag 0).
	tc.produce("t", 30, 0)
	tc.produce("t", 10, 1)
	tc.commit("g", map[tp]int64{{"t", 1}: 20})
	t1 := t0.Add(10 * time.Second)

	require.Equal(t, map[string]float64{"g": (40 - 20) / 10.0}, values(eval("r1", t1, nil)))
	require.Equal(t, map[string]float64{"g t/0": (40 - 10) / 10.0, "g t/1": (0 - 10) / 10.0}, values(eval("r1", t1, none)))
	require.Empty(t, eval("r2", t1, nil).Samples, "another run does not see r1's previous value")

	res := eval("r1", t1, nil)
	require.Empty(t, res.Samples, "same time again: no rate")
	require.Len(t, res.Warnings, 1)
	require.Contains(t, res.Warnings[0], "not later than the previous one")
	require.Empty(t, eval("r1", t0.Add(5*time.Second), nil).Samples, "a late evaluation from the past")

	// Nothing changes for 20 s; spelling out the defaults is the same
	// query.
	t2 := t1.Add(20 * time.Second)
	require.Equal(t, map[string]float64{"g": 0}, values(eval("r1", t2, map[string]string{"aggregate": "sum", "from": "earliest"})))

	// A query of a group that has no data has no growth either.
	res, err := s.Query(t.Context(), queries.Query{Fields: map[string]string{"group": "nobody", "value": "growth"}, Run: "r1", Time: t2})
	require.NoError(t, err)
	require.Empty(t, res.Samples)
}

func TestGrowthStoreBounds(t *testing.T) {
	g := newGrowthStore()
	g.max = 3
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	put := func(key string, stored time.Time) (bool, time.Time) {
		prev, ok := g.swap(key, growthEntry{at: stored, stored: stored})
		return ok, prev.at
	}

	for i := range 3 {
		ok, _ := put("k"+strconv.Itoa(i), now.Add(time.Duration(i)*time.Second))
		require.False(t, ok)
	}
	require.Equal(t, 3, g.len())
	// Full: the entry stored longest ago, k0, makes room.
	ok, _ := put("k3", now.Add(3*time.Second))
	require.False(t, ok)
	require.Equal(t, 3, g.len())
	ok, _ = put("k0", now.Add(4*time.Second))
	require.False(t, ok, "k0 was evicted")

	// An entry older than the TTL is no previous value, and is swept.
	later := now.Add(growthTTL + 10*time.Second)
	ok, _ = put("k3", later)
	require.False(t, ok, "expired")
	require.Equal(t, 1, g.len(), "the other expired entries were swept")
	ok, at := put("k3", later.Add(time.Minute))
	require.True(t, ok)
	require.Equal(t, later, at)
}
