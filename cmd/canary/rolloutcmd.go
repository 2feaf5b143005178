package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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

// apiFlags are the flags every client of the admin API takes. Each falls
// back to a CANARY_* variable when not given, read when the command runs:
// what the help and the reference show does not depend on who wrote them.
type apiFlags struct {
	fs *pflag.FlagSet
}

// defaultServer is where canary serve listens by default.
const defaultServer = "http://127.0.0.1:8080"

func addAPIFlags(fs *pflag.FlagSet) apiFlags {
	fs.String("server", defaultServer, "canary serve's URL (env CANARY_SERVER)")
	fs.String("token-file", "", "file holding the admin bearer token (env CANARY_TOKEN_FILE)")
	fs.String("ca-file", "", "CA certificate (PEM) to check an https --server with (env CANARY_CA_FILE)")
	return apiFlags{fs: fs}
}

func (f apiFlags) client() (*apiClient, error) {
	return newAPIClient(fromEnv(f.fs, "server", "CANARY_SERVER"), fromEnv(f.fs, "token-file", "CANARY_TOKEN_FILE"), fromEnv(f.fs, "ca-file", "CANARY_CA_FILE"))
}

// fromEnv is the value of fs's flag name: the one given, else the
// environment variable env when it is set, else the flag's default.
func fromEnv(fs *pflag.FlagSet, name, env string) string {
	fl := fs.Lookup(name)
	if !fl.Changed {
		if v := os.Getenv(env); v != "" {
			return v
		}
	}
	return fl.Value.String()
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

// rolloutFlags are the flags of canary rollout's commands.
type rolloutFlags struct {
	api apiFlags
	// namespace is -n's value, or CANARY_NAMESPACE's.
	namespace func() string
	watch     bool
	reason    string
	output    string
}

func (c *cli) newRolloutCmd() *cobra.Command {
	f := &rolloutFlags{}
	group := c.newGroup("rollout", "drive a rollout through canary serve's orchestrator",
		`Drive a rollout through canary serve's orchestrator: start one, follow it, and
promote, roll back, pause, resume or skip a step of it by hand.

A rollout is named [NAMESPACE/]NAME; without a namespace, -n, then
CANARY_NAMESPACE, then the kubeconfig context's namespace say which, else
default (start: its namespace param).

The exit code is 0 when done, 1 when refused or failed; with --watch, 0 when
the rollout completed, 2 when it was rolled back, 3 when it is paused or
failed and waits for a person (resume or roll back).`,
		`  canary rollout start --name lmp-ingest --version v2 --policy iso-ingest --param namespace=caiso --param name=lmp-ingest --watch
  canary rollout status caiso/lmp-ingest
  kubectl canary rollout status lmp-ingest
  canary rollout rollback caiso/lmp-ingest --reason "errors in the new parser"`)
	pf := group.PersistentFlags()
	f.api = addAPIFlags(pf)
	pf.StringP("namespace", "n", "", "the rollout's namespace (env CANARY_NAMESPACE; default: the kubeconfig context's, else start's namespace param or default)")
	f.namespace = func() string { return fromEnv(pf, "namespace", "CANARY_NAMESPACE") }
	_ = group.RegisterFlagCompletionFunc("server", noFiles)
	_ = group.RegisterFlagCompletionFunc("namespace", noFiles)

	group.AddCommand(c.newRolloutStartCmd(f))
	status := &cobra.Command{
		Use:               "status [NAMESPACE/]NAME",
		Short:             "print a rollout's status; with --watch, follow it until it ends",
		Example:           "  canary rollout status caiso/lmp-ingest --watch",
		Args:              exactlyOne("the rollout's name"),
		ValidArgsFunction: completeRollouts(f.api, f.namespace),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, name := f.target(args[0])
			return exit(c.followRollout(cmd, f, ns+"/"+name))
		},
	}
	status.Flags().BoolVar(&f.watch, "watch", false, "follow the rollout live until it ends")
	addOutputFlag(status, &f.output)
	list := &cobra.Command{
		Use:     "list",
		Short:   "list the rollouts canary serve runs",
		Example: "  canary rollout list -o yaml",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return exit(c.listRollouts(cmd, f)) },
	}
	addOutputFlag(list, &f.output)
	group.AddCommand(status, list)
	for _, a := range []struct{ action, short string }{
		{rollout.ActionPromote, "promote a rollout now: its canary takes all traffic"},
		{rollout.ActionRollback, "roll a rollout back now: its canary's traffic goes to the stable"},
		{rollout.ActionPause, "pause a rollout where it is"},
		{rollout.ActionResume, "resume a paused or failed rollout"},
		{rollout.ActionSkipStep, "skip a rollout's current step"},
	} {
		action := a.action
		cmd := &cobra.Command{
			Use:               action + " [NAMESPACE/]NAME --reason \"…\"",
			Short:             a.short,
			Long:              upperFirst(a.short) + ".\n\nA manual action needs --reason: it is recorded with why and by whom.",
			Example:           "  canary rollout " + action + " caiso/lmp-ingest --reason \"…\"",
			Args:              exactlyOne("the rollout's name"),
			ValidArgsFunction: completeRollouts(f.api, f.namespace),
			RunE: func(cmd *cobra.Command, args []string) error {
				return exit(c.rolloutAction(cmd, f, action, args[0]))
			},
		}
		cmd.Flags().StringVar(&f.reason, "reason", "", "why, for a manual action (required; recorded with who acted)")
		cmd.Flags().BoolVar(&f.watch, "watch", false, "follow the rollout live until it ends")
		_ = cmd.RegisterFlagCompletionFunc("reason", noFiles)
		addOutputFlag(cmd, &f.output)
		group.AddCommand(cmd)
	}
	return group
}

