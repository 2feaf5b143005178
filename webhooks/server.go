// Package webhooks is the HTTP surface of the engine: the Argo Rollouts web
// metric provider endpoint, Flagger's webhooks, the Alertmanager receiver,
// the runs API, the policy status and reload, the web UI (package ui's
// pages, and their data and live stream under /v1/ui), /metrics and
// health checks.
//
// Handlers are thin: they decode a request, call package runs (or the
// orchestrator), and encode the answer in the status codes each caller
// expects. Reactions to what happens to a run (metrics, the kill switch)
// are not here: they subscribe to the runs' events, so every path that
// latches or analyses gets them alike. Argo Rollouts
// treats any non-2xx answer as an error, so an analysis that ran is always a
// 200 with the verdict in the body; Flagger reads any status above 202 as
// "no", with the body as the reason; Alertmanager retries 5xx and never
// 4xx, so only transient faults are 5xx.
package webhooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/rollout"
	"github.com/aurum/canary/rollout/notify"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs"
	"github.com/aurum/canary/webhooks/reply"
)

// Defaults for Options.
const (
	// DefaultBodyLimit caps request bodies. An Alertmanager notification
	// with hundreds of alerts stays well under it.
	DefaultBodyLimit = 1 << 20
)

// Options configure a Server. Policies, Evaluator and Runs are required.
type Options struct {
	Policies  *rules.Loader
	Evaluator *analysis.Evaluator
	Runs      *runs.Runs
	Metrics   *Metrics
	// Gatherer serves /metrics; nil serves nothing there.
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
	// Auth holds each route group's tokens; a group without tokens is
	// open (canary serve only allows that when told to).
	Auth Auth
	// Panicked, when set, counts a handler's recovered panic.
	Panicked func(component string)
	// BodyLimit caps request bodies in bytes; default DefaultBodyLimit.
	BodyLimit int64
	// FlaggerInconclusiveFails makes an inconclusive check answer Flagger
	// with a failure; by default it answers 200 and logs.
	FlaggerInconclusiveFails bool
	// Rollouts, when set, serves the orchestrator's API under
	// /v1/rollouts and /v1/groups, and its health is part of /readyz.
	Rollouts *rollout.Orchestrator
	// Notifications, when set, is reported at /v1/notifications.
	Notifications interface{ Status() []notify.RouteStatus }
	// UI, when set, serves the web UI under /ui and its data under
	// /v1/ui.
	UI *UIOptions
}

// Server is the engine's HTTP handler. Build one per process; it holds no
// global state.
type Server struct {
	policies     *rules.Loader
	evaluator    *analysis.Evaluator
	runs         *runs.Runs
	metrics      *Metrics
	logger       *slog.Logger
	auth         Auth
	bodyLimit    int64
	inconclFails bool
	rollouts     *rollout.Orchestrator
	panicked     func(string)

	notifications interface{ Status() []notify.RouteStatus }
	ui            *webUI

	router   *gin.Engine
	draining atomic.Bool
	// lastReloadErr is the last rejected reload's error, logged once.
	lastReloadErr atomic.Pointer[string]
}

