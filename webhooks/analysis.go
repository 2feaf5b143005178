package webhooks

import (
	"errors"
	"github.com/aurum/canary/runs"
	"maps"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/rules"
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
	res, ok := s.analyze(c, pol, params, params[paramRevision])
	if !ok {
		return
	}
	c.JSON(http.StatusOK, res)
}

// analyze runs one analysis, as part of a run when the params name one
// (namespace and name), and answers the error itself when it could not run.
func (s *Server) analyze(c *gin.Context, pol *rules.Policy, params map[string]string, revision string) (*analysis.Result, bool) {
	start := time.Now()
	ns, name := params[paramNamespace], params[paramName]
	var (
		res *analysis.Result
		err error
	)
	if ns != "" && name != "" {
		for _, v := range []string{ns, name, revision} {
			if v != "" && !rules.IsName(v) {
				s.abort(c, http.StatusBadRequest, "namespace, name and revision must be Kubernetes-style names, got "+strconv.Quote(v))
				return nil, false
			}
		}
		res, err = s.runs.Analyze(c.Request.Context(), s.evaluator, pol, runs.Target{Namespace: ns, Name: name, Revision: revision}, params, time.Time{})
	} else {
		res, err = s.evaluator.Evaluate(c.Request.Context(), pol, params, time.Time{})
	}
	switch {
	case errors.Is(err, rules.ErrInvalidParams):
		s.abort(c, http.StatusBadRequest, err.Error())
		return nil, false
	case errors.Is(err, runs.ErrStore):
		s.metrics.storeErrors.Inc()
		s.logger.Error("analysis not recorded", "policy", pol.Name, "namespace", ns, "name", name, "err", err)
		s.abort(c, http.StatusServiceUnavailable, "analysis ran but could not be recorded: "+err.Error())
		return nil, false
	case err != nil:
		s.logger.Error("analysis failed", "policy", pol.Name, "err", err)
		s.abort(c, http.StatusInternalServerError, err.Error())
		return nil, false
	}
	s.metrics.analyses.WithLabelValues(pol.Name, string(res.Verdict)).Inc()
	s.metrics.analysisDuration.WithLabelValues(pol.Name).Observe(time.Since(start).Seconds())
	s.logger.Info("analysis", "policy", pol.Name, "run", res.Run, "verdict", res.Verdict,
		"decision", res.Decision, "reason", res.Reason, "duration", time.Since(start))
	return res, true
}
