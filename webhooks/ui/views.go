package ui

import (
	"cmp"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/analysis/chart"
	"github.com/aurum/canary/rollout"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs"
)

// Row is one line of the overview: a run, with the rollout that drives it
// when there is one, or a rollout whose run has no analysis yet.
type Row struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Revision  string `json:"revision"`
	// Current marks the canary's current revision.
	Current bool   `json:"current"`
	Policy  string `json:"policy,omitempty"`
	// State is what the overview filters on: a latch (rolled back,
	// paused, promoted), else the rollout's phase, else the last verdict.
	State    string            `json:"state"`
	Verdict  analysis.Verdict  `json:"verdict,omitempty"`
	Decision analysis.Decision `json:"decision,omitempty"`
	Reason   string            `json:"reason,omitempty"`
	// Weight is the canary's weight, when a rollout of ours moves it.
	Weight      *int         `json:"weight,omitempty"`
	Latches     []runs.Latch `json:"latches"`
	Evaluations uint64       `json:"evaluations"`
	StartedAt   time.Time    `json:"startedAt,omitzero"`
	UpdatedAt   time.Time    `json:"updatedAt,omitzero"`
	// Rollout is set when the orchestrator drives this canary version;
	// Group names the rollout group it is a member of.
	Rollout *RolloutRef `json:"rollout,omitempty"`
	Group   string      `json:"group,omitempty"`
	// Phase is Flagger's last reported phase.
	Phase string `json:"phase,omitempty"`
}

// RolloutRef is what a row shows of a rollout.
type RolloutRef struct {
	Phase  rollout.Phase `json:"phase"`
	Step   int           `json:"step"`
	Steps  int           `json:"steps"`
	Health string        `json:"health"`
}

// Overview joins the runs and the rollouts into rows, newest first.
func Overview(all []*runs.Run, rollouts []rollout.Status) []Row {
	byRun := make(map[string]*rollout.Status, len(rollouts))
	for i := range rollouts {
		st := &rollouts[i]
		byRun[st.Namespace+"/"+st.Name+"@"+st.Version] = st
	}
	rows := make([]Row, 0, len(all)+len(rollouts))
	seen := map[string]bool{}
	for _, r := range all {
		row := Row{Namespace: r.Namespace, Name: r.Name, Revision: r.Revision, Current: r.Current, Policy: r.Policy,
			Verdict: r.LastVerdict, Decision: r.LastDecision, Reason: r.LastReason, Latches: r.Latches,
			Evaluations: r.Evaluations, StartedAt: r.StartedAt, UpdatedAt: r.UpdatedAt, Phase: r.Phase}
		if row.Latches == nil {
			row.Latches = []runs.Latch{}
		}
		if st := byRun[r.ID()]; st != nil {
			seen[r.ID()] = true
			withRollout(&row, st)
		}
		row.State = state(r, row.Rollout)
		rows = append(rows, row)
	}
	for i := range rollouts {
		st := &rollouts[i]
		id := st.Namespace + "/" + st.Name + "@" + st.Version
		if seen[id] {
			continue
		}
		row := Row{Namespace: st.Namespace, Name: st.Name, Revision: st.Version, Current: true, Policy: st.Policy,
			Reason: st.Reason, Latches: []runs.Latch{}, UpdatedAt: st.UpdatedAt}
		withRollout(&row, st)
		row.State = string(st.Status)
		rows = append(rows, row)
	}
	slices.SortStableFunc(rows, func(a, b Row) int {
		return cmp.Or(b.UpdatedAt.Compare(a.UpdatedAt), strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name))
	})
	return rows
}

func withRollout(row *Row, st *rollout.Status) {
	w := st.CurrentWeight
	row.Weight, row.Group = &w, st.Group
	row.Rollout = &RolloutRef{Phase: st.Status, Step: st.Step, Steps: st.Steps, Health: st.HealthStatus}
	if st.UpdatedAt.After(row.UpdatedAt) {
		row.UpdatedAt = st.UpdatedAt
	}
	if row.Reason == "" {
		row.Reason = st.Reason
	}
}

// state names a run's state for the overview's filter.
func state(r *runs.Run, ro *RolloutRef) string {
	if l, ok := r.Latch(); ok {
		switch l.Kind {
		case runs.LatchRollback:
			return "rolled back"
		case runs.LatchPause:
			return "paused"
		case runs.LatchPromote:
			return "promoted"
		}
	}
	if ro != nil {
		return string(ro.Phase)
	}
	if r.LastVerdict != "" {
		return string(r.LastVerdict)
	}
	return "pending"
}

// RunChart draws a run's recorded analyses, oldest first: every rule's
// value against its threshold, with the expressions of the policy as
// loaded now (nil leaves them out).
func RunChart(title string, hist []runs.Evaluation, pol *rules.Policy) string {
	exprs := map[string]string{}
	var order []string
	if pol != nil {
		for _, r := range pol.Rules {
			exprs[r.Name] = r.Expr
			order = append(order, r.Name)
		}
		for _, c := range pol.Comparisons {
			order = append(order, c.Name)
		}
	}
	c := &chart.Chart{Title: title, Points: make([]chart.Point, len(hist))}
	seen := map[string]bool{}
	for i, ev := range hist {
		p := chart.Point{At: ev.At, Verdict: ev.Verdict, Rules: make([]chart.Rule, len(ev.Rules))}
		for j, r := range ev.Rules {
			p.Rules[j] = chart.Rule{Name: r.Name, Expr: exprs[r.Name], Verdict: rules.Outcome(r.Verdict), Value: r.Value,
				Threshold: r.Threshold, NoData: r.NoData, Reason: r.Reason, Comparison: r.Comparison}
			seen[r.Name] = true
		}
		c.Points[i] = p
	}
	// The policy's order, for the rules the analyses have; then any the
	// policy no longer has.
	for _, name := range order {
		if seen[name] {
			c.Rules = append(c.Rules, name)
			delete(seen, name)
		}
	}
	for _, ev := range hist {
		for _, r := range ev.Rules {
			if seen[r.Name] {
				c.Rules = append(c.Rules, r.Name)
				delete(seen, r.Name)
			}
		}
	}
	var b strings.Builder
	_ = c.WriteSVG(&b, false)
	return b.String()
}

