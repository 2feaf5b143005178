package bolt

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/runs"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// openTest opens a store in a fresh directory, closed when the test ends.
func openTest(t testing.TB, opts Options) *Bolt {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "canary.db"), opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// txID is the id of the last committed write transaction: the difference
// between two readings counts commits.
func txID(t testing.TB, s *Bolt) int {
	t.Helper()
	var id int
	require.NoError(t, s.db.View(func(tx *bbolt.Tx) error {
		id = tx.ID()
		return nil
	}))
	return id
}

// canary is namespace/name with one run per revision, the last current,
// each having seen evaluations analyses.
func canary(namespace, name string, evaluations uint64, revisions ...string) *runs.Canary {
	c := &runs.Canary{Namespace: namespace, Name: name, UpdatedAt: t0}
	for _, rev := range revisions {
		c.Runs = append(c.Runs, &runs.Run{Namespace: namespace, Name: name, Revision: rev, StartedAt: t0, UpdatedAt: t0,
			Policy: "checkout", Params: map[string]string{"service": name}, Latches: []runs.Latch{}, Evaluations: evaluations})
		c.Current = rev
	}
	return c
}

// eval is the evaluation numbered seq.
func eval(seq uint64) *runs.Evaluation {
	value := analysis.Float(0.25)
	return &runs.Evaluation{
		Seq: seq, At: t0.Add(time.Duration(seq) * time.Minute), Policy: "checkout",
		Verdict: analysis.VerdictPass, Decision: analysis.DecisionContinue, Score: 1, Reason: "all rules pass",
		Rules: []runs.RuleRecord{
			{Name: "error-rate", Verdict: "pass", Value: &value, Reason: "0.25 < 1"},
			{Name: "latency", Verdict: "pass", Reason: "no data"},
		},
	}
}

// analysed is the change that records analysis seq of revision rev.
func analysed(namespace, name, rev string, seq uint64, keep int) runs.Change {
	return runs.Change{Canary: canary(namespace, name, seq, rev), Evaluation: eval(seq), Revision: rev, Keep: keep}
}

func historySeqs(t *testing.T, s *Bolt, namespace, name, rev string) []uint64 {
	t.Helper()
	evs, err := s.History(context.Background(), namespace, name, rev, 0)
	require.NoError(t, err)
	seqs := []uint64{}
	for _, e := range evs {
		seqs = append(seqs, e.Seq)
	}
	return seqs
}

func seqs(from, to uint64) []uint64 {
	out := []uint64{}
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestCommitAndHistory(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})

	// Five analyses of r1, keeping three.
	for seq := uint64(1); seq <= 5; seq++ {
		require.NoError(t, s.Commit(ctx, analysed("default", "web", "r1", seq, 3)))
	}
	require.Equal(t, seqs(3, 5), historySeqs(t, s, "default", "web", "r1"), "trimmed to the newest three")
	evs, err := s.History(ctx, "default", "web", "r1", 2)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	require.Equal(t, *eval(5), evs[1], "every field survives")

	// A second revision keeps its own history beside the first.
	two := canary("default", "web", 1, "r1", "r2")
	require.NoError(t, s.Commit(ctx, runs.Change{Canary: two, Evaluation: eval(1), Revision: "r2"}))
	require.Equal(t, seqs(1, 1), historySeqs(t, s, "default", "web", "r2"))
	require.Equal(t, seqs(3, 5), historySeqs(t, s, "default", "web", "r1"))

	// A run the canary no longer holds loses its history.
	require.NoError(t, s.Commit(ctx, runs.Change{Canary: canary("default", "web", 1, "r2")}))
	require.Equal(t, []uint64{}, historySeqs(t, s, "default", "web", "r1"))
	require.Equal(t, seqs(1, 1), historySeqs(t, s, "default", "web", "r2"))
	// A canary whose name extends this one's is not touched.
	require.NoError(t, s.Commit(ctx, analysed("default", "web-2", "r1", 1, 0)))
	require.NoError(t, s.Commit(ctx, runs.Change{Canary: canary("default", "web", 1, "r3")}))
	require.Equal(t, seqs(1, 1), historySeqs(t, s, "default", "web-2", "r1"))

	all, err := s.Canaries(ctx)
	require.NoError(t, err)
	require.Len(t, all, 2)
	require.Equal(t, "r3", all[0].Current)

	// Delete takes the canary and all its history.
	require.NoError(t, s.Delete(ctx, "default", "web-2"))
	require.Equal(t, []uint64{}, historySeqs(t, s, "default", "web-2", "r1"))
	all, err = s.Canaries(ctx)
	require.NoError(t, err)
	require.Len(t, all, 1)
}

