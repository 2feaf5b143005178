package charts_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/aurum/canary/internal/testkube"
)

// kubeTimeout bounds the requests of one test to the API server.
const kubeTimeout = 2 * time.Minute

// kubeClients returns a dynamic client of the shared cluster and a mapper
// from kinds to resources.
func kubeClients(t *testing.T, c *testkube.Cluster) (*dynamic.DynamicClient, meta.RESTMapper) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(c.Config())
	require.NoError(t, err)
	disc, err := discovery.NewDiscoveryClientForConfig(c.Config())
	require.NoError(t, err)
	return dyn, restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))
}

// apply creates the objects in the cluster, or with dryRun has the API
// server validate them all the way (schema, strict fields, admission)
// without storing them. The prometheus-operator kinds are skipped, and
// logged, when their CRDs are not installed: the test API server has none.
// It returns how many objects the server took.
func apply(t *testing.T, ctx context.Context, dyn *dynamic.DynamicClient, mapper meta.RESTMapper, objs manifests, dryRun bool) int {
	t.Helper()
	opts := metav1.CreateOptions{FieldManager: "charts-test", FieldValidation: metav1.FieldValidationStrict}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	applied := 0
	for _, o := range objs {
		gvk := o.u.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) && gvk.Group == customGroup {
			t.Logf("skipped %s: the prometheus-operator CRDs are not installed on the test API server", o)
			continue
		}
		require.NoError(t, err, "%s", o)
		var ri dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = dyn.Resource(mapping.Resource).Namespace(o.u.GetNamespace())
		}
		_, err = ri.Create(ctx, o.u, opts)
		require.NoError(t, err, "the API server rejected %s", o)
		applied++
	}
	return applied
}

// TestServerSideDryRun sends every manifest of every values file to a real
// kube-apiserver as a server-side dry run, in a fresh namespace: the server
// validates each against its OpenAPI schema, with strict field validation,
// and runs admission, without storing anything.
func TestServerSideDryRun(t *testing.T) {
	c := testkube.Shared(t)
	// Not needed by any manifest, but installed as in production, where
	// the kill switch's HTTPRoutes are served.
	c.InstallGatewayAPI(t)
	dyn, mapper := kubeClients(t, c)
	for _, file := range ciValues(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), kubeTimeout)
			defer cancel()
			ns := c.Namespace(t)
			objs := render(t, "--namespace", ns, "-f", file)
			applied := apply(t, ctx, dyn, mapper, objs, true)
			want := len(objs) - len(objs.all("ServiceMonitor")) - len(objs.all("PrometheusRule"))
			require.Equal(t, want, applied)
		})
	}
}

// TestKillSwitchRBAC creates the chart's ServiceAccount and RBAC for real
// and asks the API server's RBAC authorizer what the service account may
// do: what the traffic routers need, where the values say, and nothing
// else.
func TestKillSwitchRBAC(t *testing.T) {
	c := testkube.Shared(t)
	dyn, mapper := kubeClients(t, c)
	tests := []struct {
		name        string
		clusterWide bool
		deployments bool
	}{
		{name: "release namespace"},
		{name: "cluster wide", clusterWide: true},
		{name: "deployments", deployments: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), kubeTimeout)
			defer cancel()
			ns := c.Namespace(t)
			args := []string{"--namespace", ns, "--set", "rbac.create=true"}
			if tt.clusterWide {
				args = append(args, "--set", "rbac.clusterWide=true")
			}
			if tt.deployments {
				args = append(args, "--set", "rbac.deployments=true")
			}
			var rbac manifests
			for _, o := range render(t, args...) {
				switch o.u.GetKind() {
				case "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding":
					rbac = append(rbac, o)
				}
			}
			require.Len(t, rbac, 3)
			apply(t, ctx, dyn, mapper, rbac, false)

			user := "system:serviceaccount:" + ns + ":" + release
			can := func(verb, group, resource, namespace string) bool {
				sar, err := c.Kubernetes().AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
					Spec: authorizationv1.SubjectAccessReviewSpec{
						User:   user,
						Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
						ResourceAttributes: &authorizationv1.ResourceAttributes{
							Namespace: namespace, Verb: verb, Group: group, Resource: resource,
						},
					},
				}, metav1.CreateOptions{})
				require.NoError(t, err)
				return sar.Status.Allowed
			}
			// The authorizer reads RBAC objects from a cache: wait for
			// the first grant to show.
			require.Eventually(t, func() bool { return can("patch", "networking.k8s.io", "ingresses", ns) },
				30*time.Second, 50*time.Millisecond, "the Role never took effect")

			for _, verb := range []string{"get", "list", "create", "patch"} {
				require.True(t, can(verb, "networking.k8s.io", "ingresses", ns), "%s ingresses", verb)
			}
			for _, verb := range []string{"get", "update"} {
				require.True(t, can(verb, "gateway.networking.k8s.io", "httproutes", ns), "%s httproutes", verb)
			}
			// Nothing more than the routers use.
			require.False(t, can("delete", "networking.k8s.io", "ingresses", ns))
			require.False(t, can("create", "gateway.networking.k8s.io", "httproutes", ns))
			require.False(t, can("patch", "gateway.networking.k8s.io", "httproutes", ns))
			require.False(t, can("get", "", "secrets", ns))
			// Deployments only with rbac.deployments, for the
			// orchestrator's canary and promotion (rollout/deploy).
			for _, verb := range []string{"get", "create", "update"} {
				require.Equal(t, tt.deployments, can(verb, "apps", "deployments", ns), "%s deployments", verb)
			}
			require.Equal(t, tt.deployments, can("list", "argoproj.io", "rollouts", ns))
			require.Equal(t, tt.deployments, can("list", "flagger.app", "canaries", ns))
			require.False(t, can("delete", "apps", "deployments", ns))
			require.False(t, can("patch", "apps", "deployments", ns))
			require.False(t, can("update", "argoproj.io", "rollouts", ns))
			// Other namespaces only cluster wide.
			require.Equal(t, tt.clusterWide, can("patch", "networking.k8s.io", "ingresses", "default"))
			require.Equal(t, tt.clusterWide, can("update", "gateway.networking.k8s.io", "httproutes", "default"))
		})
	}
}

