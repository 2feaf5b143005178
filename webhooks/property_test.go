package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/aurum/canary/analysis"
	"github.com/aurum/canary/internal/proptest"
	"github.com/aurum/canary/queries"
	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs"
	"github.com/aurum/canary/runs/bolt"
)

// gatePolicy is the policy of the latch properties; %t is latchOnFail,
// which reloads change.
const gatePolicy = `apiVersion: canary.aurum.dev/v1
kind: Policy
metadata: {name: gate}
spec:
  params: {namespace: {}, name: {}}
  queries:
    error_rate: {prometheus: 'error_rate{app="{{ .name }}"}'}
  rules:
    - {name: error-rate, expr: error_rate <= 0.01}
  decision: {latchOnFail: %t}
  alerts:
    - match: {severity: critical, app: "{{ .name }}"}
      action: rollback
    - match: {severity: warning, app: "{{ .name }}"}
      action: pause
`

// firstRevision is the revision a first call that names none gets: the
// clock is fixed.
const firstRevision = "20261126T140000Z"

// latchModel is what the latches of caiso/lmp must be: per revision, a
// rollback, the pauses by who set them, a promotion.
type latchModel struct {
	revisions map[string]bool
	// matched marks revisions whose run has a policy, which alerts are
	// matched against.
	matched  map[string]bool
	rollback map[string]bool
	pauses   map[string][]string
	promote  map[string]bool
	current  string
}

func (m *latchModel) ensure(rev string) {
	if !m.revisions[rev] {
		m.revisions[rev] = true
		m.matched[rev] = m.current != "" && m.matched[m.current]
	}
}

func (m *latchModel) pause(rev, who string) {
	if !slices.Contains(m.pauses[rev], who) && len(m.pauses[rev]) < runs.MaxLatches {
		m.pauses[rev] = append(m.pauses[rev], who)
	}
}

// answer is the verdict and decision an analysis of rev gets by its
// latches, and whether one answered.
func (m *latchModel) answer(rev string, named bool) (analysis.Verdict, analysis.Decision, bool) {
	switch {
	case m.rollback[rev]:
		return analysis.VerdictFail, analysis.DecisionRollback, true
	case len(m.pauses[rev]) > 0:
		return analysis.VerdictInconclusive, analysis.DecisionPause, true
	case m.promote[rev]:
		return analysis.VerdictPass, analysis.DecisionPromote, true
	}
	if !named {
		for r, rb := range m.rollback {
			if rb && r != rev {
				return analysis.VerdictFail, analysis.DecisionRollback, true
			}
		}
	}
	return "", "", false
}

// latchMachine is the HTTP service over one real store, driven as Argo
// Rollouts, Flagger, Alertmanager and people would drive it.
type latchMachine struct {
	dir      string
	st       *bolt.Bolt
	srv      *Server
	loader   *rules.Loader
	latching bool
	outcome  float64 // the canary's error rate; negative: no data
	model    latchModel
	flood    int
}

func newLatchMachine(t *rapid.T) *latchMachine {
	m := &latchMachine{dir: proptest.Dir(t), outcome: 0.001, model: latchModel{revisions: map[string]bool{}, matched: map[string]bool{},
		rollback: map[string]bool{}, pauses: map[string][]string{}, promote: map[string]bool{}}}
	m.latching = rapid.Bool().Draw(t, "latchOnFail")
	m.writePolicy(t)
	m.open(t)
	return m
}

