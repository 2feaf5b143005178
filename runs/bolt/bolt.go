// Package bolt keeps canary runs, their latches and their analysis history
// on disk, behind runs.Store.
//
// Bolt is the embedded store: one bbolt file, no server to run. Writes are
// durable before they return, because callers acknowledge them to Argo
// Rollouts, Flagger or Alertmanager right after, and concurrent writes share
// one commit (one fsync), so the disk's fsync rate bounds commits, not
// writes. Nothing from bbolt leaves the package: callers see only
// runs.Store, so a PostgreSQL store can take its place.
//
// On disk, the bucket "runs" maps "namespace/name" to the run as JSON; the
// bucket "history" holds one nested bucket per run, under the same key,
// mapping each evaluation's big-endian Seq to the evaluation as JSON, so a
// cursor walks it in order. The bucket "meta" holds the schema version.
package bolt

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/aurum/canary/runs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Defaults applied by Open and Update for zero values.
const (
	// DefaultMaxBatchSize caps the writes in one commit (bbolt's default),
	// so one commit's transaction stays small.
	DefaultMaxBatchSize = 1000
	// DefaultKeep is how many evaluations a run keeps when Update is given
	// keep <= 0.
	DefaultKeep = 100
)

// openTimeout bounds the wait for the file lock: long enough to ride out a
// tool that holds the file for a moment, short enough that a second canary
// on the same data dir fails at startup rather than hanging.
const openTimeout = time.Second

// schemaVersion is the layout this code reads and writes. Bump it with any
// incompatible change, and migrate or refuse older files in Open.
const schemaVersion = 1

var (
	bucketMeta    = []byte("meta")
	bucketRuns    = []byte("runs")
	bucketHistory = []byte("history")
	keySchema     = []byte("schema")
)

// ErrInUse marks an Open that could not lock the file because another
// process holds it.
var ErrInUse = errors.New("data dir is in use by another canary process?")

// Options tunes a Bolt store. The zero value is the production setting.
type Options struct {
	// Logger receives the store's own and bbolt's messages; nil discards
	// them.
	Logger *slog.Logger
	// MaxBatchSize is the most writes one commit takes (default
	// DefaultMaxBatchSize).
	MaxBatchSize int
	// NoSync skips fsync on commit. UNSAFE: a machine crash or power loss
	// then loses or corrupts acknowledged writes, which breaks the
	// runs.Store contract. For tests and benchmarks only.
	NoSync bool
}

// Bolt is an runs.Store in one bbolt file. It is safe for concurrent
// use by the goroutines of one process; the file is locked against other
// processes.
type Bolt struct {
	db      *bbolt.DB
	log     *slog.Logger
	commits *committer
}

var _ runs.Store = (*Bolt)(nil)

// Open opens the store at path, creating the file and its directory if
// missing. It fails with an error wrapping ErrInUse when another process
// holds the file, and refuses a file written by a newer schema.
func Open(path string, opts Options) (*Bolt, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	bopts := &bbolt.Options{Timeout: openTimeout, NoSync: opts.NoSync}
	if opts.Logger != nil {
		// Only with a real logger: bbolt skips its per-transaction debug
		// calls when it has none.
		bopts.Logger = boltLogger{log.With("component", "bbolt")}
	}
	db, err := bbolt.Open(path, 0o600, bopts)
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: %w (file still locked after %s)", path, ErrInUse, openTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := db.Update(initSchema); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	log.Info("store opened", "path", path, "schema", schemaVersion, "no_sync", opts.NoSync)
	return &Bolt{db: db, log: log, commits: newCommitter(db, cmp.Or(opts.MaxBatchSize, DefaultMaxBatchSize))}, nil
}

