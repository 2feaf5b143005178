package kafka

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/IBM/sarama"
)

// run reads the lag of every partition the query selects, in topic and
// partition order. No partitions and no error means no data.
//
// The requests it makes, when the cached metadata is good: one OffsetFetch
// to the group's coordinator, then one ListOffsets per partition leader for
// the newest offsets, and, only when `from: earliest` meets partitions
// without a commit, one more per leader of those for the oldest offsets.
// Metadata is asked for only when it is older than metadataMaxAge, when the
// group has committed to a partition it does not list, or when a leader
// refuses a partition (it moved); the refused partitions are then asked
// for once more.
func (ev *evaluation) run() ([]partitionLag, []string, error) {
	sp := ev.sp
	var warnings []string
	if sp.topics != nil {
		// A misspelled topic is reported before anything else is asked.
		unknown, err := ev.freshen(sp.topics, false)
		if err != nil {
			return nil, nil, err
		}
		if len(unknown) > 0 {
			return nil, nil, badQuery("unknown %s %s", plural(len(unknown), "topic"), quoteList(unknown, len(unknown)))
		}
	}
	if err := ev.ctx.Err(); err != nil {
		return nil, nil, err
	}
	committed, err := ev.fetchCommitted()
	if err != nil {
		return nil, nil, err
	}
	topics := sp.topics
	if topics == nil {
		topics = slices.Sorted(maps.Keys(committed))
		if len(topics) == 0 {
			return nil, nil, nil
		}
		unknown, err := ev.freshen(topics, false)
		if err != nil {
			return nil, nil, err
		}
		if len(unknown) > 0 {
			// Commits outlive their topic until they expire; they are the
			// group's history, not something the query asked for.
			if len(unknown) == 1 {
				warnings = append(warnings, fmt.Sprintf("skipped topic %q: the group has committed offsets for it, but it no longer exists", unknown[0]))
			} else {
				warnings = append(warnings, fmt.Sprintf("skipped topics %s: the group has committed offsets for them, but they no longer exist", quoteList(unknown, 5)))
			}
			topics = slices.DeleteFunc(topics, func(t string) bool { return slices.Contains(unknown, t) })
		}
	}
	if !slices.ContainsFunc(topics, func(t string) bool { return len(committed[t]) > 0 }) {
		// The group exists but has never committed to these topics: it
		// has not started, which is for the rule to judge, not an error.
		return nil, warnings, nil
	}
	if err := ev.ctx.Err(); err != nil {
		return nil, nil, err
	}
	parts, w, err := ev.partitions(topics, committed)
	if err != nil {
		return nil, nil, err
	}
	warnings = append(warnings, w...)

	var newest, oldest []tp
	for _, t := range topics {
		for _, p := range parts[t] {
			x := tp{t, p}
			if _, ok := committed[t][p]; ok {
				newest = append(newest, x)
			} else if sp.from == FromEarliest {
				newest = append(newest, x)
				oldest = append(oldest, x)
			}
		}
	}
	if len(newest) == 0 {
		return nil, warnings, nil
	}
	offsets, err := ev.listOffsets(map[int64][]tp{sarama.OffsetNewest: newest, sarama.OffsetOldest: oldest})
	if err != nil {
		return nil, nil, err
	}

	lags := make([]partitionLag, 0, len(newest))
	var clamped []string
	for _, x := range newest {
		end := offsets[sarama.OffsetNewest][x]
		start, ok := committed[x.topic][x.partition]
		if !ok {
			start = offsets[sarama.OffsetOldest][x]
		}
		lag := end - start
		if lag < 0 {
			if ok {
				clamped = append(clamped, fmt.Sprintf("%s (committed %d, newest %d)", x, start, end))
			}
			lag = 0
		}
		lags = append(lags, partitionLag{x, lag})
	}
	if len(clamped) > 0 {
		// A commit past the end of the log: the topic was recreated or
		// truncated, or the consumer commits offsets it made up. Negative
		// lag would hide the lag of the other partitions in a sum.
		warnings = append(warnings, fmt.Sprintf("%d %s committed past the newest offset, counted as lag 0: %s",
			len(clamped), plural(len(clamped), "partition"), listSome(clamped, 5)))
	}
	return lags, warnings, nil
}

