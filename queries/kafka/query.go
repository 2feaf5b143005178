package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/aurum/canary/queries"
)

// Values of the query fields.
const (
	AggregateSum  = "sum"
	AggregateMax  = "max"
	AggregateNone = "none"

	FromEarliest = "earliest"
	FromIgnore   = "ignore"

	ValueLag    = "lag"
	ValueGrowth = "growth"
)

// fieldNames are the query fields this source reads, sorted for messages.
var fieldNames = []string{"aggregate", "from", "group", "topics", "value"}

// spec is a parsed query, in a normal form: two queries that mean the same
// have equal specs, and so share their previous value for growth.
type spec struct {
	group     string
	topics    []string // sorted, no duplicates; nil means every committed topic
	aggregate string
	from      string
	value     string
}

// parseQuery reads q.Fields. Defaults fill in what is missing; anything the
// source does not know is a bad query, so a typo is not silently ignored.
func parseQuery(q queries.Query) (spec, error) {
	if q.Text != "" {
		return spec{}, badQuery("kafka queries have no query text, only fields (%s)", strings.Join(fieldNames, ", "))
	}
	if q.Range != 0 {
		return spec{}, badQuery("kafka queries have no range: lag is read at one instant")
	}
	if msg := queries.UnknownFields(q.Fields, strings.Join(fieldNames, ", "), func(name string) bool {
		return slices.Contains(fieldNames, name)
	}); msg != "" {
		return spec{}, badQuery("%s", msg)
	}
	sp := spec{
		group:     q.Fields["group"],
		aggregate: q.Fields["aggregate"],
		from:      q.Fields["from"],
		value:     q.Fields["value"],
	}
	if strings.TrimSpace(sp.group) == "" {
		return spec{}, badQuery("no group: say which consumer group's lag to read")
	}
	if t := q.Fields["topics"]; strings.TrimSpace(t) != "" {
		for _, name := range strings.Split(t, ",") {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			if err := checkTopicName(name); err != nil {
				return spec{}, err
			}
			sp.topics = append(sp.topics, name)
		}
		slices.Sort(sp.topics)
		sp.topics = slices.Compact(sp.topics)
	}
	choose := func(field string, v *string, allowed ...string) error {
		if *v == "" {
			*v = allowed[0]
			return nil
		}
		if !slices.Contains(allowed, *v) {
			return badQuery("%s %q: want one of %s", field, *v, strings.Join(allowed, ", "))
		}
		return nil
	}
	if err := choose("aggregate", &sp.aggregate, AggregateSum, AggregateMax, AggregateNone); err != nil {
		return spec{}, err
	}
	if err := choose("from", &sp.from, FromEarliest, FromIgnore); err != nil {
		return spec{}, err
	}
	if err := choose("value", &sp.value, ValueLag, ValueGrowth); err != nil {
		return spec{}, err
	}
	return sp, nil
}

// checkTopicName applies Kafka's rules for topic names, so that a rendered
// template that went wrong is reported as such rather than as an unknown
// topic.
func checkTopicName(name string) error {
	if name == "." || name == ".." || len(name) > 249 {
		return badQuery("invalid topic name %q", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return badQuery("invalid topic name %q: only letters, digits, '.', '_' and '-' are allowed", name)
		}
	}
	return nil
}

// key identifies the query among those of one run.
func (sp spec) key() string {
	return strings.Join([]string{sp.group, strings.Join(sp.topics, ","), sp.aggregate, sp.from}, "\x00")
}

