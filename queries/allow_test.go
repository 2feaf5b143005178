package queries

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAllowlistAllows(t *testing.T) {
	list := Allowlist{
		Hosts: []string{
			"api.example.com", "*.internal.example", "localhost",
			"10.0.0.0/8", "192.168.1.7", "fd00::/8", "2001:db8::1",
		},
		Namespaces: []string{"prod", "canary-ns"},
	}
	tests := []struct {
		name string
		list Allowlist
		host string
		want bool
	}{
		// The zero value allows everything.
		{name: "zero value, a name", host: "evil.com", want: true},
		{name: "zero value, an IP", host: "169.254.169.254", want: true},
		{name: "zero value, empty lists", list: Allowlist{Hosts: []string{}, Namespaces: []string{}}, host: "evil.com", want: true},

		// Exact names.
		{name: "exact name", list: list, host: "api.example.com", want: true},
		{name: "single-label name", list: list, host: "localhost", want: true},
		{name: "upper case", list: list, host: "API.Example.COM", want: true},
		{name: "trailing dot", list: list, host: "api.example.com.", want: false},
		{name: "with a port", list: list, host: "api.example.com:443", want: false},
		{name: "user info trick", list: list, host: "api.example.com@evil.com", want: false},
		{name: "another name", list: list, host: "evil.com", want: false},
		{name: "allowed name as a prefix", list: list, host: "api.example.com.evil.com", want: false},
		{name: "allowed name as a suffix, no dot", list: list, host: "xapi.example.com", want: false},
		{name: "parent of an allowed name", list: list, host: "example.com", want: false},
		{name: "subdomain of an exact name", list: list, host: "a.api.example.com", want: false},
		{name: "empty host", list: list, host: "", want: false},
		{name: "white space", list: list, host: "api.example.com ", want: false},
		{name: "percent", list: list, host: "api%2eexample.com", want: false},
		{name: "empty label", list: list, host: "api..example.com", want: false},
		{name: "Kelvin sign for k", list: Allowlist{Hosts: []string{"kube.example"}}, host: "\u212Aube.example", want: false},
		{name: "other non-ASCII", list: list, host: "аpi.example.com", want: false}, // Cyrillic а

		// Wildcards.
		{name: "wildcard, one label", list: list, host: "a.internal.example", want: true},
		{name: "wildcard, two labels", list: list, host: "a.b.internal.example", want: true},
		{name: "wildcard, upper case", list: list, host: "A.INTERNAL.example", want: true},
		{name: "wildcard does not take its base", list: list, host: "internal.example", want: false},
		{name: "wildcard, no dot before the suffix", list: list, host: "evilinternal.example", want: false},
		{name: "wildcard suffix in the middle", list: list, host: "a.internal.example.evil.com", want: false},
		{name: "wildcard, trailing dot", list: list, host: "a.internal.example.", want: false},
		{name: "wildcard, empty first label", list: list, host: ".internal.example", want: false},

		// IP addresses and CIDRs.
		{name: "in a CIDR", list: list, host: "10.1.2.3", want: true},
		{name: "outside the CIDR", list: list, host: "11.0.0.1", want: false},
		{name: "exact IP", list: list, host: "192.168.1.7", want: true},
		{name: "next to the exact IP", list: list, host: "192.168.1.8", want: false},
		{name: "IPv4-mapped IPv6 in a CIDR", list: list, host: "::ffff:10.1.2.3", want: true},
		{name: "IPv4-mapped IPv6 in brackets", list: list, host: "[::ffff:192.168.1.7]", want: true},
		{name: "IPv6 in a CIDR", list: list, host: "fd00::1", want: true},
		{name: "IPv6 in brackets", list: list, host: "[fd00::1]", want: true},
		{name: "IPv6 in brackets with a port", list: list, host: "[fd00::1]:80", want: false},
		{name: "IPv6, unclosed bracket", list: list, host: "[fd00::1", want: false},
		{name: "IPv4 in brackets", list: list, host: "[10.0.0.1]", want: false},
		{name: "IPv6 with a zone", list: list, host: "fd00::1%eth0", want: false},
		{name: "exact IPv6", list: list, host: "2001:db8::1", want: true},
		{name: "exact IPv6, long spelling", list: list, host: "2001:0DB8:0:0:0:0:0:1", want: true},
		{name: "next to the exact IPv6", list: list, host: "2001:db8::2", want: false},
		{name: "an IP does not match a name", list: list, host: "127.0.0.1", want: false},
		{name: "a name does not match a CIDR", list: Allowlist{Hosts: []string{"0.0.0.0/0"}}, host: "ten.example", want: false},
		{name: "the whole IPv4 space", list: Allowlist{Hosts: []string{"0.0.0.0/0"}}, host: "169.254.169.254", want: true},

		// Other spellings of 10.0.0.1, which net/netip refuses and some
		// resolvers take.
		{name: "decimal", list: list, host: "167772161", want: false},
		{name: "hexadecimal", list: list, host: "0xa000001", want: false},
		{name: "octal dotted", list: list, host: "012.0.0.1", want: false},
		{name: "leading zeros", list: list, host: "010.000.000.001", want: false},
		{name: "hex dotted", list: list, host: "0x0a.0.0.1", want: false},
		{name: "short form", list: list, host: "10.1", want: false},
		{name: "IPv4 with a trailing dot", list: list, host: "10.0.0.1.", want: false},
		{name: "a wildcard does not take a number", list: Allowlist{Hosts: []string{"*.example"}}, host: "1.example.0x1", want: false},

		// Kubernetes Services.
		{name: "service", list: list, host: "web.prod.svc", want: true},
		{name: "service, cluster.local", list: list, host: "web.prod.svc.cluster.local", want: true},
		{name: "service, upper case", list: list, host: "WEB.PROD.SVC", want: true},
		{name: "service, namespace with a dash", list: list, host: "web.canary-ns.svc", want: true},
		{name: "service, another namespace", list: list, host: "web.staging.svc", want: false},
		{name: "service under another domain", list: list, host: "web.prod.svc.evil.com", want: false},
		{name: "service under cluster.local of another domain", list: list, host: "web.prod.svc.cluster.local.evil.com", want: false},
		{name: "service, another cluster domain", list: list, host: "web.prod.svc.other.local", want: false},
		{name: "service, cluster without local", list: list, host: "web.prod.svc.cluster", want: false},
		{name: "service, trailing dot", list: list, host: "web.prod.svc.", want: false},
		{name: "service, two labels before the namespace", list: list, host: "a.web.prod.svc", want: false},
		{name: "service, short form", list: list, host: "web.prod", want: false},
		{name: "namespace alone", list: list, host: "prod.svc", want: false},
		{name: "service, namespace in another place", list: list, host: "prod.web.svc", want: false},
		{name: "service, no namespaces listed", list: Allowlist{Hosts: []string{"x.example"}}, host: "web.prod.svc", want: false},
		{name: "service, upper-case namespace entry is skipped", list: Allowlist{Namespaces: []string{"Prod"}}, host: "web.prod.svc", want: false},

		// Entries that do not validate match nothing, and still make the
		// list restrictive.
		{name: "bad entries only", list: Allowlist{Hosts: []string{"Evil.com", "10.0.0.1/8", "*evil.com"}}, host: "evil.com", want: false},
		{name: "CIDR with host bits", list: Allowlist{Hosts: []string{"10.0.0.1/8"}}, host: "10.0.0.5", want: false},
		{name: "bracketed entry", list: Allowlist{Hosts: []string{"[::1]"}}, host: "::1", want: false},
		{name: "entry with a trailing dot", list: Allowlist{Hosts: []string{"evil.com."}}, host: "evil.com", want: false},
		{name: "numeric entry", list: Allowlist{Hosts: []string{"127.1"}}, host: "127.1", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, tt.list.Allows(tt.host))
		})
	}
}

