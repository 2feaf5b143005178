package embedded

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/queries"
)

func TestParseSeriesFile(t *testing.T) {
	tests := []struct {
		name string
		data string
		want *SeriesFile
	}{
		{
			name: "full",
			data: `
start: 2026-01-01T00:00:00Z
interval: 30s
series:
  - series: 'http_requests_total{code="200"}'
    values: '0+10x30'
  - series: 'http_requests_total{code="500"}'
    values: 1 _ stale
`,
			want: &SeriesFile{
				Start:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
				Interval: 30 * time.Second,
				Series: []InputSeries{
					{Series: `http_requests_total{code="200"}`, Values: `0+10x30`},
					{Series: `http_requests_total{code="500"}`, Values: `1 _ stale`},
				},
			},
		},
		{
			name: "defaults are promtool's",
			data: "series:\n  - {series: up, values: '1x5'}\n",
			want: &SeriesFile{Start: epoch, Interval: time.Minute, Series: []InputSeries{{Series: "up", Values: "1x5"}}},
		},
		{
			name: "unix seconds, prometheus duration, numeric values",
			data: "start: 1767225600\ninterval: 1h30m\nseries:\n  - {series: up, values: 7}\n",
			want: &SeriesFile{
				Start:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
				Interval: 90 * time.Minute,
				Series:   []InputSeries{{Series: "up", Values: "7"}},
			},
		},
		{
			name: "null start and interval take defaults",
			data: "start:\ninterval: ~\nseries:\n  - {series: up, values: '1'}\n",
			want: &SeriesFile{Start: epoch, Interval: time.Minute, Series: []InputSeries{{Series: "up", Values: "1"}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSeriesFile("s.yaml", []byte(tc.data))
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseSeriesFileErrors(t *testing.T) {
	tests := []struct {
		name string
		data string
		want string
	}{
		{
			name: "unknown top-level field",
			data: "interval: 1m\nseries_list: []\nseries:\n  - {series: up, values: '1'}\n",
			want: `s.yaml:2: unknown field "series_list"`,
		},
		{
			name: "unknown series field",
			data: "series:\n  - series: up\n    valeus: '1'\n    values: '1'\n",
			want: `s.yaml:3: unknown field "valeus"`,
		},
		{
			name: "bad duration",
			data: "interval: 5 minutes\nseries:\n  - {series: up, values: '1'}\n",
			want: `s.yaml:1:11: interval: unknown unit " minutes" in duration "5 minutes"`,
		},
		{
			name: "zero interval",
			data: "interval: 0s\nseries:\n  - {series: up, values: '1'}\n",
			want: `s.yaml:1:11: interval must be positive, got "0s"`,
		},
		{
			name: "bad start",
			data: "start: yesterday\nseries:\n  - {series: up, values: '1'}\n",
			want: `s.yaml:1:8: start "yesterday" is neither an RFC3339 time nor Unix seconds`,
		},
		{
			name: "bad notation points at the series",
			data: "series:\n  - series: up\n    values: '1 +'\n",
			want: `s.yaml:2:13: series 0 "up": 1:7: parse error: unexpected end of input in series values`,
		},
		{
			name: "missing values",
			data: "series:\n  - series: up\n",
			want: `s.yaml:2:13: series 0 "up": missing values`,
		},
		{
			name: "missing series",
			data: "series:\n  - values: '1'\n",
			want: `s.yaml:2:13: series 0: missing series`,
		},
		{
			name: "values not a scalar",
			data: "series:\n  - series: up\n    values: [1, 2]\n",
			want: `s.yaml:3:13: values must be a scalar`,
		},
		{
			name: "duplicate series",
			data: "series:\n  - {series: 'up{a=\"1\"}', values: '1'}\n  - {series: 'up{a=\"1\"}', values: '2'}\n",
			want: `s.yaml:3:14: series 1 "up{a=\"1\"}": same series as series 0`,
		},
		{
			name: "series not a list",
			data: "series: up\n",
			want: "s.yaml:1: series must be a list of {series, values}, not !!str",
		},
		{
			name: "series entry not a mapping",
			data: "series:\n  - up\n",
			want: "s.yaml:2: each series must be a mapping with series and values, not !!str",
		},
		{
			name: "file not a mapping",
			data: "- series: up\n",
			want: "s.yaml:1: a series file must be a mapping with start, interval and series, not !!seq",
		},
		{
			name: "syntax error",
			data: "series:\n  - {series: up, values: '1'\n",
			// yaml.v3 gives the 0-based line where the flow mapping opened (line 2).
			want: "s.yaml:1: yaml: did not find expected ',' or '}'",
		},
		{
			name: "empty file",
			data: "",
			want: "s.yaml: no series: the file is empty",
		},
		{
			name: "no series",
			data: "interval: 1m\n",
			want: "s.yaml: no series",
		},
		{
			name: "two documents",
			data: "series:\n  - {series: up, values: '1'}\n---\nseries: []\n",
			want: "s.yaml:3:1: a series file holds one YAML document",
		},
		{
			name: "every error, in line order",
			data: "interval: soon\nstart: later\nseries:\n  - {series: up, values: '1 +', extra: 1}\n",
			want: `s.yaml:1:11: interval: not a valid duration string: "soon"` + "\n" +
				`s.yaml:2:8: start "later" is neither an RFC3339 time nor Unix seconds` + "\n" +
				`s.yaml:4: unknown field "extra"` + "\n" +
				`s.yaml:4:14: series 0 "up": 1:7: parse error: unexpected end of input in series values`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSeriesFile("s.yaml", []byte(tc.data))
			require.EqualError(t, err, tc.want)
		})
	}
}

func TestSeriesFileEnd(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		series []InputSeries
		want   time.Time
	}{
		{name: "longest series wins", series: []InputSeries{{Series: "a", Values: "1x3"}, {Series: "b", Values: "0+1x30"}}, want: start.Add(30 * time.Minute)},
		{name: "trailing missing samples do not count", series: []InputSeries{{Series: "a", Values: "1 2 _ _"}}, want: start.Add(time.Minute)},
		{name: "a trailing stale marker does not count", series: []InputSeries{{Series: "a", Values: "1 2 3 stale"}}, want: start.Add(2 * time.Minute)},
		{name: "no samples", series: []InputSeries{{Series: "a", Values: "_x5"}}, want: start},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sf := &SeriesFile{Start: start, Interval: time.Minute, Series: tc.series}
			require.Equal(t, tc.want, sf.End())
		})
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "canary.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
start: 2026-01-01T00:00:00Z
series:
  - series: 'http_requests_total{code="200"}'
    values: '0+95x15'
  - series: 'http_requests_total{code="500"}'
    values: '0+5x15'
`), 0o600))

	e, sf, err := LoadFile(path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	require.Len(t, sf.Series, 2)

	res, err := e.Query(t.Context(), queries.Query{
		Text: `sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))`,
		Time: sf.End().Add(-5 * sf.Interval),
	})
	require.NoError(t, err)
	require.Equal(t, []queries.Sample{{Labels: map[string]string{}, Value: 0.05}}, res.Samples)

	_, _, err = LoadFile(filepath.Join(dir, "missing.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)

	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("interval: 1x\nseries: []\n"), 0o600))
	_, _, err = LoadFile(bad)
	require.ErrorContains(t, err, bad+`:1:11: interval: unknown unit "x" in duration "1x"`)
}
