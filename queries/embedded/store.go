package embedded

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// store is the engine's storage: every series in memory, its samples in
// time order, served to the PromQL engine as a storage.Queryable.
//
// It replaces a Prometheus TSDB (tsdb.DB), which did the same job but made
// `canary` link Prometheus's config, service discovery and remote storage,
// and with them every cloud SDK discovery speaks: about 900 packages that
// no code path of ours calls. The engine needs none of what the TSDB adds
// over a sorted slice per series: series files and tests are small, the
// demo keeps minutes of scrapes, and nothing is persisted.
//
// The PromQL engine's answers depend on more than the samples, so the
// store keeps what the TSDB's in-memory head does, and the golden tests
// (testdata/golden, cmd/canary/testdata/golden/engine, recorded from the
// TSDB) hold it to the same answers:
//   - Select lists series in the order they were created when the caller
//     does not ask for them sorted, as the head lists them by series
//     reference. PromQL selects unsorted: the order shows in unsorted
//     results and in errors that name series, and a sum adds a group's
//     samples in it, so another order could move a sum's last bit.
//   - Samples are trimmed to the selected [mint, maxt], and a series with
//     none left is not listed.
//   - Appends are checked as the head checks them: a sample older than
//     its series' newest is out of order; one at the same time is dropped
//     when it is equal, bit for bit, and refused otherwise; a label set
//     with a repeated name and an invalid histogram are refused. The
//     errors are the head's (storage.ErrOutOfOrderSample and the
//     duplicate errors), so users read the messages they read before.
//   - A batch of appends is seen whole or not at all: a query reads the
//     snapshot published by the last commit, never half of a Load.
//   - A series an appender created stays, empty, when the appender rolls
//     back, as in the head, so that it keeps its place in creation order.
//   - A native histogram carries the counter-reset hint the head's chunks
//     give it when read back (see counterResetHint).
//
// Staleness markers (value.StaleNaN) are stored as the float they are;
// PromQL recognises them. Missing samples (`_`) are simply not stored.
type store struct {
	// mu admits one appender at a time; queries never take it.
	mu sync.Mutex
	// all is every series, in creation order, as of the last commit or
	// rollback; index maps a series' labels to its place in all. Both are
	// owned by the appender holding mu.
	all   []*memSeries
	index map[string]int
	// snap is what queries read: a copy of all made at the last commit.
	snap atomic.Pointer[[]*memSeries]
}

// memSeries is one series. A published memSeries is never changed: an
// appender copies it, appends to the copy's slice and publishes the copy.
// Appending may write into the spare capacity of the slice an older copy
// shares, but only past that copy's length, which its readers never read.
type memSeries struct {
	labels  labels.Labels
	samples samples
}

// sample is one stored sample: a float f, or the float histogram fh when
// fh is not nil.
type sample struct {
	t  int64
	f  float64
	fh *histogram.FloatHistogram
}

// errInvalidSample is the TSDB head's ErrInvalidSample, whose text users
// saw in a refused label set; the tsdb package itself is not linked.
var errInvalidSample = errors.New("invalid sample")

func newStore() *store {
	s := &store{index: map[string]int{}}
	s.snap.Store(&[]*memSeries{})
	return s
}

// appender starts a batch of appends. The caller must end it with commit
// or rollback: until then it holds the store's writer lock.
func (s *store) appender() *appender {
	s.mu.Lock()
	return &appender{s: s, pending: map[int]*memSeries{}}
}

// appender collects appends until commit publishes them together.
type appender struct {
	s       *store
	pending map[int]*memSeries // by place in s.all: the uncommitted copies
	done    bool
}

// add appends one sample to the series ls: the float f, or the histogram
// fh when it is not nil (fh is copied, not kept).
func (a *appender) add(ls labels.Labels, t int64, f float64, fh *histogram.FloatHistogram) error {
	if l, dup := ls.HasDuplicateLabelNames(); dup {
		return fmt.Errorf(`label name "%s" is not unique: %w`, l, errInvalidSample)
	}
	if fh != nil {
		if err := fh.Validate(); err != nil {
			return err
		}
	}
	key := string(ls.Bytes(nil))
	i, ok := a.s.index[key]
	if !ok {
		i = len(a.s.all)
		a.s.all = append(a.s.all, &memSeries{labels: ls})
		a.s.index[key] = i
	}
	ms := a.pending[i]
	if ms == nil {
		c := *a.s.all[i]
		ms = &c
		a.pending[i] = ms
	}
	var prev *sample
	if n := len(ms.samples); n > 0 {
		prev = &ms.samples[n-1]
		switch {
		case t < prev.t:
			return storage.ErrOutOfOrderSample
		case t == prev.t:
			return duplicate(prev, f, fh)
		}
	}
	if fh != nil {
		fh = fh.Copy()
		fh.CounterResetHint = counterResetHint(prev, fh)
	}
	ms.samples = append(ms.samples, sample{t: t, f: f, fh: fh})
	return nil
}

