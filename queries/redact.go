package queries

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// What RedactFields and RedactURLs put in place of what they hide.
const (
	// redactedHeader replaces the value of a header field.
	redactedHeader = "<redacted>"
	// redactedInfo replaces a URL's password, or its user info when it
	// has no password: a user alone is often a token
	// (https://TOKEN@host/).
	redactedInfo = "xxxxx"
)

// RedactFields returns a copy of a query's fields fit for display. Every
// header.* value (the name compared in any case) becomes "<redacted>", as
// headers carry tokens and cookies, and RedactURLs masks the user info of
// every URL in the other values, comma-separated lists of URLs included.
// It returns nil for nil.
func RedactFields(fields map[string]string) map[string]string {
	if fields == nil {
		return nil
	}
	out := make(map[string]string, len(fields))
	for k, v := range fields {
		if len(k) >= len("header.") && strings.EqualFold(k[:len("header.")], "header.") {
			out[k] = redactedHeader
			continue
		}
		out[k] = redactURLs(v, false)
	}
	return out
}

// RedactURLs masks the user info of every URL in s, a field value or a
// message: a URL's password becomes xxxxx, as url.URL.Redacted does, and a
// user without a password becomes xxxxx too, since a user alone is often a
// token. A URL is anything of the form scheme://; its user info is what
// precedes the last '@' of its authority, as for url.Parse. A URL that
// url.Parse rejects is masked up to its last '@', so that a password
// holding '/', '?' or '#' is masked whole. Text that holds no "://" is
// returned as it is.
func RedactURLs(s string) string { return redactURLs(s, true) }

// redactURLs is RedactURLs. In a message (text), a URL ends at a quote,
// as url.Error and %q put it; in a field value it runs to the next URL or
// the end, so that a password holding a quote is masked whole.
func redactURLs(s string, text bool) string {
	if !strings.Contains(s, "://") {
		return s
	}
	var b strings.Builder
	rest := s
	for {
		i := strings.Index(rest, "://")
		if i < 0 {
			b.WriteString(rest)
			return b.String()
		}
		b.WriteString(rest[:i+3])
		rest = rest[i+3:]
		end := len(rest)
		if j := strings.Index(rest, "://"); j >= 0 {
			// The next URL's scheme is left in: no user info ends
			// inside it.
			end = j
		}
		if text {
			if j := strings.IndexAny(rest[:end], "\"`"); j >= 0 {
				end = j
			}
		}
		auth := rest[:end]
		if _, err := url.Parse("http://" + auth); err == nil {
			// url.Parse's authority ends at the first '/', '?' or '#'.
			if j := strings.IndexAny(auth, "/?#"); j >= 0 {
				auth = auth[:j]
			}
		}
		at := strings.LastIndex(auth, "@")
		if at <= 0 {
			continue
		}
		if user, _, ok := strings.Cut(auth[:at], ":"); ok {
			b.WriteString(user + ":" + redactedInfo)
		} else {
			b.WriteString(redactedInfo)
		}
		rest = rest[at:]
	}
}

// ParseURL is url.Parse with an error fit to show. url.Parse's error
// quotes the whole input, password included; ParseURL's gives only the
// reason (`invalid port ":99x" after host`), with any part of it that also
// occurs before the input's last '@' masked, since in a URL that does not
// parse that part may be a piece of the password.
func ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err == nil {
		return u, nil
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	reason := err.Error()
	at := strings.LastIndex(raw, "@")
	if at < 0 {
		return nil, errors.New(reason)
	}
	secret := raw[:at]
	var b strings.Builder
	for {
		i := strings.IndexByte(reason, '"')
		if i < 0 {
			b.WriteString(reason)
			break
		}
		quoted, err := strconv.QuotedPrefix(reason[i:])
		if err != nil {
			// A stray quote: what follows cannot be told from the input.
			b.WriteString(reason[:i] + `"` + redactedInfo + `"`)
			break
		}
		b.WriteString(reason[:i])
		if frag, err := strconv.Unquote(quoted); err == nil && !strings.Contains(secret, frag) {
			b.WriteString(quoted)
		} else {
			b.WriteString(`"` + redactedInfo + `"`)
		}
		reason = reason[i+len(quoted):]
	}
	return nil, errors.New(b.String())
}
