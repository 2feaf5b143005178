package rules

import (
	"cmp"
	"fmt"
	"math"
	"time"

	"github.com/expr-lang/expr"
	"go.yaml.in/yaml/v3"

	"github.com/aurum/canary/stats"
)

// Comparison is a statistical baseline-vs-canary rule, in the manner of
// Kayenta's judge: the same metric sampled over a window on the canary and
// on its baseline, compared with a Mann-Whitney U test and an effect-size
// threshold.
type Comparison struct {
	Name string
	// Canary and Baseline are the two range queries. They are not in
	// Policy.Queries (rules cannot read them); their Index continues
	// after the policy's queries.
	Canary, Baseline *Query
	// Config is the test's configuration: direction, confidence, allowed
	// and critical ratios, NaN strategy, outliers, must-have-data.
	Config stats.Comparison
	// Critical turns a high or low into a failed analysis whatever the
	// score; Weight and Group place it in the score.
	Critical     bool
	Weight       float64
	Group        string
	Line, Column int
}

// Scoring is Kayenta-style scoring: rules and comparisons in weighted
// groups, the score against pass and marginal thresholds.
type Scoring struct {
	// Pass and Marginal are scores out of 100: at or above Pass the
	// verdict is pass, at or above Marginal inconclusive, below it fail.
	Pass, Marginal float64
	// Groups weighs groups; a group not listed weighs 1.
	Groups map[string]float64
}

// Default comparison settings.
const (
	// DefaultCompareStep samples a comparison's window every 30 seconds.
	DefaultCompareStep = 30 * time.Second
	// DefaultTrackParam is the param a single comparison query sets to
	// the canary's and the baseline's track.
	DefaultTrackParam = "track"
)

// QueryCount is how many queries an evaluation of the policy runs: its
// own, then two per comparison.
func (p *Policy) QueryCount() int { return len(p.Queries) + 2*len(p.Comparisons) }

