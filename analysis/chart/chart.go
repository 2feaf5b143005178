// Package chart draws a policy's rules over a series of analyses as SVG: a
// panel per rule with its value against its threshold (canary beside
// baseline for a statistical comparison, with its p-value and interval),
// the analyses it did not pass shaded, no data and errors marked, a band of
// verdicts underneath and a time axis in UTC.
//
// It is the one chart of the product: the backtest report (a replayed
// window, one point per step) and the web UI (a run's recorded analyses,
// one point per analysis) both draw with it. The SVG needs no script and
// no stylesheet; its elements carry classes (see CSS) so that a page can
// restyle it, for a dark theme, and data attributes (data-rule,
// data-value) so that a test can read what it shows.
package chart

import (
	"cmp"
	"fmt"
	"html"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/rules"
)

// Chart is what to draw.
type Chart struct {
	// Title names the chart: the SVG's title, drawn at the top of a
	// standalone SVG with Subtitle beside it.
	Title    string
	Subtitle string
	// Points are the analyses, oldest first.
	Points []Point
	// Rules orders the panels; empty orders them as the rules first
	// appear in the points.
	Rules []string
	// Step is the spacing of points on a regular grid (a backtest's
	// step); zero places the time axis by the points' own times.
	Step time.Duration
	// Marker, when set, marks a time with a dashed line and a label.
	Marker *Marker
}

// Marker marks a time, such as a backtest's first failure. The label is
// drawn with the time after it.
type Marker struct {
	At    time.Time
	Label string
}

// Point is one analysis.
type Point struct {
	At      time.Time
	Verdict analysis.Verdict
	Rules   []Rule
}

// Rule is one rule's outcome in one analysis.
type Rule struct {
	Name    string
	Expr    string
	Verdict rules.Outcome
	// Value is the rule's main value; Threshold the right side of a
	// comparison rule.
	Value, Threshold *analysis.Float
	// NoData marks a rule that took its noData outcome.
	NoData bool
	// Critical marks a rule whose failure rolls back whatever the score.
	Critical bool
	Reason   string
	// Comparison, for a statistical comparison, puts the canary's and
	// the baseline's means side by side instead of the value.
	Comparison *analysis.ComparisonResult
}

// Geometry, in SVG user units (pixels at 100%).
const (
	width       = 960
	marginLeft  = 76 // room for the value labels
	marginRight = 16
	plotWidth   = width - marginLeft - marginRight
	headerRow   = 30 // title, standalone SVG only
	markerRow   = 18 // the marker's label
	panelLabel  = 18 // rule name above each panel
	panelHeight = 56
	stripHeight = 24 // a rule without values
	panelGap    = 12
	bandHeight  = 16
	axisRow     = 26
	legendRow   = 22
	// maxDots is how many points a series may have and still get a dot
	// per point, with its time and value as a tooltip and data
	// attributes; beyond it only the line is drawn.
	maxDots = 240
)

// Colours: verdicts as traffic lights, canary values in blue, baselines
// in violet, thresholds in ink. CSS overrides them by class.
const (
	colorPass         = "#2f9e5b"
	colorFail         = "#d64545"
	colorInconclusive = "#e3a21a"
	colorFailTint     = "#fbe3e3"
	colorUnsureTint   = "#fcf1d8"
	colorNoDataTint   = "#e8eaee"
	colorValue        = "#2563eb"
	colorBaseline     = "#8b5cf6"
	colorThreshold    = "#1f2937"
	colorInk          = "#111827"
	colorGrid         = "#eceef2"
	colorFrame        = "#d9dde3"
	colorPlot         = "#fbfbfc"
	colorMuted        = "#6b7280"
	colorNone         = "#9ca3af" // no analysis yet
	// FontFamily is the chart's font, which pages around it may share.
	FontFamily = `system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif`
)

// CSS restyles the chart on a dark page: the SVG's own colours are for a
// light one. Pages that embed the chart include it.
const CSS = `svg.chart{display:block;width:100%;height:auto}
@media (prefers-color-scheme: dark){
svg.chart .c-bg{fill:#111827}
svg.chart .c-plot{fill:#161e2e;stroke:#374151}
svg.chart .c-frame{stroke:#374151}
svg.chart .c-grid{stroke:#1f2937}
svg.chart .c-ink{fill:#e5e7eb}
svg.chart .c-muted{fill:#9ca3af}
svg.chart .c-muted-line{stroke:#9ca3af}
svg.chart .c-thr{stroke:#e5e7eb}
svg.chart .c-thr-text{fill:#e5e7eb}
svg.chart .c-fail-tint{fill:#3b1d22}
svg.chart .c-unsure-tint{fill:#3a2f16}
svg.chart .c-nodata-tint{fill:#272b33}
}
`

