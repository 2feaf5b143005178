package runs

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// EventKind says what happened to a run.
type EventKind string

// Event kinds.
const (
	// EventAnalysis: an analysis was answered (Answer); Run is nil for an
	// analysis that named no canary.
	EventAnalysis EventKind = "analysis"
	// EventLatched: a latch was set (Latch). Repeat marks a latch that was
	// already set, asserted again by a redelivered alert.
	EventLatched EventKind = "latched"
	// EventLifted: a latch was lifted (Latch), by a resolved alert, a
	// manual resume or promote.
	EventLifted EventKind = "lifted"
	// EventRevision: a new revision became its canary's current one
	// (Previous names the one before; empty for a canary's first run).
	EventRevision EventKind = "revision"
	// EventExpired: a run was deleted by retention.
	EventExpired EventKind = "expired"
)

// Origins: who caused an event.
const (
	OriginArgo         = "argo"
	OriginFlagger      = "flagger"
	OriginAlertmanager = "alertmanager"
	OriginManual       = "manual"
	OriginRollout      = "rollout"
	OriginRetention    = "retention"
)

// Event is one thing that happened to a run, published once it is stored.
type Event struct {
	Kind   EventKind
	At     time.Time
	Origin string
	// Run is the run as stored after the change.
	Run *Run
	// Answer is the analysis answered (EventAnalysis).
	Answer *Answer
	// Latch is the latch set or lifted (EventLatched, EventLifted).
	Latch *Latch
	// Repeat marks an EventLatched for a latch already set.
	Repeat bool
	// Previous is the revision that was current before (EventRevision).
	Previous string
	// By names who caused a manual change.
	By string
}

// Subscriber reacts to events. Notify is called for every event, in the
// order the events happened to a canary, after the change is stored and
// before the call that caused it returns; it must not call back into Runs
// for the same canary. An error tells the caller the reaction failed (the
// Alertmanager receiver then answers 503, so Alertmanager retries); a
// reaction that may be slow should queue its work and return.
type Subscriber interface {
	Notify(ctx context.Context, e Event) error
}

// SubscriberFunc adapts a function to Subscriber.
type SubscriberFunc func(ctx context.Context, e Event) error

// Notify calls f.
func (f SubscriberFunc) Notify(ctx context.Context, e Event) error { return f(ctx, e) }

// Subscribe adds a subscriber. Subscribe before the first event: the list
// is read without a lock.
func (r *Runs) Subscribe(s Subscriber) { r.subs = append(r.subs, s) }

// publish hands the events to every subscriber, recovering a panicking one
// into an error, and returns their errors wrapped in ErrReaction.
func (r *Runs) publish(ctx context.Context, events ...Event) error {
	var errs []error
	for _, e := range events {
		for _, s := range r.subs {
			if err := r.notify(ctx, s, e); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrReaction, errors.Join(errs...))
}

func (r *Runs) notify(ctx context.Context, s Subscriber, e Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.panicked("subscriber")
			r.logger.Error("event subscriber panicked", "event", e.Kind, "panic", fmt.Sprint(p))
			err = fmt.Errorf("subscriber panicked on %s: %v", e.Kind, p)
		}
	}()
	return s.Notify(ctx, e)
}
