package httpprobe_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/queries"
	httpprobe "github.com/aurum/canary/queries/http"
)

// serve starts a server for the test.
func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// closedURL is an http URL on a port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return "http://" + addr + "/health"
}

// requireDown checks a record of a probe that got no usable answer.
func requireDown(t *testing.T, res queries.Result, status float64, warning string) {
	t.Helper()
	require.Equal(t, 0.0, res.Values["up"], "warnings: %q", res.Warnings)
	require.Equal(t, status, res.Values["status"])
	require.True(t, math.IsNaN(res.Values["value"]))
	require.NotEmpty(t, res.Warnings)
	require.Contains(t, res.Warnings[len(res.Warnings)-1], warning)
}

func TestQueryStatus(t *testing.T) {
	var method atomic.Value
	srvURL := serve(t, func(w http.ResponseWriter, r *http.Request) {
		method.Store(r.Method)
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		w.WriteHeader(code)
		_, _ = io.WriteString(w, "ok\n")
	})
	src := httpprobe.New(httpprobe.Config{})

	tests := []struct {
		name       string
		fields     map[string]string
		wantUp     float64
		wantStatus float64
		wantMethod string
		warning    string // in the only warning; empty for none
	}{
		{name: "200 is up", fields: map[string]string{"url": srvURL + "/?code=200"}, wantUp: 1, wantStatus: 200, wantMethod: "GET"},
		{name: "204 is in the default range", fields: map[string]string{"url": srvURL + "/?code=204"}, wantUp: 1, wantStatus: 204, wantMethod: "GET"},
		{
			name:   "503 is down",
			fields: map[string]string{"url": srvURL + "/?code=503"}, wantStatus: 503, wantMethod: "GET",
			warning: "GET " + srvURL + "/?code=503: status 503 not in 200-299",
		},
		{name: "503 expected", fields: map[string]string{"url": srvURL + "/?code=503", "expect": "503"}, wantUp: 1, wantStatus: 503, wantMethod: "GET"},
		{name: "code in a list", fields: map[string]string{"url": srvURL + "/?code=204", "expect": "200, 204"}, wantUp: 1, wantStatus: 204, wantMethod: "GET"},
		{
			name:   "code outside a list and a range",
			fields: map[string]string{"url": srvURL + "/?code=204", "expect": "200 ,201-203"}, wantStatus: 204, wantMethod: "GET",
			warning: "status 204 not in 200,201-203",
		},
		{
			name:   "404 is down",
			fields: map[string]string{"url": srvURL + "/?code=404"}, wantStatus: 404, wantMethod: "GET",
			warning: "status 404 not in 200-299",
		},
		{name: "HEAD", fields: map[string]string{"url": srvURL + "/?code=200", "method": "HEAD"}, wantUp: 1, wantStatus: 200, wantMethod: "HEAD"},
		{name: "empty optional fields take defaults", fields: map[string]string{"url": srvURL + "/?code=200", "method": "", "expect": "", "timeout": "", "retries": "", "json": ""}, wantUp: 1, wantStatus: 200, wantMethod: "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			res, err := src.Query(t.Context(), queries.Query{Fields: tt.fields})
			elapsed := time.Since(start)
			require.NoError(t, err)
			require.Equal(t, tt.wantMethod, method.Load())
			require.Equal(t, tt.wantUp, res.Values["up"], "warnings: %q", res.Warnings)
			require.Equal(t, tt.wantStatus, res.Values["status"])
			require.True(t, math.IsNaN(res.Values["value"]), "no json field: value is NaN")
			lat := res.Values["latency_ms"]
			require.False(t, math.IsNaN(lat))
			require.Greater(t, lat, 0.0)
			require.LessOrEqual(t, lat, float64(elapsed)/float64(time.Millisecond))
			if tt.warning == "" {
				require.Empty(t, res.Warnings)
				return
			}
			require.Len(t, res.Warnings, 1)
			require.Contains(t, res.Warnings[0], tt.warning)
		})
	}
}

func TestQueryConnectionRefused(t *testing.T) {
	addr := strings.TrimPrefix(closedURL(t), "http://")
	src := httpprobe.New(httpprobe.Config{})

	tests := []struct {
		name    string
		url     string
		warning string
	}{
		{name: "plain", url: "http://" + addr, warning: "GET http://" + addr + ": connection refused"},
		{
			// The URL is from the policy and may be shown, its password
			// not.
			name: "password masked", url: "http://probe:s3cret@" + addr + "/x?a=1",
			warning: "GET http://probe:xxxxx@" + addr + "/x?a=1: connection refused",
		},
		{
			// A user without a password is likely a token.
			name: "token masked", url: "http://s3cret@" + addr + "/x",
			warning: "GET http://xxxxx@" + addr + "/x: connection refused",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := src.Query(t.Context(), queries.Query{Fields: map[string]string{"url": tt.url}})
			require.NoError(t, err, "a target that is down is a measurement")
			requireDown(t, res, 0, tt.warning)
			require.True(t, math.IsNaN(res.Values["latency_ms"]), "no response, no latency")
			require.Len(t, res.Warnings, 1)
			require.NotContains(t, res.Warnings[0], "s3cret")
		})
	}
}

