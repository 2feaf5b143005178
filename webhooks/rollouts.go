package webhooks

import (
	"cmp"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/aurum/canary/rollout"
	"github.com/aurum/canary/rules"
)

type rolloutsResponse struct {
	Rollouts []rollout.Status `json:"rollouts"`
	// Problems are stored rollouts that could not be read; the others are
	// served all the same.
	Problems []string `json:"problems"`
}

// rolloutError maps the orchestrator's errors to statuses.
func (s *Server) rolloutError(c *gin.Context, err error) {
	switch {
	case errors.Is(err, rollout.ErrNotFound):
		s.abort(c, http.StatusNotFound, err.Error())
	case errors.Is(err, rollout.ErrBadSpec), errors.Is(err, rules.ErrInvalidParams):
		s.abort(c, http.StatusBadRequest, err.Error())
	case errors.Is(err, rollout.ErrConflict), errors.Is(err, rollout.ErrBadAction):
		s.abort(c, http.StatusConflict, err.Error())
	default:
		s.storeFault(c, err)
	}
}

func (s *Server) orchestrator(c *gin.Context) (*rollout.Orchestrator, bool) {
	if s.rollouts == nil {
		s.abort(c, http.StatusServiceUnavailable, "the orchestrator is off: it needs Kubernetes access (see canary serve --kubeconfig)")
		return nil, false
	}
	return s.rollouts, true
}

// startRollout starts a rollout; starting the same name and version again
// answers the existing one, 200 instead of 201.
func (s *Server) startRollout(c *gin.Context) {
	o, ok := s.orchestrator(c)
	if !ok {
		return
	}
	var spec rollout.Spec
	if !s.readJSON(c, &spec, false) {
		return
	}
	before, _ := o.Get(c.Request.Context(), cmp.Or(spec.Namespace, spec.Params["namespace"]), spec.Name)
	r, err := o.Start(c.Request.Context(), spec)
	if err != nil {
		s.rolloutError(c, err)
		return
	}
	code := http.StatusCreated
	if before != nil && before.Spec.Version == spec.Version {
		code = http.StatusOK
	}
	render(c, code, r.Status())
}

func (s *Server) listRollouts(c *gin.Context) {
	o, ok := s.orchestrator(c)
	if !ok {
		return
	}
	all, problems, err := o.List(c.Request.Context())
	if err != nil {
		s.rolloutError(c, err)
		return
	}
	resp := rolloutsResponse{Rollouts: []rollout.Status{}, Problems: []string{}}
	for _, p := range problems {
		resp.Problems = append(resp.Problems, p.Error())
	}
	for _, r := range all {
		resp.Rollouts = append(resp.Rollouts, r.Status())
	}
	render(c, http.StatusOK, resp)
}

func (s *Server) getRollout(c *gin.Context) {
	o, ok := s.orchestrator(c)
	if !ok {
		return
	}
	r, err := o.Get(c.Request.Context(), c.Param("namespace"), c.Param("name"))
	if err != nil {
		s.rolloutError(c, err)
		return
	}
	render(c, http.StatusOK, r.Status())
}

// actOnRollout applies promote, rollback, pause, resume or skip-step now.
func (s *Server) actOnRollout(c *gin.Context) {
	o, ok := s.orchestrator(c)
	if !ok {
		return
	}
	var req struct {
		Reason string `json:"reason"`
	}
	if !s.readJSON(c, &req, false) {
		return
	}
	r, err := o.Act(c.Request.Context(), c.Param("namespace"), c.Param("name"), c.Param("action"), req.Reason, principal(c))
	if err != nil && r == nil {
		s.rolloutError(c, err)
		return
	}
	if err != nil {
		// The action was recorded but its traffic change failed: the
		// rollout is in the failed phase, which the status shows.
		s.logger.Error("rollout action's traffic change failed", "rollout", c.Param("namespace")+"/"+c.Param("name"), "err", err)
	}
	render(c, http.StatusOK, r.Status())
}

func (s *Server) startGroup(c *gin.Context) {
	o, ok := s.orchestrator(c)
	if !ok {
		return
	}
	var gs rollout.GroupSpec
	if !s.readJSON(c, &gs, false) {
		return
	}
	st, err := o.StartGroup(c.Request.Context(), gs)
	if err != nil {
		s.rolloutError(c, err)
		return
	}
	render(c, http.StatusOK, st)
}

func (s *Server) getGroup(c *gin.Context) {
	o, ok := s.orchestrator(c)
	if !ok {
		return
	}
	st, err := o.Group(c.Request.Context(), c.Param("namespace"), c.Param("name"))
	if err != nil {
		s.rolloutError(c, err)
		return
	}
	render(c, http.StatusOK, st)
}
