package charts_test

import (
	"bufio"
	"cmp"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Paths the chart and the image agree on.
const (
	configFile = "/etc/canary/canary.yml"
	dataDir    = "/var/lib/canary"
	secretsDir = "/etc/canary/secrets/"
)

func TestLint(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		out, err := runHelm(t, "lint", "--strict", chartDir(t))
		require.NoError(t, err, "%s", out)
	})
	for _, file := range ciValues(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			out, err := runHelm(t, "lint", "--strict", chartDir(t), "-f", file)
			require.NoError(t, err, "%s", out)
		})
	}
}

// secretMarker is a secret in the values of testdata and the stand-in
// Secret files: no message, log or rendered ConfigMap may repeat it.
const secretMarker = "s3cr3t"

// TestValuesRejected checks that mistakes in values fail the install with
// an error that names them. Each file in testdata is one mistake; its first
// line is "# error: " and a part of the message helm must print, which
// never repeats a secret of the values (secretMarker).
//   - testdata/schema: unknown keys, wrong types and inline secrets, which
//     values.schema.json rejects, in helm lint too;
//   - testdata/template: contradictions the templates reject with `fail`,
//     which helm lint only logs, so only helm template is checked.
func TestValuesRejected(t *testing.T) {
	for _, kind := range []string{"schema", "template"} {
		files, err := filepath.Glob(filepath.Join("testdata", kind, "*.yaml"))
		require.NoError(t, err)
		require.NotEmpty(t, files)
		for _, file := range files {
			t.Run(kind+"/"+strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
				data, err := os.ReadFile(file)
				require.NoError(t, err)
				first, _, _ := strings.Cut(string(data), "\n")
				want, ok := strings.CutPrefix(first, "# error: ")
				require.True(t, ok, "%s: the first line must be '# error: <message>'", file)
				abs, err := filepath.Abs(file)
				require.NoError(t, err)

				if kind == "schema" {
					out, err := runHelm(t, "lint", "--strict", chartDir(t), "-f", abs)
					require.Error(t, err, "helm lint accepted %s", file)
					require.Contains(t, out, want)
					require.NotContains(t, out, secretMarker, "the message repeats a secret of the values")
				}
				out, err := runHelm(t, "template", release, chartDir(t), "-f", abs)
				require.Error(t, err, "helm template accepted %s", file)
				require.Contains(t, out, want)
				require.NotContains(t, out, secretMarker, "the message repeats a secret of the values")
			})
		}
	}
}

// TestTemplate renders the chart with each values file and checks what
// every rendering must have, then what is particular to the file.
func TestTemplate(t *testing.T) {
	particular := map[string]func(t *testing.T, m manifests){
		"default-values.yaml":       checkDefault,
		"git-sync-values.yaml":      checkGitSync,
		"monitoring-values.yaml":    checkMonitoring,
		"emptydir-values.yaml":      checkEmptyDir,
		"secrets-values.yaml":       checkSecrets,
		"tls-values.yaml":           checkTLS,
		"notifications-values.yaml": checkNotifications,
	}
	files := ciValues(t)
	for _, file := range files {
		check, ok := particular[filepath.Base(file)]
		require.True(t, ok, "no checks for %s: add them to TestTemplate", file)
		t.Run(filepath.Base(file), func(t *testing.T) {
			m := render(t, "-f", file)
			checkCommon(t, m)
			checkClosed(t, m)
			check(t, m)
		})
	}
	t.Run("no values", func(t *testing.T) {
		m := render(t)
		checkCommon(t, m)
		checkClosed(t, m)
		checkDefault(t, m)
	})
}

// checkClosed checks that every route group requires a token and nothing
// lets canary serve start with one open: what a rendering is unless the
// values leave a group open on purpose.
func checkClosed(t *testing.T, m manifests) {
	t.Helper()
	_, cfg := m.canaryYML(t)
	auth, ok := cfg["auth"].(map[string]any)
	require.True(t, ok, "canary.yml has no auth")
	require.NotContains(t, auth, "allowOpen")
	for _, g := range allGroups {
		a, ok := auth[g].(map[string]any)
		require.True(t, ok, "group %s has no token", g)
		require.Len(t, a["tokenFiles"], 1, g)
	}
}