func (p *parser) comparisons(n *yaml.Node, pol *Policy, s scope) {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, s, "spec.compare must be a list")
		return
	}
	names := map[string]bool{}
	for _, r := range pol.Rules {
		names[r.Name] = true
	}
	for i, cn := range n.Content {
		c := &Comparison{Weight: DefaultWeight, Line: cn.Line, Column: cn.Column}
		cs := s
		cs.rule = fmt.Sprintf("compare #%d", i+1)
		var canary, baseline, query, rangeNode, stepNode, sourceNode *yaml.Node
		var rng, step time.Duration
		var source string
		trackParam, canaryTrack, baselineTrack := DefaultTrackParam, "canary", "primary"
		str := func(dst *string, what string) func(_, v *yaml.Node) {
			return func(_, v *yaml.Node) { *dst, _ = p.str(v, cs, what) }
		}
		ratio := func(dst *float64, what string, below bool) func(_, v *yaml.Node) {
			return func(_, v *yaml.Node) {
				*dst = p.number(v, cs, what)
				if *dst <= 0 || (below && *dst >= 1) || (!below && *dst < 1) {
					side := "at least 1 (1.1: 10% above the baseline)"
					if below {
						side = "between 0 and 1 (0.9: 10% below the baseline)"
					}
					p.errorf(v, cs, "%s is a ratio of means and must be %s", what, side)
				}
			}
		}
		p.fields(cn, cs, "compare", map[string]func(k, v *yaml.Node){
			"name": func(_, v *yaml.Node) {
				c.Name, _ = p.str(v, cs, "name")
				cs.rule = c.Name
				switch {
				case !nameRE.MatchString(c.Name):
					p.errorf(v, cs, "compare name %q must be a Kubernetes-style name", c.Name)
				case names[c.Name]:
					p.errorf(v, cs, "duplicate rule or comparison name")
				}
				names[c.Name] = true
			},
			"canary":        func(_, v *yaml.Node) { canary = v },
			"baseline":      func(_, v *yaml.Node) { baseline = v },
			"query":         func(_, v *yaml.Node) { query = v },
			"trackParam":    str(&trackParam, "trackParam"),
			"canaryTrack":   str(&canaryTrack, "canaryTrack"),
			"baselineTrack": str(&baselineTrack, "baselineTrack"),
			"source": func(k, v *yaml.Node) {
				var ok bool
				if source, ok = p.str(v, cs, "source"); ok {
					sourceNode = k
				}
			},
			"range": func(_, v *yaml.Node) { rangeNode = v; rng = p.duration(v, cs, "range") },
			"step":  func(_, v *yaml.Node) { stepNode = v; step = p.duration(v, cs, "step") },
			"direction": func(_, v *yaml.Node) {
				switch d := stats.Direction(v.Value); d {
				case stats.Increase, stats.Decrease, stats.Either:
					c.Config.Direction = d
				default:
					p.errorf(v, cs, "direction must be increase, decrease or either, got %q", v.Value)
				}
			},
			"confidence": func(_, v *yaml.Node) {
				if c.Config.ConfidenceLevel = p.number(v, cs, "confidence"); c.Config.ConfidenceLevel <= 0.5 || c.Config.ConfidenceLevel >= 1 {
					p.errorf(v, cs, "confidence must be between 0.5 and 1, e.g. 0.98")
				}
			},
			"allowedIncrease":  ratio(&c.Config.AllowedIncrease, "allowedIncrease", false),
			"allowedDecrease":  ratio(&c.Config.AllowedDecrease, "allowedDecrease", true),
			"criticalIncrease": ratio(&c.Config.CriticalIncrease, "criticalIncrease", false),
			"criticalDecrease": ratio(&c.Config.CriticalDecrease, "criticalDecrease", true),
			"nanStrategy": func(_, v *yaml.Node) {
				switch ns := stats.NaNStrategy(v.Value); ns {
				case stats.NaNRemove, stats.NaNReplace:
					c.Config.NaN = ns
				default:
					p.errorf(v, cs, "nanStrategy must be remove or replace, got %q", v.Value)
				}
			},
			"removeOutliers": func(_, v *yaml.Node) { c.Config.RemoveOutliers = p.boolean(v, cs, "removeOutliers") },
			"mustHaveData":   func(_, v *yaml.Node) { c.Config.MustHaveData = p.boolean(v, cs, "mustHaveData") },
			"critical":       func(_, v *yaml.Node) { c.Critical = p.boolean(v, cs, "critical") },
			"weight": func(_, v *yaml.Node) {
				if c.Weight = p.number(v, cs, "weight"); c.Weight < 0 {
					p.errorf(v, cs, "weight must not be negative")
				}
			},
			"group": str(&c.Group, "group"),
		})
		if c.Name == "" {
			p.errorf(cn, cs, "compare needs a name")
		}
		p.checkSource(KindPrometheus, source, cmp.Or(sourceNode, cn), cs)
		if rangeNode == nil || rng <= 0 {
			p.errorf(cn, cs, "compare needs a range: the window whose samples are compared, e.g. 10m")
			continue
		}
		if step == 0 {
			step = min(DefaultCompareStep, rng)
		}
		if step > rng {
			p.errorf(stepNode, cs, "step %s is longer than range %s", step, rng)
		}
		if c.Config.CriticalIncrease > 0 && c.Config.AllowedIncrease > 0 && c.Config.CriticalIncrease < c.Config.AllowedIncrease {
			p.errorf(cn, cs, "criticalIncrease is below allowedIncrease")
		}
		if c.Config.CriticalDecrease > 0 && c.Config.AllowedDecrease > 0 && c.Config.CriticalDecrease > c.Config.AllowedDecrease {
			p.errorf(cn, cs, "criticalDecrease is above allowedDecrease")
		}
		mk := func(suffix string, node *yaml.Node, text string) *Query {
			q := &Query{Name: c.Name + ":" + suffix, Kind: KindPrometheus, Source: source, Text: text,
				MaxSeries: 1, Range: rng, Step: step}
			qs := cs
			qs.query = q.Name
			p.template(node, q, pol, qs)
			return q
		}
		switch {
		case query != nil && (canary != nil || baseline != nil):
			p.errorf(query, cs, "give either query (with a track param) or canary and baseline, not both")
			continue
		case query != nil:
			text, ok := p.str(query, cs, "query")
			if !ok {
				continue
			}
			if pol.params[trackParam] == nil {
				p.errorf(query, cs, "query needs the param %q to tell the canary from the baseline: declare it, or give canary and baseline", trackParam)
				continue
			}
			// The track is a param like any other, rendered once for each
			// side: {{ .track }} becomes canary, then primary.
			c.Canary = mk("canary", query, text)
			c.Baseline = mk("baseline", query, text)
			c.Canary.TrackParam, c.Canary.Track = trackParam, canaryTrack
			c.Baseline.TrackParam, c.Baseline.Track = trackParam, baselineTrack
		case canary != nil && baseline != nil:
			ct, ok1 := p.str(canary, cs, "canary")
			bt, ok2 := p.str(baseline, cs, "baseline")
			if !ok1 || !ok2 {
				continue
			}
			c.Canary = mk("canary", canary, ct)
			c.Baseline = mk("baseline", baseline, bt)
		default:
			p.errorf(cn, cs, "compare needs canary and baseline queries, or one query with a track param")
			continue
		}
		if c.Canary.Template == nil || c.Baseline.Template == nil {
			continue
		}
		n := len(pol.Queries) + 2*len(pol.Comparisons)
		c.Canary.Index, c.Baseline.Index = n, n+1
		pol.Comparisons = append(pol.Comparisons, c)
	}
	if len(pol.Comparisons) > 0 {
		pol.all = make([]*Query, 0, pol.QueryCount())
		pol.all = append(pol.all, pol.Queries...)
		for _, c := range pol.Comparisons {
			pol.all = append(pol.all, c.Canary, c.Baseline)
		}
	}
}

