package rules

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// The order of a spec's sections must never matter: a policy whose traffic
// section came above its params once failed with "template references
// unknown param". These tests load a policy with its sections in many
// orders and want the same compiled policy, or the same errors, each time.

// section is one section of a spec, as lines of the file.
type section struct {
	name string
	text string
	// start is the section's first line in the file it was cut from.
	start int
}

// splitSections cuts a one-document policy file into what precedes the
// spec's first section and the sections themselves, each from its key to
// the next section's key. The spec must be the document's last field,
// written in block style.
func splitSections(t *testing.T, data []byte) (string, []section) {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal(data, &doc))
	top := doc.Content[0]
	require.Equal(t, "spec", top.Content[len(top.Content)-2].Value, "spec must be the last field")
	spec := top.Content[len(top.Content)-1]
	require.Equal(t, yaml.MappingNode, spec.Kind)
	require.Zero(t, spec.Style&yaml.FlowStyle, "spec must be in block style")
	lines := strings.SplitAfter(string(data), "\n")
	var out []section
	for i := 0; i < len(spec.Content); i += 2 {
		k := spec.Content[i]
		end := len(lines) + 1
		if i+2 < len(spec.Content) {
			end = spec.Content[i+2].Line
		}
		out = append(out, section{name: k.Value, start: k.Line, text: strings.Join(lines[k.Line-1:end-1], "")})
	}
	for i := range out {
		if !strings.HasSuffix(out[i].text, "\n") {
			out[i].text += "\n"
		}
	}
	return strings.Join(lines[:out[0].start-1], ""), out
}

// assemble writes the sections in the given order after head, and returns
// the file and where each section starts in it.
func assemble(head string, secs []section, order []int) ([]byte, []section) {
	var b strings.Builder
	b.WriteString(head)
	line := strings.Count(head, "\n") + 1
	placed := make([]section, len(order))
	for i, j := range order {
		placed[i] = section{name: secs[j].name, text: secs[j].text, start: line}
		b.WriteString(secs[j].text)
		line += strings.Count(secs[j].text, "\n")
	}
	return []byte(b.String()), placed
}

// sectionOrders returns orders of n sections such that every three
// sections appear, somewhere, in each of their six relative orders; the
// file's own order and its reverse come first. All n! orders of a full
// spec (eleven sections) are too many to load; a parser that read one
// section too early would need it after another in some file, and every
// pair, and every chain of three, is tried both ways here. The orders are
// drawn from a fixed seed, so they are the same on every run.
func sectionOrders(n int) [][]int {
	identity := make([]int, n)
	for i := range identity {
		identity[i] = i
	}
	reverse := slices.Clone(identity)
	slices.Reverse(reverse)
	covered := map[[3]int]bool{}
	cover := func(order []int, mark bool) int {
		added := 0
		for a := 0; a < n; a++ {
			for b := a + 1; b < n; b++ {
				for c := b + 1; c < n; c++ {
					k := [3]int{order[a], order[b], order[c]}
					if !covered[k] {
						added++
						if mark {
							covered[k] = true
						}
					}
				}
			}
		}
		return added
	}
	orders := [][]int{identity, reverse}
	cover(identity, true)
	cover(reverse, true)
	rng := rand.New(rand.NewPCG(1, 2))
	for len(covered) < n*(n-1)*(n-2) {
		var best []int
		bestAdded := -1
		for range 50 {
			cand := slices.Clone(identity)
			rng.Shuffle(n, func(i, j int) { cand[i], cand[j] = cand[j], cand[i] })
			if added := cover(cand, false); added > bestAdded {
				best, bestAdded = cand, added
			}
		}
		cover(best, true)
		orders = append(orders, best)
	}
	return orders
}

