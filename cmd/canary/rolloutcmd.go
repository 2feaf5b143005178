package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/aurum/canary/rollout"
	"github.com/aurum/canary/rollout/deploy"
	"github.com/aurum/canary/rules"
)

// apiClient talks to a canary serve's admin API (rollouts and runs).
type apiClient struct {
	server, token string
	http          *http.Client
}

// apiFlags are the flags every client of the admin API takes.
type apiFlags struct {
	server, tokenFile, caFile *string
}

func addAPIFlags(fs *flag.FlagSet) apiFlags {
	return apiFlags{
		server:    fs.String("server", envOr("CANARY_SERVER", "http://127.0.0.1:8080"), "canary serve's URL (env CANARY_SERVER)"),
		tokenFile: fs.String("token-file", os.Getenv("CANARY_TOKEN_FILE"), "file holding the admin bearer token (env CANARY_TOKEN_FILE)"),
		caFile:    fs.String("ca-file", os.Getenv("CANARY_CA_FILE"), "CA certificate (PEM) to check an https --server with (env CANARY_CA_FILE)"),
	}
}

func (f apiFlags) client() (*apiClient, error) {
	return newAPIClient(*f.server, *f.tokenFile, *f.caFile)
}

// newAPIClient is a client of the server, authenticated with the token in
// tokenFile when given: the file's first token, in the format canary
// serve reads (TOKEN, or NAME TOKEN). caFile, when given, is the CA an
// https server's certificate is checked against.
func newAPIClient(server, tokenFile, caFile string) (*apiClient, error) {
	rc := &apiClient{server: server, http: &http.Client{Timeout: 30 * time.Second}}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
		}
		rc.http.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	if tokenFile == "" {
		return rc, nil
	}
	data, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		rc.token = f[len(f)-1]
		return rc, nil
	}
	return nil, fmt.Errorf("token file %s holds no token", tokenFile)
}

func (rc *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(rc.server, "/")+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if rc.token != "" {
		req.Header.Set("Authorization", "Bearer "+rc.token)
	}
	resp, err := rc.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	return json.Unmarshal(data, out)
}

