package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/aurum/canary/runs"
)

// runsFlags are the flags of canary runs's commands.
type runsFlags struct {
	api      apiFlags
	revision string
	reason   string
	output   string
}

func (c *cli) newRunsCmd() *cobra.Command {
	f := &runsFlags{}
	group := c.newGroup("runs", "show runs and their latches; latch or lift one by hand",
		`Show the runs canary serve keeps, per canary and revision, with their latches
and history; latch or lift one by hand.

A run is named NAMESPACE/NAME. A manual action needs --reason: it is recorded
with why and by whom. The exit code is 0 when done, 1 when refused or failed.`,
		`  canary runs list
  canary runs status caiso/lmp-ingest
  canary runs resume caiso/lmp-ingest --revision 7f3c2a --reason "alert was a false positive"`)
	f.api = addAPIFlags(group.PersistentFlags())
	_ = group.RegisterFlagCompletionFunc("server", noFiles)

	list := &cobra.Command{
		Use:     "list",
		Short:   "list the canaries' runs: * marks a canary's current one",
		Example: "  canary runs list -o json",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return exit(c.listRuns(cmd, f)) },
	}
	addOutputFlag(list, &f.output)
	status := &cobra.Command{
		Use:               "status NAMESPACE/NAME [--revision R]",
		Short:             "print a run: its latches, overrides, other revisions and history",
		Example:           "  canary runs status caiso/lmp-ingest",
		Args:              exactlyOne("the canary as NAMESPACE/NAME"),
		ValidArgsFunction: completeRuns(f.api),
		RunE:              func(cmd *cobra.Command, args []string) error { return exit(c.runsAction(cmd, f, "status", args[0])) },
	}
	status.Flags().StringVar(&f.revision, "revision", "", "the run's revision (default: the current one)")
	addOutputFlag(status, &f.output)
	group.AddCommand(list, status)
	for _, a := range []struct{ action, short string }{
		{runs.ActionRollback, "latch a rollback: Flagger's rollback hook answers 200, gates refuse"},
		{runs.ActionPromote, "latch a promotion: gates pass whatever the analyses say"},
		{runs.ActionPause, "latch a pause: gates refuse until it is lifted"},
		{runs.ActionResume, "lift a run's latches"},
	} {
		action := a.action
		cmd := &cobra.Command{
			Use:               action + " NAMESPACE/NAME [--revision R] --reason \"…\"",
			Short:             a.short,
			Example:           "  canary runs " + action + " caiso/lmp-ingest --reason \"…\"",
			Args:              exactlyOne("the canary as NAMESPACE/NAME"),
			ValidArgsFunction: completeRuns(f.api),
			RunE:              func(cmd *cobra.Command, args []string) error { return exit(c.runsAction(cmd, f, action, args[0])) },
		}
		cmd.Flags().StringVar(&f.revision, "revision", "", "the run's revision (default: the current one)")
		cmd.Flags().StringVar(&f.reason, "reason", "", "why, for a manual action (required; recorded with who acted)")
		_ = cmd.RegisterFlagCompletionFunc("reason", noFiles)
		addOutputFlag(cmd, &f.output)
		group.AddCommand(cmd)
	}
	return group
}

// runResponse is canary serve's answer about a run.
type runResponse struct {
	Run       *runs.Run         `json:"run"`
	History   []runs.Evaluation `json:"history,omitempty"`
	Revisions []*runs.Run       `json:"revisions,omitempty"`
}

// runsAction prints a run (status) or latches or lifts one.
func (c *cli) runsAction(cmd *cobra.Command, f *runsFlags, action, arg string) int {
	if err := checkOutput(f.output); err != nil {
		return c.usageError(cmd, "%v", err)
	}
	if !strings.Contains(arg, "/") {
		return c.usageError(cmd, "%s needs the canary as NAMESPACE/NAME", action)
	}
	if action != "status" && strings.TrimSpace(f.reason) == "" {
		return c.usageError(cmd, "%s needs --reason: manual overrides are recorded with why and by whom", action)
	}
	rc, err := f.api.client()
	if err != nil {
		return c.errorf(cmd, "%v", err)
	}
	path := "/v1/runs/" + arg
	var out runResponse
	if action == "status" {
		q := url.Values{}
		if f.revision != "" {
			q.Set("revision", f.revision)
		}
		if err := rc.do(c.ctx, http.MethodGet, path+"?"+q.Encode(), nil, &out); err != nil {
			return c.errorf(cmd, "%v", err)
		}
		return c.render(cmd, f.output, out, func() { c.printRun(out.Run, out.Revisions, out.History) })
	}
	body := map[string]string{"reason": f.reason, "revision": f.revision}
	if err := rc.do(c.ctx, http.MethodPost, path+"/"+action, body, &out); err != nil {
		return c.errorf(cmd, "%v", err)
	}
	return c.render(cmd, f.output, out, func() { c.printRun(out.Run, nil, nil) })
}

// listRuns prints every run canary serve keeps, page by page; -o json
// and yaml print them all as one list.
func (c *cli) listRuns(cmd *cobra.Command, f *runsFlags) int {
	if err := checkOutput(f.output); err != nil {
		return c.usageError(cmd, "%v", err)
	}
	rc, err := f.api.client()
	if err != nil {
		return c.errorf(cmd, "%v", err)
	}
	all := struct {
		Runs []*runs.Run `json:"runs"`
	}{Runs: []*runs.Run{}}
	after := ""
	for {
		var page struct {
			Runs []*runs.Run
			Next string
		}
		if err := rc.do(c.ctx, http.MethodGet, "/v1/runs?after="+url.QueryEscape(after), nil, &page); err != nil {
			return c.errorf(cmd, "%v", err)
		}
		if f.output != outputTable {
			all.Runs = append(all.Runs, page.Runs...)
			if page.Next == "" {
				return c.render(cmd, f.output, all, nil)
			}
			after = page.Next
			continue
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
