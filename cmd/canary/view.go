package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/rollout"
	"github.com/aurum/canary/rollout/deploy"
	"github.com/aurum/canary/rollout/notify"
)

// weightBar draws a weight as a 20-cell bar.
func weightBar(weight int) string {
	full := max(0, min(20, (weight+2)/5))
	return "[" + strings.Repeat("█", full) + strings.Repeat("░", 20-full) + fmt.Sprintf("] %3d%%", weight)
}

// printStatus renders a rollout's status: the headline, each rule of the
// last analysis, and the reason.
func (c *cli) printStatus(w io.Writer, st rollout.Status) {
	fmt.Fprintf(w, "%s %s   %s   step %d/%d   %s   %s", st.Name, st.Version, c.paintPhase(st.Status), st.Step, st.Steps,
		weightBar(st.CurrentWeight), st.HealthStatus)
	if st.ErrorRatePercent != nil {
		fmt.Fprintf(w, "   errors %.2f%%", *st.ErrorRatePercent)
	}
	if st.AvgLatencyMs != nil {
		fmt.Fprintf(w, "   latency %s ms", analysis.FormatValue(*st.AvgLatencyMs))
	}
	fmt.Fprintln(w)
	if d := st.Deployments; d != nil {
		for _, x := range []struct {
			role string
			s    deploy.Status
		}{{"stable", d.Stable}, {"canary", d.Canary}} {
			if x.s.Missing {
				fmt.Fprintf(w, "  %-6s %s: not created\n", x.role, x.s.Name)
				continue
			}
			fmt.Fprintf(w, "  %-6s %s: %d desired, %d updated, %d available  %s\n", x.role, x.s.Name, x.s.Desired, x.s.Updated, x.s.Available, images(x.s.Images))
		}
	}
	if h := st.Hold; h != nil {
		what := "held"
		if h.Cap != nil {
			what = fmt.Sprintf("capped at %d%%", *h.Cap)
		}
		fmt.Fprintf(w, "  %s by %s since %s (rolls back at %s unless they clear)\n", what, strings.Join(h.Rules, ", "),
			h.Since.Local().Format("15:04:05"), h.Until().Local().Format("15:04:05"))
	}
	if e := st.LastEvaluation; e != nil {
		c.printRules(w, e.Rules)
		fmt.Fprintf(w, "  last analysis %s: %s\n", c.paint(string(e.Verdict)), e.Reason)
	}
	for _, d := range st.DryRuns {
		kind := "dry-run rules of " + d.Policy
		if d.Shadow {
			kind = "shadow " + d.Policy
		}
		fmt.Fprintf(w, "  %s: would have passed %d, failed %d, been inconclusive %d; changed %d", kind, d.Pass, d.Fail, d.Inconclusive, d.Changed)
		if d.Last != nil {
			fmt.Fprintf(w, "; last %s: %s", c.paint(string(d.Last.Verdict)), d.Last.Reason)
		}
		fmt.Fprintln(w)
	}
	if st.Reason != "" {
		fmt.Fprintf(w, "  %s\n", st.Reason)
	}
}

// images writes a Deployment's images: container=image, sorted.
func images(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, " ")
}

func (c *cli) printRules(w io.Writer, rs []analysis.RuleResult) {
	width := 0
	for _, r := range rs {
		width = max(width, len(r.Name))
	}
	for _, r := range rs {
		fmt.Fprintf(w, "    %s %-*s  %s\n", c.paint(string(r.Verdict)), width, r.Name, r.Reason)
	}
}

func (c *cli) paintPhase(p rollout.Phase) string {
	switch p {
	case rollout.PhaseCompleted, rollout.PhasePromoting:
		return c.color2(ansiGreen, string(p))
	case rollout.PhaseRolledBack, rollout.PhaseRollingBack, rollout.PhaseFailed:
		return c.color2(ansiRed+ansiBold, string(p))
	case rollout.PhasePaused:
		return c.color2(ansiYellow, string(p))
	}
	return string(p)
}

func (c *cli) color2(code, s string) string {
	if !c.color {
		return s
	}
	return code + s + ansiReset
}

// eventLine renders one rollout event as a line of the live view.
func (c *cli) eventLine(name string, e rollout.Event) string {
	at := e.At.Local().Format("15:04:05")
	switch e.Type {
	case "transition":
		if e.From == e.To {
			return fmt.Sprintf("%s  %-12s step %d  %s  %s", at, name, e.Step+1, weightBar(e.Weight), e.Reason)
		}
		to := c.paintPhase(e.To)
		if e.From == "" {
			return fmt.Sprintf("%s  %-12s %s  %s", at, name, to, e.Reason)
		}
		return fmt.Sprintf("%s  %-12s %s → %s  %s", at, name, e.From, to, e.Reason)
	case "traffic":
		line := fmt.Sprintf("%s  %-12s traffic  %s", at, name, weightBar(e.Weight))
		if r := e.Replicas; r != nil {
			line += fmt.Sprintf("  stable %d/%d available, canary %d/%d", r.Stable.Available, r.Stable.Desired, r.Canary.Available, r.Canary.Desired)
		}
		return line
	case "evaluation":
		return fmt.Sprintf("%s  %-12s analysis %s  %s", at, name, c.paint(string(e.Verdict)), e.Reason)
	}
	return fmt.Sprintf("%s  %-12s %s  %s", at, name, e.Type, e.Reason)
}

// notificationLine renders a notification as the demo prints it.
func (c *cli) notificationLine(n notify.Notification) string {
	line := n.Summary
	if n.Reason != "" {
		line += ": " + n.Reason
	}
	sev := string(n.Severity)
	switch {
	case n.Resolved:
		sev = c.color2(ansiGreen, "resolved")
	case n.Severity == notify.SeverityCritical:
		sev = c.color2(ansiRed, sev)
	case n.Severity == notify.SeverityWarning:
		sev = c.color2(ansiYellow, sev)
	}
	return fmt.Sprintf("%s  %-12s %s %s  %s", n.At.Local().Format("15:04:05"), "notify", sev, n.Kind, line)
}

// summary renders how a rollout ended.
func (c *cli) summary(w io.Writer, st rollout.Status, started time.Time) {
	fmt.Fprintf(w, "\n%s %s: %s after %s at %d%% canary traffic\n", st.Name, st.Version, c.paintPhase(st.Status),
		time.Since(started).Round(time.Second), st.CurrentWeight)
	if st.Reason != "" {
		fmt.Fprintf(w, "  %s\n", st.Reason)
	}
}
