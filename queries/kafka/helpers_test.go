package kafka

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/aurum/canary/queries"
)

// testCluster is a kfake cluster listening on 127.0.0.1, with a Sarama
// client to seed it and a count of the requests each broker handled.
//
// Its brokers listen through switchListeners, so a test can take a broker
// down and bring it back on the same address: kfake cannot restart a broker
// itself, and a proxy in front of it would not do, because clients connect
// to the addresses kfake advertises in its metadata, not to the bootstrap
// address they were given.
type testCluster struct {
	*kfake.Cluster
	t      testing.TB
	client sarama.Client
	admin  sarama.ClusterAdmin

	lnMu sync.Mutex
	lns  []*switchListener // in the order kfake created them: broker 0, 1, ...

	countMu sync.Mutex
	counts  map[int16]map[int32]int // request key → broker → requests

	prodOnce sync.Once
	producer sarama.SyncProducer
}

func newTestCluster(t testing.TB, brokers int, opts ...kfake.Opt) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, counts: map[int16]map[int32]int{}}
	opts = append([]kfake.Opt{kfake.Ports(make([]int, brokers)...), kfake.ListenFn(tc.listen)}, opts...)
	c, err := kfake.NewCluster(opts...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	tc.Cluster = c
	// Observe every request without handling it: returning false lets
	// kfake answer as usual, and keeps the function for the next request.
	c.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		node := c.CurrentNode()
		tc.countMu.Lock()
		if tc.counts[req.Key()] == nil {
			tc.counts[req.Key()] = map[int32]int{}
		}
		tc.counts[req.Key()][node]++
		tc.countMu.Unlock()
		return nil, nil, false
	})
	return tc
}

// seedClient is the Sarama client that creates topics, produces and
// commits; it is created on first use, since a cluster with SASL needs
// credentials.
func (tc *testCluster) seedClient(cfg *sarama.Config) {
	tc.t.Helper()
	if cfg == nil {
		cfg = sarama.NewConfig()
	}
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	client, err := sarama.NewClient(tc.ListenAddrs(), cfg)
	require.NoError(tc.t, err)
	tc.t.Cleanup(func() { _ = client.Close() })
	tc.client = client
	// Closing an admin built on a client closes the client too; the
	// client's cleanup is enough.
	tc.admin, err = sarama.NewClusterAdminFromClient(client)
	require.NoError(tc.t, err)
}

func (tc *testCluster) c() sarama.Client {
	if tc.client == nil {
		tc.seedClient(nil)
	}
	return tc.client
}

// createTopic creates a topic with n partitions.
func (tc *testCluster) createTopic(name string, n int32) {
	tc.t.Helper()
	tc.c()
	require.NoError(tc.t, tc.admin.CreateTopic(name, &sarama.TopicDetail{NumPartitions: n, ReplicationFactor: 1}, false))
}

// createPartitions grows a topic to n partitions.
func (tc *testCluster) createPartitions(topic string, n int32) {
	tc.t.Helper()
	tc.c()
	require.NoError(tc.t, tc.admin.CreatePartitions(topic, n, nil, false))
	// The seeding producer picks partitions from its client's metadata.
	require.NoError(tc.t, tc.client.RefreshMetadata(topic))
}

// produce appends n messages to each of the partitions, in one batch.
func (tc *testCluster) produce(topic string, n int, partitions ...int32) {
	tc.t.Helper()
	client := tc.c()
	tc.prodOnce.Do(func() {
		p, err := sarama.NewSyncProducerFromClient(client)
		require.NoError(tc.t, err)
		tc.producer = p
		// Only the producer: the client belongs to seedClient.
		tc.t.Cleanup(func() { _ = p.Close() })
	})
	var msgs []*sarama.ProducerMessage
	for _, p := range partitions {
		for range n {
			msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: p, Value: sarama.StringEncoder("x")})
		}
	}
	require.NoError(tc.t, tc.producer.SendMessages(msgs))
}

// commit seeds committed offsets with a raw OffsetCommit of generation -1,
// which creates the group: kfake knows no group until one commits.
func (tc *testCluster) commit(group string, offsets map[tp]int64) {
	tc.t.Helper()
	client := tc.c()
	coord, err := client.Coordinator(group)
	require.NoError(tc.t, err)
	req := &sarama.OffsetCommitRequest{ConsumerGroup: group, ConsumerGroupGeneration: -1, Version: 6}
	for x, off := range offsets {
		req.AddBlock(x.topic, x.partition, off, 0, "")
	}
	resp, err := coord.CommitOffset(req)
	require.NoError(tc.t, err)
	for topic, ps := range resp.Errors {
		for p, kerr := range ps {
			require.ErrorIs(tc.t, kerr, sarama.ErrNoError, "commit %s/%d", topic, p)
		}
	}
}

// resetCounts forgets the requests counted so far.
func (tc *testCluster) resetCounts() {
	tc.countMu.Lock()
	clear(tc.counts)
	tc.countMu.Unlock()
}

// requests returns the number of requests of kind key, per broker.
func (tc *testCluster) requests(key kmsg.Key) map[int32]int {
	tc.countMu.Lock()
	defer tc.countMu.Unlock()
	out := map[int32]int{}
	for b, n := range tc.counts[int16(key)] {
		out[b] = n
	}
	return out
}

