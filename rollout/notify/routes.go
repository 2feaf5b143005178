package notify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	neturl "net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"golang.org/x/time/rate"
)

// Route is one destination: which notifications it takes, how it sends
// them, and how fast.
type Route struct {
	Name string
	// Kind says what the sender is: alertmanager, slack, teams, webhook,
	// or go for a Notifier of an embedding program.
	Kind   string
	Filter Filter
	Sender Notifier
	// limiter, when set, bounds the route's rate.
	limiter *rate.Limiter
}

// wait waits for the route's rate limit.
func (r *Route) wait(ctx context.Context) error {
	if r.limiter == nil {
		return nil
	}
	return r.limiter.Wait(ctx)
}

// NewRoute is a route to a Notifier of a program that embeds the
// orchestrator (the design's alert callback): the notifications filter
// takes reach n through the outbox, with its retries, deduplication and
// status, as a configured route's do.
func NewRoute(name string, filter Filter, n Notifier) (*Route, error) {
	if name == "" || n == nil {
		return nil, errors.New("a route needs a name and a notifier")
	}
	if err := filter.validate(); err != nil {
		return nil, fmt.Errorf("route %q: %w", name, err)
	}
	return &Route{Name: name, Kind: "go", Filter: filter, Sender: n}, nil
}

// Filter picks the notifications a route takes. Empty lists take all.
type Filter struct {
	Kinds      []Kind     `yaml:"kinds"`
	Severities []Severity `yaml:"severities"`
	Policies   []string   `yaml:"policies"`
	Namespaces []string   `yaml:"namespaces"`
	// SendResolved sends resolutions too (a latch lifted, analyses
	// passing again); default true.
	SendResolved *bool `yaml:"sendResolved"`
}

// Takes reports whether the filter takes n.
//
// A resolution is taken by the kind it resolves as well as its own: a
// route of rollback_latched hears the rollback lifted.
func (f Filter) Takes(n Notification) bool {
	return (len(f.Kinds) == 0 || slices.Contains(f.Kinds, n.Kind) || (n.Resolved && slices.Contains(f.Kinds, n.ConditionKind()))) &&
		(len(f.Severities) == 0 || slices.Contains(f.Severities, n.Severity)) &&
		(len(f.Policies) == 0 || slices.Contains(f.Policies, n.Policy)) &&
		(len(f.Namespaces) == 0 || slices.Contains(f.Namespaces, n.Namespace)) &&
		(!n.Resolved || f.SendResolved == nil || *f.SendResolved)
}

func (f Filter) validate() error {
	var errs []error
	for _, k := range f.Kinds {
		if !slices.Contains(Kinds, k) {
			errs = append(errs, fmt.Errorf("unknown kind %q (known: %s)", k, joinKinds()))
		}
	}
	for _, s := range f.Severities {
		if s.rank() < 0 {
			errs = append(errs, fmt.Errorf("unknown severity %q (known: info, warning, critical)", s))
		}
	}
	return errors.Join(errs...)
}

func joinKinds() string {
	var b strings.Builder
	for i, k := range Kinds {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(k))
	}
	return b.String()
}

// Config is the notifications section of canary serve's configuration.
type Config struct {
	// Link is canary serve's URL as people reach it, for the links in
	// notifications.
	Link   string        `yaml:"link"`
	Routes []RouteConfig `yaml:"routes"`
}

// RouteConfig is one route: a name, a filter, a rate, a text template, and
// exactly one destination.
type RouteConfig struct {
	Name   string `yaml:"name"`
	Filter `yaml:",inline"`
	// RateLimit bounds the route: at most Burst at once, then one per
	// Every. Zero is unlimited.
	RateLimit struct {
		Every model.Duration `yaml:"every"`
		Burst int            `yaml:"burst"`
	} `yaml:"rateLimit"`
	// Template is a Go text/template over a Notification for the message
	// text of Slack, Teams and webhook routes.
	Template     string              `yaml:"template"`
	Alertmanager *AlertmanagerConfig `yaml:"alertmanager"`
	Slack        *URLConfig          `yaml:"slack"`
	Teams        *URLConfig          `yaml:"teams"`
	Webhook      *WebhookConfig      `yaml:"webhook"`
}

// URLConfig is an incoming webhook's URL, which is a secret: it comes from
// a file, and is never logged.
type URLConfig struct {
	URLFile string `yaml:"urlFile"`
}

// WebhookConfig is a generic JSON webhook, signed with HMAC-SHA256 when it
// has a secret.
type WebhookConfig struct {
	URL        string `yaml:"url"`
	URLFile    string `yaml:"urlFile"`
	SecretFile string `yaml:"secretFile"`
}

// AlertmanagerConfig is an Alertmanager canary sends its own alerts to.
type AlertmanagerConfig struct {
	URL        string                  `yaml:"url"`
	HTTPClient config.HTTPClientConfig `yaml:"http"`
}

// DefaultTemplate is the message text unless a route says otherwise.
const DefaultTemplate = `{{ .Summary }}{{ if .Reason }}: {{ .Reason }}{{ end }}`