func runRollout(ctx context.Context, c *cli, args []string) int {
	actions := []string{"start", "status", "list", rollout.ActionPromote, rollout.ActionRollback, rollout.ActionPause, rollout.ActionResume, rollout.ActionSkipStep}
	if len(args) == 0 || !slices.Contains(actions, args[0]) {
		fmt.Fprintf(c.stderr, "Usage: canary rollout %s [flags]   (canary rollout start -h for the flags)\n", strings.Join(actions, "|"))
		return exitError
	}
	action := args[0]
	fs := c.newFlags("rollout")
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "Usage: canary rollout start --name N --version V --policy P --param k=v ... [flags]\n"+
			"       canary rollout start --name N --policy P --param k=v ... --deployment [NS/]NAME --image CONTAINER=IMAGE|--from-manifest FILE [flags]\n"+
			"       canary rollout status|promote|rollback|pause|resume|skip-step [NAMESPACE/]NAME [-n NAMESPACE] [flags]\n       canary rollout list\n\nFlags:\n")
		fs.PrintDefaults()
	}
	api := addAPIFlags(fs)
	watch := fs.Bool("watch", false, "follow the rollout live until it ends")
	reason := fs.String("reason", "", "why, for a manual action (required; recorded with who acted)")
	namespace := fs.String("n", os.Getenv("CANARY_NAMESPACE"), "the rollout's namespace (env CANARY_NAMESPACE); start defaults to its namespace param, the others to default")
	fs.StringVar(namespace, "namespace", *namespace, "the rollout's namespace (same as -n)")
	var (
		spec       = rollout.Spec{Params: map[string]string{}}
		steps      string
		params     = paramFlag(spec.Params)
		over       rollout.Override
		durs       = map[string]*time.Duration{}
		deployment string
		manifest   string
		imgs       = map[string]string{}
		replicas   int
		shadows    listFlag
	)
	if action == "start" {
		fs.StringVar(&spec.Name, "name", "", "rollout name (required)")
		fs.StringVar(&spec.Version, "version", "", "version being rolled out, e.g. the image tag (required)")
		fs.StringVar(&spec.Policy, "policy", "", "policy (required; it needs a traffic section)")
		fs.StringVar(&spec.Group, "group", "", "group name")
		fs.Var(params, "param", "a param as key=value (repeatable)")
		fs.StringVar(&steps, "steps", "", "explicit weights, comma-separated (e.g. 5,20,50), instead of the policy's")
		for _, name := range []string{"warmup", "interval", "step-duration", "promotion"} {
			durs[name] = fs.Duration(name, 0, name+" (default: the policy's)")
		}
		fs.StringVar(&deployment, "deployment", "", "the stable Deployment, [NAMESPACE/]NAME: the rollout makes the canary Deployment from it and promotes it at the end")
		fs.Var(paramFlag(imgs), "image", "the canary's image for a container of the stable Deployment, CONTAINER=IMAGE (repeatable; with --deployment)")
		fs.StringVar(&manifest, "from-manifest", "", "a Deployment manifest of the new version: its pod template is the canary's (with --deployment, or naming it)")
		fs.IntVar(&replicas, "canary-replicas", 0, "the canary Deployment's replicas (default: the stable's)")
		durs["progress-deadline"] = fs.Duration("progress-deadline", 0, "how long a Deployment may take to become available (default: the stable's progressDeadlineSeconds)")
		fs.Var(&shadows, "shadow", "a dryRun policy evaluated beside --policy, shown and counted, never acted on (repeatable)")
	}
	rest, err := parseArgs(fs, args[1:])
	if err != nil {
		return flagExit(err)
	}
	rc, err := api.client()
	if err != nil {
		fmt.Fprintf(c.stderr, "canary rollout: %v\n", err)
		return exitError
	}

	var name string
	switch action {
	case "start":
		if deployment != "" || manifest != "" || len(imgs) > 0 {
			d, err := deploymentSpec(deployment, manifest, imgs, replicas)
			if err != nil {
				return c.usageError(fs, "%v", err)
			}
			spec.Deployment = d
			if spec.Version == "" {
				spec.Version = versionOf(d)
			}
		}
		spec.Shadow = shadows
		if len(rest) > 0 || spec.Name == "" || spec.Version == "" || spec.Policy == "" {
			return c.usageError(fs, "start needs --name, --version (or an --image with a tag) and --policy")
		}
		if steps != "" {
			for _, s := range strings.Split(steps, ",") {
				w, err := strconv.Atoi(strings.TrimSpace(s))
				if err != nil {
					return c.usageError(fs, "--steps: %q is not a weight", s)
				}
				over.Steps = append(over.Steps, rollout.Step{Weight: w})
			}
		}
		set := func(dst **rollout.Duration, d *time.Duration) {
			if *d > 0 {
				v := rollout.Duration(*d)
				*dst = &v
			}
		}
		set(&over.Warmup, durs["warmup"])
		set(&over.Interval, durs["interval"])
		set(&over.StepDuration, durs["step-duration"])
		set(&over.Promotion, durs["promotion"])
		set(&over.ProgressDeadline, durs["progress-deadline"])
		spec.Schedule = &over
		spec.Namespace = *namespace
		var st rollout.Status
		if err := rc.do(ctx, http.MethodPost, "/v1/rollouts", spec, &st); err != nil {
			fmt.Fprintf(c.stderr, "canary rollout start: %v\n", err)
			return exitError
		}
		name, *namespace = st.Name, st.Namespace
		if !*watch {
			c.printStatus(c.stdout, st)
			return exitOK
		}
	case "list":
		var list struct{ Rollouts []rollout.Status }
		if err := rc.do(ctx, http.MethodGet, "/v1/rollouts", nil, &list); err != nil {
			fmt.Fprintf(c.stderr, "canary rollout list: %v\n", err)
			return exitError
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ROLLOUT\tVERSION\tPHASE\tSTEP\tWEIGHT\tHEALTH")
		for _, st := range list.Rollouts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", st.Namespace+"/"+st.Name, st.Version, st.Status, st.Step, st.Steps, weightBar(st.CurrentWeight), st.HealthStatus)
		}
		if err := tw.Flush(); err != nil {
			fmt.Fprintf(c.stderr, "canary rollout list: %v\n", err)
			return exitError
		}
		return exitOK
	default:
		if len(rest) != 1 {
			return c.usageError(fs, "%s needs the rollout's name", action)
		}
		name = rest[0]
		if ns, n, ok := strings.Cut(name, "/"); ok {
			*namespace, name = ns, n
		}
		if *namespace == "" {
			*namespace = "default"
		}
		if action != "status" {
			if strings.TrimSpace(*reason) == "" {
				return c.usageError(fs, "%s needs --reason: manual overrides are recorded with why and by whom", action)
			}
			var st rollout.Status
			if err := rc.do(ctx, http.MethodPost, "/v1/rollouts/"+*namespace+"/"+name+"/"+action, map[string]string{"reason": *reason}, &st); err != nil {
				fmt.Fprintf(c.stderr, "canary rollout %s: %v\n", action, err)
				return exitError
			}
			if !*watch {
				c.printStatus(c.stdout, st)
				return exitOK
			}
		}
	}
	return c.followRollout(ctx, rc, *namespace+"/"+name, *watch)
}

