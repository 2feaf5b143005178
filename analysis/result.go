package analysis

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/aurum/canary/rules"
)

// Verdict is the outcome of a whole analysis.
type Verdict string

// Verdicts. Argo Rollouts users map them with `successCondition: result ==
// "pass"` and `failureCondition: result == "fail"`, so inconclusive pauses.
const (
	VerdictPass         Verdict = "pass"
	VerdictFail         Verdict = "fail"
	VerdictInconclusive Verdict = "inconclusive"
)

// Decision is what the caller should do with the canary.
type Decision string

// Decisions.
const (
	DecisionContinue Decision = "continue"
	DecisionPromote  Decision = "promote"
	DecisionRollback Decision = "rollback"
	DecisionPause    Decision = "pause"
	// DecisionHold keeps the canary where it is (or lowers it to a cap)
	// while a hold or cap decision rule holds: the verdict stands, but
	// the traffic must not rise. See Result.Hold.
	DecisionHold Decision = "hold"
)

// Result is one evaluation of a policy: the value both the CLI and the HTTP
// layer render.
type Result struct {
	Policy   string            `json:"policy"`
	Params   map[string]string `json:"params"`
	Verdict  Verdict           `json:"verdict"`
	Decision Decision          `json:"decision"`
	// Score is the weighted share of passing rules, 0 to 1.
	Score float64 `json:"score"`
	// Reason is one line a human can act on.
	Reason string       `json:"reason"`
	Rules  []RuleResult `json:"rules"`
	// Decisions name the policy's decision rules that held.
	Decisions []string `json:"decisions,omitempty"`
	// Hold is set when hold or cap decision rules held.
	Hold *Hold `json:"hold,omitempty"`
	// DryRun is what the analysis would have concluded had its dry-run
	// rules, decision rules or whole policy counted; nil when the policy
	// has none.
	DryRun      *DryRun      `json:"dryRun,omitempty"`
	Queries     QueryResults `json:"queries"`
	EvaluatedAt time.Time    `json:"evaluatedAt"`
	// Duration is how long the evaluation took, queries included.
	Duration Seconds `json:"durationSeconds"`

	// dry is set while Decide judges the analysis with its dry-run
	// parts counted, for DryRun.
	dry bool
}

// counts reports whether rr counts toward the verdict being judged.
func (res *Result) counts(rr *RuleResult) bool { return res.dry || !rr.DryRun }

// RuleResult is one rule's outcome.
type RuleResult struct {
	Name    string        `json:"name"`
	Verdict rules.Outcome `json:"verdict"`
	// Value is the rule's main value: the left side of a comparison, or
	// its only numeric input. Nil when there is none.
	Value *Float `json:"value"`
	// Threshold is the right side of a comparison, when the rule is one.
	Threshold *Float `json:"threshold,omitempty"`
	Expr      string `json:"expr"`
	Reason    string `json:"reason"`
	// Inputs name the queries the rule read; their values are in the
	// result's queries.
	Inputs   []string `json:"inputs"`
	Critical bool     `json:"critical,omitempty"`
	Weight   float64  `json:"weight"`
	// Group places the rule in a scored policy's groups.
	Group string `json:"group,omitempty"`
	// NoData marks a rule that took its noData outcome.
	NoData bool `json:"noData,omitempty"`
	// DryRun marks a rule that counts toward no verdict, score or
	// decision (its own dryRun, or its policy's).
	DryRun bool `json:"dryRun,omitempty"`
	// Comparison is set for a statistical comparison: the test's figures.
	Comparison *ComparisonResult `json:"comparison,omitempty"`
}

// Hold is what a policy's hold and cap decision rules ask of a rollout:
// keep the canary's weight, lowered to Cap when one is set, for at most
// MaxHold.
type Hold struct {
	// Rules name the hold and cap rules that held.
	Rules []string `json:"rules"`
	// Cap is the lowest weight the cap rules among them ask for; nil when
	// only holds held.
	Cap *int `json:"cap,omitempty"`
	// MaxHold is the shortest maxHold among them: how long the rollout
	// may stay held before it rolls back.
	MaxHold Seconds `json:"maxHoldSeconds"`
}

// DryRun is an analysis as it would have been with its dry-run parts
// counted: the verdict, decision, score and reason it would have given.
type DryRun struct {
	Verdict  Verdict  `json:"verdict"`
	Decision Decision `json:"decision"`
	Score    float64  `json:"score"`
	Reason   string   `json:"reason"`
	// Decisions name the decision rules that held, dry-run ones
	// included.
	Decisions []string `json:"decisions,omitempty"`
	// Hold is the hold the decision rules would have asked for.
	Hold *Hold `json:"hold,omitempty"`
	// Changed is set when the dry-run parts would have changed the
	// verdict or the decision.
	Changed bool `json:"changed"`
}

