package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/config"

	"github.com/aurum/canary/runs"
)

// Timings of canary's own alerts in Alertmanager.
const (
	// resendInterval is how often an alert still firing is sent again:
	// Alertmanager resolves an alert whose endsAt passes, so canary keeps
	// moving it forward while the condition holds, as Prometheus does.
	resendInterval = time.Minute
	// alertLifetime is the endsAt given to a firing alert: a few resends,
	// so one lost send does not resolve it, while a canary that is gone
	// stops holding it within minutes.
	alertLifetime = 4 * resendInterval
	// eventLifetime is how long a one-off event (a promotion, a rollout
	// completed) stays an alert.
	eventLifetime = 5 * time.Minute
)

// maxActive bounds the alerts held firing per route.
const maxActive = 10000

// kindActive is the store's document kind of canary's alerts firing in an
// Alertmanager, keyed "route condition".
const kindActive = "am-active"

// postableAlert is one alert of Alertmanager's POST /api/v2/alerts.
type postableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// alertmanager sends canary's own alerts to an Alertmanager: firing while
// their condition holds (resent every resendInterval), resolved when it
// clears. Users route them with their existing Alertmanager configuration.
type alertmanager struct {
	route  string
	api    string
	client *http.Client
	logger *slog.Logger
	store  runs.Documents
	now    func() time.Time

	mu     sync.Mutex
	active map[string]postableAlert // by condition
}

func newAlertmanager(c AlertmanagerConfig, _ string, logger *slog.Logger) (*alertmanager, error) {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, errors.New("alertmanager.url must be an http or https URL without credentials (put those in alertmanager.http)")
	}
	hc := c.HTTPClient
	if err := hc.Validate(); err != nil {
		return nil, fmt.Errorf("alertmanager.http: %w", err)
	}
	client, err := config.NewClientFromConfig(hc, "canary-notify")
	if err != nil {
		return nil, fmt.Errorf("alertmanager.http: %w", err)
	}
	client.Timeout = sendTimeout
	return &alertmanager{api: strings.TrimSuffix(u.String(), "/") + "/api/v2/alerts", client: client, logger: logger,
		now: time.Now, active: map[string]postableAlert{}}, nil
}

// alertName is the alertname of a kind: CanaryRollbackLatched.
func alertName(k Kind) string {
	var b strings.Builder
	b.WriteString("Canary")
	for _, part := range strings.Split(string(k), "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

// alertOf is the alert of a firing notification.
func alertOf(n Notification, now time.Time) postableAlert {
	labels := map[string]string{"alertname": alertName(n.Kind), "severity": string(n.Severity), "namespace": n.Namespace, "name": n.Name}
	for k, v := range map[string]string{"revision": n.Revision, "policy": n.Policy, "rollout": n.Rollout, "group": n.Group} {
		if v != "" {
			labels[k] = v
		}
	}
	if strings.HasPrefix(n.Condition, "degraded ") && len(n.Rules) > 0 {
		// One alert per degraded rule.
		labels["rule"] = n.Condition[strings.LastIndexByte(n.Condition, ' ')+1:]
	}
	ann := map[string]string{"summary": n.Summary, "description": n.Reason}
	if n.Link != "" {
		ann["link"] = n.Link
	}
	if lines := ruleLines(n); len(lines) > 0 {
		ann["rules"] = strings.Join(lines, "\n")
	}
	return postableAlert{Labels: labels, Annotations: ann, StartsAt: n.At, EndsAt: now.Add(eventLifetime), GeneratorURL: n.Link}
}

// Notify sends a notification as an alert: a condition's firing
// notification starts an alert held until its resolution, a one-off event
// is an alert for eventLifetime.
func (a *alertmanager) Notify(ctx context.Context, n Notification) error {
	now := a.now()
	if n.Condition == "" {
		return a.post(ctx, []postableAlert{alertOf(n, now)})
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if n.Resolved {
		al, ok := a.active[n.Condition]
		if !ok {
			return nil // never fired here, or already resolved
		}
		al.EndsAt = now
		if err := a.post(ctx, []postableAlert{al}); err != nil {
			return err
		}
		delete(a.active, n.Condition)
		return a.forget(ctx, n.Condition)
	}
	al := alertOf(n, now)
	old, ok := a.active[n.Condition]
	if ok {
		al.StartsAt = old.StartsAt
	} else if len(a.active) >= maxActive {
		// Sent once, as a one-off event, rather than held: the bound keeps
		// a flood of conditions from growing the resend without end.
		a.logger.Warn("too many canary alerts firing; this one is sent once, not held", "condition", n.Condition, "max", maxActive)
		return a.post(ctx, []postableAlert{al})
	}
	al.EndsAt = now.Add(alertLifetime)
	if err := a.remember(ctx, n.Condition, al); err != nil {
		return err
	}
	a.active[n.Condition] = al
	return a.post(ctx, []postableAlert{al})
}

// firing returns the labels of the alerts held firing, by condition.
func (a *alertmanager) firing() map[string]map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]map[string]string, len(a.active))
	for c, al := range a.active {
		out[c] = maps.Clone(al.Labels)
	}
	return out
}

func (a *alertmanager) remember(ctx context.Context, condition string, al postableAlert) error {
	if a.store == nil {
		return nil
	}
	data, err := json.Marshal(al)
	if err != nil {
		return Permanent(err)
	}
	_, err = a.store.UpdateDocument(ctx, kindActive, a.route+" "+condition, func([]byte) ([]byte, error) { return data, nil })
	return err
}

func (a *alertmanager) forget(ctx context.Context, condition string) error {
	if a.store == nil {
		return nil
	}
	return a.store.DeleteDocument(ctx, kindActive, a.route+" "+condition)
}

// load takes up the alerts a previous process held firing.
func (a *alertmanager) load(ctx context.Context, store runs.Documents, route string) error {
	a.store, a.route = store, route
	docs, err := store.DocumentsOf(ctx, kindActive)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for key, data := range docs {
		r, condition, _ := strings.Cut(key, " ")
		if r != route {
			continue
		}
		var al postableAlert
		if err := json.Unmarshal(data, &al); err != nil {
			a.logger.Error("held alert does not decode; forgotten", "key", key, "err", err)
			_ = store.DeleteDocument(ctx, kindActive, key)
			continue
		}
		a.active[condition] = al
	}
	return nil
}

// Run sends the alerts still firing again every resendInterval, until ctx
// is done.
func (a *alertmanager) Run(ctx context.Context) {
	t := time.NewTicker(resendInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.mu.Lock()
		now := a.now()
		var all []postableAlert
		for c, al := range a.active {
			al.EndsAt = now.Add(alertLifetime)
			a.active[c] = al
			all = append(all, al)
		}
		a.mu.Unlock()
		if len(all) == 0 {
			continue
		}
		if err := a.post(ctx, all); err != nil {
			a.logger.Warn("firing alerts not sent again to Alertmanager", "alerts", len(all), "err", err)
		}
	}
}

func (a *alertmanager) post(ctx context.Context, alerts []postableAlert) error {
	body, err := json.Marshal(alerts)
	if err != nil {
		return Permanent(err)
	}
	return post(ctx, a.client, a.api, body, nil)
}
