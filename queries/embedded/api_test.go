package embedded_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/queries/embedded"
	"github.com/aurum/canary/queries/prometheus"
)

// apiEpoch is where the API fixture starts; its samples are a minute apart.
var apiEpoch = time.Unix(0, 0).UTC()

// apiSeries is the fixture behind the API tests: 5% of requests fail, and a
// gauge that rate() should not be applied to.
var apiSeries = []embedded.InputSeries{
	{Series: `http_requests_total{job="api",code="200"}`, Values: `0+95x15`},
	{Series: `http_requests_total{job="api",code="500"}`, Values: `0+5x15`},
	{Series: `temperature_celsius{job="api"}`, Values: `20+1x15`},
}

// serveAPI starts the engine's HTTP API on an httptest server and returns
// the engine and the server's URL.
func serveAPI(t *testing.T, opts embedded.Options) (*embedded.Engine, string) {
	t.Helper()
	e, err := embedded.New(opts)
	require.NoError(t, err)
	require.NoError(t, e.Load(apiEpoch, time.Minute, apiSeries))
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(func() {
		srv.Close()
		require.NoError(t, e.Close())
	})
	return e, srv.URL
}

func newSource(t *testing.T, u string) *prometheus.Source {
	t.Helper()
	// No retries: the errors under test are final, and a retried 503
	// would only slow the test down.
	src, err := prometheus.New(prometheus.Config{URL: u, Retries: -1}, nil)
	require.NoError(t, err)
	return src
}

func newClient(t *testing.T, u string) v1.API {
	t.Helper()
	c, err := api.NewClient(api.Config{Address: u})
	require.NoError(t, err)
	return v1.NewAPI(c)
}