// duplicate decides a sample at the time of the series' newest, last, as
// the TSDB head does: an identical sample is dropped, anything else is an
// error.
func duplicate(last *sample, f float64, fh *histogram.FloatHistogram) error {
	switch {
	case fh != nil:
		if !fh.Equals(last.fh) {
			return storage.ErrDuplicateSampleForTimestamp
		}
		return nil
	case last.fh != nil:
		return storage.NewDuplicateHistogramToFloatErr(last.t, f)
	case math.Float64bits(last.f) != math.Float64bits(f):
		return storage.NewDuplicateFloatErr(last.t, last.f, f)
	default:
		return nil
	}
}

// counterResetHint is the hint the TSDB gives fh when it is read back
// after prev, the series' previous sample (nil for none). The head packs
// a series' histograms into chunks: a gauge histogram reads back as a
// gauge; one that continues its chunk reads back as no counter reset;
// the first of a chunk as unknown, which has PromQL compare it with the
// sample before it. A new chunk starts with the series, after a float or
// a stale marker, at a switch between gauge and counter, at a change of
// schema or zero threshold, and at a counter reset: an explicit reset
// hint, or a drop the head's appender detects. The head also starts a
// chunk when one is full, and reads that chunk's first histogram back as
// unknown; PromQL then finds by comparison what the store's "no counter
// reset" says, so the answers are the same.
func counterResetHint(prev *sample, fh *histogram.FloatHistogram) histogram.CounterResetHint {
	if fh.CounterResetHint == histogram.GaugeType {
		return histogram.GaugeType
	}
	if prev == nil || prev.fh == nil || value.IsStaleNaN(prev.fh.Sum) || prev.fh.CounterResetHint == histogram.GaugeType {
		return histogram.UnknownCounterReset
	}
	if value.IsStaleNaN(fh.Sum) {
		return histogram.NotCounterReset
	}
	if fh.Schema != prev.fh.Schema || fh.ZeroThreshold != prev.fh.ZeroThreshold {
		return histogram.UnknownCounterReset
	}
	probe := *fh
	probe.CounterResetHint = histogram.UnknownCounterReset
	if fh.CounterResetHint == histogram.CounterReset || probe.DetectReset(prev.fh) {
		return histogram.UnknownCounterReset
	}
	return histogram.NotCounterReset
}

// commit publishes the batch: queries that start after it see all of it.
func (a *appender) commit() {
	if a.done {
		return
	}
	a.done = true
	for i, ms := range a.pending {
		a.s.all[i] = ms
	}
	snap := slices.Clone(a.s.all)
	a.s.snap.Store(&snap)
	a.s.mu.Unlock()
}

// rollback drops the batch. Series it created stay, without samples.
func (a *appender) rollback() {
	if a.done {
		return
	}
	a.done = true
	a.s.mu.Unlock()
}

// Querier returns a querier over the samples committed so far: appends
// committed later are not seen by it, as with the TSDB's isolation.
func (s *store) Querier(mint, maxt int64) (storage.Querier, error) {
	return &querier{series: *s.snap.Load(), mint: mint, maxt: maxt}, nil
}

// Compile-time check that the store is what promql.Engine queries.
var _ storage.Queryable = (*store)(nil)

// querier reads one snapshot of the store.
type querier struct {
	series     []*memSeries
	mint, maxt int64
}

// Select returns the series every matcher matches, trimmed to the hints'
// time range (the querier's when hints is nil), in creation order or, with
// sortSeries, by labels.
func (q *querier) Select(_ context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = hints.Start, hints.End
	}
	var out []storage.Series
	for _, s := range q.series {
		if !matches(s.labels, ms) {
			continue
		}
		smp := s.samples
		lo := sort.Search(len(smp), func(i int) bool { return smp[i].t >= mint })
		hi := lo + sort.Search(len(smp)-lo, func(i int) bool { return smp[lo+i].t > maxt })
		if lo == hi {
			continue
		}
		out = append(out, &seriesView{labels: s.labels, samples: smp[lo:hi]})
	}
	if sortSeries {
		slices.SortFunc(out, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	}
	return &seriesSet{series: out, i: -1}
}

