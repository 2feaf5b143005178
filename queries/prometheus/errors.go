package prometheus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/aurum/canary/queries"
)

// contextError explains why qctx ended: the caller canceled, the caller's
// deadline passed, or the per-query timeout fired. failed and last tell
// what the attempts before ran into, for a timeout that cut retries short.
func contextError(ctx, qctx context.Context, failed int, last string) error {
	err := queries.EndedError(ctx, qctx, "prometheus")
	switch {
	case failed == 1:
		err.Msg += " (after 1 failed attempt: " + last + ")"
	case failed > 1:
		err.Msg += " (after " + strconv.Itoa(failed) + " failed attempts, the last: " + last + ")"
	}
	return err
}

// failure is what went wrong in one attempt.
type failure struct {
	kind   error  // a sentinel of package queries
	what   string // the start of the message; empty means one that fits kind
	detail string // what happened
	cause  error
	retry  bool // whether another attempt could help
}

// classify sorts the error of a failed attempt.
func classify(err error) failure {
	var tooLarge *tooLargeError
	if errors.As(err, &tooLarge) {
		// The same query brings the same answer: only a narrower query
		// helps.
		return failure{
			kind:   queries.ErrBadQuery,
			what:   fmt.Sprintf("prometheus answer is over maxBytes (%d bytes)", tooLarge.max),
			detail: "narrow the query (aggregate it, or lower maxSeries)",
			cause:  err,
		}
	}
	var apiErr *v1.Error
	if !errors.As(err, &apiErr) {
		// Connection refused or reset, DNS, TLS: the server was not
		// reached, or went away mid-answer.
		return failure{kind: queries.ErrUnavailable, detail: err.Error(), cause: err, retry: true}
	}
	switch apiErr.Type {
	case v1.ErrBadData, v1.ErrExec:
		// Parse errors are bad_data (400), evaluation errors such as
		// many-to-many matching are execution (422).
		return failure{kind: queries.ErrBadQuery, detail: apiErr.Error(), cause: err}
	case v1.ErrClient:
		// Any other 4xx: 401, 404, 405 ... Retrying sends the same request.
		return failure{kind: queries.ErrBadQuery, detail: httpMessage(apiErr), cause: err}
	case v1.ErrTimeout:
		return failure{kind: queries.ErrTimeout, detail: apiErr.Error(), cause: err}
	case v1.ErrServer:
		// client_golang decodes the JSON body of 400 and 422 only. A 503
		// from Prometheus is either "unavailable" (retry) or its own
		// --query.timeout firing, which a retry would only repeat.
		if body, ok := decodeBody(apiErr.Detail); ok && body.ErrorType == v1.ErrTimeout {
			return failure{kind: queries.ErrTimeout, detail: httpMessage(apiErr), cause: err}
		}
		return failure{kind: queries.ErrUnavailable, detail: httpMessage(apiErr), cause: err, retry: true}
	case v1.ErrBadResponse:
		// client_golang decodes scalars, vectors and matrices only; a
		// query such as `"text"` yields a string, which it reports as a
		// bad response. The query is at fault, not the server.
		if strings.HasPrefix(apiErr.Msg, "unexpected value type") {
			return failure{kind: queries.ErrBadQuery, what: "unusable prometheus result", detail: apiErr.Msg + wantTypes, cause: err}
		}
		fallthrough
	default:
		// bad_response (an answer that is not the Prometheus API, such as a
		// redirect or a proxy's HTML page) and unknown types: the server
		// answered, and would answer a retry the same way.
		return failure{kind: queries.ErrUnavailable, detail: apiErr.Error(), cause: err}
	}
}

// err is the error Query returns for f after that many attempts; note, if
// set, says why there were no more.
func (f failure) err(attempts int, note string) error {
	msg := f.what
	switch {
	case msg != "":
	case f.kind == queries.ErrBadQuery:
		msg = "prometheus rejected the query"
	case f.kind == queries.ErrTimeout:
		msg = "prometheus query timed out"
	default:
		msg = "prometheus unavailable"
	}
	switch {
	case attempts > 1:
		msg += " after " + strconv.Itoa(attempts) + " attempts"
	case f.retry:
		// A failure that retries could fix says how many it got, even none.
		msg += " after 1 attempt"
	}
	if note != "" {
		msg += " (" + note + ")"
	}
	// The server or a proxy in front of it chose the detail: a Location
	// header that does not parse is quoted whole, user info included.
	return &queries.Error{Kind: f.kind, Msg: queries.RedactURLs(msg + ": " + f.detail), Cause: f.cause}
}

// wantTypes ends the message about a result of the wrong type.
const wantTypes = " (want a vector, scalar or matrix)"

// apiBody is the error envelope of the Prometheus HTTP API.
type apiBody struct {
	ErrorType v1.ErrorType `json:"errorType"`
	Error     string       `json:"error"`
}

func decodeBody(detail string) (apiBody, bool) {
	var b apiBody
	if err := json.Unmarshal([]byte(detail), &b); err != nil || b.Error == "" {
		return apiBody{}, false
	}
	return b, true
}

// httpMessage is "server error: 503", followed by Prometheus's own error
// when the body has one. Other bodies (a proxy's HTML page) are left out:
// they are long and say little.
func httpMessage(e *v1.Error) string {
	if b, ok := decodeBody(e.Detail); ok {
		return e.Msg + ": " + string(b.ErrorType) + ": " + b.Error
	}
	return e.Msg
}
