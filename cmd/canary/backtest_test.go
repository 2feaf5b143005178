package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/internal/testprom"
)

// incidentArgs replay the CAISO canary over its recorded incident: three
// fetches in a hundred fail from 09:40.
var incidentArgs = []string{"backtest",
	"--policies", "../../analysis/backtest/testdata/caiso.yaml", "--policy", "caiso-canary",
	"--param", "namespace=caiso", "--param", "name=lmp-ingest",
	"--series", "../../analysis/backtest/testdata/caiso-incident.yaml"}

// TestBacktestSeries replays a series file with the embedded engine.
func TestBacktestSeries(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		// analysis/backtest's TestBacktestIncident explains why 09:41:
		// at 09:40 the 5m rate window holds one minute of errors, 0.6%.
		{name: "whole file", code: exitFail, contains: []string{
			"from 2026-11-26T09:00:00Z to 2026-11-26T10:30:00Z, every 1m: 91 steps, 3 queries",
			"first failure with data at 2026-11-26T09:41:00Z (41m after the start, step 42 of 91): decision rollback",
			"  error-rate (critical): 0.01204 > 0.01",
			"fail          2026-11-26T09:41:00Z  2026-11-26T10:30:00Z  50",
			"  freshness: no data yet from the start, 2026-11-26T09:00:00Z to 2026-11-26T09:02:00Z (3 steps)",
		}},
		{name: "offsets from the series start", args: []string{"--from", "30m", "--to", "45m", "--step", "5m"}, code: exitFail, contains: []string{
			"from 2026-11-26T09:30:00Z to 2026-11-26T09:45:00Z, every 5m: 4 steps, 3 queries",
			"first failure with data at 2026-11-26T09:45:00Z",
		}},
		{name: "before the incident", args: []string{"--from", "2026-11-26T09:10:00Z", "--to", "2400s"}, code: exitOK, contains: []string{
			"from 2026-11-26T09:10:00Z to 2026-11-26T09:40:00Z, every 1m: 31 steps",
			"no step failed",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := canary(t, append(append([]string{}, incidentArgs...), tt.args...)...)
			require.Equal(t, tt.code, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
			for _, s := range tt.contains {
				require.Contains(t, stdout, s)
			}
		})
	}
}