// fetchCommitted asks the group's coordinator for every offset the group
// has committed, in one OffsetFetch, and returns those at or above zero by
// topic and partition. A group that does not exist has committed nothing.
func (ev *evaluation) fetchCommitted() (map[string]map[int32]int64, error) {
	client, group := ev.c.client, ev.sp.group
	for attempt := 1; ; attempt++ {
		what := fmt.Sprintf("finding the coordinator of group %q", group)
		ev.setStep("%s", what)
		coord, err := client.Coordinator(group)
		if err != nil {
			return nil, requestError(what, err)
		}
		what = fmt.Sprintf("fetching the committed offsets of group %q from broker %d", group, coord.ID())
		ev.setStep("%s", what)
		// A nil partition list asks for every partition the group has
		// committed to; it is also what lets a commit to a partition the
		// metadata does not know yet reveal that partition.
		resp, err := coord.FetchOffset(sarama.NewOffsetFetchRequest(ev.s.version, group, nil))
		if err != nil {
			return nil, requestError(what, err)
		}
		switch kerr := resp.GroupError(); {
		case errors.Is(kerr, sarama.ErrNoError):
		case errors.Is(kerr, sarama.ErrGroupIDNotFound):
			// Kafka answers an unknown group with no offsets; some
			// brokers (kfake, newer group coordinators) with this error.
			return nil, nil
		case attempt == 1 && (errors.Is(kerr, sarama.ErrNotCoordinatorForConsumer) ||
			errors.Is(kerr, sarama.ErrConsumerCoordinatorNotAvailable) ||
			errors.Is(kerr, sarama.ErrOffsetsLoadInProgress)):
			// The group moved to another broker, or its new coordinator
			// is still loading it: ask who coordinates it now, once.
			ev.s.logger.Debug("kafka group coordinator changed; asking again", "group", group, "err", kerr)
			if err := client.RefreshCoordinator(group); err != nil {
				return nil, requestError(fmt.Sprintf("finding the coordinator of group %q", group), err)
			}
			continue
		default:
			return nil, requestError(what, kerr)
		}
		blocks := resp.Blocks
		if resp.Version >= 8 {
			blocks = nil
			if g := resp.GetGroup(group); g != nil {
				blocks = g.Blocks
			}
		}
		out := make(map[string]map[int32]int64, len(blocks))
		for t, ps := range blocks {
			for p, b := range ps {
				switch {
				case errors.Is(b.Err, sarama.ErrUnknownTopicOrPartition):
					// Old brokers flag commits to deleted topics so.
					continue
				case !errors.Is(b.Err, sarama.ErrNoError):
					return nil, requestError(fmt.Sprintf("committed offset of group %q for %s", group, tp{t, p}), b.Err)
				case b.Offset < 0:
					continue // no commit
				}
				if out[t] == nil {
					out[t] = map[int32]int64{}
				}
				out[t][p] = b.Offset
			}
		}
		return out, nil
	}
}

