// Package httpprobe is the health-probe source that sends one HTTP request
// and reports what came back as a record: up, status, latency_ms and value.
// A rule reads it as `api.up == 1 && api.latency_ms < 300`.
//
// A target that is down, slow or answers with the wrong status is a
// measurement (up = 0, with the reason in Result.Warnings), not an error:
// the analysis must be able to fail a canary whose endpoint went away.
// Errors are kept for what measured nothing: a query that cannot be run
// (wrapping queries.ErrBadQuery) and a caller that canceled or ran out of
// time (wrapping context.Canceled or queries.ErrTimeout).
//
// The directory is queries/http; the package is named httpprobe so that
// importers can use net/http next to it without renaming either.
package httpprobe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aurum/canary/queries"
)

// Defaults for the zero values of Config, and the fixed limits of a probe.
const (
	// DefaultTimeout bounds one call to Query, retries included. A health
	// endpoint that needs more than 5s to answer is down for the users
	// behind it too.
	DefaultTimeout = 5 * time.Second
	// DefaultMaxBody is how much of a body is read for the json field. A
	// health or stats document is a few KiB; the cap keeps a probe that
	// hits a download or an endless stream from reading it all.
	DefaultMaxBody int64 = 1 << 20
	// DefaultUserAgent lets the target's logs and metrics tell probes from
	// users.
	DefaultUserAgent = "canary-probe"
	// DefaultExpect is the status codes that count as up when a query has
	// no expect field.
	DefaultExpect = "200-299"
	// MaxRedirects is how many redirects a probe follows, and only on the
	// scheme, host and port of its URL: a health URL that moved on its
	// server (a trailing slash, a new path) still works. A redirect loop
	// ends in the last 3xx answer, which is up only if expect names it; so
	// does a redirect elsewhere, which is not followed at all (see New).
	MaxRedirects = 3
	// MaxRetries is the largest retries field, as the policy format allows.
	MaxRetries = 10
	// retryBackoff is the wait before the first retry; it doubles for each
	// further one, up to maxRetryBackoff. Short, because all retries share
	// one probe timeout.
	retryBackoff    = 100 * time.Millisecond
	maxRetryBackoff = time.Second
	// drainLimit is how much of an unread body is discarded so that the
	// connection can serve the next probe; a larger body costs a new
	// connection instead of the time to read it.
	drainLimit = 4 << 10
)

// Config holds the defaults of the probes of one source. Everything else
// comes with each query, in its fields.
type Config struct {
	// Timeout bounds one call to Query, retries and backoff included, from
	// the request to the end of the body read for the json field. A query's
	// timeout field overrides it. Zero or negative means DefaultTimeout.
	Timeout time.Duration
	// MaxBody caps the bytes of a body read for the json field; a longer
	// body is cut there and its value is NaN. Zero or negative means
	// DefaultMaxBody.
	MaxBody int64
	// UserAgent is sent unless a query sets header.User-Agent. Empty means
	// DefaultUserAgent.
	UserAgent string
	// Allow restricts the hosts of probe URLs for every query; the zero
	// value allows any host. A query's own list (queries.Query.Allow) can
	// only narrow it: a URL must pass both. A refused query fails with
	// queries.ErrBadQuery before any connection is made. Check the list
	// with its Validate method when loading the configuration: New cannot
	// fail, so a list that does not validate refuses every probe.
	Allow queries.Allowlist
}

// Source sends HTTP probes. It is safe for concurrent use and keeps
// connections alive between probes of the same target, so build one and
// keep it.
type Source struct {
	client    *http.Client
	timeout   time.Duration
	maxBody   int64
	userAgent string
	allow     queries.Allowlist
}

var _ queries.Source = (*Source)(nil)

// New builds a Source with its own client. Its transport is a copy of
// net/http's default one (TLS with the system roots, HTTP/2, proxies from
// HTTP_PROXY, HTTPS_PROXY and NO_PROXY), so that nothing another package
// does to http.DefaultClient changes what a probe measures.
//
// The client follows at most MaxRedirects redirects, and only those to the
// scheme, host and port of the probe's URL. A redirect elsewhere could take
// the probe to a host the allowlists refuse, or hand its header values,
// which may be credentials, to another server: net/http drops
// Authorization and Cookie on such a redirect, but sends X-Api-Key and the
// like along. The probe reports the 3xx answer instead, which is up only if
// expect names it.
func New(cfg Config) *Source {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = DefaultUserAgent
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	return &Source{
		client: &http.Client{
			Transport:     transport,
			CheckRedirect: checkRedirect,
			// No client Timeout: each query brings its own, through ctx.
		},
		timeout:   cfg.Timeout,
		maxBody:   cfg.MaxBody,
		userAgent: cfg.UserAgent,
		allow:     cfg.Allow,
	}
}

