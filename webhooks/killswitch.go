package webhooks

import (
	"context"
	"errors"
	"fmt"
	"github.com/aurum/canary/runs"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/aurum/canary/rules"
)

// Switch cuts a canary's traffic when a rollback latches, for policies whose
// traffic section asks for it. Argo Rollouts and Flagger act on a rollback
// at their next loop; the switch acts at once.
type Switch interface {
	// Cut applies the policy's onRollback to the run's canary traffic.
	Cut(ctx context.Context, pol *rules.Policy, params map[string]string) error
}

// cutTraffic runs the kill switch for runs with a rollback latched. Runs
// whose policy has no traffic section, or says onRollback: none, are left
// alone. It returns every failure, naming the run.
func (s *Server) cutTraffic(ctx context.Context, set *rules.Set, runs []*runs.Run) error {
	if s.killSwitch == nil || set == nil {
		return nil
	}
	var errs []error
	for _, run := range runs {
		pol, err := set.Get(run.Policy)
		if err != nil || pol.Traffic == nil || pol.Traffic.OnRollback == rules.OnRollbackNone {
			continue
		}
		err = s.killSwitch.Cut(ctx, pol, run.Params)
		result := "ok"
		if err != nil {
			result = "error"
			errs = append(errs, fmt.Errorf("run %s: %w", run.ID(), err))
			s.logger.Error("kill switch failed: the rollback is latched but traffic still reaches the canary",
				"run", run.ID(), "policy", pol.Name, "err", err)
		} else {
			s.logger.Warn("kill switch: canary traffic cut", "run", run.ID(), "policy", pol.Name, "on_rollback", pol.Traffic.OnRollback)
		}
		s.metrics.trafficCuts.WithLabelValues(result).Inc()
	}
	return errors.Join(errs...)
}

// cutFailed answers a request whose rollback latched but whose traffic cut
// failed: 503, so Alertmanager retries (the latch is idempotent, the cut
// is tried again) and a person calling the API sees it.
func (s *Server) cutFailed(c *gin.Context, err error) {
	s.abort(c, http.StatusServiceUnavailable, "rollback latched, but cutting canary traffic failed: "+err.Error())
}
