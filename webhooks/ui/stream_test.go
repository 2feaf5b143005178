package ui

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/rollout"
	"github.com/aurum/canary/runs"
)

func analysed(name string) runs.Event {
	return runs.Event{Kind: runs.EventAnalysis, At: time.Now(), Run: &runs.Run{Namespace: "caiso", Name: name, Revision: "r1"},
		Answer: &runs.Answer{Result: &analysis.Result{Verdict: analysis.VerdictPass}}}
}

// readEvent reads the stream up to the next event and returns its data.
func readEvent(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			return strings.TrimSpace(data)
		}
	}
}

// TestStreamDelivers: a page following the stream hears of a run's
// analysis and of a rollout's step, past the server's write timeout, and
// the stream ends when it closes.
func TestStreamDelivers(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := NewStream(StreamOptions{Registerer: reg, Heartbeat: 50 * time.Millisecond})
	hs := httptest.NewUnstartedServer(s)
	hs.Config.WriteTimeout = 200 * time.Millisecond
	hs.Start()
	defer hs.Close()
	resp, err := http.Get(hs.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	require.Eventually(t, func() bool { return s.Clients() == 1 }, 5*time.Second, time.Millisecond)
	require.Equal(t, 1.0, testutil.ToFloat64(s.metrics.clients))

	// Past the server's write timeout: each write has its own deadline.
	time.Sleep(400 * time.Millisecond)
	r := bufio.NewReader(resp.Body)
	require.NoError(t, s.Notify(context.Background(), analysed("good")))
	require.Contains(t, readEvent(t, r), `"type":"run","kind":"analysis","namespace":"caiso","name":"good","revision":"r1","verdict":"pass"`)
	s.Rollout(&rollout.Rollout{Spec: rollout.Spec{Namespace: "caiso", Name: "good", Version: "v2"}, Phase: rollout.PhaseProgressing},
		rollout.Event{Type: "traffic", Weight: 25, At: time.Now()})
	require.Contains(t, readEvent(t, r), `"type":"rollout","kind":"traffic","namespace":"caiso","name":"good","revision":"v2","phase":"progressing","weight":25`)
	// An analysis that named no canary concerns no page.
	require.NoError(t, s.Notify(context.Background(), runs.Event{Kind: runs.EventAnalysis}))
	require.Equal(t, 2.0, testutil.ToFloat64(s.metrics.events))

	s.Close()
	_, err = r.ReadString('\n')
	for err == nil {
		_, err = r.ReadString('\n')
	}
	require.Zero(t, s.Clients())
	require.Zero(t, testutil.ToFloat64(s.metrics.clients))
}

// TestStreamBounds: one client more than the limit is refused; a client
// a whole buffer behind is dropped, and the change that caused the event
// never waits for it.
func TestStreamBounds(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, s *Stream)
	}{
		{name: "too many clients", run: func(t *testing.T, s *Stream) {
			hs := httptest.NewServer(s)
			defer hs.Close()
			first, err := http.Get(hs.URL)
			require.NoError(t, err)
			defer first.Body.Close()
			require.Eventually(t, func() bool { return s.Clients() == 1 }, 5*time.Second, time.Millisecond)
			second, err := http.Get(hs.URL)
			require.NoError(t, err)
			second.Body.Close()
			require.Equal(t, http.StatusServiceUnavailable, second.StatusCode)
			require.NotEmpty(t, second.Header.Get("Retry-After"))
			require.Equal(t, 1.0, testutil.ToFloat64(s.metrics.refused))
		}},
		{name: "slow client dropped", run: func(t *testing.T, s *Stream) {
			c := s.join() // a client that never reads
			require.NotNil(t, c)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := 0; i < 10; i++ {
					require.NoError(t, s.Notify(context.Background(), analysed("good")))
				}
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("publishing waited for a slow client")
			}
			select {
			case <-c.gone:
			default:
				t.Fatal("the slow client was not dropped")
			}
			require.Zero(t, s.Clients())
			require.Equal(t, 1.0, testutil.ToFloat64(s.metrics.dropped))
		}},
		{name: "closed stream takes no one", run: func(t *testing.T, s *Stream) {
			s.Close()
			require.Nil(t, s.join())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, NewStream(StreamOptions{MaxClients: 1, Buffer: 2, Registerer: prometheus.NewRegistry()}))
		})
	}
}

// TestStreamRecovers: a panic while telling about an event is counted
// and logged, never passed to the change that caused it.
func TestStreamRecovers(t *testing.T) {
	var panics atomic.Int32
	s := NewStream(StreamOptions{Panicked: func(component string) {
		require.Equal(t, "ui", component)
		panics.Add(1)
	}})
	require.NotPanics(t, func() { s.Rollout(nil, rollout.Event{}) })
	require.Equal(t, int32(1), panics.Load())
}
