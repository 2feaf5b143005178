package chart

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/rules"
)

func f(v float64) *analysis.Float { x := analysis.Float(v); return &x }

// svgDoc decodes an SVG, failing on malformed XML, and returns its text
// and the data-value of its dots by rule.
func svgDoc(t *testing.T, data []byte) (texts []string, values map[string][]string) {
	t.Helper()
	values = map[string][]string{}
	dec := xml.NewDecoder(bytes.NewReader(data))
	rule := ""
	var text *strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return texts, values
		}
		require.NoError(t, err)
		switch tok := tok.(type) {
		case xml.StartElement:
			attr := map[string]string{}
			for _, a := range tok.Attr {
				attr[a.Name.Local] = a.Value
			}
			switch {
			case tok.Name.Local == "g" && attr["class"] == "panel":
				rule = attr["data-rule"]
			case tok.Name.Local == "circle" && attr["class"] == "pt":
				values[rule] = append(values[rule], attr["data-value"])
			case tok.Name.Local == "circle" && attr["class"] == "pt-baseline":
				values[rule+" baseline"] = append(values[rule+" baseline"], attr["data-value"])
			case tok.Name.Local == "text":
				text = &strings.Builder{}
			}
		case xml.CharData:
			if text != nil {
				text.Write(tok)
			}
		case xml.EndElement:
			if tok.Name.Local == "text" && text != nil {
				texts = append(texts, text.String())
				text = nil
			}
		}
	}
}

// TestRunChart draws a run's analyses at irregular times: values against
// thresholds, a comparison's canary beside its baseline with its figures,
// no data and an error marked, names escaped.
func TestRunChart(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	cmp := &analysis.ComparisonResult{Class: "pass", PValue: 0.42, Estimate: 0.1, CILow: -0.2, CIHigh: 0.3, Confidence: 0.95,
		CanaryMean: 12, BaselineMean: 11, Ratio: 1.09}
	c := &Chart{Title: "run caiso/ingest@v2", Points: []Point{
		{At: at, Verdict: analysis.VerdictPass, Rules: []Rule{
			{Name: "error-rate", Verdict: rules.OutcomePass, Value: f(0.002), Threshold: f(0.01)},
			{Name: "latency", Verdict: rules.OutcomePass, Comparison: cmp},
			{Name: `<script>alert(1)</script>`, Verdict: rules.OutcomeInconclusive, NoData: true},
		}},
		{At: at.Add(10 * time.Second), Verdict: analysis.VerdictFail, Rules: []Rule{
			{Name: "error-rate", Verdict: rules.OutcomeFail, Value: f(0.05), Threshold: f(0.01)},
			{Name: "latency", Verdict: rules.OutcomeError, Reason: "query failed"},
		}},
		{At: at.Add(70 * time.Second), Verdict: analysis.VerdictPass, Rules: []Rule{
			{Name: "error-rate", Verdict: rules.OutcomePass, Value: f(0.004), Threshold: f(0.01)},
			{Name: "latency", Verdict: rules.OutcomePass, Comparison: cmp},
		}},
	}}
	var b bytes.Buffer
	require.NoError(t, c.WriteSVG(&b, false))
	texts, values := svgDoc(t, b.Bytes())
	require.Equal(t, []string{"0.002", "0.05", "0.004"}, values["error-rate"])
	require.Equal(t, []string{"12", "12"}, values["latency"], "the comparison's canary mean")
	require.Equal(t, []string{"11", "11"}, values["latency baseline"])
	require.Contains(t, texts, "threshold 0.01")
	require.Contains(t, strings.Join(texts, "\n"), "p=0.42, shift 0.1 [-0.2, 0.3] at 95%")
	require.Contains(t, texts, "<script>alert(1)</script>", "a name is text")
	require.NotContains(t, b.String(), "<script>")
	require.Contains(t, b.String(), `class="mark-nodata"`)
	require.Contains(t, b.String(), `class="mark-error"`)
	require.Contains(t, texts, "no data")
	require.Contains(t, texts, "query error")
	require.Contains(t, texts, "baseline")
}

// TestEmptyChart: a chart of nothing is still a well-formed SVG.
func TestEmptyChart(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, (&Chart{Title: "nothing yet"}).WriteSVG(&b, true))
	texts, _ := svgDoc(t, b.Bytes())
	require.Contains(t, texts, "nothing yet")
}

func TestIndexBetweenPoints(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	l := &layout{c: &Chart{Points: []Point{{At: at}, {At: at.Add(10 * time.Second)}, {At: at.Add(70 * time.Second)}}}}
	for _, tt := range []struct {
		name string
		at   time.Time
		want float64
	}{
		{"first", at, 0},
		{"between", at.Add(5 * time.Second), 0.5},
		{"uneven gap", at.Add(40 * time.Second), 1.5},
		{"last", at.Add(70 * time.Second), 2},
		{"before", at.Add(-5 * time.Second), -0.5},
		{"after", at.Add(100 * time.Second), 2.5},
	} {
		t.Run(tt.name, func(t *testing.T) { require.InDelta(t, tt.want, l.index(tt.at), 1e-9) })
	}
}
