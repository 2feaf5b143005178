// Package backtest replays a policy over history: it evaluates the policy at
// every step of a past window, as if a canary analysis had run then, and
// tells when it would first have failed, which rules flapped and where data
// was missing. Timelines render as text, SVG and self-contained HTML.
//
// A backtest does not send one instant query per step. For every prometheus
// query it sends one range query covering the whole window (split only when
// a window holds more points than Prometheus serves per series), then
// slices the answer per step and hands each slice to analysis.Decide, the
// same pure function a live evaluation ends in. 24 hours at one-minute
// steps is then one query per policy query instead of 1,440.
//
// # Slicing, and how it differs from instant queries
//
// An instant-kind query (no range) is asked as a range query over the
// evaluation times themselves: start at the first step, end at the last,
// the backtest's step as resolution. Prometheus evaluates a range query as
// a series of instant queries, one per resolution step, each with the same
// lookback (5 minutes by default) an instant query has, so the point of a
// series at step t is exactly the value an instant query at t would have
// returned, and a series with no point at t is one the instant query would
// not have returned at all: no data at that step. Nothing is carried
// forward from earlier steps; the lookback has already been applied, per
// step, by Prometheus.
//
// A range-kind query (range: 10m, step: 30s) reads, at step t, its points
// in (t-range, t] at its own step, aligned to t. The backtest asks once for
// (from-range, to] at the query's step (at the greatest common divisor of
// the query's step and the backtest's when the backtest's step is not a
// multiple of the query's, so that every step's window still lands on the
// points a live evaluation at t would have read), and cuts each step's
// window out of that answer. A series with no point in the window is
// absent at that step, as Prometheus leaves it out of a range query's
// answer.
//
// A policy's statistical comparisons (compare:) are range-kind queries too:
// their canary and baseline queries are asked once each and sliced the
// same way, so every step compares the samples a live evaluation would.
//
// What a replay cannot reproduce:
//   - Data that arrived late (remote-write backfill, a scrape target that
//     came back) is visible to the replay but was not to the analyses that
//     ran at the time.
//   - PromQL's `@ start()` and `@ end()` refer to the range query's start
//     and end, the window's, not to each step's time.
//   - Kafka lag, HTTP, TCP and PostgreSQL probes measure the present only.
//     The rules that read them are error at every step, with a reason that
//     says so; a policy all of whose rules read them cannot be backtested.
package backtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/rules"
)

// Limits of a backtest.
const (
	// MaxSteps bounds the evaluation times of one backtest: 34 days at
	// one-minute steps. Each step keeps its rule results in memory.
	MaxSteps = 50_000
	// maxPoints is how many points one range query may ask for per series.
	// Prometheus refuses more than 11,000; a window that needs more is
	// split into several range queries.
	maxPoints = 10_000
	// concurrency bounds the range queries in flight.
	concurrency = 4
	// maxNotes bounds the notes, warnings included, kept on a timeline.
	maxNotes = 20
)

// ErrNotReplayable marks a policy none of whose rules can be replayed: they
// all read queries (Kafka, HTTP, TCP, PostgreSQL) that measure the present.
var ErrNotReplayable = errors.New("cannot be replayed over history")

// Timeline is a policy replayed over a window of history.
type Timeline struct {
	Policy string `json:"policy"`
	// From and To are the first and last evaluation times.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Step is the time between evaluations.
	Step time.Duration `json:"-"`
	// Points are the evaluations, one per step, oldest first.
	Points []Point `json:"points"`
	// FirstFailure is the first point whose verdict is fail, nil when no
	// step failed.
	FirstFailure *Point `json:"firstFailure,omitempty"`
	// FirstDataFailure is the first point at which a rule failed on data
	// it had, nil when every failure came from missing data (a rule's
	// noData: fail): the failure a person looks for first.
	FirstDataFailure *Point `json:"firstDataFailure,omitempty"`
	// Flapping are the rules that went from pass to fail or back more
	// than once, in rule order.
	Flapping []Flap `json:"flapping,omitempty"`
	// NoData are the runs of consecutive steps in which a rule had no data
	// for one of its queries, by rule and then time.
	NoData []Span `json:"noData,omitempty"`
	// Spans are the runs of consecutive steps with the same verdict.
	Spans []Span `json:"spans"`
	// Queries is how many queries were sent to sources.
	Queries int `json:"queries"`
	// DryRun is set when the policy has dry-run parts (the whole policy,
	// rules or decision rules): its points then give what it would have
	// decided with them live, not the pass a dry run answers.
	DryRun bool `json:"dryRun,omitempty"`
	// Notes say what the replay could not do as a live evaluation would:
	// queries it could not replay or that failed, and source warnings.
	Notes []string `json:"notes,omitempty"`
}

