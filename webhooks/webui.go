package webhooks

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/aurum/canary/rollout"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs"
	"github.com/aurum/canary/webhooks/ui"
)

// Bounds of the web UI's endpoints.
const (
	// maxOverviewRuns bounds the runs the overview lists; the newest
	// come first and the answer says when some were left out.
	maxOverviewRuns = 5000
	// uiHistoryLimit is how many of a run's latest analyses its page
	// charts.
	uiHistoryLimit = 200
	// DefaultMaxTries bounds the policies page's evaluations in flight:
	// each runs every query of a policy.
	DefaultMaxTries = 2
)

// uiEventsRoute is the live stream's route.
const uiEventsRoute = "/v1/ui/events"

// UIOptions turn the web UI on.
type UIOptions struct {
	// Prefix is the path the UI is reached under behind a proxy, such as
	// /canary for an Ingress path; empty for none. Requests under it are
	// served with it stripped, so a proxy may strip it or not.
	Prefix string
	// Stream is the live feed the pages follow; nil serves the pages
	// without live updates.
	Stream *ui.Stream
	// Prometheus gives the URL of a Prometheus source's own UI, for the
	// links to the rendered queries; nil links none.
	Prometheus ui.PrometheusLink
	// MaxTries bounds the "try it" evaluations in flight; default
	// DefaultMaxTries.
	MaxTries int
}

// webUI is the server's UI state.
type webUI struct {
	site       *ui.Site
	stream     *ui.Stream
	prometheus ui.PrometheusLink
	tries      chan struct{}
}

// secure sets the security headers on every answer, the API's included:
// an answer of ours is never sniffed into a script or framed.
func secure(c *gin.Context) {
	ui.SecurityHeaders(c.Writer.Header())
}

// mountUI adds the pages (open: they hold no data) and the UI's read-only
// data and live stream (the ui route group).
func (s *Server) mountUI(r *gin.Engine, o *UIOptions) error {
	site, err := ui.NewSite(o.Prefix)
	if err != nil {
		return err
	}
	if o.MaxTries <= 0 {
		o.MaxTries = DefaultMaxTries
	}
	s.ui = &webUI{site: site, stream: o.Stream, prometheus: o.Prometheus, tries: make(chan struct{}, o.MaxTries)}
	home := func(c *gin.Context) {
		c.Header("Location", site.Prefix()+"/ui/")
		c.Status(http.StatusFound)
	}
	r.GET("/", home)
	r.GET("/ui", home)
	index := func(c *gin.Context) { site.ServeIndex(c.Writer, c.Request) }
	r.GET("/ui/", index)
	r.GET("/ui/runs/:namespace/:name", index)
	r.GET("/ui/rollouts/:namespace/:name", index)
	r.GET("/ui/policies", index)
	r.GET("/ui/static/*file", func(c *gin.Context) { site.ServeAsset(c.Writer, c.Request, c.Param("file")) })

	data := r.Group("/v1/ui", s.require(GroupUI, false))
	data.GET("/overview", s.uiOverview)
	data.GET("/runs/:namespace/:name", s.uiRun)
	data.GET("/rollouts/:namespace/:name", s.uiRollout)
	data.GET("/policies", s.uiPolicies)
	data.POST("/policies/:policy/eval", s.uiEval)
	data.GET("/events", s.uiEvents)
	return nil
}

// stripPrefix serves a request under the UI's prefix as if the proxy had
// stripped it.
func (s *Server) stripPrefix(r *http.Request) *http.Request {
	if s.ui == nil || s.ui.site.Prefix() == "" {
		return r
	}
	p := s.ui.site.Prefix()
	rest, ok := strings.CutPrefix(r.URL.Path, p)
	if !ok || (rest != "" && rest[0] != '/') {
		return r
	}
	if rest == "" {
		rest = "/"
	}
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	r2.URL = &u
	r2.URL.Path = rest
	r2.URL.RawPath = ""
	return r2
}

type uiOverviewResponse struct {
	Rows []ui.Row `json:"rows"`
	// Truncated says the oldest runs were left out.
	Truncated bool `json:"truncated,omitempty"`
	// Orchestrator says whether canary serve drives rollouts itself.
	Orchestrator bool `json:"orchestrator"`
	// Problems are stored rollouts that could not be read.
	Problems []string `json:"problems"`
}

func (s *Server) uiOverview(c *gin.Context) {
	var all []*runs.Run
	after, truncated := "", false
	for {
		page, next := s.runs.List(after, maxRunsLimit)
		all = append(all, page...)
		if next == "" {
			break
		}
		if len(all) >= maxOverviewRuns {
			truncated = true
			break
		}
		after = next
	}
	resp := uiOverviewResponse{Orchestrator: s.rollouts != nil, Problems: []string{}}
	var sts []rollout.Status
	if s.rollouts != nil {
		rs, problems, err := s.rollouts.List(c.Request.Context())
		if err != nil {
			s.rolloutError(c, err)
			return
		}
		for _, p := range problems {
			resp.Problems = append(resp.Problems, p.Error())
		}
		for _, r := range rs {
			sts = append(sts, r.Status())
		}
	}
	resp.Rows = ui.Overview(all, sts)
	if len(resp.Rows) > maxOverviewRuns {
		resp.Rows, truncated = resp.Rows[:maxOverviewRuns], true
	}
	resp.Truncated = truncated
	render(c, http.StatusOK, resp)
}