// RolloutChart draws a rollout's canary weight over its events, with the
// verdicts of its analyses as the band.
func RolloutChart(st rollout.Status) string {
	c := &chart.Chart{Title: "weight of " + st.Namespace + "/" + st.Name + "@" + st.Version, Rules: []string{"weight"}}
	verdict := analysis.Verdict("")
	for _, e := range st.History {
		if e.Verdict != "" {
			verdict = e.Verdict
		}
		w := analysis.Float(e.Weight)
		c.Points = append(c.Points, chart.Point{At: e.At, Verdict: verdict,
			Rules: []chart.Rule{{Name: "weight", Expr: "canary weight, percent", Verdict: rules.OutcomePass, Value: &w}}})
	}
	var b strings.Builder
	_ = c.WriteSVG(&b, false)
	return b.String()
}

// PolicyView is a policy as loaded, for people: where it came from and
// what it checks.
type PolicyView struct {
	Name        string      `json:"name"`
	Description string      `json:"description,omitempty"`
	File        string      `json:"file"`
	Line        int         `json:"line"`
	Params      []ParamView `json:"params"`
	Queries     []QueryView `json:"queries"`
	Rules       []RuleView  `json:"rules"`
}

// ParamView is a declared param.
type ParamView struct {
	Name        string  `json:"name"`
	Default     *string `json:"default,omitempty"`
	Pattern     string  `json:"pattern,omitempty"`
	Description string  `json:"description,omitempty"`
}

// RuleView is a rule or a comparison as loaded.
type RuleView struct {
	Name     string `json:"name"`
	Expr     string `json:"expr"`
	Critical bool   `json:"critical,omitempty"`
	NoData   string `json:"noData,omitempty"`
	Line     int    `json:"line"`
}

// QueryView is a query: its template, or rendered with a run's params,
// with a link to run it in Prometheus's own UI.
type QueryView struct {
	Name   string            `json:"name"`
	Kind   string            `json:"kind"`
	Source string            `json:"source,omitempty"`
	Text   string            `json:"text"`
	Fields map[string]string `json:"fields,omitempty"`
	// Link opens a rendered PromQL query in Prometheus's graph page.
	Link string `json:"link,omitempty"`
	// Error says why the query could not be rendered.
	Error string `json:"error,omitempty"`
}

// Policy describes a policy as loaded.
func Policy(p *rules.Policy) PolicyView {
	v := PolicyView{Name: p.Name, Description: p.Description, File: p.File, Line: p.Line,
		Params: []ParamView{}, Queries: []QueryView{}, Rules: []RuleView{}}
	for _, par := range p.Params {
		pv := ParamView{Name: par.Name, Pattern: par.Pattern, Description: par.Description}
		if par.HasDefault {
			pv.Default = &par.Default
		}
		v.Params = append(v.Params, pv)
	}
	for _, q := range p.Queries {
		v.Queries = append(v.Queries, QueryView{Name: q.Name, Kind: q.Kind, Source: q.Source, Text: q.Text, Fields: q.FieldText})
	}
	for _, r := range p.Rules {
		v.Rules = append(v.Rules, RuleView{Name: r.Name, Expr: r.Expr, Critical: r.Critical, NoData: string(r.NoData), Line: r.Line})
	}
	for _, c := range p.Comparisons {
		v.Rules = append(v.Rules, RuleView{Name: c.Name, Expr: "compare " + c.Canary.Name + " with " + c.Baseline.Name + " (Mann-Whitney)",
			Critical: c.Critical, Line: c.Line})
	}
	return v
}

// PrometheusLink returns the base URL of a Prometheus source's own UI by
// the source's name ("" for the default), or "".
type PrometheusLink func(source string) string

// RenderQueries renders the policy's queries with a run's params, as its
// analyses sent them, each PromQL query with a link to Prometheus's graph
// page when link knows the source.
func RenderQueries(p *rules.Policy, params map[string]string, link PrometheusLink) []QueryView {
	out := []QueryView{}
	resolved, err := p.ResolveParams(params)
	queries := slices.Clone(p.Queries)
	for _, c := range p.Comparisons {
		queries = append(queries, c.Canary, c.Baseline)
	}
	for _, q := range queries {
		v := QueryView{Name: q.Name, Kind: q.Kind, Source: q.Source}
		if err != nil {
			v.Text, v.Error = q.Text, err.Error()
			out = append(out, v)
			continue
		}
		text, fields, rerr := q.Render(resolved)
		v.Text, v.Fields = text, fields
		if rerr != nil {
			v.Text, v.Error = q.Text, rerr.Error()
		}
		for k := range v.Fields {
			if strings.HasPrefix(k, "header.") {
				v.Fields[k] = "(redacted)" // headers may carry credentials
			}
		}
		if q.Kind == "prometheus" && rerr == nil && link != nil {
			if base := link(q.Source); base != "" {
				v.Link = strings.TrimSuffix(base, "/") + "/graph?" + url.Values{"g0.expr": {text}, "g0.tab": {"0"}, "g0.range_input": {"1h"}}.Encode()
			}
		}
		out = append(out, v)
	}
	return out
}