// TestSectionOrderLoads: a full policy compiles to the same policy
// (sections.golden, a dump of everything it compiled to) whatever the order
// of its sections.
func TestSectionOrderLoads(t *testing.T) {
	const file = "testdata/good/sections.yaml"
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	head, secs := splitSections(t, data)
	require.Len(t, secs, 12, "the fixture has every section")

	pols, err := Parse(file, data)
	require.NoError(t, err)
	require.Len(t, pols, 1)
	want := dumpPolicy(pols[0])
	golden := "testdata/good/sections.golden"
	if *update {
		require.NoError(t, os.WriteFile(golden, []byte(want), 0o644))
	}
	pinned, err := os.ReadFile(golden)
	require.NoError(t, err)
	require.Equal(t, string(pinned), want)
	wantPrograms := programs(pols[0])

	orders := sectionOrders(len(secs))
	for _, order := range orders {
		src, placed := assemble(head, secs, order)
		pols, err := Parse(file, src)
		require.NoError(t, err, "sections in the order %s", sectionNames(placed))
		require.Len(t, pols, 1)
		require.Equal(t, want, dumpPolicy(pols[0]), "sections in the order %s", sectionNames(placed))
		require.Equal(t, wantPrograms, programs(pols[0]), "sections in the order %s", sectionNames(placed))
	}
	t.Logf("%d orders of %d sections", len(orders), len(secs))
}

// TestSectionOrderErrors: a broken policy gets the same errors whatever the
// order of its sections, each at the same place in its section; the file's
// own order is pinned by TestBadPolicies (testdata/bad/sections.golden).
func TestSectionOrderErrors(t *testing.T) {
	const file = "testdata/bad/sections.yaml"
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	head, secs := splitSections(t, data)
	src, placed := assemble(head, secs, sectionOrders(len(secs))[0])
	require.Equal(t, string(data), string(src), "cutting and assembling the file gives it back")
	want := relativeErrors(t, file, src, placed)
	require.GreaterOrEqual(t, len(want), 15)
	for _, order := range sectionOrders(len(secs))[1:] {
		src, placed := assemble(head, secs, order)
		require.Equal(t, want, relativeErrors(t, file, src, placed), "sections in the order %s", sectionNames(placed))
	}
}

// relativeErrors loads src and renders each error with its line counted
// from the start of the section it is in, sorted.
func relativeErrors(t *testing.T, file string, src []byte, placed []section) []string {
	t.Helper()
	_, err := Parse(file, src)
	var errs Errors
	require.True(t, errors.As(err, &errs), "want Errors, got %v", err)
	out := make([]string, len(errs))
	for i, e := range errs {
		where := fmt.Sprintf("line %d", e.Line)
		for _, s := range placed {
			if e.Line >= s.start && e.Line < s.start+strings.Count(s.text, "\n") {
				where = fmt.Sprintf("%s+%d", s.name, e.Line-s.start)
			}
		}
		rel := *e
		rel.File, rel.Line = where, 0
		out[i] = fmt.Sprintf("%s:%d: %s", where, e.Column, rel.Error())
	}
	slices.Sort(out)
	return out
}

