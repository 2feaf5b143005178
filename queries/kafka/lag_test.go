package kafka

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/aurum/canary/queries"
)

// seedLag builds the cluster most lag tests read:
//
//	orders    p0: 10 messages, p1: 15, p2: 5 (the first 2 deleted)
//	payments  p0: 7, p1: 3
//
// Group billing has committed orders p0=4, p1=7 (not p2), payments p0=7,
// p1=1. Group billing-pay has committed only payments p0=2. Group ahead
// has committed orders p0=12, past the end of its log.
func seedLag(t *testing.T, brokers int) *testCluster {
	t.Helper()
	tc := newTestCluster(t, brokers)
	tc.createTopic("orders", 3)
	tc.createTopic("payments", 2)
	tc.produce("orders", 10, 0)
	tc.produce("orders", 15, 1)
	tc.produce("orders", 5, 2)
	tc.produce("payments", 7, 0)
	tc.produce("payments", 3, 1)
	// The oldest offset of orders/2 becomes 2: `from: earliest` must read
	// it rather than assume 0.
	require.NoError(t, tc.admin.DeleteRecords("orders", map[int32]int64{2: 2}))
	tc.commit("billing", map[tp]int64{{"orders", 0}: 4, {"orders", 1}: 7, {"payments", 0}: 7, {"payments", 1}: 1})
	tc.commit("billing-pay", map[tp]int64{{"payments", 0}: 2})
	tc.commit("ahead", map[tp]int64{{"orders", 0}: 12, {"orders", 1}: 15})
	return tc
}

func TestLag(t *testing.T) {
	tc := seedLag(t, 1)
	s := newSource(t, tc)

	for _, tt := range []struct {
		name     string
		fields   map[string]string
		want     map[string]float64 // nil: no samples
		warnings []string           // texts the warnings hold
	}{
		{
			name:   "sum, uncommitted partition counts its whole retained log",
			fields: map[string]string{"group": "billing", "topics": "orders"},
			want:   map[string]float64{"billing": 6 + 8 + 3},
		},
		{
			name:   "sum, uncommitted partition ignored",
			fields: map[string]string{"group": "billing", "topics": "orders", "from": "ignore"},
			want:   map[string]float64{"billing": 6 + 8},
		},
		{
			name:   "max",
			fields: map[string]string{"group": "billing", "topics": "orders", "aggregate": "max"},
			want:   map[string]float64{"billing": 8},
		},
		{
			name:   "none: one sample per partition",
			fields: map[string]string{"group": "billing", "topics": "orders", "aggregate": "none"},
			want:   map[string]float64{"billing orders/0": 6, "billing orders/1": 8, "billing orders/2": 3},
		},
		{
			name:   "no topics: every topic the group committed to",
			fields: map[string]string{"group": "billing"},
			want:   map[string]float64{"billing": 6 + 8 + 3 + 0 + 2},
		},
		{
			name:   "no topics, per partition, ignoring uncommitted",
			fields: map[string]string{"group": "billing", "aggregate": "none", "from": "ignore"},
			want: map[string]float64{
				"billing orders/0": 6, "billing orders/1": 8, "billing payments/0": 0, "billing payments/1": 2,
			},
		},
		{
			name:   "topics listed in any order, with spaces and repeats",
			fields: map[string]string{"group": "billing", "topics": " payments,orders ,payments,"},
			want:   map[string]float64{"billing": 19},
		},
		{
			name:   "a listed topic the group never committed to counts whole under earliest",
			fields: map[string]string{"group": "billing-pay", "topics": "payments,orders", "aggregate": "none"},
			want: map[string]float64{
				"billing-pay payments/0": 5, "billing-pay payments/1": 3,
				"billing-pay orders/0": 10, "billing-pay orders/1": 15, "billing-pay orders/2": 3,
			},
		},
		{
			name:   "no commits for the listed topics is no data",
			fields: map[string]string{"group": "billing-pay", "topics": "orders"},
		},
		{
			name:   "unknown group is no data",
			fields: map[string]string{"group": "nobody"},
		},
		{
			name:   "unknown group with topics is no data",
			fields: map[string]string{"group": "nobody", "topics": "orders"},
		},
		{
			name:     "commit past the newest offset counts as 0, with a warning",
			fields:   map[string]string{"group": "ahead", "topics": "orders", "aggregate": "none", "from": "ignore"},
			want:     map[string]float64{"ahead orders/0": 0, "ahead orders/1": 0},
			warnings: []string{"1 partition committed past the newest offset, counted as lag 0: orders/0 (committed 12, newest 10)"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := query(s, tt.fields)
			require.NoError(t, err)
			if tt.want == nil {
				require.Empty(t, res.Samples)
			} else {
				require.Equal(t, tt.want, values(res))
			}
			require.Len(t, res.Warnings, len(tt.warnings), "%q", res.Warnings)
			for i, w := range tt.warnings {
				require.Contains(t, res.Warnings[i], w)
			}
		})
	}
}