// Point is the evaluation of the policy at one step.
type Point struct {
	At       time.Time             `json:"at"`
	Verdict  analysis.Verdict      `json:"verdict"`
	Decision analysis.Decision     `json:"decision"`
	Reason   string                `json:"reason"`
	Rules    []analysis.RuleResult `json:"rules"`
}

// Flap is a rule whose outcome changed more than once.
type Flap struct {
	Rule string `json:"rule"`
	// Changes counts the switches between pass and fail. Steps in
	// between without either (no data, errors) neither count nor break
	// a run: pass, no data, pass is no change.
	Changes int `json:"changes"`
}

// Span is a run of consecutive steps: of one verdict (Timeline.Spans) or of
// one rule without data (Timeline.NoData). From and To are its first and
// last evaluation times, both included.
type Span struct {
	Rule    string           `json:"rule,omitempty"`
	Verdict analysis.Verdict `json:"verdict,omitempty"`
	From    time.Time        `json:"from"`
	To      time.Time        `json:"to"`
	Steps   int              `json:"steps"`
}

// MarshalJSON writes the step in seconds, as the rest of the API writes
// durations.
func (t *Timeline) MarshalJSON() ([]byte, error) {
	type plain Timeline
	return analysis.MarshalUnescaped(struct {
		*plain
		Step analysis.Seconds `json:"stepSeconds"`
	}{(*plain)(t), analysis.Seconds(t.Step)})
}

// Run replays pol with the caller's params at every step from from to to,
// both included, step apart. Params are checked as a live evaluation checks
// them; the error then wraps rules.ErrInvalidParams.
//
// Each prometheus query is sent once, as a range query over the window (see
// the package documentation); src finds its source by kind and name. A
// query the source rejects (queries.ErrBadQuery) makes its rules error at
// every step, as it would live. Any other failure (the source is
// unreachable, timed out, not configured) ends the backtest with an error:
// a timeline of nothing but errors would read as "never failed".
func Run(ctx context.Context, src queries.Sources, pol *rules.Policy, params map[string]string, from, to time.Time, step time.Duration) (*Timeline, error) {
	resolved, err := pol.ResolveParams(params)
	if err != nil {
		return nil, err
	}
	times, err := evaluationTimes(from, to, step)
	if err != nil {
		return nil, err
	}
	// Comparisons' range queries too: without them a comparison would see
	// no data at every step, and one that must have data would fail all.
	qs := pol.AllQueries()
	plans := make([]*plan, len(qs))
	for i, q := range qs {
		text, fields, err := q.Render(resolved)
		if err != nil {
			return nil, err
		}
		plans[i] = &plan{query: q, text: text, fields: fields}
		if q.Kind != rules.KindPrometheus {
			plans[i].err = fmt.Errorf("%s queries %w", q.Kind, ErrNotReplayable)
		}
	}
	tl := &Timeline{Policy: pol.Name, From: times[0], To: times[len(times)-1], Step: step}
	if err := checkReplayable(pol, plans, tl); err != nil {
		return nil, err
	}
	if err := fetch(ctx, src, plans, times, step, tl); err != nil {
		return nil, err
	}
	if err := tl.replay(ctx, pol, resolved, plans, times); err != nil {
		return nil, err
	}
	tl.summarize()
	return tl, nil
}

// evaluationTimes lists from, from+step, ... up to to. Times are cut to
// milliseconds, the precision of Prometheus timestamps, so that the points
// sources return match them exactly.
func evaluationTimes(from, to time.Time, step time.Duration) ([]time.Time, error) {
	switch {
	case step <= 0:
		return nil, fmt.Errorf("backtest step must be positive, got %s", step)
	case step%time.Millisecond != 0:
		return nil, fmt.Errorf("backtest step %s is not a whole number of milliseconds", step)
	case from.IsZero() || to.IsZero():
		return nil, errors.New("backtest needs a start and an end time")
	case to.Before(from):
		return nil, fmt.Errorf("backtest ends (%s) before it starts (%s)", to.UTC().Format(time.RFC3339), from.UTC().Format(time.RFC3339))
	}
	from = from.Truncate(time.Millisecond).UTC()
	n := to.Sub(from)/step + 1
	if n > MaxSteps {
		return nil, fmt.Errorf("backtest of %d steps: at most %d (%s at %s steps); use a longer step", n, MaxSteps, MaxSteps*step, step)
	}
	times := make([]time.Time, n)
	for i := range times {
		times[i] = from.Add(time.Duration(i) * step)
	}
	return times, nil
}

