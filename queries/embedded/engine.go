// Package embedded is a queries.Source backed by a Prometheus that lives in
// the process: the real PromQL engine of github.com/prometheus/prometheus
// over a private, in-memory store of the loaded series. It backs `canary
// test` (policy unit tests in the spirit of `promtool test rules`), `canary
// eval --series FILE`, `canary backtest --series FILE` and demos that
// append scraped samples while queries run.
//
// Series are loaded in promtool's expanding notation ("0+10x30", "1 _ 3",
// "stale") so that people's Prometheus test habits carry over, and queries
// go through the same engine a Prometheus server uses, so a policy that
// passes here reads its numbers the same way in production.
package embedded

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/aurum/canary/queries"
)

// Defaults applied to zero Options fields.
const (
	// DefaultMaxSamples bounds the samples one query may hold in memory
	// (about 16 bytes each, so roughly 160 MB). Prometheus defaults to 50
	// million; test and demo data sets are far smaller, and a runaway range
	// query should fail rather than take the machine down.
	DefaultMaxSamples = 10_000_000
	// DefaultTimeout bounds one query. It is shorter than Prometheus's 2m
	// because the data is small and in memory: a query that needs longer is
	// a mistake, not a slow disk.
	DefaultTimeout = 30 * time.Second
	// DefaultLookbackDelta is how far back an instant selector looks for a
	// sample, the same 5m a Prometheus server uses, so staleness behaves
	// the same as in production.
	DefaultLookbackDelta = 5 * time.Minute
	// DefaultSubqueryStep is the step of a subquery written without one
	// (`x[30m:]`); Prometheus uses the global evaluation interval, whose
	// default is 1m.
	DefaultSubqueryStep = time.Minute
)

// Limits on what a result carries back.
const (
	// maxWarnings and maxInfos bound the annotations copied into
	// Result.Warnings; the rest are summarised as "N more ... omitted".
	maxWarnings = 10
	maxInfos    = 10
)

// ErrClosed marks a call on an Engine after Close. Query results wrap it
// together with queries.ErrUnavailable.
var ErrClosed = errors.New("embedded engine closed")

// Options bound the engine. The zero value is usable: zero fields take the
// Default constants.
type Options struct {
	// MaxSamples bounds the samples one query may load; 0 means
	// DefaultMaxSamples.
	MaxSamples int
	// Timeout bounds one query on top of the caller's context; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// LookbackDelta is the staleness window of instant selectors; 0 means
	// DefaultLookbackDelta.
	LookbackDelta time.Duration
	// Logger receives the PromQL engine's logs; nil discards them, since
	// library code must not print.
	Logger *slog.Logger
}

// Engine is an in-process Prometheus: a PromQL engine over a private
// in-memory store. It is safe for concurrent Query, Load and Append calls.
type Engine struct {
	st      *store
	ng      *promql.Engine
	parser  parser.Parser
	timeout time.Duration

	// life is canceled by Close so that queries in flight stop promptly
	// instead of holding Close up for a whole Timeout.
	life context.Context
	stop context.CancelFunc

	// mu is held for reading by every call that touches st, and for
	// writing by Close, so that Close waits for running queries and
	// appends.
	mu     sync.RWMutex
	closed bool
}

// Compile-time check that Engine is a queries.Source.
var _ queries.Source = (*Engine)(nil)

// New opens an empty engine.
//
// Storage is the package's own store (store.go): every sample in memory, in
// a sorted slice per series, read by the engine as a storage.Queryable. It
// takes the place of a Prometheus TSDB, which gave the same answers but
// linked Prometheus's configuration, service discovery and remote storage
// into every program that imports this package. Nothing touches the disk.
func New(opts Options) (*Engine, error) {
	if opts.MaxSamples < 0 || opts.Timeout < 0 || opts.LookbackDelta < 0 {
		return nil, fmt.Errorf("embedded engine: negative limit in options %+v", opts)
	}
	opts.MaxSamples = cmp.Or(opts.MaxSamples, DefaultMaxSamples)
	opts.Timeout = cmp.Or(opts.Timeout, DefaultTimeout)
	opts.LookbackDelta = cmp.Or(opts.LookbackDelta, DefaultLookbackDelta)
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	p := parser.NewParser(parser.Options{})
	// No Reg: the engine's metrics stay out of the process's registry, as
	// several engines may live side by side (one per test) and their
	// metric names would collide.
	ng := promql.NewEngine(promql.EngineOpts{
		Logger:        logger,
		MaxSamples:    opts.MaxSamples,
		Timeout:       opts.Timeout,
		LookbackDelta: opts.LookbackDelta,
		NoStepSubqueryIntervalFn: func(int64) int64 {
			return DefaultSubqueryStep.Milliseconds()
		},
		// Both are on in every Prometheus since 2.33; the engine leaves them
		// off only for embedders that want the old language.
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		Parser:               p,
	})
	life, stop := context.WithCancel(context.Background())
	return &Engine{
		st:      newStore(),
		ng:      ng,
		parser:  p,
		timeout: opts.Timeout,
		life:    life,
		stop:    stop,
	}, nil
}

