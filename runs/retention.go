package runs

import (
	"context"
	"fmt"
	"time"
)

// Expire deletes the canaries idle for longer than the retention, with
// all their runs and history: Retention for most, LatchedRetention for a
// canary one of whose runs holds a rollback latch, since deleting it lifts
// that latch. It returns how many canaries it deleted. Each deletion is
// durable and logged.
func (r *Runs) Expire(ctx context.Context) (int, error) {
	now := r.now()
	r.mu.RLock()
	var idle []*entry
	for _, e := range r.canaries {
		if s := e.snap.Load(); s != nil && r.expired(s.canary, now) {
			idle = append(idle, e)
		}
	}
	r.mu.RUnlock()
	deleted := 0
	for _, e := range idle {
		ok, err := r.expire(ctx, e, now)
		if err != nil {
			return deleted, err
		}
		if ok {
			deleted++
		}
	}
	return deleted, nil
}

// expired reports whether a canary is due for deletion.
func (r *Runs) expired(c *Canary, now time.Time) bool {
	idle := now.Sub(c.UpdatedAt)
	for _, run := range c.Runs {
		if run.Has(LatchRollback) {
			return r.o.LatchedRetention > 0 && idle > r.o.LatchedRetention
		}
	}
	return idle > r.o.Retention
}

func (r *Runs) expire(ctx context.Context, e *entry, now time.Time) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.snap.Load()
	if e.gone || s == nil || !r.expired(s.canary, now) {
		return false, nil // changed meanwhile
	}
	c := s.canary
	if err := r.store.Delete(ctx, c.Namespace, c.Name); err != nil {
		r.storeError(err)
		return false, fmt.Errorf("%w: delete %s: %w", ErrStore, c.Key(), err)
	}
	r.mu.Lock()
	delete(r.canaries, c.Key())
	e.gone = true
	r.mu.Unlock()
	level, msg := r.logger.Info, "canary deleted after its retention"
	for _, run := range c.Runs {
		if run.Has(LatchRollback) {
			level, msg = r.logger.Warn, "canary deleted after its retention; its rollback latch goes with it"
		}
	}
	level(msg, "canary", c.Key(), "idle", now.Sub(c.UpdatedAt).Round(time.Minute), "runs", len(c.Runs))
	events := make([]Event, 0, len(c.Runs))
	for _, run := range c.Runs {
		events = append(events, Event{Kind: EventExpired, At: now, Origin: OriginRetention, Run: run})
	}
	r.logReaction(r.publish(ctx, events...))
	return true, nil
}

// Janitor runs Expire every interval until ctx is done, recovering a
// panic into a logged error so retention cannot take the process down.
func (r *Runs) Janitor(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		r.expireSafely(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Runs) expireSafely(ctx context.Context) {
	defer func() {
		if p := recover(); p != nil {
			r.panicked("retention")
			r.logger.Error("retention panicked", "panic", fmt.Sprint(p))
		}
	}()
	if n, err := r.Expire(ctx); err != nil {
		r.logger.Error("retention failed", "deleted", n, "err", err)
	}
}