// redirectKey is the context key of an attempt's *redirects.
type redirectKey struct{}

// redirects is what checkRedirect needs to know of an attempt, and what it
// tells the attempt back.
type redirects struct {
	// allowed checks a host against the allowlists of the source and of
	// the query.
	allowed func(host string) error
	// refused says where a redirect not followed went, for the message:
	// "another host, http://other:8080"; empty when none was refused.
	refused string
}

// checkRedirect is the client's CheckRedirect: it follows a redirect only
// to the scheme, host and port of the first request, that the allowlists
// allow, and at most MaxRedirects of them. Otherwise the client hands back
// the 3xx answer itself.
func checkRedirect(req *http.Request, via []*http.Request) error {
	r, _ := req.Context().Value(redirectKey{}).(*redirects)
	if r == nil {
		// Not a probe's request: follow nothing.
		return http.ErrUseLastResponse
	}
	// url.URL.Host holds no user info, and the path may hold a token.
	to := req.URL.Scheme + "://" + req.URL.Host
	switch from := via[0].URL; {
	case !strings.EqualFold(from.Hostname(), req.URL.Hostname()):
		r.refused = "another host, " + to
	case !sameOrigin(from, req.URL):
		r.refused = "another scheme or port, " + to
	case r.allowed(req.URL.Hostname()) != nil:
		// The host the first request passed, spelled otherwise.
		r.refused = "a host the allowlists refuse, " + to
	}
	if r.refused != "" {
		return http.ErrUseLastResponse
	}
	// via holds the requests made so far, the first one included: stop
	// before the (MaxRedirects+1)-th redirect.
	if len(via) > MaxRedirects {
		return http.ErrUseLastResponse
	}
	return nil
}

// sameOrigin reports whether b has the scheme, host and port of a; a
// missing port is the scheme's. url.Parse lowers schemes; host names are
// compared in any case, and other spellings of one address count as
// different hosts.
func sameOrigin(a, b *url.URL) bool {
	return a.Scheme == b.Scheme && strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}

func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

