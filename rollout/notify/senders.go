package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/template"

	"github.com/aurum/canary/analysis"
)

// post sends a JSON body. A 2xx answer is delivered; 408, 429 and 5xx and
// connection failures are worth a retry; any other 4xx is permanent: the
// receiver refuses the message, and sending it again will not change
// that. Errors never repeat the URL, which for incoming webhooks is the
// secret.
func post(ctx context.Context, client *http.Client, target string, body []byte, header http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return Permanent(errors.New("bad URL"))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "aurum-canary")
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	msg := strings.TrimSpace(string(answer))
	switch {
	case resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		return fmt.Errorf("answered %s: %s", resp.Status, firstLine(msg))
	default:
		return Permanent(fmt.Errorf("answered %s: %s", resp.Status, firstLine(msg)))
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// render runs a route's text template; a template that fails falls back
// to the summary, so a message is never lost to a typo.
func render(t *template.Template, n Notification) string {
	var b strings.Builder
	if err := t.Execute(&b, n); err != nil {
		return n.Summary + " (template: " + err.Error() + ")"
	}
	return b.String()
}

// marks of severity and resolution, for chat messages.
func mark(n Notification) string {
	switch {
	case n.Resolved:
		return "✅"
	case n.Severity == SeverityCritical:
		return "🔴"
	case n.Severity == SeverityWarning:
		return "🟠"
	}
	return "🔵"
}

// title is the head line of a chat message.
func title(n Notification) string {
	state := strings.ReplaceAll(string(n.Kind), "_", " ")
	if n.Resolved {
		state += " (resolved)"
	}
	return mark(n) + " " + strings.ToUpper(state[:1]) + state[1:] + ": " + n.Target()
}

// ruleLines are the rule values that decided, one per line.
func ruleLines(n Notification) []string {
	var out []string
	for _, r := range n.Rules {
		out = append(out, r.Name+" "+r.Verdict+": "+r.Reason)
	}
	return out
}

// chat sends messages to a chat service's incoming webhook: Slack's Block
// Kit (SlackMessage) or Teams' Adaptive Cards (TeamsMessage).
type chat struct {
	url    string
	text   *template.Template
	client *http.Client
	format func(n Notification, text string) []byte
}

func (c *chat) Notify(ctx context.Context, n Notification) error {
	return post(ctx, c.client, c.url, c.format(n, render(c.text, n)), nil)
}

// SlackMessage is a notification as Slack Block Kit: a header, the text,
// the facts as fields, the rule values, a link.
func SlackMessage(n Notification, text string) []byte {
	fields := []map[string]any{
		{"type": "mrkdwn", "text": "*Severity*\n" + string(n.Severity)},
		{"type": "mrkdwn", "text": "*Canary*\n" + slackText(n.Target())},
	}
	if n.Policy != "" {
		fields = append(fields, map[string]any{"type": "mrkdwn", "text": "*Policy*\n" + slackText(n.Policy)})
	}
	if n.Source != "" {
		fields = append(fields, map[string]any{"type": "mrkdwn", "text": "*Source*\n" + slackText(n.Source)})
	}
	blocks := []map[string]any{
		{"type": "header", "text": map[string]any{"type": "plain_text", "text": clip(title(n), 150), "emoji": true}},
		{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": clip(slackText(text), 3000)}, "fields": fields},
	}
	if lines := ruleLines(n); len(lines) > 0 {
		blocks = append(blocks, map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn",
			"text": clip("```"+slackText(strings.Join(lines, "\n"))+"```", 3000)}})
	}
	if n.Link != "" {
		blocks = append(blocks, map[string]any{"type": "context", "elements": []map[string]any{
			{"type": "mrkdwn", "text": "<" + n.Link + "|Open in canary>"}}})
	}
	return marshal(map[string]any{"text": clip(slackText(title(n)+": "+text), 3000), "blocks": blocks})
}

// TeamsMessage is a notification as an Adaptive Card in a Teams message.
func TeamsMessage(n Notification, text string) []byte {
	color := map[Severity]string{SeverityCritical: "Attention", SeverityWarning: "Warning", SeverityInfo: "Accent"}[n.Severity]
	if n.Resolved {
		color = "Good"
	}
	facts := []map[string]string{{"title": "Severity", "value": string(n.Severity)}, {"title": "Canary", "value": n.Target()}}
	if n.Policy != "" {
		facts = append(facts, map[string]string{"title": "Policy", "value": n.Policy})
	}
	if n.Source != "" {
		facts = append(facts, map[string]string{"title": "Source", "value": n.Source})
	}
	body := []map[string]any{
		{"type": "TextBlock", "text": title(n), "weight": "Bolder", "size": "Medium", "color": color, "wrap": true},
		{"type": "TextBlock", "text": text, "wrap": true},
		{"type": "FactSet", "facts": facts},
	}
	if lines := ruleLines(n); len(lines) > 0 {
		body = append(body, map[string]any{"type": "TextBlock", "text": strings.Join(lines, "\n\n"), "wrap": true, "fontType": "Monospace"})
	}
	card := map[string]any{"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": "1.4", "body": body}
	if n.Link != "" {
		card["actions"] = []map[string]string{{"type": "Action.OpenUrl", "title": "Open in canary", "url": n.Link}}
	}
	return marshal(map[string]any{"type": "message", "attachments": []map[string]any{
		{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}}})
}

// webhook sends the documented JSON, signed when it has a key.
type webhook struct {
	url    string
	key    []byte
	text   *template.Template
	client *http.Client
}

// WebhookPayload is what a generic webhook route posts (docs/notifications.md
// documents it).
type WebhookPayload struct {
	// Version is the payload's schema version.
	Version      string       `json:"version"`
	Text         string       `json:"text"`
	Notification Notification `json:"notification"`
}

// SignatureHeader carries the HMAC-SHA256 of the body, as "sha256=<hex>".
const SignatureHeader = "X-Canary-Signature"

// Sign is the value of SignatureHeader for body under key.
func Sign(key, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (w *webhook) Notify(ctx context.Context, n Notification) error {
	body, err := json.Marshal(WebhookPayload{Version: "1", Text: render(w.text, n), Notification: n})
	if err != nil {
		return Permanent(err)
	}
	h := http.Header{}
	if len(w.key) > 0 {
		h.Set(SignatureHeader, Sign(w.key, body))
	}
	return post(ctx, w.client, w.url, body, h)
}

// marshal encodes a chat message without Go's HTML escaping: chat
// services read "<" literally, and Slack's link syntax needs it.
func marshal(v any) []byte {
	data, _ := analysis.MarshalUnescaped(v) // maps of strings cannot fail to encode
	return data
}

// slackText escapes the three characters Slack's mrkdwn reserves, so a
// rule reason such as "p99 < 0.5" is shown, not read as a link.
var slackText = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace

// clip cuts s to n bytes on a rune boundary, as chat APIs bound fields.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
