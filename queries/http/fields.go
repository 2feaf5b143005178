package httpprobe

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/aurum/canary/queries"
)

// probe is a query's fields, checked.
type probe struct {
	url     *url.URL
	method  string
	header  http.Header
	host    string // header.Host, which net/http reads from Request.Host
	body    string
	expect  expect
	timeout time.Duration // 0: the source's
	retries int
	json    *jsonPath          // nil: no json field
	allow   *queries.Allowlist // the query's own; nil: none
}

// what names the request in messages: method and URL with the password, if
// any, masked, and a user without a password too: it is likely a token.
// Header values never appear in messages; they may be credentials.
func (p *probe) what() string { return p.method + " " + queries.RedactURLs(p.url.String()) }

// fieldNames lists the fields a query may have, for the unknown-field
// error.
const fieldNames = "url, method, header.<Name>, body, expect, timeout, retries, json"

// parseProbe checks the fields. An empty value of an optional field means
// its default, so that a template rendering to nothing turns a setting off;
// a header with an empty value is sent empty.
func parseProbe(fields map[string]string) (*probe, error) {
	p := &probe{method: http.MethodGet, header: http.Header{}}
	if msg := queries.UnknownFields(fields, fieldNames, func(name string) bool {
		switch name {
		case "url", "method", "body", "expect", "timeout", "retries", "json":
			return true
		}
		return strings.HasPrefix(name, "header.")
	}); msg != "" {
		return nil, badQuery("%s", msg)
	}

	raw := fields["url"]
	if raw == "" {
		return nil, badQuery("url is required")
	}
	u, err := parseURL(raw)
	if err != nil {
		return nil, err
	}
	p.url = u

	if m := fields["method"]; m != "" {
		switch m {
		case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut:
			p.method = m
		default:
			return nil, badQuery("method %q: must be GET, HEAD, POST or PUT", m)
		}
	}

	// Sorted, so that the first bad header reported is always the same.
	names := make([]string, 0, len(fields))
	for name := range fields {
		if strings.HasPrefix(name, "header.") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		key := strings.TrimPrefix(name, "header.")
		if !validHeaderName(key) {
			return nil, badQuery("field %q: %q is not a valid header name", name, key)
		}
		v := fields[name]
		if strings.ContainsAny(v, "\r\n\x00") {
			// The value is not quoted back: it may be a credential.
			return nil, badQuery("field %q: the header value holds a line break or NUL", name)
		}
		if http.CanonicalHeaderKey(key) == "Host" {
			p.host = v
			continue
		}
		p.header.Add(key, v)
	}

	if b := fields["body"]; b != "" {
		if p.method != http.MethodPost && p.method != http.MethodPut {
			return nil, badQuery("body needs method POST or PUT, not %s", p.method)
		}
		p.body = b
	}

	e := fields["expect"]
	if e == "" {
		e = DefaultExpect
	}
	if p.expect, err = parseExpect(e); err != nil {
		return nil, err
	}

	if t := fields["timeout"]; t != "" {
		// The same format as every other duration in a policy, which
		// the policy loader has already checked.
		md, err := model.ParseDuration(t)
		d := time.Duration(md)
		if err != nil || d <= 0 {
			return nil, badQuery("timeout %q: want a positive duration such as 2s or 500ms", t)
		}
		p.timeout = d
	}

	if r := fields["retries"]; r != "" {
		n, err := strconv.Atoi(r)
		if err != nil || n < 0 || n > MaxRetries {
			return nil, badQuery("retries %q: want an integer from 0 to %d", r, MaxRetries)
		}
		p.retries = n
	}

	if j := fields["json"]; j != "" {
		if p.method == http.MethodHead {
			return nil, badQuery("json needs a body; a HEAD answer has none")
		}
		if p.json, err = parseJSONPath(j); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// parseURL accepts an absolute http or https URL with a host. Its errors
// show the URL with the user info masked; url.Parse's own errors quote it
// whole.
func parseURL(raw string) (*url.URL, error) {
	u, err := queries.ParseURL(raw)
	if err != nil {
		return nil, badQuery("invalid url: %v", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, badQuery("invalid url %q: scheme must be http or https", queries.RedactURLs(u.String()))
	case u.Hostname() == "":
		// net/http would dial http://:8080/ on the local machine, which
		// is never what a policy means.
		return nil, badQuery("invalid url %q: no host", queries.RedactURLs(u.String()))
	}
	return u, nil
}

// validHeaderName reports whether s is an HTTP token (RFC 9110 5.6.2).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// expect is a set of status codes, as ranges.
type expect []statusRange

type statusRange struct{ lo, hi int }

// parseExpect reads "200,204" or "200-299": codes from 100 to 599 and
// ranges of them, comma-separated, as the policy format checks them.
func parseExpect(s string) (expect, error) {
	var e expect
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, ok := statusCode(lo)
		b := a
		if ok && isRange {
			b, ok = statusCode(hi)
			ok = ok && b >= a
		}
		if !ok {
			return nil, badQuery("expect %q: %q is not a status code or a range such as 200-299", s, part)
		}
		e = append(e, statusRange{a, b})
	}
	return e, nil
}

func statusCode(s string) (int, bool) {
	c, err := strconv.Atoi(strings.TrimSpace(s))
	return c, err == nil && c >= 100 && c <= 599
}

func (e expect) match(code int) bool {
	return slices.ContainsFunc(e, func(r statusRange) bool { return r.lo <= code && code <= r.hi })
}

// String is the set as expect would spell it, spaces removed.
func (e expect) String() string {
	parts := make([]string, len(e))
	for i, r := range e {
		parts[i] = strconv.Itoa(r.lo)
		if r.hi != r.lo {
			parts[i] += "-" + strconv.Itoa(r.hi)
		}
	}
	return strings.Join(parts, ",")
}

func badQuery(format string, args ...any) error {
	return &queries.Error{Kind: queries.ErrBadQuery, Msg: "http probe: " + fmt.Sprintf(format, args...)}
}