func TestQueryTimeout(t *testing.T) {
	var hits atomic.Int32
	release := make(chan struct{})
	srvURL := serve(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	// Registered after serve's, so it runs first: waiting handlers return
	// before Close waits for them.
	t.Cleanup(func() { close(release) })

	tests := []struct {
		name    string
		cfg     httpprobe.Config
		fields  map[string]string
		timeout time.Duration
	}{
		{name: "config timeout", cfg: httpprobe.Config{Timeout: 200 * time.Millisecond}, fields: map[string]string{"url": srvURL}, timeout: 200 * time.Millisecond},
		{name: "timeout field overrides config", cfg: httpprobe.Config{Timeout: time.Minute}, fields: map[string]string{"url": srvURL, "timeout": "150ms"}, timeout: 150 * time.Millisecond},
		{
			// A slow answer is not retried: the time is spent.
			name: "no retry after the timeout", cfg: httpprobe.Config{Timeout: time.Minute},
			fields: map[string]string{"url": srvURL, "timeout": "150ms", "retries": "3"}, timeout: 150 * time.Millisecond,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hits.Store(0)
			src := httpprobe.New(tt.cfg)
			start := time.Now()
			res, err := src.Query(t.Context(), queries.Query{Fields: tt.fields})
			elapsed := time.Since(start)
			require.NoError(t, err, "the probe's own timeout is a measurement")
			requireDown(t, res, 0, fmt.Sprintf("GET %s: did not answer within %s", srvURL, tt.timeout))
			require.Len(t, res.Warnings, 1)
			require.True(t, math.IsNaN(res.Values["latency_ms"]))
			require.GreaterOrEqual(t, elapsed, tt.timeout)
			require.Less(t, elapsed, 2*tt.timeout, "the probe must give up at its timeout")
			require.Equal(t, int32(1), hits.Load())
		})
	}
}

func TestQueryRetries(t *testing.T) {
	refused := closedURL(t)

	tests := []struct {
		name         string
		codes        []int // the answers, the last repeated; nil for a closed port
		fields       map[string]string
		wantUp       float64
		wantStatus   float64
		wantAttempts int32
		wantWarnings []string // substrings, in order
	}{
		{
			name: "5xx then success", codes: []int{503, 502, 200}, fields: map[string]string{"retries": "2"},
			wantUp: 1, wantStatus: 200, wantAttempts: 3,
			wantWarnings: []string{"attempt 1: GET ", "status 503 not in 200-299", "attempt 2: GET ", "status 502 not in 200-299"},
		},
		{
			name: "5xx until retries run out", codes: []int{500}, fields: map[string]string{"retries": "2"},
			wantStatus: 500, wantAttempts: 3,
			wantWarnings: []string{"attempt 1:", "attempt 2:", "status 500 not in 200-299 (after 3 attempts)"},
		},
		{
			name: "no retries by default", codes: []int{503, 200},
			wantStatus: 503, wantAttempts: 1, wantWarnings: []string{"status 503 not in 200-299"},
		},
		{
			name: "4xx is not retried", codes: []int{404, 200}, fields: map[string]string{"retries": "3"},
			wantStatus: 404, wantAttempts: 1, wantWarnings: []string{"status 404 not in 200-299"},
		},
		{
			name: "expected 5xx is not retried", codes: []int{503, 200}, fields: map[string]string{"retries": "3", "expect": "200,503"},
			wantUp: 1, wantStatus: 503, wantAttempts: 1,
		},
		{
			name: "connection refused is retried", fields: map[string]string{"url": refused, "retries": "2"},
			wantWarnings: []string{"attempt 1: GET " + refused + ": connection refused", "attempt 2:", "connection refused (after 3 attempts)"},
		},
		{
			// The first backoff is 50-100ms and the second 100-200ms: the
			// second does not fit into what is left of 120ms.
			name: "no retry without time for the backoff", codes: []int{503}, fields: map[string]string{"retries": "10", "timeout": "120ms"},
			wantStatus: 503, wantAttempts: 2,
			wantWarnings: []string{"attempt 1:", "status 503 not in 200-299 (no time left to retry) (after 2 attempts)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			fields := map[string]string{}
			if tt.codes != nil {
				srvURL := serve(t, func(w http.ResponseWriter, r *http.Request) {
					i := int(n.Add(1)) - 1
					w.WriteHeader(tt.codes[min(i, len(tt.codes)-1)])
				})
				fields["url"] = srvURL
			}
			for k, v := range tt.fields {
				fields[k] = v
			}
			res, err := httpprobe.New(httpprobe.Config{}).Query(t.Context(), queries.Query{Fields: fields})
			require.NoError(t, err)
			require.Equal(t, tt.wantUp, res.Values["up"], "warnings: %q", res.Warnings)
			require.Equal(t, tt.wantStatus, res.Values["status"])
			require.Equal(t, tt.wantAttempts, n.Load())
			all := strings.Join(res.Warnings, "\n")
			for _, w := range tt.wantWarnings {
				i := strings.Index(all, w)
				require.GreaterOrEqual(t, i, 0, "want %q in order in %q", w, res.Warnings)
				all = all[i+len(w):]
			}
			if len(tt.wantWarnings) == 0 {
				require.Empty(t, res.Warnings)
			}
		})
	}
}

