// Package bolt keeps canaries, their runs and the runs' analysis history on
// disk, behind runs.Store and runs.Documents.
//
// Bolt is the embedded store: one bbolt file, no server to run. Commit is
// durable before it returns, because callers acknowledge latches and
// transitions to Argo Rollouts, Flagger or Alertmanager right after, and
// concurrent writes share one commit (one fsync), so the disk's fsync rate
// bounds commits, not writes. Append queues a write that only records
// what was answered (an analysis): it goes with the next durable commit,
// or after the flush interval, so a plain analysis never waits for an
// fsync. Nothing from bbolt leaves the package: callers see only the runs
// interfaces, so a PostgreSQL store can take its place.
//
// On disk (schema 2), the bucket "canaries" maps "namespace/name" to the
// canary and its runs as JSON; the bucket "history" holds one nested bucket
// per run, keyed "namespace/name@revision", mapping each evaluation's
// big-endian Seq to the evaluation as JSON, so a cursor walks it in order;
// the bucket "docs" holds one nested bucket per document kind. The bucket
// "meta" holds the schema version. Schema 1 (one run per canary, in
// "runs") is migrated when opened.
package bolt

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/aurum/canary/runs"
)

// Defaults applied by Open for zero Options.
const (
	// DefaultMaxBatchSize caps the writes in one commit (bbolt's default),
	// so one commit's transaction stays small.
	DefaultMaxBatchSize = 1000
	// DefaultFlushInterval is how long an appended analysis record may
	// wait for a durable commit to carry it before it is committed on its
	// own: what a crash may lose of plain analysis records.
	DefaultFlushInterval = 100 * time.Millisecond
)

// openTimeout bounds the wait for the file lock: long enough to ride out a
// tool that holds the file for a moment, short enough that a second canary
// on the same data dir fails at startup rather than hanging.
const openTimeout = time.Second

// schemaVersion is the layout this code reads and writes. Bump it with any
// incompatible change, and migrate or refuse older files in Open.
const schemaVersion = 2

var (
	bucketMeta     = []byte("meta")
	bucketCanaries = []byte("canaries")
	bucketHistory  = []byte("history")
	keySchema      = []byte("schema")
	// bucketRunsV1 is schema 1's bucket of one run per canary.
	bucketRunsV1 = []byte("runs")
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
	// FlushInterval bounds how long an appended write waits (default
	// DefaultFlushInterval; negative commits appended writes at once,
	// still without the caller waiting).
	FlushInterval time.Duration
	// NoSync skips fsync on commit. UNSAFE: a machine crash or power loss
	// then loses or corrupts acknowledged writes, which breaks the
	// runs.Store contract. For tests and benchmarks only.
	NoSync bool
}

// Bolt is a runs.Store in one bbolt file. It is safe for concurrent use by
// the goroutines of one process; the file is locked against other
// processes.
type Bolt struct {
	db      *bbolt.DB
	path    string
	log     *slog.Logger
	commits *committer
}

var _ runs.Store = (*Bolt)(nil)

// Open opens the store at path, creating the file and its directory if
// missing, and migrating a schema 1 file. It fails with an error wrapping
// ErrInUse when another process holds the file, and refuses a file
// written by a newer schema.
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
	var migrated int
	if err := db.Update(func(tx *bbolt.Tx) error {
		var err error
		migrated, err = initSchema(tx)
		return err
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if migrated > 0 {
		log.Info("store migrated from schema 1", "path", path, "canaries", migrated)
	}
	flush := cmp.Or(opts.FlushInterval, DefaultFlushInterval)
	log.Info("store opened", "path", path, "schema", schemaVersion, "no_sync", opts.NoSync, "flush_interval", max(flush, 0))
	return &Bolt{db: db, path: path, log: log, commits: newCommitter(db, cmp.Or(opts.MaxBatchSize, DefaultMaxBatchSize), max(flush, 0))}, nil
}

// initSchema stamps a new file with the schema version, migrates a schema
// 1 file, and checks that an existing one carries a version this code
// understands. It returns how many canaries it migrated.
func initSchema(tx *bbolt.Tx) (int, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		if tx.Bucket(bucketRunsV1) != nil || tx.Bucket(bucketCanaries) != nil {
			return 0, errors.New("file has runs but no schema version: not a canary store?")
		}
		var err error
		if meta, err = tx.CreateBucket(bucketMeta); err != nil {
			return 0, err
		}
		if err := meta.Put(keySchema, seqKey(schemaVersion)); err != nil {
			return 0, err
		}
	}
	v := meta.Get(keySchema)
	if len(v) != 8 {
		return 0, fmt.Errorf("schema version is %d bytes, want 8: not a canary store?", len(v))
	}
	for _, name := range [][]byte{bucketCanaries, bucketHistory} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return 0, err
		}
	}
	migrated := 0
	switch version := binary.BigEndian.Uint64(v); {
	case version > schemaVersion:
		return 0, fmt.Errorf("schema version %d is newer than this canary supports (%d): downgrade is not supported", version, schemaVersion)
	case version == 1:
		var err error
		if migrated, err = migrateV1(tx); err != nil {
			return 0, fmt.Errorf("migrate schema 1: %w", err)
		}
		if err := meta.Put(keySchema, seqKey(schemaVersion)); err != nil {
			return 0, err
		}
	case version < schemaVersion:
		return 0, fmt.Errorf("schema version %d is older than %d and has no migration", version, schemaVersion)
	}
	return migrated, nil
}

