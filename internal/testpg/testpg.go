// Package testpg runs a real PostgreSQL server for tests.
//
// Tests talk to the Debian `postgresql` server binaries over the wire instead
// of a fake, so that what they check (SQL errors, SQLSTATEs, read-only
// transactions, authentication failures) is what production sees. Each
// server gets its own cluster in a temporary directory and its own port, so
// tests never see each other's data.
//
// The Debian package puts the server binaries (initdb, postgres) into
// /usr/lib/postgresql/<version>/bin, which is not on PATH; Start takes the
// newest version there, or the directory named by the PG_BIN environment
// variable.
//
// PostgreSQL refuses to run as root, and CI runs tests as root. There, Start
// runs initdb and postgres as the unprivileged `postgres` system user that
// the Debian package creates, and hands it the cluster directory.
package testpg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aurum/canary/internal/testproc"
)

const (
	// readyTimeout bounds the wait for the first accepted connection. A
	// fresh cluster is ready in well under a second; the margin is for a
	// loaded CI machine.
	readyTimeout = 30 * time.Second
	// initdbTimeout bounds initdb, which takes about a second with
	// --no-sync.
	initdbTimeout = time.Minute
	// stopTimeout is how long Stop waits for a fast shutdown before it
	// kills the server.
	stopTimeout = 10 * time.Second
	// startAttempts is how many fresh ports Start tries. Picking a free port
	// and handing it to another process is racy; a retry makes a clash
	// harmless.
	startAttempts = 3
	// maxSocketPath is the longest path a Unix socket may have on Linux
	// (sun_path holds 108 bytes, the last one a NUL).
	maxSocketPath = 107
	// serviceUser is the system user the Debian package creates, and the
	// one the server runs as when the tests run as root.
	serviceUser = "postgres"
	// superuser is the database superuser initdb creates, and the user of
	// DSN.
	superuser = "postgres"
)

// hbaConf replaces the pg_hba.conf that initdb -A trust writes. The
// superuser needs no password, so that DSN and Exec just work; every other
// role must give its password over TCP, so that tests can exercise real
// password authentication, and its failure, with a role they create.
const hbaConf = `# Written by internal/testpg.
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       all                      trust
host    all       postgres  127.0.0.1/32   trust
host    all       all       127.0.0.1/32   scram-sha-256
`

// Server is a running PostgreSQL. It is stopped when the test that started
// it ends.
type Server struct {
	port int
	cmd  *exec.Cmd
	proc *testproc.Process

	stopOnce sync.Once
}

// Start creates a cluster in a fresh temporary directory, runs a PostgreSQL
// on a free port of 127.0.0.1 with fsync off, and returns once it accepts
// connections. It fails the test when the binaries are missing: a skipped
// test would look like a passing one.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := binDir()
	if err != nil {
		t.Fatalf("%v", err)
	}
	cred, err := credential()
	if err != nil {
		t.Fatalf("%v", err)
	}
	dir := clusterDir(t, cred)
	dataDir := filepath.Join(dir, "data")

	var output testproc.Buffer
	if err := initdb(bin, dataDir, dir, cred, &output); err != nil {
		t.Fatalf("%v\ninitdb output:\n%s", err, output.String())
	}

	var errs []error
	for range startAttempts {
		s, err := start(bin, dataDir, dir, cred)
		if err == nil {
			t.Cleanup(func() {
				s.Stop()
				if t.Failed() {
					t.Logf("postgres output:\n%s", s.Output())
				}
			})
			return s
		}
		errs = append(errs, err)
	}
	t.Fatalf("start postgres: %v", errors.Join(errs...))
	return nil
}

