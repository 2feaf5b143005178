package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/aurum/canary/runs"

	"go.etcd.io/bbolt"
)

var bucketDocs = []byte("docs")

var _ runs.Documents = (*Bolt)(nil)

// Document returns a stored document.
func (s *Bolt) Document(ctx context.Context, kind, key string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := docBucket(tx, kind)
		if b == nil {
			return nil
		}
		if v := b.Get([]byte(key)); v != nil {
			out = bytes.Clone(v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", kind, key, err)
	}
	if out == nil {
		return nil, fmt.Errorf("%s %s: %w", kind, key, runs.ErrDocumentNotFound)
	}
	return out, nil
}

// DocumentsOf returns every document of a kind.
func (s *Bolt) DocumentsOf(ctx context.Context, kind string) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := docBucket(tx, kind)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			out[string(k)] = bytes.Clone(v)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read %s documents: %w", kind, err)
	}
	return out, nil
}

// UpdateDocument applies fn and stores its result in a shared, synced
// commit. As Update does for runs, fn runs first against a snapshot, and
// again inside the commit only if the document changed in between.
func (s *Bolt) UpdateDocument(ctx context.Context, kind, key string, fn func(old []byte) ([]byte, error)) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	snapshot, err := s.Document(ctx, kind, key)
	if err != nil && !isNotFound(err) {
		return nil, err
	}
	next, err := fn(snapshot)
	if err != nil {
		return nil, err
	}
	if next == nil {
		return snapshot, nil
	}
	var (
		out    []byte
		failed error
	)
	err = s.commits.do(func(tx *bbolt.Tx) error {
		out, failed = nil, nil
		if err := ctx.Err(); err != nil {
			failed = err
			return nil
		}
		docs, err := tx.CreateBucketIfNotExists(bucketDocs)
		if err != nil {
			return err
		}
		b, err := docs.CreateBucketIfNotExists([]byte(kind))
		if err != nil {
			return err
		}
		current := b.Get([]byte(key))
		value := next
		if !bytes.Equal(current, snapshot) || (current == nil) != (snapshot == nil) {
			// Changed since read: apply fn to what is there now.
			if value, err = fn(bytes.Clone(current)); err != nil {
				failed = err
				return nil
			}
			if value == nil {
				out = bytes.Clone(current)
				return nil
			}
		}
		out = value
		return b.Put([]byte(key), value)
	})
	if err != nil {
		return nil, fmt.Errorf("update %s %s: %w", kind, key, err)
	}
	if failed != nil {
		return nil, failed
	}
	return out, nil
}

func docBucket(tx *bbolt.Tx, kind string) *bbolt.Bucket {
	docs := tx.Bucket(bucketDocs)
	if docs == nil {
		return nil
	}
	return docs.Bucket([]byte(kind))
}

func isNotFound(err error) bool {
	return errors.Is(err, runs.ErrDocumentNotFound)
}

// DeleteDocument removes a document in a synced commit; a missing one is
// no error.
func (s *Bolt) DeleteDocument(ctx context.Context, kind, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.commits.do(func(tx *bbolt.Tx) error {
		b := docBucket(tx, kind)
		if b == nil {
			return nil
		}
		return b.Delete([]byte(key))
	})
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", kind, key, err)
	}
	return nil
}

// QueueDocument stores a document without waiting for its commit: it goes
// with the next synced write or within the flush interval, like an
// analysis record. done, when set, gets the outcome.
func (s *Bolt) QueueDocument(kind, key string, value []byte, done func(error)) {
	value = bytes.Clone(value)
	s.commits.queue(func(tx *bbolt.Tx) error {
		docs, err := tx.CreateBucketIfNotExists(bucketDocs)
		if err != nil {
			return err
		}
		b, err := docs.CreateBucketIfNotExists([]byte(kind))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), value)
	}, done)
}