// SetDirectory makes the route's files relative to dir, as the rest of a
// config file's paths are.
func (c *Config) SetDirectory(dir string) {
	rel := func(p string) string {
		if p == "" || strings.HasPrefix(p, "/") {
			return p
		}
		return dir + "/" + p
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		for _, u := range []*URLConfig{r.Slack, r.Teams} {
			if u != nil {
				u.URLFile = rel(u.URLFile)
			}
		}
		if r.Webhook != nil {
			r.Webhook.URLFile, r.Webhook.SecretFile = rel(r.Webhook.URLFile), rel(r.Webhook.SecretFile)
		}
		if r.Alertmanager != nil {
			r.Alertmanager.HTTPClient.SetDirectory(dir)
		}
	}
}

// Build makes the routes of a configuration: each destination's sender,
// secrets read from their files, templates parsed. An error names the
// route.
func Build(c Config, logger *slog.Logger) ([]*Route, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var routes []*Route
	var errs []error
	names := map[string]bool{}
	for i, rc := range c.Routes {
		r, err := buildRoute(rc, c.Link, logger)
		if err != nil {
			errs = append(errs, fmt.Errorf("notifications.routes[%d] %q: %w", i, rc.Name, err))
			continue
		}
		if names[r.Name] {
			errs = append(errs, fmt.Errorf("notifications.routes[%d]: route %q is named twice", i, rc.Name))
			continue
		}
		names[r.Name] = true
		routes = append(routes, r)
	}
	return routes, errors.Join(errs...)
}

func buildRoute(rc RouteConfig, link string, logger *slog.Logger) (*Route, error) {
	if rc.Name == "" {
		return nil, errors.New("a route needs a name")
	}
	if err := rc.Filter.validate(); err != nil {
		return nil, err
	}
	r := &Route{Name: rc.Name, Filter: rc.Filter}
	if rc.RateLimit.Every > 0 {
		r.limiter = rate.NewLimiter(rate.Every(time.Duration(rc.RateLimit.Every)), max(rc.RateLimit.Burst, 1))
	}
	text, err := template.New(rc.Name).Option("missingkey=error").Parse(cmp.Or(rc.Template, DefaultTemplate))
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	// A field that does not exist fails only when the template runs: run
	// it once now, so a typo is an error at start, not at 3 a.m.
	if err := text.Execute(io.Discard, Sample(rc.Name)); err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	client := &http.Client{Timeout: sendTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var senders []string
	if a := rc.Alertmanager; a != nil {
		senders = append(senders, "alertmanager")
		if rc.SendResolved != nil && !*rc.SendResolved {
			return nil, errors.New("an alertmanager route always sends resolutions: without them its alerts would never clear")
		}
		s, err := newAlertmanager(*a, link, logger)
		if err != nil {
			return nil, err
		}
		r.Kind, r.Sender = "alertmanager", s
	}
	if u := rc.Slack; u != nil {
		senders = append(senders, "slack")
		url, err := secret(u.URLFile, "slack.urlFile")
		if err != nil {
			return nil, err
		}
		r.Kind, r.Sender = "slack", &chat{url: url, text: text, client: client, format: SlackMessage}
	}
	if u := rc.Teams; u != nil {
		senders = append(senders, "teams")
		url, err := secret(u.URLFile, "teams.urlFile")
		if err != nil {
			return nil, err
		}
		r.Kind, r.Sender = "teams", &chat{url: url, text: text, client: client, format: TeamsMessage}
	}
	if w := rc.Webhook; w != nil {
		senders = append(senders, "webhook")
		url := w.URL
		if w.URLFile != "" {
			if url != "" {
				return nil, errors.New("webhook: give url or urlFile, not both")
			}
			if url, err = secret(w.URLFile, "webhook.urlFile"); err != nil {
				return nil, err
			}
		}
		if url == "" {
			return nil, errors.New("webhook needs a url or urlFile")
		}
		if u, err := neturl.Parse(url); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, errors.New("webhook: the URL is not an http or https URL") // never the URL: it may hold a token
		}
		wh := &webhook{url: url, text: text, client: client}
		if w.SecretFile != "" {
			key, err := secret(w.SecretFile, "webhook.secretFile")
			if err != nil {
				return nil, err
			}
			wh.key = []byte(key)
		}
		r.Kind, r.Sender = "webhook", wh
	}
	if len(senders) != 1 {
		return nil, fmt.Errorf("give exactly one of alertmanager, slack, teams and webhook, got %d", len(senders))
	}
	return r, nil
}

// secret reads a one-line secret from a file. The error names the file,
// never its content.
func secret(path, what string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("%s is required", what)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		return "", fmt.Errorf("%s: %s is empty", what, path)
	}
	return s, nil
}

// Sample is the notification `canary notify test` sends, and templates are
// tried on: plainly a test, about no real canary.
func Sample(route string) Notification {
	v, th := 0.031, 0.02
	return Notification{
		ID: "test/" + route + "/" + strconv.FormatInt(time.Now().UnixNano(), 36), Kind: KindRollbackLatched, Severity: SeverityInfo,
		Namespace: "canary-test", Name: "sample", Revision: "v0", Policy: "sample",
		Summary: "test notification of route " + route + " (canary notify test): no canary was touched",
		Reason:  "a sample: error-rate 0.031 > 0.02", Source: "manual", By: "canary notify test",
		Rules: []RuleValue{{Name: "error-rate", Verdict: "fail", Value: &v, Threshold: &th, Reason: "0.031 > 0.02"}},
		At:    time.Now(),
	}
}
