// Package rules is the policy file format: it parses policy files strictly,
// with file:line:col positions on every error, validates them, and compiles
// their templates and expressions once so that evaluation does no parsing.
//
// A policy names the params a caller must or may pass, the queries to run
// (rendered from Go templates with those params) and the rules: boolean expr
// expressions over the query results. Evaluation lives in package analysis;
// this package only knows the format.
package rules

import (
	"regexp"
	"text/template"
	"time"

	"github.com/expr-lang/expr/vm"
)

// APIVersion and Kind identify a policy document.
const (
	APIVersion = "canary.aurum.dev/v1"
	Kind       = "Policy"
)

// Outcome is the result of one rule.
type Outcome string

// Rule outcomes. A rule errors when one of its queries failed; it is
// inconclusive when it had no data and its noData outcome says so.
const (
	OutcomePass         Outcome = "pass"
	OutcomeFail         Outcome = "fail"
	OutcomeInconclusive Outcome = "inconclusive"
	OutcomeError        Outcome = "error"
)

// Action is what a policy asks for when its analysis does not pass or when
// one of its alerts fires.
type Action string

// Actions a policy may ask for.
const (
	ActionContinue Action = "continue"
	ActionRollback Action = "rollback"
	ActionPause    Action = "pause"
	// ActionHold keeps a standalone rollout's canary at the weight it has
	// while a decision rule holds; ActionCap lowers it to the rule's
	// weight and keeps it there. Both end when the rule clears, or roll
	// the canary back after the rule's maxHold.
	ActionHold Action = "hold"
	ActionCap  Action = "cap"
)

// DefaultMaxHold is how long a hold or cap decision rule may hold a
// rollout when the rule sets no maxHold: a hold that never ends would keep
// a canary at a weight nobody chose for good.
const DefaultMaxHold = time.Hour

// Policy is one compiled policy document.
type Policy struct {
	Name        string
	Description string
	Labels      map[string]string
	// File, Line and Column locate the document, for messages.
	File         string
	Line, Column int

	// Params in declaration order.
	Params []*Param
	// Queries in declaration order.
	Queries []*Query
	// Rules in declaration order.
	Rules    []*Rule
	Decision Decision
	Alerts   []*Alert
	// Rollout is nil when the policy has no rollout section.
	Rollout *Rollout
	// Traffic is nil when the policy names no traffic router.
	Traffic *Traffic
	// Probes is nil when the policy has no probes section: its http and
	// tcp queries may then reach whatever the server allows.
	Probes *ProbeTargets
	// Notifications tune what canary serve tells about this policy's runs.
	Notifications Notifications
	// DryRun makes the whole policy a shadow: its rules, comparisons and
	// decision rules are evaluated and recorded, and what they would have
	// decided is shown, but its verdict is always pass and its decision
	// continue.
	DryRun bool
	// Comparisons are the statistical baseline-vs-canary rules.
	Comparisons []*Comparison
	// Scoring, when set, scores rules and comparisons Kayenta's way.
	Scoring *Scoring

	params  map[string]*Param
	queries map[string]*Query
	// all is Queries then each comparison's two, when there are
	// comparisons; see AllQueries.
	all []*Query
	// hasDryRun is set when anything of the policy runs dry; see
	// HasDryRun.
	hasDryRun bool
}

// Param declares one caller-supplied value.
type Param struct {
	Name        string
	Description string
	// Default is used when the caller passes nothing; HasDefault tells an
	// empty default apart from a required param.
	Default    string
	HasDefault bool
	// Pattern is the source of the pattern values must match as a whole;
	// Regexp is its anchored compiled form.
	Pattern string
	Regexp  *regexp.Regexp
}