// New builds a server and its router.
func New(o Options) (*Server, error) {
	if o.Policies == nil || o.Evaluator == nil || o.Runs == nil {
		return nil, errors.New("webhooks: Policies, Evaluator and Runs are required")
	}
	s := &Server{
		policies:     o.Policies,
		evaluator:    o.Evaluator,
		runs:         o.Runs,
		metrics:      o.Metrics,
		logger:       o.Logger,
		auth:         o.Auth,
		bodyLimit:    o.BodyLimit,
		inconclFails: o.FlaggerInconclusiveFails,
		rollouts:     o.Rollouts,
		panicked:     o.Panicked,

		notifications: o.Notifications,
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.metrics == nil {
		s.metrics = NewMetrics(nil)
	}
	if s.bodyLimit <= 0 {
		s.bodyLimit = DefaultBodyLimit
	}
	if set := o.Policies.Set(); set != nil {
		s.metrics.policiesLoaded.Set(float64(len(set.Policies)))
		s.metrics.lastReload.Set(float64(o.Policies.Status().LastSuccess.Unix()))
	}

	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.NoRoute(func(c *gin.Context) { s.abort(c, http.StatusNotFound, "no such endpoint: "+c.Request.URL.Path) })
	r.NoMethod(func(c *gin.Context) {
		s.abort(c, http.StatusMethodNotAllowed, c.Request.Method+" is not allowed on "+c.Request.URL.Path)
	})
	r.Use(secure, s.recover, s.instrument, s.limitBody)

	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })
	r.GET("/readyz", s.ready)
	r.GET("/v1/openapi.yaml", s.openAPI)
	if o.Gatherer != nil {
		h := promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{})
		r.GET("/metrics", gin.WrapH(h))
	}

	argo := r.Group("/v1/analysis", s.require(GroupAnalysis, false))
	argo.GET("/:policy", s.analysis)
	argo.POST("/:policy", s.analysis)

	flagger := r.Group("/v1/flagger", s.require(GroupFlagger, true))
	flagger.POST("/rollback", s.flaggerRollback)
	flagger.POST("/events", s.flaggerEvent)
	flagger.POST("/:policy/check", s.flaggerCheck)
	flagger.POST("/:policy/gate", s.flaggerGate)

	r.POST("/v1/alertmanager", s.require(GroupAlertmanager, false), s.alertmanager)

	admin := r.Group("", s.require(GroupAdmin, false))
	admin.GET("/v1/runs", s.listRuns)
	admin.GET("/v1/runs/:namespace/:name", s.getRun)
	admin.POST("/v1/runs/:namespace/:name/:action", s.actOnRun)
	admin.GET("/v1/policies", s.listPolicies)
	admin.GET("/v1/notifications", s.listNotifications)
	admin.POST("/v1/rollouts", s.startRollout)
	admin.GET("/v1/rollouts", s.listRollouts)
	admin.GET("/v1/rollouts/:namespace/:name", s.getRollout)
	admin.POST("/v1/rollouts/:namespace/:name/:action", s.actOnRollout)
	admin.POST("/v1/groups", s.startGroup)
	admin.GET("/v1/groups/:namespace/:name", s.getGroup)
	admin.POST("/-/reload", s.reload)

	if o.UI != nil {
		if err := s.mountUI(r, o.UI); err != nil {
			return nil, err
		}
	}
	s.router = r
	return s, nil
}

// ServeHTTP serves the router, under the UI's path prefix too.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.router.ServeHTTP(w, s.stripPrefix(r))
}

// Drain makes /readyz fail, so load balancers stop sending new requests
// while in-flight ones finish during shutdown.
func (s *Server) Drain() { s.draining.Store(true) }

// Reload reloads the policies, logs and counts the outcome, and returns the
// error that kept the previous set in service, if any.
func (s *Server) Reload() error {
	err := s.policies.Reload()
	s.reloaded(err)
	return err
}

// ReloadIfChanged is Reload for the file watcher: it reloads only when the
// policy files changed.
func (s *Server) reloaded(err error) {
	if err != nil {
		// A policy path that cannot be read is tried on every poll; the
		// same rejection is logged and counted once, not every few seconds.
		if prev := s.lastReloadErr.Swap(new(err.Error())); prev != nil && *prev == err.Error() {
			return
		}
		s.metrics.reloadErrors.Inc()
		if set := s.policies.Set(); set == nil || len(set.Policies) == 0 {
			s.logger.Error("policy reload rejected; no policies are in service, and /readyz answers 503 until one loads", "err", err)
			return
		}
		s.logger.Error("policy reload rejected; the previous policies stay in service", "err", err)
		return
	}
	s.lastReloadErr.Store(nil)
	set := s.policies.Set()
	s.metrics.policiesLoaded.Set(float64(len(set.Policies)))
	s.metrics.lastReload.Set(float64(s.policies.Status().LastSuccess.Unix()))
	s.logger.Info("policies loaded", "policies", len(set.Policies), "files", len(set.Files))
}

