package rules

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Sentinel errors, tested with errors.Is.
var (
	// ErrInvalidParams marks a call whose params are missing or fail their
	// pattern; nothing was rendered or queried.
	ErrInvalidParams = errors.New("invalid params")
	// ErrUnknownPolicy marks a lookup of a policy that is not loaded.
	ErrUnknownPolicy = errors.New("unknown policy")
	// ErrNoPolicies marks a reload that found no policy at all. A policy
	// directory emptied by mistake (a bad git-sync, an unmounted volume)
	// would otherwise take every policy out of service at once.
	ErrNoPolicies = errors.New("no policies found")
)

// Error is one problem in a policy file, located by file, line and column and
// named by the policy and the rule or query it belongs to.
type Error struct {
	File         string
	Line, Column int
	Policy       string
	Rule         string
	Query        string
	Err          error
}

// Error renders `file:line:col: policy "p", rule "r": message`.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.Policy != "" {
		fmt.Fprintf(&b, "policy %q, ", e.Policy)
	}
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %q, ", e.Rule)
	}
	if e.Query != "" {
		fmt.Fprintf(&b, "query %q, ", e.Query)
	}
	s := b.String()
	s = strings.TrimSuffix(s, ", ")
	if !strings.HasSuffix(s, ": ") {
		s += ": "
	}
	return s + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Errors is every problem found while loading policies, in file order.
type Errors []*Error

// Error renders one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes the individual errors to errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sort orders errors by file, line and column; the order errors were found
// in depends on map iteration in places, the report must not.
func (es Errors) sort() {
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(
			strings.Compare(a.File, b.File),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Column, b.Column),
		)
	})
}

// ParamError is a rejected param value or a missing required param.
type ParamError struct {
	Param  string
	Reason string
}

// Error renders the param and why it was rejected.
func (e *ParamError) Error() string { return fmt.Sprintf("param %q: %s", e.Param, e.Reason) }

// Is makes every ParamError match ErrInvalidParams.
func (e *ParamError) Is(target error) bool { return target == ErrInvalidParams }
