package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/performance"
	"github.com/chromedp/chromedp"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/internal/demo"
	"github.com/aurum/canary/internal/testprom"
	"github.com/aurum/canary/rollout"
	"github.com/aurum/canary/rollout/deploy"
	"github.com/aurum/canary/runs"
	"github.com/aurum/canary/traffic/routers"
	"github.com/aurum/canary/webhooks"
)

// The web UI's tests drive a real headless Chromium (the Debian package
// chromium, which scripts/install-test-deps.sh installs) against canary
// serve in this process, with runs recorded by real analyses.

// chromium finds the browser, failing the test, never skipping it, when
// it is missing.
func chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found: install the Debian package `chromium` (scripts/install-test-deps.sh, which make test runs, does)")
	return ""
}

// browser is one headless Chromium tab.
type browser struct {
	t     testing.TB
	ctx   context.Context
	shots string
}

// newBrowser starts Chromium with a laptop's window. Every page it opens
// records the Content-Security-Policy violations it sees in window.__csp.
func newBrowser(t testing.TB) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(t)), chromedp.NoSandbox,
		chromedp.WindowSize(1440, 900))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first action starts the browser; it gets no timeout of its own.
	err := chromedp.Do(ctx, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
			Source: `window.__csp = []; document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));`,
		})
		return chromedp.Void{}, err
	})
	require.NoError(t, err, "start Chromium")
	shots := os.Getenv("CANARY_SCREENSHOTS")
	if shots == "" {
		shots = filepath.Join(t.TempDir(), "screenshots")
	}
	require.NoError(t, os.MkdirAll(shots, 0o755))
	return &browser{t: t, ctx: ctx, shots: shots}
}

// do runs actions with a deadline.
func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 45*time.Second)
	defer cancel()
	require.NoError(b.t, chromedp.Do(ctx, actions...))
}

// eval evaluates JavaScript in the page.
func eval[T any](b *browser, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	require.NoError(b.t, err, js)
	return v
}

// waitFor polls a JavaScript predicate until it holds.
func (b *browser) waitFor(js string) {
	b.t.Helper()
	b.do(chromedp.Action[chromedp.Void](func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(30*time.Second))(ctx, tg)
		if err != nil {
			err = fmt.Errorf("waiting for %s: %w", js, err)
		}
		return chromedp.Void{}, err
	}))
}

// open loads a page and waits until its view has rendered.
func (b *browser) open(url, view string) {
	b.t.Helper()
	b.do(chromedp.Navigate(url))
	b.waitFor(`document.body.dataset.ready === ` + strconv.Quote(view))
	require.Empty(b.t, eval[[]string](b, `window.__csp`), "no Content-Security-Policy violation on %s", url)
}

// shot saves a screenshot of the whole page.
func (b *browser) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	// From the top, so the sticky header is where it belongs.
	require.NoError(b.t, chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`)))
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(b.t, err)
	require.NoError(b.t, os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644))
}

// view saves a screenshot of the top of the page, height pixels of it,
// for the README.
func (b *browser) view(name string, height float64) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	require.NoError(b.t, chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`)))
	png, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) ([]byte, error) {
		yes := true
		r, err := cdp.Call(ctx, tg, page.CaptureScreenshot, page.CaptureScreenshotParams{FromSurface: &yes, CaptureBeyondViewport: &yes,
			Clip: &page.Viewport{Width: 1440, Height: height, Scale: 1}})
		if err != nil {
			return nil, err
		}
		return r.Data, nil
	})
	require.NoError(b.t, err)
	require.NoError(b.t, os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644))
}

func (b *browser) dark(on bool) {
	b.t.Helper()
	v := "light"
	if on {
		v = "dark"
	}
	b.do(func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: v}}})
		return chromedp.Void{}, err
	})
}

// metrics reads the tab's performance counters: ThreadTime is the CPU
// time of its main thread, in seconds, whatever else the machine runs.
func (b *browser) metrics() map[string]float64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	m, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (map[string]float64, error) {
		if _, err := cdp.Call(ctx, tg, performance.Enable, performance.EnableParams{}); err != nil {
			return nil, err
		}
		r, err := cdp.Call(ctx, tg, performance.GetMetrics, cdp.Empty{})
		if err != nil {
			return nil, err
		}
		out := map[string]float64{}
		for _, m := range r.Metrics {
			out[m.Name] = m.Value
		}
		return out, nil
	})
	require.NoError(b.t, err)
	return m
}