// OnReload is the callback for rules.Loader.Watch.
func (s *Server) OnReload(err error) { s.reloaded(err) }

// render answers status code with v as JSON, not HTML-escaped
// (reply.JSON): every JSON answer of the server goes through it.
func render(c *gin.Context, code int, v any) {
	reply.JSON(c.Writer, code, v)
}

// orEmpty is s, or an empty list for nil: answers write [] for an empty
// list, never null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// abort ends the request with an error answer: msg's first line and the
// status's reason code (reply.Fail), the one shape of every 4xx and 5xx.
func (s *Server) abort(c *gin.Context, code int, msg string) {
	c.Abort()
	reply.Fail(c.Writer, code, msg)
}

func (s *Server) recover(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if s.panicked != nil {
				s.panicked("http")
			}
			s.logger.Error("handler panicked", "route", c.FullPath(), "panic", fmt.Sprint(r))
			s.abort(c, http.StatusInternalServerError, "internal error")
		}
	}()
	c.Next()
}

func (s *Server) instrument(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	code := c.Writer.Status()
	s.metrics.httpRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	if route != uiEventsRoute {
		// A live stream lasts as long as its page: not a latency.
		s.metrics.httpDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	}
	if code >= 500 {
		// The path only: a query string may hold a token.
		s.logger.Warn("request failed", "method", c.Request.Method, "path", c.Request.URL.Path, "code", code,
			"duration", time.Since(start))
	}
}

func (s *Server) limitBody(c *gin.Context) {
	if c.Request.ContentLength > s.bodyLimit {
		s.abort(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body of %d bytes is over the limit of %d", c.Request.ContentLength, s.bodyLimit))
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.bodyLimit)
}

// readBody reads the (limited) body, mapping an oversized one to 413.
func (s *Server) readBody(c *gin.Context) ([]byte, bool) {
	data, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.abort(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over the limit of %d bytes", s.bodyLimit))
			return nil, false
		}
		s.abort(c, http.StatusBadRequest, "cannot read request body: "+err.Error())
		return nil, false
	}
	return data, true
}

// readJSON reads the request body into v, strictly, answering 413 or 400
// itself when it cannot. An empty body leaves v as it is when optional.
func (s *Server) readJSON(c *gin.Context, v any, optional bool) bool {
	data, ok := s.readBody(c)
	if !ok {
		return false
	}
	if len(data) == 0 && optional {
		return true
	}
	if err := decodeStrict(data, v); err != nil {
		s.abort(c, http.StatusBadRequest, err.Error())
		return false
	}
	return true
}

// decodeStrict decodes one JSON value, rejecting unknown fields and
// trailing data: our own APIs are strict so a typo is an error, not a
// silently ignored field.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad JSON body: %w", err)
	}
	if dec.More() {
		return errors.New("bad JSON body: trailing data after the object")
	}
	return nil
}

func (s *Server) ready(c *gin.Context) {
	switch {
	case s.draining.Load():
		c.String(http.StatusServiceUnavailable, "shutting down\n")
	case s.policies.Set() == nil:
		c.String(http.StatusServiceUnavailable, "no policies loaded\n")
	case s.rollouts != nil && s.rollouts.Healthy() != nil:
		c.String(http.StatusServiceUnavailable, "%s\n", reply.OneLine(s.rollouts.Healthy().Error()))
	default:
		c.String(http.StatusOK, "ready\n")
	}
}

// policy looks the route's policy up, answering 404 when it is unknown.
func (s *Server) policy(c *gin.Context) (*rules.Policy, bool) {
	set := s.policies.Set()
	if set == nil {
		s.abort(c, http.StatusServiceUnavailable, "no policies loaded")
		return nil, false
	}
	pol, err := set.Get(c.Param("policy"))
	if err != nil {
		s.abort(c, http.StatusNotFound, err.Error())
		return nil, false
	}
	return pol, true
}
