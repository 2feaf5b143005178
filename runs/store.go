package runs

import (
	"context"
	"errors"
)

// DefaultHistory is how many evaluations a run keeps.
const DefaultHistory = 100

// Change is one write: a canary as it now stands and, optionally, one
// evaluation appended to the history of one of its runs.
type Change struct {
	// Canary is written whole. The history of a run it no longer holds is
	// dropped with it.
	Canary *Canary
	// Evaluation, when set, is appended to the history of the run
	// Revision names.
	Evaluation *Evaluation
	Revision   string
	// Keep is how many evaluations a run's history keeps (DefaultHistory
	// when <= 0); older ones are trimmed.
	Keep int
}

// Store persists canaries, their runs and the runs' history. Runs is its
// only writer, so it reads everything once, at start, and then only
// writes; a Store locks its data against a second process.
//
// Commit returns once the change is durable: latches, revisions and
// overrides go this way, because they are acknowledged right after.
// Append returns at once: an analysis record is committed with the next
// durable write, within the store's flush interval, or at Close, whichever
// comes first, so a crash may lose the records of that interval but never
// a latch. Writes are applied in the order they were made.
type Store interface {
	// Canaries returns every stored canary.
	Canaries(ctx context.Context) ([]*Canary, error)
	// Commit stores c and returns once it is durable.
	Commit(ctx context.Context, c Change) error
	// Append queues c without waiting; done, when not nil, is called with
	// the outcome once it is known.
	Append(c Change, done func(error))
	// Delete removes a canary and all its history, durably.
	Delete(ctx context.Context, namespace, name string) error
	// History returns up to limit of the latest evaluations of the run
	// namespace/name@revision, oldest first (all when limit <= 0); an empty
	// slice when it has none.
	History(ctx context.Context, namespace, name, revision string, limit int) ([]Evaluation, error)
	// Size is how many bytes the store takes on disk.
	Size() int64
	// Close commits what is queued and releases the store.
	Close() error
}

// ErrDocumentNotFound marks a lookup of a document that does not exist.
var ErrDocumentNotFound = errors.New("document not found")

// Documents persists small documents (the orchestrator's rollouts and
// groups, the kill switch's step-downs) by kind and key, with the
// durability of latches: a write returns only once it is synced.
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
	// DeleteDocument removes a document, durably; a missing one is no
	// error.
	DeleteDocument(ctx context.Context, kind, key string) error
}
