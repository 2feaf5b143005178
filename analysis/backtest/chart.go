package backtest

import (
	"html"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/rules"
)

// Chart geometry, in SVG user units (pixels at 100%).
const (
	chartWidth  = 960
	marginLeft  = 76 // room for the value labels
	marginRight = 16
	plotWidth   = chartWidth - marginLeft - marginRight
	headerRow   = 30 // title, standalone SVG only
	markerRow   = 18 // the first-failure label
	panelLabel  = 18 // rule name above each panel
	panelHeight = 56
	stripHeight = 24 // a rule without values
	panelGap    = 12
	bandHeight  = 16
	axisRow     = 26
	legendRow   = 22
)

// Colours: verdicts as traffic lights, values in blue, thresholds in ink.
const (
	colorPass         = "#2f9e5b"
	colorFail         = "#d64545"
	colorInconclusive = "#e3a21a"
	colorFailTint     = "#fbe3e3"
	colorUnsureTint   = "#fcf1d8"
	colorValue        = "#2563eb"
	colorThreshold    = "#1f2937"
	colorGrid         = "#eceef2"
	colorFrame        = "#d9dde3"
	colorMuted        = "#6b7280"
	fontFamily        = `system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif`
)

// WriteSVG writes a chart of the timeline: a panel per rule with its value
// over time against its threshold (dashed) and the steps it failed shaded,
// the verdict of every step as a band of colour underneath, and a time
// axis in UTC.
func (t *Timeline) WriteSVG(w io.Writer) error {
	ew := &errWriter{w: w}
	t.writeSVG(ew, true)
	return ew.err
}

