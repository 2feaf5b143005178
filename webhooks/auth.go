package webhooks

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
)

// Route groups that can each require their own bearer tokens.
const (
	GroupAnalysis     = "analysis"
	GroupFlagger      = "flagger"
	GroupAlertmanager = "alertmanager"
	GroupAdmin        = "admin"
	// GroupUI guards what the web UI reads: its data and live stream.
	// It takes its own tokens (people who may look) and the admin
	// group's (people who may act may look too), so it is closed as soon
	// as the admin group is. Its pages hold no data and are served to
	// anyone; its buttons call the admin routes.
	GroupUI = "ui"
)

// Groups lists the route groups.
var Groups = []string{GroupAnalysis, GroupFlagger, GroupAlertmanager, GroupAdmin, GroupUI}

// Guarded lists the groups canary serve refuses to leave open unless told
// to: whoever reaches them can latch a rollback, lift one, or move
// traffic.
var Guarded = []string{GroupAlertmanager, GroupAdmin}

// principalKey is the gin context key of the name of the token that
// authenticated a request.
const principalKey = "canary.principal"

// Auth maps a route group to the tokens it accepts. A group with no tokens
// is open.
type Auth map[string][]token

// token is an accepted token, kept as its digest, and the name it
// authenticates as.
type token struct {
	name   string
	digest [sha256.Size]byte
}

// LoadAuth reads each group's token files. A file holds one token per line
// (blank lines and lines starting with '#' ignored), so tokens can be
// rotated by listing the old and the new one. A line may name its token,
// "NAME TOKEN"; a token without a name is known by its file and line
// (argo-token:2). The name is what manual overrides record as who made
// them; tokens never appear anywhere.
func LoadAuth(files map[string][]string) (Auth, error) {
	a := Auth{}
	for group, paths := range files {
		if !slices.Contains(Groups, group) {
			return nil, fmt.Errorf("auth: unknown route group %q (known: %s)", group, strings.Join(Groups, ", "))
		}
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("auth %s: %w", group, err)
			}
			n := 0
			for i, line := range strings.Split(string(data), "\n") {
				line = strings.TrimSpace(line)
				if line == "" || strings.HasPrefix(line, "#") {
					continue
				}
				var name, tok string
				switch f := strings.Fields(line); len(f) {
				case 1:
					name, tok = fmt.Sprintf("%s:%d", filepath.Base(p), i+1), f[0]
				case 2:
					name, tok = f[0], f[1]
				default:
					return nil, fmt.Errorf("auth %s: %s:%d: want TOKEN or NAME TOKEN", group, p, i+1)
				}
				a[group] = append(a[group], token{name: group + "/" + name, digest: sha256.Sum256([]byte(tok))})
				n++
			}
			if n == 0 {
				return nil, fmt.Errorf("auth %s: token file %s is empty", group, p)
			}
		}
	}
	return a, nil
}

// Open returns the groups that accept calls without a token.
func (a Auth) Open() []string {
	var open []string
	for _, g := range Groups {
		if len(a.accepted(g)) == 0 {
			open = append(open, g)
		}
	}
	return open
}

// accepted are the tokens a group accepts: its own, and for the ui group
// the admin group's too.
func (a Auth) accepted(group string) []token {
	if group == GroupUI {
		return append(slices.Clip(a[GroupUI]), a[GroupAdmin]...)
	}
	return a[group]
}

// check returns the name of the group's token that matches, and whether
// one does. An open group lets every call through, as "anonymous". Tokens
// are compared as SHA-256 digests in constant time, so neither their
// content nor their length leaks through timing.
func (a Auth) check(group, tok string) (string, bool) {
	want := a.accepted(group)
	if len(want) == 0 {
		return "anonymous", true
	}
	if tok == "" {
		return "", false
	}
	got := sha256.Sum256([]byte(tok))
	name := ""
	for _, w := range want {
		if subtle.ConstantTimeCompare(got[:], w.digest[:]) == 1 && name == "" {
			name = w.name
		}
	}
	return name, name != ""
}

// require returns middleware enforcing the group's tokens. queryToken also
// accepts ?token=, for Flagger, whose webhooks cannot send headers.
func (s *Server) require(group string, queryToken bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		tok := ""
		if h := c.GetHeader("Authorization"); h != "" {
			scheme, value, _ := strings.Cut(h, " ")
			if strings.EqualFold(scheme, "Bearer") {
				tok = strings.TrimSpace(value)
			}
		}
		if tok == "" && queryToken {
			tok = c.Query("token")
		}
		name, ok := s.auth.check(group, tok)
		if !ok {
			c.Header("WWW-Authenticate", `Bearer realm="canary"`)
			s.abort(c, http.StatusUnauthorized, "missing or invalid bearer token")
			return
		}
		c.Set(principalKey, name)
	}
}

// principal is who authenticated the request.
func principal(c *gin.Context) string {
	return c.GetString(principalKey)
}
