package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// Limits of the HTTP API, the same as a Prometheus server's.
const (
	// maxPointsPerSeries is the most points a range query may ask for per
	// series: Prometheus refuses more, so that a tiny step over a long
	// range cannot exhaust the server.
	maxPointsPerSeries = 11000
	// maxAnnotations bounds the warnings and infos a response carries, as
	// Prometheus's API does.
	maxAnnotations = 10
)

// Error types of the Prometheus HTTP API, as client_golang's
// api/prometheus/v1 names them (v1.ErrBadData and so on).
const (
	errorBadData     = "bad_data"
	errorExec        = "execution"
	errorTimeout     = "timeout"
	errorCanceled    = "canceled"
	errorInternal    = "internal"
	errorUnavailable = "unavailable"
)

// statusClientClosedRequest is nginx's 499, which Prometheus answers a
// query with when its client went away; nobody reads it, but the code
// tells it from a server fault in access logs.
const statusClientClosedRequest = 499

// Handler serves the engine over the query endpoints of Prometheus's HTTP
// API, so that code written for a Prometheus server, such as the
// queries/prometheus source or client_golang's api/prometheus/v1, can ask
// the embedded engine over HTTP without a change. The live demo runs its
// analyses through exactly the production client this way.
//
// Endpoints:
//
//   - GET or POST /api/v1/query: query, time (RFC 3339 or Unix seconds,
//     default now), timeout, lookback_delta.
//   - GET or POST /api/v1/query_range: query, start, end, step (a float of
//     seconds or a Prometheus duration such as 15s), timeout,
//     lookback_delta.
//   - GET /-/ready and /-/healthy: 200 while the engine is open, 503
//     after Close.
//
// Responses are Prometheus's JSON envelope: {"status":"success","data":
// {"resultType":"vector","result":[...]}} with optional "warnings" and
// "infos", or {"status":"error","errorType":...,"error":...}. Error types and
// HTTP status codes are Prometheus's: bad_data 400 (a parse error or a bad
// parameter), execution 422 (an evaluation error such as many-to-many
// matching, or too many samples), timeout 503, canceled 499, unavailable
// 503 (the engine was closed), internal 500. Values are encoded by
// Prometheus's own promql types, so numbers and timestamps read exactly as
// from a server. Other parameters a Prometheus server knows (limit, stats)
// are ignored, as Prometheus ignores parameters it does not know.
func (e *Engine) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/query", e.serveQuery)
	mux.HandleFunc("POST /api/v1/query", e.serveQuery)
	mux.HandleFunc("GET /api/v1/query_range", e.serveQueryRange)
	mux.HandleFunc("POST /api/v1/query_range", e.serveQueryRange)
	mux.HandleFunc("GET /-/ready", e.serveProbe("Prometheus Server is Ready.\n"))
	mux.HandleFunc("GET /-/healthy", e.serveProbe("Prometheus Server is Healthy.\n"))
	return mux
}

// apiError is a failure with its API error type, which decides the status
// code.
type apiError struct {
	typ string
	err error
}