func (m *latchMachine) writePolicy(t *rapid.T) {
	if err := os.MkdirAll(filepath.Join(m.dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.dir, "policies", "gate.yaml"), []byte(fmt.Sprintf(gatePolicy, m.latching)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// open starts the service over the store, as a new process does.
func (m *latchMachine) open(t *rapid.T) {
	st, err := bolt.Open(filepath.Join(m.dir, "canary.db"), bolt.Options{NoSync: true, FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	m.st = st
	clock := func() time.Time { return time.Date(2026, 11, 26, 14, 0, 0, 0, time.UTC) }
	rs, err := runs.New(context.Background(), runs.Options{Store: st, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	m.loader = rules.NewLoader(filepath.Join(m.dir, "policies"))
	if err := m.loader.Reload(); err != nil {
		t.Fatal(err)
	}
	src := queries.SourceFunc(func(context.Context, queries.Query) (queries.Result, error) {
		if m.outcome < 0 {
			return queries.Result{}, nil
		}
		return queries.Result{Samples: []queries.Sample{{Value: m.outcome}}}, nil
	})
	m.srv, err = New(Options{Policies: m.loader, Runs: rs,
		Evaluator: analysis.NewEvaluator(analysis.Options{Sources: queries.Registry{{Kind: "prometheus"}: src}})})
	if err != nil {
		t.Fatal(err)
	}
}

// call serves one request in process.
func (m *latchMachine) call(method, path, body string) (int, string) {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	m.srv.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func flaggerBody(checksum string) string {
	return `{"name":"lmp","namespace":"caiso","phase":"Progressing","checksum":"` + checksum + `"}`
}

var revisions = []string{"r1", "r2", "r3"}

// Analyze is Argo Rollouts' web metric, naming a revision or none.
func (m *latchMachine) Analyze(t *rapid.T) {
	rev := rapid.SampledFrom(append([]string{""}, revisions...)).Draw(t, "revision")
	m.outcome = rapid.SampledFrom([]float64{0.001, 0.05, -1}).Draw(t, "errRate")
	code, out := m.call("GET", "/v1/analysis/gate?namespace=caiso&name=lmp&revision="+rev, "")
	if code != 200 {
		t.Fatalf("analysis answered %d: %s", code, out)
	}
	var a runs.Answer
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatal(err)
	}
	m.analysed(t, rev, a.Verdict, a.Decision)
}

// analysed checks an analysis of rev against the model and applies it.
func (m *latchMachine) analysed(t *rapid.T, rev string, verdict analysis.Verdict, decision analysis.Decision) {
	named := rev != ""
	if !named {
		rev = or(m.model.current, firstRevision)
	}
	m.model.ensure(rev)
	m.model.current = rev
	m.model.matched[rev] = true
	wantV, wantD, latched := m.model.answer(rev, named)
	if !latched {
		switch {
		case m.outcome < 0:
			wantV, wantD = analysis.VerdictInconclusive, analysis.DecisionPause
		case m.outcome > 0.01:
			wantV, wantD = analysis.VerdictFail, analysis.DecisionRollback
			if m.latching {
				m.model.rollback[rev] = true
			}
		default:
			wantV, wantD = analysis.VerdictPass, analysis.DecisionContinue
		}
	}
	if verdict != wantV || decision != wantD {
		t.Fatalf("analysis of %q answered %s/%s, want %s/%s (model %+v)", rev, verdict, decision, wantV, wantD, m.model)
	}
}

// or returns a unless it is empty.
func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Flagger is a check or gate hook, which always names its checksum.
func (m *latchMachine) Flagger(t *rapid.T) {
	rev := rapid.SampledFrom(revisions).Draw(t, "checksum")
	hook := rapid.SampledFrom([]string{"check", "gate"}).Draw(t, "hook")
	m.outcome = rapid.SampledFrom([]float64{0.001, 0.05, -1}).Draw(t, "errRate")
	code, body := m.call("POST", "/v1/flagger/gate/"+hook, flaggerBody(rev))
	out := flaggerSays(t, code, body)
	verdict, _, ok := strings.Cut(out, ":")
	if !ok {
		t.Fatalf("flagger %s answered %d: %s", hook, code, out)
	}
	var decision analysis.Decision
	switch analysis.Verdict(verdict) {
	case analysis.VerdictPass:
		decision = analysis.DecisionContinue
		if strings.Contains(out, "promote latched") {
			decision = analysis.DecisionPromote
		}
	case analysis.VerdictFail:
		decision = analysis.DecisionRollback
	default:
		decision = analysis.DecisionPause
	}
	m.analysed(t, rev, analysis.Verdict(verdict), decision)
	wantOK := verdict == string(analysis.VerdictPass) || (hook == "check" && verdict == string(analysis.VerdictInconclusive))
	if (code <= 202) != wantOK {
		t.Fatalf("flagger %s answered %d for %s", hook, code, out)
	}
}

// Event is Flagger's event hook: a new checksum is a new current run.
func (m *latchMachine) Event(t *rapid.T) {
	rev := rapid.SampledFrom(append([]string{""}, revisions...)).Draw(t, "checksum")
	code, out := m.call("POST", "/v1/flagger/events", flaggerBody(rev))
	if code != 202 {
		t.Fatalf("event answered %d: %s", code, out)
	}
	if rev != "" {
		m.model.ensure(rev)
		m.model.current = rev
	}
}

// Alert is an Alertmanager delivery: one alert, firing (new or
// redelivered) or resolved.
func (m *latchMachine) Alert(t *rapid.T) {
	severity := rapid.SampledFrom([]string{"critical", "warning"}).Draw(t, "severity")
	status := rapid.SampledFrom([]string{"firing", "resolved"}).Draw(t, "status")
	fp := severity + "-" + rapid.SampledFrom([]string{"a", "b"}).Draw(t, "fingerprint")
	m.deliver(t, status, severity, []string{fp})
}

// Flood is 33 pause alerts at once, one per pod, then their resolution.
func (m *latchMachine) Flood(t *rapid.T) {
	var fps []string
	for i := range runs.MaxLatches + 1 {
		fps = append(fps, fmt.Sprintf("pod-%d-%d", m.flood, i))
	}
	m.deliver(t, "firing", "warning", fps)
	if rapid.Bool().Draw(t, "resolve") {
		m.deliver(t, "resolved", "warning", fps)
	}
	m.flood++
}

func (m *latchMachine) deliver(t *rapid.T, status, severity string, fps []string) {
	var alerts []string
	for _, fp := range fps {
		alerts = append(alerts, `{"status":"`+status+`","labels":{"alertname":"Errors","severity":"`+severity+`","app":"lmp"},"fingerprint":"`+fp+`"}`)
	}
	code, out := m.call("POST", "/v1/alertmanager", `{"version":"4","status":"`+status+`","alerts":[`+strings.Join(alerts, ",")+`]}`)
	if code != 200 {
		t.Fatalf("alertmanager receiver answered %d: %s", code, out)
	}
	for _, rev := range slices.Sorted(maps.Keys(m.model.revisions)) {
		if !m.model.matched[rev] {
			continue
		}
		for _, fp := range fps {
			switch {
			case status == "resolved" && severity == "warning":
				m.model.pauses[rev] = slices.DeleteFunc(m.model.pauses[rev], func(x string) bool { return x == fp })
			case status == "firing" && severity == "critical":
				m.model.rollback[rev] = true
			case status == "firing":
				m.model.pause(rev, fp)
			}
		}
	}
}

// Manual is a person acting on a revision, or on the current one.
func (m *latchMachine) Manual(t *rapid.T) {
	action := rapid.SampledFrom([]string{runs.ActionRollback, runs.ActionPause, runs.ActionPromote, runs.ActionResume}).Draw(t, "action")
	rev := rapid.SampledFrom(append([]string{""}, revisions...)).Draw(t, "revision")
	code, out := m.call("POST", "/v1/runs/caiso/lmp/"+action+"?revision="+rev, `{"reason":"by hand"}`)
	target := or(rev, m.model.current)
	if target == "" || !m.model.revisions[target] {
		if code != 404 {
			t.Fatalf("an action on a run that does not exist answered %d: %s", code, out)
		}
		return
	}
	if code != 200 {
		t.Fatalf("%s answered %d: %s", action, code, out)
	}
	switch action {
	case runs.ActionRollback:
		m.model.rollback[target] = true
	case runs.ActionPause:
		m.model.pause(target, "manual")
	case runs.ActionPromote:
		m.model.rollback[target], m.model.pauses[target], m.model.promote[target] = false, nil, true
	case runs.ActionResume:
		m.model.rollback[target], m.model.pauses[target], m.model.promote[target] = false, nil, false
	}
}

// Reload switches latchOnFail and reloads the policies.
func (m *latchMachine) Reload(t *rapid.T) {
	m.latching = rapid.Bool().Draw(t, "latchOnFail")
	m.writePolicy(t)
	if code, out := m.call("POST", "/-/reload", ""); code != 200 {
		t.Fatalf("reload answered %d: %s", code, out)
	}
}

// Restart closes the store, as a shutdown does, and starts anew.
func (m *latchMachine) Restart(t *rapid.T) {
	if err := m.st.Close(); err != nil {
		t.Fatal(err)
	}
	m.open(t)
}

// Check holds invariants 2 to 4 after every step: every revision's
// latches are what the model says, whatever other revisions were asked
// about, after any restart (invariant 2 and 3); and while a revision holds
// a rollback, every route answers it (invariant 4): Flagger's rollback hook
// 200, and for the current revision Argo fail/rollback and Flagger's check
// and gate a refusal.
func (m *latchMachine) Check(t *rapid.T) {
	for rev := range m.model.revisions {
		code, out := m.call("GET", "/v1/runs/caiso/lmp?limit=1&revision="+rev, "")
		if code != 200 {
			t.Fatalf("run %s answered %d: %s", rev, code, out)
		}
		var got runResponse
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		has := map[runs.LatchKind]int{}
		for _, l := range got.Run.Latches {
			has[l.Kind]++
		}
		if (has[runs.LatchRollback] > 0) != m.model.rollback[rev] || has[runs.LatchPause] != len(m.model.pauses[rev]) ||
			(has[runs.LatchPromote] > 0) != m.model.promote[rev] {
			t.Fatalf("revision %s has latches %v, the model %+v", rev, has, m.model)
		}
		if got.Run.Current != (rev == m.model.current) {
			t.Fatalf("revision %s current=%v, model's current %q", rev, got.Run.Current, m.model.current)
		}
		code, out = m.call("POST", "/v1/flagger/rollback", flaggerBody(rev))
		if (code == 200) != m.model.rollback[rev] {
			t.Fatalf("rollback hook of %s answered %d (%s), model rollback %v", rev, code, out, m.model.rollback[rev])
		}
	}
	if cur := m.model.current; cur != "" && m.model.rollback[cur] {
		code, out := m.call("GET", "/v1/analysis/gate?namespace=caiso&name=lmp&revision="+cur, "")
		if code != 200 || !strings.Contains(out, `"verdict":"fail"`) || !strings.Contains(out, `"decision":"rollback"`) {
			t.Fatalf("a rolled-back run's analysis answered %d: %s", code, out)
		}
		for _, hook := range []string{"check", "gate"} {
			if code, out := m.call("POST", "/v1/flagger/gate/"+hook, flaggerBody(cur)); code <= 202 {
				t.Fatalf("a rolled-back run's %s answered %d: %s", hook, code, out)
			}
		}
		// Analysed, the run has its policy now: alerts match it.
		m.model.matched[cur] = true
	}
}

// TestLatchProperty runs random sequences of analyses (pass, fail, no
// data, any revision or none), Flagger hooks and events, alert deliveries
// and redeliveries (firing, resolved, rollback, pause, floods of 33),
// manual actions, policy reloads and restarts against the model.
func TestLatchProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := newLatchMachine(t)
		defer func() { m.st.Close() }()
		t.Repeat(rapid.StateMachineActions(m))
	})
}
