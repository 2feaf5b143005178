package prometheus_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/config"
	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/queries/prometheus"
)

// These tests stand an httptest server in for Prometheus, to produce
// answers a healthy Prometheus does not give on demand.

const okBody = `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"1"]}}`

type reply struct {
	code int
	body string
}

// scripted answers the i-th request with replies[i], repeating the last
// reply, and counts the requests.
func scripted(t *testing.T, replies ...reply) (string, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		rep := replies[min(i, len(replies)-1)]
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rep.code)
		_, _ = io.WriteString(w, rep.body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &n
}

func apiError(typ, msg string) string {
	return fmt.Sprintf(`{"status":"error","errorType":%q,"error":%q}`, typ, msg)
}

func TestQueryRetries(t *testing.T) {
	tests := []struct {
		name         string
		retries      int
		replies      []reply
		wantAttempts int32
		wantErr      error // nil for success
		wantMsg      string
	}{
		{
			name:         "500 is retried",
			replies:      []reply{{500, "oops"}},
			wantAttempts: 3,
			wantErr:      queries.ErrUnavailable,
			wantMsg:      "prometheus unavailable after 3 attempts: server error: 500",
		},
		{
			name:         "503 with an API body is retried",
			replies:      []reply{{503, apiError("unavailable", "TSDB not ready")}},
			wantAttempts: 3,
			wantErr:      queries.ErrUnavailable,
			wantMsg:      "prometheus unavailable after 3 attempts: server error: 503: unavailable: TSDB not ready",
		},
		{
			name:         "502 then success",
			replies:      []reply{{502, ""}, {200, okBody}},
			wantAttempts: 2,
		},
		{
			name:         "retries off",
			retries:      -1,
			replies:      []reply{{500, ""}},
			wantAttempts: 1,
			wantErr:      queries.ErrUnavailable,
			wantMsg:      "prometheus unavailable after 1 attempt: server error: 500",
		},
		{
			name:         "server-side query timeout is not retried",
			replies:      []reply{{503, apiError("timeout", "query timed out in expression evaluation")}},
			wantAttempts: 1,
			wantErr:      queries.ErrTimeout,
			wantMsg:      "prometheus query timed out: server error: 503: timeout: query timed out in expression evaluation",
		},
		{
			name:         "400 bad_data is tried once",
			replies:      []reply{{400, apiError("bad_data", "1:5: parse error: unexpected end of input")}},
			wantAttempts: 1,
			wantErr:      queries.ErrBadQuery,
			wantMsg:      "prometheus rejected the query: bad_data: 1:5: parse error: unexpected end of input",
		},
		{
			name:         "422 execution is tried once",
			replies:      []reply{{422, apiError("execution", "many-to-many matching not allowed")}},
			wantAttempts: 1,
			wantErr:      queries.ErrBadQuery,
			wantMsg:      "prometheus rejected the query: execution: many-to-many matching not allowed",
		},
		{
			name:         "401 is tried once",
			replies:      []reply{{401, "Unauthorized"}},
			wantAttempts: 1,
			wantErr:      queries.ErrBadQuery,
			wantMsg:      "prometheus rejected the query: client error: 401",
		},
		{
			name:         "an answer that is not the API is not retried",
			replies:      []reply{{200, "<html>login</html>"}},
			wantAttempts: 1,
			wantErr:      queries.ErrUnavailable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, attempts := scripted(t, tt.replies...)
			src := newSource(t, prometheus.Config{URL: addr, Retries: tt.retries, RetryBackoff: time.Millisecond})
			res, err := src.Query(t.Context(), queries.Query{Text: "up"})
			require.Equal(t, tt.wantAttempts, attempts.Load())
			if tt.wantErr == nil {
				require.NoError(t, err)
				require.Len(t, res.Samples, 1)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
			if tt.wantMsg != "" {
				require.EqualError(t, err, tt.wantMsg)
			}
		})
	}
}

func TestQueryStopsRetrying(t *testing.T) {
	t.Run("when the caller cancels during the backoff", func(t *testing.T) {
		addr, attempts := scripted(t, reply{500, ""})
		ctx, cancel := context.WithCancel(t.Context())
		// Cancel once the source says it is backing off, not after a fixed
		// time: on a loaded machine the first attempt alone can take longer.
		logger := slog.New(onMessage{msg: "retrying prometheus query", do: cancel})
		src, err := prometheus.New(prometheus.Config{URL: addr, Retries: 5, RetryBackoff: time.Hour, Timeout: 2 * time.Hour}, logger)
		require.NoError(t, err)
		err = within(t, func() error { _, err := src.Query(ctx, queries.Query{Text: "up"}); return err })
		require.ErrorIs(t, err, context.Canceled)
		require.EqualError(t, err, "prometheus query canceled: context canceled (after 1 failed attempt: server error: 500)")
		require.EqualValues(t, 1, attempts.Load())
	})

	t.Run("when the backoff would outlast the timeout", func(t *testing.T) {
		addr, attempts := scripted(t, reply{500, ""})
		src := newSource(t, prometheus.Config{URL: addr, Timeout: time.Minute, RetryBackoff: time.Hour})
		err := within(t, func() error { _, err := src.Query(t.Context(), queries.Query{Text: "up"}); return err })
		require.ErrorIs(t, err, queries.ErrUnavailable)
		require.EqualError(t, err, "prometheus unavailable after 1 attempt (no time left to retry): server error: 500")
		require.EqualValues(t, 1, attempts.Load())
	})
}

