package webhooks

import (
	"errors"
	"github.com/aurum/canary/runs"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/aurum/canary/rules"
)

// defaultHistoryLimit is how many evaluations GET /v1/runs/{ns}/{name}
// returns unless ?limit= says otherwise.
const defaultHistoryLimit = 20

type runsResponse struct {
	Runs []*runs.Run `json:"runs"`
}

type runResponse struct {
	Run     *runs.Run         `json:"run"`
	History []runs.Evaluation `json:"history,omitempty"`
}

// actionRequest is the optional body of a manual action.
type actionRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) listRuns(c *gin.Context) {
	all, err := s.runs.List(c.Request.Context())
	if err != nil {
		s.storeFault(c, err)
		return
	}
	if all == nil {
		all = []*runs.Run{}
	}
	c.JSON(http.StatusOK, runsResponse{Runs: all})
}

func (s *Server) getRun(c *gin.Context) {
	ns, name := c.Param("namespace"), c.Param("name")
	limit := defaultHistoryLimit
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			s.abort(c, http.StatusBadRequest, "limit must be a non-negative integer")
			return
		}
		limit = n
	}
	run, err := s.runs.Get(c.Request.Context(), ns, name)
	if errors.Is(err, runs.ErrRunNotFound) {
		s.abort(c, http.StatusNotFound, "no run for "+ns+"/"+name)
		return
	}
	if err != nil {
		s.storeFault(c, err)
		return
	}
	hist, err := s.runs.History(c.Request.Context(), ns, name, limit)
	if err != nil {
		s.storeFault(c, err)
		return
	}
	c.JSON(http.StatusOK, runResponse{Run: run, History: hist})
}

// actOnRun applies rollback, promote, pause or resume, durably, before
// answering.
func (s *Server) actOnRun(c *gin.Context) {
	ns, name, action := c.Param("namespace"), c.Param("name"), c.Param("action")
	var req actionRequest
	if !s.readJSON(c, &req, true) {
		return
	}
	run, err := s.runs.Act(c.Request.Context(), ns, name, action, req.Reason)
	switch {
	case errors.Is(err, runs.ErrUnknownAction):
		s.abort(c, http.StatusNotFound, err.Error())
		return
	case errors.Is(err, runs.ErrRunNotFound):
		s.abort(c, http.StatusNotFound, "no run for "+ns+"/"+name)
		return
	case err != nil:
		s.storeFault(c, err)
		return
	}
	s.logger.Info("manual action", "action", action, "run", run.ID(), "reason", req.Reason)
	if action == runs.ActionRollback {
		if err := s.cutTraffic(c.Request.Context(), s.policies.Set(), []*runs.Run{run}); err != nil {
			s.cutFailed(c, err)
			return
		}
	}
	c.JSON(http.StatusOK, runResponse{Run: run})
}

func (s *Server) storeFault(c *gin.Context, err error) {
	s.metrics.storeErrors.Inc()
	s.logger.Error("store", "route", c.FullPath(), "err", err)
	s.abort(c, http.StatusServiceUnavailable, "store unavailable: "+err.Error())
}

type policyInfo struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	File        string   `json:"file"`
	Line        int      `json:"line"`
	Params      []string `json:"params"`
	Queries     []string `json:"queries"`
	Rules       []string `json:"rules"`
}

type policiesResponse struct {
	Policies []policyInfo `json:"policies"`
	Status   loadStatus   `json:"status"`
}

type loadStatus struct {
	LastAttempt time.Time `json:"lastAttempt"`
	LastSuccess time.Time `json:"lastSuccess"`
	// Errors of the last attempt, each as file:line:col: message; empty
	// when it succeeded.
	Errors []string `json:"errors"`
}

func (s *Server) status() loadStatus {
	st := s.policies.Status()
	out := loadStatus{LastAttempt: st.LastAttempt, LastSuccess: st.LastSuccess, Errors: []string{}}
	var es rules.Errors
	switch {
	case errors.As(st.Err, &es):
		for _, e := range es {
			out.Errors = append(out.Errors, e.Error())
		}
	case st.Err != nil:
		out.Errors = append(out.Errors, st.Err.Error())
	}
	return out
}

func (s *Server) listPolicies(c *gin.Context) {
	resp := policiesResponse{Policies: []policyInfo{}, Status: s.status()}
	if set := s.policies.Set(); set != nil {
		for _, p := range set.Policies {
			info := policyInfo{Name: p.Name, Description: p.Description, File: p.File, Line: p.Line,
				Params: []string{}, Queries: []string{}, Rules: []string{}}
			for _, x := range p.Params {
				info.Params = append(info.Params, x.Name)
			}
			for _, q := range p.Queries {
				info.Queries = append(info.Queries, q.Name)
			}
			for _, r := range p.Rules {
				info.Rules = append(info.Rules, r.Name)
			}
			resp.Policies = append(resp.Policies, info)
		}
	}
	c.JSON(http.StatusOK, resp)
}

// reload reloads the policies now: 200 with the new list, or 500 with every
// error while the previous policies stay in service (as Prometheus's own
// /-/reload answers).
func (s *Server) reload(c *gin.Context) {
	if err := s.Reload(); err != nil {
		c.AbortWithStatusJSON(http.StatusInternalServerError, struct {
			Error  string   `json:"error"`
			Errors []string `json:"errors"`
		}{Error: "reload rejected; the previous policies stay in service", Errors: s.status().Errors})
		return
	}
	s.listPolicies(c)
}
