package tcpprobe_test

import (
	"context"
	"errors"
	"math"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/queries"
	tcpprobe "github.com/aurum/canary/queries/tcp"
)

// listen returns the address of a listener that accepts and closes
// connections, and counts them.
func listen(t *testing.T) (string, func() int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	n := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
			_ = c.Close()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
	})
	return l.Addr().String(), func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

// closedAddr is an address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestQuery(t *testing.T) {
	open, accepted := listen(t)
	closed := closedAddr(t)

	tests := []struct {
		name    string
		cfg     tcpprobe.Config
		fields  map[string]string
		wantUp  float64
		warning string // the only warning; empty for none
	}{
		{name: "open port", fields: map[string]string{"address": open}, wantUp: 1},
		{name: "open port, host name", fields: map[string]string{"address": "localhost:" + port(t, open), "timeout": "2s"}, wantUp: 1},
		{name: "empty timeout takes the default", fields: map[string]string{"address": open, "timeout": ""}, wantUp: 1},
		{name: "refused", fields: map[string]string{"address": closed}, warning: "connect " + closed + ": connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := accepted()
			start := time.Now()
			res, err := tcpprobe.New(tt.cfg).Query(t.Context(), queries.Query{Fields: tt.fields})
			elapsed := time.Since(start)
			require.NoError(t, err, "a port that is closed is a measurement")
			require.Equal(t, tt.wantUp, res.Values["up"], "warnings: %q", res.Warnings)
			require.Len(t, res.Values, 2)
			lat := res.Values["latency_ms"]
			if tt.warning != "" {
				require.True(t, math.IsNaN(lat), "no connection, no latency")
				require.Equal(t, []string{tt.warning}, res.Warnings)
				return
			}
			require.Empty(t, res.Warnings)
			require.Greater(t, lat, 0.0)
			require.LessOrEqual(t, lat, float64(elapsed)/float64(time.Millisecond))
			require.Eventually(t, func() bool { return accepted() == before+1 }, time.Second, time.Millisecond)
		})
	}
}

func TestQueryTimeout(t *testing.T) {
	addr := unanswered(t)

	tests := []struct {
		name    string
		cfg     tcpprobe.Config
		fields  map[string]string
		timeout time.Duration
	}{
		{name: "config timeout", cfg: tcpprobe.Config{Timeout: 200 * time.Millisecond}, fields: map[string]string{"address": addr}, timeout: 200 * time.Millisecond},
		{name: "timeout field overrides config", cfg: tcpprobe.Config{Timeout: time.Minute}, fields: map[string]string{"address": addr, "timeout": "150ms"}, timeout: 150 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			res, err := tcpprobe.New(tt.cfg).Query(t.Context(), queries.Query{Fields: tt.fields})
			elapsed := time.Since(start)
			require.NoError(t, err, "the probe's own timeout is a measurement")
			require.Equal(t, 0.0, res.Values["up"])
			require.True(t, math.IsNaN(res.Values["latency_ms"]))
			require.Equal(t, []string{"connect " + addr + ": did not answer within " + tt.timeout.String()}, res.Warnings)
			require.GreaterOrEqual(t, elapsed, tt.timeout)
			require.Less(t, elapsed, 2*tt.timeout, "the probe must give up at its timeout")
		})
	}
}