// uiServe is canary serve in this process.
type uiServe struct {
	svc   *service
	url   string
	token string
	dir   string
}

// viewerToken may read what the web UI shows, and do nothing else.
const viewerToken = "v1ewer-t0ken"

// startUIServe runs canary serve in this process with cfg, its admin and
// alertmanager routes taking testToken, and its ui routes viewerToken as
// well as the admin token.
func startUIServe(t testing.TB, cfg serveConfig, opts serviceOptions) *uiServe {
	t.Helper()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	require.NoError(t, os.WriteFile(tokens, []byte("tester "+testToken+"\n"), 0o600))
	viewers := filepath.Join(dir, "viewers")
	require.NoError(t, os.WriteFile(viewers, []byte("viewer "+viewerToken+"\n"), 0o600))
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Auth.Groups = map[string]groupAuth{webhooks.GroupAdmin: {TokenFiles: []string{tokens}}, webhooks.GroupAlertmanager: {TokenFiles: []string{tokens}},
		webhooks.GroupUI: {TokenFiles: []string{viewers}}}
	cfg.Cache.TTL = 0
	cfg.ReloadInterval = model.Duration(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := newService(ctx, cfg, slog.New(slog.DiscardHandler), opts)
	require.NoError(t, err)
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- svc.run(ctx, ready) }()
	t.Cleanup(func() {
		cancel()
		<-done
		svc.close()
	})
	select {
	case addr := <-ready:
		return &uiServe{svc: svc, url: "http://" + addr, token: testToken, dir: dir}
	case err := <-done:
		t.Fatalf("canary serve: %v", err)
	}
	return nil
}

// call sends a request to the API, with the admin token when auth is set.
func (s *uiServe) call(t testing.TB, method, path, body string, auth bool) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if auth {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, data
}

func (s *uiServe) run(t testing.TB, ns, name string) (*runs.Run, []runs.Evaluation) {
	t.Helper()
	code, body := s.call(t, "GET", "/v1/runs/"+ns+"/"+name+"?limit=200", "", true)
	require.Equal(t, http.StatusOK, code, string(body))
	var resp struct {
		Run     *runs.Run         `json:"run"`
		History []runs.Evaluation `json:"history"`
	}
	require.NoError(t, json.Unmarshal(body, &resp))
	return resp.Run, resp.History
}

// uiPolicy is the demo's policy with a statistical comparison added, so
// the run page charts canary beside baseline.
func uiPolicy() []byte {
	p := bytes.Replace(demoPolicy, []byte("name: lmp-demo"), []byte("name: lmp-ui"), 1)
	return append(p, []byte(`
  compare:
    - name: latency-vs-baseline
      canary: 'sum(rate(ingest_request_duration_seconds_sum{namespace="{{ .namespace }}",app="{{ .name }}",track="canary"}[6s])) / sum(rate(ingest_request_duration_seconds_count{namespace="{{ .namespace }}",app="{{ .name }}",track="canary"}[6s])) * 1000'
      baseline: 'sum(rate(ingest_request_duration_seconds_sum{namespace="{{ .namespace }}",app="{{ .name }}",track="primary"}[6s])) / sum(rate(ingest_request_duration_seconds_count{namespace="{{ .namespace }}",app="{{ .name }}",track="primary"}[6s])) * 1000'
      range: 20s
      step: 2s
      direction: increase
      allowedIncrease: 10
`)...)
}

// xssReason is a reason a caller could send: the pages must show it as
// text.
const xssReason = `<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">`

