package queries

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode"
)

// Allowlist restricts the hosts a probe may reach. A host is allowed when it
// matches an entry of Hosts or names a Kubernetes Service in one of
// Namespaces. The zero value lists nothing and allows every host; a list
// with any entry, even one that is not valid, allows only what its valid
// entries match.
//
// Hosts are matched as the target spells them and are never resolved: an
// allowed name may resolve to any address, and a CIDR allows IP addresses
// written as such, not names that resolve into it. So that spelling cannot
// get a target past the list, matching is strict. Names are compared in
// lower case, ASCII only; a name with a trailing dot, a port, user info or
// any character other than letters, digits, '-', '_' and dots matches
// nothing. A host that parses as an IP address (net/netip: dotted decimal
// IPv4, IPv6 with or without brackets) matches IP and CIDR entries only,
// and an IPv4-mapped IPv6 address counts as its IPv4 address; one with a
// zone matches nothing. A host that does not parse as an IP address but
// ends in a number, such as 127.1, 0x7f000001 or 2130706433 (spellings some
// resolvers take for 127.0.0.1), matches nothing either.
type Allowlist struct {
	// Hosts are exact host names (api.example.com), wildcards
	// (*.example.com: any name ending in ".example.com", but not
	// example.com itself), IP addresses (10.0.0.7, fd00::7) and CIDRs
	// (10.0.0.0/8), all in lower case.
	Hosts []string `yaml:"hosts"`
	// Namespaces are Kubernetes namespaces. A Service name X.NS.svc or
	// X.NS.svc.cluster.local, where X is one DNS label, is allowed when
	// NS is listed; no other form is (neither the short X.NS nor another
	// cluster domain: list those in Hosts).
	Namespaces []string `yaml:"namespaces"`
}

// Empty reports whether a lists nothing, and so allows every host.
func (a Allowlist) Empty() bool { return len(a.Hosts) == 0 && len(a.Namespaces) == 0 }

// Validate checks every entry and returns one error per bad one, each on
// a line of its own (errors.Join), or nil. Allows skips bad entries, so a
// list that does not validate allows less than it says, never more.
func (a Allowlist) Validate() error {
	var errs []error
	for _, h := range a.Hosts {
		if _, err := parseHostEntry(h); err != nil {
			errs = append(errs, fmt.Errorf("allowlist host %q: %w", h, err))
		}
	}
	for _, ns := range a.Namespaces {
		if msg := checkNamespace(ns); msg != "" {
			errs = append(errs, fmt.Errorf("allowlist namespace %q: %s", ns, msg))
		}
	}
	return errors.Join(errs...)
}

// Allows reports whether a probe may reach host, a host name or IP address
// without a port, as url.URL.Hostname returns it (IPv6 in brackets is
// taken too). The zero Allowlist allows every host.
func (a Allowlist) Allows(host string) bool {
	if a.Empty() {
		return true
	}
	if inner, ok := strings.CutPrefix(host, "["); ok {
		inner, ok = strings.CutSuffix(inner, "]")
		addr, err := netip.ParseAddr(inner)
		return ok && err == nil && addr.Is6() && a.allowsAddr(addr)
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		return a.allowsAddr(addr)
	}
	name := asciiLower(host)
	if checkName(name) != "" {
		return false
	}
	for _, h := range a.Hosts {
		e, err := parseHostEntry(h)
		switch {
		case err != nil:
		case e.name != "" && e.name == name:
			return true
		case e.suffix != "" && strings.HasSuffix(name, e.suffix):
			// checkName leaves no empty label, so the suffix, which starts
			// with a dot, ends at a label boundary.
			return true
		}
	}
	if ns, ok := serviceNamespace(name); ok {
		for _, n := range a.Namespaces {
			if n == ns && checkNamespace(n) == "" {
				return true
			}
		}
	}
	return false
}

// allowsAddr matches an IP address against the IP and CIDR entries.
func (a Allowlist) allowsAddr(addr netip.Addr) bool {
	if addr.Zone() != "" {
		// fe80::1%eth0: which interface is a matter of the host the
		// probe runs on, not of the policy.
		return false
	}
	addr = addr.Unmap()
	for _, h := range a.Hosts {
		e, err := parseHostEntry(h)
		switch {
		case err != nil:
		case e.addr.IsValid() && e.addr == addr:
			return true
		case e.prefix.IsValid() && e.prefix.Contains(addr):
			return true
		}
	}
	return false
}

// AllowHost checks that a probe may reach host: server, the source's own
// list, must allow it unless it is empty, and so must policy, the query's
// list, when it is set and not empty. A list that does not validate
// refuses every host, so that a typo cannot open it. The error is a *Error
// of kind ErrBadQuery, one line that starts with subject ("http probe")
// and names the host and the list that refused it.
func AllowHost(subject, host string, server Allowlist, policy *Allowlist) error {
	check := func(list Allowlist, whose string) error {
		if list.Empty() {
			return nil
		}
		if err := list.Validate(); err != nil {
			return &Error{Kind: ErrBadQuery, Msg: fmt.Sprintf("%s: the %s allowlist is invalid, so no host is allowed: %s",
				subject, whose, strings.ReplaceAll(err.Error(), "\n", "; "))}
		}
		if !list.Allows(host) {
			return &Error{Kind: ErrBadQuery, Msg: fmt.Sprintf("%s: host %q is not in the %s allowlist", subject, host, whose)}
		}
		return nil
	}
	if err := check(server, "server's"); err != nil {
		return err
	}
	if policy != nil {
		return check(*policy, "policy's")
	}
	return nil
}

