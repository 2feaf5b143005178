package notify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/aurum/canary/internal/proptest"
	"github.com/aurum/canary/runs/bolt"
)

// TestMain runs the property below over proptest.Checks random sequences.
func TestMain(m *testing.M) { os.Exit(proptest.Main(m)) }

// receiverMode is how the property's receiver answers.
type receiverMode int

const (
	modeUp        receiverMode = iota // takes the notification
	modeDown                          // a 5xx or a connection error: retried
	modeRefuses                       // a 4xx: dropped, not retried
	receiverModes                     // how many modes there are
)

// outboxMachine drives an outbox over a real store through notifications,
// a receiver that goes up, down and refuses, time passing, and restarts,
// against a model of what must be delivered.
type outboxMachine struct {
	dir   string
	now   time.Time
	store *bolt.Bolt
	ob    *Outbox
	mode  receiverMode

	// delivered counts each id's deliveries: the receiver's view.
	delivered map[string]int
	// queued are the ids enqueued and not given up, the model's view of
	// what must reach the receiver once.
	queued map[string]bool
	// refused are the ids given up after a 4xx: never delivered.
	refused map[string]bool
}

func (m *outboxMachine) open(t *rapid.T) {
	st, err := bolt.Open(filepath.Join(m.dir, "canary.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	receiver := NotifierFunc(func(_ context.Context, n Notification) error {
		switch m.mode {
		case modeDown:
			return errors.New("answered 503 Service Unavailable")
		case modeRefuses:
			return Permanent(errors.New("answered 400 Bad Request"))
		}
		m.delivered[n.ID]++
		return nil
	})
	route, err := NewRoute("hook", Filter{}, receiver)
	if err != nil {
		t.Fatal(err)
	}
	ob, err := NewOutbox(context.Background(), OutboxOptions{Store: st, Routes: []*Route{route}, Now: func() time.Time { return m.now }})
	if err != nil {
		t.Fatal(err)
	}
	m.store, m.ob = st, ob
}

// Enqueue queues a notification, possibly one seen before.
func (m *outboxMachine) Enqueue(t *rapid.T) {
	id := fmt.Sprintf("n%d", rapid.IntRange(0, 7).Draw(t, "id"))
	m.ob.Enqueue(Notification{ID: id, Kind: KindRollbackLatched, Severity: SeverityCritical, Namespace: "caiso", Name: "lmp"})
	if m.delivered[id] == 0 && !m.refused[id] {
		m.queued[id] = true
	}
}

// Mode changes how the receiver answers.
func (m *outboxMachine) Mode(t *rapid.T) {
	m.mode = receiverMode(rapid.IntRange(0, int(receiverModes)-1).Draw(t, "mode"))
}

// Deliver lets time pass and the route's worker send what is due.
func (m *outboxMachine) Deliver(t *rapid.T) {
	m.now = m.now.Add(time.Duration(rapid.Int64Range(0, int64(10*time.Minute)).Draw(t, "wait")))
	before := m.ob.Status()[0].Dropped
	m.ob.deliverDue(context.Background(), m.ob.state["hook"])
	if m.mode == modeRefuses && m.ob.Status()[0].Dropped > before {
		for id := range m.queued {
			if m.delivered[id] == 0 && !m.pending(id) {
				delete(m.queued, id)
				m.refused[id] = true
			}
		}
	}
}

// Restart stops canary serve and starts it again over the same store.
func (m *outboxMachine) Restart(t *rapid.T) {
	if err := m.store.Close(); err != nil {
		t.Fatal(err)
	}
	m.open(t)
}

// pending reports whether id waits in the outbox.
func (m *outboxMachine) pending(id string) bool {
	return m.ob.state["hook"].has("hook " + id)
}

// Check: nothing is delivered twice, a refused notification is never
// delivered, and every notification not yet delivered nor refused still
// waits.
func (m *outboxMachine) Check(t *rapid.T) {
	for id, n := range m.delivered {
		if n > 1 {
			t.Fatalf("%s delivered %d times", id, n)
		}
		if m.refused[id] {
			t.Fatalf("%s delivered after it was refused", id)
		}
	}
	for id := range m.queued {
		if m.delivered[id] == 0 && !m.pending(id) {
			t.Fatalf("%s was queued, is neither delivered nor refused, and no longer waits", id)
		}
	}
}

// TestOutboxDeliversOnce: whatever the receiver does and however often
// canary serve restarts or an event is seen again, a notification is
// delivered at most once, and once the receiver is up and the backoff
// has passed, every one that was not refused is delivered.
func TestOutboxDeliversOnce(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := &outboxMachine{dir: proptest.Dir(t), now: time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC),
			delivered: map[string]int{}, queued: map[string]bool{}, refused: map[string]bool{}}
		m.open(t)
		defer func() { _ = m.store.Close() }()
		t.Repeat(rapid.StateMachineActions(m))

		// The receiver comes back: after the longest backoff, all is sent.
		m.mode = modeUp
		for range 3 {
			m.now = m.now.Add(MaxBackoff)
			m.ob.deliverDue(context.Background(), m.ob.state["hook"])
		}
		m.Check(t)
		for id := range m.queued {
			if m.delivered[id] != 1 {
				t.Fatalf("%s queued and never delivered", id)
			}
		}
	})
}