// checkReplayable refuses a policy none of whose rules and comparisons can
// be replayed, and notes the queries that cannot be.
func checkReplayable(pol *rules.Policy, plans []*plan, tl *Timeline) error {
	blocked := func(qs ...*rules.Query) bool {
		return slices.ContainsFunc(qs, func(q *rules.Query) bool { return plans[q.Index].err != nil })
	}
	replayable := 0
	for _, r := range pol.Rules {
		if !blocked(r.Inputs...) {
			replayable++
		}
	}
	for _, c := range pol.Comparisons {
		if !blocked(c.Canary, c.Baseline) {
			replayable++
		}
	}
	if replayable == 0 && len(pol.Rules)+len(pol.Comparisons) > 0 {
		var kinds []string
		for _, p := range plans {
			if p.err != nil && !slices.Contains(kinds, p.query.Kind) {
				kinds = append(kinds, p.query.Kind)
			}
		}
		return fmt.Errorf("policy %q: every rule reads a %s query, and those %w", pol.Name, strings.Join(kinds, " or "), ErrNotReplayable)
	}
	for _, p := range plans {
		if p.err != nil {
			tl.note(fmt.Sprintf("query %s: %s queries cannot be replayed over history; %s", p.query.Name, p.query.Kind, readers(pol, p.query)))
		}
	}
	return nil
}

// readers says which rules read q, for notes.
func readers(pol *rules.Policy, q *rules.Query) string {
	var names []string
	for _, r := range pol.Rules {
		if slices.Contains(r.Inputs, q) {
			names = append(names, r.Name)
		}
	}
	switch len(names) {
	case 0:
		return "no rule reads it"
	case 1:
		return "rule " + names[0] + " is error at every step"
	}
	return "rules " + strings.Join(names, ", ") + " are error at every step"
}

// plan is one policy query: rendered, then fetched once for the whole
// window.
type plan struct {
	query  *rules.Query
	text   string
	fields map[string]string
	// err is set when the query cannot be replayed or its source rejected
	// it; every step then sees it as failed.
	err    error
	series []series
}

// series is one series of a query's answer over the window, its points
// oldest first.
type series struct {
	labels map[string]string
	points []queries.Point
}

// resolution and lead say how to ask for a query over the window: points
// every resolution, from lead before the first step. An instant-kind query
// needs a point at each step and nothing before; a range-kind query needs
// its whole range before the first step, at a resolution that holds both
// its own step and the backtest's.
func (p *plan) resolution(step time.Duration) (res, lead time.Duration) {
	q := p.query
	if q.Range <= 0 {
		return step, step
	}
	return gcd(step, p.queryStep(step)), q.Range
}

// queryStep is a range-kind query's own step.
func (p *plan) queryStep(step time.Duration) time.Duration {
	if p.query.Step > 0 {
		return p.query.Step
	}
	return step
}