func TestQueryJSON(t *testing.T) {
	srvURL := serve(t, func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, r.URL.Query().Get("body"))
	})
	src := httpprobe.New(httpprobe.Config{})

	const doc = `{"data":{"backlog":{"records":42}},"items":[{"count":1},{"count":7.5}],` +
		`"ok":true,"bad":false,"n":" 12.5 ","word":"many","none":null,"tags":["a"]}`
	tests := []struct {
		name    string
		code    int // 200 if zero
		body    string
		path    string
		want    float64 // NaN for none
		warning string  // in the only warning; empty for none
	}{
		{name: "nested", body: doc, path: "data.backlog.records", want: 42},
		{name: "array index", body: doc, path: "items[1].count", want: 7.5},
		{name: "document is an array", body: `[3, {"x": [0, 4]}]`, path: "[1].x[1]", want: 4},
		{name: "whole document", body: `17`, path: "[0]", want: math.NaN(), warning: `json "[0]": the document is a number, not an array`},
		{name: "true", body: doc, path: "ok", want: 1},
		{name: "false", body: doc, path: "bad", want: 0},
		{name: "string holding a number", body: doc, path: "n", want: 12.5},
		{name: "missing key", body: doc, path: "data.backlog.bytes", want: math.NaN(), warning: `json "data.backlog.bytes": data.backlog has no key "bytes"`},
		{name: "missing top key", body: doc, path: "nope", want: math.NaN(), warning: `json "nope": the document has no key "nope"`},
		{name: "index out of range", body: doc, path: "items[2].count", want: math.NaN(), warning: `json "items[2].count": items has 2 elements, no [2]`},
		{name: "index into an object", body: doc, path: "data[0]", want: math.NaN(), warning: `data is an object, not an array`},
		{name: "key into an array", body: doc, path: "items.count", want: math.NaN(), warning: `items is an array, not an object`},
		{name: "string not a number", body: doc, path: "word", want: math.NaN(), warning: `json "word": the string "many" is not a number`},
		{name: "null", body: doc, path: "none", want: math.NaN(), warning: `json "none": found null, not a number`},
		{name: "object", body: doc, path: "data", want: math.NaN(), warning: `found an object, not a number`},
		{name: "array", body: doc, path: "tags", want: math.NaN(), warning: `found an array, not a number`},
		{name: "not JSON", body: `<html>`, path: "a", want: math.NaN(), warning: `body is not JSON`},
		{name: "empty body", body: ``, path: "a", want: math.NaN(), warning: `body is not JSON`},
		{name: "expected non-2xx is read", code: 503, body: `{"a":3}`, path: "a", want: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code := cmp.Or(tt.code, 200)
			fields := map[string]string{
				"url":    fmt.Sprintf("%s/?code=%d&body=%s", srvURL, code, url.QueryEscape(tt.body)),
				"json":   tt.path,
				"expect": strconv.Itoa(code),
			}
			res, err := src.Query(t.Context(), queries.Query{Fields: fields})
			require.NoError(t, err)
			require.Equal(t, 1.0, res.Values["up"], "a value that cannot be read leaves up alone")
			if math.IsNaN(tt.want) {
				require.True(t, math.IsNaN(res.Values["value"]), "got %v", res.Values["value"])
			} else {
				require.Equal(t, tt.want, res.Values["value"])
			}
			if tt.warning == "" {
				require.Empty(t, res.Warnings)
				return
			}
			require.Len(t, res.Warnings, 1)
			require.Contains(t, res.Warnings[0], tt.warning)
		})
	}

	t.Run("not read when down", func(t *testing.T) {
		fields := map[string]string{"url": srvURL + "/?code=500&body=" + url.QueryEscape(`{"a":1}`), "json": "a"}
		res, err := src.Query(t.Context(), queries.Query{Fields: fields})
		require.NoError(t, err)
		requireDown(t, res, 500, "status 500 not in 200-299")
		require.Len(t, res.Warnings, 1, "only why it is down")
	})
}