func TestLagLabels(t *testing.T) {
	tc := seedLag(t, 1)
	s := newSource(t, tc)

	res, err := query(s, map[string]string{"group": "billing", "topics": "payments", "aggregate": "none"})
	require.NoError(t, err)
	require.Equal(t, []queries.Sample{
		{Labels: map[string]string{"group": "billing", "topic": "payments", "partition": "0"}, Value: 0},
		{Labels: map[string]string{"group": "billing", "topic": "payments", "partition": "1"}, Value: 2},
	}, res.Samples)

	res, err = query(s, map[string]string{"group": "billing", "topics": "payments", "aggregate": "max"})
	require.NoError(t, err)
	require.Equal(t, []queries.Sample{{Labels: map[string]string{"group": "billing"}, Value: 2}}, res.Samples)
}

func TestBadQueries(t *testing.T) {
	tc := seedLag(t, 1)
	s := newSource(t, tc)

	for _, tt := range []struct {
		name  string
		q     queries.Query
		texts []string
	}{
		{
			name:  "unknown topic",
			q:     queries.Query{Fields: map[string]string{"group": "billing", "topics": "orders,ordres"}},
			texts: []string{`unknown topic "ordres"`},
		},
		{
			name:  "unknown topics",
			q:     queries.Query{Fields: map[string]string{"group": "billing", "topics": "zz,ordres"}},
			texts: []string{`unknown topics "ordres", "zz"`},
		},
		{
			name:  "unknown field",
			q:     queries.Query{Fields: map[string]string{"group": "billing", "topic": "orders"}},
			texts: []string{`unknown field "topic"`, "known: aggregate, from, group, topics, value"},
		},
		{
			name:  "unknown fields",
			q:     queries.Query{Fields: map[string]string{"group": "billing", "topic": "orders", "agg": "sum"}},
			texts: []string{`unknown fields "agg", "topic"`},
		},
		{
			name:  "no group",
			q:     queries.Query{Fields: map[string]string{"topics": "orders"}},
			texts: []string{"no group"},
		},
		{
			name:  "bad aggregate",
			q:     queries.Query{Fields: map[string]string{"group": "billing", "aggregate": "avg"}},
			texts: []string{`aggregate "avg": want one of sum, max, none`},
		},
		{
			name:  "bad from",
			q:     queries.Query{Fields: map[string]string{"group": "billing", "from": "latest"}},
			texts: []string{`from "latest": want one of earliest, ignore`},
		},
		{
			name:  "bad value",
			q:     queries.Query{Fields: map[string]string{"group": "billing", "value": "rate"}},
			texts: []string{`value "rate": want one of lag, growth`},
		},
		{
			name:  "invalid topic name",
			q:     queries.Query{Fields: map[string]string{"group": "billing", "topics": "orders/eu"}},
			texts: []string{`invalid topic name "orders/eu"`},
		},
		{
			name:  "query text",
			q:     queries.Query{Text: "orders", Fields: map[string]string{"group": "billing"}},
			texts: []string{"no query text"},
		},
		{
			name:  "range",
			q:     queries.Query{Fields: map[string]string{"group": "billing"}, Range: time.Minute, Step: time.Second},
			texts: []string{"no range"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Query(t.Context(), tt.q)
			requireKind(t, err, queries.ErrBadQuery, tt.texts...)
			require.Equal(t, "bad_query", queries.Classify(err))
		})
	}
}

// TestNewPartitions adds partitions to a topic between evaluations.
func TestNewPartitions(t *testing.T) {
	tc := newTestCluster(t, 1)
	tc.createTopic("grow", 2)
	tc.produce("grow", 5, 0, 1)
	tc.commit("g", map[tp]int64{{"grow", 0}: 1, {"grow", 1}: 2})
	s := newSource(t, tc)
	clock := time.Now()
	s.now = func() time.Time { return clock }
	sum := map[string]string{"group": "g", "topics": "grow"}

	res, err := query(s, sum)
	require.NoError(t, err)
	require.Equal(t, map[string]float64{"g": 4 + 3}, values(res))

	// New partitions, and a commit to one of them: the commit names a
	// partition the cached metadata lacks, which refreshes it at once.
	tc.createPartitions("grow", 4)
	tc.produce("grow", 10, 2, 3)
	tc.commit("g", map[tp]int64{{"grow", 2}: 6})
	tc.resetCounts()
	res, err = query(s, map[string]string{"group": "g", "topics": "grow", "aggregate": "none"})
	require.NoError(t, err)
	require.Equal(t, map[string]float64{"g grow/0": 4, "g grow/1": 3, "g grow/2": 4, "g grow/3": 10}, values(res))
	require.Equal(t, 1, tc.total(kmsg.Metadata), "one metadata refresh")

	// New partitions nothing has committed to are found when the
	// metadata ages out.
	tc.createPartitions("grow", 5)
	tc.produce("grow", 7, 4)
	res, err = query(s, sum)
	require.NoError(t, err)
	require.Equal(t, map[string]float64{"g": 4 + 3 + 4 + 10}, values(res), "cached metadata is still fresh")
	clock = clock.Add(metadataMaxAge)
	res, err = query(s, sum)
	require.NoError(t, err)
	require.Equal(t, map[string]float64{"g": 4 + 3 + 4 + 10 + 7}, values(res))
}

