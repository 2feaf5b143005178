// Package testkube runs a real Kubernetes API server for tests.
//
// The traffic routers change Ingress and HTTPRoute objects; a fake clientset
// accepts any patch, while the real kube-apiserver checks it against the
// schema, the CRD's validation rules and resourceVersions, as production
// does. So tests talk to a kube-apiserver and an etcd over the wire. There
// is no controller manager and no node: objects are stored, validated and
// served, and nothing acts on them, which is all a router needs.
//
// kube-apiserver has no Debian package; scripts/kube-apiserver.sh builds it
// from the Go module proxy (about 15 minutes, once) and caches it outside
// the repository. Start finds it there, or at the path in the
// KUBE_APISERVER environment variable. etcd comes from the Debian package
// etcd-server.
//
// A cluster takes a few seconds to start, so a test binary usually shares
// one: a package calls Main from its TestMain and Shared from its tests,
// and gives each test its own namespace with Namespace. Start gives a test
// a cluster of its own, for example to stop it.
package testkube

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/aurum/canary/internal/testproc"
)

const (
	// kubeVersion is the kube-apiserver that scripts/kube-apiserver.sh
	// builds by default, the one that matches client-go.
	kubeVersion = "1.37.2"
	// startTimeout bounds one attempt to start etcd and kube-apiserver and
	// see them ready. Both take about 3 s together on an idle machine; the
	// margin is for a loaded CI machine running other test binaries.
	startTimeout = 2 * time.Minute
	// startAttempts is how many sets of fresh ports start tries. Picking a
	// free port and handing it to another process is racy; a retry makes a
	// clash harmless.
	startAttempts = 3
	// requestTimeout bounds the helpers' own requests, such as creating a
	// namespace.
	requestTimeout = 30 * time.Second
	// pollInterval is how often readiness is checked. Cheap requests to
	// 127.0.0.1; a short interval takes little off every start.
	pollInterval = 20 * time.Millisecond
	// serviceRange is the range kube-apiserver allocates Service cluster IPs
	// from. Only an allocation range: no traffic goes there.
	serviceRange = "10.0.0.0/24"
	// serviceIP is the cluster IP of the kubernetes Service, the first one
	// in serviceRange.
	serviceIP = "10.0.0.1"
	// adminUser is the user of the bearer token that Config uses.
	adminUser = "testkube-admin"
)

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	config    *rest.Config
	kube      kubernetes.Interface
	gateway   versioned.Interface
	etcd      *process
	apiserver *process

	// gatewayMu guards installed, the CRD sets installed (see
	// installCRDs).
	gatewayMu sync.Mutex
	installed map[string]bool
}

// Start runs an etcd and a kube-apiserver on free ports of 127.0.0.1, each
// with a fresh directory, and returns once the API server is ready. They
// are stopped when the test ends. It fails the test when a binary is
// missing: a skipped test would look like a passing one.
//
// Most tests should use Shared instead, which starts one cluster for the
// whole test binary.
func Start(t testing.TB) *Cluster {
	t.Helper()
	bins, err := findBinaries()
	if err != nil {
		t.Fatalf("%v", err)
	}
	c, err := start(bins, t.TempDir())
	if err != nil {
		t.Fatalf("start kube-apiserver: %v", err)
	}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("%s", c.Output())
		}
	})
	return c
}

// binaries are the paths of the programs a cluster runs.
type binaries struct {
	apiserver string
	etcd      string
}

// findBinaries finds kube-apiserver and etcd, or says how to install the
// one that is missing.
func findBinaries() (binaries, error) {
	apiserver, err := findAPIServer()
	if err != nil {
		return binaries{}, err
	}
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		return binaries{}, fmt.Errorf("etcd not found: install the Debian package `etcd-server` (make test does): %w", err)
	}
	return binaries{apiserver: apiserver, etcd: etcd}, nil
}

// findAPIServer returns $KUBE_APISERVER when set, and else the binary that
// scripts/kube-apiserver.sh caches.
func findAPIServer() (string, error) {
	if path := os.Getenv("KUBE_APISERVER"); path != "" {
		if err := executable(path); err != nil {
			return "", fmt.Errorf("KUBE_APISERVER=%s: %w", path, err)
		}
		return path, nil
	}
	path, err := cachedAPIServer()
	if err == nil {
		err = executable(path)
	}
	if err != nil {
		return "", fmt.Errorf("kube-apiserver v%s not found: build it with scripts/kube-apiserver.sh (make test runs it), "+
			"or set KUBE_APISERVER to a kube-apiserver binary: %w", kubeVersion, err)
	}
	return path, nil
}