// followRollout prints a rollout's status (key is namespace/name), and with
// watch its events as they happen until it ends.
func (c *cli) followRollout(ctx context.Context, rc *apiClient, key string, watch bool) int {
	started := time.Now()
	seen := 0
	for {
		var st rollout.Status
		if err := rc.do(ctx, http.MethodGet, "/v1/rollouts/"+key, nil, &st); err != nil {
			fmt.Fprintf(c.stderr, "canary rollout: %v\n", err)
			return exitError
		}
		if !watch {
			c.printStatus(c.stdout, st)
			return exitOK
		}
		if seen > len(st.History) {
			seen = 0 // the history was trimmed
		}
		for _, e := range st.History[seen:] {
			fmt.Fprintln(c.stdout, c.eventLine(st.Name, e))
		}
		seen = len(st.History)
		switch {
		case st.Status.Terminal():
			c.summary(c.stdout, st, started)
			if st.Status == rollout.PhaseRolledBack {
				return exitFail
			}
			return exitOK
		case st.Status == rollout.PhasePaused || st.Status == rollout.PhaseFailed:
			// Nothing changes until a person acts: a watch that went on
			// would hang a CI job for good.
			c.summary(c.stdout, st, started)
			fmt.Fprintf(c.stdout, "  waiting for a person: canary rollout resume|rollback %s --reason \"…\"\n", key)
			return exitInconclusive
		}
		select {
		case <-ctx.Done():
			return exitError
		case <-time.After(time.Second):
		}
	}
}

// listFlag is a repeatable flag's values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// deploymentSpec builds a start's deployment from --deployment,
// --from-manifest, --image and --canary-replicas. A manifest names the
// Deployment when --deployment does not.
func deploymentSpec(deployment, manifest string, imgs map[string]string, replicas int) (*deploy.Spec, error) {
	d := &deploy.Spec{Images: imgs}
	if ns, name, ok := strings.Cut(deployment, "/"); ok {
		d.Namespace, d.Name = ns, name
	} else {
		d.Name = deployment
	}
	if manifest != "" {
		data, err := os.ReadFile(manifest)
		if err != nil {
			return nil, fmt.Errorf("--from-manifest: %w", err)
		}
		var m appsv1.Deployment
		if err := sigsyaml.UnmarshalStrict(data, &m); err != nil {
			return nil, fmt.Errorf("--from-manifest %s: not a Deployment: %w", manifest, err)
		}
		if m.Kind != "Deployment" {
			return nil, fmt.Errorf("--from-manifest %s: kind %q, want Deployment", manifest, m.Kind)
		}
		d.Template = &m.Spec.Template
		d.Name = cmp.Or(d.Name, m.Name)
		d.Namespace = cmp.Or(d.Namespace, m.Namespace)
	}
	switch {
	case d.Name == "":
		return nil, errors.New("--image and --from-manifest go with --deployment [NAMESPACE/]NAME")
	case len(imgs) == 0 && d.Template == nil:
		return nil, errors.New("--deployment needs --image CONTAINER=IMAGE or --from-manifest FILE: what the canary runs")
	case replicas < 0:
		return nil, errors.New("--canary-replicas must be at least 1")
	case replicas > 0:
		n := int32(replicas)
		d.Replicas = &n
	}
	return d, nil
}

// versionOf is a rollout's default version: the tag of its one image, or
// of the manifest's one container, when that is a Kubernetes-style name.
func versionOf(d *deploy.Spec) string {
	var images []string
	for _, img := range d.Images {
		images = append(images, img)
	}
	if d.Template != nil && len(images) == 0 {
		for _, c := range d.Template.Spec.Containers {
			images = append(images, c.Image)
		}
	}
	if len(images) != 1 {
		return ""
	}
	img := images[0]
	if i := strings.LastIndex(img, "@"); i >= 0 {
		img = img[:i]
	}
	i := strings.LastIndex(img, ":")
	if i < 0 || strings.Contains(img[i:], "/") {
		return ""
	}
	if tag := img[i+1:]; rules.IsName(tag) {
		return tag
	}
	return ""
}

func envOr(name, dflt string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return dflt
}