// total is the number of requests of kind key on all brokers.
func (tc *testCluster) total(key kmsg.Key) int {
	n := 0
	for _, c := range tc.requests(key) {
		n += c
	}
	return n
}

// allRequests is the number of requests of every kind on all brokers.
func (tc *testCluster) allRequests() int {
	tc.countMu.Lock()
	defer tc.countMu.Unlock()
	n := 0
	for _, bs := range tc.counts {
		for _, c := range bs {
			n += c
		}
	}
	return n
}

func (tc *testCluster) listen(network, addr string) (net.Listener, error) {
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, err
	}
	sl := &switchListener{addr: ln.Addr().String(), ln: ln, conns: map[*trackedConn]struct{}{}}
	sl.cond = sync.NewCond(&sl.mu)
	tc.lnMu.Lock()
	tc.lns = append(tc.lns, sl)
	tc.lnMu.Unlock()
	return sl, nil
}

// broker returns the listener of the i-th broker kfake started.
func (tc *testCluster) broker(i int) *switchListener {
	tc.lnMu.Lock()
	defer tc.lnMu.Unlock()
	return tc.lns[i]
}

// switchListener is a listener that can be stopped, which closes its
// socket and every connection it accepted (clients then see refused
// connections, as with a broker that died), and started again on the same
// address. kfake's accept loop ends at the first Accept error, so while the
// listener is stopped Accept waits instead of failing.
type switchListener struct {
	addr string

	mu     sync.Mutex
	cond   *sync.Cond
	ln     net.Listener // nil while stopped
	conns  map[*trackedConn]struct{}
	closed bool
}

func (l *switchListener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		for l.ln == nil && !l.closed {
			l.cond.Wait()
		}
		if l.closed {
			l.mu.Unlock()
			return nil, net.ErrClosed
		}
		ln := l.ln
		l.mu.Unlock()

		c, err := ln.Accept()
		l.mu.Lock()
		switch {
		case l.closed:
			l.mu.Unlock()
			if c != nil {
				c.Close()
			}
			return nil, net.ErrClosed
		case l.ln != ln:
			// Stopped (and maybe restarted) while accepting.
			l.mu.Unlock()
			if c != nil {
				c.Close()
			}
			continue
		case err != nil:
			l.mu.Unlock()
			return nil, err
		}
		tc := &trackedConn{Conn: c, l: l}
		l.conns[tc] = struct{}{}
		l.mu.Unlock()
		return tc, nil
	}
}

// stop takes the broker down.
func (l *switchListener) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln != nil {
		l.ln.Close()
		l.ln = nil
	}
	for c := range l.conns {
		// The raw connection: trackedConn.Close would take l.mu again.
		c.Conn.Close()
	}
	clear(l.conns)
}

// start brings the broker back on its address.
func (l *switchListener) start(t testing.TB) {
	t.Helper()
	var ln net.Listener
	var err error
	// The port is free again at once (Go listens with SO_REUSEADDR), but
	// be patient with a slow kernel.
	for range 50 {
		if ln, err = net.Listen("tcp", l.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, err)
	l.mu.Lock()
	l.ln = ln
	l.cond.Broadcast()
	l.mu.Unlock()
}

func (l *switchListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.cond.Broadcast()
	if l.ln != nil {
		return l.ln.Close()
	}
	return nil
}

func (l *switchListener) Addr() net.Addr {
	a, _ := net.ResolveTCPAddr("tcp", l.addr)
	return a
}

type trackedConn struct {
	net.Conn
	l    *switchListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// newSource builds a Source on tc with a short timeout; edit changes the
// config first.
func newSource(t testing.TB, tc *testCluster, edit ...func(*ClusterConfig)) *Source {
	t.Helper()
	cfg := ClusterConfig{Brokers: tc.ListenAddrs(), Timeout: 3 * time.Second}
	for _, e := range edit {
		e(&cfg)
	}
	s, err := New(cfg, testLogger(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// testLogger discards: an evaluation abandoned by a timed-out query may
// log after its test has ended, which t.Log does not allow.
func testLogger(testing.TB) *slog.Logger { return slog.New(slog.DiscardHandler) }

// query runs a query with the given fields.
func query(s *Source, fields map[string]string) (queries.Result, error) {
	return s.Query(context.Background(), queries.Query{Fields: fields})
}

// values returns the samples as "labels → value", for exact comparisons.
func values(res queries.Result) map[string]float64 {
	out := map[string]float64{}
	for _, s := range res.Samples {
		key := s.Labels["group"]
		if t, ok := s.Labels["topic"]; ok {
			key += " " + t + "/" + s.Labels["partition"]
		}
		out[key] = s.Value
	}
	return out
}

// requireKind checks err's class and that its message holds each of the
// texts.
func requireKind(t *testing.T, err error, kind error, texts ...string) {
	t.Helper()
	require.Error(t, err)
	require.True(t, errors.Is(err, kind), "want %v, got %v", kind, err)
	for _, s := range texts {
		require.Contains(t, err.Error(), s)
	}
}
