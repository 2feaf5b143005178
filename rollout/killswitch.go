package rollout

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/traffic"
	"github.com/aurum/canary/traffic/routers"
)

// Target converts a policy's rendered traffic section into the routers'
// description of it.
func Target(spec rules.TrafficSpec) routers.Target {
	return routers.Target{
		Router: spec.Router, Namespace: spec.Namespace, Ingress: spec.Ingress, HTTPRoute: spec.HTTPRoute,
		StableService: spec.StableService, CanaryService: spec.CanaryService,
		AnnotationPrefix: spec.AnnotationPrefix, TakeOver: spec.TakeOver,
	}
}

// Switch is the kill switch of the webhook service: it applies a policy's
// onRollback to a run's canary traffic.
type Switch struct {
	clients routers.Clients
	logger  *slog.Logger
	// life bounds step-downs, which outlive the request that started
	// them; Close cancels them and waits.
	life    context.Context
	stop    context.CancelFunc
	running sync.WaitGroup
	mu      sync.Mutex
	active  map[string]context.CancelFunc
}

// NewSwitch returns a kill switch using clients.
func NewSwitch(clients routers.Clients, logger *slog.Logger) *Switch {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	life, stop := context.WithCancel(context.Background())
	return &Switch{clients: clients, logger: logger, life: life, stop: stop, active: map[string]context.CancelFunc{}}
}

// Cut cuts the run's canary traffic at once (onRollback: zero), or starts
// stepping it down on the policy's schedule (onRollback: stepDown) and
// returns once the first step is applied.
func (s *Switch) Cut(ctx context.Context, pol *rules.Policy, params map[string]string) error {
	if pol.Traffic == nil || pol.Traffic.OnRollback == rules.OnRollbackNone {
		return nil
	}
	resolved, err := pol.ResolveParams(params)
	if err != nil {
		return err
	}
	spec, err := pol.Traffic.Render(resolved)
	if err != nil {
		return err
	}
	r, err := routers.New(Target(spec), s.clients, s.logger)
	if err != nil {
		return err
	}
	if pol.Traffic.OnRollback != rules.OnRollbackStepDown {
		return r.Reset(ctx)
	}
	weights := slices.Clone(pol.Traffic.StepDown)
	// Start from the first weight now, so the caller knows the router
	// works; the rest follows in the background.
	if err := r.Apply(ctx, traffic.Step{Weight: weights[0]}); err != nil {
		return err
	}
	key := spec.Namespace + "/" + spec.Ingress + spec.HTTPRoute
	sctx, cancel := context.WithCancel(s.life)
	s.mu.Lock()
	if prev := s.active[key]; prev != nil {
		prev() // a redelivery restarts the schedule rather than racing it
	}
	s.active[key] = cancel
	s.mu.Unlock()
	s.running.Add(1)
	go func() {
		defer s.running.Done()
		defer cancel()
		t := time.NewTimer(pol.Traffic.StepDownInterval)
		defer t.Stop()
		select {
		case <-sctx.Done():
			return
		case <-t.C:
		}
		err := traffic.StepDown(sctx, r, weights[1:], pol.Traffic.StepDownInterval)
		if err != nil && !errors.Is(err, context.Canceled) {
			s.logger.Error("traffic step-down failed", "policy", pol.Name, "target", key, "err", err)
			return
		}
		s.logger.Info("traffic stepped down", "policy", pol.Name, "target", key)
	}()
	return nil
}

// Close stops step-downs in progress and waits for them.
func (s *Switch) Close() {
	s.stop()
	s.running.Wait()
}
