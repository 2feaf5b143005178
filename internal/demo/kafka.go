package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
)

// How often the producer and the consumers act. Both are far shorter than
// any analysis interval, so lag moves smoothly rather than in steps.
const (
	produceTick = 100 * time.Millisecond
	consumeTick = 200 * time.Millisecond
)

// lmpNodes are the pricing nodes the produced messages are about.
var lmpNodes = []string{"TH_NP15_GEN-APND", "TH_SP15_GEN-APND", "TH_ZP26_GEN-APND"}

// kafkaWorld is the demo's Kafka: a kfake cluster, a producer appending
// LMP messages to the topic at a steady rate, and one consumer group per
// service that commits offsets at the service's consume rate.
type kafkaWorld struct {
	cluster    *kfake.Cluster
	topic      string
	partitions int32
	rate       float64 // messages produced per second
	logger     *slog.Logger

	client   sarama.Client
	producer sarama.SyncProducer
	// ends are the partitions' log end offsets, from the producer's
	// results: the demo is the only producer, so it knows them without
	// asking.
	ends []atomic.Int64
}

func newKafkaWorld(cfg Config, logger *slog.Logger) (*kafkaWorld, error) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(cfg.Partitions, cfg.Topic))
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return &kafkaWorld{
		cluster:    c,
		topic:      cfg.Topic,
		partitions: cfg.Partitions,
		rate:       cfg.ProduceRate,
		logger:     logger,
		ends:       make([]atomic.Int64, cfg.Partitions),
	}, nil
}

// brokers are the cluster's addresses, 127.0.0.1:<port>.
func (k *kafkaWorld) brokers() []string { return k.cluster.ListenAddrs() }

// connect makes the client and the producer.
func (k *kafkaWorld) connect() error {
	cfg := sarama.NewConfig()
	cfg.ClientID = "canary-demo"
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	client, err := sarama.NewClient(k.brokers(), cfg)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	producer, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		_ = client.Close()
		return fmt.Errorf("kafka producer: %w", err)
	}
	k.client, k.producer = client, producer
	return nil
}

// close closes the producer, the client and the cluster; it is safe on a
// kafkaWorld that never connected.
func (k *kafkaWorld) close() {
	if k.producer != nil {
		_ = k.producer.Close()
	}
	if k.client != nil {
		_ = k.client.Close()
	}
	k.cluster.Close()
}

// lmpMessage is the body of a produced message: one locational marginal
// price.
type lmpMessage struct {
	Node  string    `json:"node"`
	Price float64   `json:"price"`
	At    time.Time `json:"at"`
}

// produce appends messages at the rate until ctx ends, spread round-robin
// over the partitions. Fractions of a message carry over to the next tick,
// so any rate comes out right on average.
func (k *kafkaWorld) produce(ctx context.Context, rnd *lockedRand) {
	ticker := time.NewTicker(produceTick)
	defer ticker.Stop()
	last, owed, next := time.Now(), 0.0, int32(0)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticker.C:
			owed += k.rate * now.Sub(last).Seconds()
			last = now
			n := int(owed)
			if n == 0 {
				continue
			}
			owed -= float64(n)
			msgs := make([]*sarama.ProducerMessage, n)
			for i := range msgs {
				body, _ := json.Marshal(lmpMessage{
					Node:  lmpNodes[rnd.IntN(len(lmpNodes))],
					Price: math.Round((20+rnd.Float64()*80)*100) / 100,
					At:    now.UTC(),
				})
				msgs[i] = &sarama.ProducerMessage{Topic: k.topic, Partition: next, Value: sarama.ByteEncoder(body)}
				next = (next + 1) % k.partitions
			}
			if err := k.producer.SendMessages(msgs); err != nil {
				if ctx.Err() == nil {
					k.logger.Warn("kafka produce failed", "err", err)
				}
			}
			// Messages that failed have no offset; those that
			// went through move the end.
			for _, m := range msgs {
				if m.Offset+1 > k.ends[m.Partition].Load() && m.Offset >= 0 {
					k.ends[m.Partition].Store(m.Offset + 1)
				}
			}
		}
	}
}

// consumer is one consumer group's position.
type consumer struct {
	group     string
	committed []int64
	// budget is the messages the group may still commit: its rate times
	// the time passed, less what it committed.
	budget float64
}

func (k *kafkaWorld) newConsumer(group string) *consumer {
	return &consumer{group: group, committed: make([]int64, k.partitions)}
}

// consume commits offsets for c at the rate rate() returns until ctx ends.
// The first commit, of offset 0 everywhere, happens in Start, so the group
// exists from the beginning.
func (k *kafkaWorld) consume(ctx context.Context, c *consumer, rate func() float64) {
	ticker := time.NewTicker(consumeTick)
	defer ticker.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticker.C:
			changed := k.advance(c, rate(), now.Sub(last).Seconds())
			last = now
			if !changed {
				continue
			}
			if err := k.commit(c); err != nil && ctx.Err() == nil {
				k.logger.Warn("kafka commit failed", "group", c.group, "err", err)
			}
		}
	}
}

// advance moves c's offsets toward the log ends by rate*dt messages, shared
// evenly between the partitions that have a backlog. A group that has caught
// up banks no budget: a consumer cannot process messages before they
// exist. It reports whether any offset moved.
func (k *kafkaWorld) advance(c *consumer, rate, dt float64) bool {
	var backlog int64
	for p := range c.committed {
		backlog += max(k.ends[p].Load()-c.committed[p], 0)
	}
	if backlog == 0 {
		c.budget = 0
		return false
	}
	if math.IsInf(rate, 1) {
		c.budget = float64(backlog)
	} else {
		c.budget = min(c.budget+rate*dt, float64(backlog))
	}
	moved := false
	// Rounds of even shares, so a partition with little backlog leaves
	// its share to the others.
	for c.budget >= 1 {
		var open []int
		for p := range c.committed {
			if k.ends[p].Load() > c.committed[p] {
				open = append(open, p)
			}
		}
		if len(open) == 0 {
			break
		}
		share := max(int64(c.budget)/int64(len(open)), 1)
		for _, p := range open {
			take := min(share, k.ends[p].Load()-c.committed[p], int64(c.budget))
			if take <= 0 {
				continue
			}
			c.committed[p] += take
			c.budget -= float64(take)
			moved = true
		}
	}
	return moved
}

// commit writes c's offsets with a raw OffsetCommitRequest, generation -1,
// as an admin tool does: kfake answers a new group's OffsetFetch with
// GROUP_ID_NOT_FOUND, so Sarama's offset manager cannot start one, and a
// real consumer group would need a join, which takes a second.
func (k *kafkaWorld) commit(c *consumer) error {
	coord, err := k.client.Coordinator(c.group)
	if err != nil {
		return fmt.Errorf("coordinator of %s: %w", c.group, err)
	}
	req := &sarama.OffsetCommitRequest{ConsumerGroup: c.group, ConsumerGroupGeneration: -1, Version: 6}
	for p, off := range c.committed {
		req.AddBlock(k.topic, int32(p), off, 0, "")
	}
	resp, err := coord.CommitOffset(req)
	if err != nil {
		return fmt.Errorf("commit %s: %w", c.group, err)
	}
	var errs []error
	for topic, parts := range resp.Errors {
		for p, kerr := range parts {
			if !errors.Is(kerr, sarama.ErrNoError) {
				errs = append(errs, fmt.Errorf("commit %s %s/%d: %w", c.group, topic, p, kerr))
			}
		}
	}
	return errors.Join(errs...)
}
