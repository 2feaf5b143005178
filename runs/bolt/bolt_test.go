package bolt

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/aurum/canary/runs"
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
)

type updateFn = func(*runs.Run) (*runs.Run, *runs.Evaluation, error)

var (
	t0      = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	errBoom = errors.New("boom")
)

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

// evaluate records one analysis of revision rev of namespace/name, starting
// a new run when the revision changes, as the analysis package does.
func evaluate(namespace, name, rev string) updateFn {
	return func(run *runs.Run) (*runs.Run, *runs.Evaluation, error) {
		if run == nil || run.Revision != rev {
			run = &runs.Run{Namespace: namespace, Name: name, Revision: rev, StartedAt: t0}
		}
		run.Evaluations++
		value := analysis.Float(0.25)
		ev := &runs.Evaluation{
			Seq:      run.Evaluations,
			At:       t0.Add(time.Duration(run.Evaluations) * time.Minute),
			Policy:   "checkout",
			Verdict:  analysis.VerdictPass,
			Decision: analysis.DecisionContinue,
			Score:    1,
			Reason:   "all rules pass",
			Rules: []runs.RuleRecord{
				{Name: "error-rate", Verdict: "pass", Value: &value, Reason: "0.25 < 1"},
				{Name: "latency", Verdict: "pass", Reason: "no data"},
			},
		}
		run.Policy = ev.Policy
		run.Params = map[string]string{"service": name}
		run.UpdatedAt = ev.At
		run.LastVerdict, run.LastDecision, run.LastReason = ev.Verdict, ev.Decision, ev.Reason
		return run, ev, nil
	}
}

// web is evaluate for the run most tests use.
func web(rev string) updateFn { return evaluate("default", "web", rev) }

// latch sets a latch on an existing run and ignores a missing one.
func latch(kind runs.LatchKind) updateFn {
	return func(run *runs.Run) (*runs.Run, *runs.Evaluation, error) {
		if run == nil {
			return nil, nil, nil
		}
		run.Latches = append(run.Latches, runs.Latch{Kind: kind, Source: runs.SourceManual, Reason: "test", At: t0})
		return run, nil, nil
	}
}

// revise moves the run to revision rev without an evaluation.
func revise(rev string) updateFn {
	return func(run *runs.Run) (*runs.Run, *runs.Evaluation, error) {
		run.Revision = rev
		return run, nil, nil
	}
}

func noop(*runs.Run) (*runs.Run, *runs.Evaluation, error) { return nil, nil, nil }

func fail(*runs.Run) (*runs.Run, *runs.Evaluation, error) { return nil, nil, errBoom }

// onCall calls fns[i] on the i-th call and the last one after that, to play
// a run that changes between Update's snapshot and its commit.
func onCall(fns ...updateFn) updateFn {
	var calls int
	return func(run *runs.Run) (*runs.Run, *runs.Evaluation, error) {
		fn := fns[min(calls, len(fns)-1)]
		calls++
		return fn(run)
	}
}

func repeat(n int, fn updateFn) []updateFn {
	fns := make([]updateFn, n)
	for i := range fns {
		fns[i] = fn
	}
	return fns
}

