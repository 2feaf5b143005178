package webhooks

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/webhooks/reply"
)

// TestEveryRouteErrorShape sends each of the server's routes a request it
// refuses, with every group's token required and none given: a route
// behind a token answers 401, an open one 405 for a method it does not
// serve; each in the one error shape with its status's reason, Flagger's
// routes included. Only /readyz's 503 answers probes in plain text, and
// it has no error to give here.
func TestEveryRouteErrorShape(t *testing.T) {
	e := newEnvWithGroupTokens(t)
	routes := e.routes()
	require.NotEmpty(t, routes)
	concrete := strings.NewReplacer("{policy}", "ingest", "{namespace}", "caiso", "{name}", "good", "{action}", "pause", "{file}", "nope.js")
	for _, route := range slices.Sorted(mapKeys(routes)) {
		t.Run(route, func(t *testing.T) {
			method, path, _ := strings.Cut(route, " ")
			path = concrete.Replace(path)
			code, out := e.call(method, path, nil)
			if code < 400 {
				// An open route: a method it does not serve.
				other := http.MethodDelete
				code, out = e.call(other, path, nil)
			}
			require.GreaterOrEqual(t, code, 400, "%s answered %d: %s", route, code, out)
			eb := errorOf(t, code, out)
			require.Contains(t, reply.Reasons, eb.Reason)
			checkAnswer(t, code, "application/json", []byte(out))
		})
	}
}

// TestReasonFor pins the reason code of each status the server answers
// with.
func TestReasonFor(t *testing.T) {
	tests := []struct {
		name string
		code int
		want reply.Reason
	}{
		{name: "bad request", code: 400, want: reply.BadRequest},
		{name: "no token", code: 401, want: reply.Unauthorized},
		{name: "flagger no", code: 403, want: reply.Forbidden},
		{name: "unknown", code: 404, want: reply.NotFound},
		{name: "method", code: 405, want: reply.MethodNotAllowed},
		{name: "conflict", code: 409, want: reply.Conflict},
		{name: "too large", code: 413, want: reply.TooLarge},
		{name: "too many", code: 429, want: reply.TooManyRequests},
		{name: "panic", code: 500, want: reply.Internal},
		{name: "store down", code: 503, want: reply.Unavailable},
		{name: "anything else", code: 418, want: reply.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, reply.ReasonFor(tt.code))
		})
	}
}
