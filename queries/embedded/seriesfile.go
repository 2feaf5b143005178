package embedded

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// DefaultInterval is the spacing of samples when a series file names none;
// promtool's evaluation_interval defaults to the same 1m.
const DefaultInterval = time.Minute

// SeriesFile is a parsed series file, the input of `canary eval --series`:
//
//	start: 2026-01-01T00:00:00Z   # optional: RFC3339 or Unix seconds; default the Unix epoch
//	interval: 1m                  # optional, default 1m
//	series:
//	  - series: 'http_requests_total{code="200"}'
//	    values: '0+10x30'
//
// Sample i of every series is at Start + i*Interval, as in promtool.
type SeriesFile struct {
	// Start is the time of each series' first sample. It defaults to the
	// Unix epoch, like promtool's start_timestamp, so that test files
	// written for promtool keep their times.
	Start time.Time
	// Interval is the spacing of samples; DefaultInterval when omitted.
	Interval time.Duration
	// Series are the input series, in file order.
	Series []InputSeries
}

// End is the time of the last real sample in the file, the natural
// evaluation time for `canary eval --series` when none is given. Missing
// samples (`_`) and staleness markers do not count: evaluating at a marker
// would show the series as gone. End is Start when there are no samples.
func (f *SeriesFile) End() time.Time {
	p := parser.NewParser(parser.Options{})
	last := -1
	for _, s := range f.Series {
		ps, err := parseInputSeries(p, s)
		if err != nil {
			continue // ParseSeriesFile reports it; End has no error to return
		}
		for i := len(ps.values) - 1; i > last; i-- {
			if v := ps.values[i]; !v.Omitted && !isStale(v) {
				last = i
				break
			}
		}
	}
	if last < 0 {
		return f.Start
	}
	return f.Start.Add(time.Duration(last) * f.Interval)
}

// isStale reports whether v is a staleness marker; a stale native histogram
// carries the marker in its sum.
func isStale(v parser.SequenceValue) bool {
	if v.Histogram != nil {
		return value.IsStaleNaN(v.Histogram.Sum)
	}
	return value.IsStaleNaN(v.Value)
}

// seriesFileYAML is the file as yaml.v3 decodes it. Scalars are kept as
// nodes so errors can point at their line and column, and so that start
// can be either a timestamp or a number.
type seriesFileYAML struct {
	Start    yaml.Node         `yaml:"start"`
	Interval yaml.Node         `yaml:"interval"`
	Series   []inputSeriesYAML `yaml:"series"`
}

type inputSeriesYAML struct {
	Series yaml.Node `yaml:"series"`
	Values yaml.Node `yaml:"values"`
}

var (
	// yamlSyntaxRE pulls the line out of a yaml.v3 syntax error, which
	// carries no column.
	yamlSyntaxRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	// yamlTypeRE splits one entry of a yaml.TypeError.
	yamlTypeRE = regexp.MustCompile(`^line (\d+): (.*)$`)
	// yamlUnknownRE and yamlCannotRE recognise the two entries a strict
	// decode into seriesFileYAML can produce, whose Go type names mean
	// nothing to the author of the file.
	yamlUnknownRE = regexp.MustCompile(`^field (.+) not found in type `)
	yamlCannotRE  = regexp.MustCompile(`^cannot unmarshal (!!\w+)(?: .*)? into (.+)$`)
)

// fileError is one problem in a series file, at a line and, when yaml.v3
// reports one, a column.
type fileError struct {
	file         string
	line, column int
	err          error
}

func (e *fileError) Error() string {
	switch {
	case e.line > 0 && e.column > 0:
		return fmt.Sprintf("%s:%d:%d: %v", e.file, e.line, e.column, e.err)
	case e.line > 0:
		return fmt.Sprintf("%s:%d: %v", e.file, e.line, e.err)
	default:
		return fmt.Sprintf("%s: %v", e.file, e.err)
	}
}

func (e *fileError) Unwrap() error { return e.err }

// seriesFileParser collects every problem in a file rather than stopping
// at the first, so one run shows them all.
type seriesFileParser struct {
	file string
	errs []*fileError
}

func (p *seriesFileParser) errorf(n *yaml.Node, format string, args ...any) {
	e := &fileError{file: p.file, err: fmt.Errorf(format, args...)}
	if n != nil {
		e.line, e.column = n.Line, n.Column
	}
	p.errs = append(p.errs, e)
}

func (p *seriesFileParser) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(p.errs, func(a, b *fileError) int {
		return cmp.Or(cmp.Compare(a.line, b.line), cmp.Compare(a.column, b.column))
	})
	errs := make([]error, len(p.errs))
	for i, e := range p.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// ParseSeriesFile parses a series file strictly: unknown fields, bad
// durations or times, and series whose notation the Prometheus parser
// rejects are all errors. name is used in error messages, each of which
// reads `name:line:col: message`; all problems are returned together.
func ParseSeriesFile(name string, data []byte) (*SeriesFile, error) {
	p := &seriesFileParser{file: name}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var raw seriesFileYAML
	err := dec.Decode(&raw)
	switch {
	case errors.Is(err, io.EOF):
		p.errorf(nil, "no series: the file is empty")
		return nil, p.err()
	case err != nil:
		var typeErr *yaml.TypeError
		if !errors.As(err, &typeErr) {
			p.syntaxError(err)
			return nil, p.err()
		}
		// yaml.v3 decodes what it can around type errors, so the rest of
		// the file is still worth checking.
		p.typeErrors(typeErr)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		p.errorf(&extra, "a series file holds one YAML document")
	}

	sf := &SeriesFile{
		Start:    p.start(&raw.Start),
		Interval: p.interval(&raw.Interval),
		Series:   p.series(raw.Series),
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return sf, nil
}

func (p *seriesFileParser) syntaxError(err error) {
	if m := yamlSyntaxRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		p.errs = append(p.errs, &fileError{file: p.file, line: line, err: fmt.Errorf("yaml: %s", m[2])})
		return
	}
	p.errs = append(p.errs, &fileError{file: p.file, err: err})
}