// checkCommon checks what every rendering of the chart must be.
func checkCommon(t *testing.T, m manifests) {
	t.Helper()
	for _, o := range m {
		labels := o.u.GetLabels()
		require.Equal(t, "canary", labels["app.kubernetes.io/name"], "%s", o)
		require.Equal(t, release, labels["app.kubernetes.io/instance"], "%s", o)
		switch o.u.GetKind() {
		case "ClusterRole", "ClusterRoleBinding":
			require.Empty(t, o.u.GetNamespace(), "%s", o)
		default:
			require.NotEmpty(t, o.u.GetNamespace(), "%s: `helm template | kubectl apply` needs the namespace", o)
		}
	}

	d := m.deployment(t)
	require.Equal(t, release, d.Name)
	require.EqualValues(t, 1, *d.Spec.Replicas, "one replica: bbolt locks the store")
	require.Equal(t, "Recreate", string(d.Spec.Strategy.Type))
	pod := d.Spec.Template.Spec
	require.Equal(t, d.Spec.Selector.MatchLabels, subset(d.Spec.Template.Labels, d.Spec.Selector.MatchLabels))

	// Security: the pod and every container, git-sync's included.
	psc := pod.SecurityContext
	require.NotNil(t, psc)
	require.True(t, *psc.RunAsNonRoot)
	require.EqualValues(t, 65532, *psc.RunAsUser)
	require.EqualValues(t, 65532, *psc.FSGroup)
	require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, psc.SeccompProfile.Type)
	for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
		sc := c.SecurityContext
		require.NotNil(t, sc, "container %s", c.Name)
		require.False(t, *sc.AllowPrivilegeEscalation, "container %s", c.Name)
		require.True(t, *sc.ReadOnlyRootFilesystem, "container %s", c.Name)
		require.True(t, *sc.RunAsNonRoot, "container %s", c.Name)
		require.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, "container %s", c.Name)
		require.Empty(t, sc.Capabilities.Add, "container %s", c.Name)
		require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, sc.SeccompProfile.Type, "container %s", c.Name)
		require.NotEmpty(t, c.Resources.Requests, "container %s", c.Name)
		require.False(t, c.Resources.Limits.Memory().IsZero(), "container %s has no memory limit", c.Name)
	}

	c := container(t, pod, "canary")
	require.Equal(t, "ghcr.io/aurum/canary:"+chartMeta(t).AppVersion, c.Image, "the default tag is the chart's appVersion")
	require.Equal(t, []string{"serve", "--config", configFile}, c.Args[:3])
	// The port, and the probes' scheme, follow canary.yml's tls: HTTPS
	// only when canary serve serves it.
	_, served := m.canaryYML(t)
	portName, scheme := "http", corev1.URISchemeHTTP
	if _, ok := served["tls"]; ok {
		portName, scheme = "https", corev1.URISchemeHTTPS
	}
	require.Equal(t, []corev1.ContainerPort{{Name: portName, ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}, c.Ports)
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		require.Equal(t, intstr.FromString(portName), p.HTTPGet.Port)
		require.Equal(t, scheme, cmp.Or(p.HTTPGet.Scheme, corev1.URISchemeHTTP))
	}
	require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	require.Greater(t, *pod.TerminationGracePeriodSeconds, int64(25), "above config.shutdownTimeout")

	// Every mount has its volume and every volume is mounted.
	mounted := map[string]bool{}
	for _, ctr := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
		for _, vm := range ctr.VolumeMounts {
			volume(t, pod, vm.Name)
			mounted[vm.Name] = true
		}
	}
	for _, v := range pod.Volumes {
		require.True(t, mounted[v.Name], "volume %s is not mounted", v.Name)
		if v.Secret != nil {
			require.EqualValues(t, 0o440, *v.Secret.DefaultMode, "secret volume %s", v.Name)
		}
	}

	// canary.yml: mounted where the args say, from the chart's ConfigMap.
	cfgMount, ok := mountAt(c, configFile)
	require.True(t, ok)
	require.Equal(t, "canary.yml", cfgMount.SubPath)
	require.True(t, cfgMount.ReadOnly)
	require.Equal(t, release, volume(t, pod, cfgMount.Name).ConfigMap.Name)
	require.NotEmpty(t, d.Spec.Template.Annotations["checksum/config"], "a change of canary.yml must roll the pod")

	text, cfg := m.canaryYML(t)
	allowed := []string{"listen", "policies", "dataDir", "history", "bodyLimit", "shutdownTimeout", "reloadInterval",
		"log", "evaluation", "flagger", "auth", "kubeconfig", "prometheus", "kafka", "postgres", "probes", "cache",
		"tls", "historyFlush", "runRetention", "latchedRunRetention", "maxRuns", "notifications"}
	for k := range cfg {
		require.Contains(t, allowed, k, "canary.yml key %q is not in serveConfig", k)
	}
	require.Equal(t, ":8080", cfg["listen"])
	require.Equal(t, dataDir, cfg["dataDir"])
	for _, k := range []string{"history", "bodyLimit", "shutdownTimeout", "reloadInterval", "log", "evaluation", "cache", "flagger", "probes", "prometheus"} {
		require.Contains(t, cfg, k)
	}
	dataMount, ok := mountAt(c, dataDir)
	require.True(t, ok, "the data dir is a volume: the root filesystem is read-only")
	require.False(t, dataMount.ReadOnly)

	// Every policy path is inside a mount.
	policies, ok := cfg["policies"].([]any)
	require.True(t, ok)
	require.NotEmpty(t, policies)
	for _, p := range policies {
		path := p.(string)
		require.True(t, slices.ContainsFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool {
			return path == vm.MountPath || strings.HasPrefix(path, vm.MountPath+"/")
		}), "policy path %s is not in a mount", path)
	}

	// No secret in canary.yml: only files, each the key of a mounted Secret.
	for _, k := range keysIn(cfg) {
		require.NotContains(t, []string{"password", "credentials", "bearer_token", "dsn", "client_secret", "key", "ca", "cert"}, k,
			"canary.yml holds a secret inline:\n%s", text)
	}
	for _, s := range stringsIn(cfg) {
		rel, ok := strings.CutPrefix(s, secretsDir)
		if !ok {
			continue
		}
		vol, file, ok := strings.Cut(rel, "/")
		require.True(t, ok, "%s", s)
		vm, ok := mountAt(c, secretsDir+vol)
		require.True(t, ok, "canary.yml names %s, but nothing is mounted at %s", s, secretsDir+vol)
		require.True(t, vm.ReadOnly)
		v := volume(t, pod, vm.Name)
		require.NotNil(t, v.Secret, "%s is not a Secret", vm.Name)
		require.True(t, slices.ContainsFunc(v.Secret.Items, func(k corev1.KeyToPath) bool { return k.Path == file }),
			"Secret volume %s has no item %s", vm.Name, file)
	}

	// The Service reaches the pod, the ServiceAccount is the pod's.
	svc, ok := m.get(t, "Service", release).typed.(*corev1.Service)
	require.True(t, ok)
	require.Equal(t, svc.Spec.Selector, subset(d.Spec.Template.Labels, svc.Spec.Selector))
	require.Equal(t, portName, svc.Spec.Ports[0].Name)
	require.Equal(t, intstr.FromString(portName), svc.Spec.Ports[0].TargetPort)
	for _, o := range m.all("NetworkPolicy") {
		np := o.typed.(*networkingv1.NetworkPolicy)
		for _, in := range np.Spec.Ingress {
			for _, p := range in.Ports {
				require.Equal(t, intstr.FromString(portName), *p.Port, "the NetworkPolicy lets in the service's port")
			}
		}
	}
	sa, ok := m.get(t, "ServiceAccount", pod.ServiceAccountName).typed.(*corev1.ServiceAccount)
	require.True(t, ok)
	require.Equal(t, *sa.AutomountServiceAccountToken, *pod.AutomountServiceAccountToken)
	require.Equal(t, len(m.all("Role"))+len(m.all("ClusterRole")) > 0, *pod.AutomountServiceAccountToken,
		"the token is mounted exactly when the chart grants RBAC")
}