// kubeconfig writes a kubeconfig for the cluster, for helm.
func kubeconfig(t *testing.T, c *testkube.Cluster) string {
	t.Helper()
	cfg := c.Config()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["testkube"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["testkube"] = &clientcmdapi.Context{Cluster: "testkube", AuthInfo: "admin"}
	kc.CurrentContext = "testkube"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*kc, path))
	return path
}

// TestHelmInstallDryRun runs `helm install --dry-run=server` against the
// API server, the way a user first tries the chart, and checks the notes it
// prints.
func TestHelmInstallDryRun(t *testing.T) {
	c := testkube.Shared(t)
	kc := kubeconfig(t, c)
	tests := []struct {
		name    string
		args    []string
		want    []string
		notWant []string
	}{
		{
			name: "defaults",
			want: []string{
				"Aurum Canary is deployed as canary in ",
				"the ConfigMap canary-policies, mounted at /etc/canary/policies (empty: set `policies` or `gitSync`)",
				"analysis, flagger, alertmanager, admin, ui: generated by the chart, in the Secret canary-tokens",
				"get secret canary-tokens -o jsonpath='{.data.admin}' | base64 -d > admin-token",
				`curl -s -H "Authorization: Bearer $(cat admin-token)" http://localhost:8080/v1/policies`,
				"get secret canary-tokens -o jsonpath='{.data.flagger}' | base64 -d",
				"The kill switch has no RBAC from this chart",
				"&revision={{args.revision}}",
				"Bearer {{args.token}}",
				// The Flagger hooks the safe way: both gates, each with the token.
				"{name: analysis, type: rollout, url: \"http://canary.",
				"/v1/flagger/POLICY/check?token=TOKEN\"}",
				"type: confirm-traffic-increase, url: \"http://canary.",
				"type: confirm-promotion, url: \"http://canary.",
				"/v1/flagger/POLICY/gate?token=TOKEN\"}",
				"/v1/flagger/rollback?token=TOKEN\"}",
				"/v1/flagger/events?token=TOKEN\"}",
				"credentials_file: /etc/alertmanager/secrets/canary/token",
				`--reason "market open"`,
				"Only these callers reach the service (networkPolicy): pods in the namespaces argo-rollouts, flagger-system, monitoring.",
			},
			notWant: []string{"WARNING", "https://"},
		},
		{
			name: "secrets and git-sync",
			args: []string{"-f", filepath.Join(chartDir(t), "ci", "secrets-values.yaml"), "-f", filepath.Join(chartDir(t), "ci", "git-sync-values.yaml")},
			want: []string{
				"git@github.com:aurum/canary-policies.git at main, directory policies/prod, synced every 1m",
				"admin: yours, the Secret canary-admin, key tokens",
				"get secret canary-admin -o jsonpath='{.data.tokens}' | base64 -d | awk 'NF && !/^#/ {print $NF; exit}' > admin-token",
				"/v1/flagger/rollback?token=TOKEN",
				"Bearer {{args.token}}",
			},
			notWant: []string{"WARNING", "The kill switch has no RBAC", "generated by the chart"},
		},
		{
			name: "tls",
			// No ServiceMonitor: the test API server has no prometheus-operator CRDs.
			args: []string{"-f", filepath.Join(chartDir(t), "ci", "tls-values.yaml"), "--set", "serviceMonitor.enabled=false"},
			want: []string{
				"Aurum Canary is deployed as canary in ",
				"get secret canary-tls -o jsonpath='{.data.ca\\.crt}' | base64 -d > ca.crt",
				`curl -s --cacert ca.crt -H "Authorization: Bearer $(cat admin-token)" https://localhost:8080/v1/policies`,
				"url: \"https://canary.",
				"/v1/flagger/POLICY/gate?token=TOKEN\"}",
				"- url: https://canary.",
				"tls_config: {ca_file: /etc/alertmanager/secrets/canary/ca.crt}",
				"SSL_CERT_FILE=ca.crt canary runs pause",
				"the 3 peer(s) of networkPolicy.ingressFrom",
			},
			notWant: []string{"http://canary.", "WARNING"},
		},
		{
			name: "notifications",
			args: []string{"-f", filepath.Join(chartDir(t), "ci", "notifications-values.yaml")},
			want: []string{
				"Notifications go through 5 route(s): oncall (alertmanager), team-caiso (slack), team-miso (teams), pipeline-bot (webhook), audit (webhook).",
				"-c canary -- /canary notify test --config /etc/canary/canary.yml --route oncall",
				"networkPolicy.egress.restrict is on: the routes' destinations in the cluster must be in\nnetworkPolicy.egress.to, or",
			},
			notWant: []string{"WARNING", "egress.internet"},
		},
		{
			name: "notifications, egress restricted to the cluster",
			args: []string{"-f", filepath.Join(chartDir(t), "ci", "notifications-values.yaml"), "--set", "networkPolicy.egress.internet.enabled=false"},
			want: []string{
				"and those outside (Slack and Teams, on port 443) need\nnetworkPolicy.egress.internet.enabled, or their notifications wait",
			},
		},
		{
			name: "analysis and flagger open",
			args: []string{"--set", "auth.analysis.open=true", "--set", "auth.flagger.open=true"},
			want: []string{
				"alertmanager, admin, ui: generated by the chart",
				"analysis, flagger: open, no token",
				"WARNING: no bearer token is required on these route groups: analysis, flagger.",
				"/v1/flagger/POLICY/gate\"}",
			},
			notWant: []string{"Bearer {{args.token}}", "?token=", "latch and\nlift"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := c.Namespace(t)
			args := append([]string{"install", release, chartDir(t), "--namespace", ns, "--dry-run=server", "--kubeconfig", kc}, tt.args...)
			out, err := runHelm(t, args...)
			require.NoError(t, err, "%s", out)
			_, notes, ok := strings.Cut(out, "NOTES:\n")
			require.True(t, ok, "helm printed no notes:\n%s", out)
			for _, w := range tt.want {
				require.Contains(t, notes, w)
			}
			for _, w := range tt.notWant {
				require.NotContains(t, notes, w)
			}
		})
	}
}

