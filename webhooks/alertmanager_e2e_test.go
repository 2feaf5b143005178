package webhooks

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/internal/testam"
)

// TestAlertmanagerEndToEnd: a real Alertmanager delivers a firing alert to
// the receiver (with a bearer token); Flagger's rollback hook then answers
// 200 and the analysis answers fail, before any query would have failed.
func TestAlertmanagerEndToEnd(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "am-token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("s3cret-am\n"), 0o600))
	auth, err := LoadAuth(map[string][]string{GroupAlertmanager: {tokenFile}})
	require.NoError(t, err)
	e := newEnv(t, func(o *Options) { o.Auth = auth })

	require.Equal(t, analysis.VerdictPass, e.result("GET", "/v1/analysis/ingest?namespace=caiso&name=good&revision=85d557f47b", nil).Verdict)
	code, _ := e.call("POST", "/v1/flagger/rollback", flagger("good", "85d557f47b", nil))
	require.Equal(t, http.StatusForbidden, code)

	am := testam.Start(t, testam.Config{WebhookURL: e.url + "/v1/alertmanager", BearerToken: "s3cret-am"})
	am.Fire(t, map[string]string{"alertname": "IngestErrorsHigh", "severity": "critical", "namespace": "caiso", "app": "good"},
		map[string]string{"summary": "CAISO LMP ingestion errors above 2%"})

	require.Eventually(t, func() bool {
		code, _ := e.call("POST", "/v1/flagger/rollback", flagger("good", "85d557f47b", nil))
		return code == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond, "the alert never latched a rollback; alertmanager said:\n%s", am.Output())

	code, out := e.call("POST", "/v1/flagger/rollback", flagger("good", "85d557f47b", nil))
	require.Equal(t, "rollback latched by alert: alert IngestErrorsHigh firing: CAISO LMP ingestion errors above 2%; to lift: canary runs resume caiso/good --revision 85d557f47b --reason \"…\"", flaggerSays(t, code, out))
	res := e.result("GET", "/v1/analysis/ingest?namespace=caiso&name=good&revision=85d557f47b", nil)
	require.Equal(t, analysis.VerdictFail, res.Verdict)
	require.Equal(t, analysis.DecisionRollback, res.Decision)
	require.Contains(t, e.metrics(), `canary_alertmanager_alerts_total{status="firing"} 1`)
	require.NotContains(t, am.Output(), "s3cret-am")
}