// typeErrors rewrites yaml.v3's type errors, which name Go types, into
// what the file should have held.
func (p *seriesFileParser) typeErrors(te *yaml.TypeError) {
	for _, msg := range te.Errors {
		e := &fileError{file: p.file}
		if m := yamlTypeRE.FindStringSubmatch(msg); m != nil {
			e.line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		switch m := yamlCannotRE.FindStringSubmatch(msg); {
		case yamlUnknownRE.MatchString(msg):
			field := yamlUnknownRE.FindStringSubmatch(msg)[1]
			e.err = fmt.Errorf("unknown field %q", field)
		case m != nil && strings.HasPrefix(m[2], "[]"):
			e.err = fmt.Errorf("series must be a list of {series, values}, not %s", m[1])
		case m != nil && strings.HasSuffix(m[2], "inputSeriesYAML"):
			e.err = fmt.Errorf("each series must be a mapping with series and values, not %s", m[1])
		case m != nil:
			e.err = fmt.Errorf("a series file must be a mapping with start, interval and series, not %s", m[1])
		default:
			e.err = errors.New(msg)
		}
		p.errs = append(p.errs, e)
	}
}

// scalar returns the text of an optional scalar node; ok is false when the
// key is absent or null.
func (p *seriesFileParser) scalar(n *yaml.Node, what string) (text string, ok bool) {
	if n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, "%s must be a scalar", what)
		return "", false
	}
	return n.Value, true
}

// start accepts RFC3339 or Unix seconds, as promtool's start_timestamp.
func (p *seriesFileParser) start(n *yaml.Node) time.Time {
	epoch := time.Unix(0, 0).UTC()
	text, ok := p.scalar(n, "start")
	if !ok {
		return epoch
	}
	if t, err := time.Parse(time.RFC3339Nano, text); err == nil {
		return t
	}
	if secs, err := strconv.ParseInt(text, 10, 64); err == nil {
		return time.Unix(secs, 0).UTC()
	}
	if secs, err := strconv.ParseFloat(text, 64); err == nil {
		return time.UnixMilli(int64(secs * 1000)).UTC()
	}
	p.errorf(n, "start %q is neither an RFC3339 time nor Unix seconds", text)
	return epoch
}

// interval accepts Prometheus durations ("1m", "90s", "1h30m").
func (p *seriesFileParser) interval(n *yaml.Node) time.Duration {
	text, ok := p.scalar(n, "interval")
	if !ok {
		return DefaultInterval
	}
	d, err := model.ParseDuration(text)
	if err != nil {
		p.errorf(n, "interval: %v", err)
		return DefaultInterval
	}
	if d <= 0 {
		p.errorf(n, "interval must be positive, got %q", text)
		return DefaultInterval
	}
	return time.Duration(d)
}

// series checks each entry's fields and notation now, so a typo is
// reported at its line instead of when the file is loaded.
func (p *seriesFileParser) series(raw []inputSeriesYAML) []InputSeries {
	if len(raw) == 0 {
		// A type error on series already explains why there are none.
		if len(p.errs) == 0 {
			p.errorf(nil, "no series")
		}
		return nil
	}
	prom := parser.NewParser(parser.Options{})
	first := make(map[string]int, len(raw))
	out := make([]InputSeries, 0, len(raw))
	for i, r := range raw {
		switch {
		case r.Series.Kind == 0:
			// A missing key has no node of its own; point at the values.
			p.errorf(&r.Values, "series %d: missing series", i)
			continue
		case r.Values.Kind == 0:
			p.errorf(&r.Series, "series %d %q: missing values", i, r.Series.Value)
			continue
		}
		var s InputSeries
		s.Series, _ = p.scalar(&r.Series, "series")
		s.Values, _ = p.scalar(&r.Values, "values")
		if r.Series.Kind != yaml.ScalarNode || r.Values.Kind != yaml.ScalarNode {
			continue // scalar reported it
		}
		ps, err := parseInputSeries(prom, s)
		if err != nil {
			p.errorf(&r.Series, "series %d %q: %w", i, s.Series, err)
			continue
		}
		key := ps.labels.String()
		if j, dup := first[key]; dup {
			p.errorf(&r.Series, "series %d %q: same series as series %d", i, s.Series, j)
			continue
		}
		first[key] = i
		out = append(out, s)
	}
	return out
}

// LoadFile reads and parses the series file at path and loads it into a
// new engine with default Options. The caller closes the engine.
func LoadFile(path string) (*Engine, *SeriesFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	sf, err := ParseSeriesFile(path, data)
	if err != nil {
		return nil, nil, err
	}
	e, err := New(Options{})
	if err != nil {
		return nil, nil, err
	}
	if err := e.Load(sf.Start, sf.Interval, sf.Series); err != nil {
		_ = e.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return e, sf, nil
}