func TestQueryContext(t *testing.T) {
	addr := unanswered(t)
	src := tcpprobe.New(tcpprobe.Config{Timeout: 10 * time.Second})

	tests := []struct {
		name      string
		ctx       func(t *testing.T) context.Context
		wantErr   error
		wantClass string
		wantMsg   string
	}{
		{
			name: "canceled before",
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				return ctx
			},
			wantErr: context.Canceled, wantClass: "canceled", wantMsg: "tcp probe of " + addr + " canceled: context canceled",
		},
		{
			name: "canceled while connecting, with a cause",
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithCancelCause(t.Context())
				time.AfterFunc(100*time.Millisecond, func() { cancel(errors.New("run aborted")) })
				return ctx
			},
			wantErr: context.Canceled, wantClass: "canceled", wantMsg: "canceled: run aborted",
		},
		{
			// The caller gave less time than the probe's timeout: the probe
			// measured nothing.
			name: "caller's deadline first",
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
				t.Cleanup(cancel)
				return ctx
			},
			wantErr: context.DeadlineExceeded, wantClass: "timeout", wantMsg: "the caller's deadline passed first",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := src.Query(tt.ctx(t), queries.Query{Fields: map[string]string{"address": addr}})
			require.ErrorIs(t, err, tt.wantErr)
			require.Equal(t, tt.wantClass, queries.Classify(err))
			require.Contains(t, err.Error(), tt.wantMsg)
			require.Less(t, time.Since(start), 2*time.Second, "ctx must end the probe promptly")
		})
	}
}

func TestQueryBadFields(t *testing.T) {
	tests := []struct {
		name    string
		fields  map[string]string
		wantMsg string
	}{
		{name: "unknown field", fields: map[string]string{"address": "a:1", "url": "x"}, wantMsg: `tcp probe: unknown field "url" (known: address, timeout)`},
		{name: "unknown fields", fields: map[string]string{"address": "a:1", "url": "x", "host": "y"}, wantMsg: `unknown fields "host", "url"`},
		{name: "no address", fields: map[string]string{"timeout": "1s"}, wantMsg: "tcp probe: address is required"},
		{name: "nil fields", fields: nil, wantMsg: "tcp probe: address is required"},
		{name: "no port", fields: map[string]string{"address": "db.internal"}, wantMsg: `address "db.internal": missing port in address; want host:port`},
		{name: "no host", fields: map[string]string{"address": ":5432"}, wantMsg: `address ":5432": no host`},
		{name: "named port", fields: map[string]string{"address": "db:postgres"}, wantMsg: `port "postgres" is not a number from 1 to 65535`},
		{name: "port 0", fields: map[string]string{"address": "db:0"}, wantMsg: `port "0"`},
		{name: "port too large", fields: map[string]string{"address": "db:65536"}, wantMsg: `port "65536"`},
		{name: "IPv6 without brackets", fields: map[string]string{"address": "::1:80"}, wantMsg: `address "::1:80": too many colons in address`},
		{name: "bad timeout", fields: map[string]string{"address": "a:1", "timeout": "soon"}, wantMsg: `timeout "soon": want a positive duration`},
		{name: "zero timeout", fields: map[string]string{"address": "a:1", "timeout": "0"}, wantMsg: `timeout "0"`},
		{name: "user info", fields: map[string]string{"address": "canary:s3cret@db:5432"}, wantMsg: "tcp probe: address holds user info ('@'); want host:port"},
		{name: "URL with credentials", fields: map[string]string{"address": "postgres://canary:s3cret@db:5432/app"}, wantMsg: "tcp probe: address holds user info ('@'); want host:port"},
	}
	src := tcpprobe.New(tcpprobe.Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := src.Query(t.Context(), queries.Query{Fields: tt.fields})
			require.ErrorIs(t, err, queries.ErrBadQuery)
			require.Equal(t, "bad_query", queries.Classify(err))
			require.Contains(t, err.Error(), tt.wantMsg)
			require.NotContains(t, err.Error(), "s3cret")
		})
	}
}