// within runs f and fails the test if it has not returned in 30 s: the
// backoffs above are an hour, so returning at all shows they were cut.
func within(t *testing.T, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("the query is still waiting out its backoff")
		return nil
	}
}

// onMessage is a slog handler that calls do when msg is logged.
type onMessage struct {
	msg string
	do  func()
}

func (h onMessage) Enabled(context.Context, slog.Level) bool { return true }
func (h onMessage) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.do()
	}
	return nil
}
func (h onMessage) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h onMessage) WithGroup(string) slog.Handler      { return h }

func TestQueryWarnings(t *testing.T) {
	addr, _ := scripted(t, reply{200, `{"status":"success",
		"data":{"resultType":"vector","result":[{"metric":{"job":"api"},"value":[1700000000,"0.5"]}]},
		"warnings":["PromQL warning: encountered a mix of histograms and floats"],
		"infos":["PromQL info: metric might not be a counter"]}`})
	src := newSource(t, prometheus.Config{URL: addr})
	res, err := src.Query(t.Context(), queries.Query{Text: "up"})
	require.NoError(t, err)
	require.Equal(t, queries.Result{
		Samples: []queries.Sample{{Labels: map[string]string{"job": "api"}, Value: 0.5}},
		Warnings: []string{
			"PromQL warning: encountered a mix of histograms and floats",
			"PromQL info: metric might not be a counter",
		},
	}, res)
}

func TestQueryAuth(t *testing.T) {
	const secret = "s3cr3t-token"
	tests := []struct {
		name string
		http config.HTTPClientConfig
		want string // the Authorization header
	}{
		{
			name: "bearer token",
			http: config.HTTPClientConfig{BearerToken: secret},
			want: "Bearer " + secret,
		},
		{
			name: "authorization credentials",
			http: config.HTTPClientConfig{Authorization: &config.Authorization{Credentials: secret}},
			want: "Bearer " + secret,
		},
		{
			name: "basic auth",
			http: config.HTTPClientConfig{BasicAuth: &config.BasicAuth{Username: "canary", Password: secret}},
			want: "Basic Y2FuYXJ5OnMzY3IzdC10b2tlbg==", // canary:s3cr3t-token
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			var mu sync.Mutex
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				got = append(got, r.Header.Get("Authorization"))
				mu.Unlock()
				w.WriteHeader(http.StatusInternalServerError)
			}))
			defer srv.Close()

			src := newSource(t, prometheus.Config{URL: srv.URL, HTTPClient: tt.http, RetryBackoff: time.Millisecond})
			_, err := src.Query(t.Context(), queries.Query{Text: "up"})
			require.ErrorIs(t, err, queries.ErrUnavailable)
			require.NotContains(t, err.Error(), secret)
			mu.Lock()
			defer mu.Unlock()
			require.Equal(t, []string{tt.want, tt.want, tt.want}, got, "every attempt carries the credentials")
		})
	}
}

func TestQueryRangeWindow(t *testing.T) {
	at := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name      string
		rng, step time.Duration
		wantStart string
	}{
		{name: "range a multiple of step", rng: 10 * time.Minute, step: time.Minute, wantStart: "1699999460"},
		{name: "range not a multiple of step", rng: 10 * time.Minute, step: 3 * time.Minute, wantStart: "1699999460"},
		{name: "step longer than range", rng: time.Minute, step: 5 * time.Minute, wantStart: "1700000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forms := make(chan map[string][]string, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_ = r.ParseForm()
				forms <- r.PostForm
				_, _ = io.WriteString(w, `{"status":"success","data":{"resultType":"matrix","result":[]}}`)
			}))
			defer srv.Close()
			src := newSource(t, prometheus.Config{URL: srv.URL})
			_, err := src.Query(t.Context(), queries.Query{Text: "up", Time: at, Range: tt.rng, Step: tt.step})
			require.NoError(t, err)
			form := <-forms
			require.Equal(t, []string{tt.wantStart}, form["start"])
			require.Equal(t, []string{"1700000000"}, form["end"])
			require.Equal(t, []string{fmt.Sprint(tt.step.Seconds())}, form["step"])
		})
	}
}

