package webhooks

import (
	"errors"
	"maps"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs"
)

// Reserved params: they identify the run rather than feed the queries
// (policies may still declare namespace and name to use them in queries).
const (
	paramNamespace = "namespace"
	paramName      = "name"
	paramRevision  = "revision"
	paramToken     = "token"
)

// analysisRequest is the JSON body of POST /v1/analysis/{policy}.
type analysisRequest struct {
	Params map[string]string `json:"params"`
}

// analysis serves Argo Rollouts' web metric provider and anyone else who
// wants a verdict: GET with params in the query string, or POST with
// {"params": {...}}. An analysis that ran is always answered 200.
func (s *Server) analysis(c *gin.Context) {
	pol, ok := s.policy(c)
	if !ok {
		return
	}
	params := map[string]string{}
	for k, vs := range c.Request.URL.Query() {
		if k != paramToken && len(vs) > 0 {
			params[k] = vs[0]
		}
	}
	if c.Request.Method == http.MethodPost {
		var req analysisRequest
		if !s.readJSON(c, &req, true) {
			return
		}
		maps.Copy(params, req.Params)
	}
	a, ok := s.analyze(c, pol, params, params[paramRevision], runs.OriginArgo)
	if !ok {
		return
	}
	render(c, http.StatusOK, a)
}

// analyze runs one analysis, as part of a run when the params name one
// (namespace and name), and answers the error itself when it could not run.
func (s *Server) analyze(c *gin.Context, pol *rules.Policy, params map[string]string, revision, origin string) (*runs.Answer, bool) {
	start := time.Now()
	ref := runs.Ref{Namespace: params[paramNamespace], Name: params[paramName], Revision: revision}
	if ref.Namespace == "" || ref.Name == "" {
		ref = runs.Ref{} // not a run: answered, not recorded
	}
	a, err := s.runs.Analyze(c.Request.Context(), s.evaluator, pol, ref, params, time.Time{}, origin)
	switch {
	case errors.Is(err, rules.ErrInvalidParams), errors.Is(err, runs.ErrBadRequest):
		s.abort(c, http.StatusBadRequest, err.Error())
		return nil, false
	case errors.Is(err, runs.ErrStore), errors.Is(err, runs.ErrFull):
		s.logger.Error("analysis not recorded", "policy", pol.Name, "namespace", ref.Namespace, "name", ref.Name, "err", err)
		s.abort(c, http.StatusServiceUnavailable, "analysis ran but could not be recorded: "+err.Error())
		return nil, false
	case err != nil:
		s.logger.Error("analysis failed", "policy", pol.Name, "err", err)
		s.abort(c, http.StatusInternalServerError, err.Error())
		return nil, false
	}
	s.logger.Info("analysis", "policy", pol.Name, "run", a.Run, "verdict", a.Verdict,
		"decision", a.Decision, "reason", a.Reason, "duration", time.Since(start))
	return a, true
}