func TestQueryAllowlist(t *testing.T) {
	open, accepted := listen(t)
	p := port(t, open)

	tests := []struct {
		name    string
		server  queries.Allowlist
		policy  *queries.Allowlist
		address string
		wantMsg string // empty: allowed and probed
	}{
		{name: "no lists", address: open},
		{name: "server list allows the IP", server: queries.Allowlist{Hosts: []string{"127.0.0.1"}}, address: open},
		{name: "server CIDR and policy IP allow", server: queries.Allowlist{Hosts: []string{"127.0.0.0/8"}}, policy: &queries.Allowlist{Hosts: []string{"127.0.0.1"}}, address: open},
		{name: "name in another case", server: queries.Allowlist{Hosts: []string{"localhost"}}, address: "LOCALHOST:" + p},
		{name: "IPv4-mapped IPv6 spelling", server: queries.Allowlist{Hosts: []string{"127.0.0.1"}}, policy: &queries.Allowlist{Hosts: []string{"127.0.0.0/8"}}, address: "[::ffff:127.0.0.1]:" + p},
		{
			name: "server list refuses", server: queries.Allowlist{Hosts: []string{"10.0.0.0/8"}}, address: open,
			wantMsg: `tcp probe: host "127.0.0.1" is not in the server's allowlist`,
		},
		{
			name: "policy list refuses", server: queries.Allowlist{Hosts: []string{"127.0.0.0/8"}}, policy: &queries.Allowlist{Hosts: []string{"db.prod.svc"}}, address: open,
			wantMsg: `tcp probe: host "127.0.0.1" is not in the policy's allowlist`,
		},
		{
			name: "a name is not its IP", server: queries.Allowlist{Hosts: []string{"127.0.0.1"}}, address: "localhost:" + p,
			wantMsg: `tcp probe: host "localhost" is not in the server's allowlist`,
		},
		{
			name: "trailing dot", server: queries.Allowlist{Hosts: []string{"localhost"}}, address: "localhost.:" + p,
			wantMsg: `tcp probe: host "localhost." is not in the server's allowlist`,
		},
		{
			name: "decimal IP", server: queries.Allowlist{Hosts: []string{"127.0.0.0/8"}}, address: "2130706433:" + p,
			wantMsg: `tcp probe: host "2130706433" is not in the server's allowlist`,
		},
		{
			name: "octal IP", server: queries.Allowlist{Hosts: []string{"127.0.0.0/8"}}, address: "0177.0.0.1:" + p,
			wantMsg: `tcp probe: host "0177.0.0.1" is not in the server's allowlist`,
		},
		{
			name: "IPv6 loopback", server: queries.Allowlist{Hosts: []string{"127.0.0.0/8"}}, address: "[::1]:" + p,
			wantMsg: `tcp probe: host "::1" is not in the server's allowlist`,
		},
		{
			name: "service in another namespace", policy: &queries.Allowlist{Namespaces: []string{"prod"}}, address: "db.staging.svc.cluster.local:5432",
			wantMsg: `tcp probe: host "db.staging.svc.cluster.local" is not in the policy's allowlist`,
		},
		{
			name: "service name under another domain", policy: &queries.Allowlist{Namespaces: []string{"prod"}}, address: "db.prod.svc.evil.com:5432",
			wantMsg: `tcp probe: host "db.prod.svc.evil.com" is not in the policy's allowlist`,
		},
		{
			name: "invalid policy list", policy: &queries.Allowlist{Hosts: []string{"*evil.com"}}, address: open,
			wantMsg: `tcp probe: the policy's allowlist is invalid, so no host is allowed: allowlist host "*evil.com": a wildcard is "*." followed by a name, as in *.example.com`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := accepted()
			res, err := tcpprobe.New(tcpprobe.Config{Allow: tt.server}).Query(t.Context(), queries.Query{
				Fields: map[string]string{"address": tt.address},
				Allow:  tt.policy,
			})
			if tt.wantMsg == "" {
				require.NoError(t, err)
				require.Equal(t, 1.0, res.Values["up"], "warnings: %q", res.Warnings)
				require.Eventually(t, func() bool { return accepted() == before+1 }, time.Second, time.Millisecond)
				return
			}
			require.ErrorIs(t, err, queries.ErrBadQuery)
			require.Equal(t, "bad_query", queries.Classify(err))
			require.EqualError(t, err, tt.wantMsg)
			require.Never(t, func() bool { return accepted() != before }, 100*time.Millisecond, 5*time.Millisecond,
				"a refused target is not connected to")
		})
	}
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	return p
}
