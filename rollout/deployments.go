package rollout

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/aurum/canary/rollout/deploy"
)

// deployPoll is how often a rollout waiting for a Deployment looks at it
// again, at most: the Deployment controller needs seconds, not minutes.
const deployPoll = 5 * time.Second

// deployObserved is what a tick did to and saw of a rollout's
// Deployments, for step to record.
type deployObserved struct {
	state deploy.State
	// applied, promoted and retired are set when the tick wrote the
	// canary, gave the stable the canary's template, or scaled the
	// canary to 0.
	applied, promoted *deploy.Status
	retired           bool
	// refused is why the canary cannot be made (the Deployment is
	// another controller's, or not ours to change).
	refused string
	// latch is a rollback latched before the stable took the new
	// version.
	latch string
}

// deployWork does the Deployment operation the rollout's phase and stage
// call for, and reads both Deployments. Operations are idempotent: one done
// but not recorded (a crash) is done again. Outside deploying and
// finalising it only reads, and a failed read is no error: the status
// then shows the last one.
func (o *Orchestrator) deployWork(ctx context.Context, r *Rollout) (*deployObserved, error) {
	spec, d := *r.Spec.Deployment, r.Deploy
	seen := &deployObserved{}
	switch {
	case r.Phase == PhaseDeploying && d.Stage == "":
		st, err := o.o.Deployments.ApplyCanary(ctx, spec)
		switch {
		case errors.Is(err, deploy.ErrManaged) || errors.Is(err, deploy.ErrBadSpec) || apierrors.IsInvalid(err) || apierrors.IsForbidden(err):
			// Trying again would be refused again: the rollout, which
			// has no traffic yet, rolls back and says why.
			seen.refused = err.Error()
		case err != nil:
			return nil, fmt.Errorf("apply canary deployment: %w", err)
		default:
			seen.applied = &st
		}
	case r.Phase == PhaseFinalising && d.Stage == "":
		// Until the stable takes the new version, a latched rollback
		// still rolls the canary back.
		if l, ok := o.o.Runs.RollbackLatch(r.Spec.Namespace, r.Spec.Name, r.Spec.Version); ok {
			seen.latch = "rollback latched by " + string(l.Source) + ": " + l.Reason
			break
		}
		st, err := o.o.Deployments.PromoteStable(ctx, spec)
		if err != nil {
			return nil, fmt.Errorf("promote stable deployment: %w", err)
		}
		seen.promoted = &st
	case r.Phase == PhaseFinalising && d.Stage == StageStableReady && r.AppliedWeight == 0:
		if _, err := o.o.Deployments.ScaleCanary(ctx, spec, 0); err != nil {
			return nil, fmt.Errorf("scale canary deployment to 0: %w", err)
		}
		seen.retired = true
	}
	st, err := o.o.Deployments.State(ctx, spec)
	if err != nil {
		if r.Phase == PhaseDeploying || r.Phase == PhaseFinalising {
			return nil, fmt.Errorf("read deployments: %w", err)
		}
		o.o.Logger.Warn("rollout deployments not read", "rollout", r.Spec.Key(), "err", err)
		return nil, nil
	}
	seen.state = st
	return seen, nil
}

// retireCanary scales a rolled-back rollout's canary to 0 and reads the
// Deployments.
func (o *Orchestrator) retireCanary(ctx context.Context, r *Rollout) (deploy.State, error) {
	spec := *r.Spec.Deployment
	if _, err := o.o.Deployments.ScaleCanary(ctx, spec, 0); err != nil {
		return deploy.State{}, fmt.Errorf("scale canary deployment to 0: %w", err)
	}
	return o.o.Deployments.State(ctx, spec)
}

