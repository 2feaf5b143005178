package main

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/spf13/cobra"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/internal/demo"
	"github.com/aurum/canary/rollout"
	"github.com/aurum/canary/rollout/deploy"
	"github.com/aurum/canary/rollout/notify"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/traffic/routers"
	"github.com/aurum/canary/webhooks"
)

// demoPolicy is the policy the demo rolls out with; it is written into the
// demo's temporary directory, so the demo needs no files of the checkout.
//
//go:embed demo/lmp-demo.yaml
var demoPolicy []byte

// scenario is one story the demo tells: something that happens to the
// canary once it reaches its second step, and how the rollout must end.
type scenario struct {
	name, story string
	// act runs once the rollout reaches its second step.
	act  func(ctx context.Context, d *demoRun) error
	want rollout.Phase
	// stepDown, when set, makes the rollback graceful.
	stepDown []int
	// deploy makes the rollout manage the Deployments: a whole deploy.
	deploy bool
}

var scenarios = []scenario{
	{name: "healthy", story: "a healthy canary: the rollout steps up and promotes",
		want: rollout.PhaseCompleted},
	{name: "deploy", story: "a whole deploy: the canary Deployment is made from the stable one with image v2, takes its steps, " +
		"and promotion gives the stable Deployment v2, moves the traffic back to it and scales the canary to 0",
		want: rollout.PhaseCompleted, deploy: true},
	{name: "errors", story: "the canary's error rate climbs at step 2: the rollout fails and steps the weight down",
		want: rollout.PhaseRolledBack, stepDown: []int{10},
		act: func(ctx context.Context, d *demoRun) error {
			d.say("the canary starts failing 15% of its fetches")
			d.world.Canary().SetErrorRate(0.15)
			return nil
		}},
	{name: "lag", story: "the canary's Kafka consumer falls behind at step 2: the lag rule rolls it back",
		want: rollout.PhaseRolledBack,
		act: func(ctx context.Context, d *demoRun) error {
			d.say("the canary's consumer stops keeping up with caiso-lmp")
			d.world.Canary().SetConsumeRate(0)
			return nil
		}},
	{name: "alert", story: "Alertmanager fires at step 2: the kill switch zeroes the canary's traffic at once",
		want: rollout.PhaseRolledBack,
		act: func(ctx context.Context, d *demoRun) error {
			d.say("Alertmanager posts IngestErrorsHigh for demo/lmp-ingest")
			body := `{"version":"4","status":"firing","receiver":"canary","groupKey":"{}:{alertname=\"IngestErrorsHigh\"}",
 "alerts":[{"status":"firing","labels":{"alertname":"IngestErrorsHigh","severity":"critical","namespace":"demo","app":"lmp-ingest"},
 "annotations":{"summary":"CAISO LMP ingestion errors above 2%"},"startsAt":"` + time.Now().UTC().Format(time.RFC3339) + `","fingerprint":"c4n4ry00demo0001"}]}`
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url+"/v1/alertmanager", strings.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+d.tokens[webhooks.GroupAlertmanager])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("alertmanager receiver answered %s", resp.Status)
			}
			weight := d.canaryWeight()
			d.say(fmt.Sprintf("kill switch: the canary Ingress's weight is %s before the orchestrator's next look", weight))
			return nil
		}},
}

// demoOptions shape a demo run; the tests shorten the schedule.
type demoOptions struct {
	scenarios []string
	serve     bool
	listen    string
	schedule  *rollout.Override
	window    string
	rate      float64
	timeout   time.Duration
}

func (c *cli) newDemoCmd() *cobra.Command {
	var (
		names, listen string
		serveFlag     bool
	)
	cmd := &cobra.Command{
		Use:   "demo [--scenario healthy,deploy,errors,lag,alert|all] [--serve]",
		Short: "run a whole canary rollout on this machine: no Kubernetes, no Prometheus",
		Long: `Run a whole canary rollout on this machine: no Kubernetes, no Prometheus.

An in-process world (an edge, a stable and a canary ingest pipeline, Kafka,
Prometheus's query API) is rolled out to by canary serve's own orchestrator.
The exit code is 0 when every scenario ends as it should.`,
		Example: `  canary demo
  canary demo --scenario all
  canary demo --scenario errors --serve`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list := strings.Split(names, ",")
			if names == "all" {
				list = nil
				for _, s := range scenarios {
					list = append(list, s.name)
				}
			}
			opts := demoOptions{scenarios: list, serve: serveFlag, listen: listen, timeout: 90 * time.Second}
			if !opts.serve {
				opts.listen = "127.0.0.1:0"
			}
			return exit(c.demo(c.ctx, opts))
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&names, "scenario", "deploy,errors", "scenarios to run, comma-separated: healthy, deploy, errors, lag, alert, or all")
	fs.BoolVar(&serveFlag, "serve", false, "keep the webhook API up after the scenarios, to curl /v1/rollouts and /v1/runs")
	fs.StringVar(&listen, "listen", "127.0.0.1:8080", "address of the webhook API with --serve")
	values := []string{"all"}
	for _, s := range scenarios {
		values = append(values, s.name)
	}
	_ = cmd.RegisterFlagCompletionFunc("scenario", completeList(values))
	_ = cmd.RegisterFlagCompletionFunc("listen", noFiles)
	return cmd
}