func TestCanariesOrder(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	for _, k := range [][2]string{{"b", "web"}, {"a", "web"}, {"a-b", "web"}, {"a", "api"}, {"prod", "checkout"}, {"a", "web-2"}} {
		require.NoError(t, s.Commit(ctx, runs.Change{Canary: canary(k[0], k[1], 0, "r1")}))
	}
	all, err := s.Canaries(ctx)
	require.NoError(t, err)
	var got []string
	for _, c := range all {
		got = append(got, c.Namespace+" "+c.Name)
	}
	require.Equal(t, []string{"a api", "a web", "a web-2", "a-b web", "b web", "prod checkout"}, got)

	empty, err := openTest(t, Options{}).Canaries(ctx)
	require.NoError(t, err)
	require.Empty(t, empty)
}

func TestInvalidNames(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	for _, c := range []struct{ ns, name, rev, want string }{
		{"a/b", "web", "r1", `namespace "a/b": must not contain '/' or '@'`},
		{"a", "web@x", "r1", `name "web@x": must not contain '/' or '@'`},
		{"a", "web", "r/1", `revision "r/1": must not contain '/' or '@'`},
		{"", "web", "r1", "a canary needs a namespace and a name"},
	} {
		err := s.Commit(ctx, analysed(c.ns, c.name, c.rev, 1, 0))
		require.EqualError(t, err, c.want)
		_, err = s.History(ctx, c.ns, c.name, c.rev, 0)
		require.EqualError(t, err, c.want)
	}
}

// TestAppend: an appended write is not waited for, is committed within
// the flush interval, rides along with the next durable commit, and is
// never lost by a Close.
func TestAppend(t *testing.T) {
	ctx := context.Background()

	t.Run("flushed after the interval", func(t *testing.T) {
		s := openTest(t, Options{FlushInterval: 50 * time.Millisecond})
		done := make(chan error, 1)
		start := time.Now()
		s.Append(analysed("default", "web", "r1", 1, 0), func(err error) { done <- err })
		require.NoError(t, <-done)
		require.GreaterOrEqual(t, time.Since(start), 40*time.Millisecond, "it waited for company")
		require.Equal(t, seqs(1, 1), historySeqs(t, s, "default", "web", "r1"))
	})

	t.Run("carried by a durable commit, in order", func(t *testing.T) {
		s := openTest(t, Options{FlushInterval: time.Hour})
		before := txID(t, s)
		for seq := uint64(1); seq <= 10; seq++ {
			s.Append(analysed("default", "web", "r1", seq, 0), nil)
		}
		// The durable write comes last and states the canary as it is: it
		// must not be overwritten by an earlier append.
		last := canary("default", "web", 10, "r1")
		last.Runs[0].Latches = []runs.Latch{{Kind: runs.LatchRollback, Source: runs.SourceManual, Reason: "by hand", At: t0}}
		require.NoError(t, s.Commit(ctx, runs.Change{Canary: last}))
		require.Equal(t, 1, txID(t, s)-before, "one commit for eleven writes")
		require.Equal(t, seqs(1, 10), historySeqs(t, s, "default", "web", "r1"))
		all, err := s.Canaries(ctx)
		require.NoError(t, err)
		require.Equal(t, last, all[0])
	})

	t.Run("close commits what is queued", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "canary.db")
		s, err := Open(path, Options{FlushInterval: time.Hour})
		require.NoError(t, err)
		s.Append(analysed("default", "web", "r1", 1, 0), nil)
		require.NoError(t, s.Close())
		s, err = Open(path, Options{})
		require.NoError(t, err)
		defer s.Close()
		require.Equal(t, seqs(1, 1), historySeqs(t, s, "default", "web", "r1"))
		errs := make(chan error, 1)
		require.NoError(t, s.Close())
		s.Append(analysed("default", "web", "r1", 2, 0), func(err error) { errs <- err })
		require.ErrorIs(t, <-errs, errClosed, "an append after Close is refused, not dropped silently")
	})

	t.Run("a bad write fails alone", func(t *testing.T) {
		s := openTest(t, Options{FlushInterval: time.Hour})
		errs := make(chan error, 1)
		s.Append(analysed("default", "web", "r1", 1, 0), func(err error) { errs <- err })
		boom := errors.New("boom")
		require.ErrorIs(t, s.commits.do(func(*bbolt.Tx) error { return boom }), boom)
		require.NoError(t, <-errs)
		require.Equal(t, seqs(1, 1), historySeqs(t, s, "default", "web", "r1"))
	})
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "canary.db")
	s, err := Open(path, Options{})
	require.NoError(t, err)
	web := canary("default", "web", 2, "r1", "r2")
	web.Runs[0].Latches = []runs.Latch{{Kind: runs.LatchRollback, Source: runs.SourceAlert, Reason: "alert Errors firing", Alert: "f1", At: t0}}
	require.NoError(t, s.Commit(ctx, runs.Change{Canary: web, Evaluation: eval(2), Revision: "r2"}))
	require.NoError(t, s.Close())
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	s, err = Open(path, Options{})
	require.NoError(t, err)
	defer s.Close()
	all, err := s.Canaries(ctx)
	require.NoError(t, err)
	require.Equal(t, []*runs.Canary{web}, all)
	require.Equal(t, seqs(2, 2), historySeqs(t, s, "default", "web", "r2"))
	require.Positive(t, s.Size())
}