func gcd(a, b time.Duration) time.Duration {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// fetch runs one range query per prometheus query (more only when the
// window holds more than maxPoints points per series), at most concurrency
// at once.
func fetch(ctx context.Context, src queries.Sources, plans []*plan, times []time.Time, step time.Duration, tl *Timeline) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	sem := make(chan struct{}, concurrency)
	for _, p := range plans {
		if p.err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			n, warnings, err := p.fetch(ctx, src, times, step)
			mu.Lock()
			defer mu.Unlock()
			tl.Queries += n
			for _, w := range warnings {
				tl.note(fmt.Sprintf("query %s: %s", p.query.Name, w))
			}
			switch {
			case err == nil:
			case errors.Is(err, queries.ErrBadQuery):
				// A policy bug: live, its rules would be error at every
				// evaluation, and so they are here.
				p.err = err
				tl.note(fmt.Sprintf("query %s failed: %v", p.query.Name, err))
			case firstErr == nil:
				// The others stop: their errors would only echo the
				// cancellation.
				firstErr = fmt.Errorf("query %q: %w", p.query.Name, err)
				cancel(firstErr)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	return nil
}

// fetch asks p's source for the window, in as few range queries as
// maxPoints allows, and merges the answers by series. It returns how many
// queries it sent.
func (p *plan) fetch(ctx context.Context, srcs queries.Sources, times []time.Time, step time.Duration) (int, []string, error) {
	src, err := srcs.Lookup(p.query.Kind, p.query.Source)
	if err != nil {
		return 0, nil, err
	}
	res, lead := p.resolution(step)
	// Steps per query: the points of the first step's lead plus those
	// between the chunk's first and last steps must fit in maxPoints.
	perChunk := 1
	if room := time.Duration(maxPoints)*res - lead; room > 0 {
		perChunk = int(room/step) + 1
	}
	var (
		sent     int
		warnings []string
		index    = map[string]int{}
	)
	for lo := 0; lo < len(times); lo += perChunk {
		hi := min(lo+perChunk, len(times)) - 1
		// The source answers points in (Time-Range, Time] aligned to
		// Time: the last step, back to lead before the chunk's first.
		r, err := src.Query(ctx, queries.Query{
			Text: p.text, Fields: p.fields,
			Time: times[hi], Range: times[hi].Sub(times[lo]) + lead, Step: res,
		})
		sent++
		if err != nil {
			return sent, warnings, err
		}
		for _, w := range r.Warnings {
			if !slices.Contains(warnings, w) {
				warnings = append(warnings, w)
			}
		}
		for _, s := range r.Samples {
			key := labelKey(s.Labels)
			i, ok := index[key]
			if !ok {
				i = len(p.series)
				index[key] = i
				p.series = append(p.series, series{labels: s.Labels})
			}
			ss := &p.series[i]
			for _, pt := range s.Points {
				// Chunks of a range-kind query overlap by its range.
				if n := len(ss.points); n == 0 || pt.Time.After(ss.points[n-1].Time) {
					ss.points = append(ss.points, pt)
				}
			}
		}
	}
	return sent, warnings, nil
}

// labelKey identifies a label set.
func labelKey(ls map[string]string) string {
	names := make([]string, 0, len(ls))
	for k := range ls {
		names = append(names, k)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, k := range names {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(ls[k])
		b.WriteByte(0)
	}
	return b.String()
}

// at is what an instant (or, for a range-kind query, a range) query at t
// would have returned: for each series, its point at t, or its points in
// (t-range, t] on the query's own step grid. Series without one are left
// out, as Prometheus leaves them out.
func (p *plan) at(t time.Time, step time.Duration) queries.Result {
	var res queries.Result
	q := p.query
	if q.Range <= 0 {
		for _, s := range p.series {
			i, ok := slices.BinarySearchFunc(s.points, t, comparePoint)
			if ok {
				res.Samples = append(res.Samples, queries.Sample{Labels: s.labels, Value: s.points[i].Value})
			}
		}
		return res
	}
	qstep := p.queryStep(step)
	start := t.Add(-q.Range)
	for _, s := range p.series {
		lo, _ := slices.BinarySearchFunc(s.points, start, comparePoint)
		hi, found := slices.BinarySearchFunc(s.points, t, comparePoint)
		if found {
			hi++
		}
		var pts []queries.Point
		for _, pt := range s.points[lo:hi] {
			// (t-range, t]: the window is open at its start, and only
			// the points of a grid aligned to t count.
			if pt.Time.After(start) && t.Sub(pt.Time)%qstep == 0 {
				pts = append(pts, pt)
			}
		}
		if len(pts) > 0 {
			res.Samples = append(res.Samples, queries.Sample{Labels: s.labels, Value: pts[len(pts)-1].Value, Points: pts})
		}
	}
	return res
}

func comparePoint(p queries.Point, t time.Time) int { return p.Time.Compare(t) }

// replay decides every step, and gathers the spans in which a rule took
// its noData outcome.
func (tl *Timeline) replay(ctx context.Context, pol *rules.Policy, params map[string]string, plans []*plan, times []time.Time) error {
	tl.Points = make([]Point, len(times))
	// open is, per rule, the index in tl.NoData of its current span.
	open := map[string]int{}
	for i, t := range times {
		if i%1000 == 0 {
			if err := ctx.Err(); err != nil {
				return context.Cause(ctx)
			}
		}
		qs := make(analysis.QueryResults, len(plans))
		for j, p := range plans {
			if p.err != nil {
				qs[j] = analysis.NewQueryResult(p.query, p.text, queries.Result{}, p.err)
				continue
			}
			qs[j] = analysis.NewQueryResult(p.query, p.text, p.at(t, tl.Step), nil)
		}
		res := analysis.Decide(pol, params, qs, t)
		tl.Points[i] = Point{At: t, Verdict: res.Verdict, Decision: res.Decision, Reason: res.Reason, Rules: res.Rules}
		if d := res.DryRun; d != nil {
			// A backtest asks when the policy would have failed. A
			// dry-run policy always answers pass, and dry-run rules
			// count toward nothing: both are on trial, so they are
			// judged by what they would have decided.
			tl.Points[i].Verdict, tl.Points[i].Decision, tl.Points[i].Reason = d.Verdict, d.Decision, d.Reason
			tl.DryRun = true
		}
		for _, r := range res.Rules {
			j, ok := open[r.Name]
			switch {
			case !r.NoData:
				delete(open, r.Name)
			case ok:
				tl.NoData[j].To = t
				tl.NoData[j].Steps++
			default:
				open[r.Name] = len(tl.NoData)
				tl.NoData = append(tl.NoData, Span{Rule: r.Name, From: t, To: t, Steps: 1})
			}
		}
	}
	order := tl.RuleNames()
	slices.SortStableFunc(tl.NoData, func(a, b Span) int {
		return slices.Index(order, a.Rule) - slices.Index(order, b.Rule)
	})
	return nil
}

// summarize derives the verdict spans, the first failure and the flapping
// rules from the points.
func (tl *Timeline) summarize() {
	for i := range tl.Points {
		p := &tl.Points[i]
		if n := len(tl.Spans); n > 0 && tl.Spans[n-1].Verdict == p.Verdict {
			tl.Spans[n-1].To = p.At
			tl.Spans[n-1].Steps++
		} else {
			tl.Spans = append(tl.Spans, Span{Verdict: p.Verdict, From: p.At, To: p.At, Steps: 1})
		}
		if tl.FirstFailure == nil && p.Verdict == analysis.VerdictFail {
			tl.FirstFailure = p
		}
		if tl.FirstDataFailure == nil && p.Verdict == analysis.VerdictFail && slices.ContainsFunc(p.Rules, failedOnData) {
			tl.FirstDataFailure = p
		}
	}
	// Rules are matched by name: Decide may add results of its own after
	// the policy's rules. Only pass and fail count: a rule that passes
	// again after a gap in its data did not flap, and the gap is in
	// NoData.
	var names []string
	changes := map[string]int{}
	last := map[string]rules.Outcome{}
	for _, p := range tl.Points {
		for _, r := range p.Rules {
			if !slices.Contains(names, r.Name) {
				names = append(names, r.Name)
			}
			if r.Verdict != rules.OutcomePass && r.Verdict != rules.OutcomeFail {
				continue
			}
			if prev, ok := last[r.Name]; ok && prev != r.Verdict {
				changes[r.Name]++
			}
			last[r.Name] = r.Verdict
		}
	}
	for _, name := range names {
		if changes[name] > 1 {
			tl.Flapping = append(tl.Flapping, Flap{Rule: name, Changes: changes[name]})
		}
	}
}

// note adds a note, up to maxNotes.
func (tl *Timeline) note(s string) {
	switch {
	case slices.Contains(tl.Notes, s):
	case len(tl.Notes) < maxNotes:
		tl.Notes = append(tl.Notes, s)
	case len(tl.Notes) == maxNotes:
		tl.Notes = append(tl.Notes, "more notes left out")
	}
}

// RuleNames are the names of the rules in the timeline's results, in order.
func (tl *Timeline) RuleNames() []string {
	var names []string
	for _, p := range tl.Points {
		for _, r := range p.Rules {
			if !slices.Contains(names, r.Name) {
				names = append(names, r.Name)
			}
		}
	}
	return names
}

// failedOnData reports whether a rule failed on data it had, rather than
// taking its noData outcome.
func failedOnData(r analysis.RuleResult) bool {
	return r.Verdict == rules.OutcomeFail && !r.NoData
}

// failedOnNoData reports whether a rule failed because data was missing
// (noData: fail).
func failedOnNoData(r analysis.RuleResult) bool {
	return r.Verdict == rules.OutcomeFail && r.NoData
}

// NoDataFailures are the spans of NoData in which the rule failed for
// want of data (its noData outcome is fail), apart from failures the data
// showed.
func (tl *Timeline) NoDataFailures() []Span {
	var out []Span
	for _, s := range tl.NoData {
		for _, p := range tl.Points {
			if p.At.Before(s.From) || p.At.After(s.To) {
				continue
			}
			if slices.ContainsFunc(p.Rules, func(r analysis.RuleResult) bool { return r.Name == s.Rule && failedOnNoData(r) }) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// Leading reports whether span s starts at the window's first step: a
// query that had no data yet, as a canary's metrics before its first
// scrape, rather than data that went missing.
func (tl *Timeline) Leading(s Span) bool { return s.From.Equal(tl.From) }
