package main

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/aurum/canary/rollout"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs"
)

// Dynamic completion: `canary completion SHELL` scripts call the binary
// back (cobra's hidden __complete command) with the words typed so far, so
// the flags already on the line, --policies and --server, say where the
// names come from. A completion never prints an error: with nothing to
// offer, the shell offers nothing.

// completionTimeout bounds one call to canary serve while the user waits
// at a prompt.
const completionTimeout = 3 * time.Second

// noFiles is a completion that offers nothing, not even file names.
func noFiles(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// completeList completes a comma-separated list of values, such as
// --scenario deploy,errors: the part after the last comma.
func completeList(values []string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		done, _ := cutLast(toComplete, ",")
		var out []cobra.Completion
		for _, v := range values {
			if done != "" && slices.Contains(strings.Split(done, ","), v) {
				continue
			}
			if done != "" {
				v = done + "," + v
			}
			out = append(out, v)
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	}
}

// cutLast splits s around the last sep: "a,b,c" is "a,b" and "c".
func cutLast(s, sep string) (before, after string) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):]
	}
	return "", s
}

// localPolicies loads the policies at paths (the default directory when
// none), for completion: nil when they do not load.
func localPolicies(paths []string) []*rules.Policy {
	if len(paths) == 0 {
		paths = []string{defaultPolicies}
	}
	// cobra parses the flags twice while completing: a repeatable flag
	// holds each value twice.
	var uniq []string
	for _, p := range paths {
		if !slices.Contains(uniq, p) {
			uniq = append(uniq, p)
		}
	}
	set, err := rules.Load(uniq...)
	if err != nil || set == nil {
		return nil
	}
	return set.Policies
}

// policyInfo is what completion needs of a policy: its name and params.
type policyInfo struct {
	Name   string
	Params []string
}

// policyInfos are the policies' names and params.
func policyInfos(pols []*rules.Policy) []policyInfo {
	out := make([]policyInfo, 0, len(pols))
	for _, p := range pols {
		info := policyInfo{Name: p.Name}
		for _, x := range p.Params {
			info.Params = append(info.Params, x.Name)
		}
		out = append(out, info)
	}
	return out
}

// completePolicies completes --policy with the names of the policies
// --policies holds, and --param with the chosen policy's params, as
// name=.
func (c *cli) completePolicies(cmd *cobra.Command, paths *multiFlag, name *string) {
	c.completePolicyFlags(cmd, name, func() []policyInfo { return policyInfos(localPolicies(*paths)) })
	_ = cmd.MarkFlagDirname("policies")
}

// completePolicyFlags completes --policy (and --shadow, when cmd has it)
// with the names policies gives, and --param with the chosen one's params.
func (c *cli) completePolicyFlags(cmd *cobra.Command, name *string, policies func() []policyInfo) {
	names := func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		var out []cobra.Completion
		for _, p := range policies() {
			out = append(out, p.Name)
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
	_ = cmd.RegisterFlagCompletionFunc("policy", names)
	if cmd.Flags().Lookup("shadow") != nil {
		_ = cmd.RegisterFlagCompletionFunc("shadow", names)
	}
	_ = cmd.RegisterFlagCompletionFunc("param", func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if strings.Contains(toComplete, "=") {
			return nil, cobra.ShellCompDirectiveNoFileComp // a value: anything goes
		}
		var out []cobra.Completion
		for _, p := range policies() {
			if p.Name != *name {
				continue
			}
			for _, param := range p.Params {
				out = append(out, param+"=")
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	})
}

// serverPolicies are the policies canary serve at api's --server has
// loaded.
func (c *cli) serverPolicies(api apiFlags) []policyInfo {
	var resp struct {
		Policies []policyInfo `json:"policies"`
	}
	if !completionCall(api, "/v1/policies", &resp) {
		return nil
	}
	return resp.Policies
}

// completeRollouts completes a rollout argument with the rollouts canary
// serve at --server runs, as NAMESPACE/NAME; a rollout of the namespace
// -n names (or the kubeconfig's) is offered by its name alone too.
func completeRollouts(api apiFlags, namespace func() string) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var list struct{ Rollouts []rollout.Status }
		if !completionCall(api, "/v1/rollouts", &list) {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ns := resolveNamespace(namespace())
		var out []cobra.Completion
		for _, st := range list.Rollouts {
			if ns != "" && st.Namespace == ns {
				out = append(out, cobra.CompletionWithDesc(st.Name, string(st.Status)))
			}
			out = append(out, cobra.CompletionWithDesc(st.Namespace+"/"+st.Name, string(st.Status)))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeRuns completes a run argument with the canaries canary serve at
// --server keeps runs of, as NAMESPACE/NAME.
func completeRuns(api apiFlags) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		after := ""
		for range 100 { // pages; a bound, in case a server loops
			var page struct {
				Runs []*runs.Run
				Next string
			}
			if !completionCall(api, "/v1/runs?after="+url.QueryEscape(after), &page) {
				break
			}
			for _, r := range page.Runs {
				if r.Current {
					out = append(out, cobra.CompletionWithDesc(r.Namespace+"/"+r.Name, string(r.LastVerdict)))
				}
			}
			if page.Next == "" {
				break
			}
			after = page.Next
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completionCall GETs path from canary serve into out; false when the
// server cannot answer, which completion takes as nothing to offer.
func completionCall(api apiFlags, path string, out any) bool {
	rc, err := api.client()
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
	defer cancel()
	return rc.do(ctx, http.MethodGet, path, nil, out) == nil
}