// apiResponse is the JSON envelope of every API answer.
type apiResponse struct {
	Status    string   `json:"status"`
	Data      any      `json:"data,omitempty"`
	ErrorType string   `json:"errorType,omitempty"`
	Error     string   `json:"error,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
	Infos     []string `json:"infos,omitempty"`
}

// queryData is the data of a query answer. Result is a promql value, whose
// MarshalJSON methods write Prometheus's wire format.
type queryData struct {
	ResultType parser.ValueType `json:"resultType"`
	Result     parser.Value     `json:"result"`
}

func (e *Engine) serveProbe(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		e.mu.RLock()
		closed := e.closed
		e.mu.RUnlock()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if closed {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintln(w, "Service Unavailable")
			return
		}
		_, _ = fmt.Fprint(w, body)
	}
}

func (e *Engine) serveQuery(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeError(w, &apiError{errorBadData, fmt.Errorf("error parsing form values: %w", err)})
		return
	}
	at, err := parseTimeParam(r, "time", time.Now())
	if err != nil {
		writeError(w, invalidParam(err, "time"))
		return
	}
	e.serve(w, r, func(ctx context.Context, opts promql.QueryOpts, q string) (promql.Query, error) {
		return e.ng.NewInstantQuery(ctx, e.st, opts, q, at)
	})
}

func (e *Engine) serveQueryRange(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeError(w, &apiError{errorBadData, fmt.Errorf("error parsing form values: %w", err)})
		return
	}
	start, err := parseTime(r.FormValue("start"))
	if err != nil {
		writeError(w, invalidParam(err, "start"))
		return
	}
	end, err := parseTime(r.FormValue("end"))
	if err != nil {
		writeError(w, invalidParam(err, "end"))
		return
	}
	if end.Before(start) {
		writeError(w, invalidParam(errors.New("end timestamp must not be before start time"), "end"))
		return
	}
	step, err := parseDuration(r.FormValue("step"))
	if err != nil {
		writeError(w, invalidParam(err, "step"))
		return
	}
	if step <= 0 {
		writeError(w, invalidParam(errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer"), "step"))
		return
	}
	if end.Sub(start)/step > maxPointsPerSeries {
		writeError(w, &apiError{errorBadData, errors.New("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")})
		return
	}
	e.serve(w, r, func(ctx context.Context, opts promql.QueryOpts, q string) (promql.Query, error) {
		return e.ng.NewRangeQuery(ctx, e.st, opts, q, start, end, step)
	})
}

// serve runs the query that build makes and writes the answer. It holds
// the engine's read lock throughout, as Query does, so Close waits for it.
func (e *Engine) serve(w http.ResponseWriter, r *http.Request, build func(context.Context, promql.QueryOpts, string) (promql.Query, error)) {
	ctx := r.Context()
	if v := r.FormValue("timeout"); v != "" {
		d, err := parseDuration(v)
		if err != nil {
			writeError(w, invalidParam(err, "timeout"))
			return
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	var lookback time.Duration
	if v := r.FormValue("lookback_delta"); v != "" {
		d, err := parseDuration(v)
		if err != nil {
			writeError(w, invalidParam(err, "lookback_delta"))
			return
		}
		lookback = d
	}
	opts := promql.NewPrometheusQueryOpts(false, lookback, nil)

	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		writeError(w, &apiError{errorUnavailable, ErrClosed})
		return
	}
	// Close cancels queries in flight, so that it does not wait a whole
	// timeout for them.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(e.life, func() { cancel(ErrClosed) })()

	query := r.FormValue("query")
	qry, err := build(ctx, opts, query)
	if err != nil {
		writeError(w, e.constructionError(err))
		return
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		writeError(w, e.execError(res.Err))
		return
	}
	warnings, infos := res.Warnings.AsStrings(query, maxAnnotations, maxAnnotations)
	// Encode before qry.Close, which hands the result's point slices back
	// to the engine's pool.
	writeJSON(w, http.StatusOK, apiResponse{
		Status:   "success",
		Data:     queryData{ResultType: res.Value.Type(), Result: nonNil(res.Value)},
		Warnings: warnings,
		Infos:    infos,
	})
}

// constructionError sorts an error from building a query, which is mostly
// a parse error, as Prometheus does.
func (e *Engine) constructionError(err error) *apiError {
	var (
		timeout  promql.ErrQueryTimeout
		canceled promql.ErrQueryCanceled
	)
	if errors.As(err, &timeout) || errors.As(err, &canceled) {
		return e.execError(err)
	}
	return invalidParam(err, "query")
}

// execError sorts an evaluation error as Prometheus's API does. A query
// canceled by Close is unavailable rather than canceled: the client did
// nothing wrong, and a retry against a new engine may succeed.
func (e *Engine) execError(err error) *apiError {
	var (
		timeout    promql.ErrQueryTimeout
		canceled   promql.ErrQueryCanceled
		storageErr promql.ErrStorage
	)
	switch {
	case e.life.Err() != nil:
		return &apiError{errorUnavailable, fmt.Errorf("%w: %w", ErrClosed, err)}
	case errors.As(err, &canceled), errors.Is(err, context.Canceled):
		return &apiError{errorCanceled, err}
	case errors.As(err, &timeout):
		return &apiError{errorTimeout, err}
	case errors.As(err, &storageErr):
		return &apiError{errorInternal, err}
	default:
		return &apiError{errorExec, err}
	}
}

func invalidParam(err error, name string) *apiError {
	return &apiError{errorBadData, fmt.Errorf("invalid parameter %q: %w", name, err)}
}

// nonNil makes an empty vector or matrix encode as [] rather than null, as
// Prometheus writes it.
func nonNil(v parser.Value) parser.Value {
	switch v := v.(type) {
	case promql.Vector:
		if v == nil {
			return promql.Vector{}
		}
	case promql.Matrix:
		if v == nil {
			return promql.Matrix{}
		}
	}
	return v
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, statusOf(e.typ), apiResponse{Status: "error", ErrorType: e.typ, Error: e.err.Error()})
}

// statusOf is the HTTP status Prometheus answers an error type with.
// client_golang decodes the JSON body of 400 and 422 only; for the others
// it keeps the body as the error's detail, where queries/prometheus finds
// the timeout type.
func statusOf(typ string) int {
	switch typ {
	case errorBadData:
		return http.StatusBadRequest
	case errorExec:
		return http.StatusUnprocessableEntity
	case errorCanceled:
		return statusClientClosedRequest
	case errorTimeout, errorUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

func writeJSON(w http.ResponseWriter, code int, resp apiResponse) {
	b, err := json.Marshal(resp)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

func parseTimeParam(r *http.Request, name string, def time.Time) (time.Time, error) {
	v := r.FormValue(name)
	if v == "" {
		return def, nil
	}
	t, err := parseTime(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid time value for '%s': %w", name, err)
	}
	return t, nil
}

// Prometheus's own bounds for "any time", which clients such as Grafana
// send as start and end; time.Parse cannot read their five-digit years.
var (
	minTime = time.Unix(math.MinInt64/1000+62135596801, 0).UTC()
	maxTime = time.Unix(math.MaxInt64/1000-62135596801, 999999999).UTC()

	minTimeFormatted = minTime.Format(time.RFC3339Nano)
	maxTimeFormatted = maxTime.Format(time.RFC3339Nano)
)

// parseTime reads Unix seconds (with a fraction, rounded to milliseconds)
// or RFC 3339, as Prometheus does.
func parseTime(s string) (time.Time, error) {
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(t)
		frac = math.Round(frac*1000) / 1000
		return time.Unix(int64(sec), int64(frac*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	switch s {
	case minTimeFormatted:
		return minTime, nil
	case maxTimeFormatted:
		return maxTime, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}

// parseDuration reads seconds as a float or a Prometheus duration ("1m30s"),
// as Prometheus does.
func parseDuration(s string) (time.Duration, error) {
	if d, err := strconv.ParseFloat(s, 64); err == nil {
		ts := d * float64(time.Second)
		if math.IsNaN(ts) || ts >= float64(math.MaxInt64) || ts < float64(math.MinInt64) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration. It overflows int64", s)
		}
		return time.Duration(ts), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
}
