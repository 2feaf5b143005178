// Package tcpprobe is the health-probe source that opens a TCP connection
// and reports whether and how fast it was accepted, as a record: up and
// latency_ms. A rule reads it as `db.up == 1 && db.latency_ms < 50`.
//
// A refused or unanswered connection is a measurement (up = 0, with the
// reason in Result.Warnings), not an error. Errors are kept for what
// measured nothing: a query that cannot be run (wrapping
// queries.ErrBadQuery) and a caller that canceled or ran out of time
// (wrapping context.Canceled or queries.ErrTimeout).
//
// The directory is queries/tcp; the package is named tcpprobe, like its
// sibling httpprobe in queries/http, so that the name says it probes.
package tcpprobe

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/common/model"

	"github.com/aurum/canary/queries"
)

// DefaultTimeout bounds one connection attempt when neither Config nor the
// query sets one. A service on a reachable network accepts in
// milliseconds; 3s leaves room for a SYN retransmit (the first one is sent
// after 1s) and no more.
const DefaultTimeout = 3 * time.Second

// Config holds the defaults of the probes of one source.
type Config struct {
	// Timeout bounds one call to Query, name resolution included. A
	// query's timeout field overrides it. Zero or negative means
	// DefaultTimeout.
	Timeout time.Duration
	// Allow restricts the hosts of probe addresses for every query; the
	// zero value allows any host. A query's own list (queries.Query.Allow)
	// can only narrow it: an address must pass both. A refused query fails
	// with queries.ErrBadQuery before any connection is made. Check the
	// list with its Validate method when loading the configuration: New
	// cannot fail, so a list that does not validate refuses every probe.
	Allow queries.Allowlist
}

// Source opens TCP connections to probe targets. It holds no connections
// and is safe for concurrent use.
type Source struct {
	timeout time.Duration
	dialer  net.Dialer
	allow   queries.Allowlist
}

var _ queries.Source = (*Source)(nil)

// New builds a Source.
func New(cfg Config) *Source {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &Source{timeout: cfg.Timeout, allow: cfg.Allow}
}

// Query connects to the address in q.Fields and closes the connection as
// soon as it is established: nothing is sent, so any TCP service can be
// probed. q.Text, q.Time, q.Range and q.Step are ignored: a probe measures
// now.
//
// Fields (an empty value means the default):
//
//   - address: required; host:port, with a numeric port, whose host the
//     allowlists allow (Config.Allow, and q.Allow when set). A host name
//     is resolved on each probe, and the time that takes counts.
//   - timeout: a duration such as 2s that replaces Config.Timeout; ctx's
//     deadline still applies.
//
// Other fields are rejected. Result.Values always holds:
//
//   - up: 1 if the connection was established, else 0.
//   - latency_ms: the time to establish it (name resolution included), NaN
//     when it was not.
//
// When up is 0, Result.Warnings says why: refused, unreachable, or no
// answer within the timeout.
//
// Errors wrap queries.ErrBadQuery for fields that cannot be used and for
// an address whose host Config.Allow or q.Allow refuses (see
// queries.AllowHost), context.Canceled when ctx was canceled, and
// queries.ErrTimeout when ctx's own deadline passed before the probe's
// timeout did.
func (s *Source) Query(ctx context.Context, q queries.Query) (queries.Result, error) {
	address, host, timeout, err := s.parse(q.Fields)
	if err != nil {
		return queries.Result{}, err
	}
	if err := queries.AllowHost("tcp probe", host, s.allow, q.Allow); err != nil {
		return queries.Result{}, err
	}
	if ctx.Err() != nil {
		return queries.Result{}, queries.CallerError(ctx, "tcp probe of "+address)
	}
	pctx, cancel := context.WithTimeoutCause(ctx, timeout, &queries.Timeout{Name: "tcp probe", D: timeout})
	defer cancel()

	res := queries.Result{Values: map[string]float64{"up": 0, "latency_ms": math.NaN()}}
	start := time.Now()
	conn, err := s.dialer.DialContext(pctx, "tcp", address)
	elapsed := time.Since(start)
	if err == nil {
		// The handshake is the measurement; the connection has no use.
		_ = conn.Close()
		res.Values["up"] = 1
		res.Values["latency_ms"] = float64(elapsed) / float64(time.Millisecond)
		return res, nil
	}
	settle(pctx)
	switch {
	case ctx.Err() != nil:
		// The caller's end, not the probe's timeout: nothing measured.
		return queries.Result{}, queries.CallerError(ctx, "tcp probe of "+address)
	case pctx.Err() != nil:
		res.Warnings = []string{fmt.Sprintf("connect %s: did not answer within %s", address, timeout)}
	default:
		res.Warnings = []string{"connect " + address + ": " + describe(err)}
	}
	return res, nil
}

// settle waits for ctx to end once its deadline has passed. The dialer
// turns the deadline into a socket deadline, which can fire a moment before
// the context's own timer; without the wait, an "i/o timeout" would pass
// for a network failure, or the caller's deadline for the probe's.
func settle(ctx context.Context) {
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		<-ctx.Done()
	}
}

// parse checks the fields and returns the address, its host and the
// timeout.
func (s *Source) parse(fields map[string]string) (address, host string, timeout time.Duration, err error) {
	if msg := queries.UnknownFields(fields, "address, timeout", func(name string) bool {
		return name == "address" || name == "timeout"
	}); msg != "" {
		return "", "", 0, badQuery("%s", msg)
	}

	address = fields["address"]
	if address == "" {
		return "", "", 0, badQuery("address is required")
	}
	if strings.Contains(address, "@") {
		// user:password@host:port, or a URL with credentials: never a
		// host, and not to be quoted back.
		return "", "", 0, badQuery("address holds user info ('@'); want host:port")
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		var aerr *net.AddrError
		if errors.As(err, &aerr) {
			// AddrError quotes the address itself; say it once.
			return "", "", 0, badQuery("address %q: %s; want host:port", address, aerr.Err)
		}
		return "", "", 0, badQuery("address %q: want host:port", address)
	}
	if host == "" {
		// Dial would take an empty host for the local machine, which is
		// never what a policy means.
		return "", "", 0, badQuery("address %q: no host", address)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '+' {
		return "", "", 0, badQuery("address %q: port %q is not a number from 1 to 65535", address, port)
	}

	timeout = s.timeout
	if t := fields["timeout"]; t != "" {
		// The same format as every other duration in a policy, which
		// the policy loader has already checked.
		md, err := model.ParseDuration(t)
		d := time.Duration(md)
		if err != nil || d <= 0 {
			return "", "", 0, badQuery("timeout %q: want a positive duration such as 2s or 500ms", t)
		}
		timeout = d
	}
	return address, host, timeout, nil
}

// describe shortens a dial error to its reason; messages already name the
// address.
func describe(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.Error()
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		// "dial tcp 10.0.0.1:5432: connect: x" repeats the address.
		return opErr.Err.Error()
	}
	return err.Error()
}

func badQuery(format string, args ...any) error {
	return &queries.Error{Kind: queries.ErrBadQuery, Msg: "tcp probe: " + fmt.Sprintf(format, args...)}
}
