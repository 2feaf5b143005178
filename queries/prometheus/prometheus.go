// Package prometheus is the query source that asks a Prometheus server over
// its HTTP API (/api/v1/query and /api/v1/query_range).
//
// A Source bounds every query with a per-query timeout, retries what a
// retry can fix (server errors and connection failures) and nothing else,
// and reports failures with the sentinel errors of package queries so the
// analysis can tell "the canary is bad" from "we could not ask".
package prometheus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"

	"github.com/aurum/canary/queries"
)

// Defaults for the zero values of Config.
const (
	// DefaultTimeout bounds one call to Query, retries included. Prometheus
	// itself gives up on a query after 2 minutes; a canary step that waits
	// that long has already missed its interval.
	DefaultTimeout = 10 * time.Second
	// DefaultRetries is how many times a query is retried after a server
	// error or a connection failure: enough to ride out a restart or a
	// reload, few enough to stay well inside DefaultTimeout.
	DefaultRetries = 2
	// DefaultRetryBackoff is the wait before the first retry; it doubles for
	// each further retry.
	DefaultRetryBackoff = 100 * time.Millisecond
	// MaxRetryBackoff caps the doubling, unless RetryBackoff itself is
	// larger.
	MaxRetryBackoff = 2 * time.Second
	// DefaultMaxBytes caps an answer at 16 MiB: some 50,000 series of an
	// instant vector, hundreds of times what a canary rule reads, and
	// little enough that a hundred concurrent queries cannot exhaust the
	// memory of the webhook.
	DefaultMaxBytes int64 = 16 << 20
)

// Config says how to reach one Prometheus.
type Config struct {
	// URL is the base URL of the server, e.g. http://prometheus:9090, or one
	// with a path prefix when Prometheus runs behind a proxy
	// (--web.external-url). Credentials do not belong here: put them into
	// HTTPClient, where they are kept out of logs and errors.
	URL string
	// HTTPClient holds basic auth, bearer tokens, OAuth2, TLS and proxy
	// settings, as in Prometheus's own configuration. Its zero value follows
	// no redirects and speaks HTTP/1.1; config.DefaultHTTPClientConfig (or
	// YAML unmarshalling) turns both on.
	HTTPClient config.HTTPClientConfig
	// Timeout bounds one call to Query, retries and waits included. Zero
	// means DefaultTimeout.
	Timeout time.Duration
	// Retries is how many times a query is repeated after a server error or
	// a connection failure. Zero means DefaultRetries; a negative value
	// turns retries off.
	Retries int
	// RetryBackoff is the wait before the first retry. Later waits double,
	// up to MaxRetryBackoff, and are jittered so that queries which failed
	// together do not retry in lockstep. Zero means DefaultRetryBackoff.
	RetryBackoff time.Duration
	// MaxBytes caps the body of an answer, as sent: a query whose answer is
	// longer fails with queries.ErrBadQuery once MaxBytes+1 bytes have
	// arrived, and the connection is closed instead of reading the rest,
	// so that a query matching millions of series, or a server that sends
	// without end, cannot exhaust memory. It is not retried: the same query
	// gets the same answer. Narrow the query instead (aggregate it, or
	// lower maxSeries). Zero means DefaultMaxBytes; negative is an error.
	MaxBytes int64
}

// Source runs queries against one Prometheus server. It is safe for
// concurrent use; a Source shares one connection pool between all its
// queries, so build one per server and keep it.
type Source struct {
	api          v1.API
	timeout      time.Duration
	timeoutCause error // context cause of the per-query timeout, built once
	attempts     int   // 1 + retries
	backoff      time.Duration
	maxBackoff   time.Duration
	logger       *slog.Logger
}

var _ queries.Source = (*Source)(nil)