func seqs(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func historySeqs(t *testing.T, s *Bolt, namespace, name string) []uint64 {
	t.Helper()
	evs, err := s.History(context.Background(), namespace, name, 0)
	require.NoError(t, err)
	var got []uint64
	for _, ev := range evs {
		got = append(got, ev.Seq)
	}
	return got
}

func TestUpdate(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name  string
		setup []updateFn // applied first with keep 0
		// race is applied by another Update between fn's first call and
		// the commit, as a concurrent writer would.
		race updateFn
		ctx  context.Context
		keep int
		fn   updateFn
		// wantRevision empty: no run is stored afterwards.
		wantRevision    string
		wantEvaluations uint64
		wantLatches     int
		wantSeqs        []uint64
		wantCommits     int
		wantErr         error
		wantErrText     string
	}{
		{
			name:            "create",
			fn:              web("r1"),
			wantRevision:    "r1",
			wantEvaluations: 1,
			wantSeqs:        []uint64{1},
			wantCommits:     1,
		},
		{
			name:            "modify without evaluation",
			setup:           []updateFn{web("r1")},
			fn:              latch(runs.LatchPause),
			wantRevision:    "r1",
			wantEvaluations: 1,
			wantLatches:     1,
			wantSeqs:        []uint64{1},
			wantCommits:     1,
		},
		{
			name:            "append keeps latches",
			setup:           []updateFn{web("r1"), latch(runs.LatchRollback)},
			fn:              web("r1"),
			wantRevision:    "r1",
			wantEvaluations: 2,
			wantLatches:     1,
			wantSeqs:        []uint64{1, 2},
			wantCommits:     1,
		},
		{
			name: "no-op on a missing run writes nothing",
			fn:   latch(runs.LatchPause),
		},
		{
			name:            "no-op on a run writes nothing",
			setup:           []updateFn{web("r1")},
			fn:              noop,
			wantRevision:    "r1",
			wantEvaluations: 1,
			wantSeqs:        []uint64{1},
		},
		{
			name:            "fn error writes nothing",
			setup:           []updateFn{web("r1")},
			fn:              fail,
			wantRevision:    "r1",
			wantEvaluations: 1,
			wantSeqs:        []uint64{1},
			wantErr:         errBoom,
		},
		{
			name:            "a concurrent change is applied first, then fn again",
			setup:           []updateFn{web("r1")},
			race:            latch(runs.LatchRollback),
			fn:              web("r1"),
			wantRevision:    "r1",
			wantEvaluations: 2,
			wantLatches:     1,
			wantSeqs:        []uint64{1, 2},
			wantCommits:     2,
		},
		{
			name:            "fn error at commit writes nothing",
			setup:           []updateFn{web("r1")},
			race:            latch(runs.LatchPause),
			fn:              onCall(web("r1"), fail),
			wantRevision:    "r1",
			wantEvaluations: 1,
			wantLatches:     1,
			wantSeqs:        []uint64{1},
			// The concurrent latch, and the commit this write queued for
			// (shared with any others), which carries nothing of it.
			wantCommits: 2,
			wantErr:     errBoom,
		},
		{
			name:            "no-op at commit writes nothing",
			setup:           []updateFn{web("r1")},
			race:            latch(runs.LatchPause),
			fn:              onCall(web("r1"), noop),
			wantRevision:    "r1",
			wantEvaluations: 1,
			wantLatches:     1,
			wantSeqs:        []uint64{1},
			wantCommits:     2, // as above
		},
		{
			name:            "new revision drops history",
			setup:           repeat(3, web("r1")),
			fn:              web("r2"),
			wantRevision:    "r2",
			wantEvaluations: 1,
			wantSeqs:        []uint64{1},
			wantCommits:     1,
		},
		{
			name:            "new revision without evaluation drops history",
			setup:           repeat(3, web("r1")),
			fn:              revise("r2"),
			wantRevision:    "r2",
			wantEvaluations: 3,
			wantCommits:     1,
		},
		{
			name:            "trim to keep",
			setup:           repeat(5, web("r1")),
			keep:            3,
			fn:              web("r1"),
			wantRevision:    "r1",
			wantEvaluations: 6,
			wantSeqs:        []uint64{4, 5, 6},
			wantCommits:     1,
		},
		{
			name:            "keep <= 0 keeps 100",
			setup:           repeat(105, web("r1")),
			keep:            -1,
			fn:              web("r1"),
			wantRevision:    "r1",
			wantEvaluations: 106,
			wantSeqs:        seqs(7, 106),
			wantCommits:     1,
		},
		{
			name:  "fn returns another run",
			setup: []updateFn{web("r1")},
			fn: func(*runs.Run) (*runs.Run, *runs.Evaluation, error) {
				return &runs.Run{Namespace: "default", Name: "api", Revision: "r1"}, nil, nil
			},
			wantRevision:    "r1",
			wantEvaluations: 1,
			wantSeqs:        []uint64{1},
			wantErrText:     "update default/web: fn returned run default/api",
		},
		{
			name:            "cancelled context",
			setup:           []updateFn{web("r1")},
			ctx:             cancelled,
			fn:              web("r1"),
			wantRevision:    "r1",
			wantEvaluations: 1,
			wantSeqs:        []uint64{1},
			wantErr:         context.Canceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := openTest(t, Options{})
			for _, fn := range tt.setup {
				_, err := s.Update(ctx, "default", "web", 0, fn)
				require.NoError(t, err)
			}
			before := txID(t, s)

			fn := tt.fn
			if tt.race != nil {
				raced := false
				fn = func(run *runs.Run) (*runs.Run, *runs.Evaluation, error) {
					if !raced {
						raced = true
						_, err := s.Update(ctx, "default", "web", 0, tt.race)
						require.NoError(t, err)
					}
					return tt.fn(run)
				}
			}
			got, err := s.Update(ctxOr(tt.ctx, ctx), "default", "web", tt.keep, fn)

			require.Equal(t, tt.wantCommits, txID(t, s)-before, "commits")
			switch {
			case tt.wantErr != nil:
				require.ErrorIs(t, err, tt.wantErr)
				require.Nil(t, got)
			case tt.wantErrText != "":
				require.EqualError(t, err, tt.wantErrText)
				require.Nil(t, got)
			default:
				require.NoError(t, err)
			}

			stored, runErr := s.Run(ctx, "default", "web")
			if tt.wantRevision == "" {
				require.ErrorIs(t, runErr, runs.ErrRunNotFound)
				require.Nil(t, got)
				return
			}
			require.NoError(t, runErr)
			require.Equal(t, tt.wantRevision, stored.Revision)
			require.Equal(t, tt.wantEvaluations, stored.Evaluations)
			require.Len(t, stored.Latches, tt.wantLatches)
			require.Equal(t, tt.wantSeqs, historySeqs(t, s, "default", "web"))
			if err == nil {
				// What Update returns is what a later read sees.
				require.Equal(t, stored, got)
			}
		})
	}
}

