package testprom

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// instant runs an instant query with plain HTTP, so that this package's
// tests do not depend on the client they help to test.
func instant(t *testing.T, s *Server, query string, at time.Time) map[string]float64 {
	t.Helper()
	form := url.Values{
		"query": {query},
		"time":  {strconv.FormatFloat(float64(at.UnixMilli())/1e3, 'f', -1, 64)},
	}
	resp, err := http.PostForm(s.URL()+"/api/v1/query", form)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	var body struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	out := map[string]float64{}
	for _, r := range body.Data.Result {
		v, err := strconv.ParseFloat(r.Value[1].(string), 64)
		require.NoError(t, err)
		out[r.Metric["code"]] = v
	}
	return out
}

func TestWrite(t *testing.T) {
	s := Start(t)
	end := time.Now().Truncate(time.Second)
	s.Write(t,
		Linear(map[string]string{"__name__": "requests_total", "code": "200"}, end, 41, 15*time.Second, 0, 90),
		Linear(map[string]string{"__name__": "requests_total", "code": "500"}, end, 41, 15*time.Second, 0, 10),
		// Out of order on purpose: Write sorts the samples.
		Series{
			Labels: map[string]string{"__name__": "temperature", "Zone": "a", "code": "x"},
			Samples: []Sample{
				{T: end, V: 21.5},
				{T: end.Add(-time.Minute), V: 19},
			},
		},
	)

	tests := []struct {
		name  string
		query string
		at    time.Time
		want  map[string]float64
	}{
		{
			name:  "last value per series",
			query: "requests_total",
			at:    end,
			want:  map[string]float64{"200": 3600, "500": 400},
		},
		{
			name:  "rate of a linear counter",
			query: "rate(requests_total[5m])",
			at:    end,
			want:  map[string]float64{"200": 6, "500": 10.0 / 15},
		},
		{
			name:  "upper-case label name",
			query: `temperature{Zone="a"}`,
			at:    end,
			want:  map[string]float64{"x": 21.5},
		},
		{
			name:  "earlier sample of a series written out of order",
			query: "temperature",
			at:    end.Add(-30 * time.Second),
			want:  map[string]float64{"x": 19},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := instant(t, s, tt.query, tt.at)
			require.Len(t, got, len(tt.want))
			for code, want := range tt.want {
				require.InDelta(t, want, got[code], 1e-9, "code %s", code)
			}
		})
	}
}

// fatalTB records the message of Fatalf and ends the goroutine, as the
// real Fatalf does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestWriteRejected(t *testing.T) {
	s := Start(t)
	end := time.Now()
	s.Write(t, Linear(map[string]string{"__name__": "g"}, end, 2, time.Second, 1, 0))

	ftb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Write(ftb, Linear(map[string]string{"__name__": "g"}, end.Add(-time.Minute), 1, time.Second, 1, 0))
	}()
	<-done
	require.Contains(t, ftb.msg, "remote write: prometheus answered 400 Bad Request: out of order sample")
}

func TestStop(t *testing.T) {
	s := Start(t)
	resp, err := http.Get(s.URL() + "/-/healthy")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	s.Stop()
	s.Stop() // a second Stop, and the one in Cleanup, do nothing
	_, err = http.Get(s.URL() + "/-/healthy")
	require.ErrorContains(t, err, "connection refused")
}

func TestSortedNames(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		want   []string
	}{
		{name: "empty", labels: nil, want: []string{}},
		{
			name:   "name first",
			labels: map[string]string{"job": "", "__name__": "", "code": ""},
			want:   []string{"__name__", "code", "job"},
		},
		{
			// Byte order, as Prometheus sorts: 'Z' < '_' < 'a'.
			name:   "upper case before name",
			labels: map[string]string{"a": "", "__name__": "", "Zone": ""},
			want:   []string{"Zone", "__name__", "a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, sortedNames(tt.labels))
		})
	}
}

func TestLinear(t *testing.T) {
	end := time.Unix(1000, 0)
	got := Linear(map[string]string{"__name__": "x"}, end, 3, 10*time.Second, 5, 2)
	require.Equal(t, []Sample{
		{T: time.Unix(980, 0), V: 5},
		{T: time.Unix(990, 0), V: 7},
		{T: time.Unix(1000, 0), V: 9},
	}, got.Samples)
}