// WriteSVG writes the chart. A standalone SVG (a file of its own) gets the
// title drawn at the top; one embedded in a page leaves that to the page.
func (c *Chart) WriteSVG(w io.Writer, standalone bool) error {
	ew := &errWriter{w: w}
	c.write(ew, standalone)
	return ew.err
}

// layout holds the scales shared by the panels.
type layout struct {
	c     *Chart
	n     int     // points
	slot  float64 // width of one point
	names []string
}

// x is the centre of point i.
func (l *layout) x(i int) float64 { return marginLeft + (float64(i)+0.5)*l.slot }

// xAt is the position of time at.
func (l *layout) xAt(at time.Time) float64 { return marginLeft + (l.index(at)+0.5)*l.slot }

// index is where time at falls among the points, as a fractional index:
// on a regular grid by the step, otherwise between the two points around
// it.
func (l *layout) index(at time.Time) float64 {
	pts := l.c.Points
	if len(pts) == 0 {
		return 0
	}
	if l.c.Step > 0 {
		return float64(at.Sub(pts[0].At)) / float64(l.c.Step)
	}
	n := len(pts)
	if n == 1 {
		return 0
	}
	frac := func(from, to time.Time, base float64) float64 {
		gap := to.Sub(from)
		if gap <= 0 {
			return base
		}
		return base + float64(at.Sub(from))/float64(gap)
	}
	if at.Before(pts[0].At) {
		return frac(pts[0].At, pts[1].At, 0)
	}
	i := sort.Search(n, func(i int) bool { return pts[i].At.After(at) })
	if i == n {
		return frac(pts[n-2].At, pts[n-1].At, float64(n-2))
	}
	return frac(pts[i-1].At, pts[i].At, float64(i-1))
}

// step is the time one point stands for: the grid's step, or the average
// gap between points.
func (l *layout) step() time.Duration {
	if l.c.Step > 0 {
		return l.c.Step
	}
	pts := l.c.Points
	if len(pts) < 2 {
		return time.Minute
	}
	if d := pts[len(pts)-1].At.Sub(pts[0].At) / time.Duration(len(pts)-1); d > 0 {
		return d
	}
	return time.Second
}

func (c *Chart) ruleNames() []string {
	if len(c.Rules) > 0 {
		return c.Rules
	}
	var names []string
	seen := map[string]bool{}
	for _, p := range c.Points {
		for _, r := range p.Rules {
			if !seen[r.Name] {
				seen[r.Name] = true
				names = append(names, r.Name)
			}
		}
	}
	return names
}

func (c *Chart) write(ew *errWriter, standalone bool) {
	l := &layout{c: c, n: max(len(c.Points), 1), names: c.ruleNames()}
	l.slot = plotWidth / float64(l.n)
	panels := l.panels()

	top := markerRow
	if standalone {
		top += headerRow
	}
	bandTop := top + panelLabel
	for _, p := range panels {
		bandTop += panelLabel + p.height() + panelGap
	}
	height := bandTop + bandHeight + axisRow + legendRow

	ew.printf(`<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 %d %d" width="%d" height="%d" font-family="%s" font-size="11" role="img">`+"\n",
		width, height, width, height, esc(FontFamily))
	title := c.Title
	if c.Subtitle != "" {
		title += ": " + c.Subtitle
	}
	ew.write("<title>" + esc(title) + "</title>\n")
	ew.write(`<rect class="c-bg" width="100%" height="100%" fill="#ffffff"/>` + "\n")
	if standalone {
		ew.printf(`<text class="c-ink" x="%d" y="20" font-size="14" font-weight="600" fill="%s">%s</text>`+"\n",
			marginLeft, colorInk, esc(c.Title))
		ew.printf(`<text class="c-muted" x="%d" y="20" text-anchor="end" fill="%s">%s</text>`+"\n",
			width-marginRight, colorMuted, esc(c.Subtitle))
	}

	var ticks []time.Time
	tlayout := "15:04"
	if len(c.Points) > 0 {
		ticks, tlayout = timeTicks(c.Points[0].At, c.Points[len(c.Points)-1].At, l.step())
	}
	y := top
	for _, p := range panels {
		l.panel(ew, p, y, ticks)
		y += panelLabel + p.height() + panelGap
	}
	l.band(ew, bandTop, ticks, tlayout)
	l.legend(ew, bandTop+bandHeight+axisRow+14, panels)
	if m := c.Marker; m != nil && len(c.Points) > 0 {
		x := l.xAt(m.At)
		ew.printf(`<line class="marker" x1="%s" y1="%d" x2="%s" y2="%d" stroke="%s" stroke-width="1" stroke-dasharray="3 3"/>`+"\n",
			num(x), top, num(x), bandTop+bandHeight, colorFail)
		anchor := "start"
		if x > marginLeft+plotWidth*0.75 {
			anchor = "end"
		}
		ew.printf(`<text x="%s" y="%d" text-anchor="%s" fill="%s" font-weight="600">%s</text>`+"\n",
			num(x), top-5, anchor, colorFail, esc(m.Label+" "+m.At.UTC().Format(tlayout)+" UTC"))
	}
	ew.write("</svg>\n")
}