// Query reads the lag of the consumer group q.Fields["group"]. Fields:
//
//   - group (required): the consumer group.
//   - topics: comma-separated topic names. Empty means every topic the
//     group has committed offsets for. A listed topic that does not exist
//     is a bad query.
//   - aggregate: sum (default) or max give one sample labelled {group};
//     none gives one sample per partition labelled {group, topic,
//     partition}.
//   - from: what a partition without a committed offset counts as.
//     earliest (default) counts its whole retained log (newest − oldest
//     offset), as a consumer starting from the beginning would see it;
//     ignore leaves it out. With topics listed, that is every partition of
//     every listed topic; without, every partition of the topics the
//     group has committed to.
//   - value: lag (default) is newest − committed offset, per partition
//     and never negative (a commit past the newest offset counts as 0, with
//     a warning). growth is the lag's rate of change per second since the
//     previous evaluation of the same query in the same run (q.Run); see
//     below.
//
// A group that does not exist, or has committed nothing to the topics, is
// no data: an empty result, not an error, so the rule's noData outcome
// decides.
//
// Growth needs a previous evaluation: the first one of a run, and any
// without q.Run, return no samples. Previous lags are kept in memory (at
// most 10,000 queries' worth, each for an hour), so restarting the process
// forgets them and the next evaluation of each run is again a first one.
// The evaluation time is q.Time, or now when it is zero.
//
// Errors wrap queries.ErrBadQuery, queries.ErrUnavailable or
// queries.ErrTimeout; when ctx is canceled they wrap context.Canceled. The
// call returns by the per-query timeout even when a broker stops
// answering; the abandoned request then ends by itself, and its connection
// is replaced.
func (s *Source) Query(ctx context.Context, q queries.Query) (queries.Result, error) {
	sp, err := parseQuery(q)
	if err != nil {
		return queries.Result{}, err
	}
	at := q.Time
	if at.IsZero() {
		at = s.now()
	}
	qctx, cancel := context.WithTimeoutCause(ctx, s.timeout, s.timeoutCause)
	defer cancel()
	if qctx.Err() != nil {
		return queries.Result{}, contextError(ctx, qctx, "")
	}
	c, err := s.acquire()
	if err != nil {
		return queries.Result{}, err
	}

	// Sarama takes no context. The evaluation runs in its own goroutine so
	// that Query can return when qctx ends, whatever a broker does; the
	// goroutine stops at its next step, or when Sarama's own timeouts (set
	// from the same budget) end the request it is blocked in.
	ev := &evaluation{s: s, c: c, ctx: qctx, sp: sp}
	done := make(chan evalResult, 1)
	go func() {
		lags, warnings, err := ev.run()
		s.release(c, err != nil && (errors.Is(err, queries.ErrUnavailable) || errors.Is(err, queries.ErrTimeout)))
		done <- evalResult{lags, warnings, err}
	}()

	var r evalResult
	select {
	case r = <-done:
	case <-qctx.Done():
		if ctx.Err() == nil {
			// Our own timeout: a broker is too slow or gone. Later queries
			// start over with a new client rather than queue behind it.
			s.retire(c)
		}
		return queries.Result{}, contextError(ctx, qctx, ev.currentStep())
	}
	if r.err != nil {
		if qctx.Err() != nil {
			return queries.Result{}, contextError(ctx, qctx, ev.currentStep())
		}
		return queries.Result{}, r.err
	}
	samples := toSamples(sp, r.lags)
	res := queries.Result{Warnings: r.warnings}
	if sp.value == ValueGrowth {
		res.Samples, res.Warnings = s.growthSamples(q.Run, sp, at, samples, res.Warnings)
	} else {
		res.Samples = samples
	}
	return res, nil
}

type evalResult struct {
	lags     []partitionLag
	warnings []string
	err      error
}

// partitionLag is the lag of one partition.
type partitionLag struct {
	tp
	lag int64
}

// tp names a partition.
type tp struct {
	topic     string
	partition int32
}

func (p tp) String() string { return p.topic + "/" + strconv.FormatInt(int64(p.partition), 10) }

// toSamples turns per-partition lags into the query's samples; no
// partitions means no samples.
func toSamples(sp spec, lags []partitionLag) []queries.Sample {
	if len(lags) == 0 {
		return nil
	}
	switch sp.aggregate {
	case AggregateNone:
		out := make([]queries.Sample, len(lags))
		for i, l := range lags {
			out[i] = queries.Sample{
				Labels: map[string]string{"group": sp.group, "topic": l.topic, "partition": strconv.FormatInt(int64(l.partition), 10)},
				Value:  float64(l.lag),
			}
		}
		return out
	case AggregateMax:
		m := lags[0].lag
		for _, l := range lags[1:] {
			m = max(m, l.lag)
		}
		return []queries.Sample{{Labels: map[string]string{"group": sp.group}, Value: float64(m)}}
	default:
		var sum int64
		for _, l := range lags {
			sum += l.lag
		}
		return []queries.Sample{{Labels: map[string]string{"group": sp.group}, Value: float64(sum)}}
	}
}

// evaluation is one run of a query against one client.
type evaluation struct {
	s   *Source
	c   *conn
	ctx context.Context
	sp  spec

	step atomic.Pointer[string] // what the evaluation is waiting for, for timeout messages
}

func (ev *evaluation) setStep(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	ev.step.Store(&s)
}

func (ev *evaluation) currentStep() string {
	if p := ev.step.Load(); p != nil {
		return *p
	}
	return ""
}