func TestQuerySendsRequest(t *testing.T) {
	type seen struct {
		method, host, body, contentType string
		header                          http.Header
	}
	var mu sync.Mutex
	var got seen
	srvURL := serve(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = seen{method: r.Method, host: r.Host, body: string(b), header: r.Header.Clone()}
		mu.Unlock()
	})
	host := strings.TrimPrefix(srvURL, "http://")

	tests := []struct {
		name   string
		cfg    httpprobe.Config
		fields map[string]string
		want   seen
	}{
		{
			name:   "GET with the default user agent",
			fields: map[string]string{"url": srvURL},
			want:   seen{method: "GET", host: host, header: http.Header{"User-Agent": {"canary-probe"}}},
		},
		{
			name: "POST with headers and a body",
			cfg:  httpprobe.Config{UserAgent: "probe/2"},
			fields: map[string]string{
				"url": srvURL, "method": "POST", "body": `{"ping":1}`,
				"header.Authorization": "Bearer t0ken", "header.content-type": "application/json", "header.X-Empty": "",
			},
			want: seen{method: "POST", host: host, body: `{"ping":1}`, header: http.Header{
				"User-Agent": {"probe/2"}, "Authorization": {"Bearer t0ken"}, "Content-Type": {"application/json"}, "X-Empty": {""},
			}},
		},
		{
			name:   "PUT with Host and User-Agent headers",
			cfg:    httpprobe.Config{UserAgent: "probe/2"},
			fields: map[string]string{"url": srvURL, "method": "PUT", "body": "x", "header.Host": "api.example.test", "header.User-Agent": "mine"},
			want:   seen{method: "PUT", host: "api.example.test", body: "x", header: http.Header{"User-Agent": {"mine"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := httpprobe.New(tt.cfg).Query(t.Context(), queries.Query{Fields: tt.fields})
			require.NoError(t, err)
			require.Equal(t, 1.0, res.Values["up"], "warnings: %q", res.Warnings)
			mu.Lock()
			defer mu.Unlock()
			require.Equal(t, tt.want.method, got.method)
			require.Equal(t, tt.want.host, got.host)
			require.Equal(t, tt.want.body, got.body)
			for k, v := range tt.want.header {
				require.Equal(t, v, got.header[k], "header %s", k)
			}
		})
	}
}

func TestQueryBadFields(t *testing.T) {
	// Nothing may be sent for a query that is rejected.
	var hits atomic.Int32
	srvURL := serve(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	withURL := func(kv ...string) map[string]string {
		m := map[string]string{"url": srvURL}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	tests := []struct {
		name    string
		fields  map[string]string
		wantMsg string
	}{
		{name: "unknown field", fields: withURL("expected", "200"), wantMsg: `http probe: unknown field "expected" (known: url, method, header.<Name>, body, expect, timeout, retries, json)`},
		{name: "unknown fields", fields: withURL("zz", "1", "headers", "x"), wantMsg: `unknown fields "headers", "zz"`},
		{name: "no url", fields: map[string]string{"method": "GET"}, wantMsg: "http probe: url is required"},
		{name: "nil fields", fields: nil, wantMsg: "http probe: url is required"},
		{name: "relative url", fields: map[string]string{"url": "/health"}, wantMsg: `invalid url "/health": scheme must be http or https`},
		{name: "other scheme", fields: map[string]string{"url": "ftp://a/b"}, wantMsg: "scheme must be http or https"},
		{name: "no host", fields: map[string]string{"url": "http:///x"}, wantMsg: "no host"},
		{name: "unparsable url hides password", fields: map[string]string{"url": "http://u:s3cret@host:port/"}, wantMsg: `invalid url: invalid port ":port" after host`},
		{name: "slash in the password", fields: map[string]string{"url": "http://u:s3cret/x@host/"}, wantMsg: `invalid url: invalid port "xxxxx" after host`},
		{name: "bad escape in the password", fields: map[string]string{"url": "http://u:s3cret%zz@host/"}, wantMsg: `invalid url: invalid URL escape "xxxxx"`},
		{name: "port without a host", fields: map[string]string{"url": "http://:8080/x"}, wantMsg: `invalid url "http://:8080/x": no host`},
		{name: "user info without a host", fields: map[string]string{"url": "http://s3cret@:8080/x"}, wantMsg: `invalid url "http://xxxxx@:8080/x": no host`},
		{name: "bad method", fields: withURL("method", "DELETE"), wantMsg: `method "DELETE": must be GET, HEAD, POST or PUT`},
		{name: "lower-case method", fields: withURL("method", "get"), wantMsg: `method "get"`},
		{name: "expect word", fields: withURL("expect", "ok"), wantMsg: `expect "ok": "ok" is not a status code or a range such as 200-299`},
		{name: "expect reversed range", fields: withURL("expect", "200,299-200"), wantMsg: `"299-200" is not a status code`},
		{name: "expect too low", fields: withURL("expect", "99"), wantMsg: `"99" is not a status code`},
		{name: "expect too high", fields: withURL("expect", "200-600"), wantMsg: `"200-600" is not a status code`},
		{name: "expect empty item", fields: withURL("expect", "200,"), wantMsg: `"" is not a status code`},
		{name: "body with GET", fields: withURL("body", "x"), wantMsg: "body needs method POST or PUT, not GET"},
		{name: "json with HEAD", fields: withURL("method", "HEAD", "json", "a"), wantMsg: "json needs a body"},
		{name: "bad timeout", fields: withURL("timeout", "fast"), wantMsg: `timeout "fast": want a positive duration`},
		{name: "zero timeout", fields: withURL("timeout", "0s"), wantMsg: `timeout "0s"`},
		{name: "negative timeout", fields: withURL("timeout", "-1s"), wantMsg: `timeout "-1s"`},
		{name: "negative retries", fields: withURL("retries", "-1"), wantMsg: `retries "-1": want an integer from 0 to 10`},
		{name: "too many retries", fields: withURL("retries", "11"), wantMsg: `retries "11"`},
		{name: "retries word", fields: withURL("retries", "two"), wantMsg: `retries "two"`},
		{name: "header name with a space", fields: withURL("header.X Y", "1"), wantMsg: `field "header.X Y": "X Y" is not a valid header name`},
		{name: "empty header name", fields: withURL("header.", "1"), wantMsg: `field "header.": "" is not a valid header name`},
		{name: "header value with a line break", fields: withURL("header.Authorization", "Bearer s3cret\r\nX-Evil: 1"), wantMsg: `field "header.Authorization": the header value holds a line break`},
		{name: "json empty key", fields: withURL("json", "a..b"), wantMsg: `json path "a..b": empty key`},
		{name: "json leading dot", fields: withURL("json", ".a"), wantMsg: `json path ".a": empty key`},
		{name: "json trailing dot", fields: withURL("json", "a."), wantMsg: `empty key`},
		{name: "json index word", fields: withURL("json", "a[x]"), wantMsg: `[x] is not an array index`},
		{name: "json negative index", fields: withURL("json", "a[-1]"), wantMsg: `[-1] is not an array index`},
		{name: "json unclosed", fields: withURL("json", "a[0"), wantMsg: `unclosed [`},
		{name: "json stray bracket", fields: withURL("json", "a]"), wantMsg: `unexpected ']'`},
		{name: "json key after index", fields: withURL("json", "a[0]b"), wantMsg: `unexpected 'b': keys are separated by dots`},
	}
	src := httpprobe.New(httpprobe.Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := src.Query(t.Context(), queries.Query{Fields: tt.fields})
			require.ErrorIs(t, err, queries.ErrBadQuery)
			require.Equal(t, "bad_query", queries.Classify(err))
			require.Contains(t, err.Error(), tt.wantMsg)
			require.NotContains(t, err.Error(), "s3cret")
		})
	}
	require.Zero(t, hits.Load())
}

func TestQueryMaxBody(t *testing.T) {
	const maxBody = 1024
	release := make(chan struct{})
	srvURL := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		if r.URL.Query().Has("exact") {
			// A document of exactly MaxBody bytes is read.
			_, _ = io.WriteString(w, `{"a":1}`+strings.Repeat(" ", maxBody-7))
			return
		}
		// An endless body: reading it all would never end.
		_, _ = io.WriteString(w, `{"a":1, "pad":"`)
		chunk := bytes.Repeat([]byte("x"), 16<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			select {
			case <-r.Context().Done():
				return
			case <-release:
				return
			default:
			}
		}
	})
	// Registered after serve's, so it runs first: waiting handlers return
	// before Close waits for them.
	t.Cleanup(func() { close(release) })
	src := httpprobe.New(httpprobe.Config{MaxBody: maxBody, Timeout: 10 * time.Second})

	tests := []struct {
		name    string
		url     string
		want    float64
		warning string
	}{
		{name: "body cut", url: srvURL, want: math.NaN(), warning: `GET ` + srvURL + `: body larger than 1024 bytes (MaxBody); json "a" not read`},
		{name: "body of exactly MaxBody", url: srvURL + "/?exact", want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			res, err := src.Query(t.Context(), queries.Query{Fields: map[string]string{"url": tt.url, "json": "a"}})
			require.NoError(t, err)
			require.Less(t, time.Since(start), 5*time.Second, "the body must not be read to its end")
			require.Equal(t, 1.0, res.Values["up"])
			if tt.warning == "" {
				require.Equal(t, tt.want, res.Values["value"])
				require.Empty(t, res.Warnings)
				return
			}
			require.True(t, math.IsNaN(res.Values["value"]))
			require.Equal(t, []string{tt.warning}, res.Warnings)
		})
	}
}