// binDir finds the directory holding initdb and postgres: PG_BIN when set,
// else the newest /usr/lib/postgresql/<version>/bin, else the directory of
// an initdb on PATH (other distributions, Homebrew).
func binDir() (string, error) {
	const install = "install the Debian package `postgresql` (make test does)"
	if dir := os.Getenv("PG_BIN"); dir != "" {
		if err := hasServer(dir); err != nil {
			return "", fmt.Errorf("PG_BIN=%s: %w: set PG_BIN to the directory of initdb and postgres, or unset it and %s", dir, err, install)
		}
		return dir, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	dirs = slices.DeleteFunc(dirs, func(d string) bool { return hasServer(d) != nil })
	if len(dirs) > 0 {
		return newest(dirs), nil
	}
	if initdb, err := exec.LookPath("initdb"); err == nil {
		if dir := filepath.Dir(initdb); hasServer(dir) == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL server binaries (initdb, postgres) not found in /usr/lib/postgresql/*/bin or on PATH: %s, or set PG_BIN to their directory", install)
}

// hasServer checks that dir holds the two binaries Start runs.
func hasServer(dir string) error {
	for _, name := range []string{"initdb", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("no %s there", name)
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%s there is not executable", name)
		}
	}
	return nil
}

// newest picks the bin directory of the highest version from
// /usr/lib/postgresql/<version>/bin paths. Versions compare numerically,
// part by part, so that 15 beats 9.6.
func newest(dirs []string) string {
	version := func(dir string) []int {
		var v []int
		for p := range strings.SplitSeq(filepath.Base(filepath.Dir(dir)), ".") {
			n, err := strconv.Atoi(p)
			if err != nil {
				n = -1 // not a version: sort it first
			}
			v = append(v, n)
		}
		return v
	}
	return slices.MaxFunc(dirs, func(a, b string) int { return slices.Compare(version(a), version(b)) })
}

// credential is nil when the tests do not run as root. As root it is the
// credential of the `postgres` system user, since initdb and postgres exit
// at once when run as root.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(serviceUser)
	if err != nil {
		return nil, fmt.Errorf("tests run as root, which PostgreSQL refuses, and there is no %q user to run it as: install the Debian package `postgresql`, which creates it: %v", serviceUser, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: uid %q: %v", serviceUser, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: gid %q: %v", serviceUser, u.Gid, err)
	}
	// An empty Groups drops root's supplementary groups too.
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// clusterDir makes the directory that holds the data directory and the
// Unix socket, and, when the server runs as another user, gives it to that
// user and makes its parents traversable.
func clusterDir(t testing.TB, cred *syscall.Credential) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pg")
	if len(dir+"/.s.PGSQL.65535") > maxSocketPath {
		// A long TMPDIR makes a path too long for the socket that postgres
		// creates next to the data directory; /tmp is on every Unix.
		short, err := os.MkdirTemp("/tmp", "testpg")
		if err != nil {
			t.Fatalf("make a short directory for postgres: %v", err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(short) })
		dir = filepath.Join(short, "pg")
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatalf("make postgres directory: %v", err)
	}
	if cred == nil {
		return dir
	}
	if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
		t.Fatalf("give %s to user %s: %v", dir, serviceUser, err)
	}
	// t.TempDir and os.MkdirTemp make 0700 directories; the server user
	// must pass through them (but needs to read none of them).
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatalf("stat %s: %v", d, err)
		}
		if fi.Mode()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o001); err != nil {
				t.Fatalf("make %s traversable for user %s: %v", d, serviceUser, err)
			}
		}
		if d == filepath.Dir(d) {
			return dir
		}
	}
}

// command builds a command that runs as cred (nil: as this process) in dir.
func command(ctx context.Context, cred *syscall.Credential, dir string, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	// The package directory, the default, may be unreadable for the server
	// user; initdb and postgres complain about a working directory they
	// cannot enter.
	cmd.Dir = dir
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	return cmd
}

// initdb creates a cluster in dataDir and puts hbaConf in place.
func initdb(bin, dataDir, dir string, cred *syscall.Credential, out *testproc.Buffer) error {
	ctx, cancel := context.WithTimeout(context.Background(), initdbTimeout)
	defer cancel()
	cmd := command(ctx, cred, dir, filepath.Join(bin, "initdb"),
		"-D", dataDir,
		"-A", "trust",
		"-U", superuser,
		"-E", "UTF8",
		// The C locale exists everywhere; a LANG naming a locale that is
		// not installed would make initdb fail.
		"--no-locale",
		// Durability is pointless for a cluster that lives as long as a
		// test.
		"--no-sync",
	)
	// One writer for both streams: os/exec then serialises the writes.
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	// Overwriting keeps the file's owner and mode, which postgres checks.
	if err := os.WriteFile(filepath.Join(dataDir, "pg_hba.conf"), []byte(hbaConf), 0o600); err != nil {
		return fmt.Errorf("write pg_hba.conf: %w", err)
	}
	return nil
}

// start launches one postgres on a free port and waits until it accepts
// connections. On failure it stops the process and puts its output into
// the error.
func start(bin, dataDir, dir string, cred *syscall.Credential) (*Server, error) {
	port, err := testproc.FreePort()
	if err != nil {
		return nil, err
	}
	s := &Server{port: port}
	s.cmd = command(context.Background(), cred, dir, filepath.Join(bin, "postgres"),
		"-D", dataDir,
		// The socket goes next to the data directory, not into
		// /var/run/postgresql, which may be missing or not writable.
		"-k", dir,
		"-c", "listen_addresses=127.0.0.1",
		"-p", strconv.Itoa(port),
		// Tests only: a crash loses nothing that matters.
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
	)
	// The parent-death signal in serverAttr works because testproc.Start
	// keeps the thread that started the server until the server exits.
	s.cmd.SysProcAttr = serverAttr(cred)
	s.proc, err = testproc.Start("postgres", s.cmd)
	if err != nil {
		return nil, err
	}
	if err := s.waitReady(); err != nil {
		s.Stop()
		return nil, fmt.Errorf("%w\npostgres output:\n%s", err, s.Output())
	}
	return s, nil
}

// waitReady connects and pings until that works, the process exits, or
// readyTimeout passes. A server that is still starting up refuses
// connections with "the database system is starting up".
func (s *Server) waitReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = s.ping(ctx); last == nil {
			return nil
		}
		select {
		case <-s.proc.Exited():
			return fmt.Errorf("postgres exited before it was ready: %v", s.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("postgres not ready after %s: %v", readyTimeout, last)
		case <-tick.C:
		}
	}
}

func (s *Server) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx)
}

// DSN is the URL of the postgres database as the superuser postgres, who
// needs no password: postgres://postgres@127.0.0.1:<port>/postgres?sslmode=disable.
func (s *Server) DSN() string { return s.dsn(url.User(superuser)) }

// DSNAs is the URL of the postgres database as another role, with its
// password, for tests of password authentication: roles other than
// postgres must give theirs.
func (s *Server) DSNAs(role, password string) string {
	return s.dsn(url.UserPassword(role, password))
}

func (s *Server) dsn(user *url.Userinfo) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     user,
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/postgres",
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Exec runs sql as the superuser, in a connection of its own, and fails the
// test on an error. Without args, sql may hold several statements
// separated by semicolons.
func (s *Server) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN())
	if err != nil {
		t.Fatalf("exec %q: connect: %v", sql, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

// Stop shuts the server down and waits for it to exit. Tests call it to
// simulate an outage; the port then refuses connections. Calling it again
// is a no-op.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		// SIGINT is a fast shutdown: open sessions are told the server is
		// going away and ended, without waiting for their clients. Root may
		// signal the process even when it runs as postgres.
		_ = s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.proc.Exited():
		case <-time.After(stopTimeout):
			s.proc.Stop()
		}
	})
}

// Output is what the server printed so far.
func (s *Server) Output() string { return s.proc.Output() }