// subset returns the entries of m whose keys are in keys.
func subset(m, keys map[string]string) map[string]string {
	out := map[string]string{}
	for k := range keys {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return out
}

func checkDefault(t *testing.T, m manifests) {
	pod := m.deployment(t).Spec.Template.Spec
	require.Len(t, pod.Containers, 1)
	require.Empty(t, pod.InitContainers)
	// The run store on a claim of the chart.
	data := volume(t, pod, "data")
	require.NotNil(t, data.PersistentVolumeClaim)
	pvc, ok := m.get(t, "PersistentVolumeClaim", data.PersistentVolumeClaim.ClaimName).typed.(*corev1.PersistentVolumeClaim)
	require.True(t, ok)
	require.Equal(t, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, pvc.Spec.AccessModes)
	// Policies from the chart's ConfigMap, mounted as a directory (a
	// subPath mount would not see updates).
	_, cfg := m.canaryYML(t)
	require.Equal(t, []any{"/etc/canary/policies"}, cfg["policies"])
	vm, ok := mountAt(container(t, pod, "canary"), "/etc/canary/policies")
	require.True(t, ok)
	require.Empty(t, vm.SubPath)
	require.Equal(t, "canary-policies", volume(t, pod, vm.Name).ConfigMap.Name)
	require.True(t, m.has("ConfigMap", "canary-policies"))
	// Nothing optional.
	for _, kind := range []string{"Role", "ClusterRole", "ServiceMonitor", "PrometheusRule", "PodDisruptionBudget"} {
		require.Empty(t, m.all(kind), kind)
	}
	// But a NetworkPolicy: the callers' namespaces in, to the service's
	// port only; egress left open.
	np, ok := m.get(t, "NetworkPolicy", release).typed.(*networkingv1.NetworkPolicy)
	require.True(t, ok)
	require.Equal(t, m.deployment(t).Spec.Selector.MatchLabels, np.Spec.PodSelector.MatchLabels)
	require.Equal(t, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}, np.Spec.PolicyTypes)
	require.Len(t, np.Spec.Ingress, 1)
	require.Equal(t, []networkingv1.NetworkPolicyPeer{
		{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "argo-rollouts"}}},
		{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "flagger-system"}}},
		{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}}},
	}, np.Spec.Ingress[0].From)
	tcp := corev1.ProtocolTCP
	port := intstr.FromString("http")
	require.Equal(t, []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}}, np.Spec.Ingress[0].Ports)
	require.Empty(t, np.Spec.Egress)
	require.False(t, m.has("ConfigMap", "canary-dashboards"))
	require.Equal(t, []any{map[string]any{"name": "", "url": "http://prometheus-operated.monitoring.svc:9090", "timeout": "10s"}}, cfg["prometheus"])
	// The run store's retention and batching, as values.yaml documents.
	require.Equal(t, "100ms", cfg["historyFlush"])
	require.Equal(t, "14d", cfg["runRetention"])
	require.Equal(t, "90d", cfg["latchedRunRetention"])
	require.NotContains(t, cfg, "maxRuns", "0 is the service's default: not written")
	require.Equal(t, map[string]any{"hosts": []any{}, "namespaces": []any{}}, cfg["probes"].(map[string]any)["allow"])
	// Closed: a generated token for every group, nothing left open.
	checkGeneratedTokens(t, m, allGroups...)
	auth := cfg["auth"].(map[string]any)
	require.NotContains(t, auth, "allowOpen")
	require.Len(t, auth, len(allGroups))
}

// allGroups are canary serve's route groups.
var allGroups = []string{"analysis", "flagger", "alertmanager", "admin", "ui"}

// generatedToken is what the chart generates: randAlphaNum 40.
var generatedToken = regexp.MustCompile(`^[A-Za-z0-9]{40}$`)

// checkGeneratedTokens checks that the chart generated a token for each of
// the groups, and only for them, in the Secret <fullname>-tokens: the key
// <group> holds the token for callers, <group>.tokens the file canary
// serve reads, which names it; that file is mounted and named in
// canary.yml as the group's token file; the pod's checksum/tokens changes
// with the tokens. It returns the tokens by group.
func checkGeneratedTokens(t *testing.T, m manifests, groups ...string) map[string]string {
	t.Helper()
	if len(groups) == 0 {
		require.False(t, m.has("Secret", release+"-tokens"), "no group needs a generated token")
		require.NotContains(t, m.deployment(t).Spec.Template.Annotations, "checksum/tokens")
		return nil
	}
	secret, ok := m.get(t, "Secret", release+"-tokens").typed.(*corev1.Secret)
	require.True(t, ok)
	require.Len(t, secret.Data, 2*len(groups))
	pod := m.deployment(t).Spec.Template.Spec
	c := container(t, pod, "canary")
	_, cfg := m.canaryYML(t)
	auth := cfg["auth"].(map[string]any)
	tokens := map[string]string{}
	for _, g := range groups {
		tok := string(secret.Data[g])
		require.Regexp(t, generatedToken, tok, "group %s", g)
		require.Equal(t, "generated "+tok+"\n", string(secret.Data[g+".tokens"]), "group %s: one NAME TOKEN line", g)
		for other, o := range tokens {
			require.NotEqual(t, o, tok, "groups %s and %s share a token", g, other)
		}
		tokens[g] = tok

		file := secretsDir + "auth-" + g + "/tokens"
		require.Equal(t, map[string]any{"tokenFiles": []any{file}}, auth[g], g)
		v := volume(t, pod, "auth-"+g)
		require.Equal(t, release+"-tokens", v.Secret.SecretName)
		require.Equal(t, []corev1.KeyToPath{{Key: g + ".tokens", Path: "tokens"}}, v.Secret.Items)
		_, ok := mountAt(c, secretsDir+"auth-"+g)
		require.True(t, ok)
	}
	require.NotEmpty(t, m.deployment(t).Spec.Template.Annotations["checksum/tokens"],
		"canary serve reads its tokens once: a new token must roll the pod")
	return tokens
}

