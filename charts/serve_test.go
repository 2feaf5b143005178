package charts_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
)

// TestRenderedConfigServes starts the real `canary serve` with the
// canary.yml the chart renders and the files of the Secrets it mounts: the
// generated tokens as the chart renders them, stand-ins for the others. It
// must start without auth.allowOpen, leave no route group open, ask every
// caller for its token, and build every notification route canary.yml
// names.
func TestRenderedConfigServes(t *testing.T) {
	bin := canary(t)
	tests := []struct {
		name string
		args []string
	}{
		{name: "defaults"},
		{name: "tls", args: []string{"-f", filepath.Join(chartDir(t), "ci", "tls-values.yaml")}},
		{name: "notifications", args: []string{"-f", filepath.Join(chartDir(t), "ci", "notifications-values.yaml")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := render(t, tt.args...)
			dir := t.TempDir()
			cfgPath, cfg := materialize(t, m, dir)
			tokens := checkGeneratedTokens(t, m, allGroups...)

			cmd := exec.Command(bin, "serve", "--config", cfgPath)
			cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")} // no CANARY_*, no kubeconfig
			stderr, err := cmd.StderrPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			exited := make(chan struct{})
			var logs lockedLog
			addr := make(chan string, 1)
			go func() {
				defer close(exited)
				sc := bufio.NewScanner(stderr)
				re := regexp.MustCompile(`msg="canary serving" address=(\S+)`)
				for sc.Scan() {
					logs.add(sc.Text() + "\n")
					if m := re.FindStringSubmatch(sc.Text()); m != nil {
						addr <- m[1]
					}
				}
				_ = cmd.Wait()
			}()
			t.Cleanup(func() {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(30 * time.Second):
					_ = cmd.Process.Kill()
					<-exited
				}
			})

			var base string
			select {
			case a := <-addr:
				base = "http://" + a
			case <-exited:
				t.Fatalf("canary serve exited with the rendered canary.yml:\n%s", logs.String())
			case <-time.After(30 * time.Second):
				t.Fatal("canary serve did not start in 30s")
			}
			client := &http.Client{Timeout: 10 * time.Second}
			if _, ok := cfg["tls"]; ok {
				base = strings.Replace(base, "http://", "https://", 1)
				cert, err := os.ReadFile(filepath.Join(dir, secretsDir, "tls", "tls.crt"))
				require.NoError(t, err)
				roots := x509.NewCertPool()
				require.True(t, roots.AppendCertsFromPEM(cert))
				client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
			}
			call := func(method, path, token string) (int, string) {
				t.Helper()
				req, err := http.NewRequest(method, base+path, strings.NewReader("{}"))
				require.NoError(t, err)
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				resp, err := client.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(body)
			}

			code, _ := call("GET", "/healthz", "")
			require.Equal(t, http.StatusOK, code)
			code, body := call("GET", "/v1/policies", tokens["admin"])
			require.Equal(t, http.StatusOK, code, body)
			var policies struct {
				OpenRoutes []string `json:"openRoutes"`
			}
			require.NoError(t, json.Unmarshal([]byte(body), &policies))
			require.Empty(t, policies.OpenRoutes)
			for path, method := range map[string]string{
				"/v1/policies": "GET", "/v1/alertmanager": "POST", "/v1/flagger/rollback": "POST", "/v1/analysis/x": "GET",
			} {
				code, _ := call(method, path, "")
				require.Equal(t, http.StatusUnauthorized, code, "%s %s without a token", method, path)
			}
			// Each group's token is its own.
			code, _ = call("GET", "/v1/policies", tokens["analysis"])
			require.Equal(t, http.StatusUnauthorized, code)
			require.NotContains(t, logs.String(), "route group is open")

			// canary serve refuses to start on a route it cannot build, so
			// a route missing here was dropped between canary.yml and it.
			code, body = call("GET", "/v1/notifications", tokens["admin"])
			require.Equal(t, http.StatusOK, code, body)
			var status struct {
				Routes []struct {
					Name string `json:"name"`
					Kind string `json:"kind"`
				} `json:"routes"`
			}
			require.NoError(t, json.Unmarshal([]byte(body), &status))
			var built []string
			for _, r := range status.Routes {
				built = append(built, r.Name+" "+r.Kind)
			}
			require.ElementsMatch(t, notifyRoutes(t, cfg), built)
			require.NotContains(t, body, secretMarker)
			require.NotContains(t, logs.String(), secretMarker, "canary serve logged a secret of its Secret files")
		})
	}
}

