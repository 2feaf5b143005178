package testprom

import (
	"bytes"
	"io"
	"math"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// Series is one time series to seed.
type Series struct {
	// Labels include the metric name as "__name__".
	Labels map[string]string
	// Samples may come in any order; Write sorts them by time.
	Samples []Sample
}

// Sample is one value of a series.
type Sample struct {
	T time.Time
	V float64
}

// Linear returns a series of n samples spaced interval apart, the last one
// at end. The first value is first and each next one adds step: a counter
// growing at step/interval per second, or a constant gauge when step is 0.
//
// Prometheus accepts remote-written samples only from about an hour before
// the newest one it holds, so keep n*interval under an hour and end near
// time.Now().
func Linear(labels map[string]string, end time.Time, n int, interval time.Duration, first, step float64) Series {
	s := Series{Labels: labels, Samples: make([]Sample, n)}
	for i := range n {
		s.Samples[i] = Sample{
			T: end.Add(-time.Duration(n-1-i) * interval),
			V: first + float64(i)*step,
		}
	}
	return s
}

// Write seeds series through the remote-write receiver and fails the test
// unless Prometheus accepts all of them. The data can be queried as soon as
// Write returns.
//
// Prometheus refuses a sample older than the newest one already stored for
// its series ("out of order sample"), and samples far older than the newest
// data in the head ("out of bounds"); the error shows its answer.
func (s *Server) Write(t testing.TB, series ...Series) {
	t.Helper()
	body := snappy.Encode(nil, encodeWriteRequest(series))
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.url+"/api/v1/write", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("remote write: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("remote write: %v", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("remote write: prometheus answered %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
}

// The remote-write 1.0 protobuf messages, by field number. Writing them by
// hand with protowire avoids importing Prometheus's prompb and its
// generated-code dependencies for about forty lines of encoding.
const (
	writeRequestTimeseries = 1 // WriteRequest.timeseries, repeated TimeSeries
	timeSeriesLabels       = 1 // TimeSeries.labels, repeated Label
	timeSeriesSamples      = 2 // TimeSeries.samples, repeated Sample
	labelName              = 1 // Label.name, string
	labelValue             = 2 // Label.value, string
	sampleValue            = 1 // Sample.value, double
	sampleTimestamp        = 2 // Sample.timestamp, int64 milliseconds
)

// encodeWriteRequest encodes a prometheus.WriteRequest.
func encodeWriteRequest(series []Series) []byte {
	var out, ts, msg []byte
	for _, s := range series {
		ts = ts[:0]
		for _, name := range sortedNames(s.Labels) {
			msg = protowire.AppendTag(msg[:0], labelName, protowire.BytesType)
			msg = protowire.AppendString(msg, name)
			msg = protowire.AppendTag(msg, labelValue, protowire.BytesType)
			msg = protowire.AppendString(msg, s.Labels[name])
			ts = protowire.AppendTag(ts, timeSeriesLabels, protowire.BytesType)
			ts = protowire.AppendBytes(ts, msg)
		}
		samples := slices.Clone(s.Samples)
		slices.SortStableFunc(samples, func(a, b Sample) int { return a.T.Compare(b.T) })
		for _, p := range samples {
			msg = protowire.AppendTag(msg[:0], sampleValue, protowire.Fixed64Type)
			msg = protowire.AppendFixed64(msg, math.Float64bits(p.V))
			msg = protowire.AppendTag(msg, sampleTimestamp, protowire.VarintType)
			msg = protowire.AppendVarint(msg, uint64(p.T.UnixMilli()))
			ts = protowire.AppendTag(ts, timeSeriesSamples, protowire.BytesType)
			ts = protowire.AppendBytes(ts, msg)
		}
		out = protowire.AppendTag(out, writeRequestTimeseries, protowire.BytesType)
		out = protowire.AppendBytes(out, ts)
	}
	return out
}

// sortedNames returns the label names in the order remote write requires:
// sorted by name, byte-wise, as Prometheus sorts its own label sets. That
// puts __name__ first unless a name starts with an upper-case letter.
func sortedNames(labels map[string]string) []string {
	names := make([]string, 0, len(labels))
	for name := range labels {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