// TestWebUI drives the web UI in Chromium against canary serve wired to
// the demo's world (two real services, an embedded PromQL engine scraping
// them, a Kafka cluster, a fake Kubernetes), behind a path prefix, while
// the orchestrator rolls a canary out: every page loads with no CSP
// violation, the run's charts show the values its analyses recorded,
// an analysis reaches the open page over SSE without a reload, a reason
// with markup is shown as text, the buttons answer 401 without the admin
// token and act with it, and the policies page shows reload errors and
// evaluates a policy without recording it.
func TestWebUI(t *testing.T) {
	b := newBrowser(t)
	world, err := demo.NewWorld(demo.Config{})
	require.NoError(t, err)
	t.Cleanup(world.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	require.NoError(t, world.Start(ctx))
	wc := world.Config()

	policies := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(policies, "lmp-ui.yaml"), uiPolicy(), 0o644))
	cfg := defaultServeConfig()
	cfg.Policies = []string{policies}
	cfg.Prometheus = []prometheusConfig{{URL: world.Prometheus(), HTTPClient: config.DefaultHTTPClientConfig}}
	cfg.Kafka = defaultKafka(nil, strings.Join(world.KafkaBrokers(), ","))
	cfg.Web.Prefix = "/canary"
	srv := startUIServe(t, cfg, serviceOptions{Clients: &kubeClients{Clients: routers.Clients{Ingresses: world.Ingresses}, Deployments: func(ns string) deploy.Deployments { return world.Deployments(ns) }}})
	base := srv.url + "/canary"

	for world.Scrapes() < 3 {
		time.Sleep(200 * time.Millisecond)
	}
	spec := rollout.Spec{Namespace: wc.Namespace, Name: wc.App, Version: "v2", Policy: "lmp-ui",
		Params:   map[string]string{"namespace": wc.Namespace, "name": wc.App, "window": "10s"},
		Schedule: &rollout.Override{StepDuration: new(rollout.Duration(10 * time.Minute))}}
	_, err = srv.svc.orchestrator.Start(ctx, spec)
	require.NoError(t, err)
	ns, app := wc.Namespace, wc.App
	// run runs a subtest whose failures the browser's helpers report.
	run := func(name string, fn func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			parent := b.t
			b.t = t
			defer func() { b.t = parent }()
			fn(t)
		})
	}
	require.Eventually(t, func() bool {
		run, _ := srv.svc.runs.Get(ns, app, "v2")
		return run != nil && run.Evaluations >= 4
	}, 60*time.Second, 200*time.Millisecond, "the rollout's analyses are recorded")

	run("security headers", func(t *testing.T) {
		resp, err := http.Get(base + "/ui/")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		csp := resp.Header.Get("Content-Security-Policy")
		require.Contains(t, csp, "script-src 'self'")
		require.NotContains(t, csp, "unsafe-inline")
		require.NotContains(t, csp, "unsafe-eval")
		require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
		// Unprefixed, as behind a proxy that strips the prefix.
		resp, err = http.Get(srv.url + "/ui/")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})

	run("no data without a token; a viewer's token, given once, reads", func(t *testing.T) {
		b.open(base+"/ui/", "overview")
		require.Contains(t, eval[string](b, `document.getElementById('notice').textContent`), "401 Unauthorized")
		require.Zero(t, eval[int](b, `document.querySelectorAll('#runs').length`))
		b.do(chromedp.Click(chromedp.CSS(`#token-button`)), chromedp.WaitVisible(chromedp.CSS(`#token-input`)),
			chromedp.SendKeys(chromedp.CSS(`#token-input`), viewerToken), chromedp.Click(chromedp.CSS(`#token-save`)))
		b.waitFor(`document.querySelectorAll('#runs tr[data-run]').length === 1`)
		b.waitFor(`document.getElementById('live').textContent === 'live'`)
	})

	run("rollout page: 401 without the admin token, pause with it", func(t *testing.T) {
		b.open(base+"/ui/rollouts/"+ns+"/"+app, "rollout")
		weights := eval[[]string](b, `[...document.querySelectorAll('g.panel[data-rule="weight"] circle.pt')].map((c) => c.dataset.value)`)
		require.NotEmpty(t, weights)
		require.Contains(t, weights, "10", "the chart shows the first step's weight")
		b.shot("rollout")

		press(b, "pause", "hold for the UI test", "")
		b.waitFor(`!document.getElementById('notice').hidden`)
		require.Contains(t, eval[string](b, `document.getElementById('notice').textContent`), "401")
		status := func() rollout.Status {
			code, body := srv.call(t, "GET", "/v1/rollouts/"+ns+"/"+app, "", true)
			require.Equal(t, http.StatusOK, code)
			var st rollout.Status
			require.NoError(t, json.Unmarshal(body, &st))
			return st
		}
		require.NotEqual(t, rollout.PhasePaused, status().Status)

		press(b, "pause", "hold for the UI test", srv.token)
		b.waitFor(`document.getElementById('notice').className === 'ok'`)
		require.Equal(t, rollout.PhasePaused, status().Status)
		require.Equal(t, "tester", eval[string](b, `sessionStorage.getItem('canary.adminToken') === `+strconv.Quote(srv.token)+` ? 'tester' : ''`),
			"the token is kept in session storage")
		b.waitFor(`document.querySelector('#phase .badge').textContent === 'paused'`)
	})

	// The rollout is paused: no analysis comes but the ones this test sends.
	run("run page charts the recorded values", func(t *testing.T) {
		b.open(base+"/ui/runs/"+ns+"/"+app, "run")
		_, hist := srv.run(t, ns, app)
		require.NotEmpty(t, hist)
		for _, rule := range []string{"error-rate", "latency", "kafka-lag"} {
			var want []float64
			for _, e := range hist {
				for _, r := range e.Rules {
					if r.Name == rule && r.Value != nil {
						want = append(want, float64(*r.Value))
					}
				}
			}
			got := eval[[]string](b, `[...document.querySelectorAll('g.panel[data-rule="`+rule+`"] circle.pt')].map((c) => c.dataset.value)`)
			require.Len(t, got, len(want), rule)
			for i, g := range got {
				v, err := strconv.ParseFloat(g, 64)
				require.NoError(t, err)
				require.InDelta(t, want[i], v, 1e-9*max(1, want[i]), "%s, analysis %d", rule, i)
			}
		}
		require.Contains(t, eval[string](b, `document.querySelector('g.panel[data-rule="error-rate"]').textContent`), "threshold 0.02")
		require.Positive(t, eval[int](b, `document.querySelectorAll('g.panel[data-rule="latency-vs-baseline"] circle.pt-baseline').length`),
			"the comparison's baseline is charted beside the canary")
		require.Contains(t, eval[string](b, `document.querySelector('g.panel[data-rule="latency-vs-baseline"]').textContent`), "p=")
		require.Contains(t, eval[string](b, `document.body.textContent`), filepath.Join(policies, "lmp-ui.yaml")+":", "the policy's file:line")
		require.Contains(t, eval[string](b, `[...document.querySelectorAll('a')].map((a) => a.href).join(' ')`), world.Prometheus()+"/graph?g0.expr=")
		b.shot("run")
		b.view("ui-run", 1330)
		b.dark(true)
		b.waitFor(`getComputedStyle(document.body).backgroundColor === 'rgb(11, 17, 32)'`)
		b.shot("run-dark")
		b.dark(false)
	})

	run("an analysis arrives over SSE without a reload", func(t *testing.T) {
		b.waitFor(`document.getElementById('live').textContent === 'live'`)
		before := eval[string](b, `window.__stayed = 'yes'; document.getElementById('evaluations').textContent`)
		n, err := strconv.Atoi(before)
		require.NoError(t, err)
		code, body := srv.call(t, "POST", "/v1/analysis/lmp-ui?namespace="+ns+"&name="+app+"&revision=v2&window=10s", "", false)
		require.Equal(t, http.StatusOK, code, string(body))
		b.waitFor(`document.getElementById('evaluations').textContent === '` + strconv.Itoa(n+1) + `'`)
		require.Equal(t, "yes", eval[string](b, `window.__stayed`), "the page was updated, not reloaded")
		require.Contains(t, eval[string](b, `document.body.dataset.lastEvent`), "run analysis "+ns+"/"+app)
	})

	run("a reason with markup is text", func(t *testing.T) {
		body, _ := json.Marshal(map[string]string{"reason": xssReason})
		code, resp := srv.call(t, "POST", "/v1/runs/"+ns+"/"+app+"/pause?revision=v2", string(body), true)
		require.Equal(t, http.StatusOK, code, string(resp))
		b.waitFor(`[...document.querySelectorAll('#latches td.latch-reason')].some((td) => td.textContent === ` + strconv.Quote(xssReason) + `)`)
		require.Equal(t, "none", eval[string](b, `String(window.__xss ?? 'none')`))
		require.Zero(t, eval[int](b, `document.querySelectorAll('main img, main script').length`))
		b.open(base+"/ui/", "overview")
		require.Contains(t, eval[string](b, `[...document.querySelectorAll('#runs .latch')].map((s) => s.title).join('\n')`), xssReason)
		require.Equal(t, "none", eval[string](b, `String(window.__xss ?? 'none')`))
	})

	run("overview lists the run with its weight", func(t *testing.T) {
		// Other canaries, analysed as Argo Rollouts would: their apps have
		// no traffic, so their analyses are inconclusive.
		for _, c := range []string{"pjm/lmp-rt", "miso/da-ingest", "ercot/rt-settle"} {
			cns, cname, _ := strings.Cut(c, "/")
			code, body := srv.call(t, "GET", "/v1/analysis/lmp-ui?namespace="+cns+"&name="+cname+"&revision=r1", "", false)
			require.Equal(t, http.StatusOK, code, string(body))
		}
		b.open(base+"/ui/", "overview")
		require.Equal(t, 4, eval[int](b, `document.querySelectorAll('#runs tr[data-run]').length`))
		row := `document.querySelector('#runs tr[data-run="` + ns + "/" + app + `@v2"]')`
		require.Equal(t, "10%", eval[string](b, row+`.children[5].textContent`))
		require.Equal(t, "paused", eval[string](b, row+`.children[2].textContent`))
		b.shot("overview")
		b.dark(true)
		b.waitFor(`getComputedStyle(document.body).backgroundColor === 'rgb(11, 17, 32)'`)
		b.view("ui-overview-dark", 520)
		b.dark(false)
		b.do(chromedp.Evaluate[chromedp.Void](`const s = document.querySelector('select[name="state"]'); s.value = 'paused'; s.dispatchEvent(new Event('change'))`))
		require.True(t, eval[bool](b, row+` !== null`), "kept by the filter")
		b.do(chromedp.Evaluate[chromedp.Void](`const s2 = document.querySelector('select[name="state"]'); s2.add(new Option('completed', 'completed')); s2.value = 'completed'; s2.dispatchEvent(new Event('change'))`))
		require.True(t, eval[bool](b, row+` === null`), "filtered out")
		require.Contains(t, eval[string](b, `location.search`), "state=completed", "the filter is in the address")
	})

	run("run page: rollback answers 401 without the admin token and latches with it", func(t *testing.T) {
		// Back to the viewer's token: it reads, but cannot act.
		b.do(chromedp.Evaluate[chromedp.Void](`sessionStorage.setItem('canary.adminToken', ` + strconv.Quote(viewerToken) + `)`))
		b.open(base+"/ui/runs/"+ns+"/"+app+"?revision=v2", "run")
		press(b, "rollback", "rolled back from the UI test", "")
		b.waitFor(`!document.getElementById('notice').hidden`)
		require.Contains(t, eval[string](b, `document.getElementById('notice').textContent`), "401 Unauthorized")
		run, _ := srv.run(t, ns, app)
		require.False(t, run.Has(runs.LatchRollback))
		b.shot("run-401")

		press(b, "rollback", "rolled back from the UI test", srv.token)
		b.waitFor(`document.getElementById('notice').className === 'ok'`)
		run, _ = srv.run(t, ns, app)
		require.True(t, run.Has(runs.LatchRollback), "the latch is set")
		l, _ := run.Latch()
		require.Equal(t, "rolled back from the UI test", l.Reason)
		require.Equal(t, "admin/tester", l.By)
		b.waitFor(`[...document.querySelectorAll('#latches td.latch-reason')].some((td) => td.textContent === 'rolled back from the UI test')`)
	})

	run("policies: reload errors and try it", func(t *testing.T) {
		require.NoError(t, os.WriteFile(filepath.Join(policies, "broken.yaml"), []byte(`apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: broken}
spec:
  queries: {x: {prometheus: up}}
  rules:
    - {name: r, expr: 'x <= nosuch'}
`), 0o644))
		code, body := srv.call(t, "POST", "/-/reload", "", true)
		require.Equal(t, http.StatusInternalServerError, code, string(body))
		run, _ := srv.run(t, ns, app)
		b.open(base+"/ui/policies", "policies")
		errs := eval[string](b, `document.getElementById('reload-errors').textContent`)
		require.Regexp(t, `broken\.yaml:\d+:\d+: `, errs, "the error names file:line:col")
		form := `form.tryit-form[data-policy="lmp-ui"]`
		b.do(chromedp.SendKeys(chromedp.CSS(form+` input[name="namespace"]`), ns), chromedp.SendKeys(chromedp.CSS(form+` input[name="name"]`), app),
			chromedp.Click(chromedp.CSS(form+` button[type="submit"]`)))
		result := func() string { return eval[string](b, `document.querySelector('`+form+` .tryit-result').textContent`) }
		deadline := time.Now().Add(30 * time.Second)
		for eval[int](b, `document.querySelectorAll('#eval-lmp-ui tbody tr[data-rule]').length`) != 6 {
			require.True(t, time.Now().Before(deadline), "the try-it result: %s", result())
			time.Sleep(100 * time.Millisecond)
		}
		require.Contains(t, eval[string](b, `document.querySelector('#eval-lmp-ui tbody tr[data-rule="error-rate"]').textContent`), "pass")
		b.shot("policies")
		after, _ := srv.run(t, ns, app)
		require.Equal(t, run.Evaluations, after.Evaluations, "trying a policy records nothing")
	})

	// A browser keeps six connections per host: pages left behind must
	// not keep their streams.
	require.Eventually(t, func() bool { return srv.svc.stream.Clients() <= 1 }, 10*time.Second, 50*time.Millisecond,
		"%d live streams open after the pages were left", srv.svc.stream.Clients())
}