// AllQueries lists what an evaluation of the policy runs, in the order of
// their Index: its own queries, then each comparison's canary and
// baseline. It is built once, when the policy loads.
func (p *Policy) AllQueries() []*Query {
	if p.all == nil {
		return p.Queries
	}
	return p.all
}

func (p *parser) scoring(n *yaml.Node, pol *Policy, s scope) {
	sc := &Scoring{Groups: map[string]float64{}}
	var passNode *yaml.Node
	p.fields(n, s, "scoring", map[string]func(k, v *yaml.Node){
		"pass":     func(_, v *yaml.Node) { passNode = v; sc.Pass = p.number(v, s, "scoring.pass") },
		"marginal": func(_, v *yaml.Node) { sc.Marginal = p.number(v, s, "scoring.marginal") },
		"groups": func(_, v *yaml.Node) {
			p.entries(v, s, "scoring.groups", "group", func(k, gv *yaml.Node) {
				if w := p.number(gv, s, "scoring.groups."+k.Value); w < 0 {
					p.errorf(gv, s, "group weight must not be negative")
				} else {
					sc.Groups[k.Value] = w
				}
			})
		},
	})
	if passNode == nil {
		p.errorf(n, s, "scoring needs pass (and marginal): scores out of 100, e.g. pass: 95, marginal: 75")
	}
	if sc.Pass < 0 || sc.Pass > 100 || sc.Marginal < 0 || sc.Marginal > sc.Pass {
		p.errorf(n, s, "scoring: want 0 <= marginal <= pass <= 100")
	}
	pol.Scoring = sc
}

// MannWhitney is what the mannwhitney(canary, baseline) expression helper
// returns: `mannwhitney(canary_lat, base_lat).p < 0.02`.
type MannWhitney struct {
	P        float64 `expr:"p"`
	Estimate float64 `expr:"estimate"`
	Low      float64 `expr:"low"`
	High     float64 `expr:"high"`
	W        float64 `expr:"w"`
	// Ratio is mean(canary) / mean(baseline).
	Ratio float64 `expr:"ratio"`
}

// mannWhitneyFunction is the expression helper: a two-sided test at the
// 0.95 level over two range queries' points, NaNs removed.
var mannWhitneyFunction = expr.Function("mannwhitney", func(args ...any) (any, error) {
	x := stats.Prepare(args[0].([]float64), stats.NaNRemove, false)
	y := stats.Prepare(args[1].([]float64), stats.NaNRemove, false)
	r, err := stats.MannWhitney(x, y, stats.Options{})
	if err != nil {
		return nil, fmt.Errorf("mannwhitney: %w", err)
	}
	ratio := math.NaN()
	if r.MeanY != 0 {
		ratio = r.MeanX / r.MeanY
	}
	return MannWhitney{P: r.PValue, Estimate: r.Estimate, Low: r.CILow, High: r.CIHigh, W: r.W, Ratio: ratio}, nil
}, new(func([]float64, []float64) MannWhitney))
