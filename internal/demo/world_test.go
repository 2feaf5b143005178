package demo

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/queries/kafka"
	"github.com/aurum/canary/queries/prometheus"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/traffic"
	"github.com/aurum/canary/traffic/nginx"
)

// testWindow is the rate window of the policy's queries in the tests:
// short, so a change shows within seconds, and still forty scrapes long,
// so a scrape delayed on a busy machine leaves data in it.
const testWindow = "10s"

// policyQuery renders one query of the example policy iso-ingest for the
// demo's objects, so the tests read the world exactly as the policy does.
type policyQuery func(t *testing.T, name, track string) string

func isoIngest(t *testing.T, w *World) policyQuery {
	t.Helper()
	set, err := rules.Load(filepath.Join("..", "..", "examples", "policies", "iso-ingest.yaml"))
	require.NoError(t, err)
	p, err := set.Get("iso-ingest")
	require.NoError(t, err)
	return func(t *testing.T, name, track string) string {
		t.Helper()
		params, err := p.ResolveParams(map[string]string{
			"namespace":    w.Config().Namespace,
			"name":         w.Config().App,
			"canary_track": track,
			"window":       testWindow,
		})
		require.NoError(t, err)
		q := p.Query(name)
		require.NotNil(t, q, "query %s", name)
		text, _, err := q.Render(params)
		require.NoError(t, err)
		return text
	}
}

// value runs an instant query and returns its single value, or an error
// when it has not exactly one sample.
func value(ctx context.Context, src queries.Source, q queries.Query) (float64, error) {
	res, err := src.Query(ctx, q)
	if err != nil {
		return 0, err
	}
	if len(res.Samples) != 1 {
		return 0, fmt.Errorf("%d samples", len(res.Samples))
	}
	return res.Samples[0].Value, nil
}

