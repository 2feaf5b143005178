package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/internal/testpg"
)

// healthPolicy reads Kafka lag, its growth, PostgreSQL and an HTTP probe:
// the health of an ingestion pipeline beyond its metrics.
const healthPolicy = `
apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: ingest-health}
spec:
  params:
    namespace: {}
    name: {}
    track: {default: canary}
    api: {pattern: '127\.0\.0\.1:[0-9]+'}
  queries:
    lag:
      kafka: {group: "{{ .name }}-{{ .track }}", topics: [caiso-lmp], aggregate: sum}
    lag_growth:
      kafka: {group: "{{ .name }}-{{ .track }}", topics: [caiso-lmp], value: growth}
    stored:
      postgres: {query: "select count(*) from lmp_prices where track = '{{ .track }}'"}
    api:
      http: {url: "http://{{ .api }}/healthz", json: queue.depth, timeout: 1s}
  rules:
    - {name: lag, expr: lag_growth <= 0 || lag < 1000, noData: pass}
    - {name: lag-ceiling, expr: lag < 5000}
    - {name: storing, expr: stored.up == 1 && stored.value > 0}
    - {name: api, expr: api.up == 1 && api.value < 100}
`

// pipeline is a kfake Kafka cluster with a topic of two partitions, a real
// PostgreSQL with a table of stored prices, and the pipeline's health
// endpoint.
type pipeline struct {
	t       *testing.T
	brokers string
	kafka   *kfake.Cluster
	client  sarama.Client
	pg      *testpg.Server
	api     *httptest.Server
	policy  string
}