// exactlyOne is an Args that takes one argument, what says.
func exactlyOne(what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("give %s (one argument, got %d)", what, len(args))
		}
		return nil
	}
}

// target is the namespace and name of a rollout argument, [NAMESPACE/]NAME:
// without a namespace, -n's (or CANARY_NAMESPACE), the kubeconfig
// context's, or default.
func (f *rolloutFlags) target(arg string) (namespace, name string) {
	if ns, n, ok := strings.Cut(arg, "/"); ok {
		return ns, n
	}
	return cmp.Or(resolveNamespace(f.namespace()), "default"), arg
}

func (c *cli) newRolloutStartCmd(f *rolloutFlags) *cobra.Command {
	var (
		spec       = rollout.Spec{Params: map[string]string{}}
		steps      string
		params     = paramFlag(spec.Params)
		durs       = map[string]*time.Duration{}
		deployment string
		manifest   string
		imgs       = map[string]string{}
		replicas   int
		shadows    listFlag
	)
	cmd := &cobra.Command{
		Use:   "start --name N --version V --policy P --param k=v ... [flags]",
		Short: "start a rollout, or a whole deploy with --deployment",
		Long: `Start a rollout: canary serve steps the canary's traffic through the policy's
weights, evaluates each step, and promotes or rolls back.

With --deployment the rollout manages the Deployments too: it makes the
canary Deployment from the stable one (with --image or --from-manifest) and
promotes it at the end.`,
		Example: `  canary rollout start --name lmp-ingest --version v2 --policy iso-ingest --param namespace=caiso --param name=lmp-ingest
  canary rollout start --name lmp-ingest --policy iso-ingest --param namespace=caiso --param name=lmp-ingest --deployment caiso/lmp-ingest --image app=registry.example/lmp:v2 --watch`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if deployment != "" || manifest != "" || len(imgs) > 0 {
				d, err := deploymentSpec(deployment, manifest, imgs, replicas)
				if err != nil {
					return exit(c.usageError(cmd, "%v", err))
				}
				spec.Deployment = d
				if spec.Version == "" {
					spec.Version = versionOf(d)
				}
			}
			spec.Shadow = shadows
			if spec.Name == "" || spec.Version == "" || spec.Policy == "" {
				return exit(c.usageError(cmd, "start needs --name, --version (or an --image with a tag) and --policy"))
			}
			var over rollout.Override
			if steps != "" {
				for _, s := range strings.Split(steps, ",") {
					w, err := strconv.Atoi(strings.TrimSpace(s))
					if err != nil {
						return exit(c.usageError(cmd, "--steps: %q is not a weight", s))
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
			spec.Namespace = f.namespace()
			if spec.Namespace == "" && spec.Params["namespace"] == "" {
				// Where kubectl would look; the server falls back to the
				// namespace param, then default.
				spec.Namespace = resolveNamespace("")
			}
			return exit(c.startRollout(cmd, f, spec))
		},
	}
	fs := cmd.Flags()
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
	fs.BoolVar(&f.watch, "watch", false, "follow the rollout live until it ends")
	addOutputFlag(cmd, &f.output)
	c.completePolicyFlags(cmd, &spec.Policy, func() []policyInfo { return c.serverPolicies(f.api) })
	_ = cmd.MarkFlagFilename("from-manifest", "yaml", "yml")
	for _, name := range []string{"name", "version", "group", "steps", "deployment", "image"} {
		_ = cmd.RegisterFlagCompletionFunc(name, noFiles)
	}
	return cmd
}

// startRollout starts spec and prints its status, or with --watch follows
// it.
func (c *cli) startRollout(cmd *cobra.Command, f *rolloutFlags, spec rollout.Spec) int {
	if err := checkOutput(f.output); err != nil {
		return c.usageError(cmd, "%v", err)
	}
	rc, err := f.api.client()
	if err != nil {
		return c.errorf(cmd, "%v", err)
	}
	var st rollout.Status
	if err := rc.do(c.ctx, http.MethodPost, "/v1/rollouts", spec, &st); err != nil {
		return c.errorf(cmd, "%v", err)
	}
	if !f.watch {
		return c.render(cmd, f.output, st, func() { c.printStatus(c.stdout, st) })
	}
	return c.followRollout(cmd, f, st.Namespace+"/"+st.Name)
}

// listRollouts prints the rollouts canary serve runs.
func (c *cli) listRollouts(cmd *cobra.Command, f *rolloutFlags) int {
	if err := checkOutput(f.output); err != nil {
		return c.usageError(cmd, "%v", err)
	}
	rc, err := f.api.client()
	if err != nil {
		return c.errorf(cmd, "%v", err)
	}
	var list struct {
		Rollouts []rollout.Status `json:"rollouts"`
	}
	if err := rc.do(c.ctx, http.MethodGet, "/v1/rollouts", nil, &list); err != nil {
		return c.errorf(cmd, "%v", err)
	}
	if list.Rollouts == nil {
		list.Rollouts = []rollout.Status{}
	}
	var flushErr error
	code := c.render(cmd, f.output, list, func() {
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ROLLOUT\tVERSION\tPHASE\tSTEP\tWEIGHT\tHEALTH")
		for _, st := range list.Rollouts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", st.Namespace+"/"+st.Name, st.Version, st.Status, st.Step, st.Steps, weightBar(st.CurrentWeight), st.HealthStatus)
		}
		flushErr = tw.Flush()
	})
	if flushErr != nil {
		return c.errorf(cmd, "%v", flushErr)
	}
	return code
}

// rolloutAction promotes, rolls back, pauses, resumes or skips a step of
// the rollout arg names, and prints its status or follows it.
func (c *cli) rolloutAction(cmd *cobra.Command, f *rolloutFlags, action, arg string) int {
	if err := checkOutput(f.output); err != nil {
		return c.usageError(cmd, "%v", err)
	}
	if strings.TrimSpace(f.reason) == "" {
		return c.usageError(cmd, "%s needs --reason: manual overrides are recorded with why and by whom", action)
	}
	rc, err := f.api.client()
	if err != nil {
		return c.errorf(cmd, "%v", err)
	}
	ns, name := f.target(arg)
	var st rollout.Status
	if err := rc.do(c.ctx, http.MethodPost, "/v1/rollouts/"+ns+"/"+name+"/"+action, map[string]string{"reason": f.reason}, &st); err != nil {
		return c.errorf(cmd, "%v", err)
	}
	if !f.watch {
		return c.render(cmd, f.output, st, func() { c.printStatus(c.stdout, st) })
	}
	return c.followRollout(cmd, f, ns+"/"+name)
}

// followRollout prints a rollout's status (key is namespace/name), and with
// watch its events as they happen until it ends.
// With -o json or yaml a watch prints no events, only the status it ends
// on.
func (c *cli) followRollout(cmd *cobra.Command, f *rolloutFlags, key string) int {
	if err := checkOutput(f.output); err != nil {
		return c.usageError(cmd, "%v", err)
	}
	rc, err := f.api.client()
	if err != nil {
		return c.errorf(cmd, "%v", err)
	}
	ctx := c.ctx
	table := f.output == outputTable
	started := time.Now()
	seen := 0
	for {
		var st rollout.Status
		if err := rc.do(ctx, http.MethodGet, "/v1/rollouts/"+key, nil, &st); err != nil {
			return c.errorf(cmd, "%v", err)
		}
		if !f.watch {
			return c.render(cmd, f.output, st, func() { c.printStatus(c.stdout, st) })
		}
		if seen > len(st.History) {
			seen = 0 // the history was trimmed
		}
		for _, e := range st.History[seen:] {
			if table {
				fmt.Fprintln(c.stdout, c.eventLine(st.Name, e))
			}
		}
		seen = len(st.History)
		switch {
		case st.Status.Terminal():
			if table {
				c.summary(c.stdout, st, started)
			} else if code := c.render(cmd, f.output, st, nil); code != exitOK {
				return code
			}
			if st.Status == rollout.PhaseRolledBack {
				return exitFail
			}
			return exitOK
		case st.Status == rollout.PhasePaused || st.Status == rollout.PhaseFailed:
			// Nothing changes until a person acts: a watch that went on
			// would hang a CI job for good.
			if table {
				c.summary(c.stdout, st, started)
				fmt.Fprintf(c.stdout, "  waiting for a person: canary rollout resume|rollback %s --reason \"…\"\n", key)
			} else if code := c.render(cmd, f.output, st, nil); code != exitOK {
				return code
			}
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
func (l *listFlag) Type() string   { return "stringArray" }

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