func TestQueryInvalid(t *testing.T) {
	addr, attempts := scripted(t, reply{200, okBody})
	src := newSource(t, prometheus.Config{URL: addr})
	tests := []struct {
		name    string
		q       queries.Query
		wantMsg string
	}{
		{name: "empty", q: queries.Query{}, wantMsg: "empty prometheus query"},
		{name: "negative range", q: queries.Query{Text: "up", Range: -time.Minute}, wantMsg: "negative query range -1m0s"},
		{name: "range without step", q: queries.Query{Text: "up", Range: time.Minute}, wantMsg: "range query over 1m0s needs a positive step"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := src.Query(t.Context(), tt.q)
			require.ErrorIs(t, err, queries.ErrBadQuery)
			require.EqualError(t, err, tt.wantMsg)
		})
	}
	require.Zero(t, attempts.Load(), "checked before any request")
}

func TestQueryResultTypes(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantMsg string
	}{
		{
			name:    "string",
			body:    `{"status":"success","data":{"resultType":"string","result":[1700000000,"hello"]}}`,
			wantMsg: `unusable prometheus result: unexpected value type "string" (want a vector, scalar or matrix)`,
		},
		{
			name: "native histogram",
			body: `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},
				"histogram":[1700000000,{"count":"1","sum":"1","buckets":[[0,"0","1","1"]]}]}]}}`,
			wantMsg: "unusable prometheus result: native histograms (reduce them to numbers, e.g. with histogram_quantile)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, _ := scripted(t, reply{200, tt.body})
			src := newSource(t, prometheus.Config{URL: addr})
			_, err := src.Query(t.Context(), queries.Query{Text: "up"})
			require.ErrorIs(t, err, queries.ErrBadQuery)
			require.EqualError(t, err, tt.wantMsg)
		})
	}
}

// TestConnectionReuse checks that a burst of concurrent queries reuses the
// connections of the burst before. With net/http's default of 2 idle
// connections per host, the second burst would dial 98 new ones.
func TestConnectionReuse(t *testing.T) {
	const burst = 100
	var dialed atomic.Int32
	var gate sync.WaitGroup // holds each request until the whole burst is in
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gate.Done()
		gate.Wait()
		_, _ = io.WriteString(w, okBody)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dialed.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	src := newSource(t, prometheus.Config{URL: srv.URL})

	for range 2 {
		gate.Add(burst)
		errs := make(chan error, burst)
		for range burst {
			go func() {
				_, err := src.Query(t.Context(), queries.Query{Text: "up"})
				errs <- err
			}()
		}
		for range burst {
			require.NoError(t, <-errs)
		}
	}
	require.EqualValues(t, burst, dialed.Load())
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     prometheus.Config
		wantMsg string // empty: valid
	}{
		{name: "valid", cfg: prometheus.Config{URL: "http://prometheus:9090"}},
		{name: "valid with path prefix", cfg: prometheus.Config{URL: "https://example.com/prometheus/"}},
		{name: "empty url", cfg: prometheus.Config{}, wantMsg: "prometheus url is empty"},
		{
			name:    "unparsable url keeps its password out",
			cfg:     prometheus.Config{URL: "http://u:hunter2@host:99x/"},
			wantMsg: `invalid prometheus url: invalid port ":99x" after host`,
		},
		{
			name:    "credentials in the url",
			cfg:     prometheus.Config{URL: "http://u:hunter2@host:9090/"},
			wantMsg: "invalid prometheus url: it holds credentials; set them in the http client config (basic_auth, authorization)",
		},
		{name: "no scheme", cfg: prometheus.Config{URL: "prometheus:9090"}, wantMsg: `invalid prometheus url "prometheus:9090": scheme must be http or https`},
		{name: "no host", cfg: prometheus.Config{URL: "http:///api"}, wantMsg: `invalid prometheus url "http:///api": no host`},
		{name: "query", cfg: prometheus.Config{URL: "http://p:9090/?x=1"}, wantMsg: `invalid prometheus url "http://p:9090/?x=1": it must not have a query or fragment`},
		{name: "negative timeout", cfg: prometheus.Config{URL: "http://p", Timeout: -time.Second}, wantMsg: "prometheus timeout -1s is negative"},
		{name: "negative backoff", cfg: prometheus.Config{URL: "http://p", RetryBackoff: -time.Second}, wantMsg: "prometheus retry backoff -1s is negative"},
		{name: "negative maxBytes", cfg: prometheus.Config{URL: "http://p", MaxBytes: -1}, wantMsg: "prometheus maxBytes -1 is negative"},
		{name: "maxBytes set", cfg: prometheus.Config{URL: "http://p", MaxBytes: 1 << 30}},
		{
			name:    "slash in the password keeps it out",
			cfg:     prometheus.Config{URL: "http://u:hunter/2@host:9090/"},
			wantMsg: `invalid prometheus url: invalid port "xxxxx" after host`,
		},
		{
			name:    "bad escape in the password keeps it out",
			cfg:     prometheus.Config{URL: "http://u:hunter2%zz@host:9090/"},
			wantMsg: `invalid prometheus url: invalid URL escape "xxxxx"`,
		},
		{
			name: "conflicting auth",
			cfg: prometheus.Config{URL: "http://p", HTTPClient: config.HTTPClientConfig{
				BearerToken: "hunter2", BasicAuth: &config.BasicAuth{Username: "u"},
			}},
			wantMsg: "prometheus http client: at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := prometheus.New(tt.cfg, nil)
			if tt.wantMsg == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tt.wantMsg)
			require.NotContains(t, err.Error(), "hunter")
		})
	}
}