// TestAuth renders the auth values: an explicit Secret wins over a
// generated token and over open, analysis and flagger may be left open,
// alertmanager and admin only with allowOpenRoutes (the refusals are in
// testdata/template).
func TestAuth(t *testing.T) {
	tests := []struct {
		name      string
		set       []string
		generated []string
		secrets   map[string]string // group -> its own Secret
		open      []string
		allowOpen bool
	}{
		{
			name:      "an explicit Secret wins",
			set:       []string{"auth.admin.existingSecret=ops-tokens", "auth.admin.open=true", "auth.flagger.existingSecret=flagger-tokens"},
			generated: []string{"analysis", "alertmanager", "ui"},
			secrets:   map[string]string{"admin": "ops-tokens", "flagger": "flagger-tokens"},
		},
		{
			name:      "every group with a Secret: nothing generated",
			set:       []string{"auth.analysis.existingSecret=a", "auth.flagger.existingSecret=f", "auth.alertmanager.existingSecret=m", "auth.admin.existingSecret=o", "auth.ui.existingSecret=u"},
			secrets:   map[string]string{"analysis": "a", "flagger": "f", "alertmanager": "m", "admin": "o", "ui": "u"},
			generated: nil,
		},
		{
			name:      "analysis and flagger open",
			set:       []string{"auth.analysis.open=true", "auth.flagger.open=true"},
			generated: []string{"alertmanager", "admin", "ui"},
			open:      []string{"analysis", "flagger"},
		},
		{
			name:      "admin open with allowOpenRoutes",
			set:       []string{"auth.admin.open=true", "auth.allowOpenRoutes=true"},
			generated: []string{"analysis", "flagger", "alertmanager", "ui"},
			open:      []string{"admin"},
			allowOpen: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var args []string
			for _, s := range tt.set {
				args = append(args, "--set", s)
			}
			m := render(t, args...)
			checkCommon(t, m)
			checkGeneratedTokens(t, m, tt.generated...)
			pod := m.deployment(t).Spec.Template.Spec
			_, cfg := m.canaryYML(t)
			auth, _ := cfg["auth"].(map[string]any)
			for g, name := range tt.secrets {
				v := volume(t, pod, "auth-"+g)
				require.Equal(t, name, v.Secret.SecretName, g)
				require.Equal(t, []corev1.KeyToPath{{Key: "tokens", Path: "tokens"}}, v.Secret.Items, g)
				require.Equal(t, map[string]any{"tokenFiles": []any{secretsDir + "auth-" + g + "/tokens"}}, auth[g], g)
			}
			for _, g := range tt.open {
				require.NotContains(t, auth, g, "an open group has no token file")
				require.False(t, slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == "auth-"+g }), g)
			}
			if tt.allowOpen {
				require.Equal(t, true, auth["allowOpen"])
			} else {
				require.NotContains(t, auth, "allowOpen")
			}
		})
	}

	// Without a cluster there is no Secret to read back: every render
	// makes new tokens (what README says of helm template and Argo CD).
	t.Run("helm template generates anew", func(t *testing.T) {
		a := checkGeneratedTokens(t, render(t), allGroups...)
		b := checkGeneratedTokens(t, render(t), allGroups...)
		for _, g := range allGroups {
			require.NotEqual(t, a[g], b[g], g)
		}
	})
}

func checkGitSync(t *testing.T, m manifests) {
	pod := m.deployment(t).Spec.Template.Spec
	sync := container(t, pod, "git-sync")
	initSync := container(t, pod, "git-sync-init")
	require.Len(t, pod.InitContainers, 1)
	require.Len(t, pod.Containers, 2)
	for _, c := range []corev1.Container{sync, initSync} {
		require.Equal(t, "registry.k8s.io/git-sync/git-sync:v4.5.1", c.Image)
		require.Subset(t, c.Args, []string{
			"--repo=git@github.com:aurum/canary-policies.git", "--ref=main", "--period=1m", "--depth=1",
			"--root=/git", "--link=checkout",
		})
		// Its own user, which its image's /etc/passwd names (SSH needs it).
		require.EqualValues(t, 65533, *c.SecurityContext.RunAsUser)
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
		require.Equal(t, "/etc/git-secret/ssh/ssh", env["GITSYNC_SSH_KEY_FILE"])
		require.Equal(t, "/etc/git-secret/ssh/known_hosts", env["GITSYNC_SSH_KNOWN_HOSTS_FILE"])
		require.Equal(t, "true", env["GITSYNC_SSH_KNOWN_HOSTS"])
		vm, ok := mountAt(c, "/etc/git-secret/ssh")
		require.True(t, ok)
		require.Equal(t, "canary-git-ssh", volume(t, pod, vm.Name).Secret.SecretName)
		gitMount, ok := mountAt(c, "/git")
		require.True(t, ok)
		require.False(t, gitMount.ReadOnly)
		_, ok = mountAt(c, "/tmp")
		require.True(t, ok, "git-sync's HOME is /tmp, on a read-only root filesystem")
	}
	require.Contains(t, initSync.Args, "--one-time")
	require.NotContains(t, sync.Args, "--one-time")
	require.NotNil(t, volume(t, pod, "git").EmptyDir)

	canary := container(t, pod, "canary")
	gitMount, ok := mountAt(canary, "/git")
	require.True(t, ok)
	require.True(t, gitMount.ReadOnly)
	// The checkout's directory with a trailing slash: the link itself is a
	// symlink, which the policy loader would walk as a file.
	_, cfg := m.canaryYML(t)
	require.Equal(t, []any{"/etc/canary/policies", "/git/checkout/policies/prod/"}, cfg["policies"])

	// A Role in the release namespace.
	roles := m.all("Role")
	require.Len(t, roles, 1)
	require.Equal(t, namespace, roles[0].u.GetNamespace())
	checkKillSwitchRules(t, roles[0].typed.(*rbacv1.Role).Rules)
	rb, ok := m.get(t, "RoleBinding", release).typed.(*rbacv1.RoleBinding)
	require.True(t, ok)
	require.Equal(t, rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: release}, rb.RoleRef)
	require.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: pod.ServiceAccountName, Namespace: namespace}}, rb.Subjects)
	require.True(t, *pod.AutomountServiceAccountToken)
}

// checkKillSwitchRules checks that the rules grant what the routers do and
// nothing more.
func checkKillSwitchRules(t *testing.T, rules []rbacv1.PolicyRule) {
	t.Helper()
	require.Equal(t, []rbacv1.PolicyRule{
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses"}, Verbs: []string{"get", "list", "create", "patch"}},
		{APIGroups: []string{"gateway.networking.k8s.io"}, Resources: []string{"httproutes"}, Verbs: []string{"get", "update"}},
	}, rules)
}