// TestMigrateV1 opens a file in schema 1, one run per canary with its
// history beside it, and finds each run as its canary's current one.
func TestMigrateV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "canary.db")
	db, err := bbolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	run := runs.Run{Namespace: "caiso", Name: "lmp", Revision: "r7", Policy: "ingest", StartedAt: t0, UpdatedAt: t0, Evaluations: 2,
		Latches: []runs.Latch{{Kind: runs.LatchRollback, Source: runs.SourceAlert, Reason: "alert Errors firing", Alert: "f1", At: t0}}}
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		meta, _ := tx.CreateBucket(bucketMeta)
		require.NoError(t, meta.Put(keySchema, seqKey(1)))
		old, _ := tx.CreateBucket(bucketRunsV1)
		data, _ := json.Marshal(run)
		require.NoError(t, old.Put([]byte("caiso/lmp"), data))
		hist, _ := tx.CreateBucket(bucketHistory)
		h, _ := hist.CreateBucket([]byte("caiso/lmp"))
		for seq := uint64(1); seq <= 2; seq++ {
			e, _ := json.Marshal(eval(seq))
			require.NoError(t, h.Put(seqKey(seq), e))
		}
		return nil
	}))
	require.NoError(t, db.Close())

	var logs bytes.Buffer
	s, err := Open(path, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	defer s.Close()
	require.Contains(t, logs.String(), "store migrated from schema 1")
	all, err := s.Canaries(context.Background())
	require.NoError(t, err)
	require.Len(t, all, 1)
	require.Equal(t, "r7", all[0].Current)
	require.Equal(t, run, *all[0].Runs[0])
	require.Equal(t, seqs(1, 2), historySeqs(t, s, "caiso", "lmp", "r7"))
	require.NoError(t, s.db.View(func(tx *bbolt.Tx) error {
		require.Nil(t, tx.Bucket(bucketRunsV1), "the old bucket is gone")
		require.Nil(t, tx.Bucket(bucketHistory).Bucket([]byte("caiso/lmp")), "and the old history key")
		require.Equal(t, seqKey(schemaVersion), tx.Bucket(bucketMeta).Get(keySchema))
		return nil
	}))
}

func TestOpenInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "canary.db")
	s, err := Open(path, Options{})
	require.NoError(t, err)
	defer s.Close()

	start := time.Now()
	_, err = Open(path, Options{})
	require.ErrorIs(t, err, ErrInUse)
	require.ErrorContains(t, err, "data dir is in use by another canary process?")
	require.Less(t, time.Since(start), 5*time.Second)

	// The first store still works.
	require.NoError(t, s.Commit(context.Background(), analysed("default", "web", "r1", 1, 0)))
}

func TestOpenSchema(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(tx *bbolt.Tx) error
		wantErr string
	}{
		{
			name: "newer version",
			setup: func(tx *bbolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(keySchema, seqKey(schemaVersion+1))
			},
			wantErr: "schema version 3 is newer than this canary supports (2): downgrade is not supported",
		},
		{
			name: "older version",
			setup: func(tx *bbolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(keySchema, seqKey(0))
			},
			wantErr: "schema version 0 is older than 2 and has no migration",
		},
		{
			name: "garbled version",
			setup: func(tx *bbolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(keySchema, []byte("1"))
			},
			wantErr: "schema version is 1 bytes, want 8: not a canary store?",
		},
		{
			name:    "current version",
			setup:   func(*bbolt.Tx) error { return nil },
			wantErr: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "canary.db")
			s, err := Open(path, Options{})
			require.NoError(t, err)
			require.NoError(t, s.db.Update(tt.setup))
			require.NoError(t, s.Close())

			s, err = Open(path, Options{})
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.NoError(t, s.Close())
				return
			}
			require.EqualError(t, err, "open store "+path+": "+tt.wantErr)
			// A refused file is released, not left locked.
			_, err = Open(path, Options{})
			require.Error(t, err)
			require.NotErrorIs(t, err, ErrInUse)
		})
	}
}

func TestOpenForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "canary.db")
	db, err := bbolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucket(bucketRunsV1)
		return err
	}))
	require.NoError(t, db.Close())

	_, err = Open(path, Options{})
	require.EqualError(t, err, "open store "+path+": file has runs but no schema version: not a canary store?")
}

func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := openTest(t, Options{Logger: log})
	require.NoError(t, s.Commit(context.Background(), analysed("default", "web", "r1", 1, 0)))
	require.Contains(t, buf.String(), "msg=\"store opened\"")
	require.Contains(t, buf.String(), "component=bbolt", "bbolt's messages reach slog")
}

// TestConcurrentCommits: writers that arrive while a commit syncs share
// the next one.
func TestConcurrentCommits(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	const writers = 50
	before := txID(t, s)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Go(func() { errs <- s.Commit(ctx, analysed("default", fmt.Sprintf("web-%d", i), "r1", 1, 0)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	all, err := s.Canaries(ctx)
	require.NoError(t, err)
	require.Len(t, all, writers, "no write lost")
	commits := txID(t, s) - before
	require.LessOrEqual(t, commits, writers)
	t.Logf("%d commits in %d transactions", writers, commits)
}

// crashEnv makes the test binary the child of TestCrashKeepsAcknowledgedWrites:
// its value is the store's path.
const crashEnv = "CANARY_STORE_CRASH_CHILD"

// TestCrashKeepsAcknowledgedWrites kills a writing process with SIGKILL and
// checks that every Commit it acknowledged is in the file. A process kill
// leaves the page cache intact, so this proves that acknowledged commits are
// complete and the file reopens cleanly after a torn batch; surviving power
// loss rests on the fsync that bbolt does on each commit.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(t, path)
		return
	}
	const killAfter = 300

	path := filepath.Join(t.TempDir(), "canary.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKeepsAcknowledgedWrites$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	// Bound the test if the child stalls before killAfter.
	timer := time.AfterFunc(time.Minute, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()

	acked := map[string]uint64{}
	var n int
	var other []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var name string
		var seq uint64
		if _, err := fmt.Sscanf(sc.Text(), "ack %s %d", &name, &seq); err != nil {
			other = append(other, sc.Text())
			continue
		}
		// Each canary has one writer, so its acks arrive in order.
		acked[name] = seq
		n++
		if n == killAfter {
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		}
		// Keep reading: acks already in the pipe were acknowledged too.
	}
	require.NoError(t, sc.Err())
	err = cmd.Wait()
	require.GreaterOrEqual(t, n, killAfter, "child output:\n%s\n%s", strings.Join(other, "\n"), stderr.String())
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, syscall.SIGKILL, exit.Sys().(syscall.WaitStatus).Signal(), "the child was killed, not done")

	s, err := Open(path, Options{})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.db.View(func(tx *bbolt.Tx) error { return firstErr(tx.Check()) }), "file is consistent")
	all, err := s.Canaries(context.Background())
	require.NoError(t, err)
	got := map[string]*runs.Canary{}
	for _, c := range all {
		got[c.Name] = c
	}
	for name, seq := range acked {
		c := got[name]
		require.NotNil(t, c, name)
		// The write in flight at the kill may have committed unacknowledged.
		require.GreaterOrEqual(t, c.Runs[0].Evaluations, seq, name)
		require.Equal(t, seqs(1, c.Runs[0].Evaluations), historySeqs(t, s, "default", name, "r1"), name)
	}
	t.Logf("%d acknowledged commits over %d canaries survived", n, len(acked))
}

// firstErr drains errs, as bbolt's Check requires, and keeps the first.
func firstErr(errs <-chan error) error {
	var first error
	for err := range errs {
		if first == nil {
			first = err
		}
	}
	return first
}

// crashChild commits with several writers, so commits are shared, until it
// is killed, printing one line per acknowledged Commit.
func crashChild(t *testing.T, path string) {
	s, err := Open(path, Options{})
	require.NoError(t, err)
	var mu sync.Mutex
	deadline := time.Now().Add(30 * time.Second)
	var wg sync.WaitGroup
	for w := range 8 {
		name := fmt.Sprintf("web-%d", w)
		wg.Go(func() {
			for seq := uint64(1); time.Now().Before(deadline); seq++ {
				if err := s.Commit(context.Background(), analysed("default", name, "r1", seq, 1<<20)); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ack %s %d\n", name, seq)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Error("not killed before the deadline")
}
