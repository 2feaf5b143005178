package demo

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"sync/atomic"

	"github.com/aurum/canary/traffic/nginx"
)

// Annotation keys the edge reads, under ingress-nginx's default prefix (the
// one traffic/nginx writes unless configured otherwise).
const (
	annCanary                 = nginx.DefaultAnnotationPrefix + "/canary"
	annWeight                 = nginx.DefaultAnnotationPrefix + "/canary-weight"
	annWeightTotal            = nginx.DefaultAnnotationPrefix + "/canary-weight-total"
	annHeader                 = nginx.DefaultAnnotationPrefix + "/canary-by-header"
	annHeaderValue            = nginx.DefaultAnnotationPrefix + "/canary-by-header-value"
	annHeaderPattern          = nginx.DefaultAnnotationPrefix + "/canary-by-header-pattern"
	annCookie                 = nginx.DefaultAnnotationPrefix + "/canary-by-cookie"
	annAffinity               = nginx.DefaultAnnotationPrefix + "/affinity"
	annSessionCookieName      = nginx.DefaultAnnotationPrefix + "/session-cookie-name"
	annAffinityCanaryBehavior = nginx.DefaultAnnotationPrefix + "/affinity-canary-behavior"
)

// defaultSessionCookie is ingress-nginx's session-cookie-name default.
const defaultSessionCookie = "INGRESSCOOKIE"

// Response headers the edge adds, so a person with curl (and the tests) can
// see where a request went and why.
const (
	// HeaderBackend names the Kubernetes Service that served the request.
	HeaderBackend = "X-Demo-Backend"
	// HeaderReason says which rule chose it: one of the Reason constants.
	HeaderReason = "X-Demo-Reason"
)

// Reasons the edge gives in HeaderReason.
const (
	// ReasonStable: no canary rule applied, so the stable backend served.
	ReasonStable = "stable"
	// ReasonAffinity: the request's session cookie pinned it to a backend.
	ReasonAffinity = "affinity"
	// ReasonHeader: canary-by-header decided.
	ReasonHeader = "header"
	// ReasonCookie: canary-by-cookie decided.
	ReasonCookie = "cookie"
	// ReasonWeight: the weight roll sent the request to the canary.
	ReasonWeight = "weight"
)

// backend is one upstream of the edge: a Kubernetes Service behind an
// Ingress path.
type backend struct {
	// service is the Service's name, which the edge maps to a demo
	// service.
	service string
	// key is ingress-nginx's upstream name, namespace-service-port; the
	// session cookie carries it to name the backend that served a user.
	key string
	// affinity is the session cookie's name when the backend has cookie
	// affinity, else empty.
	affinity string
}

// canaryRules is ingress-nginx's traffic shaping policy for the canary
// backend, parsed once per change of the annotations rather than per
// request.
type canaryRules struct {
	header      string
	headerValue string
	// headerPattern is nil when the pattern is unset, ignored (a value is
	// set) or invalid; badPattern marks the invalid case.
	headerPattern *regexp.Regexp
	badPattern    bool
	cookie        string
	weight        int
	total         int
}

// routing is everything the edge needs to route one request. It is
// immutable: a change of the Ingresses builds a new one.
type routing struct {
	// stable is nil when there is no stable Ingress; nginx then answers
	// from its default backend, with a 404.
	stable *backend
	// canary is nil when no canary Ingress is in force.
	canary *backend
	rules  canaryRules
}

// newRouting builds the routing for a stable backend and, if canary is not
// nil, a canary backend with its Ingress's annotations, as ingress-nginx
// reads them. stableAnn are the stable Ingress's annotations, which decide
// the stable backend's session affinity.
func newRouting(stable *backend, stableAnn map[string]string, canary *backend, canaryAnn map[string]string) *routing {
	rt := &routing{stable: stable}
	if stable == nil {
		return rt
	}
	s := *stable
	s.affinity = affinityCookie(stableAnn, false)
	rt.stable = &s
	// ingress-nginx ignores every canary-* annotation unless canary is
	// true (strconv.ParseBool, so "True" and "1" count too).
	if on, _ := strconv.ParseBool(canaryAnn[annCanary]); canary == nil || !on {
		return rt
	}
	c := *canary
	c.affinity = affinityCookie(canaryAnn, true)
	rt.canary = &c
	rt.rules = parseRules(canaryAnn)
	return rt
}

// parseRules reads the canary-* annotations as ingress-nginx's canary
// parser does: a weight it cannot parse is 0, and a total that is missing,
// unparsable or below 100 is 100 (balancer.lua takes max(100, total)).
func parseRules(ann map[string]string) canaryRules {
	r := canaryRules{
		header:      ann[annHeader],
		headerValue: ann[annHeaderValue],
		cookie:      ann[annCookie],
		total:       100,
	}
	r.weight, _ = strconv.Atoi(ann[annWeight])
	if t, err := strconv.Atoi(ann[annWeightTotal]); err == nil && t > 100 {
		r.total = t
	}
	// The pattern counts only when no value is set.
	if p := ann[annHeaderPattern]; p != "" && r.headerValue == "" {
		re, err := regexp.Compile(p)
		if err != nil {
			r.badPattern = true
		} else {
			r.headerPattern = re
		}
	}
	return r
}

// affinityCookie is the session cookie's name when ann turn cookie
// affinity on, else "". On a canary Ingress, affinity-canary-behavior
// "legacy" turns it off for the canary backend: ingress-nginx then does not
// keep a user on the canary (the behaviour before "sticky", the default,
// existed).
func affinityCookie(ann map[string]string, canary bool) string {
	if ann[annAffinity] != "cookie" {
		return ""
	}
	if canary && ann[annAffinityCanaryBehavior] == "legacy" {
		return ""
	}
	if name := ann[annSessionCookieName]; name != "" {
		return name
	}
	return defaultSessionCookie
}