// TestTokensKeptOnUpgrade installs the chart for real and upgrades it: the
// generated tokens, read back from the cluster with lookup, stay what the
// callers were given, and so does the pod's checksum of them. A token put
// in the Secret by hand is kept too, and the file canary serve reads
// follows it; a group left open loses its token.
func TestTokensKeptOnUpgrade(t *testing.T) {
	c := testkube.Shared(t)
	kc := kubeconfig(t, c)
	ns := c.Namespace(t)
	ctx, cancel := context.WithTimeout(t.Context(), kubeTimeout)
	defer cancel()
	helmRun := func(verb string, args ...string) {
		t.Helper()
		out, err := runHelm(t, append([]string{verb, release, chartDir(t), "--namespace", ns, "--kubeconfig", kc}, args...)...)
		require.NoError(t, err, "%s", out)
	}
	secrets := c.Kubernetes().CoreV1().Secrets(ns)
	state := func() (map[string]string, string) {
		t.Helper()
		s, err := secrets.Get(ctx, release+"-tokens", metav1.GetOptions{})
		require.NoError(t, err)
		data := map[string]string{}
		for k, v := range s.Data {
			data[k] = string(v)
		}
		d, err := c.Kubernetes().AppsV1().Deployments(ns).Get(ctx, release, metav1.GetOptions{})
		require.NoError(t, err)
		return data, d.Spec.Template.Annotations["checksum/tokens"]
	}

	helmRun("install")
	installed, sum := state()
	require.Len(t, installed, 2*len(allGroups))
	for _, g := range allGroups {
		require.Regexp(t, generatedToken, installed[g])
		require.Equal(t, "generated "+installed[g]+"\n", installed[g+".tokens"])
	}

	helmRun("upgrade")
	upgraded, upgradedSum := state()
	require.Equal(t, installed, upgraded, "helm upgrade changed the tokens")
	require.Equal(t, sum, upgradedSum, "helm upgrade would roll the pod for the same tokens")

	// An operator rotates the admin token by hand.
	s, err := secrets.Get(ctx, release+"-tokens", metav1.GetOptions{})
	require.NoError(t, err)
	s.Data["admin"] = []byte("rotated-by-hand-0123456789")
	_, err = secrets.Update(ctx, s, metav1.UpdateOptions{})
	require.NoError(t, err)
	helmRun("upgrade", "--set", "auth.analysis.open=true", "--set", "auth.flagger.open=true")
	rotated, rotatedSum := state()
	require.Equal(t, map[string]string{
		"admin":               "rotated-by-hand-0123456789",
		"admin.tokens":        "generated rotated-by-hand-0123456789\n",
		"alertmanager":        installed["alertmanager"],
		"alertmanager.tokens": installed["alertmanager.tokens"],
		"ui":                  installed["ui"],
		"ui.tokens":           installed["ui.tokens"],
	}, rotated)
	require.NotEqual(t, sum, rotatedSum, "canary serve must restart to read the new token")
}
