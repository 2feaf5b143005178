package rollout

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Run ticks every rollout that is in progress when it is due, until ctx is
// done. At start it resumes every rollout the store holds: a process that
// was killed picks up where it was. Manual actions and new rollouts wake
// it at once.
//
// Run does not give up: a store it cannot read is retried with backoff
// (Healthy reports it meanwhile, and /readyz fails), a rollout record that
// does not decode is skipped and reported, and a tick that panics is
// recovered, counted and retried later.
func (o *Orchestrator) Run(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		err := o.resume(ctx)
		if err == nil {
			break
		}
		o.setHealth(fmt.Errorf("the orchestrator cannot read its rollouts: %w", err))
		o.o.Logger.Error("orchestrator cannot read its rollouts; retrying", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff(attempt)):
		}
	}
	o.setHealth(nil)
	sem := make(chan struct{}, o.o.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var expired time.Time
	for {
		now := o.o.Now()
		if now.Sub(expired) > time.Hour {
			expired = now
			o.expire(ctx)
		}
		next := now.Add(time.Minute)
		var due []string
		o.mu.Lock()
		for key, at := range o.due {
			if !at.After(now) {
				due = append(due, key)
				delete(o.due, key)
			} else if at.Before(next) {
				next = at
			}
		}
		o.mu.Unlock()
		for _, key := range due {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				o.tickSafely(ctx, key)
			}()
		}
		if len(due) > 0 {
			continue
		}
		timer.Reset(max(next.Sub(now), time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-o.wake:
			// Since Go 1.23 a stopped timer's channel holds no stale
			// value, so Reset above needs no draining.
			timer.Stop()
		case <-timer.C:
		}
	}
}

// heldInterval is how often a paused or failed rollout is looked at for a
// rollback latched on its run.
const heldInterval = 5 * time.Second

// expire forgets finished rollouts (completed or rolled back) that have
// not changed for longer than the retention: a rollout is small, but
// nothing else would ever delete one.
func (o *Orchestrator) expire(ctx context.Context) {
	if o.o.Retention <= 0 {
		return
	}
	all, _, err := o.List(ctx)
	if err != nil {
		return
	}
	now := o.o.Now()
	for _, r := range all {
		if r.Phase.Terminal() && now.Sub(r.UpdatedAt) > o.o.Retention {
			if err := o.o.Store.DeleteDocument(ctx, kindRollout, r.Spec.Key()); err != nil {
				o.o.Logger.Error("finished rollout not deleted", "rollout", r.Spec.Key(), "err", err)
				continue
			}
			o.o.Logger.Info("finished rollout deleted after its retention", "rollout", r.Spec.Key(), "phase", r.Phase)
		}
	}
}

// resume rekeys old records and schedules every rollout in progress.
func (o *Orchestrator) resume(ctx context.Context) error {
	if err := o.migrate(ctx); err != nil {
		return err
	}
	all, _, err := o.List(ctx)
	if err != nil {
		return err
	}
	for _, r := range all {
		if !r.Phase.Terminal() {
			o.schedule(r.Spec.Key(), o.o.Now())
		}
	}
	return nil
}

// tickSafely ticks one rollout, rescheduling it on an error or a panic so
// that it is retried rather than forgotten.
func (o *Orchestrator) tickSafely(ctx context.Context, key string) {
	defer func() {
		if p := recover(); p != nil {
			if o.o.Panicked != nil {
				o.o.Panicked("orchestrator")
			}
			o.o.Logger.Error("rollout tick panicked; retrying later", "rollout", key, "panic", fmt.Sprint(p))
			o.schedule(key, o.o.Now().Add(30*time.Second))
		}
	}()
	r, err := o.tick(ctx, key)
	o.mu.Lock()
	failures := o.failures[key]
	if err != nil {
		failures++
		o.failures[key] = failures
	} else {
		delete(o.failures, key)
	}
	o.mu.Unlock()
	switch {
	case err != nil && ctx.Err() == nil:
		wait := backoff(failures)
		o.o.Logger.Error("rollout tick failed; retrying", "rollout", key, "failures", failures, "retry_in", wait, "err", err)
		// A store that cannot be read makes the orchestrator unable to
		// do its work: /readyz says so until it can again.
		if _, serr := o.o.Store.DocumentsOf(ctx, kindGroup); serr != nil {
			o.setHealth(fmt.Errorf("the orchestrator cannot use its store: %w", serr))
		}
		o.schedule(key, o.o.Now().Add(wait))
		return
	}
	o.setHealth(nil)
	switch {
	case r != nil && r.Phase.Terminal():
		o.unschedule(key)
	case r != nil && (r.Phase == PhasePaused || r.Phase == PhaseFailed):
		// Held for a person: looked at again now and then, since a
		// rollback latched on its run still rolls it back.
		o.schedule(key, o.o.Now().Add(heldInterval))
	}
}