// TestWorld runs a short rollout by hand: the policy's queries over HTTP
// through the production Prometheus source, a canary Ingress written
// straight into the fake cluster, a canary going bad, a consumer falling
// behind, and the nginx router driving the edge.
func TestWorld(t *testing.T) {
	w, err := NewWorld(Config{Rate: 200, ScrapeInterval: 250 * time.Millisecond, ProduceRate: 50, Seed: 7})
	require.NoError(t, err)
	t.Cleanup(w.Close)
	ctx := t.Context()
	require.NoError(t, w.Start(ctx))

	prom, err := prometheus.New(prometheus.Config{URL: w.Prometheus()}, nil)
	require.NoError(t, err)
	policy := isoIngest(t, w)
	ask := func(name, track string) (float64, error) {
		return value(ctx, prom, queries.Query{Text: policy(t, name, track)})
	}

	t.Run("the baseline's error rate is a number", func(t *testing.T) {
		var rate float64
		require.Eventually(t, func() bool {
			rate, err = ask("error_rate", TrackPrimary)
			return err == nil && w.Scrapes() >= 3
		}, 60*time.Second, 100*time.Millisecond, "last error: %v", err)
		require.Zero(t, rate)
		require.Zero(t, w.Canary().Requests(), "no canary Ingress, no canary traffic")
	})

	canaryRequests := queries.Query{Text: fmt.Sprintf(`sum(ingest_requests_total{namespace=%q,app=%q,track="canary"})`, w.Config().Namespace, w.Config().App)}
	t.Run("a canary weight of 50 sends it traffic", func(t *testing.T) {
		pathType := networkingv1.PathTypePrefix
		ing := &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{
				Name:      "lmp-ingest-canary",
				Namespace: "demo",
				Annotations: map[string]string{
					"nginx.ingress.kubernetes.io/canary":        "true",
					"nginx.ingress.kubernetes.io/canary-weight": "50",
				},
			},
			Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
				Host: "lmp.demo",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &pathType, Backend: networkingv1.IngressBackend{
						Service: &networkingv1.IngressServiceBackend{Name: "lmp-ingest-canary", Port: networkingv1.ServiceBackendPort{Number: 80}},
					}}},
				}},
			}}},
		}
		_, err := w.Ingresses("demo").Create(ctx, ing, metav1.CreateOptions{})
		require.NoError(t, err)

		history := w.AnnotationHistory()
		require.NotEmpty(t, history)
		last := history[len(history)-1]
		require.Equal(t, "lmp-ingest-canary", last.Ingress)
		require.Equal(t, "50", last.Annotations["nginx.ingress.kubernetes.io/canary-weight"])

		var n float64
		require.Eventually(t, func() bool {
			n, err = value(ctx, prom, canaryRequests)
			return err == nil && n >= 20
		}, 60*time.Second, 100*time.Millisecond, "canary requests %v, last error: %v", n, err)
		// About half of the load, counted from a moment when every
		// request in flight was already routed by the weight: requests
		// are counted when they complete.
		primary0, canary0 := w.Primary().Requests(), w.Canary().Requests()
		require.Eventually(t, func() bool { return w.Canary().Requests()-canary0 >= 100 }, 60*time.Second, 50*time.Millisecond)
		primary, canary := float64(w.Primary().Requests()-primary0), float64(w.Canary().Requests()-canary0)
		require.InDelta(t, 0.5, canary/(primary+canary), 0.15, "canary share of %v+%v requests", primary, canary)
	})

	lagOf := func(src *kafka.Source, group string) (float64, error) {
		return value(ctx, src, queries.Query{Fields: map[string]string{"group": group, "topics": w.Config().Topic}})
	}
	lagSrc, err := kafka.New(kafka.ClusterConfig{Brokers: w.KafkaBrokers()}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, lagSrc.Close()) })
	// The canary consumes 5 of the 50 messages a second; the check comes
	// after the error rate check, so the lag has time to build.
	lagBefore, err := lagOf(lagSrc, "lmp-ingest-canary")
	require.NoError(t, err)
	w.Canary().SetConsumeRate(5)

	t.Run("a canary failing a fifth of requests shows in its error rate", func(t *testing.T) {
		w.Canary().SetErrorRate(0.2)
		var rate float64
		require.Eventually(t, func() bool {
			rate, err = ask("error_rate", TrackCanary)
			return err == nil && rate > 0.1
		}, 60*time.Second, 100*time.Millisecond, "canary error rate %v, last error: %v", rate, err)

		// Every query of the policy reads the canary as a number.
		for _, name := range []string{"baseline_error_rate", "p99_ms", "baseline_p99_ms", "records_per_fetch", "baseline_records_per_fetch", "staleness_s"} {
			v, err := ask(name, TrackCanary)
			require.NoError(t, err, name)
			require.False(t, math.IsNaN(v) || math.IsInf(v, 0), "%s = %v", name, v)
		}
	})

	t.Run("a canary consuming slower than the producer falls behind", func(t *testing.T) {
		var lag float64
		require.Eventually(t, func() bool {
			lag, err = lagOf(lagSrc, "lmp-ingest-canary")
			return err == nil && lag > lagBefore+50
		}, 60*time.Second, 200*time.Millisecond, "canary lag %v (was %v), last error: %v", lag, lagBefore, err)
		// The baseline keeps up: its lag is what was produced since
		// its last commit, a consume tick's worth (10 messages) when
		// the machine is not busy.
		var primaryLag float64
		require.Eventually(t, func() bool {
			primaryLag, err = lagOf(lagSrc, "lmp-ingest-primary")
			return err == nil && primaryLag <= 15
		}, 60*time.Second, 100*time.Millisecond, "baseline lag %v, last error: %v", primaryLag, err)
	})

	t.Run("the nginx router drives the edge", func(t *testing.T) {
		cfg := w.NginxConfig()
		// The canary Ingress above was written by hand, not by the
		// router.
		cfg.TakeOver = true
		router, err := nginx.New(w.Ingresses(cfg.Namespace), cfg, nil)
		require.NoError(t, err)
		pattern, err := traffic.GeoPattern([]string{"GB"})
		require.NoError(t, err)
		require.NoError(t, router.Apply(ctx, traffic.Step{Match: &traffic.Match{
			Strategy: traffic.StrategyGeo, Header: HeaderCountry, Pattern: pattern,
		}}))

		from := func(country string) (backend, reason string) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.Edge()+"/ingest", nil)
			require.NoError(t, err)
			req.Header.Set(HeaderCountry, country)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			return resp.Header.Get(HeaderBackend), resp.Header.Get(HeaderReason)
		}
		for range 10 {
			b, r := from("GB")
			require.Equal(t, "lmp-ingest-canary", b)
			require.Equal(t, ReasonHeader, r)
			b, _ = from("US")
			require.Equal(t, "lmp-ingest-primary", b)
		}

		require.NoError(t, router.Reset(ctx))
		b, _ := from("GB")
		require.Equal(t, "lmp-ingest-primary", b)

		history := w.AnnotationHistory()
		require.GreaterOrEqual(t, len(history), 3)
		geo, reset := history[len(history)-2].Annotations, history[len(history)-1].Annotations
		require.Equal(t, "geo", geo[nginx.StrategyAnnotation])
		require.Equal(t, pattern, geo["nginx.ingress.kubernetes.io/canary-by-header-pattern"])
		require.Equal(t, "0", reset["nginx.ingress.kubernetes.io/canary-weight"])
		require.NotContains(t, reset, "nginx.ingress.kubernetes.io/canary-by-header")
		require.True(t, history[len(history)-2].At.Before(history[len(history)-1].At) ||
			history[len(history)-2].At.Equal(history[len(history)-1].At))
	})

	require.Zero(t, w.Load().Failed, "requests through the edge never fail")
}

