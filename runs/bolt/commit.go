package bolt

import (
	"errors"
	"fmt"
	"sync"

	"go.etcd.io/bbolt"
)

// errClosed answers writes queued after Close.
var errClosed = errors.New("store closed")

// committer is a group commit without a timer. Writes queue up while a
// commit is being synced; the next commit takes all of them. A lone write
// is committed at once, instead of waiting out a batch window as bbolt's
// own Batch does (which costs every lone webhook call its delay), and
// under load each fsync still carries every write that arrived during the
// previous one.
type committer struct {
	db      *bbolt.DB
	maxSize int

	mu      sync.Mutex
	pending []*write
	closed  bool
	wake    chan struct{}
	done    chan struct{}
}

type write struct {
	fn  func(*bbolt.Tx) error
	err chan error
}

func newCommitter(db *bbolt.DB, maxSize int) *committer {
	c := &committer{db: db, maxSize: maxSize, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go c.loop()
	return c
}

// do runs fn in a shared, synced write transaction and returns once it is
// durable. fn must leave the transaction usable for the others when it
// fails: an error from it rolls the shared commit back, after which every
// write of that commit is retried in its own transaction.
func (c *committer) do(fn func(*bbolt.Tx) error) error {
	w := &write{fn: fn, err: make(chan error, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	c.pending = append(c.pending, w)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // the committer is already awake
	}
	return <-w.err
}

func (c *committer) loop() {
	defer close(c.done)
	for range c.wake {
		for {
			c.mu.Lock()
			n := min(len(c.pending), c.maxSize)
			batch := c.pending[:n:n]
			c.pending = c.pending[n:]
			closed := c.closed
			c.mu.Unlock()
			if n == 0 {
				if closed {
					return
				}
				break
			}
			c.commit(batch)
		}
	}
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
			w.err <- err
		}
		return
	}
	// One write broke the shared transaction: give each its own, so only
	// the broken one fails.
	for _, w := range batch {
		w.err <- c.db.Update(func(tx *bbolt.Tx) error { return safely(w.fn, tx) })
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
	close(c.wake)
	<-c.done
}