// Query sends the request q.Fields describe and measures the answer.
// q.Text, q.Time, q.Range and q.Step are ignored: a probe measures now.
//
// Fields (an empty value means the default):
//
//   - url: required; an absolute http or https URL whose host the
//     allowlists allow (Config.Allow, and q.Allow when set). User and
//     password in it are sent as basic auth; the password, or a user
//     without one, is masked in messages.
//   - method: GET (default), HEAD, POST or PUT.
//   - header.<Name>: a request header, e.g. header.Authorization; any
//     number of them. header.Host sets the Host. Values never appear in
//     messages.
//   - body: the request body, for POST and PUT only.
//   - expect: the status codes that count as up, comma-separated codes and
//     ranges such as "200,204" or "200-299" (DefaultExpect).
//   - timeout: a duration such as 2s that replaces Config.Timeout; ctx's
//     deadline still applies.
//   - retries: 0 (default) to MaxRetries further attempts after a
//     connection failure or a 5xx that expect does not list, with a short
//     backoff, all within the timeout.
//   - json: a path into a JSON body, such as data.backlog.records or
//     items[0].count, whose number becomes value. true and false count as
//     1 and 0; a string holding a number is parsed. It is read only when up
//     is 1.
//
// Other fields are rejected. Result.Values always holds:
//
//   - up: 1 if a response arrived with an expected status, else 0.
//   - status: the status code of the last attempt, 0 without a response.
//   - latency_ms: the time from sending the last attempt to its response
//     headers (connecting and any redirects included), NaN without a
//     response.
//   - value: the number at the json path; NaN without a json field, when
//     up is 0, or when the body does not hold a number there.
//
// Result.Warnings says why up is 0, what earlier attempts ran into, and
// why value is NaN when a json field was given.
//
// Errors wrap queries.ErrBadQuery for fields that cannot be used and for a
// URL whose host Config.Allow or q.Allow refuses (see
// queries.AllowHost), context.Canceled when ctx was canceled, and
// queries.ErrTimeout when ctx's own deadline passed before the probe's
// timeout did: then the probe did not get the time it was given, and
// measured nothing.
func (s *Source) Query(ctx context.Context, q queries.Query) (queries.Result, error) {
	p, err := parseProbe(q.Fields)
	if err != nil {
		return queries.Result{}, err
	}
	p.allow = q.Allow
	if err := s.allowed(p, p.url.Hostname()); err != nil {
		return queries.Result{}, err
	}
	if ctx.Err() != nil {
		return queries.Result{}, queries.CallerError(ctx, "http probe "+p.what())
	}
	timeout := s.timeout
	if p.timeout > 0 {
		timeout = p.timeout
	}
	pctx, cancel := context.WithTimeoutCause(ctx, timeout, &queries.Timeout{Name: "http probe", D: timeout})
	defer cancel()

	var warnings []string
	for attempt := 1; ; attempt++ {
		o := s.attempt(pctx, p, timeout)
		// The probe's own timeout is a measurement; the caller's end is
		// not, since the probe never got the time it was given.
		if ctx.Err() != nil {
			return queries.Result{}, queries.CallerError(ctx, "http probe "+p.what())
		}
		if o.up || !o.retry || attempt > p.retries {
			return o.result(warnings, attempt), nil
		}
		wait := backoff(attempt)
		if deadline, ok := pctx.Deadline(); ok && time.Until(deadline) < wait {
			// Waiting would only end in the timeout and hide the answer
			// the target gave.
			o.problem += " (no time left to retry)"
			return o.result(warnings, attempt), nil
		}
		warnings = append(warnings, fmt.Sprintf("attempt %d: %s", attempt, o.problem))
		timer := time.NewTimer(wait)
		select {
		case <-pctx.Done():
			timer.Stop()
			if ctx.Err() != nil {
				return queries.Result{}, queries.CallerError(ctx, "http probe "+p.what())
			}
			return o.result(warnings, attempt), nil
		case <-timer.C:
		}
	}
}

// allowed checks host, of p's URL or of a redirect, against the
// allowlists.
func (s *Source) allowed(p *probe, host string) error {
	return queries.AllowHost("http probe", host, s.allow, p.allow)
}

// outcome is what one attempt measured.
type outcome struct {
	up      bool
	status  int     // 0 without a response
	latency float64 // milliseconds to the response headers; NaN without a response
	value   float64 // NaN unless the json path gave a number
	problem string  // why up is false
	notes   []string
	retry   bool // whether another attempt could change the answer
}

// result is the record of the last attempt; earlier holds the problems of
// the attempts before it.
func (o outcome) result(earlier []string, attempts int) queries.Result {
	warnings := earlier
	if !o.up {
		problem := o.problem
		if attempts > 1 {
			problem += " (after " + strconv.Itoa(attempts) + " attempts)"
		}
		warnings = append(warnings, problem)
	}
	warnings = append(warnings, o.notes...)
	up := 0.0
	if o.up {
		up = 1
	}
	return queries.Result{
		Values: map[string]float64{
			"up":         up,
			"status":     float64(o.status),
			"latency_ms": o.latency,
			"value":      o.value,
		},
		Warnings: warnings,
	}
}