// Close cancels queries in flight, waits for them, and drops the samples.
// Calls after Close fail with ErrClosed; Close itself may be called more
// than once.
func (e *Engine) Close() error {
	e.stop()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	e.st = nil
	return e.ng.Close()
}

// Query runs q.Text at q.Time (now when zero). With q.Range > 0 it is a
// range query whose points are the evaluation times in (Time-Range, Time]
// at q.Step, aligned to Time, as queries.Query documents.
//
// Parse and evaluation errors wrap queries.ErrBadQuery; running out of time
// (the caller's deadline or Options.Timeout) wraps queries.ErrTimeout; a
// canceled ctx gives an error wrapping context.Canceled.
func (e *Engine) Query(ctx context.Context, q queries.Query) (queries.Result, error) {
	if ctx.Err() != nil {
		return queries.Result{}, queries.ContextError(ctx)
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return queries.Result{}, fmt.Errorf("%w: %w", queries.ErrUnavailable, ErrClosed)
	}
	qctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(e.life, func() { cancel(ErrClosed) })()

	at := q.Time
	if at.IsZero() {
		at = time.Now()
	}
	var (
		qry promql.Query
		err error
	)
	if q.Range < 0 {
		return queries.Result{}, fmt.Errorf("%w: negative query range %s", queries.ErrBadQuery, q.Range)
	}
	if q.Range > 0 {
		if q.Step <= 0 {
			return queries.Result{}, fmt.Errorf("%w: range query over %s needs a positive step, got %s", queries.ErrBadQuery, q.Range, q.Step)
		}
		// The first point is the earliest at-k*Step still inside the
		// half-open window (at-Range, at].
		start := at.Add(-((q.Range - 1) / q.Step) * q.Step)
		qry, err = e.ng.NewRangeQuery(qctx, e.st, nil, q.Text, start, at, q.Step)
	} else {
		qry, err = e.ng.NewInstantQuery(qctx, e.st, nil, q.Text, at)
	}
	if err != nil {
		return queries.Result{}, e.queryError(ctx, err)
	}
	defer qry.Close()

	res := qry.Exec(qctx)
	if res.Err != nil {
		return queries.Result{}, e.queryError(ctx, res.Err)
	}
	// Convert before qry.Close: the engine returns pooled point slices to
	// its pool there.
	samples, dropped, err := convert(res.Value)
	if err != nil {
		return queries.Result{}, err
	}
	return queries.Result{Samples: samples, Warnings: warnings(q.Text, res.Warnings, dropped)}, nil
}

// queryError maps an engine error to the queries sentinels. ctx is the
// caller's context: the engine reports the caller's deadline, its own
// Timeout and Close alike as a timeout or cancellation, and only the
// contexts tell them apart.
func (e *Engine) queryError(ctx context.Context, err error) error {
	var (
		timeout    promql.ErrQueryTimeout
		canceled   promql.ErrQueryCanceled
		storageErr promql.ErrStorage
	)
	switch {
	case errors.As(err, &timeout), errors.As(err, &canceled):
		if ctx.Err() != nil {
			return queries.ContextError(ctx)
		}
		if e.life.Err() != nil {
			return fmt.Errorf("%w: %w", queries.ErrUnavailable, ErrClosed)
		}
		return fmt.Errorf("%w: %w (engine timeout %s)", queries.ErrTimeout, err, e.timeout)
	case errors.As(err, &storageErr):
		return fmt.Errorf("%w: %w", queries.ErrUnavailable, err)
	default:
		// Parse errors, type errors ("range vector" for a range query),
		// too many samples and evaluation errors (many-to-many matching,
		// duplicate series) are all properties of the query and the data:
		// retrying cannot help.
		return fmt.Errorf("%w: %w", queries.ErrBadQuery, err)
	}
}

// convert copies an engine value into queries samples. It returns how many
// series were dropped for holding only native histograms, which a
// queries.Sample cannot carry.
func convert(v parser.Value) (samples []queries.Sample, dropped int, err error) {
	switch v := v.(type) {
	case promql.Scalar:
		return []queries.Sample{{Labels: map[string]string{}, Value: v.V}}, 0, nil
	case promql.Vector:
		samples = make([]queries.Sample, 0, len(v))
		for _, s := range v {
			if s.H != nil {
				dropped++
				continue
			}
			samples = append(samples, queries.Sample{Labels: s.Metric.Map(), Value: s.F})
		}
		return samples, dropped, nil
	case promql.Matrix:
		samples = make([]queries.Sample, 0, len(v))
		for _, s := range v {
			if len(s.Floats) == 0 {
				dropped++
				continue
			}
			points := make([]queries.Point, len(s.Floats))
			for i, p := range s.Floats {
				points[i] = queries.Point{Time: time.UnixMilli(p.T).UTC(), Value: p.F}
			}
			samples = append(samples, queries.Sample{
				Labels: s.Metric.Map(),
				Value:  points[len(points)-1].Value,
				Points: points,
			})
		}
		return samples, dropped, nil
	case promql.String:
		return nil, 0, fmt.Errorf("%w: query returns a string, not numbers", queries.ErrBadQuery)
	default:
		return nil, 0, fmt.Errorf("%w: unexpected result type %T", queries.ErrBadQuery, v)
	}
}

