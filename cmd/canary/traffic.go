package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aurum/canary/traffic"
	"github.com/aurum/canary/traffic/routers"
)

// trafficFlags are the flags of `canary traffic set|reset|status`.
type trafficFlags struct {
	router, ingress, httpRoute, kubeconfig string
	stable, canary, prefix                 string
	takeOver                               bool
	weight, total                          int
	header, headerValue, headerPattern     string
	userHeader, idFormat                   string
	userShare                              float64
	digits                                 int
	cookie                                 string
	geoHeader, countries                   string
	output                                 string
	// note is where set writes what it rounded.
	note io.Writer
}

func (c *cli) newTrafficCmd() *cobra.Command {
	f := &trafficFlags{note: c.stderr}
	group := c.newGroup("traffic", "move canary traffic: weights, headers, user shares, cookies, countries",
		`Move canary traffic by hand, as the orchestrator and the kill switch do: a
weight, a header, a share of user IDs, a cookie or countries, through
ingress-nginx's canary annotations or a Gateway API HTTPRoute.

The exit code is 0 when done, 1 when refused or failed.`,
		`  canary traffic set --ingress caiso/lmp-ingest --canary-service lmp-ingest-canary --weight 20
  canary traffic set --router gatewayapi --httproute caiso/lmp-ingest --stable-service lmp-ingest --canary-service lmp-ingest-canary --weight 5
  canary traffic reset --ingress caiso/lmp-ingest --canary-service lmp-ingest-canary`)
	fs := group.PersistentFlags()
	fs.StringVar(&f.router, "router", routers.KindNginx, "router: "+strings.Join(routers.Kinds, " or "))
	fs.StringVar(&f.ingress, "ingress", "", "the stable Ingress, namespace/name (nginx)")
	fs.StringVar(&f.httpRoute, "httproute", "", "the HTTPRoute, namespace/name (gatewayapi)")
	fs.StringVar(&f.stable, "stable-service", "", "the stable Service (nginx: found from the Ingress when it has one backend)")
	fs.StringVar(&f.canary, "canary-service", "", "the canary Service")
	fs.StringVar(&f.prefix, "annotation-prefix", "", "ingress-nginx annotation prefix (default nginx.ingress.kubernetes.io)")
	fs.BoolVar(&f.takeOver, "take-over", false, "change objects another controller (Argo Rollouts, Flagger) manages")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster, $KUBECONFIG or ~/.kube/config)")
	_ = group.RegisterFlagCompletionFunc("router", cobra.FixedCompletions(routers.Kinds, cobra.ShellCompDirectiveNoFileComp))
	for _, name := range []string{"ingress", "httproute", "stable-service", "canary-service", "annotation-prefix"} {
		_ = group.RegisterFlagCompletionFunc(name, noFiles)
	}

	for _, a := range []struct{ action, short string }{
		{"set", "route canary traffic: a weight, and a header, user share, cookie or countries"},
		{"reset", "send no traffic to the canary and remove its routing"},
		{"status", "print the canary's traffic"},
	} {
		action := a.action
		cmd := &cobra.Command{
			Use:   action + " (--ingress NS/NAME | --router gatewayapi --httproute NS/NAME --stable-service SVC) --canary-service SVC [flags]",
			Short: a.short,
			Long: upperFirst(a.short) + `.

With the nginx router (the default) the target is the stable Ingress, --ingress,
whose stable Service is found when it routes to one; with gatewayapi it is the
HTTPRoute, --httproute, with --stable-service.`,
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error { return exit(c.traffic(cmd, f, action)) },
		}
		addOutputFlag(cmd, &f.output)
		cmd.Example = "  canary traffic " + action + " --ingress caiso/lmp-ingest --canary-service lmp-ingest-canary -o yaml"
		if action == "set" {
			cmd.Example = `  canary traffic set --ingress caiso/lmp-ingest --canary-service lmp-ingest-canary --weight 20
  canary traffic set --ingress caiso/lmp-ingest --canary-service lmp-ingest-canary --user-header X-User-Id --user-share 10`
			f.addSetFlags(cmd)
		}
		group.AddCommand(cmd)
	}
	return group
}

