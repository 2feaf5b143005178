package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/rollout"
)

// TestDemoScenarios runs each demo scenario end to end on a shortened
// schedule: the world, canary serve, the orchestrator and the nginx router
// writing the annotations the edge routes by. It checks how each ends and
// the canary weights the router wrote.
func TestDemoScenarios(t *testing.T) {
	short := &rollout.Override{
		Warmup: new(rollout.Duration(time.Second)), Interval: new(rollout.Duration(time.Second)),
		StepDuration: new(rollout.Duration(3 * time.Second)), Promotion: new(rollout.Duration(2 * time.Second)),
	}
	tests := []struct {
		scenario string
		phase    rollout.Phase
		weights  []string
		output   string
		// schedule replaces short when set.
		schedule *rollout.Override
		// notified are the kinds of notification the scenario tells.
		notified []string
	}{
		{scenario: "healthy", phase: rollout.PhaseCompleted, weights: []string{"10", "25", "50", "100"}, output: "promoted: the canary takes all traffic",
			notified: []string{"info promoted", "info rollout_completed"}},
		{scenario: "deploy", phase: rollout.PhaseCompleted, weights: []string{"10", "25", "50", "100", "0"},
			output:   "deployments: stable lmp-ingest runs ingest=registry.demo/lmp-ingest:v2 on 3/3; canary lmp-ingest-canary at 0 replicas",
			notified: []string{"info promoted", "info rollout_completed"}},
		{scenario: "errors", phase: rollout.PhaseRolledBack, weights: []string{"10", "25", "10", "0"}, output: "error-rate: ",
			notified: []string{"warning analysis_failed", "warning rollback_done"}},
		// The lag builds up at the producer's pace, which the shortened
		// steps may outrun by a step: only the start and the end are fixed.
		// Longer steps leave a producer slowed by a loaded machine time to
		// build the lag before the rollout could promote.
		{scenario: "lag", phase: rollout.PhaseRolledBack, output: "kafka-lag: ", notified: []string{"warning analysis_failed", "warning rollback_done"},
			schedule: &rollout.Override{
				Warmup: short.Warmup, Interval: short.Interval,
				StepDuration: new(rollout.Duration(8 * time.Second)), Promotion: new(rollout.Duration(8 * time.Second)),
			}},
		{scenario: "alert", phase: rollout.PhaseRolledBack, weights: []string{"10", "25", "0"}, output: "kill switch: the canary Ingress's weight is 0%",
			notified: []string{"critical rollback_latched", "warning rollback_done"}},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			c := &cli{stdout: &stdout, stderr: &stderr}
			sc, ok := findScenario(tt.scenario)
			require.True(t, ok)
			schedule := short
			if tt.schedule != nil {
				schedule = tt.schedule
			}
			res, code := c.demoScenario(context.Background(), sc,
				demoOptions{listen: "127.0.0.1:0", schedule: schedule, window: "10s", timeout: 60 * time.Second}, false)
			require.Equal(t, exitOK, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			require.Equal(t, tt.phase, res.Phase)
			if tt.weights != nil {
				require.Equal(t, tt.weights, res.Weights)
			} else {
				require.Equal(t, []string{"10", "25"}, res.Weights[:2])
				require.Equal(t, "0", res.Weights[len(res.Weights)-1])
			}
			require.Contains(t, stdout.String(), tt.output)
			for _, n := range tt.notified {
				require.Contains(t, stdout.String(), "notify       "+n+" ", "the demo prints the notifications it produces")
			}
		})
	}
}