func TestQueryContext(t *testing.T) {
	release := make(chan struct{})
	srvURL := serve(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	// Registered after serve's, so it runs first: waiting handlers return
	// before Close waits for them.
	t.Cleanup(func() { close(release) })
	src := httpprobe.New(httpprobe.Config{Timeout: 10 * time.Second})

	tests := []struct {
		name      string
		ctx       func(t *testing.T) context.Context
		wantErr   error
		wantClass string
		wantMsg   string
	}{
		{
			name: "canceled before",
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				return ctx
			},
			wantErr: context.Canceled, wantClass: "canceled", wantMsg: "http probe GET " + srvURL + " canceled: context canceled",
		},
		{
			name: "canceled during the request, with a cause",
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithCancelCause(t.Context())
				time.AfterFunc(100*time.Millisecond, func() { cancel(errors.New("run aborted")) })
				return ctx
			},
			wantErr: context.Canceled, wantClass: "canceled", wantMsg: "canceled: run aborted",
		},
		{
			// The caller gave less time than the probe's timeout: the probe
			// measured nothing.
			name: "caller's deadline first",
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
				t.Cleanup(cancel)
				return ctx
			},
			wantErr: context.DeadlineExceeded, wantClass: "timeout", wantMsg: "the caller's deadline passed first",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := src.Query(tt.ctx(t), queries.Query{Fields: map[string]string{"url": srvURL, "retries": "3"}})
			require.ErrorIs(t, err, tt.wantErr)
			require.Equal(t, tt.wantClass, queries.Classify(err))
			require.Contains(t, err.Error(), tt.wantMsg)
			require.Less(t, time.Since(start), 2*time.Second, "ctx must end the probe promptly")
		})
	}
}

