package bolt

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/bbolt"
)

// errClosed answers writes queued after Close.
var errClosed = errors.New("store closed")

// committer is a group commit. Writes queue up while a commit is being
// synced; the next commit takes all of them, in order. A durable write
// (do) is committed at once, instead of waiting out a batch window as
// bbolt's own Batch does, which would cost every lone webhook call its
// delay. A queued write (queue) waits for the next durable one to carry it,
// or for the flush interval, so that analysis records share the fsyncs
// the latches pay for and cost none of their own under load.
type committer struct {
	db      *bbolt.DB
	maxSize int
	flush   time.Duration

	mu      sync.Mutex
	pending []*write
	durable int // durable writes in pending
	// inflight counts writes taken from pending and not yet committed.
	inflight int
	closed   bool
	wake     chan struct{}
	done     chan struct{}
}

type write struct {
	fn func(*bbolt.Tx) error
	// err receives a durable write's outcome; done a queued one's.
	err    chan error
	done   func(error)
	queued time.Time
}

func newCommitter(db *bbolt.DB, maxSize int, flush time.Duration) *committer {
	c := &committer{db: db, maxSize: maxSize, flush: flush, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go c.loop()
	return c
}

// do runs fn in a shared, synced write transaction and returns once it is
// durable. fn must leave the transaction usable for the others when it
// fails: an error from it rolls the shared commit back, after which every
// write of that commit is retried in its own transaction.
func (c *committer) do(fn func(*bbolt.Tx) error) error {
	w := &write{fn: fn, err: make(chan error, 1)}
	if !c.add(w) {
		return errClosed
	}
	return <-w.err
}

// barrier returns once every write queued before it is committed; it
// costs nothing when none is.
func (c *committer) barrier() error {
	c.mu.Lock()
	n := len(c.pending) + c.inflight
	c.mu.Unlock()
	if n == 0 {
		return nil
	}
	return c.do(func(*bbolt.Tx) error { return nil })
}

// queue runs fn in a later commit without waiting for it; done, when not
// nil, is called with the outcome from the committer's goroutine.
func (c *committer) queue(fn func(*bbolt.Tx) error, done func(error)) {
	w := &write{fn: fn, done: done, queued: time.Now()}
	if !c.add(w) && done != nil {
		done(errClosed)
	}
}

func (c *committer) add(w *write) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.pending = append(c.pending, w)
	if w.err != nil {
		c.durable++
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // the committer is already awake
	}
	return true
}

func (c *committer) loop() {
	defer close(c.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		c.mu.Lock()
		var batch []*write
		wait := time.Duration(-1)
		switch {
		case len(c.pending) == 0:
		case c.durable > 0 || c.closed:
			batch = c.take()
		default:
			// Only queued writes: commit once the oldest has waited out
			// the flush interval.
			if left := c.flush - time.Since(c.pending[0].queued); left > 0 {
				wait = left
			} else {
				batch = c.take()
			}
		}
		closed, empty := c.closed, len(c.pending) == 0
		c.mu.Unlock()
		if len(batch) > 0 {
			c.commit(batch)
			c.mu.Lock()
			c.inflight -= len(batch)
			c.mu.Unlock()
			continue
		}
		if closed && empty {
			return
		}
		if wait >= 0 {
			timer.Reset(wait)
		}
		select {
		case <-c.wake:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// take removes the next batch from the queue; c.mu is held.
func (c *committer) take() []*write {
	n := min(len(c.pending), c.maxSize)
	batch := c.pending[:n:n]
	c.pending = c.pending[n:]
	c.inflight += n
	for _, w := range batch {
		if w.err != nil {
			c.durable--
		}
	}
	return batch
}

func (c *committer) commit(batch []*write) {
	err := c.db.Update(func(tx *bbolt.Tx) error {
		for _, w := range batch {
			if err := safely(w.fn, tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || len(batch) == 1 {
		for _, w := range batch {
			w.finish(err)
		}
		return
	}
	// One write broke the shared transaction: give each its own, so only
	// the broken one fails.
	for _, w := range batch {
		w.finish(c.db.Update(func(tx *bbolt.Tx) error { return safely(w.fn, tx) }))
	}
}

func (w *write) finish(err error) {
	switch {
	case w.err != nil:
		w.err <- err
	case w.done != nil:
		w.done(err)
	}
}

// safely turns a panic in a write into its error, so one bad write cannot
// take the committer, and every other waiting caller, down with it.
func safely(fn func(*bbolt.Tx) error, tx *bbolt.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store write panicked: %v", r)
		}
	}()
	return fn(tx)
}

// close stops accepting writes, lets the queued ones commit, and waits.
func (c *committer) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	<-c.done
}