// demoResult is how a scenario ended, for the tests.
type demoResult struct {
	Phase rollout.Phase
	// Weights are the canary weights written to the Ingress, in order.
	Weights []string
}

// demoRun is one scenario's world and service.
type demoRun struct {
	c       *cli
	world   *demo.World
	svc     *service
	url     string
	name    string
	started time.Time
	// tokens are the demo's own bearer tokens by route group: the service
	// is closed by default, the demo too.
	tokens map[string]string
	dir    string
	mu     sync.Mutex
}

func (d *demoRun) say(msg string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.c.stdout, "%s  %-12s %s\n", time.Now().Format("15:04:05"), "»", d.c.color2(ansiBold, msg))
}

func (d *demoRun) canaryWeight() string {
	hist := d.world.AnnotationHistory()
	if len(hist) == 0 || hist[len(hist)-1].Annotations == nil {
		return "unset"
	}
	return hist[len(hist)-1].Annotations["nginx.ingress.kubernetes.io/canary-weight"] + "%"
}

func (c *cli) demo(ctx context.Context, opts demoOptions) int {
	code := exitOK
	for i, name := range opts.scenarios {
		sc, ok := findScenario(name)
		if !ok {
			fmt.Fprintf(c.stderr, "canary: demo: unknown scenario %q (known: healthy, deploy, errors, lag, alert)\n", name)
			return exitError
		}
		last := i == len(opts.scenarios)-1
		if _, rc := c.demoScenario(ctx, sc, opts, last && opts.serve); rc != exitOK {
			code = rc
		}
		if ctx.Err() != nil {
			return exitError
		}
	}
	return code
}

func findScenario(name string) (scenario, bool) {
	for _, s := range scenarios {
		if s.name == strings.TrimSpace(name) {
			return s, true
		}
	}
	return scenario{}, false
}