// initSchema stamps a new file with the schema version and checks that an
// existing one carries a version this code understands.
func initSchema(tx *bbolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		if tx.Bucket(bucketRuns) != nil {
			return errors.New("file has runs but no schema version: not a canary store?")
		}
		var err error
		if meta, err = tx.CreateBucket(bucketMeta); err != nil {
			return err
		}
		if err := meta.Put(keySchema, seqKey(schemaVersion)); err != nil {
			return err
		}
	}
	v := meta.Get(keySchema)
	if len(v) != 8 {
		return fmt.Errorf("schema version is %d bytes, want 8: not a canary store?", len(v))
	}
	switch version := binary.BigEndian.Uint64(v); {
	case version > schemaVersion:
		return fmt.Errorf("schema version %d is newer than this canary supports (%d): downgrade is not supported", version, schemaVersion)
	case version < schemaVersion:
		return fmt.Errorf("schema version %d is older than %d and has no migration", version, schemaVersion)
	}
	for _, name := range [][]byte{bucketRuns, bucketHistory} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return nil
}

// Close waits for transactions in flight and releases the file. Closing
// twice is harmless.
func (s *Bolt) Close() error {
	s.commits.close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	s.log.Debug("store closed")
	return nil
}

// Run returns the run of namespace/name, or an error wrapping
// runs.ErrRunNotFound.
func (s *Bolt) Run(ctx context.Context, namespace, name string) (*runs.Run, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key, err := runKey(namespace, name)
	if err != nil {
		return nil, err
	}
	var run *runs.Run
	err = s.db.View(func(tx *bbolt.Tx) error {
		run, err = getRun(tx, key)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read run %s: %w", key, err)
	}
	if run == nil {
		return nil, fmt.Errorf("%s: %w", key, runs.ErrRunNotFound)
	}
	return run, nil
}

// Runs returns every run, ordered by namespace, then name.
func (s *Bolt) Runs(ctx context.Context) ([]*runs.Run, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var all []*runs.Run
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketRuns).ForEach(func(k, v []byte) error {
			run := new(runs.Run)
			if err := json.Unmarshal(v, run); err != nil {
				return fmt.Errorf("run %s: %w", k, err)
			}
			all = append(all, run)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	// Key order is not quite namespace order: '-' sorts before '/', so
	// "a-b/x" comes before "a/x" in the file but after it here.
	slices.SortFunc(all, func(a, b *runs.Run) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	return all, nil
}

// History returns up to limit of the run's latest evaluations, oldest
// first, or all of them when limit <= 0. A run that does not exist is an
// error wrapping runs.ErrRunNotFound; one without evaluations yields
// an empty slice.
func (s *Bolt) History(ctx context.Context, namespace, name string, limit int) ([]runs.Evaluation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key, err := runKey(namespace, name)
	if err != nil {
		return nil, err
	}
	evs := []runs.Evaluation{}
	found := true
	err = s.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketRuns).Get(key) == nil {
			found = false
			return nil
		}
		hist := tx.Bucket(bucketHistory).Bucket(key)
		if hist == nil {
			return nil
		}
		// Walk back from the newest so a long history is not decoded only
		// to be cut.
		c := hist.Cursor()
		for k, v := c.Last(); k != nil && (limit <= 0 || len(evs) < limit); k, v = c.Prev() {
			var ev runs.Evaluation
			if err := json.Unmarshal(v, &ev); err != nil {
				return fmt.Errorf("evaluation %d: %w", binary.BigEndian.Uint64(k), err)
			}
			evs = append(evs, ev)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read history of %s: %w", key, err)
	}
	if !found {
		return nil, fmt.Errorf("%s: %w", key, runs.ErrRunNotFound)
	}
	slices.Reverse(evs)
	return evs, nil
}

// Update reads the run of namespace/name (nil when there is none), calls
// fn, and durably stores the run fn returns and ev, appended to the run's
// history, in one commit shared with concurrent Updates. A run with a new
// revision starts an empty history; the history keeps the keep newest
// evaluations (DefaultKeep when keep <= 0), keyed by ev.Seq. When fn
// returns a nil run nothing is written and Update returns the run fn was
// given, nil if there is none: fn should change its argument only to
// return it. An error from fn is returned as it is.
//
// fn is called at least twice when it changes something: once against a
// snapshot, to skip the write transaction altogether when there is nothing
// to write, then inside the commit against the run as it is then, so that
// concurrent Updates never lose one another's changes. It must not have
// side effects.
func (s *Bolt) Update(ctx context.Context, namespace, name string, keep int, fn func(*runs.Run) (*runs.Run, *runs.Evaluation, error)) (*runs.Run, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key, err := runKey(namespace, name)
	if err != nil {
		return nil, err
	}
	if keep <= 0 {
		keep = DefaultKeep
	}

	// A redelivered alert or a latch already set changes nothing: answer
	// from a read transaction, which neither waits for the writer nor
	// costs an fsync. Otherwise the change is computed and encoded here,
	// outside the commit: the commit is serialized, and it only has to
	// write when the run is still as it was read.
	var snapshot []byte
	err = s.db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketRuns).Get(key); v != nil {
			snapshot = bytes.Clone(v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("update %s: %w", key, err)
	}
	prior, err := decodeRun(snapshot)
	if err != nil {
		return nil, fmt.Errorf("update %s: %w", key, err)
	}
	priorRev := revisionOf(prior)
	run, ev, err := fn(prior)
	if err != nil {
		return nil, err
	}
	if run == nil {
		return prior, nil
	}
	rec, err := encode(namespace, name, run, ev)
	if err != nil {
		return nil, fmt.Errorf("update %s: %w", key, err)
	}
	// A new revision is a new run: none of the old history applies.
	rec.fresh = prior == nil || run.Revision != priorRev

	// failed carries errors that leave this call's writes undone without
	// failing the shared commit: an error returned from the write function
	// rolls back every write committed with it.
	var (
		out    *runs.Run
		failed error
	)
	err = s.commits.do(func(tx *bbolt.Tx) error {
		// A shared commit that fails is retried write by write, so this
		// may run more than once: start from scratch.
		out, failed = nil, nil
		if err := ctx.Err(); err != nil {
			failed = err
			return nil
		}
		current := tx.Bucket(bucketRuns).Get(key)
		if bytes.Equal(current, snapshot) && (current == nil) == (snapshot == nil) {
			out = run
			return rec.write(tx, key, keep)
		}
		// Another write changed the run since it was read: apply fn to
		// the run as it is now.
		prior, err := decodeRun(current)
		if err != nil {
			return err
		}
		// fn may change prior in place and return it: note its revision
		// first.
		priorRev := revisionOf(prior)
		run, ev, err := fn(prior)
		if err != nil {
			failed = err
			return nil
		}
		if run == nil {
			out = prior
			return nil
		}
		rec, err := encode(namespace, name, run, ev)
		if err != nil {
			failed = fmt.Errorf("update %s: %w", key, err)
			return nil
		}
		rec.fresh = prior == nil || run.Revision != priorRev
		if err := rec.write(tx, key, keep); err != nil {
			return err
		}
		out = run
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("update %s: %w", key, err)
	}
	if failed != nil {
		return nil, failed
	}
	return out, nil
}

// record is a run and its new evaluation, encoded before anything is
// written so that an encoding error leaves the transaction untouched.
type record struct {
	run []byte
	ev  []byte
	seq uint64
	// fresh drops the run's old history: it is a new revision.
	fresh bool
}

func encode(namespace, name string, run *runs.Run, ev *runs.Evaluation) (record, error) {
	if run.Namespace != namespace || run.Name != name {
		return record{}, fmt.Errorf("fn returned run %s/%s", run.Namespace, run.Name)
	}
	var rec record
	var err error
	if rec.run, err = json.Marshal(run); err != nil {
		return record{}, fmt.Errorf("encode run: %w", err)
	}
	if ev != nil {
		if rec.ev, err = json.Marshal(ev); err != nil {
			return record{}, fmt.Errorf("encode evaluation %d: %w", ev.Seq, err)
		}
		rec.seq = ev.Seq
	}
	return rec, nil
}

// write stores the record, first dropping the run's history when fresh,
// and trims the history to keep.
func (rec record) write(tx *bbolt.Tx, key []byte, keep int) error {
	if err := tx.Bucket(bucketRuns).Put(key, rec.run); err != nil {
		return err
	}
	history := tx.Bucket(bucketHistory)
	if rec.fresh && history.Bucket(key) != nil {
		if err := history.DeleteBucket(key); err != nil {
			return err
		}
	}
	if rec.ev == nil {
		return nil
	}
	evs, err := history.CreateBucketIfNotExists(key)
	if err != nil {
		return err
	}
	if err := evs.Put(seqKey(rec.seq), rec.ev); err != nil {
		return err
	}
	return trim(evs, keep)
}

// trim deletes all but the keep newest evaluations. It walks back keep
// entries rather than counting the bucket, so it costs O(keep) whatever
// the history's size, and deletes from the front: usually one entry.
func trim(evs *bbolt.Bucket, keep int) error {
	c := evs.Cursor()
	k, _ := c.Last()
	for i := 0; k != nil && i < keep; i++ {
		k, _ = c.Prev()
	}
	if k == nil {
		return nil
	}
	last := binary.BigEndian.Uint64(k)
	for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= last; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// getRun decodes the stored run, or returns nil when there is none. The
// result is a fresh copy that fn may change freely.
func getRun(tx *bbolt.Tx, key []byte) (*runs.Run, error) {
	return decodeRun(tx.Bucket(bucketRuns).Get(key))
}

// decodeRun decodes a stored run; nil data is no run.
func decodeRun(v []byte) (*runs.Run, error) {
	if v == nil {
		return nil, nil
	}
	run := new(runs.Run)
	if err := json.Unmarshal(v, run); err != nil {
		return nil, fmt.Errorf("decode run: %w", err)
	}
	return run, nil
}

func revisionOf(run *runs.Run) string {
	if run == nil {
		return ""
	}
	return run.Revision
}

// runKey is the run's key in the file. Kubernetes names cannot contain a
// '/'; a namespace that did could make two runs share a key.
func runKey(namespace, name string) ([]byte, error) {
	if strings.Contains(namespace, "/") {
		return nil, fmt.Errorf("namespace %q: must not contain '/'", namespace)
	}
	return []byte(namespace + "/" + name), nil
}

// seqKey encodes a sequence number so that byte order is numeric order.
func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
}

// boltLogger passes bbolt's messages to slog. bbolt's Info messages
// (opening the file) are debug-level detail to us.
type boltLogger struct{ log *slog.Logger }

// print and printf format only what the handler keeps: bbolt logs around
// every transaction.
func (l boltLogger) print(level slog.Level, v []any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprint(v...))
	}
}

func (l boltLogger) printf(level slog.Level, format string, v []any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, v...))
	}
}