// Query is one data source query whose text is a template over the params.
type Query struct {
	Name string
	// Index is the query's position in Policy.Queries.
	Index int
	// Kind is the source kind, e.g. "prometheus".
	Kind string
	// Source names a configured source of that kind; empty means the
	// default one.
	Source string
	// Text is the template source of a prometheus query's PromQL or a
	// postgres query's SQL; Template its parsed form.
	Text     string
	Template *template.Template
	// Fields are the templates of the other settings of kafka, http, tcp
	// and postgres queries, by the name their source reads them under
	// (queries.Query.Fields), and FieldText their sources. Lists are
	// comma-separated; http headers are "header.<Name>".
	Fields    map[string]*template.Template
	FieldText map[string]string
	// MaxSeries is how many series the query may return. With 1 (the
	// default) the query's value is a number; above 1 it is a list of
	// labelled samples.
	MaxSeries int
	// Range, when non-zero, makes the query a range query over the last
	// Range before the evaluation time, with Step resolution.
	Range time.Duration
	Step  time.Duration
	// ParamRefs are the params the template reads.
	ParamRefs []string
	// TrackParam and Track, when set, override one param for this query:
	// a comparison renders one query for the canary's track and one for
	// the baseline's.
	TrackParam, Track string
}

// ValueKind tells what a query contributes to the rule environment.
type ValueKind int

// Value kinds a query result takes in rule expressions.
const (
	// KindScalar is a float64: one series, instant query.
	KindScalar ValueKind = iota
	// KindRange is a []float64: one series, range query.
	KindRange
	// KindSamples is a []Sample: several series.
	KindSamples
	// KindRecord is a probe's record: HTTPProbe, TCPProbe or
	// PostgresProbe.
	KindRecord
)

// ValueKind returns how the query's result is seen by expressions.
func (q *Query) ValueKind() ValueKind {
	switch {
	case recordFields[q.Kind] != nil: // a probe's record, whatever maxSeries says
		return KindRecord
	case q.MaxSeries > 1:
		return KindSamples
	case q.Range > 0:
		return KindRange
	default:
		return KindScalar
	}
}

// Rule is one boolean expression over query results.
type Rule struct {
	Name        string
	Description string
	Expr        string
	// Critical rules turn a failed analysis into a rollback even when the
	// policy would otherwise pause.
	Critical bool
	// Weight counts the rule in the score; default 1.
	Weight float64
	// NoData is the outcome when an input has no data; default inconclusive.
	NoData Outcome
	// Group places the rule in a group under the policy's scoring; empty
	// means a group of its own.
	Group string
	// DryRun rules are evaluated and recorded but count toward no verdict,
	// score or decision: a threshold on trial.
	DryRun bool
	// Inputs are the queries the expression reads, in declaration order,
	// and InputNames their names.
	Inputs     []*Query
	InputNames []string
	// RecordFields are, for each record query the rule reads, the fields
	// it reads (all of them when it uses the record as a whole): a NaN in
	// one of them is no data for this rule.
	RecordFields map[string][]string
	// Program is the compiled expression.
	Program *vm.Program
	// Explain describes the top-level comparison, when there is one, so a
	// reason can show both sides.
	Explain *Sides
	// Condition is the expression compiled to Go, when it is made only of
	// what Condition and Number cover; nil otherwise. It holds exactly
	// when the program does (see native.go).
	Condition Condition
	// Line and Column locate the rule, for messages.
	Line, Column int
}

// Sides are the two sides of a rule whose expression is `lhs op rhs` with
// numeric sides.
type Sides struct {
	Op string
	// Left and Right evaluate each side; when a side is a plain query or a
	// constant the program is nil and Ident or Const is set instead.
	Left, Right Operand
}

// Operand is one side of a rule's comparison.
type Operand struct {
	Text    string
	Ident   string
	Const   float64
	IsConst bool
	// Written is Const as a reason writes it (AppendValue), for a
	// constant.
	Written string
	Program *vm.Program
	// Number is the side compiled to Go: set for a scalar query and
	// for a float64 Program made only of what Number covers (see
	// native.go), nil otherwise and for a constant. Program is kept for
	// the values Number cannot tell.
	Number Number
}