// migrateV1 turns schema 1's one run per canary into a canary whose only
// run is that one, and moves its history under the run's key.
func migrateV1(tx *bbolt.Tx) (int, error) {
	old := tx.Bucket(bucketRunsV1)
	if old == nil {
		return 0, nil
	}
	canaries, history := tx.Bucket(bucketCanaries), tx.Bucket(bucketHistory)
	n := 0
	err := old.ForEach(func(k, v []byte) error {
		var run runs.Run
		if err := json.Unmarshal(v, &run); err != nil {
			return fmt.Errorf("run %s: %w", k, err)
		}
		c := runs.Canary{Namespace: run.Namespace, Name: run.Name, Current: run.Revision, Runs: []*runs.Run{&run}, UpdatedAt: run.UpdatedAt}
		data, err := json.Marshal(&c)
		if err != nil {
			return err
		}
		if err := canaries.Put(bytes.Clone(k), data); err != nil {
			return err
		}
		if h := history.Bucket(k); h != nil {
			moved, err := history.CreateBucket(historyKey(run.Namespace, run.Name, run.Revision))
			if err != nil {
				return err
			}
			if err := h.ForEach(func(sk, sv []byte) error { return moved.Put(bytes.Clone(sk), bytes.Clone(sv)) }); err != nil {
				return err
			}
			if err := history.DeleteBucket(k); err != nil {
				return err
			}
		}
		n++
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, tx.DeleteBucket(bucketRunsV1)
}

// Close commits what is queued, waits for transactions in flight and
// releases the file. Closing twice is harmless.
func (s *Bolt) Close() error {
	s.commits.close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	s.log.Debug("store closed")
	return nil
}

// Canaries returns every canary, ordered by namespace, then name.
func (s *Bolt) Canaries(ctx context.Context) ([]*runs.Canary, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var all []*runs.Canary
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketCanaries).ForEach(func(k, v []byte) error {
			c := new(runs.Canary)
			if err := json.Unmarshal(v, c); err != nil {
				return fmt.Errorf("canary %s: %w", k, err)
			}
			all = append(all, c)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read canaries: %w", err)
	}
	// Key order is not quite namespace order: '-' sorts before '/', so
	// "a-b/x" comes before "a/x" in the file but after it here.
	slices.SortFunc(all, func(a, b *runs.Canary) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	return all, nil
}

// History returns up to limit of the run's latest evaluations, oldest
// first, or all of them when limit <= 0; an empty slice for a run without
// any.
func (s *Bolt) History(ctx context.Context, namespace, name, revision string, limit int) ([]runs.Evaluation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkNames(namespace, name, revision); err != nil {
		return nil, err
	}
	// Read what was written before: records still queued are committed
	// first.
	if err := s.commits.barrier(); err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	hk := historyKey(namespace, name, revision)
	evs := []runs.Evaluation{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		hist := tx.Bucket(bucketHistory).Bucket(hk)
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
		return nil, fmt.Errorf("read history of %s: %w", hk, err)
	}
	slices.Reverse(evs)
	return evs, nil
}

// Commit stores the change in a shared, synced commit.
func (s *Bolt) Commit(ctx context.Context, c runs.Change) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	rec, err := encode(c)
	if err != nil {
		return err
	}
	if err := s.commits.do(rec.write); err != nil {
		return fmt.Errorf("commit %s: %w", rec.key, err)
	}
	return nil
}

// Append queues the change; done, when set, gets the outcome. The change
// is encoded by the committer, off the caller's path: Runs never changes a
// canary it handed to the store.
func (s *Bolt) Append(c runs.Change, done func(error)) {
	s.commits.queue(func(tx *bbolt.Tx) error {
		rec, err := encode(c)
		if err != nil {
			return err
		}
		return rec.write(tx)
	}, done)
}

// Delete removes a canary and the history of every run it had.
func (s *Bolt) Delete(ctx context.Context, namespace, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkNames(namespace, name, ""); err != nil {
		return err
	}
	k := []byte(namespace + "/" + name)
	return s.commits.do(func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bucketCanaries).Delete(k); err != nil {
			return err
		}
		return dropHistory(tx, namespace, name, nil)
	})
}

