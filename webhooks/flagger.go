package webhooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs"
	"github.com/aurum/canary/webhooks/reply"
)

// flaggerPayload is what Flagger posts to every webhook. It is decoded
// leniently: a newer Flagger may add fields.
type flaggerPayload struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Phase     string            `json:"phase"`
	Checksum  string            `json:"checksum"`
	Metadata  map[string]string `json:"metadata"`
}

// parseFlagger validates a Flagger payload; the error is the one-line
// reason for a 400.
func parseFlagger(data []byte) (flaggerPayload, error) {
	var p flaggerPayload
	if err := json.Unmarshal(data, &p); err != nil {
		return p, fmt.Errorf("bad Flagger payload: %w", err)
	}
	switch {
	case p.Name == "":
		return p, errors.New("bad Flagger payload: missing name")
	case p.Namespace == "":
		return p, errors.New("bad Flagger payload: missing namespace")
	}
	for _, v := range []string{p.Name, p.Namespace, p.Checksum} {
		if v != "" && !rules.IsName(v) {
			return p, fmt.Errorf("bad Flagger payload: %q is not a Kubernetes-style name", v)
		}
	}
	return p, nil
}

// decodeFlagger reads a Flagger payload, answering 400 itself when it is
// unusable.
func (s *Server) decodeFlagger(c *gin.Context) (flaggerPayload, bool) {
	data, ok := s.readBody(c)
	if !ok {
		return flaggerPayload{}, false
	}
	p, err := parseFlagger(data)
	if err != nil {
		s.flaggerAnswer(c, http.StatusBadRequest, err.Error())
		return p, false
	}
	return p, true
}

// params are the payload's metadata plus its name and namespace, which
// win over metadata keys of the same name.
func (p flaggerPayload) params() map[string]string {
	params := make(map[string]string, len(p.Metadata)+2)
	for k, v := range p.Metadata {
		params[k] = v
	}
	params[paramName], params[paramNamespace] = p.Name, p.Namespace
	return params
}

// flaggerYes is the body of a Flagger answer that says yes (a status of
// 202 or less); a "no" is an error answer (abort), whose one-line error
// Flagger records in its events as the reason.
type flaggerYes struct {
	Message string `json:"message"`
}

// flaggerAnswer answers Flagger: yes with {"message"} for a status of 202
// or less, no in the error shape for any other.
func (s *Server) flaggerAnswer(c *gin.Context, code int, msg string) {
	if code > http.StatusAccepted {
		s.abort(c, code, msg)
		return
	}
	c.Abort()
	render(c, code, flaggerYes{Message: reply.OneLine(msg)})
}

// flaggerCheck serves pre-rollout and rollout hooks: 200 when the analysis
// passes, 403 with the reason when it fails; an inconclusive analysis
// passes (logged) unless the server is configured to fail it.
func (s *Server) flaggerCheck(c *gin.Context) {
	s.flagger(c, false)
}

// flaggerGate serves confirm-rollout, confirm-traffic-increase and
// confirm-promotion: 200 only when the analysis passes, the run is
// neither paused nor latched, and no hold or cap decision rule holds.
func (s *Server) flaggerGate(c *gin.Context) {
	s.flagger(c, true)
}

func (s *Server) flagger(c *gin.Context, gate bool) {
	pol, ok := s.policy(c)
	if !ok {
		return
	}
	p, ok := s.decodeFlagger(c)
	if !ok {
		return
	}
	res, ok := s.analyze(c, pol, p.params(), p.Checksum, runs.OriginFlagger)
	if !ok {
		return
	}
	answer := string(res.Verdict) + ": " + res.Reason
	if res.Latch != nil {
		answer += "; to lift: " + res.Latch.Lift.Command
	}
	switch res.Verdict {
	case analysis.VerdictPass:
		// A hold or cap decision rule keeps the canary's weight: a
		// check passes, but a gate must not let Flagger raise it (it
		// cannot lower it to a cap; holding is the nearest it does).
		if gate && res.Decision == analysis.DecisionHold {
			s.flaggerAnswer(c, http.StatusForbidden, "hold: "+res.Reason)
			return
		}
		s.flaggerAnswer(c, http.StatusOK, answer)
	case analysis.VerdictInconclusive:
		if gate || s.inconclFails {
			s.flaggerAnswer(c, http.StatusForbidden, answer)
			return
		}
		s.logger.Warn("inconclusive analysis passed to Flagger", "policy", pol.Name, "run", res.Run, "reason", res.Reason)
		s.flaggerAnswer(c, http.StatusOK, answer)
	default:
		s.flaggerAnswer(c, http.StatusForbidden, answer)
	}
}

// flaggerRollback serves the rollback hook, which Flagger calls on every
// loop: 200 (roll back now) when a rollback is latched for the run of the
// payload's checksum (any revision's when it has none), 403 otherwise.
func (s *Server) flaggerRollback(c *gin.Context) {
	p, ok := s.decodeFlagger(c)
	if !ok {
		return
	}
	l, latched := s.runs.RollbackLatch(p.Namespace, p.Name, p.Checksum)
	if !latched {
		s.flaggerAnswer(c, http.StatusForbidden, "no rollback latched for "+p.Namespace+"/"+p.Name)
		return
	}
	msg := "rollback latched by " + string(l.Source)
	if l.Reason != "" {
		msg += ": " + l.Reason
	}
	msg += "; to lift: " + l.Lift.Command
	s.logger.Info("telling Flagger to roll back", "namespace", p.Namespace, "name", p.Name, "reason", msg)
	s.flaggerAnswer(c, http.StatusOK, msg)
}

// flaggerEvent serves the event hook: 202 always for a usable payload; a
// new checksum starts a new run.
func (s *Server) flaggerEvent(c *gin.Context) {
	p, ok := s.decodeFlagger(c)
	if !ok {
		return
	}
	if _, err := s.runs.Event(c.Request.Context(), p.Namespace, p.Name, p.Checksum, p.Phase); err != nil && !errors.Is(err, runs.ErrReaction) {
		code := http.StatusServiceUnavailable
		if errors.Is(err, runs.ErrBadRequest) {
			code = http.StatusBadRequest
		}
		s.logger.Error("flagger event not recorded", "namespace", p.Namespace, "name", p.Name, "err", err)
		s.flaggerAnswer(c, code, "event not recorded: "+err.Error())
		return
	}
	if msg := p.Metadata["eventMessage"]; msg != "" {
		s.logger.Debug("flagger event", "namespace", p.Namespace, "name", p.Name, "phase", p.Phase,
			"type", p.Metadata["eventType"], "message", strings.TrimSpace(msg))
	}
	s.flaggerAnswer(c, http.StatusAccepted, "accepted")
}