func checkMonitoring(t *testing.T, m manifests) {
	pod := m.deployment(t).Spec.Template.Spec

	// Cluster-wide RBAC, named after the namespace too.
	require.Empty(t, m.all("Role"))
	cr, ok := m.get(t, "ClusterRole", "canary-canary").typed.(*rbacv1.ClusterRole)
	require.True(t, ok)
	checkKillSwitchRules(t, cr.Rules)
	crb, ok := m.get(t, "ClusterRoleBinding", "canary-canary").typed.(*rbacv1.ClusterRoleBinding)
	require.True(t, ok)
	require.Equal(t, "ClusterRole", crb.RoleRef.Kind)
	require.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: pod.ServiceAccountName, Namespace: namespace}}, crb.Subjects)

	// ServiceMonitor: the Service's http port, /metrics.
	sm := m.get(t, "ServiceMonitor", release).u
	require.Equal(t, "monitoring.coreos.com/v1", sm.GetAPIVersion())
	require.Equal(t, "kube-prometheus-stack", sm.GetLabels()["release"])
	endpoints, ok, err := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	require.NoError(t, err)
	require.True(t, ok)
	require.Len(t, endpoints, 1)
	ep := endpoints[0].(map[string]any)
	require.Equal(t, "http", ep["port"])
	require.Equal(t, "/metrics", ep["path"])
	require.NotContains(t, ep, "scheme")
	require.NotContains(t, ep, "tlsConfig")
	require.Equal(t, "30s", ep["interval"])
	sel, _, err := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	require.NoError(t, err)
	svc := m.get(t, "Service", release).u
	require.Equal(t, sel, subset(svc.GetLabels(), sel), "the ServiceMonitor selects the Service")
	ns, _, err := unstructured.NestedStringSlice(sm.Object, "spec", "namespaceSelector", "matchNames")
	require.NoError(t, err)
	require.Equal(t, []string{namespace}, ns)

	// PrometheusRule: the alerts, each with severity and the team label.
	rule := m.get(t, "PrometheusRule", release).u
	require.Equal(t, "monitoring.coreos.com/v1", rule.GetAPIVersion())
	alerts := alertRules(t, rule)
	require.ElementsMatch(t, []string{"CanaryPolicyReloadFailing", "CanaryQueryErrorsHigh", "CanaryStoreErrors",
		"CanaryTrafficCutFailed", "CanaryDown"}, keys(alerts))
	for name, a := range alerts {
		labels := a["labels"].(map[string]any)
		require.Contains(t, []any{"warning", "critical"}, labels["severity"], name)
		require.Equal(t, "data-platform", labels["team"], name)
		require.Contains(t, a["expr"], `job="canary",namespace="canary"`, name)
		require.NotEmpty(t, a["annotations"].(map[string]any)["description"], name)
	}
	require.Contains(t, alerts["CanaryQueryErrorsHigh"]["expr"], "> 0.1")

	// PodDisruptionBudget over the pod.
	pdb, ok := m.get(t, "PodDisruptionBudget", release).typed.(*policyv1.PodDisruptionBudget)
	require.True(t, ok)
	require.Equal(t, intstr.FromInt32(1), *pdb.Spec.MinAvailable)
	require.Equal(t, pdb.Spec.Selector.MatchLabels, subset(m.deployment(t).Spec.Template.Labels, pdb.Spec.Selector.MatchLabels))

	// NetworkPolicy: the callers' namespaces and the extra peer in, DNS and
	// the given rules out.
	np, ok := m.get(t, "NetworkPolicy", release).typed.(*networkingv1.NetworkPolicy)
	require.True(t, ok)
	require.ElementsMatch(t, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}, np.Spec.PolicyTypes)
	require.Len(t, np.Spec.Ingress, 1)
	var from []string
	for _, peer := range np.Spec.Ingress[0].From {
		if peer.NamespaceSelector != nil {
			from = append(from, peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"])
		} else {
			from = append(from, "pods "+peer.PodSelector.MatchLabels["app.kubernetes.io/name"])
		}
	}
	require.Equal(t, []string{"argo-rollouts", "flagger-system", "monitoring", "pods canary-cli"}, from)
	require.Equal(t, intstr.FromString("http"), *np.Spec.Ingress[0].Ports[0].Port)
	require.Len(t, np.Spec.Egress, 3, "DNS and the two rules of the values")
	require.EqualValues(t, 53, np.Spec.Egress[0].Ports[0].Port.IntValue())

	// The dashboards, labelled for Grafana's sidecar, as they are on disk.
	dash := m.configMap(t, "canary-dashboards")
	require.Equal(t, "1", dash.Labels["grafana_dashboard"])
	require.Equal(t, "Aurum", dash.Annotations["grafana_folder"])
	files, err := filepath.Glob(filepath.Join(chartDir(t), "dashboards", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	require.Len(t, dash.Data, len(files))
	for _, f := range files {
		want, err := os.ReadFile(f)
		require.NoError(t, err)
		require.JSONEq(t, string(want), dash.Data[filepath.Base(f)])
	}
}

// alertRules returns the PrometheusRule's alerting rules by name.
func alertRules(t testing.TB, rule *unstructured.Unstructured) map[string]map[string]any {
	t.Helper()
	groups, ok, err := unstructured.NestedSlice(rule.Object, "spec", "groups")
	require.NoError(t, err)
	require.True(t, ok)
	out := map[string]map[string]any{}
	for _, g := range groups {
		rules, ok := g.(map[string]any)["rules"].([]any)
		require.True(t, ok)
		for _, r := range rules {
			r := r.(map[string]any)
			out[r["alert"].(string)] = r
		}
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// checkTLS checks HTTPS: the certificate's Secret mounted and named in
// canary.yml, the probes and the ServiceMonitor on HTTPS (checkCommon checks
// the port's name), and the NetworkPolicy's peers of the values.
func checkTLS(t *testing.T, m manifests) {
	pod := m.deployment(t).Spec.Template.Spec
	c := container(t, pod, "canary")
	_, cfg := m.canaryYML(t)
	require.Equal(t, map[string]any{"certFile": secretsDir + "tls/tls.crt", "keyFile": secretsDir + "tls/tls.key"}, cfg["tls"])
	v := volume(t, pod, "tls")
	require.Equal(t, "canary-tls", v.Secret.SecretName)
	require.Equal(t, []corev1.KeyToPath{{Key: "tls.crt", Path: "tls.crt"}, {Key: "tls.key", Path: "tls.key"}}, v.Secret.Items)
	vm, ok := mountAt(c, secretsDir+"tls")
	require.True(t, ok)
	require.Empty(t, vm.SubPath, "a subPath mount would not see cert-manager's renewals")
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		require.Equal(t, corev1.URISchemeHTTPS, p.HTTPGet.Scheme)
	}

	sm := m.get(t, "ServiceMonitor", release).u
	endpoints, _, err := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	require.NoError(t, err)
	require.Len(t, endpoints, 1)
	ep := endpoints[0].(map[string]any)
	require.Equal(t, "https", ep["port"])
	require.Equal(t, "https", ep["scheme"])
	require.Equal(t, map[string]any{
		"ca":         map[string]any{"secret": map[string]any{"name": "canary-tls", "key": "ca.crt"}},
		"serverName": "canary.canary.svc",
	}, ep["tlsConfig"])

	np, ok := m.get(t, "NetworkPolicy", release).typed.(*networkingv1.NetworkPolicy)
	require.True(t, ok)
	require.Len(t, np.Spec.Ingress, 1)
	var from []string
	for _, peer := range np.Spec.Ingress[0].From {
		require.NotNil(t, peer.NamespaceSelector)
		require.NotNil(t, peer.PodSelector, "only the callers' pods")
		from = append(from, peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"])
	}
	require.Equal(t, []string{"argo-rollouts", "flagger-system", "monitoring"}, from)
}

func checkEmptyDir(t *testing.T, m manifests) {
	pod := m.deployment(t).Spec.Template.Spec
	data := volume(t, pod, "data")
	require.Nil(t, data.PersistentVolumeClaim)
	require.NotNil(t, data.EmptyDir)
	require.Equal(t, "256Mi", data.EmptyDir.SizeLimit.String())
	require.Empty(t, m.all("PersistentVolumeClaim"))
	_, cfg := m.canaryYML(t)
	require.Equal(t, map[string]any{"level": "debug", "format": "json"}, cfg["log"])
	require.Equal(t, 500, cfg["maxRuns"])
	require.Equal(t, "3d", cfg["runRetention"])
	require.Equal(t, map[string]any{"hosts": []any{"status.example.com", "10.0.0.0/8"}, "namespaces": []any{"caiso", "pjm"}},
		cfg["probes"].(map[string]any)["allow"])
	require.Equal(t, []any{map[string]any{"name": "", "url": "http://prometheus-operated.monitoring.svc:9090", "maxBytes": 4194304}}, cfg["prometheus"])
}

func checkSecrets(t *testing.T, m manifests) {
	// Every group has a Secret of its own: none is generated.
	checkGeneratedTokens(t, m)
	pod := m.deployment(t).Spec.Template.Spec
	c := container(t, pod, "canary")
	_, cfg := m.canaryYML(t)

	// Bearer tokens per route group, each from its Secret's key.
	want := map[string][2]string{
		"analysis":     {"canary-tokens", "argo"},
		"flagger":      {"canary-tokens", "flagger"},
		"alertmanager": {"canary-tokens", "alertmanager"},
		"admin":        {"canary-admin", "tokens"},
		"ui":           {"canary-admin", "tokens"},
	}
	auth := cfg["auth"].(map[string]any)
	require.Len(t, auth, len(want))
	for group, secret := range want {
		file := secretsDir + "auth-" + group + "/tokens"
		require.Equal(t, map[string]any{"tokenFiles": []any{file}}, auth[group], group)
		v := volume(t, pod, "auth-"+group)
		require.Equal(t, secret[0], v.Secret.SecretName)
		require.Equal(t, []corev1.KeyToPath{{Key: secret[1], Path: "tokens"}}, v.Secret.Items)
	}

	proms := cfg["prometheus"].([]any)
	require.Len(t, proms, 2)
	require.Equal(t, map[string]any{
		"name": "", "url": "https://prometheus.monitoring.svc:9090", "timeout": "15s", "retries": 2,
		"http": map[string]any{
			"authorization": map[string]any{"type": "Bearer", "credentials_file": secretsDir + "prometheus-0-token/token"},
			"tls_config":    map[string]any{"ca_file": secretsDir + "prometheus-0-tls/ca.crt", "server_name": "prometheus.monitoring.svc"},
		},
	}, proms[0])
	require.Equal(t, map[string]any{
		"name": "eu", "url": "https://prometheus-eu.example.net",
		"http": map[string]any{
			"basic_auth":       map[string]any{"username": "canary", "password_file": secretsDir + "prometheus-1-password/password"},
			"follow_redirects": false,
		},
	}, proms[1])

	require.Equal(t, []any{map[string]any{
		"name": "main", "brokers": []any{"kafka-0.kafka.kafka.svc:9093", "kafka-1.kafka.kafka.svc:9093"},
		"version": "3.6.0", "timeout": "10s",
		"sasl": map[string]any{"mechanism": "SCRAM-SHA-512", "username": "canary", "passwordFile": secretsDir + "kafka-0-password/password"},
		"tls":  map[string]any{"ca_file": secretsDir + "kafka-0-tls/ca.crt", "insecure_skip_verify": false},
	}}, cfg["kafka"])

	// One DSN as a file, one as the variable the service reads for the
	// database's name.
	require.Equal(t, []any{
		map[string]any{"name": "warehouse", "dsnFile": secretsDir + "postgres-0-dsn/dsn", "timeout": "5s", "maxConns": 4},
		map[string]any{"name": "market-data.eu"},
	}, cfg["postgres"])
	require.Equal(t, []corev1.EnvVar{{
		Name: "CANARY_POSTGRES_MARKET_DATA_EU_DSN",
		ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "market-data-dsn"}, Key: "dsn",
		}},
	}}, c.Env)
}

// checkNotifications checks the routes of notifications-values.yaml: each
// secret a Secret item, mounted under notify-<index>-<what> and named in
// canary.yml by file; everything else as the values give it.
func checkNotifications(t *testing.T, m manifests) {
	pod := m.deployment(t).Spec.Template.Spec
	text, cfg := m.canaryYML(t)
	file := func(volume, path string) string { return secretsDir + volume + "/" + path }
	require.Equal(t, map[string]any{
		"link": "https://canary.example.com",
		"routes": []any{
			map[string]any{
				"name": "oncall", "severities": []any{"critical"},
				"alertmanager": map[string]any{
					"url": "https://alertmanager-operated.monitoring.svc:9093",
					"http": map[string]any{
						"authorization": map[string]any{"type": "Bearer", "credentials_file": file("notify-0-token", "token")},
						"tls_config":    map[string]any{"ca_file": file("notify-0-tls", "ca.crt"), "server_name": "alertmanager-operated.monitoring.svc"},
					},
				},
			},
			map[string]any{
				"name": "team-caiso", "namespaces": []any{"caiso"},
				"kinds":    []any{"rollback_latched", "rollback_done", "analysis_failed", "degraded"},
				"template": "{{ .Summary }} ({{ .Policy }}): {{ .Reason }}",
				"slack":    map[string]any{"urlFile": file("notify-1-url", "url")},
			},
			map[string]any{
				"name": "team-miso", "namespaces": []any{"miso"},
				"teams": map[string]any{"urlFile": file("notify-2-url", "url")},
			},
			map[string]any{
				"name": "pipeline-bot", "policies": []any{"iso-ingest"}, "sendResolved": false,
				"rateLimit": map[string]any{"every": "1s", "burst": 10},
				"webhook":   map[string]any{"urlFile": file("notify-3-url", "url"), "secretFile": file("notify-3-hmac", "hmac")},
			},
			map[string]any{
				"name": "audit", "kinds": []any{"rollback_latched", "rollback_done", "promoted", "rollout_completed"},
				// A URL without a token may stay inline; its key not.
				"webhook": map[string]any{"url": "http://audit.audit.svc:8080/hooks/canary", "secretFile": file("notify-4-hmac", "hmac")},
			},
		},
	}, cfg["notifications"], "%s", text)

	// Each Secret item where canary.yml looks for it; checkCommon checks
	// that every file canary.yml names is mounted.
	for volumeName, want := range map[string]struct {
		secret string
		items  []corev1.KeyToPath
	}{
		"notify-0-token": {"alertmanager-canary", []corev1.KeyToPath{{Key: "token", Path: "token"}}},
		"notify-0-tls":   {"alertmanager-ca", []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}},
		"notify-1-url":   {"canary-slack", []corev1.KeyToPath{{Key: "caiso", Path: "url"}}},
		"notify-2-url":   {"canary-teams", []corev1.KeyToPath{{Key: "url", Path: "url"}}},
		"notify-3-url":   {"pipeline-bot", []corev1.KeyToPath{{Key: "url", Path: "url"}}},
		"notify-3-hmac":  {"pipeline-bot", []corev1.KeyToPath{{Key: "hmac-key", Path: "hmac"}}},
		"notify-4-hmac":  {"audit-hmac", []corev1.KeyToPath{{Key: "hmac", Path: "hmac"}}},
	} {
		v := volume(t, pod, volumeName)
		require.NotNil(t, v.Secret, volumeName)
		require.Equal(t, want.secret, v.Secret.SecretName, volumeName)
		require.Equal(t, want.items, v.Secret.Items, volumeName)
	}
	require.Len(t, slices.DeleteFunc(slices.Clone(pod.Volumes), func(v corev1.Volume) bool { return !strings.HasPrefix(v.Name, "notify-") }), 7,
		"a volume per Secret item the routes read, and no other")

	// Egress restricted: DNS, Alertmanager and the audit service by
	// egress.to, Slack, Teams and the bot by egress.internet.
	np, ok := m.get(t, "NetworkPolicy", release).typed.(*networkingv1.NetworkPolicy)
	require.True(t, ok)
	require.Contains(t, np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
	require.Len(t, np.Spec.Egress, 4, "DNS, the two rules of egress.to, the internet")
	require.Equal(t, internetRule([]int32{443}, []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}), np.Spec.Egress[3])
}