// addSetFlags adds the flags of traffic set: what the step routes.
func (f *trafficFlags) addSetFlags(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.IntVar(&f.weight, "weight", 0, "canary weight, out of --total")
	fs.IntVar(&f.total, "total", 0, "weight meaning all traffic (default 100; 1000 for tenths of a percent)")
	fs.StringVar(&f.header, "header", "", "route requests with this header to the canary")
	fs.StringVar(&f.headerValue, "header-value", "", "... when the header has exactly this value")
	fs.StringVar(&f.headerPattern, "header-pattern", "", "... when the header matches this regex")
	fs.StringVar(&f.userHeader, "user-header", "", "header carrying the user ID, for --user-share")
	fs.Float64Var(&f.userShare, "user-share", 0, "percent of user IDs to route to the canary, always the same users")
	fs.StringVar(&f.idFormat, "id-format", string(traffic.IDNumeric), "user ID format: numeric or hex (UUIDs)")
	fs.IntVar(&f.digits, "digits", 2, "trailing ID digits that pick a user's bucket: 2 or 3 (finer shares)")
	fs.StringVar(&f.cookie, "cookie", "", "route requests whose cookie of this name is \"always\" to the canary, with sticky sessions")
	fs.StringVar(&f.geoHeader, "geo-header", "CF-IPCountry", "header carrying the country or region set by the edge, for --countries")
	fs.StringVar(&f.countries, "countries", "", "route requests from these countries or regions, comma-separated (US,CA)")
	_ = cmd.RegisterFlagCompletionFunc("id-format", cobra.FixedCompletions([]string{string(traffic.IDNumeric), "hex"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("digits", cobra.FixedCompletions([]string{"2", "3"}, cobra.ShellCompDirectiveNoFileComp))
	for _, name := range []string{"weight", "total", "header", "header-value", "header-pattern", "user-header", "user-share", "cookie", "geo-header", "countries"} {
		_ = cmd.RegisterFlagCompletionFunc(name, noFiles)
	}
}

// traffic sets, resets or reads the canary's traffic and prints it.
func (c *cli) traffic(cmd *cobra.Command, f *trafficFlags, action string) int {
	ctx := c.ctx
	if err := checkOutput(f.output); err != nil {
		return c.usageError(cmd, "%v", err)
	}
	var (
		step traffic.Step
		err  error
	)
	if action == "set" {
		if step, err = f.step(); err != nil {
			return c.usageError(cmd, "%v", err)
		}
	}
	cfg, err := kubeConfig(f.kubeconfig)
	if err != nil {
		return c.errorf(cmd, "%v", err)
	}
	clients, err := newKubeClients(cfg)
	if err != nil {
		return c.errorf(cmd, "%v", err)
	}
	spec, err := f.spec(ctx, clients.Clients)
	if err != nil {
		return c.usageError(cmd, "%v", err)
	}
	r, err := routers.New(spec, clients.Clients, slog.New(slog.DiscardHandler))
	if err != nil {
		return c.errorf(cmd, "%v", err)
	}
	switch action {
	case "set":
		err = r.Apply(ctx, step)
	case "reset":
		err = r.Reset(ctx)
	}
	if err != nil {
		return c.errorf(cmd, "%v", err)
	}
	st, err := r.State(ctx)
	if err != nil {
		return c.errorf(cmd, "%v", err)
	}
	return c.render(cmd, f.output, st, func() { printTrafficState(c.stdout, st) })
}

// step builds the step the flags describe; the router checks what it can
// express.
func (f *trafficFlags) step() (traffic.Step, error) {
	s := traffic.Step{Weight: f.weight, Total: f.total}
	var matches []*traffic.Match
	if f.header != "" {
		matches = append(matches, &traffic.Match{Strategy: traffic.StrategyHeader, Header: f.header, Value: f.headerValue, Pattern: f.headerPattern})
	}
	if f.userShare > 0 {
		if f.userHeader == "" {
			return s, fmt.Errorf("--user-share needs --user-header")
		}
		pattern, actual, err := traffic.UserIDPattern(traffic.IDFormat(f.idFormat), f.userShare, f.digits)
		if err != nil {
			return s, err
		}
		if actual != f.userShare {
			fmt.Fprintf(f.note, "note: %v%% of users asked; the nearest share the buckets give is %v%%\n", f.userShare, actual)
		}
		matches = append(matches, &traffic.Match{Strategy: traffic.StrategyUserID, Header: f.userHeader, Pattern: pattern})
	}
	if f.cookie != "" {
		matches = append(matches, &traffic.Match{Strategy: traffic.StrategyCookie, Cookie: f.cookie})
	}
	if f.countries != "" {
		pattern, err := traffic.GeoPattern(strings.Split(f.countries, ","))
		if err != nil {
			return s, err
		}
		matches = append(matches, &traffic.Match{Strategy: traffic.StrategyGeo, Header: f.geoHeader, Pattern: pattern})
	}
	switch len(matches) {
	case 0:
	case 1:
		s.Match = matches[0]
	default:
		return s, fmt.Errorf("give one of --header, --user-share, --cookie and --countries: a step has one match")
	}
	return s, s.Validate()
}

// spec turns the flags into a router spec, finding the stable Service of a
// single-backend Ingress when it was not given.
func (f *trafficFlags) spec(ctx context.Context, clients routers.Clients) (routers.Target, error) {
	spec := routers.Target{Router: f.router, StableService: f.stable, CanaryService: f.canary,
		AnnotationPrefix: f.prefix, TakeOver: f.takeOver}
	target := f.ingress
	if f.router == routers.KindGatewayAPI {
		target = f.httpRoute
	}
	ns, name, ok := strings.Cut(target, "/")
	if !ok || ns == "" || name == "" {
		return spec, fmt.Errorf("give the %s as namespace/name", map[bool]string{true: "--httproute", false: "--ingress"}[f.router == routers.KindGatewayAPI])
	}
	spec.Namespace, spec.Ingress = ns, name
	if f.router == routers.KindGatewayAPI {
		spec.Ingress, spec.HTTPRoute = "", name
	}
	if spec.CanaryService == "" {
		return spec, fmt.Errorf("--canary-service is required")
	}
	if spec.StableService == "" && f.router == routers.KindNginx && clients.Ingresses != nil {
		ing, err := clients.Ingresses(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return spec, fmt.Errorf("ingress %s: %w", target, err)
		}
		services := map[string]bool{}
		for _, r := range ing.Spec.Rules {
			if r.HTTP == nil {
				continue
			}
			for _, p := range r.HTTP.Paths {
				if p.Backend.Service != nil {
					services[p.Backend.Service.Name] = true
				}
			}
		}
		if len(services) != 1 {
			return spec, fmt.Errorf("ingress %s routes to %d services: give --stable-service", target, len(services))
		}
		for s := range services {
			spec.StableService = s
		}
	}
	if spec.StableService == "" {
		return spec, fmt.Errorf("--stable-service is required")
	}
	return spec, nil
}

func printTrafficState(w io.Writer, st traffic.State) {
	objects := strings.Join(st.Objects, ", ")
	if !st.Enabled {
		fmt.Fprintf(w, "%s: no traffic to the canary\n", objects)
		return
	}
	total := st.Total
	if total == 0 {
		total = 100
	}
	fmt.Fprintf(w, "%s: canary weight %d/%d (%.4g%%)", objects, st.Weight, total, st.Percent())
	if m := st.Match; m != nil {
		switch {
		case m.Cookie != "":
			fmt.Fprintf(w, ", and requests with cookie %s=always", m.Cookie)
		case m.Value != "":
			fmt.Fprintf(w, ", and requests with %s: %s", m.Header, m.Value)
		default:
			fmt.Fprintf(w, ", and requests whose %s matches %s", m.Header, m.Pattern)
		}
	}
	fmt.Fprintln(w)
}