func TestQueryRedirects(t *testing.T) {
	// /r/N redirects to /r/N-1; /r/0 answers.
	mux := http.NewServeMux()
	mux.HandleFunc("/r/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		if n == 0 {
			return
		}
		http.Redirect(w, r, "/r/"+strconv.Itoa(n-1), http.StatusFound)
	})
	srvURL := serve(t, mux.ServeHTTP)
	src := httpprobe.New(httpprobe.Config{})

	tests := []struct {
		name       string
		hops       int
		expect     string
		wantUp     float64
		wantStatus float64
		warning    string
	}{
		{name: "three redirects are followed", hops: 3, wantUp: 1, wantStatus: 200},
		{name: "the fourth is not", hops: 4, wantStatus: 302, warning: "status 302 not in 200-299 (redirects are followed 3 times)"},
		{name: "unless expect takes it", hops: 4, expect: "200-399", wantUp: 1, wantStatus: 302},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields := map[string]string{"url": srvURL + "/r/" + strconv.Itoa(tt.hops), "expect": tt.expect}
			res, err := src.Query(t.Context(), queries.Query{Fields: fields})
			require.NoError(t, err)
			require.Equal(t, tt.wantUp, res.Values["up"], "warnings: %q", res.Warnings)
			require.Equal(t, tt.wantStatus, res.Values["status"])
			if tt.warning == "" {
				require.Empty(t, res.Warnings)
				return
			}
			require.Len(t, res.Warnings, 1)
			require.Contains(t, res.Warnings[0], tt.warning)
		})
	}
}