// hostEntry is an entry of Allowlist.Hosts, parsed. Exactly one field is
// set.
type hostEntry struct {
	name   string       // an exact name
	suffix string       // ".example.com" of the wildcard *.example.com
	addr   netip.Addr   // an IP address, never IPv4-mapped
	prefix netip.Prefix // a CIDR, masked
}

// parseHostEntry parses an entry of Allowlist.Hosts; its errors say what
// is wrong, without repeating the entry.
func parseHostEntry(s string) (hostEntry, error) {
	switch {
	case s == "":
		return hostEntry{}, errors.New("empty entry")
	case strings.ContainsFunc(s, unicode.IsSpace):
		return hostEntry{}, errors.New("holds white space")
	case strings.Contains(s, "://"):
		return hostEntry{}, errors.New("a URL: list the host alone, without scheme, port or path")
	case strings.HasPrefix(s, "["):
		return hostEntry{}, errors.New("write IPv6 addresses without brackets")
	case strings.Contains(s, "/"):
		p, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			return hostEntry{}, errors.New("not a CIDR such as 10.0.0.0/8 or fd00::/8")
		case p.Addr().Is4In6():
			return hostEntry{}, errors.New("an IPv4-mapped IPv6 CIDR: write the IPv4 CIDR")
		case p != p.Masked():
			return hostEntry{}, fmt.Errorf("host bits are set: did you mean %s?", p.Masked())
		}
		return hostEntry{prefix: p}, nil
	}
	if addr, err := netip.ParseAddr(s); err == nil {
		switch {
		case addr.Zone() != "":
			return hostEntry{}, errors.New("an IP address with a zone cannot be allowed")
		case addr.Is4In6():
			return hostEntry{}, fmt.Errorf("an IPv4-mapped IPv6 address: write %s", addr.Unmap())
		}
		return hostEntry{addr: addr}, nil
	}
	name, wildcard := strings.CutPrefix(s, "*.")
	switch {
	case strings.Contains(name, "*"):
		return hostEntry{}, errors.New(`a wildcard is "*." followed by a name, as in *.example.com`)
	case strings.Contains(name, "@"):
		return hostEntry{}, errors.New("holds user info: list the host alone")
	case strings.Contains(name, ":"):
		return hostEntry{}, errors.New("neither an IP address nor a host name: list the host without a port")
	case strings.HasSuffix(name, "."):
		return hostEntry{}, errors.New("remove the trailing dot")
	case strings.ContainsFunc(name, func(r rune) bool { return 'A' <= r && r <= 'Z' }):
		return hostEntry{}, errors.New("must be lower case")
	}
	if msg := checkName(name); msg != "" {
		return hostEntry{}, errors.New(msg)
	}
	if wildcard {
		return hostEntry{suffix: "." + name}, nil
	}
	return hostEntry{name: name}, nil
}

// checkName says what keeps name from being a lower-case host name that
// is not an IP address in disguise, or "" when nothing does.
func checkName(name string) string {
	if name == "" {
		return "empty name"
	}
	if len(name) > 253 {
		return "longer than 253 characters"
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		switch {
		case l == "":
			return "has an empty label"
		case len(l) > 63:
			return "has a label longer than 63 characters"
		case l[0] == '-' || l[len(l)-1] == '-':
			return "has a label that starts or ends with '-'"
		}
		for _, r := range l {
			if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_') {
				return fmt.Sprintf("holds %q: a host name has letters, digits, '-', '_' and dots only", r)
			}
		}
	}
	if numeric(labels[len(labels)-1]) {
		// What the WHATWG URL standard takes for an IPv4 address in
		// another spelling, as resolvers built on inet_aton do.
		return "ends in a number but is not an IP address: write IPv4 addresses as four decimal numbers"
	}
	return ""
}

// numeric reports whether a label is a number, decimal or hexadecimal.
func numeric(l string) bool {
	if hex, ok := strings.CutPrefix(l, "0x"); ok {
		return strings.Trim(hex, "0123456789abcdef") == ""
	}
	return strings.Trim(l, "0123456789") == ""
}

// checkNamespace says what keeps ns from being a Kubernetes namespace name
// (an RFC 1123 label), or "" when nothing does.
func checkNamespace(ns string) string {
	switch {
	case ns == "":
		return "empty entry"
	case len(ns) > 63:
		return "longer than 63 characters"
	case strings.ContainsFunc(ns, func(r rune) bool { return 'A' <= r && r <= 'Z' }):
		return "must be lower case"
	case strings.ContainsFunc(ns, func(r rune) bool { return !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-') }),
		ns[0] == '-', ns[len(ns)-1] == '-':
		return "not a namespace name: lower-case letters, digits and '-', starting and ending with a letter or digit"
	}
	return ""
}

// serviceNamespace returns NS of a Service name X.NS.svc or
// X.NS.svc.cluster.local.
func serviceNamespace(name string) (string, bool) {
	labels := strings.Split(name, ".")
	switch {
	case len(labels) == 3 && labels[2] == "svc":
	case len(labels) == 5 && labels[2] == "svc" && labels[3] == "cluster" && labels[4] == "local":
	default:
		return "", false
	}
	return labels[1], true
}

// asciiLower lowers ASCII letters only: strings.ToLower would also turn
// the Kelvin sign into a k, and let a name that is not ASCII pass for one
// that is.
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}