func newPipeline(t *testing.T) *pipeline {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "caiso-lmp"))
	require.NoError(t, err)
	t.Cleanup(cluster.Close)
	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	client, err := sarama.NewClient(cluster.ListenAddrs(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })

	pg := testpg.Start(t)
	pg.Exec(t, `create table lmp_prices (track text, price numeric); insert into lmp_prices values ('canary', 41.5), ('primary', 40.9)`)

	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"queue":{"depth":3}}`)
	}))
	t.Cleanup(api.Close)

	dir := t.TempDir()
	policy := filepath.Join(dir, "health.yaml")
	require.NoError(t, os.WriteFile(policy, []byte(healthPolicy), 0o644))
	return &pipeline{t: t, brokers: strings.Join(cluster.ListenAddrs(), ","), kafka: cluster, client: client, pg: pg, api: api, policy: policy}
}

// produce appends n messages to each partition of caiso-lmp.
func (p *pipeline) produce(n int) {
	prod, err := sarama.NewSyncProducerFromClient(p.client)
	require.NoError(p.t, err)
	defer prod.Close()
	var msgs []*sarama.ProducerMessage
	for _, part := range []int32{0, 1} {
		for range n {
			msgs = append(msgs, &sarama.ProducerMessage{Topic: "caiso-lmp", Partition: part, Value: sarama.StringEncoder("lmp")})
		}
	}
	require.NoError(p.t, prod.SendMessages(msgs))
}

// commit sets the group's committed offset on both partitions.
func (p *pipeline) commit(group string, offset int64) {
	coord, err := p.client.Coordinator(group)
	require.NoError(p.t, err)
	req := &sarama.OffsetCommitRequest{ConsumerGroup: group, ConsumerGroupGeneration: -1, Version: 6}
	req.AddBlock("caiso-lmp", 0, offset, 0, "")
	req.AddBlock("caiso-lmp", 1, offset, 0, "")
	_, err = coord.CommitOffset(req)
	require.NoError(p.t, err)
}

func (p *pipeline) eval(t *testing.T, extra ...string) (int, analysis.Result, string) {
	t.Helper()
	args := append([]string{"eval", "--policies", p.policy, "--policy", "ingest-health",
		"--param", "namespace=caiso", "--param", "name=lmp", "--param", "api=" + strings.TrimPrefix(p.api.URL, "http://"),
		"--kafka-brokers", p.brokers, "-o", "json"}, extra...)
	code, stdout, stderr := canary(t, args...)
	var res analysis.Result
	if stdout != "" {
		require.NoError(t, json.Unmarshal([]byte(stdout), &res), stdout)
	}
	return code, res, stderr
}

func outcomes(res analysis.Result) map[string]string {
	out := map[string]string{}
	for _, r := range res.Rules {
		out[r.Name] = string(r.Verdict) + ": " + r.Reason
	}
	return out
}

// TestEvalKafkaAndPostgres evaluates a policy with Kafka lag, PostgreSQL
// and HTTP rules through `canary eval`, against kfake and a real
// PostgreSQL, healthy and in each failure mode.
func TestEvalKafkaAndPostgres(t *testing.T) {
	p := newPipeline(t)
	t.Setenv("CANARY_POSTGRES_DSN", p.pg.DSN())
	p.produce(300)
	p.commit("lmp-canary", 250) // lag 50 per partition

	code, res, stderr := p.eval(t)
	require.Equal(t, exitOK, code, "%s\n%v", stderr, outcomes(res))
	require.Equal(t, map[string]string{
		"lag":         "pass: no data for lag_growth (noData: pass)",
		"lag-ceiling": "pass: 100 < 5000",
		"storing":     "pass: stored.up=1 value=1 (holds)",
		"api":         "pass: api.up=1 value=3 (holds)",
	}, outcomes(res))

	t.Run("canary consumer falls behind", func(t *testing.T) {
		p.produce(3000)
		code, res, _ := p.eval(t)
		require.Equal(t, exitFail, code)
		require.Equal(t, "fail: 6100 >= 5000", outcomes(res)["lag-ceiling"])
	})
	t.Run("a group that does not exist is no data", func(t *testing.T) {
		code, res, _ := p.eval(t, "--param", "track=shadow")
		require.Equal(t, exitFail, code, "storing has no rows for the shadow track")
		require.Equal(t, "inconclusive: no data for lag (noData: inconclusive)", outcomes(res)["lag-ceiling"])
	})
	t.Run("PostgreSQL stopped is a failed probe", func(t *testing.T) {
		p.commit("lmp-canary", 3300) // caught up again
		p.pg.Stop()
		code, res, _ := p.eval(t)
		require.Equal(t, exitFail, code)
		require.Equal(t, "fail: stored.up=0 value=NaN (does not hold)", outcomes(res)["storing"])
		require.NotContains(t, fmt.Sprint(res.Queries.Get("stored").Warnings), "postgres@", "no DSN in warnings")
	})
	t.Run("Kafka down is an error, not a pass", func(t *testing.T) {
		p.kafka.Close()
		code, res, _ := p.eval(t, "--timeout", "3s")
		require.Equal(t, exitFail, code)
		require.Contains(t, outcomes(res)["lag-ceiling"], "error: query lag failed: kafka unavailable")
	})
}

// TestServeKafkaGrowth: lag growth compares each analysis of a run with the
// previous one, through `canary serve` configured by environment.
func TestServeKafkaGrowth(t *testing.T) {
	p := newPipeline(t)
	p.produce(300)
	p.commit("lmp-canary", 300)
	srv := startServe(t, map[string]string{
		"CANARY_DATA_DIR":      t.TempDir(),
		"CANARY_POLICIES":      p.policy,
		"CANARY_KAFKA_BROKERS": p.brokers,
		"CANARY_POSTGRES_DSN":  p.pg.DSN(),
		"CANARY_CACHE_TTL":     "0s",
	})
	analyze := func() analysis.Result {
		t.Helper()
		code, out := srv.call(t, "GET", "/v1/analysis/ingest-health?namespace=caiso&name=lmp&revision=r1&api="+strings.TrimPrefix(p.api.URL, "http://"), "")
		require.Equal(t, 200, code, out)
		var res analysis.Result
		require.NoError(t, json.Unmarshal([]byte(out), &res))
		return res
	}
	res := analyze()
	require.Equal(t, analysis.VerdictPass, res.Verdict, outcomes(res))
	require.Equal(t, "pass: no data for lag_growth (noData: pass)", outcomes(res)["lag"])

	// The consumer stalls while 600 more messages a partition arrive.
	time.Sleep(1100 * time.Millisecond)
	p.produce(600)
	res = analyze()
	require.Equal(t, analysis.VerdictFail, res.Verdict, outcomes(res))
	require.Contains(t, outcomes(res)["lag"], "fail: lag=1200, lag_growth=", "growing lag above 1000 fails")
	growth := res.Queries.Get("lag_growth")
	require.NotNil(t, growth.Value)
	require.Greater(t, float64(*growth.Value), 0.0)
}
