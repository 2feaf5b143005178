package rollout

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs"
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

// KillSwitch cuts a canary's traffic when a rollback latches on its run,
// for policies whose traffic section asks for it. Argo Rollouts and
// Flagger act on a rollback at their next loop; the switch acts before the
// latch is answered. It subscribes to the runs' events, so a rollback
// latched by an alert, a person or a failed analysis (latchOnFail) cuts
// alike, and it lowers the weight through Traffic, the one step-down
// engine, so it never raises one and a redelivered alert does not start
// the schedule again.
type KillSwitch struct {
	traffic  *Traffic
	policies func() *rules.Set
	logger   *slog.Logger
}

// NewKillSwitch returns the kill switch; subscribe it to the runs.
func NewKillSwitch(t *Traffic, policies func() *rules.Set, logger *slog.Logger) *KillSwitch {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &KillSwitch{traffic: t, policies: policies, logger: logger}
}

// Notify reacts to a rollback latch: the policy's onRollback (zero at
// once, or stepDown along its schedule; none leaves traffic alone) starts
// or joins the step-down of the run's canary traffic. The error says the
// latch stands but the first weight could not be applied; the step-down
// retries it.
func (k *KillSwitch) Notify(ctx context.Context, e runs.Event) error {
	if e.Kind != runs.EventLatched || e.Latch == nil || e.Latch.Kind != runs.LatchRollback || e.Run == nil {
		return nil
	}
	set := k.policies()
	if set == nil {
		return nil
	}
	pol, err := set.Get(e.Run.Policy)
	if err != nil || pol.Traffic == nil || pol.Traffic.OnRollback == rules.OnRollbackNone {
		return nil
	}
	resolved, err := pol.ResolveParams(e.Run.Params)
	if err != nil {
		return fmt.Errorf("kill switch for %s: %w", e.Run.ID(), err)
	}
	spec, err := pol.Traffic.Render(resolved)
	if err != nil {
		return fmt.Errorf("kill switch for %s: %w", e.Run.ID(), err)
	}
	plan := Plan{From: -1}
	if pol.Traffic.OnRollback == rules.OnRollbackStepDown {
		plan.Weights, plan.Interval = pol.Traffic.StepDown, pol.Traffic.StepDownInterval
	}
	if _, err := k.traffic.RollBack(ctx, Target(spec), plan, e.Run.ID(), e.Latch.Reason); err != nil {
		k.logger.Error("kill switch failed: the rollback is latched but traffic still reaches the canary; retrying",
			"run", e.Run.ID(), "policy", pol.Name, "err", err)
		return fmt.Errorf("kill switch for %s: %w", e.Run.ID(), err)
	}
	return nil
}