// TestWorldCookieStrategy checks the router's cookie strategy end to end:
// opted-in users reach the canary and stay there by the affinity cookie in
// their jars, everyone else stays on the baseline.
func TestWorldCookieStrategy(t *testing.T) {
	w, err := NewWorld(Config{Rate: 100, ScrapeInterval: 250 * time.Millisecond, OptInCookie: "beta", OptInShare: 0.2, Users: 50, Seed: 3})
	require.NoError(t, err)
	t.Cleanup(w.Close)
	ctx := t.Context()

	router, err := nginx.New(w.Ingresses(w.NginxConfig().Namespace), w.NginxConfig(), nil)
	require.NoError(t, err)
	require.NoError(t, router.Apply(ctx, traffic.Step{Match: &traffic.Match{Strategy: traffic.StrategyCookie, Cookie: "beta"}}))
	require.NoError(t, w.Start(ctx))

	optedIn := 0
	for _, u := range w.load.users {
		if u.optIn {
			optedIn++
		}
	}
	require.Positive(t, optedIn)
	require.Eventually(t, func() bool { return w.Canary().Requests() >= 20 }, 60*time.Second, 50*time.Millisecond)

	// Every opted-in user that reached the canary holds its affinity
	// cookie; no other user does. The jars keep cookies under the Host
	// the requests name, as a browser would.
	site := &url.URL{Scheme: "http", Host: w.Config().Host, Path: "/"}
	pinned := 0
	for _, u := range w.load.users {
		for _, c := range u.client.Jar.Cookies(site) {
			require.Equal(t, nginx.AffinityCookie("beta"), c.Name)
			require.Equal(t, "demo-lmp-ingest-canary-80", c.Value)
			require.True(t, u.optIn, "user %s is pinned to the canary without opting in", u.id)
			pinned++
		}
	}
	require.Positive(t, pinned)
	share := float64(w.Canary().Requests()) / float64(w.Canary().Requests()+w.Primary().Requests())
	require.InDelta(t, float64(optedIn)/float64(len(w.load.users)), share, 0.15)
}

func TestWorldLifecycle(t *testing.T) {
	t.Run("close without start", func(t *testing.T) {
		w, err := NewWorld(Config{})
		require.NoError(t, err)
		w.Close()
		w.Close()
		require.Error(t, w.Start(t.Context()))
	})
	t.Run("start twice", func(t *testing.T) {
		w, err := NewWorld(Config{})
		require.NoError(t, err)
		defer w.Close()
		require.NoError(t, w.Start(t.Context()))
		require.ErrorContains(t, w.Start(t.Context()), "already started")
	})
	t.Run("bad config", func(t *testing.T) {
		_, err := NewWorld(Config{Namespace: "Demo", App: "1app", Rate: -1, OptInShare: 2})
		require.Error(t, err)
		for _, want := range []string{`namespace "Demo"`, `app "1app"`, "rate -1", "opt-in share 2"} {
			require.ErrorContains(t, err, want)
		}
	})
	t.Run("defaults", func(t *testing.T) {
		w, err := NewWorld(Config{})
		require.NoError(t, err)
		defer w.Close()
		cfg := w.Config()
		require.Equal(t, "demo", cfg.Namespace)
		require.Equal(t, "lmp-ingest", cfg.App)
		require.Equal(t, 50.0, cfg.Rate)
		require.Equal(t, time.Second, cfg.ScrapeInterval)
		require.Equal(t, "lmp-ingest-primary", w.Primary().Name())
		require.Equal(t, "lmp-ingest-canary", w.Canary().Name())
		require.Len(t, w.KafkaBrokers(), 1)
		require.Empty(t, w.AnnotationHistory(), "no canary Ingress yet")
	})
}
