package backtest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aurum/canary/queries"
)

// fakeSeries is one series of a fakeSource: value says what it holds at a
// time, and whether it holds anything.
type fakeSeries struct {
	labels map[string]string
	value  func(t time.Time) (float64, bool)
}

// fakeSource answers instant and range queries from functions of time, as
// Prometheus answers them: a range query's points are at Time, Time-Step,
// ... down to just after Time-Range; a series without a value at a time has
// no point there. It counts and records the queries it gets.
type fakeSource struct {
	series map[string][]fakeSeries
	// errs make the query with that text fail.
	errs map[string]error

	mu    sync.Mutex
	calls []queries.Query
}

func (f *fakeSource) Query(ctx context.Context, q queries.Query) (queries.Result, error) {
	f.mu.Lock()
	f.calls = append(f.calls, q)
	f.mu.Unlock()
	if err := f.errs[q.Text]; err != nil {
		return queries.Result{}, err
	}
	ss, ok := f.series[q.Text]
	if !ok {
		return queries.Result{}, fmt.Errorf("%w: fake source knows no query %q", queries.ErrBadQuery, q.Text)
	}
	if q.Time.IsZero() {
		return queries.Result{}, fmt.Errorf("%w: fake source needs a time", queries.ErrBadQuery)
	}
	var res queries.Result
	for _, s := range ss {
		if q.Range == 0 {
			if v, ok := s.value(q.Time); ok {
				res.Samples = append(res.Samples, queries.Sample{Labels: s.labels, Value: v})
			}
			continue
		}
		start := q.Time.Add(-((q.Range - 1) / q.Step) * q.Step)
		var pts []queries.Point
		for t := start; !t.After(q.Time); t = t.Add(q.Step) {
			if v, ok := s.value(t); ok {
				pts = append(pts, queries.Point{Time: t, Value: v})
			}
		}
		if len(pts) > 0 {
			res.Samples = append(res.Samples, queries.Sample{Labels: s.labels, Value: pts[len(pts)-1].Value, Points: pts})
		}
	}
	return res, nil
}

func (f *fakeSource) queries() []queries.Query {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]queries.Query(nil), f.calls...)
}

func (f *fakeSource) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// registry makes f the default prometheus source.
func (f *fakeSource) registry() queries.Registry {
	return queries.Registry{{Kind: "prometheus"}: f}
}

// minutes is a series whose value at t is fn of the minutes since base;
// fn's second result false means no value.
func minutes(base time.Time, fn func(m float64) (float64, bool)) fakeSeries {
	return fakeSeries{labels: map[string]string{}, value: func(t time.Time) (float64, bool) {
		return fn(t.Sub(base).Minutes())
	}}
}

func constant(v float64) fakeSeries {
	return fakeSeries{labels: map[string]string{}, value: func(time.Time) (float64, bool) { return v, true }}
}
