package kafka

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// BenchmarkLag1000Partitions3Brokers reads the summed lag of one group over
// 10 topics × 100 partitions led by 3 kfake brokers, over TCP on 127.0.0.1.
// Each evaluation costs one OffsetFetch and one ListOffsets per broker:
// 4 requests, whatever the number of partitions (a request per partition
// would be 1,001).
//
// Measured on the project's machine (AMD EPYC, 2 cores, load average 0.6;
// go test -bench BenchmarkLag1000 -count 3), kfake in the same process, so
// B/op and allocs/op include the brokers' side:
//
//	BenchmarkLag1000Partitions3Brokers-2   636   1.94 ms/op   4.000 requests/eval   1.38 MB/op   6359 allocs/op
//	BenchmarkLag1000Partitions3Brokers-2   618   2.00 ms/op   4.000 requests/eval   1.40 MB/op   6357 allocs/op
//	BenchmarkLag1000Partitions3Brokers-2   520   2.11 ms/op   4.000 requests/eval   1.39 MB/op   6356 allocs/op
//
// For comparison, the newest offsets alone read with client.GetOffset per
// partition took 30.8 ms per evaluation on the same cluster: 1,000
// ListOffsets requests, one round trip after the other.
func BenchmarkLag1000Partitions3Brokers(b *testing.B) {
	tc := newTestCluster(b, 3)
	commits := map[tp]int64{}
	var topics []string
	partitions := make([]int32, 100)
	for p := range partitions {
		partitions[p] = int32(p)
	}
	want := 0.0
	for i := range 10 {
		name := fmt.Sprintf("topic-%02d", i)
		topics = append(topics, name)
		tc.createTopic(name, 100)
		tc.produce(name, 3, partitions...)
		for _, p := range partitions {
			commits[tp{name, p}] = int64(p % 3)
			want += float64(3 - p%3)
		}
	}
	tc.commit("g", commits)
	s := newSource(b, tc)
	fields := map[string]string{"group": "g", "topics": strings.Join(topics, ","), "aggregate": "sum"}

	// The first evaluation fetches metadata and finds the coordinator.
	res, err := query(s, fields)
	require.NoError(b, err)
	require.Equal(b, map[string]float64{"g": want}, values(res))
	tc.resetCounts()

	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if _, err := query(s, fields); err != nil {
			b.Fatal(err)
		}
		n++
	}
	perEval := float64(tc.allRequests()) / float64(n)
	b.ReportMetric(perEval, "requests/eval")
	require.Equal(b, n, tc.total(kmsg.OffsetFetch), "one OffsetFetch per evaluation")
	require.LessOrEqual(b, perEval, 1.0+3, "OffsetFetch + one ListOffsets per broker")
}