func TestAllowlistValidate(t *testing.T) {
	tests := []struct {
		name  string
		list  Allowlist
		empty bool
		want  []string // the lines of the error; none for valid
	}{
		{name: "zero value", empty: true},
		{name: "valid", list: Allowlist{
			Hosts: []string{"api.example.com", "*.example.org", "localhost", "my_host.lan", "10.0.0.0/8",
				"10.0.0.7", "10.0.0.7/32", "fd00::/8", "::1", "0.0.0.0/0", "*.svc", "xn--bcher-kva.example"},
			Namespaces: []string{"prod", "canary-1", "a"},
		}},
		{name: "empty host", list: Allowlist{Hosts: []string{""}}, want: []string{`allowlist host "": empty entry`}},
		{name: "empty namespace", list: Allowlist{Namespaces: []string{""}}, want: []string{`allowlist namespace "": empty entry`}},
		{name: "upper case", list: Allowlist{Hosts: []string{"API.example.com"}}, want: []string{`allowlist host "API.example.com": must be lower case`}},
		{name: "upper-case wildcard", list: Allowlist{Hosts: []string{"*.Example.com"}}, want: []string{`allowlist host "*.Example.com": must be lower case`}},
		{name: "trailing dot", list: Allowlist{Hosts: []string{"example.com."}}, want: []string{`allowlist host "example.com.": remove the trailing dot`}},
		{name: "port", list: Allowlist{Hosts: []string{"example.com:443"}}, want: []string{`allowlist host "example.com:443": neither an IP address nor a host name: list the host without a port`}},
		{name: "URL", list: Allowlist{Hosts: []string{"https://example.com"}}, want: []string{`allowlist host "https://example.com": a URL: list the host alone, without scheme, port or path`}},
		{name: "user info", list: Allowlist{Hosts: []string{"u@example.com"}}, want: []string{`allowlist host "u@example.com": holds user info: list the host alone`}},
		{name: "white space", list: Allowlist{Hosts: []string{" example.com"}}, want: []string{`allowlist host " example.com": holds white space`}},
		{name: "wildcard in the middle", list: Allowlist{Hosts: []string{"a.*.com"}}, want: []string{`allowlist host "a.*.com": a wildcard is "*." followed by a name, as in *.example.com`}},
		{name: "wildcard without a dot", list: Allowlist{Hosts: []string{"*example.com"}}, want: []string{`allowlist host "*example.com": a wildcard is "*." followed by a name, as in *.example.com`}},
		{name: "two wildcards", list: Allowlist{Hosts: []string{"*.*.com"}}, want: []string{`allowlist host "*.*.com": a wildcard is "*." followed by a name, as in *.example.com`}},
		{name: "wildcard alone", list: Allowlist{Hosts: []string{"*"}}, want: []string{`allowlist host "*": a wildcard is "*." followed by a name, as in *.example.com`}},
		{name: "wildcard without a name", list: Allowlist{Hosts: []string{"*."}}, want: []string{`allowlist host "*.": empty name`}},
		{name: "bad CIDR", list: Allowlist{Hosts: []string{"10.0.0.0/33"}}, want: []string{`allowlist host "10.0.0.0/33": not a CIDR such as 10.0.0.0/8 or fd00::/8`}},
		{name: "CIDR of a name", list: Allowlist{Hosts: []string{"example.com/8"}}, want: []string{`allowlist host "example.com/8": not a CIDR such as 10.0.0.0/8 or fd00::/8`}},
		{name: "CIDR with host bits", list: Allowlist{Hosts: []string{"10.1.2.3/8"}}, want: []string{`allowlist host "10.1.2.3/8": host bits are set: did you mean 10.0.0.0/8?`}},
		{name: "IPv4-mapped CIDR", list: Allowlist{Hosts: []string{"::ffff:10.0.0.0/104"}}, want: []string{`allowlist host "::ffff:10.0.0.0/104": an IPv4-mapped IPv6 CIDR: write the IPv4 CIDR`}},
		{name: "IPv4-mapped address", list: Allowlist{Hosts: []string{"::ffff:10.0.0.1"}}, want: []string{`allowlist host "::ffff:10.0.0.1": an IPv4-mapped IPv6 address: write 10.0.0.1`}},
		{name: "bracketed IPv6", list: Allowlist{Hosts: []string{"[fd00::1]"}}, want: []string{`allowlist host "[fd00::1]": write IPv6 addresses without brackets`}},
		{name: "zone", list: Allowlist{Hosts: []string{"fe80::1%eth0"}}, want: []string{`allowlist host "fe80::1%eth0": an IP address with a zone cannot be allowed`}},
		{name: "short IPv4", list: Allowlist{Hosts: []string{"127.1"}}, want: []string{`allowlist host "127.1": ends in a number but is not an IP address: write IPv4 addresses as four decimal numbers`}},
		{name: "decimal IPv4", list: Allowlist{Hosts: []string{"2130706433"}}, want: []string{`allowlist host "2130706433": ends in a number but is not an IP address: write IPv4 addresses as four decimal numbers`}},
		{name: "hex IPv4", list: Allowlist{Hosts: []string{"0x7f.0.0.1"}}, want: []string{`allowlist host "0x7f.0.0.1": ends in a number but is not an IP address: write IPv4 addresses as four decimal numbers`}},
		{name: "leading zeros", list: Allowlist{Hosts: []string{"010.0.0.1"}}, want: []string{`allowlist host "010.0.0.1": ends in a number but is not an IP address: write IPv4 addresses as four decimal numbers`}},
		{name: "bad character", list: Allowlist{Hosts: []string{"ex!ample.com"}}, want: []string{`allowlist host "ex!ample.com": holds '!': a host name has letters, digits, '-', '_' and dots only`}},
		{name: "non-ASCII", list: Allowlist{Hosts: []string{"bücher.example"}}, want: []string{`allowlist host "bücher.example": holds 'ü': a host name has letters, digits, '-', '_' and dots only`}},
		{name: "empty label", list: Allowlist{Hosts: []string{"a..b"}}, want: []string{`allowlist host "a..b": has an empty label`}},
		{name: "leading dot", list: Allowlist{Hosts: []string{".example.com"}}, want: []string{`allowlist host ".example.com": has an empty label`}},
		{name: "label with a leading dash", list: Allowlist{Hosts: []string{"-a.example"}}, want: []string{`allowlist host "-a.example": has a label that starts or ends with '-'`}},
		{name: "label too long", list: Allowlist{Hosts: []string{strings.Repeat("a", 64) + ".example"}}, want: []string{`allowlist host "` + strings.Repeat("a", 64) + `.example": has a label longer than 63 characters`}},
		{name: "name too long", list: Allowlist{Hosts: []string{strings.Repeat("a.", 127) + "ab"}}, want: []string{`allowlist host "` + strings.Repeat("a.", 127) + `ab": longer than 253 characters`}},
		{name: "line break stays on its line", list: Allowlist{Hosts: []string{"a\nb"}}, want: []string{`allowlist host "a\nb": holds white space`}},
		{name: "upper-case namespace", list: Allowlist{Namespaces: []string{"Prod"}}, want: []string{`allowlist namespace "Prod": must be lower case`}},
		{name: "namespace with a dot", list: Allowlist{Namespaces: []string{"prod.svc"}}, want: []string{`allowlist namespace "prod.svc": not a namespace name: lower-case letters, digits and '-', starting and ending with a letter or digit`}},
		{name: "namespace with an underscore", list: Allowlist{Namespaces: []string{"my_ns"}}, want: []string{`allowlist namespace "my_ns": not a namespace name: lower-case letters, digits and '-', starting and ending with a letter or digit`}},
		{name: "namespace ending in a dash", list: Allowlist{Namespaces: []string{"prod-"}}, want: []string{`allowlist namespace "prod-": not a namespace name: lower-case letters, digits and '-', starting and ending with a letter or digit`}},
		{name: "namespace too long", list: Allowlist{Namespaces: []string{strings.Repeat("n", 64)}}, want: []string{`allowlist namespace "` + strings.Repeat("n", 64) + `": longer than 63 characters`}},
		{name: "every bad entry, in order", list: Allowlist{Hosts: []string{"ok.example", "", "Bad.example"}, Namespaces: []string{"ok", "No"}}, want: []string{
			`allowlist host "": empty entry`,
			`allowlist host "Bad.example": must be lower case`,
			`allowlist namespace "No": must be lower case`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.empty, tt.list.Empty())
			err := tt.list.Validate()
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Equal(t, tt.want, strings.Split(err.Error(), "\n"))
		})
	}
}