// New checks cfg and builds the HTTP client. It does not contact the
// server: a Prometheus that is down at start-up is reported by the first
// query, like one that goes down later.
//
// The transport comes from common/config's NewClientFromConfig, which keeps
// up to 1000 idle connections per host (MaxIdleConnsPerHost). That matters:
// with Go's default of 2, a burst of 100 concurrent queries would open up to
// 98 fresh TCP (and TLS) connections each time, and leave as many sockets
// in TIME_WAIT. client_golang's api.DefaultRoundTripper has that default,
// which is why it is not used here.
func New(cfg Config, logger *slog.Logger) (*Source, error) {
	u, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("prometheus timeout %s is negative", cfg.Timeout)
	}
	if cfg.RetryBackoff < 0 {
		return nil, fmt.Errorf("prometheus retry backoff %s is negative", cfg.RetryBackoff)
	}
	if cfg.MaxBytes < 0 {
		return nil, fmt.Errorf("prometheus maxBytes %d is negative", cfg.MaxBytes)
	}
	cfg.MaxBytes = cmp.Or(cfg.MaxBytes, DefaultMaxBytes)
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	switch {
	case cfg.Retries == 0:
		cfg.Retries = DefaultRetries
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	cfg.RetryBackoff = cmp.Or(cfg.RetryBackoff, DefaultRetryBackoff)
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	httpCfg := cfg.HTTPClient
	// Validate fills in defaults through the Authorization pointer; copy it
	// so the caller's config stays as it was.
	if httpCfg.Authorization != nil {
		a := *httpCfg.Authorization
		httpCfg.Authorization = &a
	}
	if err := httpCfg.Validate(); err != nil {
		return nil, fmt.Errorf("prometheus http client: %w", err)
	}
	httpClient, err := config.NewClientFromConfig(httpCfg, "prometheus")
	if err != nil {
		return nil, fmt.Errorf("prometheus http client: %w", err)
	}
	// Outermost, so that every body client_golang reads is capped, that
	// of each redirect included.
	httpClient.Transport = &capTransport{next: httpClient.Transport, max: cfg.MaxBytes}
	client, err := api.NewClient(api.Config{Address: u.String(), Client: httpClient})
	if err != nil {
		return nil, fmt.Errorf("prometheus client: %w", err)
	}
	return &Source{
		api:          v1.NewAPI(client),
		timeout:      cfg.Timeout,
		timeoutCause: &queries.Timeout{Name: "per-query", D: cfg.Timeout},
		attempts:     1 + cfg.Retries,
		backoff:      cfg.RetryBackoff,
		maxBackoff:   max(MaxRetryBackoff, cfg.RetryBackoff),
		logger:       logger.With("url", u.String()),
	}, nil
}

// parseURL accepts an absolute http or https URL without credentials, query
// or fragment. Its errors never repeat the URL: it may hold a password.
func parseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("prometheus url is empty")
	}
	u, err := queries.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid prometheus url: %w", err)
	}
	switch {
	case u.User != nil:
		return nil, errors.New("invalid prometheus url: it holds credentials; set them in the http client config (basic_auth, authorization)")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("invalid prometheus url %q: scheme must be http or https", u.Redacted())
	case u.Host == "":
		return nil, fmt.Errorf("invalid prometheus url %q: no host", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("invalid prometheus url %q: it must not have a query or fragment", u.Redacted())
	}
	return u, nil
}

// Query runs q as an instant query at q.Time, or as a range query when
// q.Range is set. It retries server errors and connection failures with
// backoff, within the per-query timeout and while ctx is live.
//
// Errors wrap queries.ErrTimeout, queries.ErrUnavailable or
// queries.ErrBadQuery; when ctx is canceled they wrap context.Canceled.
func (s *Source) Query(ctx context.Context, q queries.Query) (queries.Result, error) {
	if err := checkQuery(q); err != nil {
		return queries.Result{}, err
	}
	qctx, cancel := context.WithTimeoutCause(ctx, s.timeout, s.timeoutCause)
	defer cancel()

	var last string // what the previous attempt ran into
	for attempt := 1; ; attempt++ {
		val, warnings, infos, err := s.query(qctx, q)
		if err == nil {
			return toResult(val, warnings, infos)
		}
		// When a context ended, err is only its echo; say which one ended.
		if qctx.Err() != nil {
			return queries.Result{}, contextError(ctx, qctx, attempt-1, last)
		}
		f := classify(err)
		// Kept for the log and for a timeout's message too.
		f.detail = queries.RedactURLs(f.detail)
		if !f.retry || attempt == s.attempts {
			return queries.Result{}, f.err(attempt, "")
		}
		wait := s.wait(attempt)
		if deadline, ok := qctx.Deadline(); ok && time.Until(deadline) < wait {
			// Waiting would only end in a timeout that hides the real
			// problem; report the failure we saw instead.
			return queries.Result{}, f.err(attempt, "no time left to retry")
		}
		s.logger.DebugContext(ctx, "retrying prometheus query", "attempt", attempt, "backoff", wait, "err", f.detail)
		last = f.detail
		timer := time.NewTimer(wait)
		select {
		case <-qctx.Done():
			timer.Stop()
			return queries.Result{}, contextError(ctx, qctx, attempt, last)
		case <-timer.C:
		}
	}
}

