// Package reply writes the HTTP API's JSON answers, for package webhooks
// and the web UI's stream alike: one encoder, which does not HTML-escape
// (a reason reads "0.05 > 0.01", not "0.05 \u003e 0.01"; the answers are
// JSON, never inlined into a page), and one error shape for every 4xx and
// 5xx, Flagger's included:
//
//	{"error": "<one line a person reads>", "reason": "<machine-readable code>"}
//
// The reason is one of a small fixed set (the Reason constants), derived
// from the status, so a client can branch on it without parsing the
// message.
package reply

import (
	"net/http"
	"strings"

	"github.com/aurum/canary/analysis"
)

// ContentType is the media type of every JSON answer.
const ContentType = "application/json; charset=utf-8"

// Reason is the machine-readable code of an error answer.
type Reason string

// The reasons an error answer gives, one per kind of status.
const (
	// BadRequest: the request cannot be used (400).
	BadRequest Reason = "bad_request"
	// Unauthorized: the route group needs a token and got none or a
	// wrong one (401).
	Unauthorized Reason = "unauthorized"
	// Forbidden: the answer is "no" (403): a Flagger check or gate that
	// does not pass, a rollback hook with no rollback latched.
	Forbidden Reason = "forbidden"
	// NotFound: no such policy, run, rollout, route or action (404).
	NotFound Reason = "not_found"
	// MethodNotAllowed: the route does not serve the method (405).
	MethodNotAllowed Reason = "method_not_allowed"
	// Conflict: the state does not allow it now (409).
	Conflict Reason = "conflict"
	// TooLarge: the body is over the server's limit (413).
	TooLarge Reason = "too_large"
	// TooManyRequests: too many of these in flight; retry (429).
	TooManyRequests Reason = "too_many_requests"
	// Unavailable: a transient fault, such as the store; retry (503).
	Unavailable Reason = "unavailable"
	// Internal: a fault of ours (500 and any other status).
	Internal Reason = "internal"
)

// Reasons lists every reason, in the order of their statuses.
var Reasons = []Reason{BadRequest, Unauthorized, Forbidden, NotFound, MethodNotAllowed, Conflict, TooLarge,
	TooManyRequests, Unavailable, Internal}

// ReasonFor is the reason an error answer with status code gives.
func ReasonFor(code int) Reason {
	switch code {
	case http.StatusBadRequest:
		return BadRequest
	case http.StatusUnauthorized:
		return Unauthorized
	case http.StatusForbidden:
		return Forbidden
	case http.StatusNotFound:
		return NotFound
	case http.StatusMethodNotAllowed:
		return MethodNotAllowed
	case http.StatusConflict:
		return Conflict
	case http.StatusRequestEntityTooLarge:
		return TooLarge
	case http.StatusTooManyRequests:
		return TooManyRequests
	case http.StatusServiceUnavailable:
		return Unavailable
	}
	return Internal
}

// Error is the body of every error answer. Errors, set only by a rejected
// policy reload, lists each problem when there are several.
type Error struct {
	Error  string   `json:"error"`
	Reason Reason   `json:"reason"`
	Errors []string `json:"errors,omitempty"`
}

// NewError is the error body for status code and message msg, cut to its
// first line.
func NewError(code int, msg string) Error {
	return Error{Error: OneLine(msg), Reason: ReasonFor(code)}
}

// OneLine cuts s to its first line, marking what was cut.
func OneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " (…)"
	}
	return s
}

// Marshal encodes v as an answer's body: JSON without HTML escaping
// (analysis.MarshalUnescaped), ending in a newline.
func Marshal(v any) ([]byte, error) {
	data, err := analysis.MarshalUnescaped(v)
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// JSON answers status code with v as its JSON body. A value that does
// not encode is a fault of ours: 500, in the error shape.
func JSON(w http.ResponseWriter, code int, v any) {
	data, err := Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		data, _ = Marshal(NewError(code, "cannot encode the answer: "+err.Error()))
	}
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(code)
	_, _ = w.Write(data)
}

// Fail answers status code with msg in the error shape.
func Fail(w http.ResponseWriter, code int, msg string) {
	JSON(w, code, NewError(code, msg))
}