// demoScenario runs one scenario in a world of its own: two versions of an
// ingestion service, a load generator, an edge routing by the canary
// Ingress's annotations, a Kafka topic with two consumers, and canary serve
// wired to them.
func (c *cli) demoScenario(ctx context.Context, sc scenario, opts demoOptions, keepServing bool) (res demoResult, code int) {
	// The orchestrator reports events from its own goroutine while this one
	// narrates: one lock per write keeps lines whole and output consistent.
	locked := *c
	locked.stdout = &lockedWriter{w: c.stdout}
	c = &locked
	fmt.Fprintf(c.stdout, "\n%s\n%s\n\n", c.color2(ansiBold, "== canary demo: "+sc.name), sc.story)
	dir, err := os.MkdirTemp("", "canary-demo-")
	if err != nil {
		fmt.Fprintf(c.stderr, "canary: demo: %v\n", err)
		return res, exitError
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "lmp-demo.yaml"), demoPolicy, 0o644); err != nil {
		fmt.Fprintf(c.stderr, "canary: demo: %v\n", err)
		return res, exitError
	}

	worldCfg := demo.Config{Rate: opts.rate}
	world, err := demo.NewWorld(worldCfg)
	if err != nil {
		fmt.Fprintf(c.stderr, "canary: demo: %v\n", err)
		return res, exitError
	}
	defer world.Close()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := world.Start(runCtx); err != nil {
		fmt.Fprintf(c.stderr, "canary: demo: start the world: %v\n", err)
		return res, exitError
	}
	wc := world.Config()

	d := &demoRun{c: c, world: world, name: "lmp-ingest", started: time.Now(), dir: dir}
	cfg := defaultServeConfig()
	cfg.Listen, cfg.Policies, cfg.DataDir = opts.listen, []string{dir}, filepath.Join(dir, "data")
	if cfg.Auth, d.tokens, err = demoTokens(dir); err != nil {
		fmt.Fprintf(c.stderr, "canary: demo: %v\n", err)
		return res, exitError
	}
	cfg.Prometheus = []prometheusConfig{{URL: world.Prometheus(), HTTPClient: config.DefaultHTTPClientConfig}}
	cfg.Kafka = defaultKafka(nil, strings.Join(world.KafkaBrokers(), ","))
	cfg.Cache.TTL = 0
	cfg.ReloadInterval = model.Duration(time.Hour) // the policy is fixed
	logger := slog.New(slog.DiscardHandler)
	var lastRules string
	// The notifications the scenario produces, as a Go route of the
	// program's own would get them.
	printer, err := notify.NewRoute("demo", notify.Filter{}, notify.NotifierFunc(func(_ context.Context, n notify.Notification) error {
		d.mu.Lock()
		defer d.mu.Unlock()
		fmt.Fprintln(c.stdout, c.notificationLine(n))
		return nil
	}))
	if err != nil {
		fmt.Fprintf(c.stderr, "canary: demo: %v\n", err)
		return res, exitError
	}
	svc, err := newService(runCtx, cfg, logger, serviceOptions{
		Notifiers: []*notify.Route{printer},
		Clients:   &kubeClients{Clients: routers.Clients{Ingresses: world.Ingresses}, Deployments: func(ns string) deploy.Deployments { return world.Deployments(ns) }},
		OnEvent: func(r *rollout.Rollout, e rollout.Event) {
			d.mu.Lock()
			defer d.mu.Unlock()
			fmt.Fprintln(c.stdout, c.eventLine(r.Spec.Name, e))
			if e.Type == "evaluation" && r.LastEvaluation != nil {
				// The rules' line when their outcomes change: every two
				// seconds would bury the story.
				line := compactRules(r.LastEvaluation.Rules)
				if marks := outcomeMarks(r.LastEvaluation.Rules); marks != lastRules {
					lastRules = marks
					fmt.Fprintf(c.stdout, "%s  %-12s   %s\n", strings.Repeat(" ", 8), "", line)
				}
			}
		},
	})
	if err != nil {
		fmt.Fprintf(c.stderr, "canary: demo: %v\n", err)
		return res, exitError
	}
	defer svc.close()
	ready := make(chan string, 1)
	served := make(chan error, 1)
	go func() { served <- svc.run(runCtx, ready) }()
	select {
	case addr := <-ready:
		d.url = "http://" + addr
	case err := <-served:
		fmt.Fprintf(c.stderr, "canary: demo: %v\n", err)
		return res, exitError
	}
	fmt.Fprintf(c.stdout, "edge %s · Prometheus API %s · canary serve %s · %d req/s\n\n",
		world.Edge(), world.Prometheus(), d.url, int(wc.Rate))

	// Let a few scrapes land so the first analysis has rates to read.
	for world.Scrapes() < 3 && runCtx.Err() == nil {
		time.Sleep(200 * time.Millisecond)
	}
	spec := rollout.Spec{Namespace: wc.Namespace, Name: d.name, Version: "v2", Policy: "lmp-demo",
		Params: map[string]string{"namespace": wc.Namespace, "name": wc.App}}
	if opts.window != "" {
		spec.Params["window"] = opts.window
	}
	over := rollout.Override{}
	if opts.schedule != nil {
		over = *opts.schedule
	}
	if sc.stepDown != nil {
		over.StepDown = &rollout.StepDownConfig{Weights: sc.stepDown, Interval: rollout.Duration(time.Second)}
	}
	spec.Schedule = &over
	if sc.deploy {
		spec.Deployment = &deploy.Spec{Name: wc.App, Images: map[string]string{demo.DeploymentContainer: demo.DeploymentImage + ":v2"}}
	}
	if _, err := svc.orchestrator.Start(runCtx, spec); err != nil {
		fmt.Fprintf(c.stderr, "canary: demo: %v\n", err)
		return res, exitError
	}

	deadline := time.Now().Add(opts.timeout)
	acted := sc.act == nil
	var st rollout.Status
	for {
		r, err := svc.orchestrator.Get(runCtx, wc.Namespace, d.name)
		if err != nil {
			fmt.Fprintf(c.stderr, "canary: demo: %v\n", err)
			return res, exitError
		}
		st = r.Status()
		if !acted && r.Phase == rollout.PhaseProgressing && r.Step >= 1 && r.AppliedWeight == r.Schedule.Steps[1].Weight {
			acted = true
			if err := sc.act(runCtx, d); err != nil {
				fmt.Fprintf(c.stderr, "canary: demo: %v\n", err)
				return res, exitError
			}
		}
		if r.Phase.Terminal() || r.Phase == rollout.PhasePaused || r.Phase == rollout.PhaseFailed {
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(c.stderr, "canary: demo: scenario %s did not finish within %s\n", sc.name, opts.timeout)
			return res, exitError
		}
		select {
		case <-runCtx.Done():
			return res, exitError
		case <-time.After(200 * time.Millisecond):
		}
	}
	// The last notifications are told before the summary.
	wctx, wcancel := context.WithTimeout(runCtx, 5*time.Second)
	_ = svc.outbox.Wait(wctx)
	wcancel()
	c.summary(c.stdout, st, d.started)
	res.Phase = st.Status
	var weights []string
	for _, h := range world.AnnotationHistory() {
		if w, ok := h.Annotations["nginx.ingress.kubernetes.io/canary-weight"]; ok {
			if len(weights) == 0 || weights[len(weights)-1] != w {
				weights = append(weights, w)
			}
		}
	}
	res.Weights = weights
	fmt.Fprintf(c.stdout, "  canary weights written to the Ingress: %s\n", strings.Join(weights, " → "))
	load := world.Load()
	fmt.Fprintf(c.stdout, "  requests: %d sent, %d served by the canary\n", load.Sent, world.Canary().Requests())
	if d := st.Deployments; d != nil {
		fmt.Fprintf(c.stdout, "  deployments: stable %s runs %s on %d/%d; canary %s at %d replicas\n", d.Stable.Name,
			images(d.Stable.Images), d.Stable.Available, d.Stable.Desired, d.Canary.Name, d.Canary.Desired)
	}
	if st.Status != sc.want {
		fmt.Fprintf(c.stderr, "canary: demo: scenario %s ended %s, expected %s\n", sc.name, st.Status, sc.want)
		return res, exitError
	}
	if keepServing {
		auth := "-H \"Authorization: Bearer " + d.tokens[webhooks.GroupAdmin] + "\""
		fmt.Fprintf(c.stdout, "\nThe webhook API stays up at %s (Ctrl-C to stop). Its admin token is this demo's own. Try:\n  curl %s %s/v1/rollouts/%s/%s\n  curl %s %s/v1/runs\nor open the web UI at %s/ui/ and give it the admin token %s.\n",
			d.url, auth, d.url, wc.Namespace, d.name, auth, d.url, d.url, d.tokens[webhooks.GroupAdmin])
		<-runCtx.Done()
	}
	return res, exitOK
}