type uiRunResponse struct {
	Run *runs.Run `json:"run"`
	// History is the run's latest analyses, oldest first, and Chart
	// their chart (SVG).
	History   []runs.Evaluation `json:"history"`
	Chart     string            `json:"chart"`
	Revisions []*runs.Run       `json:"revisions"`
	// Policy is the run's policy as loaded now, and Queries its queries
	// rendered with the run's params; both absent when it is not loaded.
	Policy  *ui.PolicyView `json:"policy,omitempty"`
	Queries []ui.QueryView `json:"queries,omitempty"`
	// Rollout is the orchestrator's rollout of this revision, if any.
	Rollout *rollout.Status `json:"rollout,omitempty"`
}

func (s *Server) uiRun(c *gin.Context) {
	ns, name := c.Param("namespace"), c.Param("name")
	run, err := s.runs.Get(ns, name, c.Query("revision"))
	if errors.Is(err, runs.ErrRunNotFound) {
		s.abort(c, http.StatusNotFound, err.Error())
		return
	}
	if err != nil {
		s.storeFault(c, err)
		return
	}
	hist, err := s.runs.History(c.Request.Context(), ns, name, run.Revision, uiHistoryLimit)
	if err != nil {
		s.storeFault(c, err)
		return
	}
	revs, _ := s.runs.Revisions(ns, name)
	// Lists are [] when empty, never null.
	resp := uiRunResponse{Run: run, History: orEmpty(hist), Revisions: orEmpty(revs)}
	var pol *rules.Policy
	if set := s.policies.Set(); set != nil {
		pol, _ = set.Get(run.Policy)
	}
	if pol != nil {
		v := ui.Policy(pol)
		resp.Policy = &v
		resp.Queries = ui.RenderQueries(pol, run.Params, s.ui.prometheus)
	}
	resp.Chart = ui.RunChart("analyses of "+run.ID(), hist, pol)
	if s.rollouts != nil {
		if r, err := s.rollouts.Get(c.Request.Context(), ns, name); err == nil && r.Spec.Version == run.Revision {
			st := r.Status()
			resp.Rollout = &st
		}
	}
	render(c, http.StatusOK, resp)
}

type uiRolloutResponse struct {
	Rollout rollout.Status `json:"rollout"`
	// Chart is the weight over the rollout's events (SVG).
	Chart string `json:"chart"`
	// Run is the run of the rollout's analyses, when it has one.
	Run *runs.Run `json:"run,omitempty"`
}

func (s *Server) uiRollout(c *gin.Context) {
	o, ok := s.orchestrator(c)
	if !ok {
		return
	}
	r, err := o.Get(c.Request.Context(), c.Param("namespace"), c.Param("name"))
	if err != nil {
		s.rolloutError(c, err)
		return
	}
	st := r.Status()
	resp := uiRolloutResponse{Rollout: st, Chart: ui.RolloutChart(st)}
	if run, err := s.runs.Get(st.Namespace, st.Name, st.Version); err == nil {
		resp.Run = run
	}
	render(c, http.StatusOK, resp)
}

type uiPoliciesResponse struct {
	Policies   []ui.PolicyView `json:"policies"`
	Status     loadStatus      `json:"status"`
	OpenRoutes []string        `json:"openRoutes"`
}

func (s *Server) uiPolicies(c *gin.Context) {
	resp := uiPoliciesResponse{Policies: []ui.PolicyView{}, Status: s.status(), OpenRoutes: s.auth.Open()}
	if resp.OpenRoutes == nil {
		resp.OpenRoutes = []string{}
	}
	if set := s.policies.Set(); set != nil {
		for _, p := range set.Policies {
			resp.Policies = append(resp.Policies, ui.Policy(p))
		}
	}
	render(c, http.StatusOK, resp)
}

// uiEval runs a policy for the params given and answers as
// /v1/analysis does, without recording anything: it names no run, so no
// latch applies and no history grows. At most MaxTries run at once.
func (s *Server) uiEval(c *gin.Context) {
	pol, ok := s.policy(c)
	if !ok {
		return
	}
	var req analysisRequest
	if !s.readJSON(c, &req, true) {
		return
	}
	select {
	case s.ui.tries <- struct{}{}:
		defer func() { <-s.ui.tries }()
	default:
		c.Header("Retry-After", "1")
		s.abort(c, http.StatusTooManyRequests, "too many evaluations in flight (at most "+strconv.Itoa(cap(s.ui.tries))+"); try again")
		return
	}
	start := time.Now()
	a, err := s.runs.Analyze(c.Request.Context(), s.evaluator, pol, runs.Ref{}, req.Params, time.Time{}, runs.OriginManual)
	switch {
	case errors.Is(err, rules.ErrInvalidParams), errors.Is(err, runs.ErrBadRequest):
		s.abort(c, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		s.logger.Error("try-it analysis failed", "policy", pol.Name, "err", err)
		s.abort(c, http.StatusInternalServerError, err.Error())
		return
	}
	s.logger.Info("try-it analysis", "policy", pol.Name, "verdict", a.Verdict, "duration", time.Since(start))
	render(c, http.StatusOK, a)
}

func (s *Server) uiEvents(c *gin.Context) {
	if s.ui.stream == nil {
		s.abort(c, http.StatusNotFound, "the live stream is off")
		return
	}
	s.ui.stream.ServeHTTP(c.Writer, c.Request)
}