// Decision maps a verdict to an action.
type Decision struct {
	// OnFail is the action for a failed analysis: rollback (default) or pause.
	OnFail Action
	// OnInconclusive is the action for an inconclusive one: pause (default)
	// or continue.
	OnInconclusive Action
	// LatchOnFail makes a failed analysis of a tracked run whose decision
	// is rollback latch that rollback: every later analysis of the run
	// answers rollback, and so does Flagger's rollback hook, until the next
	// revision or a manual resume.
	LatchOnFail bool
	// Rules are the policy's own decision rules: expressions over the query
	// results, the params and the time of day that force a rollback or a
	// pause, such as a stricter error threshold during market hours.
	Rules []*DecisionRule
	// Location is the time zone hour, minute and weekday are read in;
	// UTC unless the policy names one.
	Location *time.Location
}

// DecisionRule forces an action when its expression holds.
type DecisionRule struct {
	Name, Expr string
	Action     Action
	// Weight is a cap rule's canary weight, 0 to 100.
	Weight int
	// MaxHold bounds how long a hold or cap rule holds a rollout before
	// it rolls back; DefaultMaxHold unless the rule sets it.
	MaxHold time.Duration
	// DryRun rules are evaluated and their holding is recorded, but they
	// force nothing.
	DryRun  bool
	Program *vm.Program
	// Inputs are the queries it reads; without data for one of them the
	// rule does not apply.
	Inputs       []*Query
	Line, Column int
}

// Alert says which Alertmanager alerts concern a run of this policy and what
// a firing one does.
type Alert struct {
	// Match maps label names to value templates over the params.
	Match     map[string]*template.Template
	MatchText map[string]string
	// MatchRegex maps label names to regex templates.
	MatchRegex     map[string]*template.Template
	MatchRegexText map[string]string
	Action         Action
	Line, Column   int
}

// Traffic names the router and the objects that carry a run's canary
// traffic, so the engine can move it: cut it when a rollback latches, or
// step it through a rollout.
type Traffic struct {
	// Router is "nginx" or "gatewayapi".
	Router string
	// Fields are templates over the run's params: namespace, ingress (nginx)
	// or httpRoute (gatewayapi), stableService, canaryService,
	// annotationPrefix.
	Fields    map[string]*template.Template
	FieldText map[string]string
	// TakeOver lets the engine change objects another controller created.
	TakeOver bool
	// OnRollback is what a latched rollback (an alert, a manual call) does
	// to traffic: "zero" (cut at once, the default), "stepDown" (lower it
	// along StepDown), or "none".
	OnRollback string
	// StepDown is the schedule of weights for a graceful rollback, one per
	// StepDownInterval, ending at 0.
	StepDown         []int
	StepDownInterval time.Duration
	Line, Column     int
}

// TrafficSpec is a policy's traffic section rendered for a run.
type TrafficSpec struct {
	Router, Namespace, Ingress, HTTPRoute string
	StableService, CanaryService          string
	AnnotationPrefix                      string
	TakeOver                              bool
}

// Rollout is the schedule used when the engine drives traffic itself.
type Rollout struct {
	InitialWeight     int
	StepWeight        int
	Steps             []RolloutStep
	MaxWeight         int
	Warmup            time.Duration
	Interval          time.Duration
	StepDuration      time.Duration
	Promotion         time.Duration
	FailureLimit      int
	InconclusiveLimit int
	AutoRollback      bool
	// Report names the queries a rollout's status reports as its error
	// rate (a ratio, shown as a percentage) and latency in milliseconds.
	Report struct{ ErrorRate, LatencyMs string }
}

// RolloutStep is one explicit step of a rollout schedule.
type RolloutStep struct {
	Weight   int
	Duration time.Duration
	// Rules restricts the rules that gate this step; empty means all.
	Rules []string
}

// Param returns the named param, or nil.
func (p *Policy) Param(name string) *Param { return p.params[name] }

// Query returns the named query, or nil.
func (p *Policy) Query(name string) *Query { return p.queries[name] }

// HasDryRun reports whether the policy, one of its rules or one of its
// decision rules runs dry: its analyses then say what they would have
// decided counting them.
func (p *Policy) HasDryRun() bool { return p.hasDryRun }
