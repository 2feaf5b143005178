// Package runs keeps canary runs: one run per revision of a canary, the
// analyses recorded for it and the latches (rollback, pause, promote) that
// override them, set by Alertmanager alerts, manual calls or failed
// analyses. It owns the Store seam that keeps them on disk; runs/bolt is
// its embedded implementation.
package runs

import (
	"context"
	"errors"
	"time"

	"github.com/aurum/canary/analysis"
)

// Sentinel errors.
var (
	// ErrRunNotFound marks a lookup of a run that does not exist.
	ErrRunNotFound = errors.New("run not found")
	// ErrStore marks a failure to read or write the store: a fault to
	// retry, not a bad request.
	ErrStore = errors.New("store")
)

// A Run is one canary revision of one target: the analyses of it, in order,
// and the latches that override them. A new revision of the same target
// starts a new run with no latches and no history.
type Run struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Revision identifies the canary version: Flagger's checksum, Argo's
	// revision param, or one assigned on the first call.
	Revision string `json:"revision"`
	// Policy and Params are those of the latest analysis; alerts are
	// matched against them.
	Policy string            `json:"policy,omitempty"`
	Params map[string]string `json:"params,omitempty"`
	// Phase is the last phase Flagger reported, if any.
	Phase     string    `json:"phase,omitempty"`
	StartedAt time.Time `json:"startedAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// Latches in the order they were set; only active ones are kept.
	Latches []Latch `json:"latches"`
	// Evaluations counts every analysis of this run, including those no
	// longer kept in the history.
	Evaluations  uint64            `json:"evaluations"`
	LastVerdict  analysis.Verdict  `json:"lastVerdict,omitempty"`
	LastDecision analysis.Decision `json:"lastDecision,omitempty"`
	LastReason   string            `json:"lastReason,omitempty"`
}

// ID names the run in results and logs: namespace/name@revision.
func (r *Run) ID() string { return r.Namespace + "/" + r.Name + "@" + r.Revision }

// LatchKind is what a latch forces.
type LatchKind string

// Latch kinds. A rollback latch makes every analysis of the run fail with
// decision rollback; a pause latch makes them inconclusive with decision
// pause; a promote latch (a manual override) makes them pass with decision
// promote.
const (
	LatchRollback LatchKind = "rollback"
	LatchPause    LatchKind = "pause"
	LatchPromote  LatchKind = "promote"
)

// LatchSource says who set a latch.
type LatchSource string

// Latch sources.
const (
	SourceAlert    LatchSource = "alert"
	SourceManual   LatchSource = "manual"
	SourceAnalysis LatchSource = "analysis"
)

// Latch overrides the analyses of a run until it is lifted.
type Latch struct {
	Kind   LatchKind   `json:"kind"`
	Source LatchSource `json:"source"`
	Reason string      `json:"reason"`
	At     time.Time   `json:"at"`
	// Alert identifies the alert that set the latch (Alertmanager's
	// fingerprint), so a redelivery is a no-op and a resolution finds it.
	Alert string `json:"alert,omitempty"`
}

// Evaluation is one analysis of a run as kept in its history: every rule's
// value and outcome, without the rendered queries.
type Evaluation struct {
	// Seq numbers the run's analyses from 1.
	Seq      uint64            `json:"seq"`
	At       time.Time         `json:"at"`
	Policy   string            `json:"policy"`
	Verdict  analysis.Verdict  `json:"verdict"`
	Decision analysis.Decision `json:"decision"`
	Score    float64           `json:"score"`
	Reason   string            `json:"reason"`
	Rules    []RuleRecord      `json:"rules"`
}

// RuleRecord is one rule's outcome in a stored evaluation.
type RuleRecord struct {
	Name    string          `json:"name"`
	Verdict string          `json:"verdict"`
	Value   *analysis.Float `json:"value,omitempty"`
	Reason  string          `json:"reason"`
}

// Store persists runs. Every method that changes state returns only once the
// change is durable (synced to disk), because callers acknowledge it to
// Argo Rollouts, Flagger or Alertmanager right after. Implementations are
// safe for concurrent use and group concurrent writes into shared commits.
type Store interface {
	// Run returns the run of namespace/name, or an error wrapping
	// ErrRunNotFound.
	Run(ctx context.Context, namespace, name string) (*Run, error)
	// Runs returns every run, ordered by namespace and name.
	Runs(ctx context.Context) ([]*Run, error)
	// Update reads the run of namespace/name (nil when there is none),
	// calls fn, and stores what fn returns in one durable transaction: the
	// run, and ev appended to its history when ev is not nil. When the
	// returned run has a different revision than the stored one, the old
	// history is dropped. History beyond keep evaluations is trimmed,
	// oldest first. fn returning a nil run leaves everything unchanged.
	// fn may be called more than once and must not have side effects.
	Update(ctx context.Context, namespace, name string, keep int, fn func(*Run) (*Run, *Evaluation, error)) (*Run, error)
	// History returns up to limit of the run's latest evaluations, oldest
	// first (all of them when limit <= 0).
	History(ctx context.Context, namespace, name string, limit int) ([]Evaluation, error)
	Close() error
}

// ErrDocumentNotFound marks a lookup of a document that does not exist.
var ErrDocumentNotFound = errors.New("document not found")

// Documents persists small documents (the orchestrator's rollouts and
// groups) by kind and key, with the durability of runs: a write returns
// only once it is synced. Implementations group concurrent writes into
// shared commits.
type Documents interface {
	// Document returns the document, or an error wrapping
	// ErrDocumentNotFound.
	Document(ctx context.Context, kind, key string) ([]byte, error)
	// DocumentsOf returns every document of a kind, by key.
	DocumentsOf(ctx context.Context, kind string) (map[string][]byte, error)
	// UpdateDocument calls fn with the current document (nil when there is
	// none) and stores what it returns, durably; nil leaves it unchanged.
	// It returns the stored document. fn may be called more than once and
	// must not have side effects.
	UpdateDocument(ctx context.Context, kind, key string, fn func(old []byte) ([]byte, error)) ([]byte, error)
}