// TestQueryConcurrent shares one Source between goroutines, for the race
// detector.
func TestQueryConcurrent(t *testing.T) {
	srvURL := serve(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"n":`+r.URL.Query().Get("n")+`}`)
	})
	src := httpprobe.New(httpprobe.Config{})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			res, err := src.Query(t.Context(), queries.Query{Fields: map[string]string{
				"url": srvURL + "/?n=" + strconv.Itoa(i), "json": "n", "header.X-N": strconv.Itoa(i),
			}})
			if !assertNoError(t, err) {
				return
			}
			if res.Values["value"] != float64(i) {
				t.Errorf("probe %d: value %v", i, res.Values["value"])
			}
		})
	}
	wg.Wait()
}

// assertNoError reports err from a goroutine, where require cannot stop
// the test.
func assertNoError(t *testing.T, err error) bool {
	t.Helper()
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}

// counted starts a server that answers 200 and counts the connections it
// accepted and the requests it got.
func counted(t *testing.T) (srvURL string, conns, requests *atomic.Int32) {
	t.Helper()
	conns, requests = new(atomic.Int32), new(atomic.Int32)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL, conns, requests
}

func TestQueryAllowlist(t *testing.T) {
	srvURL, conns, requests := counted(t)
	hostPort := strings.TrimPrefix(srvURL, "http://")
	port := hostPort[strings.LastIndex(hostPort, ":")+1:]

	tests := []struct {
		name    string
		server  queries.Allowlist
		policy  *queries.Allowlist
		url     string
		wantMsg string // empty: allowed and probed
	}{
		{name: "no lists", url: srvURL},
		{name: "server list allows the IP", server: queries.Allowlist{Hosts: []string{"127.0.0.1"}}, url: srvURL},
		{name: "server CIDR and policy IP allow", server: queries.Allowlist{Hosts: []string{"127.0.0.0/8"}}, policy: &queries.Allowlist{Hosts: []string{"127.0.0.1"}}, url: srvURL},
		{name: "empty policy list restricts nothing", server: queries.Allowlist{Hosts: []string{"127.0.0.1"}}, policy: &queries.Allowlist{}, url: srvURL},
		{name: "name in another case", server: queries.Allowlist{Hosts: []string{"localhost"}}, url: "http://LocalHost:" + port + "/"},
		{
			name: "server list refuses", server: queries.Allowlist{Hosts: []string{"10.0.0.0/8"}}, url: srvURL,
			wantMsg: `http probe: host "127.0.0.1" is not in the server's allowlist`,
		},
		{
			name: "policy list refuses", server: queries.Allowlist{Hosts: []string{"127.0.0.0/8"}}, policy: &queries.Allowlist{Hosts: []string{"10.0.0.0/8"}}, url: srvURL,
			wantMsg: `http probe: host "127.0.0.1" is not in the policy's allowlist`,
		},
		{
			name: "policy list alone refuses", policy: &queries.Allowlist{Namespaces: []string{"prod"}}, url: srvURL,
			wantMsg: `http probe: host "127.0.0.1" is not in the policy's allowlist`,
		},
		{
			name: "an IP is not the name", server: queries.Allowlist{Hosts: []string{"localhost"}}, url: srvURL,
			wantMsg: `http probe: host "127.0.0.1" is not in the server's allowlist`,
		},
		{
			name: "a name is not its IP", server: queries.Allowlist{Hosts: []string{"127.0.0.1"}}, url: "http://localhost:" + port + "/",
			wantMsg: `http probe: host "localhost" is not in the server's allowlist`,
		},
		{
			name: "allowed name as user info", server: queries.Allowlist{Hosts: []string{"allowed.example.com"}},
			url:     "http://allowed.example.com:s3cret@" + hostPort + "/",
			wantMsg: `http probe: host "127.0.0.1" is not in the server's allowlist`,
		},
		{
			name: "trailing dot", server: queries.Allowlist{Hosts: []string{"localhost"}}, url: "http://localhost.:" + port + "/",
			wantMsg: `http probe: host "localhost." is not in the server's allowlist`,
		},
		{
			name: "decimal IP", server: queries.Allowlist{Hosts: []string{"127.0.0.0/8"}}, url: "http://2130706433:" + port + "/",
			wantMsg: `http probe: host "2130706433" is not in the server's allowlist`,
		},
		{
			name: "short IP", server: queries.Allowlist{Hosts: []string{"127.0.0.0/8"}}, url: "http://127.1:" + port + "/",
			wantMsg: `http probe: host "127.1" is not in the server's allowlist`,
		},
		{
			name: "IPv6 in brackets", server: queries.Allowlist{Hosts: []string{"127.0.0.1"}}, url: "http://[::1]:" + port + "/",
			wantMsg: `http probe: host "::1" is not in the server's allowlist`,
		},
		{
			name: "invalid server list", server: queries.Allowlist{Hosts: []string{"127.0.0.1/8"}}, url: srvURL,
			wantMsg: `http probe: the server's allowlist is invalid, so no host is allowed: allowlist host "127.0.0.1/8": host bits are set: did you mean 127.0.0.0/8?`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conns.Store(0)
			requests.Store(0)
			src := httpprobe.New(httpprobe.Config{Allow: tt.server})
			res, err := src.Query(t.Context(), queries.Query{
				Fields: map[string]string{"url": tt.url, "header.Authorization": "Bearer s3cret"},
				Allow:  tt.policy,
			})
			if tt.wantMsg == "" {
				require.NoError(t, err)
				require.Equal(t, 1.0, res.Values["up"], "warnings: %q", res.Warnings)
				require.EqualValues(t, 1, requests.Load())
				return
			}
			require.ErrorIs(t, err, queries.ErrBadQuery)
			require.Equal(t, "bad_query", queries.Classify(err))
			require.EqualError(t, err, tt.wantMsg)
			require.NotContains(t, err.Error(), "s3cret")
			require.Zero(t, conns.Load(), "a refused target is not connected to")
			require.Zero(t, requests.Load())
		})
	}
}

