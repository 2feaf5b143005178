package demo

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/cookiejar"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Headers the load generator sends with every request.
const (
	// HeaderUserID carries the simulated user's numeric ID, which the
	// user-id strategy (traffic.UserIDPattern) matches.
	HeaderUserID = "X-User-Id"
	// HeaderCountry carries the user's country as Cloudflare's edge sets
	// it, which the geo strategy (traffic.GeoPattern) matches.
	HeaderCountry = "CF-IPCountry"
)

// countries are the users' countries with their weights: mostly US, as an
// American ISO's users would be.
var countries = []struct {
	code   string
	weight int
}{{"US", 60}, {"CA", 15}, {"MX", 15}, {"GB", 10}}

// maxInFlight bounds the requests the load generator has open at once, so a
// service made very slow cannot pile up goroutines without bound; requests
// beyond it are skipped and counted.
const maxInFlight = 512

// user is one simulated user: a fixed ID and country, and a cookie jar of
// its own, so that session-affinity cookies the edge sets stay with the
// user as in a browser.
type user struct {
	id      string
	country string
	client  *http.Client
	// optIn marks a user who carries the opt-in cookie, set to "always".
	optIn bool
}

// loadGen sends requests to the edge at a steady rate, each from a random
// user.
type loadGen struct {
	target    string // the edge's base URL
	host      string // the Host header, the Ingress rule's host
	optCookie string
	users     []*user
	rnd       *lockedRand
	logger    *slog.Logger

	rate     atomic.Uint64 // math.Float64bits of requests per second
	sent     atomic.Int64
	failed   atomic.Int64
	skipped  atomic.Int64
	inFlight chan struct{}
	wg       sync.WaitGroup
}

// newLoadGen makes cfg.Users users from rnd: IDs are distinct six-digit
// numbers, whose last digits are uniform, as traffic.UserIDPattern assumes.
func newLoadGen(cfg Config, target string, transport http.RoundTripper, rnd *lockedRand, logger *slog.Logger) *loadGen {
	g := &loadGen{
		target:    target,
		host:      cfg.Host,
		optCookie: cfg.OptInCookie,
		rnd:       rnd,
		logger:    logger,
		inFlight:  make(chan struct{}, maxInFlight),
	}
	g.rate.Store(math.Float64bits(cfg.Rate))
	total := 0
	for _, c := range countries {
		total += c.weight
	}
	ids := map[int]bool{}
	for range cfg.Users {
		id := 100000 + rnd.IntN(900000)
		for ids[id] {
			id = 100000 + rnd.IntN(900000)
		}
		ids[id] = true
		pick, country := rnd.IntN(total), ""
		for _, c := range countries {
			if pick < c.weight {
				country = c.code
				break
			}
			pick -= c.weight
		}
		// cookiejar.New fails only with a bad PublicSuffixList option.
		jar, _ := cookiejar.New(nil)
		g.users = append(g.users, &user{
			id:      strconv.Itoa(id),
			country: country,
			client:  &http.Client{Transport: transport, Jar: jar, Timeout: 10 * time.Second},
			optIn:   cfg.OptInCookie != "" && rnd.Float64() < cfg.OptInShare,
		})
	}
	return g
}

// setRate changes the request rate; a negative or NaN rate counts as 0.
func (g *loadGen) setRate(perSecond float64) {
	if math.IsNaN(perSecond) || perSecond < 0 {
		perSecond = 0
	}
	g.rate.Store(math.Float64bits(perSecond))
}

// run sends requests until ctx ends, then waits for those in flight. The
// schedule is absolute (start + n/rate) so that request time does not
// slow the rate down; after a stall of more than a second it starts afresh
// rather than sending the missed requests in a burst.
func (g *loadGen) run(ctx context.Context) {
	defer g.wg.Wait()
	next := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		rate := math.Float64frombits(g.rate.Load())
		if rate <= 0 || len(g.users) == 0 {
			next = time.Now()
			timer.Reset(100 * time.Millisecond)
			continue
		}
		g.fire(ctx)
		next = next.Add(time.Duration(float64(time.Second) / rate))
		if now := time.Now(); now.Sub(next) > time.Second {
			next = now
		}
		timer.Reset(time.Until(next))
	}
}

// fire sends one request from a random user, unless too many are open.
func (g *loadGen) fire(ctx context.Context) {
	select {
	case g.inFlight <- struct{}{}:
	default:
		g.skipped.Add(1)
		return
	}
	u := g.users[g.rnd.IntN(len(g.users))]
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer func() { <-g.inFlight }()
		if err := g.send(ctx, u); err != nil {
			g.failed.Add(1)
			if ctx.Err() == nil {
				g.logger.Debug("load request failed", "user", u.id, "err", err)
			}
		}
	}()
}

func (g *loadGen) send(ctx context.Context, u *user) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.target+"/ingest", nil)
	if err != nil {
		return err
	}
	req.Host = g.host
	req.Header.Set(HeaderUserID, u.id)
	req.Header.Set(HeaderCountry, u.country)
	if u.optIn {
		req.AddCookie(&http.Cookie{Name: g.optCookie, Value: "always"})
	}
	g.sent.Add(1)
	resp, err := u.client.Do(req)
	if err != nil {
		return err
	}
	// Drain the body so the connection is reused.
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}