func TestBacktestJSON(t *testing.T) {
	code, stdout, stderr := canary(t, append(append([]string{}, incidentArgs...), "-o", "json")...)
	require.Equal(t, exitFail, code, stderr)
	var tl struct {
		Policy       string  `json:"policy"`
		StepSeconds  float64 `json:"stepSeconds"`
		Queries      int     `json:"queries"`
		Points       []any   `json:"points"`
		FirstFailure struct {
			At     time.Time `json:"at"`
			Reason string    `json:"reason"`
		} `json:"firstFailure"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &tl))
	require.Equal(t, "caiso-canary", tl.Policy)
	require.Equal(t, 60.0, tl.StepSeconds)
	require.Equal(t, 3, tl.Queries)
	require.Len(t, tl.Points, 91)
	require.Equal(t, time.Date(2026, 11, 26, 9, 41, 0, 0, time.UTC), tl.FirstFailure.At)
	require.Equal(t, "error-rate: 0.01204 > 0.01", tl.FirstFailure.Reason)
}

func TestBacktestUsage(t *testing.T) {
	policy := []string{"backtest", "--policies", "testdata/backtest.yaml", "--policy", "backtest", "--param", "name=a"}
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{name: "chart of another kind", args: []string{"--prometheus", "http://x", "--from", "-1h", "--out", "report.png"},
			code: exitError, stderr: `--out must name a .html or an .svg file, got "report.png"`},
		{name: "no policy", args: []string{"--policy", "", "--prometheus", "http://x", "--from", "-1h"}, code: exitError, stderr: "--policy is required"},
		{name: "no history", args: []string{"--from", "-1h"}, code: exitError, stderr: "give --prometheus, --series or --config"},
		{name: "two histories", args: []string{"--prometheus", "http://x", "--series", "y"}, code: exitError, stderr: "give --prometheus or --series, not both"},
		{name: "no start", args: []string{"--prometheus", "http://x"}, code: exitError, stderr: "--from is required with --prometheus"},
		{name: "bad start", args: []string{"--prometheus", "http://x", "--from", "yesterday"}, code: exitError,
			stderr: "--from: want RFC3339 (2026-11-26T14:00:00Z), Unix seconds, now, or a negative duration such as -24h"},
		{name: "bad format", args: []string{"--prometheus", "http://x", "--from", "-1h", "-o", "xml"}, code: exitError, stderr: `-o must be table, json or yaml, not "xml"`},
		{name: "end before start", args: []string{"--prometheus", "http://x", "--from", "now", "--to", "-1h"}, code: exitError,
			stderr: "before it starts"},
		{name: "Prometheus down", args: []string{"--prometheus", "http://127.0.0.1:1", "--from", "-10m", "--prometheus-timeout", "2s"}, code: exitError,
			stderr: "prometheus unavailable after 3 attempts"},
		{name: "help", args: []string{"-h"}, code: exitOK, stderr: "Replay a policy over history: when would it have failed, and why."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := canary(t, append(append([]string{}, policy...), tt.args...)...)
			require.Equal(t, tt.code, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
			// Help is an answer: it goes to stdout.
			require.Contains(t, stdout+stderr, tt.stderr)
		})
	}
}

// TestBacktestAgainstPrometheus replays the last hour of a real Prometheus
// seeded with an error spike 20m30s ago.
func TestBacktestAgainstPrometheus(t *testing.T) {
	prom := testprom.Start(t)
	// Samples every 15 s on a grid of whole minutes, for the hour before
	// base. From spike on, 20 of every 100 requests fail.
	base := time.Now().Truncate(time.Minute)
	spike := base.Add(-20*time.Minute - 30*time.Second)
	series := func(code string, perSample func(at time.Time) float64) testprom.Series {
		s := testprom.Series{Labels: map[string]string{"__name__": "requests_total", "app": "ingest", "code": code}}
		v := 0.0
		for at := base.Add(-59*time.Minute - 45*time.Second); !at.After(base); at = at.Add(15 * time.Second) {
			s.Samples = append(s.Samples, testprom.Sample{T: at, V: v})
			v += perSample(at)
		}
		return s
	}
	prom.Write(t,
		series("200", func(at time.Time) float64 {
			if at.Before(spike) {
				return 100
			}
			return 80
		}),
		series("500", func(at time.Time) float64 {
			if at.Before(spike) {
				return 0
			}
			return 20
		}),
	)
	// The steps are whole minutes. The last one before the spike, at
	// spike-30s, has no error in its window; the next, at spike+30s, has
	// two 15 s increments of 20 errors against about 2,000 requests:
	// 2% > 1%, whether the window is closed (Prometheus 2) or open at its
	// start (Prometheus 3).
	firstFailure := spike.Add(30 * time.Second).UTC().Format(time.RFC3339)

	dir := t.TempDir()
	args := []string{"backtest", "--policies", "testdata/backtest.yaml", "--policy", "backtest", "--param", "name=ingest",
		"--prometheus", prom.URL(), "--from", "-60m", "--to", "now", "--step", "1m"}
	page := filepath.Join(dir, "report.html")
	code, stdout, stderr := canary(t, append(args, "--out", page)...)
	require.Equal(t, exitFail, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Contains(t, stdout, "first failure with data at "+firstFailure+" (")
	require.Contains(t, stdout, "  error-rate (critical): ")
	require.Contains(t, stdout, "every 1m: 61 steps, 3 queries")
	require.Regexp(t, `error-rate \(critical\)\s+\d+\s+\d+\s+\d+\s+0\s+`+firstFailure, stdout)
	// The hour starts before the first sample: the first step has no
	// rate to read.
	require.Contains(t, stdout, "no data:\n  error-rate: ")
	require.Contains(t, stderr, "wrote "+page)

	html, err := os.ReadFile(page)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(html, []byte("<!DOCTYPE html>")))
	for _, s := range []string{"<svg ", "error-rate", "traffic", "error-trend", "first failure with data at " + firstFailure} {
		require.Contains(t, string(html), s)
	}

	chart := filepath.Join(dir, "chart.svg")
	code, stdout, stderr = canary(t, append(args, "--out", chart)...)
	require.Equal(t, exitFail, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	svg, err := os.ReadFile(chart)
	require.NoError(t, err)
	require.NotEmpty(t, svg)
	labels := svgLabels(t, svg)
	for _, rule := range []string{"error-rate", "traffic", "error-trend"} {
		require.Contains(t, labels, rule)
	}
}

// svgLabels decodes an SVG document, failing on malformed XML, and returns
// the first word of each of its text elements.
func svgLabels(t *testing.T, data []byte) []string {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(data))
	var (
		labels []string
		text   *strings.Builder
		root   string
	)
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
			}
			if tok.Name.Local == "text" {
				text = &strings.Builder{}
			}
		case xml.CharData:
			if text != nil {
				text.Write(tok)
			}
		case xml.EndElement:
			if tok.Name.Local == "text" && text != nil {
				if f := strings.Fields(text.String()); len(f) > 0 {
					labels = append(labels, f[0])
				}
				text = nil
			}
		}
	}
	require.Equal(t, "svg", root)
	return labels
}