// checkQuery rejects what Prometheus would reject anyway, without a round
// trip.
func checkQuery(q queries.Query) error {
	switch {
	case q.Text == "":
		return &queries.Error{Kind: queries.ErrBadQuery, Msg: "empty prometheus query"}
	case q.Range < 0:
		return &queries.Error{Kind: queries.ErrBadQuery, Msg: fmt.Sprintf("negative query range %s", q.Range)}
	case q.Range > 0 && q.Step <= 0:
		return &queries.Error{Kind: queries.ErrBadQuery, Msg: fmt.Sprintf("range query over %s needs a positive step", q.Range)}
	}
	return nil
}

// query makes one attempt.
func (s *Source) query(ctx context.Context, q queries.Query) (model.Value, v1.Warnings, v1.Infos, error) {
	if q.Range == 0 {
		// A zero time leaves the time parameter out: Prometheus uses its
		// own clock, which is what "now" means for the data it holds.
		return s.api.Query(ctx, q.Text, q.Time)
	}
	end := q.Time
	if end.IsZero() {
		end = time.Now()
	}
	// Prometheus evaluates at start, start+step, ... up to end. Aligning
	// start to end keeps the last point at q.Time exactly, and starting
	// at the earliest step after end-Range keeps the points inside
	// (Time-Range, Time] as queries.Query promises.
	steps := (q.Range - 1) / q.Step
	start := end.Add(-steps * q.Step)
	return s.api.QueryRange(ctx, q.Text, v1.Range{Start: start, End: end, Step: q.Step})
}

// wait is the jittered exponential backoff before retry number attempt.
func (s *Source) wait(attempt int) time.Duration {
	d := s.maxBackoff
	if shift := attempt - 1; shift < 32 {
		if b := s.backoff << shift; b > 0 && b < d {
			d = b
		}
	}
	// Equal jitter: half fixed so the wait keeps growing, half random so
	// that a burst of queries failing together spreads out.
	return d/2 + rand.N(d/2+1)
}

// toResult converts the value of a successful query.
func toResult(val model.Value, warnings v1.Warnings, infos v1.Infos) (queries.Result, error) {
	var res queries.Result
	if n := len(warnings) + len(infos); n > 0 {
		res.Warnings = make([]string, 0, n)
		res.Warnings = append(res.Warnings, warnings...)
		res.Warnings = append(res.Warnings, infos...)
	}
	switch v := val.(type) {
	case *model.Scalar:
		res.Samples = []queries.Sample{{Labels: map[string]string{}, Value: float64(v.Value)}}
	case model.Vector:
		res.Samples = make([]queries.Sample, 0, len(v))
		for _, s := range v {
			if s.Histogram != nil {
				return queries.Result{}, errHistogram
			}
			res.Samples = append(res.Samples, queries.Sample{Labels: labels(s.Metric), Value: float64(s.Value)})
		}
	case model.Matrix:
		res.Samples = make([]queries.Sample, 0, len(v))
		for _, ss := range v {
			if len(ss.Histograms) > 0 {
				return queries.Result{}, errHistogram
			}
			if len(ss.Values) == 0 {
				continue
			}
			// Prometheus sends the points of a series oldest first.
			points := make([]queries.Point, len(ss.Values))
			for i, p := range ss.Values {
				points[i] = queries.Point{Time: p.Timestamp.Time(), Value: float64(p.Value)}
			}
			res.Samples = append(res.Samples, queries.Sample{
				Labels: labels(ss.Metric),
				Value:  points[len(points)-1].Value,
				Points: points,
			})
		}
	default:
		return queries.Result{}, &queries.Error{
			Kind: queries.ErrBadQuery,
			Msg:  fmt.Sprintf("unusable prometheus result: value type %q", typeName(val)) + wantTypes,
		}
	}
	return res, nil
}

var errHistogram = &queries.Error{
	Kind: queries.ErrBadQuery,
	Msg:  "unusable prometheus result: native histograms (reduce them to numbers, e.g. with histogram_quantile)",
}

func typeName(val model.Value) string {
	if val == nil {
		return "none"
	}
	return val.Type().String()
}

func labels(m model.Metric) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[string(k)] = string(v)
	}
	return out
}
