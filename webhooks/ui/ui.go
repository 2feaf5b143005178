// Package ui is the web UI canary serve shows people: runs and rollouts,
// every rule's value over a run's analyses, the policies, and buttons for
// the manual overrides. It is a page of hand-written JavaScript and CSS
// embedded in the binary, with no build step and nothing fetched from
// elsewhere; the page reads JSON from the webhooks package's /v1/ui
// endpoints and follows a Server-Sent Events Stream to refresh what it
// shows without a reload.
//
// The charts are package chart's SVG, drawn on the server: the backtest
// report draws with the same code. The page never writes a string it was
// given as HTML: names, reasons and label values come from callers.
package ui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"regexp"
	"strings"

	"github.com/aurum/canary/analysis/chart"
	"github.com/aurum/canary/webhooks/reply"
)

//go:embed static
var static embed.FS

// Security headers of every page and asset. The page runs only its own
// script and stylesheet (no inline code, no eval), reaches only its own
// origin, and cannot be framed.
const (
	ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
		"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

// SecurityHeaders sets the headers every answer of the service carries:
// no MIME sniffing, no framing, no referrer, and the page's CSP.
func SecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
}

// prefixRE is what a --web-prefix may be: a path of plain segments.
var prefixRE = regexp.MustCompile(`^(/[A-Za-z0-9._~-]+)*$`)

// CheckPrefix validates a path prefix: empty, or /a/b without a trailing
// slash.
func CheckPrefix(p string) error {
	if !prefixRE.MatchString(p) {
		return fmt.Errorf("web prefix %q: want a path such as /canary (letters, digits, . _ ~ -; no trailing slash)", p)
	}
	return nil
}

// Site serves the page and its assets.
type Site struct {
	prefix string
	index  []byte
	assets map[string]asset
}

type asset struct {
	data  []byte
	ctype string
	etag  string
}

// NewSite prepares the page for a path prefix ("" or "/canary"): every
// URL the page uses starts with it.
func NewSite(prefix string) (*Site, error) {
	if err := CheckPrefix(prefix); err != nil {
		return nil, err
	}
	s := &Site{prefix: prefix, assets: map[string]asset{}}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		s.add(strings.TrimPrefix(p, "static/"), data)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The chart's stylesheet is package chart's own, so the backtest page
	// and this one restyle the chart alike.
	s.add("chart.css", []byte(chart.CSS))
	idx, ok := s.assets["index.html"]
	if !ok {
		return nil, errors.New("ui: index.html is missing")
	}
	delete(s.assets, "index.html")
	// Assets are named with their digest, so a new binary's page never
	// runs an old script from a cache.
	page := strings.ReplaceAll(string(idx.data), "{{prefix}}", html.EscapeString(prefix))
	for name, a := range s.assets {
		page = strings.ReplaceAll(page, "{{"+name+"}}", html.EscapeString(prefix+"/ui/static/"+name+"?v="+a.etag))
	}
	s.index = []byte(page)
	return s, nil
}

func (s *Site) add(name string, data []byte) {
	sum := sha256.Sum256(data)
	ctype := mime.TypeByExtension(path.Ext(name))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	s.assets[name] = asset{data: data, ctype: ctype, etag: hex.EncodeToString(sum[:8])}
}

// Prefix is the site's path prefix.
func (s *Site) Prefix() string { return s.prefix }

// ServeIndex serves the page, whichever view the path names: the page's
// script reads the path.
func (s *Site) ServeIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(s.index)
}

// ServeAsset serves one embedded asset by name, or 404.
func (s *Site) ServeAsset(w http.ResponseWriter, r *http.Request, name string) {
	a, ok := s.assets[strings.TrimPrefix(name, "/")]
	if !ok {
		reply.Fail(w, http.StatusNotFound, "no such asset: "+name)
		return
	}
	etag := `"` + a.etag + `"`
	w.Header().Set("Content-Type", a.ctype)
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "public, max-age=3600")
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(a.data)
}