// compactRules renders an analysis's rules on one line.
func compactRules(rs []analysis.RuleResult) string {
	var b bytes.Buffer
	for i, r := range rs {
		if i > 0 {
			b.WriteString("  ")
		}
		mark := "✓"
		switch r.Verdict {
		case rules.OutcomeFail:
			mark = "✗"
		case rules.OutcomeInconclusive, rules.OutcomeError:
			mark = "?"
		}
		b.WriteString(r.Name + " " + mark)
		if r.Value != nil {
			b.WriteString(" " + analysis.FormatValue(float64(*r.Value)))
		}
	}
	return b.String()
}

// outcomeMarks is the rules' outcomes alone, to tell when they change.
func outcomeMarks(rs []analysis.RuleResult) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(string(r.Verdict))
		b.WriteByte(' ')
	}
	return b.String()
}

// demoTokens writes a random bearer token for every route group into dir,
// for the demo's canary serve, which is closed by default like any other.
func demoTokens(dir string) (authConfig, map[string]string, error) {
	auth := authConfig{Groups: map[string]groupAuth{}}
	tokens := map[string]string{}
	for _, g := range webhooks.Groups {
		if g == webhooks.GroupUI {
			continue // the web UI reads with the admin token
		}
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return auth, nil, err
		}
		tokens[g] = hex.EncodeToString(b)
		file := filepath.Join(dir, g+"-token")
		if err := os.WriteFile(file, []byte("demo "+tokens[g]+"\n"), 0o600); err != nil {
			return auth, nil, err
		}
		auth.Groups[g] = groupAuth{TokenFiles: []string{file}}
	}
	return auth, tokens, nil
}

// lockedWriter serialises writes from the orchestrator and the narrator.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