func TestQueryMaxBytes(t *testing.T) {
	const maxBytes = 64 << 10
	const wantMsg = "prometheus answer is over maxBytes (65536 bytes): narrow the query (aggregate it, or lower maxSeries)"
	// padded is okBody with trailing spaces, which JSON ignores, up to n
	// bytes.
	padded := func(n int) []byte { return []byte(okBody + strings.Repeat(" ", n-len(okBody))) }

	tests := []struct {
		name     string
		size     int   // body bytes; -1 for a body without end
		announce int64 // Content-Length; 0 for none (chunked)
		wantErr  bool
	}{
		{name: "just under the cap", size: maxBytes - 1},
		{name: "exactly the cap", size: maxBytes},
		{name: "exactly the cap, length announced", size: maxBytes, announce: maxBytes},
		{name: "one byte over", size: maxBytes + 1, wantErr: true},
		{name: "one byte over, length announced", size: maxBytes + 1, announce: maxBytes + 1, wantErr: true},
		{name: "without end", size: -1, wantErr: true},
		{name: "without end, a huge length announced", size: -1, announce: 1 << 40, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var attempts atomic.Int32
			// ended gets how much an endless handler wrote when a write
			// failed: the client closed the connection.
			ended := make(chan int64, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				attempts.Add(1)
				w.Header().Set("Content-Type", "application/json")
				if tt.announce > 0 {
					w.Header().Set("Content-Length", strconv.FormatInt(tt.announce, 10))
				}
				if tt.size >= 0 {
					_, _ = w.Write(padded(tt.size))
					return
				}
				chunk := bytes.Repeat([]byte(" "), 16<<10)
				written, _ := io.WriteString(w, okBody)
				for {
					n, err := w.Write(chunk)
					written += n
					if err != nil {
						ended <- int64(written)
						return
					}
				}
			}))
			defer srv.Close()
			src := newSource(t, prometheus.Config{URL: srv.URL, MaxBytes: maxBytes, RetryBackoff: time.Millisecond})

			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			res, err := src.Query(t.Context(), queries.Query{Text: "up"})
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)

			require.Less(t, elapsed, 5*time.Second, "the body must not be read to its end")
			require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(8<<20), "memory stays bounded")
			if !tt.wantErr {
				require.NoError(t, err)
				require.Len(t, res.Samples, 1)
				return
			}
			require.ErrorIs(t, err, queries.ErrBadQuery)
			require.Equal(t, "bad_query", queries.Classify(err))
			require.EqualError(t, err, wantMsg)
			require.EqualValues(t, 1, attempts.Load(), "an answer over the cap is not retried")
			if tt.size < 0 {
				select {
				case written := <-ended:
					require.Less(t, written, int64(64<<20), "the server was stopped early")
				case <-time.After(5 * time.Second):
					t.Fatal("the client did not close the connection: the server is still sending")
				}
			}
		})
	}
}

func TestQueryRedactsLocation(t *testing.T) {
	// A server, or a proxy in front of it, redirects to a URL with a
	// password that does not parse; net/http quotes it in its error.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "http://admin:s3cret@other:bad/")
		w.WriteHeader(http.StatusFound)
	}))
	defer srv.Close()
	src := newSource(t, prometheus.Config{URL: srv.URL, Retries: -1, HTTPClient: config.HTTPClientConfig{FollowRedirects: true}})
	_, err := src.Query(t.Context(), queries.Query{Text: "up"})
	require.ErrorIs(t, err, queries.ErrUnavailable)
	require.ErrorContains(t, err, "failed to parse Location header")
	require.NotContains(t, err.Error(), "s3cret")
}
