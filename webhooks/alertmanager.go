package webhooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/aurum/canary/runs"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// amPayload is Alertmanager's webhook notification, version 4. It is
// decoded leniently: each Alertmanager release adds fields.
type amPayload struct {
	Version  string    `json:"version"`
	GroupKey string    `json:"groupKey"`
	Status   string    `json:"status"`
	Receiver string    `json:"receiver"`
	Alerts   []amAlert `json:"alerts"`
}

type amAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// alertmanagerResponse says what a delivery did.
type alertmanagerResponse struct {
	Alerts  int `json:"alerts"`
	Matched int `json:"matched"`
	Latched int `json:"latched"`
	Lifted  int `json:"lifted"`
}

// parseAlertmanager validates a notification; the error is the one-line
// reason for a 400, which Alertmanager does not retry.
func parseAlertmanager(data []byte) ([]runs.Alert, error) {
	var p amPayload
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("bad Alertmanager payload: %w", err)
	}
	if p.Version != "" && p.Version != "4" {
		return nil, fmt.Errorf("unsupported Alertmanager payload version %q (want 4)", p.Version)
	}
	alerts := make([]runs.Alert, 0, len(p.Alerts))
	for i, a := range p.Alerts {
		status := a.Status
		if status == "" {
			status = p.Status
		}
		if status != "firing" && status != "resolved" {
			return nil, fmt.Errorf("alert %d: status %q is neither firing nor resolved", i, status)
		}
		if len(a.Labels) == 0 {
			return nil, fmt.Errorf("alert %d: no labels", i)
		}
		alerts = append(alerts, runs.Alert{
			Status: status, Labels: a.Labels, Annotations: a.Annotations,
			StartsAt: a.StartsAt, Fingerprint: a.Fingerprint,
		})
	}
	return alerts, nil
}

// alertmanager receives notifications: firing alerts that match a run's
// policy latch its action, resolved ones lift pauses. 200 once every latch
// is durable; 400 for a malformed body; 503 when the store fails, which
// Alertmanager retries.
func (s *Server) alertmanager(c *gin.Context) {
	data, ok := s.readBody(c)
	if !ok {
		return
	}
	alerts, err := parseAlertmanager(data)
	if err != nil {
		s.abort(c, http.StatusBadRequest, err.Error())
		return
	}
	for _, a := range alerts {
		s.metrics.alerts.WithLabelValues(a.Status).Inc()
	}
	set := s.policies.Set()
	if set == nil {
		s.abort(c, http.StatusServiceUnavailable, "no policies loaded")
		return
	}
	report, err := s.runs.Alerts(c.Request.Context(), set, alerts)
	if errors.Is(err, runs.ErrReaction) && !errors.Is(err, runs.ErrStore) {
		// The latches are durable; a reaction (the kill switch) failed.
		// 503 makes Alertmanager retry, which retries the reaction.
		s.abort(c, http.StatusServiceUnavailable, "rollback latched, but cutting canary traffic failed: "+err.Error())
		return
	}
	if err != nil {
		s.logger.Error("alerts not recorded", "alerts", len(alerts), "err", err)
		s.abort(c, http.StatusServiceUnavailable, "alerts not recorded: "+err.Error())
		return
	}
	if report.Latched > 0 || report.Lifted > 0 {
		s.logger.Info("alerts applied", "alerts", len(alerts), "matched", report.Matched,
			"latched", report.Latched, "lifted", report.Lifted)
	}
	render(c, http.StatusOK, alertmanagerResponse{Alerts: len(alerts), Matched: report.Matched, Latched: report.Latched, Lifted: report.Lifted})
}