// internetRule is the egress rule of networkPolicy.egress.internet: the
// ports to every IPv4 address but except.
func internetRule(ports []int32, except []string) networkingv1.NetworkPolicyEgressRule {
	tcp := corev1.ProtocolTCP
	rule := networkingv1.NetworkPolicyEgressRule{
		To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: except}}},
	}
	for _, p := range ports {
		port := intstr.FromInt32(p)
		rule.Ports = append(rule.Ports, networkingv1.NetworkPolicyPort{Protocol: &tcp, Port: &port})
	}
	return rule
}

// TestEgressInternet renders networkPolicy.egress.internet: a rule only
// when egress is restricted (open egress needs none), with the given ports
// and ranges.
func TestEgressInternet(t *testing.T) {
	tests := []struct {
		name string
		set  []string
		want []networkingv1.NetworkPolicyEgressRule // after DNS; nil: egress not restricted
	}{
		{
			name: "egress open: no rule",
			set:  []string{"networkPolicy.egress.internet.enabled=true"},
		},
		{
			name: "restricted, internet off",
			set:  []string{"networkPolicy.egress.restrict=true"},
			want: []networkingv1.NetworkPolicyEgressRule{},
		},
		{
			name: "restricted, internet on",
			set:  []string{"networkPolicy.egress.restrict=true", "networkPolicy.egress.internet.enabled=true"},
			want: []networkingv1.NetworkPolicyEgressRule{internetRule([]int32{443}, []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"})},
		},
		{
			name: "ports and ranges of the values",
			set: []string{"networkPolicy.egress.restrict=true", "networkPolicy.egress.internet.enabled=true",
				"networkPolicy.egress.internet.ports={443,8443}", "networkPolicy.egress.internet.except={10.0.0.0/8,100.64.0.0/10}"},
			want: []networkingv1.NetworkPolicyEgressRule{internetRule([]int32{443, 8443}, []string{"10.0.0.0/8", "100.64.0.0/10"})},
		},
		{
			name: "no range left out",
			set: []string{"networkPolicy.egress.restrict=true", "networkPolicy.egress.internet.enabled=true",
				"networkPolicy.egress.internet.except=null"},
			want: []networkingv1.NetworkPolicyEgressRule{internetRule([]int32{443}, nil)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var args []string
			for _, s := range tt.set {
				args = append(args, "--set", s)
			}
			m := render(t, args...)
			checkCommon(t, m)
			np, ok := m.get(t, "NetworkPolicy", release).typed.(*networkingv1.NetworkPolicy)
			require.True(t, ok)
			if tt.want == nil {
				require.Equal(t, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}, np.Spec.PolicyTypes)
				require.Empty(t, np.Spec.Egress)
				return
			}
			require.Contains(t, np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
			require.NotEmpty(t, np.Spec.Egress)
			require.EqualValues(t, 53, np.Spec.Egress[0].Ports[0].Port.IntValue(), "DNS first")
			require.Equal(t, tt.want, np.Spec.Egress[1:])
		})
	}
}

// TestRenderedConfigLoads has the real canary load each rendered canary.yml:
// `canary eval --config` decodes it as `canary serve` does (strictly, every
// key), builds every source it names (reading the Secret files, and the DSN
// variables the Deployment sets), then evaluates a policy; `canary check
// --config` builds every notification route it names. The paths of
// canary.yml are moved into a temporary directory, where each Secret file
// it names is made with a stand-in value.
func TestRenderedConfigLoads(t *testing.T) {
	root := repoRoot(t)
	bin := canary(t)
	for _, file := range append([]string{""}, ciValues(t)...) {
		name := filepath.Base(file)
		var args []string
		if file == "" {
			name = "no values"
		} else {
			args = []string{"-f", file}
		}
		t.Run(name, func(t *testing.T) {
			m := render(t, args...)
			text, _ := m.canaryYML(t)
			dir := t.TempDir()
			text = strings.NewReplacer("/etc/canary/", dir+"/etc/canary/", dataDir, dir+dataDir, "/git/", dir+"/git/").Replace(text)
			cfgPath := filepath.Join(dir, "etc", "canary", "canary.yml")
			require.NoError(t, os.MkdirAll(filepath.Dir(cfgPath), 0o755))
			require.NoError(t, os.WriteFile(cfgPath, []byte(text), 0o644))

			var cfg map[string]any
			require.NoError(t, yaml.Unmarshal([]byte(text), &cfg))
			standIn := standIns(t)
			for _, s := range stringsIn(cfg) {
				if !strings.HasPrefix(s, dir+secretsDir) {
					continue
				}
				content := standIn[filepath.Base(s)]
				require.NotEmpty(t, content, "no stand-in for %s", s)
				require.NoError(t, os.MkdirAll(filepath.Dir(s), 0o755))
				require.NoError(t, os.WriteFile(s, []byte(content), 0o600))
			}

			cmd := exec.Command(bin, "eval", "--config", cfgPath,
				"--policies", filepath.Join(root, "examples", "policies"),
				"--series", filepath.Join(root, "examples", "series", "caiso-healthy.yaml"),
				"--policy", "iso-ingest", "--param", "namespace=caiso", "--param", "name=lmp-ingest")
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "CANARY_") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			for _, e := range container(t, m.deployment(t).Spec.Template.Spec, "canary").Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					cmd.Env = append(cmd.Env, e.Name+"=postgres://canary@127.0.0.1:1/"+e.ValueFrom.SecretKeyRef.Name)
				}
			}
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "canary eval with the rendered canary.yml:\n%s\n%s", out, text)
			require.Contains(t, string(out), "verdict pass")

			// canary check --config builds the notification routes as
			// canary serve does (Secret files read, templates tried), and
			// checks a policy against the configured sources.
			check := exec.Command(bin, "check", "--config", cfgPath, filepath.Join(root, "examples", "policies", "iso-ingest.yaml"))
			check.Env = cmd.Env
			out, err = check.CombinedOutput()
			require.NoError(t, err, "canary check --config with the rendered canary.yml:\n%s\n%s", out, text)
			require.Contains(t, string(out), "SUCCESS")
			require.NotContains(t, string(out), secretMarker)
		})
	}
}