func sectionNames(secs []section) string {
	names := make([]string, len(secs))
	for i, s := range secs {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

// programs disassembles every compiled expression of a policy: the same
// source compiled against a different environment would differ here.
func programs(p *Policy) []string {
	var out []string
	for _, r := range p.Rules {
		out = append(out, r.Name+":\n"+r.Program.Disassemble())
	}
	for _, d := range p.Decision.Rules {
		out = append(out, d.Name+":\n"+d.Program.Disassemble())
	}
	return out
}

// dumpPolicy renders everything a policy compiled to, but the positions of
// its parts (which move with the sections): the canonical form the
// section-order test compares.
func dumpPolicy(p *Policy) string {
	var b bytes.Buffer
	w := func(indent int, format string, args ...any) {
		b.WriteString(strings.Repeat("  ", indent))
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	sorted := func(m map[string]string) string {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			parts = append(parts, fmt.Sprintf("%s=%q", k, m[k]))
		}
		return "{" + strings.Join(parts, " ") + "}"
	}
	query := func(indent int, q *Query) {
		w(indent, "query %s #%d: kind=%s source=%q maxSeries=%d range=%s step=%s valueKind=%d",
			q.Name, q.Index, q.Kind, q.Source, q.MaxSeries, q.Range, q.Step, q.ValueKind())
		w(indent+1, "text=%q template=%t", q.Text, q.Template != nil)
		w(indent+1, "fields=%s templates=%s", sorted(q.FieldText), strings.Join(slices.Sorted(maps.Keys(q.Fields)), ","))
		w(indent+1, "params=%v track=%s:%s", q.ParamRefs, q.TrackParam, q.Track)
	}
	w(0, "policy %s: file=%s at %d:%d description=%q labels=%s", p.Name, p.File, p.Line, p.Column, p.Description, sorted(p.Labels))
	for _, par := range p.Params {
		w(1, "param %s: default=%q hasDefault=%t pattern=%q regexp=%s description=%q",
			par.Name, par.Default, par.HasDefault, par.Pattern, par.Regexp, par.Description)
	}
	for _, q := range p.Queries {
		query(1, q)
	}
	for _, r := range p.Rules {
		w(1, "rule %s: expr=%q critical=%t weight=%g noData=%s group=%q description=%q", r.Name, r.Expr, r.Critical, r.Weight, r.NoData, r.Group, r.Description)
		var fields []string
		for _, k := range slices.Sorted(maps.Keys(r.RecordFields)) {
			fields = append(fields, fmt.Sprintf("%s=%v", k, r.RecordFields[k]))
		}
		w(2, "inputs=%v recordFields=%v program=%t", r.InputNames, fields, r.Program != nil)
		if e := r.Explain; e != nil {
			side := func(o Operand) string {
				return fmt.Sprintf("%q ident=%q const=%g/%t program=%t", o.Text, o.Ident, o.Const, o.IsConst, o.Program != nil)
			}
			w(2, "explain %s: %s | %s", e.Op, side(e.Left), side(e.Right))
		}
	}
	for _, c := range p.Comparisons {
		w(1, "compare %s: config=%+v critical=%t weight=%g group=%q", c.Name, c.Config, c.Critical, c.Weight, c.Group)
		query(2, c.Canary)
		query(2, c.Baseline)
	}
	var all []string
	for _, q := range p.AllQueries() {
		all = append(all, fmt.Sprintf("%s#%d", q.Name, q.Index))
	}
	w(1, "all queries (%d): %s", p.QueryCount(), strings.Join(all, " "))
	if sc := p.Scoring; sc != nil {
		groups := map[string]string{}
		for k, v := range sc.Groups {
			groups[k] = fmt.Sprint(v)
		}
		w(1, "scoring: pass=%g marginal=%g groups=%s", sc.Pass, sc.Marginal, sorted(groups))
	}
	d := p.Decision
	w(1, "decision: onFail=%s onInconclusive=%s latchOnFail=%t location=%s", d.OnFail, d.OnInconclusive, d.LatchOnFail, d.Location)
	for _, r := range d.Rules {
		var inputs []string
		for _, q := range r.Inputs {
			inputs = append(inputs, q.Name)
		}
		w(2, "rule %s: expr=%q action=%s inputs=%v program=%t", r.Name, r.Expr, r.Action, inputs, r.Program != nil)
	}
	for _, a := range p.Alerts {
		w(1, "alert: match=%s matchRegex=%s action=%s templates=%d+%d", sorted(a.MatchText), sorted(a.MatchRegexText), a.Action, len(a.Match), len(a.MatchRegex))
	}
	if tr := p.Traffic; tr != nil {
		w(1, "traffic: router=%s fields=%s templates=%d takeOver=%t onRollback=%s stepDown=%v every %s",
			tr.Router, sorted(tr.FieldText), len(tr.Fields), tr.TakeOver, tr.OnRollback, tr.StepDown, tr.StepDownInterval)
	}
	if r := p.Rollout; r != nil {
		w(1, "rollout: %+v", *r)
	}
	if pr := p.Probes; pr != nil {
		w(1, "probes: hosts=%q namespaces=%q", pr.Hosts, pr.Namespaces)
	}
	no := p.Notifications
	w(1, "notifications: severity=%s inconclusiveAfter=%d degraded=%g×%d", sorted(no.Severity), no.InconclusiveAfter, no.DegradedMargin, no.DegradedAnalyses)
	return b.String()
}
