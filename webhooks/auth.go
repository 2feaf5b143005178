package webhooks

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/gin-gonic/gin"
)

// Route groups that can each require their own bearer tokens.
const (
	GroupAnalysis     = "analysis"
	GroupFlagger      = "flagger"
	GroupAlertmanager = "alertmanager"
	GroupAdmin        = "admin"
)

// Groups lists the route groups.
var Groups = []string{GroupAnalysis, GroupFlagger, GroupAlertmanager, GroupAdmin}

// Auth maps a route group to the tokens it accepts. A group with no tokens
// is open.
type Auth map[string][][sha256.Size]byte

// LoadAuth reads each group's token files. A file holds one token per line
// (blank lines ignored), so tokens can be rotated by listing the old and the
// new one.
func LoadAuth(files map[string][]string) (Auth, error) {
	a := Auth{}
	for group, paths := range files {
		known := false
		for _, g := range Groups {
			known = known || g == group
		}
		if !known {
			return nil, fmt.Errorf("auth: unknown route group %q (known: %s)", group, strings.Join(Groups, ", "))
		}
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("auth %s: %w", group, err)
			}
			n := 0
			for _, line := range strings.Split(string(data), "\n") {
				if tok := strings.TrimSpace(line); tok != "" {
					a[group] = append(a[group], sha256.Sum256([]byte(tok)))
					n++
				}
			}
			if n == 0 {
				return nil, fmt.Errorf("auth %s: token file %s is empty", group, p)
			}
		}
	}
	return a, nil
}

// check reports whether the token is one of the group's. Tokens are
// compared as SHA-256 digests in constant time, so neither their content
// nor their length leaks through timing.
func (a Auth) check(group, token string) bool {
	want := a[group]
	if len(want) == 0 {
		return true
	}
	if token == "" {
		return false
	}
	got := sha256.Sum256([]byte(token))
	ok := 0
	for _, w := range want {
		ok |= subtle.ConstantTimeCompare(got[:], w[:])
	}
	return ok == 1
}

// require returns middleware enforcing the group's tokens. queryToken also
// accepts ?token=, for Flagger, whose webhooks cannot send headers.
func (s *Server) require(group string, queryToken bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		if len(s.auth[group]) == 0 {
			return
		}
		token := ""
		if h := c.GetHeader("Authorization"); h != "" {
			scheme, value, _ := strings.Cut(h, " ")
			if strings.EqualFold(scheme, "Bearer") {
				token = strings.TrimSpace(value)
			}
		}
		if token == "" && queryToken {
			token = c.Query("token")
		}
		if !s.auth.check(group, token) {
			c.Header("WWW-Authenticate", `Bearer realm="canary"`)
			s.abort(c, http.StatusUnauthorized, "missing or invalid bearer token")
			return
		}
	}
}