// Size is the size of the file's data.
func (s *Bolt) Size() int64 {
	var n int64
	_ = s.db.View(func(tx *bbolt.Tx) error {
		n = tx.Size()
		return nil
	})
	return n
}

// record is a change encoded before anything is written, so that an
// encoding error leaves the transaction untouched.
type record struct {
	key       []byte
	namespace string
	name      string
	canary    []byte
	keep      []string // the revisions whose history stays
	ev        []byte
	evKey     []byte
	seq       uint64
	maxHist   int
}

func encode(c runs.Change) (*record, error) {
	if c.Canary == nil {
		return nil, errors.New("change without a canary")
	}
	ns, name := c.Canary.Namespace, c.Canary.Name
	if err := checkNames(ns, name, c.Revision); err != nil {
		return nil, err
	}
	rec := &record{key: []byte(ns + "/" + name), namespace: ns, name: name, maxHist: c.Keep}
	if rec.maxHist <= 0 {
		rec.maxHist = runs.DefaultHistory
	}
	var err error
	if rec.canary, err = json.Marshal(c.Canary); err != nil {
		return nil, fmt.Errorf("encode canary %s: %w", rec.key, err)
	}
	for _, r := range c.Canary.Runs {
		rec.keep = append(rec.keep, r.Revision)
	}
	if c.Evaluation != nil {
		if rec.ev, err = json.Marshal(c.Evaluation); err != nil {
			return nil, fmt.Errorf("encode evaluation %d: %w", c.Evaluation.Seq, err)
		}
		rec.evKey, rec.seq = historyKey(ns, name, c.Revision), c.Evaluation.Seq
	}
	return rec, nil
}

// write stores the record: the canary, the history of the runs it dropped
// dropped too, the new evaluation appended and the history trimmed.
func (rec *record) write(tx *bbolt.Tx) error {
	if err := tx.Bucket(bucketCanaries).Put(rec.key, rec.canary); err != nil {
		return err
	}
	if err := dropHistory(tx, rec.namespace, rec.name, rec.keep); err != nil {
		return err
	}
	if rec.ev == nil {
		return nil
	}
	evs, err := tx.Bucket(bucketHistory).CreateBucketIfNotExists(rec.evKey)
	if err != nil {
		return err
	}
	if err := evs.Put(seqKey(rec.seq), rec.ev); err != nil {
		return err
	}
	return trim(evs, rec.maxHist)
}

// dropHistory deletes the history buckets of namespace/name's runs whose
// revision is not in keep. History keys of one canary share the prefix
// "namespace/name@", and a name holds no '@', so a cursor finds them
// without decoding anything.
func dropHistory(tx *bbolt.Tx, namespace, name string, keep []string) error {
	hist := tx.Bucket(bucketHistory)
	prefix := []byte(namespace + "/" + name + "@")
	var drop [][]byte
	c := hist.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if !slices.Contains(keep, string(k[len(prefix):])) {
			drop = append(drop, bytes.Clone(k))
		}
	}
	for _, k := range drop {
		if err := hist.DeleteBucket(k); err != nil {
			return err
		}
	}
	return nil
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

// checkNames keeps keys unambiguous: Kubernetes names hold neither '/' nor
// '@', but a caller of the store might not have checked.
func checkNames(namespace, name, revision string) error {
	switch {
	case namespace == "" || name == "":
		return errors.New("a canary needs a namespace and a name")
	case strings.ContainsAny(namespace, "/@"):
		return fmt.Errorf("namespace %q: must not contain '/' or '@'", namespace)
	case strings.ContainsAny(name, "/@"):
		return fmt.Errorf("name %q: must not contain '/' or '@'", name)
	case strings.ContainsAny(revision, "/@"):
		return fmt.Errorf("revision %q: must not contain '/' or '@'", revision)
	}
	return nil
}

// historyKey is the key of a run's history bucket.
func historyKey(namespace, name, revision string) []byte {
	return []byte(namespace + "/" + name + "@" + revision)
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