// warnings flattens the engine's annotations, warnings first and then
// infos (both already prefixed "PromQL warning:" or "PromQL info:"), and
// notes dropped histogram series, so a caller sees why a series is missing.
func warnings(query string, annos annotations.Annotations, dropped int) []string {
	warns, infos := annos.AsStrings(query, maxWarnings, maxInfos)
	out := append(warns, infos...)
	if dropped > 0 {
		out = append(out, fmt.Sprintf("%d series with only native histogram samples were left out", dropped))
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Append adds one sample and commits it, so the next query sees it. It is
// meant for live demos that append scraped values as they arrive: samples
// of one series must come in time order. Labels with an empty value are
// dropped, since Prometheus treats them as absent.
func (e *Engine) Append(lset map[string]string, t time.Time, v float64) error {
	b := labels.NewScratchBuilder(len(lset))
	for name, value := range lset {
		if value != "" {
			b.Add(name, value)
		}
	}
	b.Sort()
	ls := b.Labels()
	if ls.IsEmpty() {
		return errors.New("append: the series has no labels")
	}
	if !ls.IsValid(model.UTF8Validation) {
		return fmt.Errorf("append %s: invalid metric or label name", ls)
	}

	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return fmt.Errorf("append %s: %w", ls, ErrClosed)
	}
	app := e.st.appender()
	if err := app.add(ls, t.UnixMilli(), v, nil); err != nil {
		app.rollback()
		return fmt.Errorf("append %s at %s: %w", ls, t.UTC().Format(time.RFC3339Nano), err)
	}
	app.commit()
	return nil
}

// InputSeries is one series in promtool's expanding notation, as in the
// input_series of a `promtool test rules` file.
type InputSeries struct {
	// Series is the metric and labels, e.g. `http_requests_total{code="200"}`.
	Series string `yaml:"series"`
	// Values is the space-separated sample list: `a+bxn` and `a-bxn` (n+1
	// samples from a stepping by b), `axn` (a repeated n+1 times), plain
	// numbers, `_` for a missing sample and `stale` for a staleness marker.
	Values string `yaml:"values"`
}

// parsedSeries is an InputSeries after the notation was expanded.
type parsedSeries struct {
	labels labels.Labels
	values []parser.SequenceValue
}

// parseInputSeries expands s with the Prometheus parser, so the notation
// (including native histograms written as {{...}}) is exactly promtool's.
func parseInputSeries(p parser.Parser, s InputSeries) (parsedSeries, error) {
	if s.Series == "" {
		return parsedSeries{}, errors.New("series is empty")
	}
	if s.Values == "" {
		return parsedSeries{}, errors.New("values are empty")
	}
	ls, values, err := p.ParseSeriesDesc(s.Series + " " + s.Values)
	if err != nil {
		return parsedSeries{}, err
	}
	if ls.IsEmpty() {
		return parsedSeries{}, errors.New("series has no labels")
	}
	return parsedSeries{labels: ls, values: values}, nil
}

// Load adds every series in one transaction: sample i of a series is at
// start + i*interval, as in promtool. Either all samples are committed or,
// on an error, none are. Errors name the series by index and text, e.g.
// `series 2 "foo{a=\"b\"}": ...`; notation errors are reported for every
// bad series at once.
func (e *Engine) Load(start time.Time, interval time.Duration, series []InputSeries) error {
	if interval <= 0 {
		return fmt.Errorf("load: interval must be positive, got %s", interval)
	}
	parsed := make([]parsedSeries, len(series))
	first := make(map[string]int, len(series))
	var errs []error
	for i, s := range series {
		ps, err := parseInputSeries(e.parser, s)
		if err != nil {
			errs = append(errs, fmt.Errorf("series %d %q: %w", i, s.Series, err))
			continue
		}
		// Two entries for one series would interleave their samples out
		// of order; say so rather than report an out-of-order sample.
		key := ps.labels.String()
		if j, ok := first[key]; ok {
			errs = append(errs, fmt.Errorf("series %d %q: same series as series %d", i, s.Series, j))
			continue
		}
		first[key] = i
		parsed[i] = ps
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}

	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return fmt.Errorf("load: %w", ErrClosed)
	}
	app := e.st.appender()
	for i, ps := range parsed {
		for j, v := range ps.values {
			if v.Omitted {
				continue
			}
			t := start.Add(time.Duration(j) * interval).UnixMilli()
			if err := app.add(ps.labels, t, v.Value, v.Histogram); err != nil {
				app.rollback()
				return fmt.Errorf("series %d %q: sample %d at %s: %w",
					i, series[i].Series, j, time.UnixMilli(t).UTC().Format(time.RFC3339), err)
			}
		}
	}
	app.commit()
	return nil
}