// ComparisonResult is a baseline-vs-canary comparison's outcome and the
// figures behind it.
type ComparisonResult struct {
	// Class is pass, high, low, nodata, nodatafail or error.
	Class     string `json:"class"`
	Direction string `json:"direction"`
	// PValue, Estimate (the Hodges-Lehmann shift, canary minus
	// baseline) and its confidence interval, from the Mann-Whitney test.
	PValue     Float `json:"pValue"`
	Estimate   Float `json:"estimate"`
	CILow      Float `json:"ciLow"`
	CIHigh     Float `json:"ciHigh"`
	Confidence Float `json:"confidence"`
	// Means and their ratio, canary over baseline: the effect size.
	CanaryMean   Float `json:"canaryMean"`
	BaselineMean Float `json:"baselineMean"`
	Ratio        Float `json:"ratio"`
	// Samples on each side after NaN and outlier handling.
	CanarySamples   int `json:"canarySamples"`
	BaselineSamples int `json:"baselineSamples"`
}

// QueryResult is one query's rendered text and outcome.
type QueryResult struct {
	Name   string `json:"-"`
	Kind   string `json:"kind"`
	Source string `json:"source,omitempty"`
	Query  string `json:"query"`
	// Value is set for a single-series instant query with data.
	Value *Float `json:"value,omitempty"`
	// Points is set for a single-series range query with data.
	Points []float64 `json:"points,omitempty"`
	// Samples is set for a multi-series query.
	Samples []rules.Sample `json:"samples,omitempty"`
	// Values is set for a probe's record (up, status, latency_ms, ...).
	Values map[string]Float `json:"values,omitempty"`
	// Fields are the other rendered settings of a structured query
	// (Kafka group and topics, HTTP url...); header values are redacted.
	Fields map[string]string `json:"fields,omitempty"`
	// Series is how many series the source returned.
	Series   int      `json:"series"`
	NoData   bool     `json:"noData,omitempty"`
	Duration Seconds  `json:"durationSeconds"`
	Error    string   `json:"error,omitempty"`
	Warnings []string `json:"warnings,omitempty"`

	err    error
	fields map[string]string  // as sent to the source, secrets included
	record map[string]float64 // the record's values, for rules
}

// Err returns the query's error, if it failed.
func (q *QueryResult) Err() error { return q.err }

// QueryResults are kept in declaration order and rendered as a JSON object
// keyed by query name, in that order.
type QueryResults []QueryResult

// Get returns the named query's result, or nil.
func (qs QueryResults) Get(name string) *QueryResult {
	for i := range qs {
		if qs[i].Name == name {
			return &qs[i]
		}
	}
	return nil
}

// MarshalJSON renders the results as an object keyed by name. It does
// not HTML-escape: an encoder that does (json.Marshal) escapes this
// output itself, and one told not to (the HTTP API's) leaves "<redacted>"
// as it is.
func (qs QueryResults) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	b.WriteByte('{')
	for i := range qs {
		if i > 0 {
			b.WriteByte(',')
		}
		// Encode ends each value with a newline, which JSON allows
		// between tokens and the outer encoder compacts away.
		if err := enc.Encode(qs[i].Name); err != nil {
			return nil, err
		}
		b.WriteByte(':')
		if err := enc.Encode(&qs[i]); err != nil {
			return nil, err
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads the object form back, for clients of the API.
func (qs *QueryResults) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil {
		return err
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		var q QueryResult
		if err := dec.Decode(&q); err != nil {
			return err
		}
		q.Name, _ = t.(string)
		*qs = append(*qs, q)
	}
	return nil
}

// Float is a float64 that survives JSON: NaN and ±Inf, which encoding/json
// refuses, are written as the strings "NaN", "+Inf" and "-Inf", as the
// Prometheus API writes them.
type Float float64

// MarshalJSON writes finite values as numbers.
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Inf"`), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

// UnmarshalJSON reads both forms.
func (f *Float) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '"' {
		s, err := strconv.Unquote(string(data))
		if err != nil {
			return err
		}
		v, err := strconv.ParseFloat(s, 64)
		*f = Float(v)
		return err
	}
	v, err := strconv.ParseFloat(string(data), 64)
	*f = Float(v)
	return err
}

// Seconds is a duration rendered as seconds in JSON.
type Seconds time.Duration

// MarshalJSON writes the duration in seconds.
func (s Seconds) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, time.Duration(s).Seconds(), 'f', -1, 64), nil
}

// UnmarshalJSON reads seconds.
func (s *Seconds) UnmarshalJSON(data []byte) error {
	v, err := strconv.ParseFloat(string(data), 64)
	*s = Seconds(v * float64(time.Second))
	return err
}

func floatPtr(v float64) *Float {
	f := Float(v)
	return &f
}

// FormatValue renders a value for reasons and tables: integers without a
// fraction, large values with one decimal, others with four significant
// digits, so "0.03333333333" reads "0.03333" (rules.AppendValue).
func FormatValue(v float64) string {
	return string(rules.AppendValue(nil, v))
}

// MarshalUnescaped is json.Marshal without HTML escaping, for the
// MarshalJSON methods of results: reasons hold comparisons (0.05 > 0.01)
// that an encoder told not to escape (the HTTP API's, the CLI's -o json)
// must be able to write as they read. An encoder that escapes still
// escapes the output itself.
func MarshalUnescaped(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