func TestAllowHost(t *testing.T) {
	server := Allowlist{Hosts: []string{"10.0.0.0/8", "*.example.com"}}
	tests := []struct {
		name    string
		host    string
		server  Allowlist
		policy  *Allowlist
		wantMsg string // empty: allowed
	}{
		{name: "no lists", host: "evil.com"},
		{name: "server list allows", host: "10.0.0.1", server: server},
		{name: "server list refuses", host: "evil.com", server: server, wantMsg: `http probe: host "evil.com" is not in the server's allowlist`},
		{name: "empty policy list", host: "10.0.0.1", server: server, policy: &Allowlist{}},
		{name: "both allow", host: "a.example.com", server: server, policy: &Allowlist{Hosts: []string{"a.example.com"}}},
		{name: "policy list refuses", host: "b.example.com", server: server, policy: &Allowlist{Hosts: []string{"a.example.com"}},
			wantMsg: `http probe: host "b.example.com" is not in the policy's allowlist`},
		{name: "policy list alone", host: "b.example.com", policy: &Allowlist{Namespaces: []string{"prod"}},
			wantMsg: `http probe: host "b.example.com" is not in the policy's allowlist`},
		{name: "policy list cannot widen the server's", host: "evil.com", server: server, policy: &Allowlist{Hosts: []string{"evil.com"}},
			wantMsg: `http probe: host "evil.com" is not in the server's allowlist`},
		{name: "invalid server list", host: "evil.com", server: Allowlist{Hosts: []string{"Evil.com", "10.0.0.1/8"}},
			wantMsg: `http probe: the server's allowlist is invalid, so no host is allowed: allowlist host "Evil.com": must be lower case; allowlist host "10.0.0.1/8": host bits are set: did you mean 10.0.0.0/8?`},
		{name: "invalid policy list", host: "10.0.0.1", server: server, policy: &Allowlist{Namespaces: []string{"Prod"}},
			wantMsg: `http probe: the policy's allowlist is invalid, so no host is allowed: allowlist namespace "Prod": must be lower case`},
		{name: "host is quoted", host: "evil.com\nX: y", server: server, wantMsg: `http probe: host "evil.com\nX: y" is not in the server's allowlist`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := AllowHost("http probe", tt.host, tt.server, tt.policy)
			if tt.wantMsg == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tt.wantMsg)
			require.ErrorIs(t, err, ErrBadQuery)
			require.IsType(t, &Error{}, err)
			require.Equal(t, "bad_query", Classify(err))
		})
	}
}