// WriteHTML writes a self-contained page: a title, the chart and the text
// timeline, with no external assets.
func (t *Timeline) WriteHTML(w io.Writer) error {
	ew := &errWriter{w: w}
	title := "Backtest of " + t.Policy
	ew.write("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
	ew.write("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
	ew.write("<title>" + html.EscapeString(title) + "</title>\n")
	ew.write("<style>\n" + pageCSS + "</style>\n</head>\n<body>\n<main>\n")
	ew.write("<h1>Backtest of policy <code>" + html.EscapeString(t.Policy) + "</code></h1>\n")
	ew.write("<p class=\"window\">" + html.EscapeString(t.window()) + "</p>\n")

	verdict := analysis.VerdictPass
	if t.FirstFailure != nil {
		verdict = analysis.VerdictFail
	}
	ew.write("<p class=\"summary\"><span class=\"badge " + string(verdict) + "\">" + verdictWord(verdict) + "</span> ")
	if f := t.FirstFailure; f != nil {
		ew.write("first at <strong>" + stamp(f.At) + "</strong>, decision " + html.EscapeString(string(f.Decision)) + "</p>\n<ul class=\"why\">\n")
		for _, r := range f.Rules {
			if r.Verdict == rules.OutcomeFail {
				ew.write("<li><strong>" + html.EscapeString(r.Name) + "</strong>: " + html.EscapeString(r.Reason) + "</li>\n")
			}
		}
		ew.write("</ul>\n")
	} else {
		ew.write("no step of the window would have failed</p>\n")
	}
	ew.write("<figure>\n")
	t.writeSVG(ew, false)
	ew.write("</figure>\n<h2>Timeline</h2>\n<pre>")
	var text strings.Builder
	t.WriteText(&text)
	ew.write(html.EscapeString(text.String()))
	ew.write("</pre>\n</main>\n</body>\n</html>\n")
	return ew.err
}

const pageCSS = `body{margin:0;background:#f6f7f9;color:#1f2937;font:14px/1.5 ` + fontFamily + `}
main{max-width:1000px;margin:2rem auto;padding:0 1rem}
h1{font-size:1.35rem;margin:0 0 .2rem}
h2{font-size:1.05rem;margin:1.75rem 0 .5rem}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.95em}
.window{color:#6b7280;margin:0 0 1rem}
.summary{margin:.5rem 0}
.badge{display:inline-block;padding:.1rem .55rem;border-radius:.3rem;color:#fff;font-weight:600;margin-right:.35rem}
.badge.pass{background:` + colorPass + `}.badge.fail{background:` + colorFail + `}.badge.inconclusive{background:` + colorInconclusive + `}
.why{margin:.25rem 0 1rem;padding-left:1.25rem}
figure{margin:0;background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px 8px}
figure svg{display:block;width:100%;height:auto}
pre{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:1rem;overflow:auto;font:12px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
`

// window describes the replayed window in one line.
func (t *Timeline) window() string {
	return stamp(t.From) + " to " + stamp(t.To) + ", every " + shortDuration(t.Step) + ": " +
		plural(len(t.Points), "step") + ", " + plural(t.Queries, "query")
}

// chart holds the scales shared by the panels.
type chart struct {
	t     *Timeline
	n     int     // steps
	slot  float64 // width of one step
	names []string
}

// x is the centre of step i.
func (c *chart) x(i int) float64 { return marginLeft + (float64(i)+0.5)*c.slot }

// xAt is the position of time at.
func (c *chart) xAt(at time.Time) float64 {
	if c.t.Step <= 0 {
		return c.x(0)
	}
	return marginLeft + (float64(at.Sub(c.t.From))/float64(c.t.Step)+0.5)*c.slot
}

func (t *Timeline) writeSVG(ew *errWriter, standalone bool) {
	c := &chart{t: t, n: max(len(t.Points), 1), names: t.RuleNames()}
	c.slot = plotWidth / float64(c.n)
	panels := c.panels()

	top := markerRow
	if standalone {
		top += headerRow
	}
	bandTop := top + panelLabel
	for _, p := range panels {
		bandTop += panelLabel + p.height() + panelGap
	}
	height := bandTop + bandHeight + axisRow + legendRow

	ew.printf(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" font-family="%s" font-size="11" role="img">`+"\n",
		chartWidth, height, chartWidth, height, esc(fontFamily))
	ew.write("<title>" + esc("Backtest of policy "+t.Policy+": "+t.window()) + "</title>\n")
	ew.write(`<rect width="100%" height="100%" fill="#ffffff"/>` + "\n")
	if standalone {
		ew.printf(`<text x="%d" y="20" font-size="14" font-weight="600" fill="#111827">%s</text>`+"\n",
			marginLeft, esc("Backtest of policy "+t.Policy))
		ew.printf(`<text x="%d" y="20" text-anchor="end" fill="%s">%s</text>`+"\n",
			chartWidth-marginRight, colorMuted, esc(t.window()))
	}

	ticks, layout := timeTicks(t.From, t.To, t.Step)
	y := top
	for _, p := range panels {
		c.panel(ew, p, y, ticks)
		y += panelLabel + p.height() + panelGap
	}
	c.band(ew, bandTop, ticks, layout)
	c.legend(ew, bandTop+bandHeight+axisRow+14)
	if f := t.FirstFailure; f != nil {
		x := c.xAt(f.At)
		ew.printf(`<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="%s" stroke-width="1" stroke-dasharray="3 3"/>`+"\n",
			num(x), top, num(x), bandTop+bandHeight, colorFail)
		anchor := "start"
		if x > marginLeft+plotWidth*0.75 {
			anchor = "end"
		}
		ew.printf(`<text x="%s" y="%d" text-anchor="%s" fill="%s" font-weight="600">%s</text>`+"\n",
			num(x), top-5, anchor, colorFail, esc("first failure "+f.At.UTC().Format(layout)+" UTC"))
	}
	ew.write("</svg>\n")
}

// rulePanel is one rule's series over the timeline.
type rulePanel struct {
	name, expr string
	// values and thresholds are NaN where the rule had none.
	values, thresholds []float64
	outcomes           []rules.Outcome
	hasValue, hasLimit bool
	// constant is the reason of a rule with the same outcome and reason
	// at every step, such as one whose query cannot be replayed.
	constant string
}

// height is the panel's plot height: a rule without values only needs a
// strip for its outcomes.
func (p *rulePanel) height() int {
	if p.hasValue {
		return panelHeight
	}
	return stripHeight
}

// panels gathers each rule's series.
func (c *chart) panels() []*rulePanel {
	panels := make([]*rulePanel, len(c.names))
	byName := make(map[string]*rulePanel, len(c.names))
	for i, name := range c.names {
		p := &rulePanel{name: name, values: make([]float64, c.n), thresholds: make([]float64, c.n), outcomes: make([]rules.Outcome, c.n)}
		for j := range p.values {
			p.values[j], p.thresholds[j] = math.NaN(), math.NaN()
		}
		panels[i], byName[name] = p, p
	}
	reasons := map[string]string{}
	for i, pt := range c.t.Points {
		for _, r := range pt.Rules {
			p := byName[r.Name]
			p.outcomes[i], p.expr = r.Verdict, r.Expr
			if r.Value != nil && finite(float64(*r.Value)) {
				p.values[i], p.hasValue = float64(*r.Value), true
			}
			if r.Threshold != nil && finite(float64(*r.Threshold)) {
				p.thresholds[i], p.hasLimit = float64(*r.Threshold), true
			}
			why := string(r.Verdict) + ": " + r.Reason
			if prev, ok := reasons[r.Name]; !ok {
				reasons[r.Name] = why
			} else if prev != why {
				reasons[r.Name] = "\x00" // not constant
			}
		}
	}
	for _, p := range panels {
		if why := reasons[p.name]; why != "\x00" && p.outcomes[0] != rules.OutcomePass {
			p.constant = why
		}
	}
	return panels
}

// panel draws one rule: its name and expression, its value against its
// threshold, and the steps it did not pass shaded.
func (c *chart) panel(ew *errWriter, p *rulePanel, y0 int, ticks []time.Time) {
	labelY := y0 + panelLabel - 5
	plotTop := y0 + panelLabel
	h := p.height()
	ew.printf(`<text x="%d" y="%d"><tspan font-weight="600" font-size="12" fill="#111827">%s</tspan>`,
		marginLeft, labelY, esc(p.name))
	if p.expr != "" {
		// A space, not only an offset, so that the text reads "name expr"
		// when copied or read aloud.
		ew.printf(` <tspan dx="4" fill="%s">%s</tspan>`, colorMuted, esc(truncate(p.expr, 110)))
	}
	ew.write("</text>\n")
	ew.printf(`<rect x="%d" y="%d" width="%d" height="%d" fill="#fbfbfc" stroke="%s"/>`+"\n",
		marginLeft, plotTop, plotWidth, h, colorFrame)

	// Shade the runs of steps the rule did not pass.
	for i := 0; i < c.n; {
		j := i
		for j+1 < c.n && p.outcomes[j+1] == p.outcomes[i] {
			j++
		}
		tint := ""
		switch p.outcomes[i] {
		case rules.OutcomeFail:
			tint = colorFailTint
		case rules.OutcomeInconclusive, rules.OutcomeError:
			tint = colorUnsureTint
		}
		if tint != "" {
			ew.printf(`<rect x="%s" y="%d" width="%s" height="%d" fill="%s"/>`+"\n",
				num(marginLeft+float64(i)*c.slot), plotTop+1, num(float64(j-i+1)*c.slot), h-2, tint)
		}
		i = j + 1
	}
	for _, tk := range ticks {
		x := num(c.xAt(tk))
		ew.printf(`<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="%s"/>`+"\n", x, plotTop+1, x, plotTop+h-1, colorGrid)
	}

	if !p.hasValue {
		note := "no value to plot: shaded where it did not pass"
		if p.constant != "" {
			note = p.constant + ", at every step"
		}
		ew.printf(`<text x="%d" y="%d" fill="%s">%s</text>`+"\n", marginLeft+8, plotTop+h/2+4, colorMuted, esc(truncate(note, 130)))
		return
	}
	lo, hi, yticks := valueScale(p.values, p.thresholds)
	y := func(v float64) float64 {
		return float64(plotTop) + 4 + (hi-v)/(hi-lo)*float64(h-8)
	}
	for _, v := range yticks {
		ew.printf(`<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="%s"/>`+"\n", marginLeft, num(y(v)), marginLeft+plotWidth, num(y(v)), colorGrid)
		ew.printf(`<text x="%d" y="%s" dy="0.32em" text-anchor="end" fill="%s">%s</text>`+"\n",
			marginLeft-6, num(y(v)), colorMuted, esc(analysis.FormatValue(v)))
	}
	if p.hasLimit {
		ew.printf(`<path d="%s" fill="none" stroke="%s" stroke-width="1.2" stroke-dasharray="5 4"/>`+"\n",
			c.path(p.thresholds, y), colorThreshold)
		for i := c.n - 1; i >= 0; i-- {
			if finite(p.thresholds[i]) {
				ew.printf(`<text x="%d" y="%s" text-anchor="end" fill="%s">%s</text>`+"\n",
					marginLeft+plotWidth-4, num(y(p.thresholds[i])-4), colorThreshold, esc("threshold "+analysis.FormatValue(p.thresholds[i])))
				break
			}
		}
	}
	ew.printf(`<path d="%s" fill="none" stroke="%s" stroke-width="1.6" stroke-linejoin="round" stroke-linecap="round"/>`+"\n",
		c.path(p.values, y), colorValue)
}

// path draws values (NaN for none) as a line broken where there is no
// value. With more steps than pixels, the steps of one pixel column become
// one vertical stroke from their least to their greatest value, so spikes
// stay visible.
func (c *chart) path(values []float64, y func(float64) float64) string {
	var b strings.Builder
	pen, seg := false, 0
	end := func() {
		if seg == 1 {
			b.WriteString("h0.1") // an isolated value: a dot
		}
		pen, seg = false, 0
	}
	draw := func(x, v float64) {
		if pen {
			b.WriteByte('L')
		} else {
			b.WriteByte('M')
		}
		b.WriteString(num(x))
		b.WriteByte(' ')
		b.WriteString(num(y(v)))
		pen = true
		seg++
	}
	if float64(c.n) <= 2*plotWidth {
		for i, v := range values {
			if !finite(v) {
				end()
				continue
			}
			draw(c.x(i), v)
		}
		end()
		return b.String()
	}
	for i := 0; i < c.n; {
		col := math.Floor(c.x(i))
		lo, hi, gap := math.Inf(1), math.Inf(-1), false
		j := i
		for ; j < c.n && math.Floor(c.x(j)) == col; j++ {
			if finite(values[j]) {
				lo, hi = min(lo, values[j]), max(hi, values[j])
			} else {
				gap = true
			}
		}
		if lo <= hi {
			draw(col+0.5, lo)
			if hi > lo {
				draw(col+0.5, hi)
			}
		}
		if gap {
			end()
		}
		i = j
	}
	end()
	return b.String()
}

// band draws each step's verdict as a strip of colour, and the time axis.
func (c *chart) band(ew *errWriter, y0 int, ticks []time.Time, layout string) {
	ew.printf(`<text x="%d" y="%d" font-weight="600" font-size="12" fill="#111827">verdict</text>`+"\n", marginLeft, y0-5)
	for _, s := range c.t.Spans {
		i, j := c.t.indexAt(s.From), c.t.indexAt(s.To)
		ew.printf(`<rect x="%s" y="%d" width="%s" height="%d" fill="%s"><title>%s</title></rect>`+"\n",
			num(marginLeft+float64(i)*c.slot), y0, num(float64(j-i+1)*c.slot), bandHeight, verdictColor(s.Verdict),
			esc(string(s.Verdict)+" "+stamp(s.From)+" to "+stamp(s.To)))
	}
	ew.printf(`<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="%s"/>`+"\n",
		marginLeft, y0, plotWidth, bandHeight, colorFrame)
	axisY := y0 + bandHeight
	for _, tk := range ticks {
		x := num(c.xAt(tk))
		ew.printf(`<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="%s"/>`+"\n", x, axisY, x, axisY+4, colorMuted)
		ew.printf(`<text x="%s" y="%d" text-anchor="middle" fill="%s">%s</text>`+"\n", x, axisY+16, colorMuted, esc(tk.UTC().Format(layout)))
	}
}

// legend explains the marks.
func (c *chart) legend(ew *errWriter, y int) {
	x := marginLeft
	ew.printf(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="1.6"/>`, x, y-4, x+18, y-4, colorValue)
	ew.printf(`<text x="%d" y="%d" fill="%s">value</text>`+"\n", x+23, y, colorMuted)
	x += 70
	ew.printf(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="1.2" stroke-dasharray="5 4"/>`, x, y-4, x+18, y-4, colorThreshold)
	ew.printf(`<text x="%d" y="%d" fill="%s">threshold</text>`+"\n", x+23, y, colorMuted)
	x += 90
	for _, v := range []analysis.Verdict{analysis.VerdictPass, analysis.VerdictFail, analysis.VerdictInconclusive} {
		ew.printf(`<rect x="%d" y="%d" width="10" height="10" rx="2" fill="%s"/>`, x, y-9, verdictColor(v))
		ew.printf(`<text x="%d" y="%d" fill="%s">%s</text>`+"\n", x+15, y, colorMuted, v)
		x += 40 + 6*len(v)
	}
	ew.printf(`<text x="%d" y="%d" text-anchor="end" fill="%s">times in UTC</text>`+"\n", marginLeft+plotWidth, y, colorMuted)
}

// indexAt is the step of time at.
func (t *Timeline) indexAt(at time.Time) int {
	if t.Step <= 0 {
		return 0
	}
	return int(at.Sub(t.From) / t.Step)
}

func verdictColor(v analysis.Verdict) string {
	switch v {
	case analysis.VerdictFail:
		return colorFail
	case analysis.VerdictInconclusive:
		return colorInconclusive
	}
	return colorPass
}

// valueScale picks a panel's vertical range: round numbers around the
// values and thresholds, with two to four labelled ticks.
func valueScale(values, thresholds []float64) (lo, hi float64, ticks []float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, vs := range [][]float64{values, thresholds} {
		for _, v := range vs {
			if finite(v) {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if lo > hi {
		lo, hi = 0, 1
	}
	if lo == hi {
		d := math.Abs(lo) * 0.1
		if d == 0 {
			d = 1
		}
		lo, hi = lo-d, hi+d
	}
	step := niceNum((hi - lo) / 2)
	lo, hi = math.Floor(lo/step)*step, math.Ceil(hi/step)*step
	for v := lo; v <= hi+step/2; v += step {
		// Snap to the step's grid: repeated addition drifts.
		ticks = append(ticks, math.Round(v/step)*step)
	}
	return lo, hi, ticks
}

// niceNum rounds x up to 1, 2 or 5 times a power of ten.
func niceNum(x float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(x)))
	switch f := x / p; {
	case f <= 1:
		return p
	case f <= 2:
		return 2 * p
	case f <= 5:
		return 5 * p
	}
	return 10 * p
}

// tickSteps are the intervals the time axis may be labelled at.
var tickSteps = []time.Duration{
	time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
	2 * 24 * time.Hour, 7 * 24 * time.Hour, 14 * 24 * time.Hour, 28 * 24 * time.Hour,
}

// maxTicks bounds the labels on the time axis.
const maxTicks = 8

// timeTicks returns round times within the chart, at most maxTicks of
// them, and the layout to label them with.
func timeTicks(from, to time.Time, step time.Duration) ([]time.Time, string) {
	first, last := from.Add(-step/2), to.Add(step/2)
	span := last.Sub(first)
	every := tickSteps[len(tickSteps)-1]
	for _, d := range tickSteps {
		if span/d <= maxTicks {
			every = d
			break
		}
	}
	layout := "15:04"
	switch {
	case every >= 24*time.Hour:
		layout = "Jan 2"
	case span > 24*time.Hour || first.UTC().YearDay() != last.UTC().YearDay():
		layout = "Jan 2 15:04"
	case every < time.Minute:
		layout = "15:04:05"
	}
	var ticks []time.Time
	for tk := first.UTC().Truncate(every); !tk.After(last); tk = tk.Add(every) {
		if !tk.Before(first) {
			ticks = append(ticks, tk)
		}
	}
	return ticks, layout
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// num writes a coordinate with one decimal, enough at this scale.
func num(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// esc escapes text for XML and HTML alike.
func esc(s string) string { return html.EscapeString(s) }

// truncate shortens s to n runes with an ellipsis.
func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
