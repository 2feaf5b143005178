package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/aurum/canary/runs"
)

// runRuns lists and steers the runs canary serve keeps: the latches that
// override analyses, and their history.
func runRuns(ctx context.Context, c *cli, args []string) int {
	actions := []string{"list", "status", runs.ActionRollback, runs.ActionPromote, runs.ActionPause, runs.ActionResume}
	if len(args) == 0 || !slices.Contains(actions, args[0]) {
		fmt.Fprintf(c.stderr, "Usage: canary runs %s [NAMESPACE/NAME] [flags]   (canary runs status -h for the flags)\n", strings.Join(actions, "|"))
		return exitError
	}
	action := args[0]
	fs := c.newFlags("runs")
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "Usage: canary runs list\n"+
			"       canary runs status NAMESPACE/NAME [--revision R]\n"+
			"       canary runs rollback|promote|pause|resume NAMESPACE/NAME [--revision R] --reason \"…\"\n\nFlags:\n")
		fs.PrintDefaults()
	}
	api := addAPIFlags(fs)
	revision := fs.String("revision", "", "the run's revision (default: the current one)")
	reason := fs.String("reason", "", "why, for a manual action (required; recorded with who acted)")
	rest, err := parseArgs(fs, args[1:])
	if err != nil {
		return flagExit(err)
	}
	rc, err := api.client()
	if err != nil {
		fmt.Fprintf(c.stderr, "canary runs: %v\n", err)
		return exitError
	}
	if action == "list" {
		return c.listRuns(ctx, rc)
	}
	if len(rest) != 1 || !strings.Contains(rest[0], "/") {
		return c.usageError(fs, "%s needs the canary as NAMESPACE/NAME", action)
	}
	path := "/v1/runs/" + rest[0]
	q := url.Values{}
	if *revision != "" {
		q.Set("revision", *revision)
	}
	var out struct {
		Run       *runs.Run
		History   []runs.Evaluation
		Revisions []*runs.Run
	}
	if action == "status" {
		if err := rc.do(ctx, http.MethodGet, path+"?"+q.Encode(), nil, &out); err != nil {
			fmt.Fprintf(c.stderr, "canary runs status: %v\n", err)
			return exitError
		}
		c.printRun(out.Run, out.Revisions, out.History)
		return exitOK
	}
	if strings.TrimSpace(*reason) == "" {
		return c.usageError(fs, "%s needs --reason: manual overrides are recorded with why and by whom", action)
	}
	body := map[string]string{"reason": *reason, "revision": *revision}
	if err := rc.do(ctx, http.MethodPost, path+"/"+action, body, &out); err != nil {
		fmt.Fprintf(c.stderr, "canary runs %s: %v\n", action, err)
		return exitError
	}
	c.printRun(out.Run, nil, nil)
	return exitOK
}

func (c *cli) listRuns(ctx context.Context, rc *apiClient) int {
	after := ""
	for {
		var page struct {
			Runs []*runs.Run
			Next string
		}
		if err := rc.do(ctx, http.MethodGet, "/v1/runs?after="+url.QueryEscape(after), nil, &page); err != nil {
			fmt.Fprintf(c.stderr, "canary runs list: %v\n", err)
			return exitError
		}
		for _, r := range page.Runs {
			current := " "
			if r.Current {
				current = "*"
			}
			fmt.Fprintf(c.stdout, "%s %-32s %-20s %-13s %s\n", current, r.Namespace+"/"+r.Name, r.Revision, string(r.LastVerdict), latchSummary(r))
		}
		if page.Next == "" {
			return exitOK
		}
		after = page.Next
	}
}

// latchSummary names a run's latches, rollback first.
func latchSummary(r *runs.Run) string {
	var parts []string
	for _, kind := range runs.LatchKinds {
		for _, l := range r.Latches {
			if l.Kind == kind {
				parts = append(parts, string(kind)+" by "+string(l.Source))
			}
		}
	}
	return strings.Join(parts, ", ")
}

func (c *cli) printRun(r *runs.Run, revisions []*runs.Run, history []runs.Evaluation) {
	if r == nil {
		return
	}
	fmt.Fprintf(c.stdout, "run %s   policy %s   analyses %d   last %s/%s\n", r.ID(), r.Policy, r.Evaluations, r.LastVerdict, r.LastDecision)
	if r.LastReason != "" {
		fmt.Fprintf(c.stdout, "  %s\n", r.LastReason)
	}
	for _, l := range r.Latches {
		by := ""
		if l.By != "" {
			by = " (" + l.By + ")"
		}
		fmt.Fprintf(c.stdout, "latch %s by %s%s at %s: %s\n", l.Kind, l.Source, by, l.At.Format("2006-01-02T15:04:05Z07:00"), l.Reason)
	}
	if len(r.Latches) > 0 {
		fmt.Fprintf(c.stdout, "  to lift: canary runs resume %s/%s --revision %s --reason \"…\"\n", r.Namespace, r.Name, r.Revision)
	}
	for _, o := range r.Overrides {
		fmt.Fprintf(c.stdout, "override %s by %s at %s: %s\n", o.Action, o.By, o.At.Format("2006-01-02T15:04:05Z07:00"), o.Reason)
	}
	for _, rev := range revisions {
		if rev.Revision == r.Revision {
			continue
		}
		fmt.Fprintf(c.stdout, "revision %s: %s %s\n", rev.Revision, rev.LastVerdict, latchSummary(rev))
	}
	for _, e := range history {
		fmt.Fprintf(c.stdout, "  #%d %s %s/%s  %s\n", e.Seq, e.At.Format("15:04:05"), e.Verdict, e.Decision, e.Reason)
	}
}