// cachedAPIServer is where scripts/kube-apiserver.sh puts the binary. It
// follows the script's ${XDG_CACHE_HOME:-$HOME/.cache} rather than
// os.UserCacheDir, which differs from it on macOS.
func cachedAPIServer() (string, error) {
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home := os.Getenv("HOME")
		if home == "" {
			return "", errors.New("neither XDG_CACHE_HOME nor HOME is set")
		}
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "aurum-canary", "kube-apiserver-v"+kubeVersion, "kube-apiserver"), nil
}

// executable checks that path is a regular file that may be executed.
func executable(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

// start starts a cluster in dir, with fresh ports for every attempt.
func start(bins binaries, dir string) (*Cluster, error) {
	var errs []error
	for attempt := range startAttempts {
		c, err := startOnce(bins, filepath.Join(dir, strconv.Itoa(attempt)))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		// Only a port taken between FreePorts and the bind is worth another
		// try; anything else would fail the same way again, slowly.
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// startOnce starts etcd, then kube-apiserver, and waits until the API server
// is ready. On failure it kills what it started and puts the output of both
// into the error.
func startOnce(bins binaries, dir string) (c *Cluster, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ports, err := testproc.FreePorts(3)
	if err != nil {
		return nil, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	host := "https://127.0.0.1:" + strconv.Itoa(ports[2])

	ctx, cancel := context.WithTimeoutCause(context.Background(), startTimeout,
		fmt.Errorf("startup took longer than %s", startTimeout))
	defer cancel()

	etcdArgs := []string{
		"--name=testkube",
		"--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=" + etcdURL,
		"--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=testkube=" + peerURL,
		// A single member still waits for an election timeout before it
		// elects itself: with the defaults (100 ms, 1000 ms) etcd is
		// healthy after about 0.55 s, with these after about 0.09 s. With
		// no other member, nothing can time out later.
		"--heartbeat-interval=10",
		"--election-timeout=100",
	}
	if etcdNoFsync(bins.etcd) {
		// Tests only: a crash loses nothing that matters.
		etcdArgs = append(etcdArgs, "--unsafe-no-fsync")
	}
	etcd, err := startProcess("etcd", bins.etcd, etcdArgs...)
	if err != nil {
		return nil, err
	}
	c = &Cluster{etcd: etcd}
	defer func() {
		if err != nil {
			c.Stop()
			err = fmt.Errorf("%w\n%s", err, c.Output())
		}
	}()

	// Written while etcd starts up.
	caPEM, err := writePKI(dir)
	if err != nil {
		return c, err
	}
	token := rand.Text()
	tokens := filepath.Join(dir, "tokens.csv")
	// token,user,uid,"groups": system:masters may do anything, whatever
	// the RBAC rules say.
	line := fmt.Sprintf("%s,%s,%s,\"system:masters\"\n", token, adminUser, adminUser)
	if err := os.WriteFile(tokens, []byte(line), 0o600); err != nil {
		return c, fmt.Errorf("write token file: %w", err)
	}

	if err := etcd.waitFor(ctx, "healthy", func(ctx context.Context) error {
		return etcdHealthy(ctx, etcdURL)
	}); err != nil {
		return c, err
	}

	c.apiserver, err = startProcess("kube-apiserver", bins.apiserver,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports[2]),
		"--tls-cert-file="+filepath.Join(dir, servingCertFile),
		"--tls-private-key-file="+filepath.Join(dir, servingKeyFile),
		// Unused with the files above; kept in the test's directory so
		// that nothing is ever written to /var/run/kubernetes.
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--token-auth-file="+tokens,
		"--authorization-mode=RBAC",
		// Required: kube-apiserver refuses to start without an issuer and
		// a key to sign service-account tokens with.
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+filepath.Join(dir, saPubFile),
		"--service-account-signing-key-file="+filepath.Join(dir, saKeyFile),
		"--service-cluster-ip-range="+serviceRange,
		// Required with a loopback advertise address: the default reconciler
		// would publish it in the kubernetes Service's Endpoints, so
		// kube-apiserver refuses to start ("may not be in the loopback
		// range").
		"--endpoint-reconciler-type=none",
		// The ServiceAccount admission plugin waits for the default service
		// account of a namespace, which only kube-controller-manager
		// creates: without this, creating a Pod would fail.
		"--disable-admission-plugins=ServiceAccount",
		"--profiling=false",
	)
	if err != nil {
		return c, err
	}

	c.config = &rest.Config{
		Host:            host,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: caPEM},
		// No client-side rate limit: the default (5 requests/s, bursts of
		// 10) would slow tests down, and there is nobody to protect.
		QPS:       -1,
		UserAgent: "testkube",
	}
	httpClient, err := rest.HTTPClientFor(c.config)
	if err != nil {
		return c, fmt.Errorf("client for %s: %w", host, err)
	}
	if err := c.apiserver.waitFor(ctx, "ready", func(ctx context.Context) error {
		if err := etcd.alive(); err != nil {
			return err
		}
		return apiserverReady(ctx, httpClient, host)
	}); err != nil {
		return c, err
	}
	if c.kube, err = kubernetes.NewForConfigAndClient(c.config, httpClient); err != nil {
		return c, fmt.Errorf("kubernetes client: %w", err)
	}
	if c.gateway, err = versioned.NewForConfigAndClient(c.config, httpClient); err != nil {
		return c, fmt.Errorf("gateway client: %w", err)
	}
	return c, nil
}

// etcdNoFsync reports whether this etcd has --unsafe-no-fsync, which came in
// etcd 3.5. Debian 12 ships etcd 3.4, which refuses unknown flags.
func etcdNoFsync(bin string) bool {
	// Both streams, as the help text has moved between them across
	// versions; on an error the flag is left out, which is always safe.
	out, _ := exec.Command(bin, "--help").CombinedOutput()
	return strings.Contains(string(out), "--unsafe-no-fsync")
}

// etcdHealthy asks etcd's /health, which answers 200 and
// {"health":"true"} once the member has a leader.
func etcdHealthy(ctx context.Context, url string) error {
	body, err := get(ctx, http.DefaultClient, url+"/health")
	if err != nil {
		return err
	}
	if !strings.Contains(body, `"health":"true"`) {
		return fmt.Errorf("/health: %s", body)
	}
	return nil
}

// apiserverReady asks kube-apiserver's /readyz, which answers 200 once
// etcd is reachable, the caches are filled and the post-start hooks, such
// as the bootstrap RBAC roles, are done. It also waits for the default
// namespace, which a controller of the server creates on its own schedule:
// a test may put objects there right after Start.
func apiserverReady(ctx context.Context, client *http.Client, host string) error {
	if _, err := get(ctx, client, host+"/readyz"); err != nil {
		return err
	}
	_, err := get(ctx, client, host+"/api/v1/namespaces/default")
	return err
}

// get fetches url and returns its body, or an error unless it answers 200.
func get(ctx context.Context, client *http.Client, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	// A failing /readyz lists every check; a few KiB are plenty.
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}

// Config is a client configuration for the cluster as an administrator (a
// bearer token of a member of system:masters), trusting the cluster's CA
// and without a client-side rate limit. Each call returns a new copy, which
// the caller may change.
func (c *Cluster) Config() *rest.Config { return rest.CopyConfig(c.config) }

// Kubernetes is a client of the built-in APIs (Namespaces, Services,
// Ingresses, ...) as an administrator.
func (c *Cluster) Kubernetes() kubernetes.Interface { return c.kube }

// Gateway is a client of the Gateway API (HTTPRoutes, ...) as an
// administrator. Its resources are served once InstallGatewayAPI has run.
func (c *Cluster) Gateway() versioned.Interface { return c.gateway }

// Stop kills kube-apiserver, then etcd, and waits for both to exit. Tests
// call it to simulate an outage; requests then fail with a refused
// connection. Calling it again is a no-op. A test must not stop the cluster
// that Shared returns: the other tests of the binary use it too.
func (c *Cluster) Stop() {
	// kube-apiserver first: without etcd it would only log errors until it
	// is killed too.
	if c.apiserver != nil {
		c.apiserver.Stop()
	}
	c.etcd.Stop()
}

// Output is what etcd and kube-apiserver printed so far.
func (c *Cluster) Output() string {
	var b strings.Builder
	fmt.Fprintf(&b, "etcd output:\n%s", c.etcd.Output())
	if c.apiserver != nil {
		fmt.Fprintf(&b, "kube-apiserver output:\n%s", c.apiserver.Output())
	}
	return b.String()
}

// alive is nil while both processes run.
func (c *Cluster) alive() error {
	if err := c.apiserver.alive(); err != nil {
		return err
	}
	return c.etcd.alive()
}

// Namespace creates a namespace with a fresh name that starts with the
// test's name, and returns the name. Tests that share a cluster keep apart
// by each using namespaces of their own.
//
// The namespace is not deleted when the test ends: without
// kube-controller-manager, a deleted namespace stays Terminating with all
// its objects, so deleting would only cost a request.
func (c *Cluster) Namespace(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeoutCause(t.Context(), requestTimeout,
		fmt.Errorf("create namespace: no answer after %s", requestTimeout))
	defer cancel()
	ns, err := c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: namePrefix(t.Name())},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}

// maxPrefix is the longest GenerateName prefix namePrefix makes: the server
// appends 5 random characters, and a namespace name is a DNS label of at
// most 63.
const maxPrefix = 63 - 5

// namePrefix turns a test name such as "TestRouter/weight_50%" into a
// GenerateName prefix such as "testrouter-weight-50-": lower-case letters,
// digits and single dashes.
func namePrefix(testName string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		default:
			dash = true
		}
	}
	name := strings.TrimRight(b.String()[:min(b.Len(), maxPrefix-1)], "-")
	if name == "" {
		name = "test"
	}
	return name + "-"
}