func ctxOr(ctx, def context.Context) context.Context {
	if ctx != nil {
		return ctx
	}
	return def
}

func TestHistory(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	for range 10 {
		_, err := s.Update(ctx, "default", "web", 0, web("r1"))
		require.NoError(t, err)
	}
	_, err := s.Update(ctx, "default", "idle", 0, func(*runs.Run) (*runs.Run, *runs.Evaluation, error) {
		return &runs.Run{Namespace: "default", Name: "idle", Revision: "r1"}, nil, nil
	})
	require.NoError(t, err)

	tests := []struct {
		name     string
		run      string
		limit    int
		wantSeqs []uint64
	}{
		{name: "limit 0 is all", run: "web", limit: 0, wantSeqs: seqs(1, 10)},
		{name: "negative limit is all", run: "web", limit: -1, wantSeqs: seqs(1, 10)},
		{name: "newest 3, oldest first", run: "web", limit: 3, wantSeqs: []uint64{8, 9, 10}},
		{name: "newest 1", run: "web", limit: 1, wantSeqs: []uint64{10}},
		{name: "limit equal to size", run: "web", limit: 10, wantSeqs: seqs(1, 10)},
		{name: "limit above size", run: "web", limit: 50, wantSeqs: seqs(1, 10)},
		{name: "run without evaluations", run: "idle", limit: 5, wantSeqs: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := s.History(ctx, "default", tt.run, tt.limit)
			require.NoError(t, err)
			require.NotNil(t, evs, "an empty history renders as [], not null")
			var got []uint64
			for _, ev := range evs {
				got = append(got, ev.Seq)
			}
			require.Equal(t, tt.wantSeqs, got)
		})
	}

	t.Run("evaluations round-trip", func(t *testing.T) {
		evs, err := s.History(ctx, "default", "web", 1)
		require.NoError(t, err)
		_, want, err := web("r1")(&runs.Run{Namespace: "default", Name: "web", Revision: "r1", Evaluations: 9})
		require.NoError(t, err)
		require.Equal(t, []runs.Evaluation{*want}, evs)
	})
}

func TestNotFound(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	_, err := s.Update(ctx, "default", "web", 0, web("r1"))
	require.NoError(t, err)

	tests := []struct {
		name      string
		namespace string
		run       string
	}{
		{name: "other name", namespace: "default", run: "api"},
		{name: "other namespace", namespace: "prod", run: "web"},
		{name: "prefix of a key", namespace: "default", run: "we"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Run(ctx, tt.namespace, tt.run)
			require.ErrorIs(t, err, runs.ErrRunNotFound)
			require.EqualError(t, err, tt.namespace+"/"+tt.run+": run not found")
			_, err = s.History(ctx, tt.namespace, tt.run, 0)
			require.ErrorIs(t, err, runs.ErrRunNotFound)
		})
	}
}

func TestInvalidKey(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	tests := []struct {
		name string
		call func() error
	}{
		{name: "run", call: func() error { _, err := s.Run(ctx, "a/b", "c"); return err }},
		{name: "history", call: func() error { _, err := s.History(ctx, "a/b", "c", 0); return err }},
		{name: "update", call: func() error { _, err := s.Update(ctx, "a/b", "c", 0, evaluate("a/b", "c", "r1")); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.EqualError(t, tt.call(), `namespace "a/b": must not contain '/'`)
		})
	}
}

func TestRunsOrder(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	// Written out of order, and with namespaces whose key order ('-' sorts
	// before '/') differs from namespace order.
	keys := [][2]string{{"b", "web"}, {"a-b", "web"}, {"a", "web"}, {"a", "api"}, {"a", "web-2"}, {"prod", "checkout"}}
	for _, k := range keys {
		_, err := s.Update(ctx, k[0], k[1], 0, evaluate(k[0], k[1], "r1"))
		require.NoError(t, err)
	}

	all, err := s.Runs(ctx)
	require.NoError(t, err)
	var got []string
	for _, r := range all {
		got = append(got, r.Namespace+" "+r.Name)
	}
	require.Equal(t, []string{"a api", "a web", "a web-2", "a-b web", "b web", "prod checkout"}, got)
}

