// Package analysis evaluates policies: it renders a policy's queries with a
// run's params, runs them concurrently against their sources under one
// deadline, evaluates the compiled rules and turns their outcomes into a
// verdict, a weighted score, a decision and a reason.
package analysis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/rules"
)

// Defaults for Options.
const (
	// DefaultTimeout bounds a whole evaluation. It stays under the 10 s
	// Argo Rollouts' web provider and Flagger's webhooks wait by default,
	// so the caller gets an answer rather than a timeout of its own.
	DefaultTimeout = 8 * time.Second
	// DefaultConcurrency bounds the queries one evaluation runs at once.
	DefaultConcurrency = 8
)

// Sentinel errors.
var (
	// ErrTooManySeries marks a query that returned more series than its
	// policy declared.
	ErrTooManySeries = errors.New("too many series")
	// ErrEvaluationTimeout is the cause given when the whole evaluation's
	// deadline passes.
	ErrEvaluationTimeout = errors.New("evaluation deadline exceeded")
)

// Options configure an Evaluator.
type Options struct {
	Sources queries.Sources
	// Timeout bounds one evaluation, all queries included; default
	// DefaultTimeout.
	Timeout time.Duration
	// Concurrency bounds the queries in flight per evaluation; default
	// DefaultConcurrency.
	Concurrency int
	Logger      *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Panicked, when set, counts a query whose source panicked; the panic
	// is recovered into the query's error either way.
	Panicked func(component string)
}

// Evaluator evaluates policies against sources. It is safe for concurrent
// use.
type Evaluator struct {
	sources     queries.Sources
	timeout     time.Duration
	concurrency int
	logger      *slog.Logger
	now         func() time.Time
	panicked    func(string)
}

// NewEvaluator returns an Evaluator with defaults filled in.
func NewEvaluator(o Options) *Evaluator {
	e := &Evaluator{
		sources:     o.Sources,
		timeout:     o.Timeout,
		concurrency: o.Concurrency,
		logger:      o.Logger,
		now:         o.Now,
		panicked:    o.Panicked,
	}
	if e.timeout <= 0 {
		e.timeout = DefaultTimeout
	}
	if e.concurrency <= 0 {
		e.concurrency = DefaultConcurrency
	}
	if e.logger == nil {
		e.logger = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.sources == nil {
		e.sources = queries.Registry{}
	}
	return e
}

// Evaluate runs one analysis of pol with the caller's params at time at (zero
// means now). The error is non-nil only when the analysis could not run at
// all: invalid params (wrapping rules.ErrInvalidParams) or a template that
// failed to render. Query failures are part of the result: the rules that
// read a failed query have outcome error.
func (e *Evaluator) Evaluate(ctx context.Context, pol *rules.Policy, params map[string]string, at time.Time) (*Result, error) {
	return e.EvaluateRun(ctx, pol, params, at, "")
}

// EvaluateRun is Evaluate for an analysis of a run, which sources that
// compare with a run's previous evaluation (Kafka lag growth) need to know.
func (e *Evaluator) EvaluateRun(ctx context.Context, pol *rules.Policy, params map[string]string, at time.Time, run string) (*Result, error) {
	start := e.now()
	resolved, err := pol.ResolveParams(params)
	if err != nil {
		return nil, err
	}
	// Queries for "now" go out with a zero time, which sources read as
	// their own now: concurrent identical analyses then send identical
	// queries, which a caching source answers with one call.
	queryAt := at
	if at.IsZero() {
		at = start
	}
	all := pol.AllQueries()
	qs := make(QueryResults, len(all))
	for i, q := range all {
		text, fields, err := q.Render(resolved)
		if err != nil {
			return nil, err
		}
		qs[i] = QueryResult{Name: q.Name, Kind: q.Kind, Source: q.Source, Query: text, fields: fields, Fields: queries.RedactFields(fields)}
	}

	ctx, cancel := context.WithTimeoutCause(ctx, e.timeout, ErrEvaluationTimeout)
	defer cancel()
	e.runQueries(ctx, all, qs, queryAt, run, probeAllow(pol))

	res := Decide(pol, resolved, qs, at)
	res.Duration = Seconds(e.now().Sub(start))
	e.logger.Debug("analysis evaluated", "policy", pol.Name, "verdict", res.Verdict,
		"decision", res.Decision, "duration", time.Duration(res.Duration))
	return res, nil
}

// probeAllow is the policy's own list of the hosts its probes may reach,
// or nil.
func probeAllow(pol *rules.Policy) *queries.Allowlist {
	if pol.Probes == nil {
		return nil
	}
	return &queries.Allowlist{Hosts: pol.Probes.Hosts, Namespaces: pol.Probes.Namespaces}
}

// runQueries runs every query, at most e.concurrency at once, and fills in
// their results.
func (e *Evaluator) runQueries(ctx context.Context, all []*rules.Query, qs QueryResults, at time.Time, run string, allow *queries.Allowlist) {
	if len(qs) == 1 {
		e.runQuery(ctx, all[0], &qs[0], at, run, allow)
		return
	}
	sem := make(chan struct{}, e.concurrency)
	var wg sync.WaitGroup
	for i, q := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				qs[i].fail(fmt.Errorf("not started: %w", context.Cause(ctx)))
				return
			}
			defer func() { <-sem }()
			e.runQuery(ctx, q, &qs[i], at, run, allow)
		}()
	}
	wg.Wait()
}

