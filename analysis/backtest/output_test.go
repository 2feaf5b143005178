package backtest

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/rules"
)

// node is an element of a parsed SVG.
type node struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []node     `xml:",any"`
}

func (n node) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (n node) all(fn func(node) bool) []node {
	var out []node
	if fn(n) {
		out = append(out, n)
	}
	for _, c := range n.Children {
		out = append(out, c.all(fn)...)
	}
	return out
}

func (n node) title() string {
	for _, c := range n.Children {
		if c.XMLName.Local == "title" {
			return c.Text
		}
	}
	return ""
}

// TestChartMarksCriticalNoDataAndValues parses the replay's chart: the
// critical rule's panel says so, no-data steps are shaded apart from
// failures and each has a hover title with its time, and every plotted
// step has its value on hover.
func TestChartMarksCriticalNoDataAndValues(t *testing.T) {
	tl, err := Run(t.Context(), replaySource().registry(), policy(t, replayPolicy), map[string]string{"name": "a"}, base, base.Add(90*time.Minute), time.Minute)
	require.NoError(t, err)
	var svg bytes.Buffer
	require.NoError(t, tl.WriteSVG(&svg))
	var root node
	require.NoError(t, xml.Unmarshal(svg.Bytes(), &root))

	panels := root.all(func(n node) bool { return n.XMLName.Local == "g" && n.attr("class") == "panel" })
	require.NotEmpty(t, panels)
	byRule := map[string]node{}
	for _, p := range panels {
		byRule[p.attr("data-rule")] = p
	}
	critical := func(p node) bool {
		return len(p.all(func(n node) bool { return n.attr("class") == "critical" })) > 0
	}
	require.True(t, critical(byRule["error-rate"]), "error-rate is critical")
	require.False(t, critical(byRule["latency"]), "latency is not critical")

	// error-rate had no data from 09:10 to 09:14, then failed on data.
	er := byRule["error-rate"]
	noData := er.all(func(n node) bool { return n.attr("class") == "c-nodata-tint" })
	fail := er.all(func(n node) bool { return n.attr("class") == "c-fail-tint" })
	require.Len(t, noData, 1)
	require.Len(t, fail, 1)
	require.NotEqual(t, noData[0].attr("fill"), fail[0].attr("fill"), "no data is drawn apart from failure")
	marks := er.all(func(n node) bool { return n.attr("class") == "mark-nodata" })
	require.Len(t, marks, 5)
	for _, m := range marks {
		require.Contains(t, m.title(), "error-rate: no data")
		require.Contains(t, m.title(), m.attr("data-at")[:10])
	}
	points := root.all(func(n node) bool { return n.XMLName.Local == "circle" && n.attr("class") == "pt" })
	require.NotEmpty(t, points)
	for _, p := range points {
		require.NotEmpty(t, p.title(), "a step without its value on hover")
		require.Contains(t, p.title(), " at ")
	}
}

// TestHeadlineSeparatesNoDataFailures: the headline names the first
// failure the data showed, lists the failures that came from missing
// data apart, and calls a span from the first step "no data yet".
func TestHeadlineSeparatesNoDataFailures(t *testing.T) {
	at := func(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }
	point := func(m int, lagVerdict rules.Outcome, lagNoData bool, errVerdict rules.Outcome) Point {
		verdict := analysis.VerdictPass
		if lagVerdict == rules.OutcomeFail || errVerdict == rules.OutcomeFail {
			verdict = analysis.VerdictFail
		}
		return Point{At: at(m), Verdict: verdict, Decision: analysis.DecisionContinue, Rules: []analysis.RuleResult{
			{Name: "lag", Verdict: lagVerdict, NoData: lagNoData, Reason: "no data for lag (noData: fail)"},
			{Name: "error-rate", Verdict: errVerdict, Critical: true, Reason: "0.05 > 0.01"},
		}}
	}
	tl := &Timeline{Policy: "p", From: at(0), To: at(4), Step: time.Minute, Points: []Point{
		point(0, rules.OutcomeFail, true, rules.OutcomePass),
		point(1, rules.OutcomeFail, true, rules.OutcomePass),
		point(2, rules.OutcomePass, false, rules.OutcomePass),
		point(3, rules.OutcomePass, false, rules.OutcomeFail),
		point(4, rules.OutcomePass, false, rules.OutcomePass),
	}, NoData: []Span{{Rule: "lag", From: at(0), To: at(1), Steps: 2}}}
	tl.summarize()
	tl.NoData = []Span{{Rule: "lag", From: at(0), To: at(1), Steps: 2}}
	require.Equal(t, at(0), tl.FirstFailure.At)
	require.Equal(t, at(3), tl.FirstDataFailure.At)

	var b strings.Builder
	tl.WriteText(&b)
	out := b.String()
	require.Contains(t, out, "first failure with data at "+stamp(at(3)))
	require.Contains(t, out, "  error-rate (critical): 0.05 > 0.01\n")
	require.Contains(t, out, "failures from missing data (noData: fail):\n  lag: no data yet from the start, "+stamp(at(0))+" to "+stamp(at(1))+" (2 steps)\n")
	require.Less(t, strings.Index(out, "first failure with data"), strings.Index(out, "failures from missing data"))
}