// attempt sends the request once. timeout is the probe's, for messages.
func (s *Source) attempt(ctx context.Context, p *probe, timeout time.Duration) outcome {
	o := outcome{latency: math.NaN(), value: math.NaN()}
	var body io.Reader
	if p.body != "" {
		// A fresh reader per attempt; net/http also rewinds it (GetBody)
		// for a 307 or 308 redirect.
		body = strings.NewReader(p.body)
	}
	redir := &redirects{allowed: func(host string) error { return s.allowed(p, host) }}
	req, err := http.NewRequestWithContext(context.WithValue(ctx, redirectKey{}, redir), p.method, p.url.String(), body)
	if err != nil {
		// parseProbe accepted the URL and method; this is not expected.
		o.problem = p.what() + ": " + describe(err)
		return o
	}
	req.Header = p.header.Clone()
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", s.userAgent)
	}
	if p.host != "" {
		req.Host = p.host
	}

	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		settle(ctx)
		if ctx.Err() != nil {
			// Either the probe's timeout (reported as such) or the
			// caller's end (which Query turns into an error).
			o.problem = fmt.Sprintf("%s: did not answer within %s", p.what(), timeout)
			return o
		}
		o.problem = p.what() + ": " + describe(err)
		o.retry = connectionError(err)
		return o
	}
	defer resp.Body.Close()
	o.latency = float64(time.Since(start)) / float64(time.Millisecond)
	o.status = resp.StatusCode
	o.up = p.expect.match(resp.StatusCode)
	if !o.up {
		o.problem = fmt.Sprintf("%s: status %d not in %s", p.what(), resp.StatusCode, p.expect)
		switch {
		case redir.refused != "":
			o.problem += fmt.Sprintf(" (the redirect to %s, was not followed)", redir.refused)
		case isRedirect(resp):
			o.problem += fmt.Sprintf(" (redirects are followed %d times)", MaxRedirects)
		}
		o.retry = resp.StatusCode >= 500
		drain(resp)
		return o
	}
	if p.json == nil {
		drain(resp)
		return o
	}
	o.value, o.notes = s.readValue(ctx, p, resp, timeout)
	return o
}

// readValue reads the body, at most maxBody bytes of it, and the number at
// the probe's json path. A body that cannot give one leaves up as it is:
// the endpoint answered as expected, only the value is missing.
func (s *Source) readValue(ctx context.Context, p *probe, resp *http.Response, timeout time.Duration) (float64, []string) {
	limit := s.maxBody
	if limit < math.MaxInt64 {
		limit++ // one byte more tells a body of exactly maxBody from a longer one
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		settle(ctx)
	}
	switch {
	case err != nil && ctx.Err() != nil:
		return math.NaN(), []string{fmt.Sprintf("%s: body did not arrive within %s; json %s not read", p.what(), timeout, p.json)}
	case err != nil:
		return math.NaN(), []string{fmt.Sprintf("%s: reading body: %s; json %s not read", p.what(), describe(err), p.json)}
	case int64(len(data)) > s.maxBody:
		// Closing the body unread ends the connection instead of reading
		// the rest of it.
		return math.NaN(), []string{fmt.Sprintf("%s: body larger than %d bytes (MaxBody); json %s not read", p.what(), s.maxBody, p.json)}
	}
	v, err := p.json.extract(data)
	if err != nil {
		return math.NaN(), []string{p.what() + ": " + err.Error()}
	}
	return v, nil
}

// settle waits for ctx to end once its deadline has passed. The transport
// turns the deadline into socket deadlines, which can fire a moment before
// the context's own timer; without the wait, an "i/o timeout" would pass
// for a network failure, or the caller's deadline for the probe's.
func settle(ctx context.Context) {
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		<-ctx.Done()
	}
}

// drain reads a short, known-length body to its end so that the connection
// can be reused, and leaves anything longer or of unknown length unread:
// reading it would add the body's transfer to a probe that has its answer.
func drain(resp *http.Response) {
	if resp.ContentLength >= 0 && resp.ContentLength <= drainLimit {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
	}
}

func isRedirect(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return resp.Header.Get("Location") != ""
	}
	return false
}

// backoff is the jittered exponential wait before retry number attempt.
func backoff(attempt int) time.Duration {
	d := maxRetryBackoff
	if shift := attempt - 1; shift < 16 {
		d = min(d, retryBackoff<<shift)
	}
	// Half fixed so that waits grow, half random so that probes which
	// failed together do not retry together.
	return d/2 + rand.N(d/2+1)
}

// connectionError tells failures a retry may fix (refused, reset, closed
// early, DNS) from those it would repeat (TLS certificates, a redirect to
// an unusable URL).
func connectionError(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED)
}

// describe shortens a client error to its reason, with the user info of
// any URL in it masked. The URL is not repeated: messages start with the
// probe's redacted one. But a redirect's Location that does not parse is
// quoted whole by net/http.
func describe(err error) string { return queries.RedactURLs(reason(err)) }

func reason(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by peer"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed before an answer"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.Error()
	}
	return err.Error()
}
