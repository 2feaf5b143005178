package backtest

import (
	"html"
	"io"
	"strings"
	"time"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/analysis/chart"
)

// Chart is the timeline as package chart draws it: a panel per rule with
// its value over time against its threshold (dashed) and the steps it
// failed shaded, the verdict of every step as a band of colour underneath,
// the first failure marked, and a time axis in UTC. The web UI draws a
// run's recorded analyses with the same code.
func (t *Timeline) Chart() *chart.Chart {
	c := &chart.Chart{Title: "Backtest of policy " + t.Policy, Subtitle: t.window(), Rules: t.RuleNames(), Step: t.Step,
		Points: make([]chart.Point, len(t.Points))}
	for i, p := range t.Points {
		cp := chart.Point{At: p.At, Verdict: p.Verdict, Rules: make([]chart.Rule, len(p.Rules))}
		for j, r := range p.Rules {
			cp.Rules[j] = chart.Rule{Name: r.Name, Expr: r.Expr, Verdict: r.Verdict, Value: r.Value, Threshold: r.Threshold,
				NoData: r.NoData, Critical: r.Critical, Reason: r.Reason, Comparison: r.Comparison}
		}
		c.Points[i] = cp
	}
	if f := t.FirstFailure; f != nil {
		c.Marker = &chart.Marker{At: f.At, Label: "first failure"}
	}
	return c
}

// WriteSVG writes the chart of the timeline as a standalone SVG.
func (t *Timeline) WriteSVG(w io.Writer) error {
	return t.Chart().WriteSVG(w, true)
}

// WriteHTML writes a self-contained page: a title, the chart and the text
// timeline, with no external assets and no script.
func (t *Timeline) WriteHTML(w io.Writer) error {
	ew := &errWriter{w: w}
	title := "Backtest of " + t.Policy
	ew.write("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
	ew.write("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
	ew.write("<meta name=\"color-scheme\" content=\"light dark\">\n")
	ew.write("<title>" + html.EscapeString(title) + "</title>\n")
	ew.write("<style>\n" + pageCSS + chart.CSS + "</style>\n</head>\n<body>\n<main>\n")
	ew.write("<h1>Backtest of policy <code>" + html.EscapeString(t.Policy) + "</code></h1>\n")
	ew.write("<p class=\"window\">" + html.EscapeString(t.window()) + "</p>\n")

	verdict := analysis.VerdictPass
	if t.FirstFailure != nil {
		verdict = analysis.VerdictFail
	}
	ew.write("<p class=\"summary\"><span class=\"badge " + string(verdict) + "\">" + verdictWord(verdict) + "</span> ")
	if f := t.FirstDataFailure; f != nil {
		ew.write("first failure with data at <strong>" + stamp(f.At) + "</strong>, decision " + html.EscapeString(string(f.Decision)) + "</p>\n<ul class=\"why\">\n")
		for _, r := range f.Rules {
			if failedOnData(r) {
				ew.write("<li><strong>" + html.EscapeString(r.Name) + "</strong>: " + html.EscapeString(r.Reason) + "</li>\n")
			}
		}
		ew.write("</ul>\n")
	} else if t.FirstFailure != nil {
		ew.write("only for want of data</p>\n")
	} else {
		ew.write("no step of the window would have failed</p>\n")
	}
	if nd := t.NoDataFailures(); len(nd) > 0 {
		ew.write("<p>Failures from missing data (noData: fail):</p>\n<ul class=\"nodata\">\n")
		for _, s := range nd {
			ew.write("<li><strong>" + html.EscapeString(s.Rule) + "</strong>: " + html.EscapeString(t.noDataSpan(s)) + "</li>\n")
		}
		ew.write("</ul>\n")
	}
	ew.write("<figure>\n")
	if err := t.Chart().WriteSVG(w, false); err != nil && ew.err == nil {
		ew.err = err
	}
	ew.write("</figure>\n<h2>Timeline</h2>\n<pre>")
	var text strings.Builder
	t.WriteText(&text)
	ew.write(html.EscapeString(text.String()))
	ew.write("</pre>\n</main>\n</body>\n</html>\n")
	return ew.err
}

var pageCSS = `body{margin:0;background:#f6f7f9;color:#1f2937;font:14px/1.5 ` + chart.FontFamily + `}
main{max-width:1000px;margin:2rem auto;padding:0 1rem}
h1{font-size:1.35rem;margin:0 0 .2rem}
h2{font-size:1.05rem;margin:1.75rem 0 .5rem}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.95em}
.window{color:#6b7280;margin:0 0 1rem}
.summary{margin:.5rem 0}
.badge{display:inline-block;padding:.1rem .55rem;border-radius:.3rem;color:#fff;font-weight:600;margin-right:.35rem}
.badge.pass{background:` + chart.VerdictColor(analysis.VerdictPass) + `}.badge.fail{background:` + chart.VerdictColor(analysis.VerdictFail) +
	`}.badge.inconclusive{background:` + chart.VerdictColor(analysis.VerdictInconclusive) + `}
.why{margin:.25rem 0 1rem;padding-left:1.25rem}
figure{margin:0;background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px 8px}
pre{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:1rem;overflow:auto;font:12px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
@media (prefers-color-scheme: dark){
body{background:#0b1120;color:#e5e7eb}
figure,pre{background:#111827;border-color:#374151}
.window{color:#9ca3af}
}
`

// window describes the replayed window in one line.
func (t *Timeline) window() string {
	return stamp(t.From) + " to " + stamp(t.To) + ", every " + shortDuration(t.Step) + ": " +
		plural(len(t.Points), "step") + ", " + plural(t.Queries, "query")
}

// indexAt is the step of time at.
func (t *Timeline) indexAt(at time.Time) int {
	if t.Step <= 0 {
		return 0
	}
	return int(at.Sub(t.From) / t.Step)
}
