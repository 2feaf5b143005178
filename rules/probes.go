package rules

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ProbeTargets restricts the hosts the policy's http and tcp queries may
// reach: a probe may connect to a host that one of Hosts or Namespaces
// allows, and that the server's own list, from its configuration, allows
// as well. A policy can narrow what the server allows, never widen it, and
// its entries are not templates, so a caller's params cannot widen them
// either.
type ProbeTargets struct {
	// Hosts are lower-case exact host names (lmp.caiso.svc), wildcards
	// "*.suffix" (any name ending in ".suffix", not suffix itself), IP
	// addresses and CIDRs.
	Hosts []string
	// Namespaces are Kubernetes namespaces: namespace NS allows the
	// service names X.NS.svc and X.NS.svc.cluster.local.
	Namespaces []string
}

var (
	// hostLabelRE is one label of a host name, lower-case (RFC 1123).
	hostLabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	// namespaceRE is a Kubernetes namespace name: a DNS label.
	namespaceRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	// allDigitsRE is a label that makes a name look like an IPv4 address.
	allDigitsRE = regexp.MustCompile(`^[0-9]+$`)
)

// probes reads the probes section. An empty one is an error: it would read
// as "no probe may reach anything" to one reader and "no restriction" to
// another.
func (p *parser) probes(n *yaml.Node, s scope) *ProbeTargets {
	t := &ProbeTargets{}
	written := 0
	ok := p.fields(n, s, "probes", map[string]func(k, v *yaml.Node){
		"allowedHosts": func(_, v *yaml.Node) {
			t.Hosts = p.targets(v, s, "probes.allowedHosts", probeHostProblem, &written)
		},
		"allowedNamespaces": func(_, v *yaml.Node) {
			t.Namespaces = p.targets(v, s, "probes.allowedNamespaces", namespaceProblem, &written)
		},
	})
	if ok && written == 0 {
		p.errorf(n, s, "spec.probes allows no host and no namespace: list allowedHosts or allowedNamespaces, or remove the section to let probes reach what the server allows")
	}
	return t
}

// targets reads a list of probe targets, each checked by problem, and
// counts the entries written, valid or not.
func (p *parser) targets(n *yaml.Node, s scope, what string, problem func(string) string, written *int) []string {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, s, "%s must be a list", what)
		*written++ // not empty: wrong, and said so
		return nil
	}
	var out []string
	seen := map[string]*yaml.Node{}
	for _, it := range n.Content {
		*written++
		v, ok := p.str(it, s, what)
		if !ok {
			continue
		}
		if first, dup := seen[v]; dup {
			p.errorf(it, s, "%s: %q is listed twice (first at %d:%d)", what, v, first.Line, first.Column)
			continue
		}
		seen[v] = it
		if reason := problem(v); reason != "" {
			p.errorf(it, s, "%s: %q %s", what, v, reason)
			continue
		}
		out = append(out, v)
	}
	return out
}

// probeHostProblem says what is wrong with an allowedHosts entry, or "".
func probeHostProblem(h string) string {
	switch {
	case h == "":
		return "is empty"
	case h != strings.ToLower(h):
		return fmt.Sprintf("must be lower-case: %q", strings.ToLower(h))
	case strings.Contains(h, "://"):
		return "is a URL: give the host alone, without scheme, port or path"
	case strings.ContainsAny(h, " \t\n"):
		return "contains a space"
	}
	if addr, slash, ok := strings.Cut(h, "/"); ok {
		if _, err := netip.ParseAddr(addr); err != nil {
			return "has a path: give the host alone"
		}
		pre, err := netip.ParsePrefix(h)
		if err != nil {
			return fmt.Sprintf("has a bad prefix length /%s: at most /%d for this address", slash, netip.MustParseAddr(addr).BitLen())
		}
		if pre != pre.Masked() {
			return fmt.Sprintf("has address bits set past its prefix: write %s", pre.Masked())
		}
		return ""
	}
	if addr, err := netip.ParseAddr(h); err == nil {
		if addr.Zone() != "" {
			return "has an IPv6 zone: give the address alone"
		}
		return ""
	}
	if strings.Contains(h, ":") {
		if _, err := netip.ParseAddrPort(h); err == nil || strings.Count(h, ":") == 1 {
			return "has a port: give the host alone (an allowed host may be probed on any port)"
		}
		return "is not an IP address"
	}
	name, wildcard := strings.CutPrefix(h, "*.")
	switch {
	case h == "*" || h == "*.":
		return "is a wildcard without a suffix: write *.suffix, such as *.caiso.svc.cluster.local"
	case strings.Contains(name, "*"):
		return `has a wildcard other than a leading "*.": write *.suffix, such as *.caiso.svc.cluster.local`
	}
	if reason := hostNameProblem(name); reason != "" {
		if wildcard {
			return "has a bad suffix: it " + reason
		}
		return reason
	}
	return ""
}

// hostNameProblem says what is wrong with a host name, or "".
func hostNameProblem(name string) string {
	switch {
	case name == "":
		return "is empty"
	case strings.HasSuffix(name, "."):
		return "ends in a dot: drop it"
	case len(name) > 253:
		return "is longer than 253 characters"
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if !hostLabelRE.MatchString(l) {
			return fmt.Sprintf("is not a host name: label %q (letters, digits and '-', at most 63, not starting or ending with '-')", l)
		}
	}
	if allDigitsRE.MatchString(labels[len(labels)-1]) {
		return "is neither an IP address nor a host name"
	}
	return ""
}

// namespaceProblem says what is wrong with an allowedNamespaces entry, or "".
func namespaceProblem(ns string) string {
	switch {
	case ns != strings.ToLower(ns):
		return fmt.Sprintf("must be lower-case: %q", strings.ToLower(ns))
	case !namespaceRE.MatchString(ns):
		return "is not a Kubernetes namespace name (lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit)"
	}
	return ""
}
