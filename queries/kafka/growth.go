package kafka

import (
	"fmt"
	"sync"
	"time"

	"github.com/aurum/canary/queries"
)

// Bounds of the memory `value: growth` keeps. A run evaluates a few
// queries every minute or so; 10,000 entries cover hundreds of concurrent
// runs, and an hour without an evaluation means the run is over.
const (
	maxGrowthEntries = 10000
	growthTTL        = time.Hour
)

// growthStore keeps the previous lags of each (run, query), in memory only:
// a restart forgets them, and the next evaluation of every run is a first
// one again, with no data. That costs one evaluation interval, while
// storing them would tie this source to the analysis store.
type growthStore struct {
	mu        sync.Mutex
	max       int
	ttl       time.Duration
	entries   map[string]growthEntry
	lastSweep time.Time
}

// growthEntry is one evaluation's lags.
type growthEntry struct {
	at     time.Time          // evaluation time, q.Time
	stored time.Time          // when it was stored, by the source's clock, for expiry
	values map[string]float64 // lag by sampleKey
}

func newGrowthStore() *growthStore {
	return &growthStore{max: maxGrowthEntries, ttl: growthTTL, entries: map[string]growthEntry{}}
}

// swap returns the previous entry of key, if there is one that has not
// expired, and stores cur in its place when cur is later. An evaluation at
// the same time as the stored one, or before it (a late retry), leaves the
// store as it is.
func (g *growthStore) swap(key string, cur growthEntry) (prev growthEntry, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := cur.stored
	prev, ok = g.entries[key]
	if ok && now.Sub(prev.stored) > g.ttl {
		ok = false
	}
	if ok && !cur.at.After(prev.at) {
		return prev, true
	}
	if now.Sub(g.lastSweep) >= time.Minute || (!ok && len(g.entries) >= g.max) {
		for k, e := range g.entries {
			if now.Sub(e.stored) > g.ttl {
				delete(g.entries, k)
			}
		}
		g.lastSweep = now
	}
	if _, exists := g.entries[key]; !exists && len(g.entries) >= g.max {
		// Full of live entries: the one stored longest ago belongs to the
		// run most likely over.
		var oldest string
		var oldestAt time.Time
		for k, e := range g.entries {
			if oldest == "" || e.stored.Before(oldestAt) {
				oldest, oldestAt = k, e.stored
			}
		}
		delete(g.entries, oldest)
	}
	g.entries[key] = cur
	return prev, ok
}

func (g *growthStore) len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.entries)
}

// sampleKey identifies a lag sample within its query: the partition, or
// nothing for an aggregate. Topic names cannot hold a '/'.
func sampleKey(s queries.Sample) string {
	if t, ok := s.Labels["topic"]; ok {
		return t + "/" + s.Labels["partition"]
	}
	return ""
}

// growthSamples turns this evaluation's lag samples into their rate of
// change per second since the previous evaluation of the same query in the
// same run, and remembers them for the next one. Samples without a previous
// value (the first evaluation, a new partition) are left out.
func (s *Source) growthSamples(run string, sp spec, at time.Time, lag []queries.Sample, warnings []string) ([]queries.Sample, []string) {
	if run == "" || len(lag) == 0 {
		return nil, warnings
	}
	cur := growthEntry{at: at, stored: s.now(), values: make(map[string]float64, len(lag))}
	for _, l := range lag {
		cur.values[sampleKey(l)] = l.Value
	}
	prev, ok := s.growth.swap(run+"\x00"+sp.key(), cur)
	if !ok {
		return nil, warnings
	}
	dt := at.Sub(prev.at).Seconds()
	if dt <= 0 {
		return nil, append(warnings, fmt.Sprintf("no growth: this evaluation (%s) is not later than the previous one (%s)",
			at.UTC().Format(time.RFC3339Nano), prev.at.UTC().Format(time.RFC3339Nano)))
	}
	out := make([]queries.Sample, 0, len(lag))
	for _, l := range lag {
		if p, ok := prev.values[sampleKey(l)]; ok {
			out = append(out, queries.Sample{Labels: l.Labels, Value: (l.Value - p) / dt})
		}
	}
	if len(out) == 0 {
		return nil, warnings
	}
	return out, warnings
}