// selfSigned returns a PEM certificate and its key, for the TLS files the
// sources read when they are built, and for canary serve's own HTTPS: it
// names 127.0.0.1 and the chart's Service, and is its own CA.
func selfSigned(t testing.TB) (cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "charts-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{release + "." + namespace + ".svc"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(priv)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

// TestRenderedPoliciesLoad renders the example policies with --set-file, as
// the README shows, and has `canary check` load the ConfigMap's files.
func TestRenderedPoliciesLoad(t *testing.T) {
	root := repoRoot(t)
	files, err := filepath.Glob(filepath.Join(root, "examples", "policies", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var args []string
	for _, f := range files {
		args = append(args, "--set-file", "policies."+strings.ReplaceAll(filepath.Base(f), ".", `\.`)+"="+f)
	}
	args = append(args, "-f", filepath.Join(chartDir(t), "ci", "default-values.yaml"))
	cm := render(t, args...).configMap(t, "canary-policies")
	require.Len(t, cm.Data, len(files)+1, "the examples and the policy of default-values.yaml")

	dir := t.TempDir()
	for name, content := range cm.Data {
		if strings.HasPrefix(name, "ingest") {
			continue
		}
		want, err := os.ReadFile(filepath.Join(root, "examples", "policies", name))
		require.NoError(t, err)
		require.Equal(t, string(want), content, "%s changed on its way through the chart", name)
	}
	for name, content := range cm.Data {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	out, err := exec.Command(canary(t), "check", dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "SUCCESS")
}

// TestValuesTable checks the README's table of values against values.yaml:
// every leaf key documented, with its default, and nothing documented that
// does not exist. A leaf is a value that is not a map, or an empty map.
func TestValuesTable(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartDir(t), "values.yaml"))
	require.NoError(t, err)
	var values map[string]any
	require.NoError(t, yaml.Unmarshal(data, &values))
	leaves := map[string]any{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			key := k
			if prefix != "" {
				key = prefix + "." + k
			}
			if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
				walk(key, sub)
				continue
			}
			leaves[key] = v
		}
	}
	walk("", values)

	readme, err := os.Open(filepath.Join(chartDir(t), "README.md"))
	require.NoError(t, err)
	defer readme.Close()
	documented := map[string]string{}
	var order []string
	inValues := false
	sc := bufio.NewScanner(readme)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			inValues = line == "## Values"
			continue
		}
		if !inValues || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		require.GreaterOrEqual(t, len(cells), 3, "row %q: want | key | default | description |", line)
		key := strings.Trim(strings.TrimSpace(cells[0]), "`")
		_, dup := documented[key]
		require.False(t, dup, "%s is documented twice", key)
		documented[key] = strings.Trim(strings.TrimSpace(cells[1]), "`")
		order = append(order, key)
	}
	require.NoError(t, sc.Err())

	for key := range documented {
		_, ok := leaves[key]
		require.True(t, ok, "README documents %s, which values.yaml does not have", key)
	}
	for key, v := range leaves {
		def, ok := documented[key]
		require.True(t, ok, "values.yaml has %s, which README's table does not document", key)
		var got any
		require.NoError(t, json.Unmarshal([]byte(def), &got), "%s: the default %q is not JSON", key, def)
		wantJSON, err := json.Marshal(v)
		require.NoError(t, err)
		var want any
		require.NoError(t, json.Unmarshal(wantJSON, &want))
		require.True(t, reflect.DeepEqual(want, got), "%s: README says %s, values.yaml has %s", key, def, wantJSON)
	}
	require.True(t, slices.IsSorted(indexes(order, leafOrder(t, data))), "README's table is in values.yaml's order")
}

// leafOrder returns the leaf keys of values.yaml in the file's order.
func leafOrder(t testing.TB, data []byte) []string {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal(data, &doc))
	var out []string
	var walk func(prefix string, n *yaml.Node)
	walk = func(prefix string, n *yaml.Node) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if prefix != "" {
				key = prefix + "." + key
			}
			if v := n.Content[i+1]; v.Kind == yaml.MappingNode && len(v.Content) > 0 {
				walk(key, v)
				continue
			}
			out = append(out, key)
		}
	}
	walk("", doc.Content[0])
	return out
}

func indexes(keys, order []string) []int {
	var out []int
	for _, k := range keys {
		out = append(out, slices.Index(order, k))
	}
	return out
}