// runQuery runs one query. A source that panics does not take the
// process down: the panic is the query's error, and its rules are error.
func (e *Evaluator) runQuery(ctx context.Context, q *rules.Query, qr *QueryResult, at time.Time, run string, allow *queries.Allowlist) {
	start := time.Now()
	defer func() { qr.Duration = Seconds(time.Since(start)) }()
	defer func() {
		if p := recover(); p != nil {
			if e.panicked != nil {
				e.panicked("query")
			}
			e.logger.Error("query source panicked", "policy_query", q.Name, "kind", q.Kind, "panic", fmt.Sprint(p))
			qr.fail(fmt.Errorf("%w: %v", queries.ErrPanic, p))
		}
	}()
	src, err := e.sources.Lookup(q.Kind, q.Source)
	if err != nil {
		qr.fail(err)
		return
	}
	query := queries.Query{Text: qr.Query, Fields: qr.fields, Run: run, Time: at, Range: q.Range, Step: q.Step}
	if q.Kind == rules.KindHTTP || q.Kind == rules.KindTCP {
		query.Allow = allow
	}
	res, err := src.Query(ctx, query)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, context.Cause(ctx)) {
			// Say which deadline fired: the source may only see
			// "context deadline exceeded".
			err = fmt.Errorf("%w: %w", context.Cause(ctx), err)
		}
		e.logger.Warn("query failed", "policy_query", q.Name, "kind", q.Kind, "err", err)
		qr.fail(err)
		return
	}
	qr.Warnings = res.Warnings
	if q.ValueKind() == rules.KindRecord {
		qr.setRecord(res.Values)
		return
	}
	qr.set(q, res.Samples)
}

// setRecord stores a probe's record. Its NaN fields are no data only for
// the rules that read them.
func (qr *QueryResult) setRecord(values map[string]float64) {
	qr.Values = make(map[string]Float, len(values))
	for k, v := range values {
		qr.Values[k] = Float(v)
	}
	qr.record = values
}

// NewQueryResult builds a query's result from what its source returned,
// as Evaluate does: shaped for the query's rules (a number, points,
// samples or a record), with non-finite values as no data and too many
// series as an error. Backtests use it to replay history one step at a
// time.
func NewQueryResult(q *rules.Query, rendered string, res queries.Result, err error) QueryResult {
	qr := QueryResult{Name: q.Name, Kind: q.Kind, Source: q.Source, Query: rendered}
	if err != nil {
		qr.fail(err)
		return qr
	}
	qr.Warnings = res.Warnings
	if q.ValueKind() == rules.KindRecord {
		qr.setRecord(res.Values)
		return qr
	}
	qr.set(q, res.Samples)
	return qr
}

func (qr *QueryResult) fail(err error) {
	qr.err = err
	qr.Error = err.Error()
}

// set stores samples in the shape the query's rules expect. Non-finite
// values are no data: a NaN from a 0/0 rate is the absence of traffic, not a
// measurement.
func (qr *QueryResult) set(q *rules.Query, samples []queries.Sample) {
	qr.Series = len(samples)
	if len(samples) > q.MaxSeries {
		qr.fail(fmt.Errorf("%w: query returned %d series, the policy declares at most %d (set maxSeries or aggregate)",
			ErrTooManySeries, len(samples), q.MaxSeries))
		return
	}
	switch q.ValueKind() {
	case rules.KindScalar:
		if len(samples) == 0 || !finite(samples[0].Value) {
			qr.NoData = true
			return
		}
		qr.Value = floatPtr(samples[0].Value)
	case rules.KindRange:
		if len(samples) == 1 {
			qr.Points = finitePoints(samples[0].Points)
		}
		qr.NoData = len(qr.Points) == 0
	case rules.KindSamples:
		for _, s := range samples {
			if q.Range > 0 {
				pts := finitePoints(s.Points)
				if len(pts) == 0 {
					continue
				}
				qr.Samples = append(qr.Samples, rules.Sample{Labels: s.Labels, Value: pts[len(pts)-1], Values: pts})
				continue
			}
			if finite(s.Value) {
				qr.Samples = append(qr.Samples, rules.Sample{Labels: s.Labels, Value: s.Value})
			}
		}
		qr.NoData = len(qr.Samples) == 0
	}
}

func finitePoints(points []queries.Point) []float64 {
	out := make([]float64, 0, len(points))
	for _, p := range points {
		if finite(p.Value) {
			out = append(out, p.Value)
		}
	}
	return out
}