// press clicks an action button, types the reason and, when given, the
// token, and confirms.
func press(b *browser, action, reason, token string) {
	b.t.Helper()
	b.do(chromedp.Evaluate[chromedp.Void](`document.getElementById('notice').hidden = true; document.getElementById('notice').className = ''`),
		chromedp.Click(chromedp.CSS(`button[data-action="`+action+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#confirm-reason`)),
		chromedp.SendKeys(chromedp.CSS(`#confirm-reason`), reason))
	if token != "" {
		b.do(chromedp.SendKeys(chromedp.CSS(`#confirm-token`), token))
	}
	b.do(chromedp.Click(chromedp.CSS(`#confirm-ok`)))
}

// BenchmarkWebUIOverview measures, in Chromium, how long the overview takes
// to load and render with 1,000 runs recorded by real analyses against a
// real Prometheus: from navigation to the frame after the table is drawn
// (its first page; every row is fetched and filterable).
func BenchmarkWebUIOverview(b *testing.B) {
	br := newBrowser(b)
	prom := testprom.Start(b)
	seedLive(b, prom)
	cfg := defaultServeConfig()
	cfg.Policies = []string{"testdata/live.yaml"}
	cfg.Prometheus = setDefaultPrometheus(nil, prom.URL())
	cfg.MaxRuns = 2000
	srv := startUIServe(b, cfg, serviceOptions{})
	const n = 1000
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				code, body := srv.call(b, "POST", fmt.Sprintf("/v1/analysis/live?namespace=team-%04d&name=good", i), "", false)
				if code != http.StatusOK {
					b.Errorf("analysis %d: %d %s", i, code, body)
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	br.open(srv.url+"/ui/", "overview")
	br.do(chromedp.Evaluate[chromedp.Void](`sessionStorage.setItem('canary.adminToken', ` + strconv.Quote(viewerToken) + `)`))
	br.open(srv.url+"/ui/", "overview")
	require.Contains(b, eval[string](br, `document.querySelector('main p').textContent`), "1000 runs")
	require.Equal(b, 100, eval[int](br, `document.querySelectorAll('#runs tr[data-run]').length`), "the first page")
	require.Equal(b, "Show 100 more (100 of 1000 shown)", eval[string](br, `document.getElementById('more').textContent`))
	br.do(chromedp.Click(chromedp.CSS(`#more`)))
	require.Equal(b, 200, eval[int](br, `document.querySelectorAll('#runs tr[data-run]').length`))
	br.view("overview-1000", 900)
	var wall, cpu float64
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		before := br.metrics()
		br.open(srv.url+"/ui/", "overview")
		br.waitFor(`document.body.dataset.renderedAt`)
		wall += eval[float64](br, `Number(document.body.dataset.renderedAt)`)
		cpu += (br.metrics()["ThreadTime"] - before["ThreadTime"]) * 1000
	}
	b.ReportMetric(wall/float64(b.N), "ms/load")
	b.ReportMetric(cpu/float64(b.N), "cpu-ms/load")
	b.Logf("last load: %s; script started %s ms, data fetched %s ms, rendered %s ms",
		eval[string](br, `JSON.stringify(performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation')).map((e) => [e.name.replace(/^.*\//, ''), Math.round(e.startTime), Math.round(e.responseStart), Math.round(e.responseEnd), e.encodedBodySize]))`),
		eval[string](br, `String(performance.getEntriesByType('resource').find((e) => e.name.includes('app.js'))?.responseEnd)`),
		eval[string](br, `document.body.dataset.fetchedAt`), eval[string](br, `document.body.dataset.renderedAt`))
}