func TestQueryRedirectElsewhere(t *testing.T) {
	otherURL, otherConns, otherRequests := counted(t)
	otherPort := otherURL[strings.LastIndex(otherURL, ":")+1:]
	// The Location of each case is set here rather than passed in the
	// probe's URL, where its credentials would show.
	var location atomic.Value
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/to", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", location.Load().(string))
		w.WriteHeader(http.StatusFound)
	})
	mainURL := serve(t, mux.ServeHTTP)
	mainPort := mainURL[strings.LastIndex(mainURL, ":")+1:]

	tests := []struct {
		name       string
		loc        string
		expect     string
		allow      queries.Allowlist
		wantUp     float64
		wantStatus float64
		warning    string // in the only warning; empty for none
	}{
		{name: "same host, relative", loc: "/ok", wantUp: 1, wantStatus: 200},
		{name: "same host, absolute", loc: mainURL + "/ok", wantUp: 1, wantStatus: 200},
		{name: "same host, allowlisted", loc: "/ok", allow: queries.Allowlist{Hosts: []string{"127.0.0.1"}}, wantUp: 1, wantStatus: 200},
		{name: "same host, scheme in upper case", loc: strings.ToUpper(mainURL) + "/ok", wantUp: 1, wantStatus: 200},
		{
			name: "another host", loc: "http://localhost:" + otherPort + "/", wantStatus: 302,
			warning: "status 302 not in 200-299 (the redirect to another host, http://localhost:" + otherPort + ", was not followed)",
		},
		{
			name: "another port", loc: otherURL + "/", wantStatus: 302,
			warning: "status 302 not in 200-299 (the redirect to another scheme or port, " + otherURL + ", was not followed)",
		},
		{
			name: "another scheme", loc: "https://127.0.0.1:" + mainPort + "/ok", wantStatus: 302,
			warning: "status 302 not in 200-299 (the redirect to another scheme or port, https://127.0.0.1:" + mainPort + ", was not followed)",
		},
		{name: "expect decides", loc: "http://localhost:" + otherPort + "/", expect: "302", wantUp: 1, wantStatus: 302},
		{
			name: "another host with credentials", loc: "http://admin:s3cret@localhost:" + otherPort + "/x?token=s3cret", wantStatus: 302,
			warning: "status 302 not in 200-299 (the redirect to another host, http://localhost:" + otherPort + ", was not followed)",
		},
		{
			name: "another host with a token", loc: "http://s3cret@localhost:" + otherPort + "/", wantStatus: 302,
			warning: "(the redirect to another host, http://localhost:" + otherPort + ", was not followed)",
		},
		{
			// net/http fails and quotes the Location in its error.
			name: "unparsable with credentials", loc: "http://admin:s3cret@localhost:bad/", wantStatus: 0,
			warning: `failed to parse Location header "http://admin:xxxxx@localhost:bad/"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			otherConns.Store(0)
			otherRequests.Store(0)
			location.Store(tt.loc)
			src := httpprobe.New(httpprobe.Config{Allow: tt.allow})
			fields := map[string]string{
				"url":              mainURL + "/to",
				"expect":           tt.expect,
				"header.X-Api-Key": "k3y",
			}
			res, err := src.Query(t.Context(), queries.Query{Fields: fields})
			require.NoError(t, err)
			require.Equal(t, tt.wantUp, res.Values["up"], "warnings: %q", res.Warnings)
			require.Equal(t, tt.wantStatus, res.Values["status"])
			require.Zero(t, otherConns.Load(), "the other host is never contacted")
			require.Zero(t, otherRequests.Load())
			require.NotContains(t, fmt.Sprint(res), "s3cret")
			if tt.warning == "" {
				require.Empty(t, res.Warnings)
				return
			}
			require.Len(t, res.Warnings, 1)
			require.Contains(t, res.Warnings[0], tt.warning)
		})
	}
}