func TestRunsEmpty(t *testing.T) {
	all, err := openTest(t, Options{}).Runs(context.Background())
	require.NoError(t, err)
	require.Empty(t, all)
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "data", "canary.db")
	s, err := Open(path, Options{})
	require.NoError(t, err)

	for _, name := range []string{"web", "api"} {
		for range 5 {
			_, err := s.Update(ctx, "default", name, 0, evaluate("default", name, "r1"))
			require.NoError(t, err)
		}
	}
	_, err = s.Update(ctx, "default", "web", 0, latch(runs.LatchRollback))
	require.NoError(t, err)
	_, err = s.Update(ctx, "default", "api", 3, evaluate("default", "api", "r2"))
	require.NoError(t, err)

	wantRuns, err := s.Runs(ctx)
	require.NoError(t, err)
	wantWeb, err := s.History(ctx, "default", "web", 0)
	require.NoError(t, err)
	wantAPI, err := s.History(ctx, "default", "api", 0)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "closing twice")

	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	s, err = Open(path, Options{})
	require.NoError(t, err)
	defer s.Close()
	all, err := s.Runs(ctx)
	require.NoError(t, err)
	require.Equal(t, wantRuns, all)
	require.Len(t, all, 2)
	require.Len(t, all[1].Latches, 1, "default/web keeps its latch")
	require.Equal(t, runs.LatchRollback, all[1].Latches[0].Kind)

	web, err := s.History(ctx, "default", "web", 0)
	require.NoError(t, err)
	require.Equal(t, wantWeb, web)
	require.Len(t, web, 5)
	api, err := s.History(ctx, "default", "api", 0)
	require.NoError(t, err)
	require.Equal(t, wantAPI, api)
	require.Len(t, api, 1, "r2 started a new history")
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
	_, err = s.Update(context.Background(), "default", "web", 0, web("r1"))
	require.NoError(t, err)
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
			wantErr: "schema version 2 is newer than this canary supports (1): downgrade is not supported",
		},
		{
			name: "older version",
			setup: func(tx *bbolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(keySchema, seqKey(0))
			},
			wantErr: "schema version 0 is older than 1 and has no migration",
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
			s, err = Open(path, Options{})
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
		_, err := tx.CreateBucket(bucketRuns)
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
	_, err := s.Update(context.Background(), "default", "web", 0, web("r1"))
	require.NoError(t, err)
	require.Contains(t, buf.String(), "msg=\"store opened\"")
	require.Contains(t, buf.String(), "component=bbolt", "bbolt's messages reach slog")
}

func TestConcurrentUpdates(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	const writers = 50
	before := txID(t, s)

	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Go(func() {
			_, err := s.Update(ctx, "default", "web", 0, web("r1"))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	run, err := s.Run(ctx, "default", "web")
	require.NoError(t, err)
	require.Equal(t, uint64(writers), run.Evaluations, "no update lost")
	require.Equal(t, seqs(1, writers), historySeqs(t, s, "default", "web"))
	commits := txID(t, s) - before
	require.LessOrEqual(t, commits, writers)
	t.Logf("%d updates in %d commits", writers, commits)
}

// crashEnv makes the test binary the child of TestCrashKeepsAcknowledgedWrites:
// its value is the store's path.
const crashEnv = "CANARY_STORE_CRASH_CHILD"

// TestCrashKeepsAcknowledgedWrites kills a writing process with SIGKILL and
// checks that every Update it acknowledged is in the file. A process kill
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
		// Each run has one writer, so its acks arrive in order.
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
	ctx := context.Background()
	for name, seq := range acked {
		run, err := s.Run(ctx, "default", name)
		require.NoError(t, err)
		// The write in flight at the kill may have committed unacknowledged.
		require.GreaterOrEqual(t, run.Evaluations, seq, name)
		got := historySeqs(t, s, "default", name)
		require.Equal(t, seqs(1, run.Evaluations), got, name)
	}
	t.Logf("%d acknowledged updates over %d runs survived", n, len(acked))
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

// crashChild writes with several writers, so commits are shared, until it
// is killed, printing one line per acknowledged Update.
func crashChild(t *testing.T, path string) {
	s, err := Open(path, Options{})
	require.NoError(t, err)
	var mu sync.Mutex
	deadline := time.Now().Add(30 * time.Second)
	var wg sync.WaitGroup
	for w := range 8 {
		name := fmt.Sprintf("web-%d", w)
		wg.Go(func() {
			for time.Now().Before(deadline) {
				run, err := s.Update(context.Background(), "default", name, 1<<20, evaluate("default", name, "r1"))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ack %s %d\n", name, run.Evaluations)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Error("not killed before the deadline")
}