// TestLeaderMoved moves partitions to other brokers: the old leader
// answers NOT_LEADER_FOR_PARTITION, the source refreshes its metadata and
// asks the new leaders, once.
func TestLeaderMoved(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.createTopic("moving", 6)
	all := map[tp]int64{}
	for p := range int32(6) {
		tc.produce("moving", int(p)+10, p)
		all[tp{"moving", p}] = int64(p)
	}
	tc.commit("g", all)
	s := newSource(t, tc)
	q := map[string]string{"group": "g", "topics": "moving"}
	want := map[string]float64{"g": 6 * 10}

	res, err := query(s, q)
	require.NoError(t, err)
	require.Equal(t, want, values(res))

	for _, p := range []int32{0, 3} {
		leader := tc.LeaderFor("moving", p)
		require.NoError(t, tc.MoveTopicPartition("moving", p, (leader+1)%3))
	}
	tc.resetCounts()
	res, err = query(s, q)
	require.NoError(t, err)
	require.Equal(t, want, values(res))
	require.Equal(t, 1, tc.total(kmsg.Metadata), "one refresh")
	require.Equal(t, 1, tc.total(kmsg.OffsetFetch))
	// Three leaders at first, then one more request per new leader of the
	// moved partitions.
	require.LessOrEqual(t, tc.total(kmsg.ListOffsets), 3+2)

	tc.resetCounts()
	res, err = query(s, q)
	require.NoError(t, err)
	require.Equal(t, want, values(res))
	require.Zero(t, tc.total(kmsg.Metadata), "the refreshed metadata is used")
}

// TestRequestsPerEvaluation pins the cost of an evaluation: one
// OffsetFetch, and at most one ListOffsets per broker for the newest
// offsets, plus one per broker for the oldest ones when `from: earliest`
// meets partitions without a commit.
func TestRequestsPerEvaluation(t *testing.T) {
	tc := newTestCluster(t, 3)
	commits := map[tp]int64{}
	for _, topic := range []string{"a", "b", "c"} {
		tc.createTopic(topic, 10)
		for p := range int32(10) {
			if p != 9 { // partition 9 of each topic has no commit
				commits[tp{topic, p}] = 0
			}
		}
		tc.produce(topic, 2, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	}
	tc.commit("g", commits)
	s := newSource(t, tc)

	for _, tt := range []struct {
		name   string
		fields map[string]string
		want   float64
		// ListOffsets per broker at most
		perBroker int
	}{
		{name: "ignore", fields: map[string]string{"group": "g", "topics": "a,b,c", "from": "ignore"}, want: 3 * 9 * 2, perBroker: 1},
		{name: "earliest", fields: map[string]string{"group": "g", "topics": "a,b,c"}, want: 3 * 10 * 2, perBroker: 2},
		{name: "all committed topics", fields: map[string]string{"group": "g", "from": "ignore"}, want: 3 * 9 * 2, perBroker: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The first evaluation may fetch metadata and find the
			// coordinator; count the next ones.
			_, err := query(s, tt.fields)
			require.NoError(t, err)
			for range 3 {
				tc.resetCounts()
				res, err := query(s, tt.fields)
				require.NoError(t, err)
				require.Equal(t, map[string]float64{"g": tt.want}, values(res))
				require.Equal(t, 1, tc.total(kmsg.OffsetFetch))
				lo := tc.requests(kmsg.ListOffsets)
				require.Len(t, lo, 3, "every broker leads some partitions")
				for b, n := range lo {
					require.LessOrEqual(t, n, tt.perBroker, "ListOffsets to broker %d", b)
				}
				require.Equal(t, 1+tc.total(kmsg.ListOffsets), tc.allRequests(), "nothing else: no metadata, no coordinator lookup")
			}
		})
	}
}

// TestVersions reads lag with the request versions of several Kafka
// releases; from 3.0 OffsetFetch answers per group (version 8).
func TestVersions(t *testing.T) {
	tc := seedSmall(t)
	for _, v := range []string{"0.11.0.0", "1.0.0", "2.1.0", "2.8.0", "3.6.0", "4.0.0"} {
		t.Run(v, func(t *testing.T) {
			s := newSource(t, tc, func(c *ClusterConfig) { c.Version = v })
			res, err := query(s, map[string]string{"group": "g", "aggregate": "none"})
			require.NoError(t, err)
			require.Equal(t, map[string]float64{"g t/0": 7, "g t/1": 6}, values(res))
			res, err = query(s, map[string]string{"group": "nobody"})
			require.NoError(t, err)
			require.Empty(t, res.Samples)
		})
	}
}