func (l boltLogger) Debug(v ...any)            { l.print(slog.LevelDebug, v) }
func (l boltLogger) Debugf(f string, v ...any) { l.printf(slog.LevelDebug, f, v) }
func (l boltLogger) Info(v ...any)             { l.print(slog.LevelDebug, v) }
func (l boltLogger) Infof(f string, v ...any)  { l.printf(slog.LevelDebug, f, v) }
func (l boltLogger) Warning(v ...any)          { l.print(slog.LevelWarn, v) }
func (l boltLogger) Warningf(f string, v ...any) {
	l.printf(slog.LevelWarn, f, v)
}
func (l boltLogger) Error(v ...any)            { l.print(slog.LevelError, v) }
func (l boltLogger) Errorf(f string, v ...any) { l.printf(slog.LevelError, f, v) }

// Fatal and Panic are never called by bbolt; they panic rather than exit
// so that deferred cleanup still runs.
func (l boltLogger) Fatal(v ...any)            { l.Panic(v...) }
func (l boltLogger) Fatalf(f string, v ...any) { l.Panicf(f, v...) }
func (l boltLogger) Panic(v ...any)            { l.panic(fmt.Sprint(v...)) }
func (l boltLogger) Panicf(f string, v ...any) { l.panic(fmt.Sprintf(f, v...)) }

func (l boltLogger) panic(msg string) {
	l.log.Error(msg)
	panic(msg)
}
