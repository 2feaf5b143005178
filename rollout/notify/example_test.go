package notify_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/aurum/canary/rollout/notify"
	"github.com/aurum/canary/runs"
	"github.com/aurum/canary/runs/bolt"
)

// A program that embeds the orchestrator sends critical notifications to
// its own pager: a route of kind "go", through the outbox over the run
// store, fed by a hub subscribed to the runs. With an orchestrator, pass
// hub.Rollout as rollout.Options.OnEvent and hub.StepDownDone as
// rollout.TrafficOptions.OnDone.
func ExampleNewRoute() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "canary-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	store, err := bolt.Open(filepath.Join(dir, "canary.db"), bolt.Options{})
	if err != nil {
		panic(err)
	}
	defer store.Close()

	paged := make(chan notify.Notification, 1)
	pager := notify.NotifierFunc(func(_ context.Context, n notify.Notification) error {
		paged <- n
		return nil // an error is retried; one wrapping notify.ErrPermanent is not
	})
	route, err := notify.NewRoute("pager", notify.Filter{Severities: []notify.Severity{notify.SeverityCritical}}, pager)
	if err != nil {
		panic(err)
	}
	outbox, err := notify.NewOutbox(ctx, notify.OutboxOptions{Store: store, Routes: []*notify.Route{route}})
	if err != nil {
		panic(err)
	}
	rs, err := runs.New(ctx, runs.Options{Store: store})
	if err != nil {
		panic(err)
	}
	hub := notify.NewHub(notify.HubOptions{Sink: outbox})
	rs.Subscribe(hub)
	delivering, stop := context.WithCancel(ctx)
	defer stop()
	go outbox.Run(delivering)

	if _, err := rs.Event(ctx, "caiso", "lmp-ingest", "v2", "Progressing"); err != nil {
		panic(err)
	}
	if _, err := rs.Act(ctx, "caiso", "lmp-ingest", "", runs.ActionPause, "market open", "alice"); err != nil {
		panic(err) // paused: a warning, not for the pager
	}
	if _, err := rs.Act(ctx, "caiso", "lmp-ingest", "", runs.ActionRollback, "prices look wrong", "alice"); err != nil {
		panic(err)
	}
	n := <-paged
	fmt.Println(n.Severity, n.Kind, n.Summary+":", n.Reason)
	// Output: critical rollback_latched rollback latched on caiso/lmp-ingest@v2 by manual: prices look wrong
}