// TestAPIThroughSource asks the engine over HTTP through the production
// Prometheus source, as the demo's analyses do.
func TestAPIThroughSource(t *testing.T) {
	_, u := serveAPI(t, embedded.Options{})
	src := newSource(t, u)
	at := apiEpoch.Add(15 * time.Minute)

	tests := []struct {
		name    string
		query   queries.Query
		want    []queries.Sample
		wantErr error
		errMsg  string
	}{
		{
			name:  "instant vector",
			query: queries.Query{Text: `sum by (code) (rate(http_requests_total[5m]))`, Time: at},
			want: []queries.Sample{
				{Labels: map[string]string{"code": "200"}, Value: 95.0 / 60},
				{Labels: map[string]string{"code": "500"}, Value: 5.0 / 60},
			},
		},
		{
			name: "error rate as the iso-ingest policy writes it",
			query: queries.Query{Text: `(sum(rate(http_requests_total{job="api",code=~"5.."}[5m])) or vector(0))
				/ sum(rate(http_requests_total{job="api"}[5m]))`, Time: at},
			want: []queries.Sample{{Labels: map[string]string{}, Value: 0.05}},
		},
		{
			name:  "scalar",
			query: queries.Query{Text: `scalar(sum(http_requests_total{code="500"}))`, Time: at},
			want:  []queries.Sample{{Labels: map[string]string{}, Value: 75}},
		},
		{
			name:  "matrix from a range query",
			query: queries.Query{Text: `sum(http_requests_total)`, Time: at, Range: 10 * time.Minute, Step: 5 * time.Minute},
			want: []queries.Sample{{
				Labels: map[string]string{},
				Value:  1500,
				Points: []queries.Point{
					{Time: apiEpoch.Add(10 * time.Minute), Value: 1000},
					{Time: apiEpoch.Add(15 * time.Minute), Value: 1500},
				},
			}},
		},
		{
			name:    "parse error",
			query:   queries.Query{Text: `sum(`, Time: at},
			wantErr: queries.ErrBadQuery,
			errMsg:  `bad_data: invalid parameter "query"`,
		},
		{
			name:    "execution error",
			query:   queries.Query{Text: `http_requests_total + on() http_requests_total`, Time: at},
			wantErr: queries.ErrBadQuery,
			errMsg:  "execution: ",
		},
		{
			name:    "string result",
			query:   queries.Query{Text: `"text"`, Time: at},
			wantErr: queries.ErrBadQuery,
			errMsg:  `unexpected value type "string"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := src.Query(context.Background(), tt.query)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				require.Contains(t, err.Error(), tt.errMsg)
				return
			}
			require.NoError(t, err)
			require.Len(t, res.Samples, len(tt.want))
			for i, s := range res.Samples {
				require.Equal(t, tt.want[i].Labels, s.Labels)
				require.InDelta(t, tt.want[i].Value, s.Value, 1e-9)
				require.Len(t, s.Points, len(tt.want[i].Points))
				for j, p := range s.Points {
					require.True(t, tt.want[i].Points[j].Time.Equal(p.Time), "point %d at %s, want %s", j, p.Time, tt.want[i].Points[j].Time)
					require.InDelta(t, tt.want[i].Points[j].Value, p.Value, 1e-9)
				}
			}
		})
	}
}

// TestAPIThroughClientGolang checks the wire format against client_golang
// itself: value types, timestamps, labels, infos and error types.
func TestAPIThroughClientGolang(t *testing.T) {
	_, u := serveAPI(t, embedded.Options{})
	c := newClient(t, u)
	ctx := context.Background()
	at := apiEpoch.Add(15 * time.Minute)

	t.Run("instant vector", func(t *testing.T) {
		v, warnings, err := queryInfos(ctx, c, `http_requests_total{code="500"}`, at)
		require.NoError(t, err)
		require.Empty(t, warnings)
		require.Equal(t, model.Vector{{
			Metric:    model.Metric{"__name__": "http_requests_total", "job": "api", "code": "500"},
			Value:     75,
			Timestamp: model.TimeFromUnixNano(at.UnixNano()),
		}}, v)
	})
	t.Run("empty vector", func(t *testing.T) {
		v, _, _, err := c.Query(ctx, `nothing_here`, at)
		require.NoError(t, err)
		require.Equal(t, model.ValVector, v.Type())
		require.Empty(t, v)
	})
	t.Run("scalar", func(t *testing.T) {
		v, _, _, err := c.Query(ctx, `1 + 1`, at)
		require.NoError(t, err)
		require.Equal(t, &model.Scalar{Value: 2, Timestamp: model.TimeFromUnixNano(at.UnixNano())}, v)
	})
	t.Run("matrix from an instant query of a range selector", func(t *testing.T) {
		v, _, _, err := c.Query(ctx, `http_requests_total{code="500"}[2m]`, at)
		require.NoError(t, err)
		m, ok := v.(model.Matrix)
		require.True(t, ok, "got %T", v)
		require.Len(t, m, 1)
		// (13m, 15m]: the samples at 14m and 15m.
		require.Equal(t, []model.SamplePair{
			{Timestamp: model.TimeFromUnixNano(apiEpoch.Add(14 * time.Minute).UnixNano()), Value: 70},
			{Timestamp: model.TimeFromUnixNano(apiEpoch.Add(15 * time.Minute).UnixNano()), Value: 75},
		}, m[0].Values)
	})
	t.Run("range query", func(t *testing.T) {
		v, _, _, err := c.QueryRange(ctx, `sum by (code) (http_requests_total)`, v1.Range{
			Start: apiEpoch.Add(10 * time.Minute), End: at, Step: 150 * time.Second,
		})
		require.NoError(t, err)
		m, ok := v.(model.Matrix)
		require.True(t, ok, "got %T", v)
		require.Len(t, m, 2)
		require.Equal(t, model.Metric{"code": "200"}, m[0].Metric)
		require.Len(t, m[0].Values, 3)
		// 12m30s looks back to the sample at 12m.
		require.Equal(t, model.SampleValue(95*12), m[0].Values[1].Value)
		require.Equal(t, model.TimeFromUnixNano(apiEpoch.Add(750*time.Second).UnixNano()), m[0].Values[1].Timestamp)
	})
	t.Run("infos", func(t *testing.T) {
		_, infos, err := queryInfos(ctx, c, `rate(temperature_celsius[5m])`, at)
		require.NoError(t, err)
		require.Len(t, infos, 1)
		require.Contains(t, infos[0], "might not be a counter")
	})
	t.Run("bad query", func(t *testing.T) {
		_, _, _, err := c.Query(ctx, `sum(`, at)
		var apiErr *v1.Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, v1.ErrBadData, apiErr.Type)
		require.Contains(t, apiErr.Msg, "parse error")
	})
	t.Run("execution error", func(t *testing.T) {
		_, _, _, err := c.Query(ctx, `http_requests_total + on() http_requests_total`, at)
		var apiErr *v1.Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, v1.ErrExec, apiErr.Type)
		require.Contains(t, apiErr.Msg, "many-to-many matching not allowed")
	})
}

// queryInfos runs an instant query and returns its value and its infos.
func queryInfos(ctx context.Context, c v1.API, q string, at time.Time) (model.Value, v1.Infos, error) {
	v, warnings, infos, err := c.Query(ctx, q, at)
	if err == nil && len(warnings) > 0 {
		return nil, nil, errors.New("unexpected warnings: " + strings.Join(warnings, "; "))
	}
	return v, infos, err
}

// rawReply is an API answer read without a client library.
type rawReply struct {
	code int
	body string
}

func get(t *testing.T, u string) rawReply {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return rawReply{resp.StatusCode, string(b)}
}

// TestAPIParams checks the parameters and the exact envelope over plain
// HTTP: both time formats Prometheus accepts, the range checks and the
// error codes.
func TestAPIParams(t *testing.T) {
	_, u := serveAPI(t, embedded.Options{})
	vals := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v.Encode()
	}

	tests := []struct {
		name     string
		path     string
		params   string
		wantCode int
		wantBody string // exact JSON, if set
		wantErr  string // errorType, if an error
		wantMsg  string
	}{
		{
			name: "unix seconds", path: "/api/v1/query", params: vals("query", "1 + 1", "time", "900"),
			wantCode: 200, wantBody: `{"status":"success","data":{"resultType":"scalar","result":[900,"2"]}}`,
		},
		{
			name: "unix seconds with a fraction", path: "/api/v1/query", params: vals("query", "1 + 1", "time", "900.25"),
			wantCode: 200, wantBody: `{"status":"success","data":{"resultType":"scalar","result":[900.25,"2"]}}`,
		},
		{
			name: "RFC 3339", path: "/api/v1/query", params: vals("query", "1 + 1", "time", "1970-01-01T00:15:00Z"),
			wantCode: 200, wantBody: `{"status":"success","data":{"resultType":"scalar","result":[900,"2"]}}`,
		},
		{
			name: "RFC 3339 with an offset", path: "/api/v1/query", params: vals("query", "1 + 1", "time", "1970-01-01T01:15:00+01:00"),
			wantCode: 200, wantBody: `{"status":"success","data":{"resultType":"scalar","result":[900,"2"]}}`,
		},
		{
			name: "vector", path: "/api/v1/query", params: vals("query", `http_requests_total{code="500"}`, "time", "900"),
			wantCode: 200,
			wantBody: `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"http_requests_total","code":"500","job":"api"},"value":[900,"75"]}]}}`,
		},
		{
			name: "empty vector", path: "/api/v1/query", params: vals("query", `nothing_here`, "time", "900"),
			wantCode: 200, wantBody: `{"status":"success","data":{"resultType":"vector","result":[]}}`,
		},
		{
			name: "string", path: "/api/v1/query", params: vals("query", `"text"`, "time", "900"),
			wantCode: 200, wantBody: `{"status":"success","data":{"resultType":"string","result":[900,"text"]}}`,
		},
		{
			name: "special values", path: "/api/v1/query", params: vals("query", `0/0`, "time", "900"),
			wantCode: 200, wantBody: `{"status":"success","data":{"resultType":"scalar","result":[900,"NaN"]}}`,
		},
		{
			name: "range", path: "/api/v1/query_range",
			params:   vals("query", `sum(http_requests_total{code="500"})`, "start", "600", "end", "1970-01-01T00:15:00Z", "step", "5m"),
			wantCode: 200,
			wantBody: `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[600,"50"],[900,"75"]]}]}}`,
		},
		{
			name: "range step in seconds", path: "/api/v1/query_range",
			params:   vals("query", `sum(http_requests_total{code="500"})`, "start", "600", "end", "900", "step", "300"),
			wantCode: 200,
			wantBody: `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[600,"50"],[900,"75"]]}]}}`,
		},
		{
			name: "bad time", path: "/api/v1/query", params: vals("query", "1", "time", "yesterday"),
			wantCode: 400, wantErr: "bad_data", wantMsg: `invalid parameter "time": invalid time value for 'time': cannot parse "yesterday" to a valid timestamp`,
		},
		{
			name: "parse error", path: "/api/v1/query", params: vals("query", "sum("),
			wantCode: 400, wantErr: "bad_data", wantMsg: `invalid parameter "query": 1:5: parse error`,
		},
		{
			name: "no query", path: "/api/v1/query", params: "",
			wantCode: 400, wantErr: "bad_data", wantMsg: `invalid parameter "query"`,
		},
		{
			name: "range without step", path: "/api/v1/query_range", params: vals("query", "1", "start", "0", "end", "60"),
			wantCode: 400, wantErr: "bad_data", wantMsg: `invalid parameter "step": cannot parse "" to a valid duration`,
		},
		{
			name: "range with zero step", path: "/api/v1/query_range", params: vals("query", "1", "start", "0", "end", "60", "step", "0"),
			wantCode: 400, wantErr: "bad_data", wantMsg: `zero or negative query resolution step widths are not accepted`,
		},
		{
			name: "range ending before it starts", path: "/api/v1/query_range", params: vals("query", "1", "start", "60", "end", "0", "step", "1"),
			wantCode: 400, wantErr: "bad_data", wantMsg: `invalid parameter "end": end timestamp must not be before start time`,
		},
		{
			name: "range with too many points", path: "/api/v1/query_range", params: vals("query", "1", "start", "0", "end", "86400", "step", "1"),
			wantCode: 400, wantErr: "bad_data", wantMsg: `exceeded maximum resolution of 11,000 points per timeseries`,
		},
		{
			name: "execution error", path: "/api/v1/query", params: vals("query", "http_requests_total + on() http_requests_total", "time", "900"),
			wantCode: 422, wantErr: "execution", wantMsg: "many-to-many matching not allowed",
		},
		{
			name: "timeout parameter", path: "/api/v1/query", params: vals("query", "sum(rate(http_requests_total[5m]))", "time", "900", "timeout", "0.000000001"),
			wantCode: 503, wantErr: "timeout", wantMsg: "query timed out",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				var rep rawReply
				if method == http.MethodGet {
					rep = get(t, u+tt.path+"?"+tt.params)
				} else {
					resp, err := http.Post(u+tt.path, "application/x-www-form-urlencoded", strings.NewReader(tt.params))
					require.NoError(t, err)
					b, err := io.ReadAll(resp.Body)
					require.NoError(t, err)
					require.NoError(t, resp.Body.Close())
					rep = rawReply{resp.StatusCode, string(b)}
				}
				require.Equal(t, tt.wantCode, rep.code, "%s: %s", method, rep.body)
				if tt.wantBody != "" {
					require.JSONEq(t, tt.wantBody, rep.body, method)
				}
				if tt.wantErr != "" {
					var body struct{ Status, ErrorType, Error string }
					require.NoError(t, json.Unmarshal([]byte(rep.body), &body))
					require.Equal(t, "error", body.Status)
					require.Equal(t, tt.wantErr, body.ErrorType)
					require.Contains(t, body.Error, tt.wantMsg)
				}
			}
		})
	}
}

// TestAPITimeout checks that the engine's own timeout reaches the
// production source as queries.ErrTimeout: Prometheus answers 503 with
// errorType timeout, which client_golang does not decode by itself.
func TestAPITimeout(t *testing.T) {
	_, u := serveAPI(t, embedded.Options{Timeout: time.Nanosecond})
	_, err := newSource(t, u).Query(context.Background(), queries.Query{
		Text: `sum(rate(http_requests_total[5m]))`, Time: apiEpoch.Add(15 * time.Minute),
	})
	require.ErrorIs(t, err, queries.ErrTimeout)
	require.Contains(t, err.Error(), "timeout: query timed out")
}

func TestAPIMethods(t *testing.T) {
	_, u := serveAPI(t, embedded.Options{})
	req, err := http.NewRequest(http.MethodPut, u+"/api/v1/query?query=1", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	require.Equal(t, http.StatusNotFound, get(t, u+"/api/v1/series").code)
}

// TestAPIClosed checks readiness and queries after Close: not ready, and
// unavailable, which the production source reports as ErrUnavailable.
func TestAPIClosed(t *testing.T) {
	e, u := serveAPI(t, embedded.Options{})
	require.Equal(t, rawReply{200, "Prometheus Server is Ready.\n"}, get(t, u+"/-/ready"))
	require.Equal(t, rawReply{200, "Prometheus Server is Healthy.\n"}, get(t, u+"/-/healthy"))

	require.NoError(t, e.Close())
	require.Equal(t, http.StatusServiceUnavailable, get(t, u+"/-/ready").code)
	rep := get(t, u+"/api/v1/query?query=1")
	require.Equal(t, http.StatusServiceUnavailable, rep.code)
	require.JSONEq(t, `{"status":"error","errorType":"unavailable","error":"embedded engine closed"}`, rep.body)

	_, err := newSource(t, u).Query(context.Background(), queries.Query{Text: "1"})
	require.ErrorIs(t, err, queries.ErrUnavailable)
}
