package rollout

import (
	"context"
	"sync"
	"time"
)

// Run ticks every rollout that is in progress when it is due, until ctx is
// done. At start it resumes every rollout the store holds: a process that
// was killed picks up where it was. Manual actions and new rollouts wake
// it at once.
func (o *Orchestrator) Run(ctx context.Context) error {
	all, err := o.List(ctx)
	if err != nil {
		return err
	}
	for _, r := range all {
		if !r.Phase.Terminal() {
			o.schedule(r.Spec.Name, o.o.Now())
		}
	}
	sem := make(chan struct{}, o.o.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := o.o.Now()
		next := now.Add(time.Minute)
		var due []string
		o.mu.Lock()
		for name, at := range o.due {
			if !at.After(now) {
				due = append(due, name)
				delete(o.due, name)
			} else if at.Before(next) {
				next = at
			}
		}
		o.mu.Unlock()
		for _, name := range due {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				r, err := o.Tick(ctx, name)
				switch {
				case err != nil && ctx.Err() == nil:
					o.o.Logger.Error("rollout tick failed", "rollout", name, "err", err)
					// Try again later rather than never.
					o.schedule(name, o.o.Now().Add(10*time.Second))
				case r != nil && (r.Phase.Terminal() || r.Phase == PhasePaused || r.Phase == PhaseFailed):
					o.unschedule(name)
				}
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
