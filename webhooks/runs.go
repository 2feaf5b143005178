package webhooks

import (
	"cmp"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs"
	"github.com/aurum/canary/webhooks/reply"
)

// Defaults and bounds of the runs API's pages.
const (
	// defaultHistoryLimit is how many evaluations GET
	// /v1/runs/{ns}/{name} returns unless ?limit= says otherwise.
	defaultHistoryLimit = 20
	// defaultRunsLimit and maxRunsLimit bound a page of GET /v1/runs, in
	// canaries (every revision of each is listed).
	defaultRunsLimit = 100
	maxRunsLimit     = 1000
)

type runsResponse struct {
	Runs []*runs.Run `json:"runs"`
	// Next is the ?after= of the next page; empty on the last.
	Next string `json:"next,omitempty"`
}

type runResponse struct {
	Run     *runs.Run         `json:"run"`
	History []runs.Evaluation `json:"history,omitempty"`
	// Revisions are every kept run of the canary, the current one marked:
	// a rollback latched on an older revision shows here.
	Revisions []*runs.Run `json:"revisions,omitempty"`
}

// actionRequest is the body of a manual action. A reason is required; the
// revision defaults to ?revision=, then to the current one.
type actionRequest struct {
	Reason   string `json:"reason"`
	Revision string `json:"revision"`
}

// intParam reads a non-negative integer query parameter.
func intParam(c *gin.Context, name string, def, limit int) (int, bool) {
	v := c.Query(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || (limit > 0 && n > limit) {
		return 0, false
	}
	return n, true
}

func (s *Server) listRuns(c *gin.Context) {
	limit, ok := intParam(c, "limit", defaultRunsLimit, maxRunsLimit)
	if !ok || limit == 0 {
		s.abort(c, http.StatusBadRequest, "limit must be an integer from 1 to "+strconv.Itoa(maxRunsLimit))
		return
	}
	all, next := s.runs.List(c.Query("after"), limit)
	render(c, http.StatusOK, runsResponse{Runs: all, Next: next})
}

func (s *Server) getRun(c *gin.Context) {
	ns, name, rev := c.Param("namespace"), c.Param("name"), c.Query("revision")
	limit, ok := intParam(c, "limit", defaultHistoryLimit, 0)
	if !ok {
		s.abort(c, http.StatusBadRequest, "limit must be a non-negative integer")
		return
	}
	run, err := s.runs.Get(ns, name, rev)
	if errors.Is(err, runs.ErrRunNotFound) {
		s.abort(c, http.StatusNotFound, err.Error())
		return
	}
	if err != nil {
		s.storeFault(c, err)
		return
	}
	hist, err := s.runs.History(c.Request.Context(), ns, name, run.Revision, limit)
	if err != nil {
		s.storeFault(c, err)
		return
	}
	revs, _ := s.runs.Revisions(ns, name)
	render(c, http.StatusOK, runResponse{Run: run, History: hist, Revisions: revs})
}

// actOnRun applies rollback, promote, pause or resume, durably, before
// answering, and records who did it: the name of the token that
// authenticated the call.
func (s *Server) actOnRun(c *gin.Context) {
	ns, name, action := c.Param("namespace"), c.Param("name"), c.Param("action")
	switch action {
	case runs.ActionRollback, runs.ActionPromote, runs.ActionPause, runs.ActionResume:
	default:
		s.abort(c, http.StatusNotFound, "unknown action "+strconv.Quote(action)+": want rollback, promote, pause or resume")
		return
	}
	if _, err := s.runs.Get(ns, name, c.Query("revision")); err != nil {
		s.abort(c, http.StatusNotFound, err.Error())
		return
	}
	var req actionRequest
	if !s.readJSON(c, &req, false) {
		return
	}
	rev := cmp.Or(req.Revision, c.Query("revision"))
	run, err := s.runs.Act(c.Request.Context(), ns, name, rev, action, req.Reason, principal(c))
	switch {
	case errors.Is(err, runs.ErrReaction):
		s.abort(c, http.StatusServiceUnavailable, "rollback latched, but cutting canary traffic failed: "+err.Error())
		return
	case errors.Is(err, runs.ErrUnknownAction), errors.Is(err, runs.ErrRunNotFound):
		s.abort(c, http.StatusNotFound, err.Error())
		return
	case errors.Is(err, runs.ErrBadRequest):
		s.abort(c, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		s.storeFault(c, err)
		return
	}
	render(c, http.StatusOK, runResponse{Run: run})
}

func (s *Server) storeFault(c *gin.Context, err error) {
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
	// OpenRoutes lists the route groups that take calls without a token.
	OpenRoutes []string `json:"openRoutes"`
}

type loadStatus struct {
	LastAttempt time.Time `json:"lastAttempt,omitzero"`
	LastSuccess time.Time `json:"lastSuccess,omitzero"`
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
	resp := policiesResponse{Policies: []policyInfo{}, Status: s.status(), OpenRoutes: s.auth.Open()}
	if resp.OpenRoutes == nil {
		resp.OpenRoutes = []string{}
	}
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
	render(c, http.StatusOK, resp)
}

// reload reloads the policies now: 200 with the new list, or 500 with every
// error while the previous policies stay in service (as Prometheus's own
// /-/reload answers).
func (s *Server) reload(c *gin.Context) {
	if err := s.Reload(); err != nil {
		c.Abort()
		body := reply.NewError(http.StatusInternalServerError, "reload rejected; the previous policies stay in service")
		body.Errors = s.status().Errors
		render(c, http.StatusInternalServerError, body)
		return
	}
	s.listPolicies(c)
}