// decision is where one request goes.
type decision struct {
	// backend is nil when there is no stable Ingress (a 404).
	backend *backend
	// canary tells the canary backend from the stable one.
	canary bool
	reason string
	// setCookie, when not nil, pins the user to backend from now on.
	setCookie *http.Cookie
}

// route decides where r goes, following ingress-nginx's balancer.lua
// (route_to_alternative_balancer):
//
//  1. A request whose session cookie names the stable backend stays there,
//     and one whose cookie names the canary backend goes there (sticky
//     canary behaviour), before any canary rule.
//  2. canary-by-header: with canary-by-header-value, an exact match goes to
//     the canary; with canary-by-header-pattern (ignored when a value is
//     set), a regexp match (unanchored, as ngx.re.match) goes to the
//     canary, and an invalid pattern sends a request carrying the header to
//     the stable backend; with neither, "always" goes to the canary and
//     "never" to the stable backend. Any other value falls through.
//  3. canary-by-cookie: "always" goes to the canary, "never" to the stable
//     backend; anything else falls through.
//  4. canary-weight: the canary gets the request if roll(total), uniform in
//     1..total, is at most the weight (math.random(weightTotal) <= weight).
//
// A backend with cookie affinity sets its session cookie on a request not
// already pinned to it.
func route(rt *routing, r *http.Request, roll func(total int) int) decision {
	if rt == nil || rt.stable == nil {
		return decision{}
	}
	d := chooseBackend(rt, r, roll)
	if b := d.backend; b.affinity != "" {
		if c, err := r.Cookie(b.affinity); err != nil || c.Value != b.key {
			d.setCookie = &http.Cookie{Name: b.affinity, Value: b.key, Path: "/", HttpOnly: true}
		}
	}
	return d
}

func chooseBackend(rt *routing, r *http.Request, roll func(total int) int) decision {
	stable := decision{backend: rt.stable, reason: ReasonStable}
	if rt.canary == nil {
		return stable
	}
	canary := decision{backend: rt.canary, canary: true}
	if pinnedTo(r, rt.stable) {
		stable.reason = ReasonAffinity
		return stable
	}
	if pinnedTo(r, rt.canary) {
		canary.reason = ReasonAffinity
		return canary
	}

	rules := rt.rules
	if rules.header != "" {
		if vals, ok := r.Header[http.CanonicalHeaderKey(rules.header)]; ok && len(vals) > 0 {
			v := vals[0]
			stable.reason, canary.reason = ReasonHeader, ReasonHeader
			switch {
			case rules.headerValue != "":
				if v == rules.headerValue {
					return canary
				}
			case rules.badPattern:
				// ngx.re.match fails, and balancer.lua gives up on the
				// canary for this request.
				return stable
			case rules.headerPattern != nil:
				if rules.headerPattern.MatchString(v) {
					return canary
				}
			case v == "always":
				return canary
			case v == "never":
				return stable
			}
		}
	}
	if rules.cookie != "" {
		if c, err := r.Cookie(rules.cookie); err == nil {
			stable.reason, canary.reason = ReasonCookie, ReasonCookie
			switch c.Value {
			case "always":
				return canary
			case "never":
				return stable
			}
		}
	}
	stable.reason = ReasonStable
	if rules.weight > 0 && roll(rules.total) <= rules.weight {
		canary.reason = ReasonWeight
		return canary
	}
	return stable
}

// pinnedTo reports whether r's session cookie names b.
func pinnedTo(r *http.Request, b *backend) bool {
	if b.affinity == "" {
		return false
	}
	c, err := r.Cookie(b.affinity)
	return err == nil && c.Value == b.key
}

// edge is the demo's ingress-nginx: an HTTP proxy that routes each request
// by the Ingresses currently in the demo's cluster.
type edge struct {
	// routing is swapped whenever an Ingress changes (see cluster).
	routing  atomic.Pointer[routing]
	services map[string]*Service
	proxies  map[string]*httputil.ReverseProxy
	rnd      *lockedRand
}

func newEdge(rnd *lockedRand, transport http.RoundTripper, services ...*Service) *edge {
	e := &edge{
		services: map[string]*Service{},
		proxies:  map[string]*httputil.ReverseProxy{},
		rnd:      rnd,
	}
	for _, s := range services {
		target, _ := url.Parse(s.URL())
		e.services[s.Name()] = s
		e.proxies[s.Name()] = &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				// nginx passes the client's Host on to the upstream.
				pr.Out.Host = pr.In.Host
				pr.SetXForwarded()
			},
			Transport: transport,
			ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) {
				w.WriteHeader(http.StatusBadGateway)
			},
		}
	}
	return e
}

// ServeHTTP routes one request.
func (e *edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d := route(e.routing.Load(), r, func(total int) int { return e.rnd.IntN(total) + 1 })
	if d.backend == nil {
		http.Error(w, "default backend - 404", http.StatusNotFound)
		return
	}
	proxy, ok := e.proxies[d.backend.service]
	if !ok {
		// An Ingress pointing at a Service without endpoints.
		http.Error(w, "503 Service Temporarily Unavailable", http.StatusServiceUnavailable)
		return
	}
	if d.setCookie != nil {
		http.SetCookie(w, d.setCookie)
	}
	w.Header().Set(HeaderBackend, d.backend.service)
	w.Header().Set(HeaderReason, d.reason)
	proxy.ServeHTTP(w, r)
}
