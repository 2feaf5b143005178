package backtest

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/rules"
)

// WriteText writes the timeline for a terminal: the verdict spans, the
// first step that would have failed and why, a line per rule, the rules
// that flapped, the spans without data and the notes.
func (t *Timeline) WriteText(w io.Writer) {
	t.writeText(&errWriter{w: w})
}

func (t *Timeline) writeText(ew *errWriter) {
	ew.printf("backtest of policy %s from %s to %s, every %s: %s, %s\n",
		t.Policy, stamp(t.From), stamp(t.To), shortDuration(t.Step),
		plural(len(t.Points), "step"), plural(t.Queries, "query"))
	if t.DryRun {
		ew.printf("dry run: each step as the policy would have decided with its dry-run parts live\n")
	}

	ew.printf("\n")
	rows := [][]string{{"VERDICT", "FROM", "TO", "STEPS"}}
	for _, s := range t.Spans {
		rows = append(rows, []string{string(s.Verdict), stamp(s.From), stamp(s.To), strconv.Itoa(s.Steps)})
	}
	ew.table(rows)

	ew.printf("\n")
	if f := t.FirstDataFailure; f != nil {
		ew.printf("first failure with data at %s (%s after the start, step %d of %d): decision %s\n",
			stamp(f.At), shortDuration(f.At.Sub(t.From)), t.indexAt(f.At)+1, len(t.Points), f.Decision)
		for _, r := range f.Rules {
			if !failedOnData(r) {
				continue
			}
			critical := ""
			if r.Critical {
				critical = " (critical)"
			}
			ew.printf("  %s%s: %s\n", r.Name, critical, r.Reason)
		}
	} else if t.FirstFailure != nil {
		ew.printf("no step failed on data it had\n")
	} else {
		ew.printf("no step failed\n")
	}
	if nd := t.NoDataFailures(); len(nd) > 0 {
		ew.printf("failures from missing data (noData: fail):\n")
		for _, s := range nd {
			ew.printf("  %s: %s\n", s.Rule, t.noDataSpan(s))
		}
	}

	ew.printf("\n")
	ew.table(t.ruleRows())

	if len(t.Flapping) > 0 {
		ew.printf("\nflapping (went from pass to fail or back more than once):\n")
		for _, f := range t.Flapping {
			ew.printf("  %s: %d changes\n", f.Rule, f.Changes)
		}
	}
	if len(t.NoData) > 0 {
		ew.printf("\nno data:\n")
		for _, s := range t.NoData {
			ew.printf("  %s: %s\n", s.Rule, t.noDataSpan(s))
		}
	}
	if len(t.Notes) > 0 {
		ew.printf("\nnotes:\n")
		for _, n := range t.Notes {
			ew.printf("  %s\n", n)
		}
	}
}

// ruleRows counts each rule's outcomes and finds its first failure.
func (t *Timeline) ruleRows() [][]string {
	type tally struct {
		counts map[rules.Outcome]int
		first  time.Time
	}
	names := t.RuleNames()
	tallies := make(map[string]*tally, len(names))
	for _, n := range names {
		tallies[n] = &tally{counts: map[rules.Outcome]int{}}
	}
	for _, p := range t.Points {
		for _, r := range p.Rules {
			tl := tallies[r.Name]
			tl.counts[r.Verdict]++
			if r.Verdict == rules.OutcomeFail && tl.first.IsZero() {
				tl.first = p.At
			}
		}
	}
	critical := map[string]bool{}
	for _, p := range t.Points {
		for _, r := range p.Rules {
			critical[r.Name] = critical[r.Name] || r.Critical
		}
	}
	rows := [][]string{{"RULE", "PASS", "FAIL", "INCONCLUSIVE", "ERROR", "FIRST FAILURE"}}
	for _, n := range names {
		tl := tallies[n]
		label := n
		if critical[n] {
			label += " (critical)"
		}
		first := "-"
		if !tl.first.IsZero() {
			first = stamp(tl.first)
		}
		rows = append(rows, []string{label,
			strconv.Itoa(tl.counts[rules.OutcomePass]), strconv.Itoa(tl.counts[rules.OutcomeFail]),
			strconv.Itoa(tl.counts[rules.OutcomeInconclusive]), strconv.Itoa(tl.counts[rules.OutcomeError]), first})
	}
	return rows
}

// errWriter keeps the first write error, so rendering code need not check
// each write.
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

// table writes left-aligned columns two spaces apart.
func (e *errWriter) table(rows [][]string) {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, row := range rows {
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	tw.Flush()
	e.write(b.String())
}

// stamp formats an evaluation time.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// shortDuration writes 1h30m rather than 1h30m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	if strings.HasSuffix(what, "y") {
		return strconv.Itoa(n) + " " + what[:len(what)-1] + "ies"
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// verdictWord is how the chart and the HTML page say a verdict.
func verdictWord(v analysis.Verdict) string {
	switch v {
	case analysis.VerdictFail:
		return "would have failed"
	case analysis.VerdictInconclusive:
		return "inconclusive"
	}
	return "no failure"
}

// noDataSpan says when a rule had no data: the span's first and last
// steps, called "no data yet from the start" for a span from the window's
// first step (its query had no data yet: a canary before its first
// requests, not a failing source).
func (t *Timeline) noDataSpan(s Span) string {
	if t.Leading(s) {
		return "no data yet from the start, " + stamp(s.From) + " to " + stamp(s.To) + " (" + plural(s.Steps, "step") + ")"
	}
	return stamp(s.From) + " to " + stamp(s.To) + " (" + plural(s.Steps, "step") + ")"
}