// materialize lays the rendered pod out in dir: canary.yml with its paths
// moved into dir and listening on a free port of 127.0.0.1, the policy
// files, and the file of every Secret item the container mounts, from the
// rendered Secret when the chart makes it, else a stand-in. It returns the
// config's path and the config.
func materialize(t *testing.T, m manifests, dir string) (string, map[string]any) {
	t.Helper()
	text, _ := m.canaryYML(t)
	text = strings.NewReplacer("/etc/canary/", dir+"/etc/canary/", dataDir, dir+dataDir, "/git/", dir+"/git/").Replace(text)
	text = strings.Replace(text, "listen: :8080", "listen: 127.0.0.1:0", 1)
	cfgPath := filepath.Join(dir, "etc", "canary", "canary.yml")
	require.NoError(t, os.MkdirAll(filepath.Dir(cfgPath), 0o755))
	require.NoError(t, os.WriteFile(cfgPath, []byte(text), 0o644))
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(text), &cfg))

	pod := m.deployment(t).Spec.Template.Spec
	c := container(t, pod, "canary")
	if vm, ok := mountAt(c, "/etc/canary/policies"); ok {
		policiesDir := filepath.Join(dir, "etc", "canary", "policies")
		require.NoError(t, os.MkdirAll(policiesDir, 0o755))
		for name, content := range m.configMap(t, volume(t, pod, vm.Name).ConfigMap.Name).Data {
			require.NoError(t, os.WriteFile(filepath.Join(policiesDir, name), []byte(content), 0o644))
		}
	}
	standIn := standIns(t)
	for _, vm := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(vm.MountPath, secretsDir)
		if !ok {
			continue
		}
		v := volume(t, pod, vm.Name)
		require.NotNil(t, v.Secret, vm.Name)
		var rendered *corev1.Secret
		if m.has("Secret", v.Secret.SecretName) {
			rendered = m.get(t, "Secret", v.Secret.SecretName).typed.(*corev1.Secret)
		}
		for _, item := range v.Secret.Items {
			content := standIn[item.Path]
			if rendered != nil {
				content = string(rendered.Data[item.Key])
			}
			require.NotEmpty(t, content, "no content for %s/%s", rel, item.Path)
			path := filepath.Join(dir, secretsDir, rel, item.Path)
			require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
			require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		}
	}
	return cfgPath, cfg
}

// standIns are the contents of the Secret files canary.yml names, by the
// file's name: what canary serve reads there, and never a real secret.
func standIns(t testing.TB) map[string]string {
	t.Helper()
	cert, key := selfSigned(t)
	return map[string]string{
		"tokens": "token-1\ntoken-2\n", "token": secretMarker + "-token\n", "password": secretMarker + "-password\n",
		"dsn":    "postgres://canary@127.0.0.1:1/warehouse?sslmode=disable\n",
		"ca.crt": cert, "tls.crt": cert, "tls.key": key,
		// A webhook's URL must be http or https to build; nothing is sent.
		"url":  "https://hooks.example.com/services/" + secretMarker + "\n",
		"hmac": secretMarker + "-hmac-key\n",
	}
}

// notifyRoutes are the notification routes canary.yml names, as "name
// kind": what GET /v1/notifications must list once canary serve built them.
func notifyRoutes(t testing.TB, cfg map[string]any) []string {
	t.Helper()
	n, _ := cfg["notifications"].(map[string]any)
	routes, _ := n["routes"].([]any)
	var out []string
	for _, r := range routes {
		route := r.(map[string]any)
		for _, kind := range []string{"alertmanager", "slack", "teams", "webhook"} {
			if _, ok := route[kind]; ok {
				out = append(out, route["name"].(string)+" "+kind)
			}
		}
	}
	return out
}

// lockedLog collects a child's log lines from its reader goroutine while
// the test reads them.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