// freshen makes sure the client's cached metadata of topics is younger than
// metadataMaxAge (all of them when force is set), refreshing the others in
// one Metadata request, and returns the topics the cluster does not have.
func (ev *evaluation) freshen(topics []string, force bool) (unknown []string, err error) {
	c, now := ev.c, ev.s.now()
	var stale []string
	c.mu.Lock()
	for _, t := range topics {
		if at, ok := c.fresh[t]; force || !ok || now.Sub(at) >= ev.s.metadataMaxAge {
			stale = append(stale, t)
		}
	}
	c.mu.Unlock()
	if len(stale) > 0 {
		what := "fetching the metadata of " + plural(len(stale), "topic") + " " + quoteList(stale, 5)
		ev.setStep("%s", what)
		if err := c.client.RefreshMetadata(stale...); err != nil && !topicError(err) {
			return nil, requestError(what, err)
		}
	}
	known, err := c.client.Topics()
	if err != nil {
		return nil, requestError("reading cached metadata", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range topics {
		if !slices.Contains(known, t) {
			// Not marked fresh: the next query asks again, so a topic
			// created meanwhile is found at once.
			unknown = append(unknown, t)
			delete(c.fresh, t)
		} else if slices.Contains(stale, t) {
			c.fresh[t] = now
		}
	}
	return unknown, nil
}

// topicError tells a metadata refresh that failed for some topics (which
// the caller then finds missing from the cache) from one that failed
// altogether.
func topicError(err error) bool {
	if errors.Is(err, sarama.ErrOutOfBrokers) || errors.Is(err, sarama.ErrClosedClient) ||
		errors.Is(err, sarama.ErrTopicAuthorizationFailed) {
		return false
	}
	return errors.Is(err, sarama.ErrUnknownTopicOrPartition) ||
		errors.Is(err, sarama.ErrInvalidTopic) ||
		errors.Is(err, sarama.ErrLeaderNotAvailable)
}

// partitions returns the partitions of each topic from the cached metadata.
// When the group has committed to a partition the cache does not list,
// partitions were added since it was fetched: the metadata of those topics
// is fetched again, once.
func (ev *evaluation) partitions(topics []string, committed map[string]map[int32]int64) (map[string][]int32, []string, error) {
	client := ev.c.client
	parts := make(map[string][]int32, len(topics))
	read := func(ts []string) (missing []string, err error) {
		for _, t := range ts {
			ps, err := client.Partitions(t)
			if err != nil {
				return nil, requestError(fmt.Sprintf("reading the partitions of topic %q", t), err)
			}
			parts[t] = ps
			for p := range committed[t] {
				if _, found := slices.BinarySearch(ps, p); !found {
					missing = append(missing, t)
					break
				}
			}
		}
		return missing, nil
	}
	stale, err := read(topics)
	if err != nil || len(stale) == 0 {
		return parts, nil, err
	}
	ev.s.logger.Debug("kafka group committed to partitions the cached metadata lacks; refreshing", "group", ev.sp.group, "topics", stale)
	if _, err := ev.freshen(stale, true); err != nil {
		return nil, nil, err
	}
	still, err := read(stale)
	if err != nil {
		return nil, nil, err
	}
	var warnings []string
	for _, t := range still {
		var gone []string
		for p := range committed[t] {
			if _, found := slices.BinarySearch(parts[t], p); !found {
				gone = append(gone, tp{t, p}.String())
			}
		}
		slices.Sort(gone)
		warnings = append(warnings, fmt.Sprintf("skipped %s %s: the group has committed offsets for %s, but topic %q has no such %s",
			plural(len(gone), "partition"), listSome(gone, 5), pronoun(len(gone)), t, plural(len(gone), "partition")))
	}
	return parts, warnings, nil
}

// offsetAsk is one ListOffsets request: the partitions one broker leads,
// for one timestamp (sarama.OffsetNewest or sarama.OffsetOldest).
type offsetAsk struct {
	broker *sarama.Broker
	ts     int64
	parts  []tp
}

// listOffsets reads the offsets of want (by timestamp) with one request per
// leader and timestamp, all in flight at once. Partitions a broker refuses
// because it no longer leads them, or whose leader is unknown, are asked
// for once more after a metadata refresh.
func (ev *evaluation) listOffsets(want map[int64][]tp) (map[int64]map[tp]int64, error) {
	got := make(map[int64]map[tp]int64, len(want))
	for ts := range want {
		got[ts] = map[tp]int64{}
	}
	for round := 1; ; round++ {
		if err := ev.ctx.Err(); err != nil {
			return nil, err
		}
		asks, retry := ev.byLeader(want)
		if len(asks) > 0 {
			ev.setStep("listing offsets on %s %s", plural(len(asks), "broker"), brokerList(asks))
		}
		answers := make([]struct {
			resp *sarama.OffsetResponse
			err  error
		}, len(asks))
		var wg sync.WaitGroup
		for i, a := range asks {
			wg.Go(func() {
				req := sarama.NewOffsetRequest(ev.s.version)
				for _, x := range a.parts {
					req.AddBlock(x.topic, x.partition, a.ts, 1)
				}
				answers[i].resp, answers[i].err = a.broker.GetAvailableOffsets(req)
			})
		}
		wg.Wait()

		for i, a := range asks {
			resp, err := answers[i].resp, answers[i].err
			if err != nil {
				// The leader is gone or unreachable; a refresh may name
				// another.
				for _, x := range a.parts {
					retry.add(a.ts, x, fmt.Errorf("broker %d (%s): %w", a.broker.ID(), a.broker.Addr(), err))
				}
				continue
			}
			for _, x := range a.parts {
				b := resp.GetBlock(x.topic, x.partition)
				switch {
				case b == nil:
					retry.add(a.ts, x, sarama.ErrIncompleteResponse)
				case errors.Is(b.Err, sarama.ErrNoError):
					got[a.ts][x] = b.Offset
				case staleLeader(b.Err):
					retry.add(a.ts, x, b.Err)
				default:
					return nil, requestError(fmt.Sprintf("listing the offsets of %s on broker %d", x, a.broker.ID()), b.Err)
				}
			}
		}
		if len(retry.want) == 0 {
			return got, nil
		}
		if round == 2 {
			return nil, requestError(fmt.Sprintf("listing the offsets of %s %s", plural(len(retry.errs), "partition"), retry.examples()), retry.first)
		}
		if err := ev.ctx.Err(); err != nil {
			return nil, err
		}
		ev.s.logger.Debug("kafka partition leaders moved or are unknown; refreshing metadata", "partitions", retry.examples(), "err", retry.first)
		if _, err := ev.freshen(retry.topics(), true); err != nil {
			return nil, err
		}
		want = retry.want
	}
}

// byLeader sorts want into one ask per leader and timestamp, from the
// cached metadata. Partitions without a known leader go to retry; after the
// first one of a topic the others are not looked up, because each lookup
// of a partition without a leader makes Sarama fetch metadata again.
func (ev *evaluation) byLeader(want map[int64][]tp) ([]offsetAsk, *retrySet) {
	retry := &retrySet{want: map[int64][]tp{}}
	type key struct {
		broker int32
		ts     int64
	}
	index := map[key]int{}
	var asks []offsetAsk
	for _, ts := range slices.Sorted(maps.Keys(want)) {
		leaderless := map[string]error{}
		for _, x := range want[ts] {
			if err, ok := leaderless[x.topic]; ok {
				retry.add(ts, x, err)
				continue
			}
			b, err := ev.c.client.Leader(x.topic, x.partition)
			if err != nil {
				leaderless[x.topic] = err
				retry.add(ts, x, err)
				continue
			}
			k := key{b.ID(), ts}
			i, ok := index[k]
			if !ok {
				i = len(asks)
				index[k] = i
				asks = append(asks, offsetAsk{broker: b, ts: ts})
			}
			asks[i].parts = append(asks[i].parts, x)
		}
	}
	return asks, retry
}

// staleLeader reports the ListOffsets errors that mean the metadata named
// the wrong broker, or one that is not ready yet: refresh and ask again.
func staleLeader(err error) bool {
	for _, e := range []error{
		sarama.ErrNotLeaderForPartition, sarama.ErrUnknownTopicOrPartition, sarama.ErrLeaderNotAvailable,
		sarama.ErrFencedLeaderEpoch, sarama.ErrUnknownLeaderEpoch, sarama.ErrOffsetNotAvailable,
		sarama.ErrReplicaNotAvailable, sarama.ErrKafkaStorageError,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// retrySet collects the partitions whose offsets are to be asked for again.
type retrySet struct {
	want  map[int64][]tp
	errs  map[tp]error
	first error
}

func (r *retrySet) add(ts int64, x tp, err error) {
	r.want[ts] = append(r.want[ts], x)
	if r.errs == nil {
		r.errs = map[tp]error{}
		r.first = err
	}
	if _, ok := r.errs[x]; !ok {
		r.errs[x] = err
	}
}

func (r *retrySet) topics() []string {
	var ts []string
	for x := range r.errs {
		ts = append(ts, x.topic)
	}
	slices.Sort(ts)
	return slices.Compact(ts)
}

// examples names a few of the partitions, in order.
func (r *retrySet) examples() string {
	xs := slices.SortedFunc(maps.Keys(r.errs), func(a, b tp) int {
		if c := strings.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return int(a.partition - b.partition)
	})
	names := make([]string, len(xs))
	for i, x := range xs {
		names[i] = x.String()
	}
	return listSome(names, 5)
}

func brokerList(asks []offsetAsk) string {
	var ids []int
	for _, a := range asks {
		ids = append(ids, int(a.broker.ID()))
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(id)
	}
	return strings.Join(s, ", ")
}

// plural is noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return noun
	}
	return noun + "s"
}

func pronoun(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

// quoteList quotes names and lists at most n of them.
func quoteList(names []string, n int) string {
	q := make([]string, len(names))
	for i, s := range names {
		q[i] = strconv.Quote(s)
	}
	return listSome(q, n)
}

// listSome joins the first n items and says how many more there are, so
// that an error about a thousand partitions stays readable.
func listSome(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + fmt.Sprintf(" and %d more", len(items)-n)
}