// panel is one rule's series over the points.
type panel struct {
	name, expr string
	// values, baselines and thresholds are NaN where the rule had none.
	values, baselines, thresholds []float64
	outcomes                      []rules.Outcome
	noData                        []bool
	critical                      bool
	hasValue, hasLimit, hasBase   bool
	// constant is the reason of a rule with the same outcome and reason
	// at every point, such as one whose query cannot be replayed.
	constant string
	// test is the latest comparison's figures, for the label.
	test *analysis.ComparisonResult
}

// height is the panel's plot height: a rule without values only needs a
// strip for its outcomes.
func (p *panel) height() int {
	if p.hasValue {
		return panelHeight
	}
	return stripHeight
}

func nan(n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = math.NaN()
	}
	return v
}

// panels gathers each rule's series.
func (l *layout) panels() []*panel {
	panels := make([]*panel, len(l.names))
	byName := make(map[string]*panel, len(l.names))
	for i, name := range l.names {
		p := &panel{name: name, values: nan(l.n), baselines: nan(l.n), thresholds: nan(l.n),
			outcomes: make([]rules.Outcome, l.n), noData: make([]bool, l.n)}
		panels[i], byName[name] = p, p
	}
	reasons := map[string]string{}
	for i, pt := range l.c.Points {
		for _, r := range pt.Rules {
			p := byName[r.Name]
			if p == nil {
				continue
			}
			p.outcomes[i], p.noData[i] = r.Verdict, r.NoData
			p.critical = p.critical || r.Critical
			if r.Expr != "" {
				p.expr = r.Expr
			}
			if test := r.Comparison; test != nil && finite(float64(test.CanaryMean)) {
				p.values[i], p.hasValue = float64(test.CanaryMean), true
				if finite(float64(test.BaselineMean)) {
					p.baselines[i], p.hasBase = float64(test.BaselineMean), true
				}
				p.test = test
			} else if r.Value != nil && finite(float64(*r.Value)) {
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
		if why, ok := reasons[p.name]; ok && why != "\x00" && p.outcomes[0] != rules.OutcomePass {
			p.constant = why
		}
	}
	return panels
}

// testLabel sums a comparison up: the p-value and the interval of the
// shift, canary minus baseline.
func testLabel(t *analysis.ComparisonResult) string {
	return fmt.Sprintf("p=%s, shift %s [%s, %s] at %s%%, canary/baseline %s", analysis.FormatValue(float64(t.PValue)),
		analysis.FormatValue(float64(t.Estimate)), analysis.FormatValue(float64(t.CILow)), analysis.FormatValue(float64(t.CIHigh)),
		analysis.FormatValue(float64(t.Confidence)*100), analysis.FormatValue(float64(t.Ratio)))
}

// panel draws one rule: its name and expression, its value against its
// threshold, and the points it did not pass shaded.
func (l *layout) panel(ew *errWriter, p *panel, y0 int, ticks []time.Time) {
	labelY := y0 + panelLabel - 5
	plotTop := y0 + panelLabel
	h := p.height()
	ew.printf(`<g class="panel" data-rule="%s">`+"\n", esc(p.name))
	ew.printf(`<text x="%d" y="%d"><tspan class="c-ink" font-weight="600" font-size="12" fill="%s">%s</tspan>`,
		marginLeft, labelY, colorInk, esc(p.name))
	if p.critical {
		ew.printf(` <tspan class="critical" dx="4" font-weight="600" fill="%s">critical</tspan>`, colorFail)
	}
	note := p.expr
	if p.test != nil {
		note = testLabel(p.test)
	}
	if note != "" {
		// A space, not only an offset, so that the text reads "name expr"
		// when copied or read aloud.
		ew.printf(` <tspan class="c-muted" dx="4" fill="%s">%s</tspan>`, colorMuted, esc(truncate(note, 110)))
	}
	ew.write("</text>\n")
	ew.printf(`<rect class="c-plot" x="%d" y="%d" width="%d" height="%d" fill="%s" stroke="%s"/>`+"\n",
		marginLeft, plotTop, plotWidth, h, colorPlot, colorFrame)

	// Shade the runs of points the rule did not pass.
	for i := 0; i < l.n; {
		j := i
		for j+1 < l.n && p.outcomes[j+1] == p.outcomes[i] && p.noData[j+1] == p.noData[i] {
			j++
		}
		tint, class := "", ""
		switch {
		case p.noData[i]:
			// Missing data, whatever outcome the rule's noData gave it,
			// is drawn apart from a failure the data showed.
			tint, class = colorNoDataTint, "c-nodata-tint"
		case p.outcomes[i] == rules.OutcomeFail:
			tint, class = colorFailTint, "c-fail-tint"
		case p.outcomes[i] == rules.OutcomeInconclusive, p.outcomes[i] == rules.OutcomeError:
			tint, class = colorUnsureTint, "c-unsure-tint"
		}
		if tint != "" {
			ew.printf(`<rect class="%s" x="%s" y="%d" width="%s" height="%d" fill="%s"/>`+"\n",
				class, num(marginLeft+float64(i)*l.slot), plotTop+1, num(float64(j-i+1)*l.slot), h-2, tint)
		}
		i = j + 1
	}
	for _, tk := range ticks {
		x := num(l.xAt(tk))
		ew.printf(`<line class="c-grid" x1="%s" y1="%d" x2="%s" y2="%d" stroke="%s"/>`+"\n", x, plotTop+1, x, plotTop+h-1, colorGrid)
	}
	l.marks(ew, p, plotTop+h-6)

	if !p.hasValue {
		note := "no value to plot: shaded where it did not pass"
		if p.constant != "" {
			note = p.constant + ", at every point"
		}
		ew.printf(`<text class="c-muted" x="%d" y="%d" fill="%s">%s</text>`+"\n", marginLeft+8, plotTop+h/2+4, colorMuted, esc(truncate(note, 130)))
		ew.write("</g>\n")
		return
	}
	lo, hi, yticks := valueScale(p.values, p.thresholds, p.baselines)
	y := func(v float64) float64 {
		return float64(plotTop) + 4 + (hi-v)/(hi-lo)*float64(h-8)
	}
	for _, v := range yticks {
		ew.printf(`<line class="c-grid" x1="%d" y1="%s" x2="%d" y2="%s" stroke="%s"/>`+"\n", marginLeft, num(y(v)), marginLeft+plotWidth, num(y(v)), colorGrid)
		ew.printf(`<text class="c-muted" x="%d" y="%s" dy="0.32em" text-anchor="end" fill="%s">%s</text>`+"\n",
			marginLeft-6, num(y(v)), colorMuted, esc(analysis.FormatValue(v)))
	}
	if p.hasLimit {
		ew.printf(`<path class="c-thr threshold" d="%s" fill="none" stroke="%s" stroke-width="1.2" stroke-dasharray="5 4"/>`+"\n",
			l.path(p.thresholds, y), colorThreshold)
		for i := l.n - 1; i >= 0; i-- {
			if finite(p.thresholds[i]) {
				ew.printf(`<text class="c-thr-text" x="%d" y="%s" text-anchor="end" fill="%s">%s</text>`+"\n",
					marginLeft+plotWidth-4, num(y(p.thresholds[i])-4), colorThreshold, esc("threshold "+analysis.FormatValue(p.thresholds[i])))
				break
			}
		}
	}
	if p.hasBase {
		ew.printf(`<path class="baseline" d="%s" fill="none" stroke="%s" stroke-width="1.4" stroke-linejoin="round" stroke-linecap="round"/>`+"\n",
			l.path(p.baselines, y), colorBaseline)
		l.dots(ew, "pt-baseline", p.name+" baseline", p.baselines, y, colorBaseline)
	}
	ew.printf(`<path class="value" d="%s" fill="none" stroke="%s" stroke-width="1.6" stroke-linejoin="round" stroke-linecap="round"/>`+"\n",
		l.path(p.values, y), colorValue)
	label := p.name
	if p.hasBase {
		label += " canary"
	}
	l.dots(ew, "pt", label, p.values, y, colorValue)
	ew.write("</g>\n")
}

// dots draws a dot per value, with its time and value as a tooltip and
// in data attributes, when there are few enough.
func (l *layout) dots(ew *errWriter, class, label string, values []float64, y func(float64) float64, color string) {
	if len(l.c.Points) > maxDots {
		return
	}
	for i, v := range values {
		if !finite(v) {
			continue
		}
		at := l.c.Points[i].At.UTC()
		ew.printf(`<circle class="%s" cx="%s" cy="%s" r="2.4" fill="%s" data-at="%s" data-value="%s"><title>%s</title></circle>`+"\n",
			class, num(l.x(i)), num(y(v)), color, at.Format(time.RFC3339), strconv.FormatFloat(v, 'g', -1, 64),
			esc(label+" "+analysis.FormatValue(v)+" at "+at.Format("2006-01-02 15:04:05")+" UTC"))
	}
}

// marks puts a mark under each point where the rule had no data (a hollow
// ring) or its query failed (a cross), so that a gap in the line says why.
func (l *layout) marks(ew *errWriter, p *panel, y int) {
	for i := range l.n {
		x := l.x(i)
		switch {
		case p.noData[i]:
			ew.printf(`<circle class="mark-nodata" cx="%s" cy="%d" r="2.6" fill="none" stroke="%s" stroke-width="1.2" data-at="%s"><title>%s</title></circle>`+"\n",
				num(x), y, colorInconclusive, l.c.Points[i].At.UTC().Format(time.RFC3339),
				esc(p.name+": no data ("+string(p.outcomes[i])+") at "+l.c.Points[i].At.UTC().Format("2006-01-02 15:04:05")+" UTC"))
		case p.outcomes[i] == rules.OutcomeError:
			ew.printf(`<path class="mark-error" d="M%s %dl5 5m0-5l-5 5" stroke="%s" stroke-width="1.4"><title>query error</title></path>`+"\n",
				num(x-2.5), y-2, colorFail)
		}
	}
}

// path draws values (NaN for none) as a line broken where there is no
// value. With more points than pixels, the points of one pixel column
// become one vertical stroke from their least to their greatest value, so
// spikes stay visible.
func (l *layout) path(values []float64, y func(float64) float64) string {
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
	if float64(l.n) <= 2*plotWidth {
		for i, v := range values {
			if !finite(v) {
				end()
				continue
			}
			draw(l.x(i), v)
		}
		end()
		return b.String()
	}
	for i := 0; i < l.n; {
		col := math.Floor(l.x(i))
		lo, hi, gap := math.Inf(1), math.Inf(-1), false
		j := i
		for ; j < l.n && math.Floor(l.x(j)) == col; j++ {
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

// band draws each run of points with the same verdict as a strip of
// colour, and the time axis.
func (l *layout) band(ew *errWriter, y0 int, ticks []time.Time, tlayout string) {
	ew.printf(`<text class="c-ink" x="%d" y="%d" font-weight="600" font-size="12" fill="%s">verdict</text>`+"\n", marginLeft, y0-5, colorInk)
	pts := l.c.Points
	for i := 0; i < len(pts); {
		j := i
		for j+1 < len(pts) && pts[j+1].Verdict == pts[i].Verdict {
			j++
		}
		ew.printf(`<rect class="verdict %s" x="%s" y="%d" width="%s" height="%d" fill="%s"><title>%s</title></rect>`+"\n",
			esc(string(pts[i].Verdict)), num(marginLeft+float64(i)*l.slot), y0, num(float64(j-i+1)*l.slot), bandHeight, VerdictColor(pts[i].Verdict),
			esc(cmp.Or(string(pts[i].Verdict), "no analysis")+" "+stamp(pts[i].At)+" to "+stamp(pts[j].At)))
		i = j + 1
	}
	ew.printf(`<rect class="c-frame" x="%d" y="%d" width="%d" height="%d" fill="none" stroke="%s"/>`+"\n",
		marginLeft, y0, plotWidth, bandHeight, colorFrame)
	axisY := y0 + bandHeight
	for _, tk := range ticks {
		x := num(l.xAt(tk))
		ew.printf(`<line class="c-muted-line" x1="%s" y1="%d" x2="%s" y2="%d" stroke="%s"/>`+"\n", x, axisY, x, axisY+4, colorMuted)
		ew.printf(`<text class="c-muted" x="%s" y="%d" text-anchor="middle" fill="%s">%s</text>`+"\n", x, axisY+16, colorMuted, esc(tk.UTC().Format(tlayout)))
	}
}

// legend explains the marks.
func (l *layout) legend(ew *errWriter, y int, panels []*panel) {
	x := marginLeft
	ew.printf(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="1.6"/>`, x, y-4, x+18, y-4, colorValue)
	ew.printf(`<text class="c-muted" x="%d" y="%d" fill="%s">value</text>`+"\n", x+23, y, colorMuted)
	x += 70
	var limit, base, noData, failed bool
	for _, p := range panels {
		limit = limit || p.hasLimit
	}
	if limit {
		ew.printf(`<line class="c-thr" x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="1.2" stroke-dasharray="5 4"/>`, x, y-4, x+18, y-4, colorThreshold)
		ew.printf(`<text class="c-muted" x="%d" y="%d" fill="%s">threshold</text>`+"\n", x+23, y, colorMuted)
		x += 90
	}
	for _, p := range panels {
		base = base || p.hasBase
		for i := range l.n {
			noData = noData || p.noData[i]
			failed = failed || p.outcomes[i] == rules.OutcomeError
		}
	}
	if base {
		ew.printf(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="1.4"/>`, x, y-4, x+18, y-4, colorBaseline)
		ew.printf(`<text class="c-muted" x="%d" y="%d" fill="%s">baseline</text>`+"\n", x+23, y, colorMuted)
		x += 84
	}
	for _, v := range []analysis.Verdict{analysis.VerdictPass, analysis.VerdictFail, analysis.VerdictInconclusive} {
		ew.printf(`<rect x="%d" y="%d" width="10" height="10" rx="2" fill="%s"/>`, x, y-9, VerdictColor(v))
		ew.printf(`<text class="c-muted" x="%d" y="%d" fill="%s">%s</text>`+"\n", x+15, y, colorMuted, v)
		x += 40 + 6*len(v)
	}
	if noData {
		ew.printf(`<circle cx="%d" cy="%d" r="3" fill="none" stroke="%s" stroke-width="1.2"/>`, x+4, y-4, colorInconclusive)
		ew.printf(`<text class="c-muted" x="%d" y="%d" fill="%s">no data</text>`+"\n", x+12, y, colorMuted)
		x += 62
	}
	if failed {
		ew.printf(`<path d="M%d %dl6 6m0-6l-6 6" stroke="%s" stroke-width="1.4"/>`, x+1, y-7, colorFail)
		ew.printf(`<text class="c-muted" x="%d" y="%d" fill="%s">query error</text>`+"\n", x+12, y, colorMuted)
	}
	ew.printf(`<text class="c-muted" x="%d" y="%d" text-anchor="end" fill="%s">times in UTC</text>`+"\n", marginLeft+plotWidth, y, colorMuted)
}

// VerdictColor is the colour of a verdict, for pages drawn around the
// chart.
func VerdictColor(v analysis.Verdict) string {
	switch v {
	case analysis.VerdictFail:
		return colorFail
	case analysis.VerdictInconclusive:
		return colorInconclusive
	case "":
		return colorNone
	}
	return colorPass
}

// valueScale picks a panel's vertical range: round numbers around the
// values, with two to four labelled ticks.
func valueScale(series ...[]float64) (lo, hi float64, ticks []float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, vs := range series {
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

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// truncate shortens s to n runes with an ellipsis.
func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// errWriter keeps the first write error and skips writes after it.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

func (e *errWriter) write(s string) {
	if e.err == nil {
		_, e.err = io.WriteString(e.w, s)
	}
}