// matches reports whether every matcher matches ls. A label ls lacks has
// the empty value, as in PromQL: {a=""} matches series without a.
func matches(ls labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(ls.Get(m.Name)) {
			return false
		}
	}
	return true
}

// LabelValues returns the sorted values of the label name among the
// series that have a sample in the querier's range and match ms.
func (q *querier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	seen := map[string]struct{}{}
	set := q.Select(ctx, false, nil, ms...)
	for set.Next() {
		if v := set.At().Labels().Get(name); v != "" {
			seen[v] = struct{}{}
		}
	}
	return limited(seen, hints), nil, nil
}

// LabelNames returns the sorted label names of the series that have a
// sample in the querier's range and match ms.
func (q *querier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	seen := map[string]struct{}{}
	set := q.Select(ctx, false, nil, ms...)
	for set.Next() {
		set.At().Labels().Range(func(l labels.Label) { seen[l.Name] = struct{}{} })
	}
	return limited(seen, hints), nil, nil
}

// limited sorts the set and applies the hints' limit, if any.
func limited(set map[string]struct{}, hints *storage.LabelHints) []string {
	out := make([]string, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	slices.Sort(out)
	if hints != nil && hints.Limit > 0 && len(out) > hints.Limit {
		out = out[:hints.Limit]
	}
	return out
}

// Close releases nothing: a querier holds only a snapshot.
func (q *querier) Close() error { return nil }

// seriesSet iterates over selected series.
type seriesSet struct {
	series []storage.Series
	i      int
}

// Next moves to the next series.
func (s *seriesSet) Next() bool {
	if s.i+1 >= len(s.series) {
		s.i = len(s.series)
		return false
	}
	s.i++
	return true
}

// At returns the current series.
func (s *seriesSet) At() storage.Series { return s.series[s.i] }

// Err is always nil: selecting from memory cannot fail.
func (s *seriesSet) Err() error { return nil }

// Warnings is always empty.
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

// seriesView is a series' samples within a selected range.
type seriesView struct {
	labels  labels.Labels
	samples samples
}

// Labels returns the series' labels.
func (v *seriesView) Labels() labels.Labels { return v.labels }

// resetter is the Reset method of the iterator storage.NewListSeriesIterator
// returns, so that an iterator can be reused for the next series.
type resetter interface{ Reset(storage.Samples) }

// Iterator walks the samples with Prometheus's own list iterator, reusing
// it when it is one of ours.
func (v *seriesView) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	if si, ok := it.(*sampleIterator); ok {
		if r, ok := si.Iterator.(resetter); ok {
			r.Reset(v.samples)
			return si
		}
	}
	return &sampleIterator{storage.NewListSeriesIterator(v.samples)}
}

// sampleIterator is storage's list iterator with the TSDB's contract for
// histograms: the caller gets a histogram of its own, which the engine
// changes and passes back to be written over. The list iterator hands out
// the stored one, which the engine would then overwrite.
type sampleIterator struct {
	chunkenc.Iterator
}

// AtFloatHistogram returns a copy of the current histogram, written into
// fh when it is not nil.
func (it *sampleIterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	t, h := it.Iterator.AtFloatHistogram(nil)
	if fh == nil {
		return t, h.Copy()
	}
	h.CopyTo(fh)
	return t, fh
}

// samples are a series' samples as storage.Samples. Get returns a pointer
// into the slice, so walking them allocates nothing.
type samples []sample

// Get returns sample i.
func (s samples) Get(i int) chunks.Sample { return &s[i] }

// Len returns the number of samples.
func (s samples) Len() int { return len(s) }

// T returns the sample's time in milliseconds.
func (s *sample) T() int64 { return s.t }

// ST returns 0: the store keeps no start timestamps.
func (s *sample) ST() int64 { return 0 }

// F returns the float value; 0 for a histogram.
func (s *sample) F() float64 { return s.f }

// H returns nil: the store keeps only float histograms, as the parser
// produces them.
func (s *sample) H() *histogram.Histogram { return nil }

// FH returns the stored histogram, nil for a float.
func (s *sample) FH() *histogram.FloatHistogram { return s.fh }

// Type says whether the sample is a float or a float histogram.
func (s *sample) Type() chunkenc.ValueType {
	if s.fh != nil {
		return chunkenc.ValFloatHistogram
	}
	return chunkenc.ValFloat
}

// Copy returns a deep copy.
func (s *sample) Copy() chunks.Sample {
	c := *s
	if s.fh != nil {
		c.fh = s.fh.Copy()
	}
	return &c
}
