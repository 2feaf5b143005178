package ui

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/aurum/canary/rollout"
	"github.com/aurum/canary/runs"
	"github.com/aurum/canary/webhooks/reply"
)

// Defaults of StreamOptions.
const (
	// DefaultMaxClients bounds the pages following the stream at once.
	DefaultMaxClients = 64
	// DefaultBuffer is how many events a client may fall behind by
	// before it is dropped.
	DefaultBuffer = 64
	// DefaultHeartbeat is how often an idle stream sends a comment, so
	// proxies keep it open and a gone client is noticed.
	DefaultHeartbeat = 15 * time.Second
)

// namespace is the metrics' namespace, canary serve's.
const namespace = "canary"

// retryMillis is how long a browser waits before it reconnects.
const retryMillis = 3000

// StreamOptions configure a Stream.
type StreamOptions struct {
	// MaxClients bounds the clients; one more is answered 503.
	MaxClients int
	// Buffer is each client's queue of events; a client whose queue is
	// full is dropped (it reconnects and reloads what it shows) rather
	// than slowing the change that caused the event.
	Buffer int
	// Heartbeat is how often an idle stream sends a comment.
	Heartbeat time.Duration
	// Registerer takes the stream's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Panicked, when set, counts a recovered panic.
	Panicked func(component string)
	Logger   *slog.Logger
}

// Stream is the web UI's live feed: Server-Sent Events telling open pages
// that a run or a rollout changed, so they fetch it again. It is a
// runs.Subscriber and takes the orchestrator's events through Rollout;
// handing an event on never blocks, whatever the clients do.
type Stream struct {
	o       StreamOptions
	metrics streamMetrics

	mu      sync.Mutex
	clients map[*client]struct{}
	closed  bool
}

// client is one open stream.
type client struct {
	events chan []byte
	// gone is closed when the client is dropped or the stream closes.
	gone chan struct{}
	once sync.Once
}

func (c *client) drop() { c.once.Do(func() { close(c.gone) }) }

type streamMetrics struct {
	clients prometheus.Gauge
	events  prometheus.Counter
	refused prometheus.Counter
	dropped prometheus.Counter
}

// NewStream returns a stream.
func NewStream(o StreamOptions) *Stream {
	if o.MaxClients <= 0 {
		o.MaxClients = DefaultMaxClients
	}
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	f := promauto.With(o.Registerer)
	return &Stream{o: o, clients: map[*client]struct{}{}, metrics: streamMetrics{
		clients: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "ui_stream_clients",
			Help: "Web UI pages following the live event stream.",
		}),
		events: f.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "ui_stream_events_total",
			Help: "Run and rollout events handed to the web UI's live stream.",
		}),
		refused: f.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "ui_stream_refused_total",
			Help: "Live stream connections refused because the client limit was reached.",
		}),
		dropped: f.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "ui_stream_dropped_total",
			Help: "Live stream clients dropped because they fell a whole buffer of events behind.",
		}),
	}}
}

// Event is what the stream tells a page: what changed, not the change
// itself; the page fetches what it shows again.
type Event struct {
	// Type is "run" or "rollout".
	Type      string `json:"type"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Revision  string `json:"revision,omitempty"`
	// Verdict is an analysis's; Phase and Weight a rollout's.
	Verdict string    `json:"verdict,omitempty"`
	Phase   string    `json:"phase,omitempty"`
	Weight  *int      `json:"weight,omitempty"`
	At      time.Time `json:"at"`
}

// Notify tells the clients about a run's event. It never fails the
// change that caused it.
func (s *Stream) Notify(_ context.Context, e runs.Event) error {
	defer s.recover("run event")
	if e.Run == nil {
		return nil // an analysis that named no canary: no page shows it
	}
	ev := Event{Type: "run", Kind: string(e.Kind), Namespace: e.Run.Namespace, Name: e.Run.Name, Revision: e.Run.Revision, At: e.At}
	if e.Answer != nil {
		ev.Verdict = string(e.Answer.Verdict)
	}
	s.publish(ev)
	return nil
}

// Rollout tells the clients about a rollout's event; it is the
// orchestrator's OnEvent callback.
func (s *Stream) Rollout(r *rollout.Rollout, e rollout.Event) {
	defer s.recover("rollout event")
	w := e.Weight
	s.publish(Event{Type: "rollout", Kind: e.Type, Namespace: r.Spec.Namespace, Name: r.Spec.Name, Revision: r.Spec.Version,
		Verdict: string(e.Verdict), Phase: string(r.Phase), Weight: &w, At: e.At})
}

func (s *Stream) recover(what string) {
	if p := recover(); p != nil {
		if s.o.Panicked != nil {
			s.o.Panicked("ui")
		}
		s.o.Logger.Error("web UI stream panicked", "in", what, "panic", fmt.Sprint(p))
	}
}

// publish queues the event for every client without waiting: a client
// whose queue is full is dropped.
func (s *Stream) publish(e Event) {
	data, err := reply.Marshal(e)
	if err != nil {
		return
	}
	data = bytes.TrimSuffix(data, []byte("\n"))
	msg := []byte("event: " + e.Type + "\ndata: ")
	msg = append(msg, data...)
	msg = append(msg, '\n', '\n')
	s.metrics.events.Inc()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.clients {
		select {
		case c.events <- msg:
		default:
			delete(s.clients, c)
			c.drop()
			s.metrics.dropped.Inc()
			s.metrics.clients.Dec()
		}
	}
}

// join adds a client, or returns nil when the stream is full or closed.
func (s *Stream) join() *client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.clients) >= s.o.MaxClients {
		return nil
	}
	c := &client{events: make(chan []byte, s.o.Buffer), gone: make(chan struct{})}
	s.clients[c] = struct{}{}
	s.metrics.clients.Inc()
	return c
}

func (s *Stream) leave(c *client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[c]; ok {
		delete(s.clients, c)
		s.metrics.clients.Dec()
	}
	c.drop()
}

// Clients is how many clients follow the stream.
func (s *Stream) Clients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.clients)
}

// Close ends every stream and refuses new ones, for a shutdown: an open
// stream would otherwise hold it until its timeout.
func (s *Stream) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.clients {
		delete(s.clients, c)
		c.drop()
		s.metrics.clients.Dec()
	}
}

// ServeHTTP streams events to one client until it goes, is dropped or the
// stream closes. Each write gets its own deadline, so the server's write
// timeout does not cut a long-lived stream and a stuck client does not
// hold a goroutine for ever.
func (s *Stream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer s.recover("client")
	c := s.join()
	if c == nil {
		s.metrics.refused.Inc()
		w.Header().Set("Retry-After", "10")
		reply.Fail(w, http.StatusServiceUnavailable, fmt.Sprintf("too many live streams open (at most %d); try again later", s.o.MaxClients))
		return
	}
	defer s.leave(c)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	// Proxies such as ingress-nginx buffer responses unless told not to.
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(2 * s.o.Heartbeat))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write([]byte("retry: " + strconv.Itoa(retryMillis) + "\n: connected\n\n")) {
		return
	}
	tick := time.NewTicker(s.o.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c.gone:
			return
		case msg := <-c.events:
			if !write(msg) {
				return
			}
		case <-tick.C:
			if !write([]byte(": ping\n\n")) {
				return
			}
		}
	}
}