// deploying waits for the canary Deployment to be available, then starts
// the schedule; a canary the controller gave up on, or not available by
// the progress deadline, rolls back.
func (o *Orchestrator) deploying(r *Rollout, now time.Time, seen *deployObserved) {
	d := r.Deploy
	deadline := r.PhaseSince.Add(time.Duration(r.Schedule.ProgressDeadline))
	if seen == nil {
		r.NextAt = now.Add(deployPoll)
		return
	}
	if seen.refused != "" {
		o.enterRollback(r, now, "canary deployment refused: "+seen.refused)
		return
	}
	if seen.applied != nil && d.Stage == "" {
		d.Stage = StageCanaryApplied
		r.record(Event{At: now, Type: "deployment", Step: r.Step, Weight: r.TargetWeight,
			Reason: fmt.Sprintf("canary deployment %s applied: %s, %d replicas", seen.applied.Name, images(seen.applied.Images), seen.applied.Desired)})
	}
	c := seen.state.Canary
	switch {
	case d.Stage == StageCanaryApplied && c.Complete() && c.Desired > 0:
		r.record(Event{At: now, Type: "deployment", Step: r.Step, Weight: r.TargetWeight, Reason: "canary deployment available: " + c.Replicas()})
		o.begin(r, now)
	case c.Failed != "":
		o.enterRollback(r, now, fmt.Sprintf("canary deployment %s failed: %s", c.Name, c.Failed))
	case !now.Before(deadline):
		o.enterRollback(r, now, fmt.Sprintf("canary deployment not available within its progress deadline (%s): %s",
			time.Duration(r.Schedule.ProgressDeadline), c.Replicas()))
	default:
		r.NextAt = pollUntil(now, r, deadline)
	}
}

// finalising promotes the stable Deployment once the canary has all the
// traffic: it gives the stable the canary's pod template, waits for it to
// roll out, moves the traffic back to it (weight 0), and scales the canary
// to 0. A stable that does not roll out by the deadline fails the rollout
// with the traffic still on the canary, for a person to look at.
func (o *Orchestrator) finalising(r *Rollout, now time.Time, seen *deployObserved) {
	d := r.Deploy
	deadline := r.PhaseSince.Add(time.Duration(r.Schedule.ProgressDeadline))
	if seen == nil {
		r.NextAt = now.Add(deployPoll)
		return
	}
	if seen.latch != "" && d.Stage == "" {
		o.enterRollback(r, now, seen.latch)
		return
	}
	if seen.promoted != nil && d.Stage == "" {
		d.Stage, d.StableGeneration = StageStableUpdated, max(seen.promoted.Generation, 1)
		r.record(Event{At: now, Type: "deployment", Step: r.Step, Weight: r.TargetWeight,
			Reason: fmt.Sprintf("stable deployment %s takes the canary's pod template (generation %d): %s", seen.promoted.Name, seen.promoted.Generation, images(seen.promoted.Images))})
	}
	s := seen.state.Stable
	switch d.Stage {
	case StageStableUpdated:
		switch {
		case s.ObservedGeneration >= d.StableGeneration && s.Complete():
			d.Stage = StageStableReady
			r.TargetWeight = 0
			r.record(Event{At: now, Type: "deployment", Step: r.Step, Weight: 0, Reason: "stable deployment rolled out: " + s.Replicas() + "; traffic goes back to it"})
			r.NextAt = now
		case s.Failed != "" || !now.Before(deadline):
			why := s.Failed
			if why == "" {
				why = fmt.Sprintf("not rolled out within its progress deadline (%s)", time.Duration(r.Schedule.ProgressDeadline))
			}
			r.ResumeTo = PhaseFinalising
			o.enter(r, PhaseFailed, now, fmt.Sprintf("stable deployment %s: %s: %s; the traffic stays on the canary (resume to wait again)", s.Name, why, s.Replicas()))
		default:
			r.NextAt = pollUntil(now, r, deadline)
		}
	case StageStableReady:
		if !seen.retired {
			r.NextAt = now // once the weight 0 is applied
			return
		}
		d.Stage = StageCanaryRetired
		r.record(Event{At: now, Type: "deployment", Step: r.Step, Weight: r.AppliedWeight, Reason: "canary deployment " + seen.state.Canary.Name + " scaled to 0"})
		o.enter(r, PhaseCompleted, now, fmt.Sprintf("promoted: stable deployment %s runs version %s; canary scaled to 0", r.Spec.Deployment.Name, r.Spec.Version))
	default:
		r.NextAt = now.Add(deployPoll)
	}
}

// pollUntil is when a rollout waiting for a Deployment looks again: soon,
// and not after its deadline.
func pollUntil(now time.Time, r *Rollout, deadline time.Time) time.Time {
	next := now.Add(min(deployPoll, time.Duration(r.Schedule.Interval)))
	if deadline.Before(next) {
		return deadline
	}
	return next
}

// images writes container images for events: app=repo:tag, sorted.
func images(m map[string]string) string {
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, c+"="+m[c])
	}
	return strings.Join(parts, " ")
}
