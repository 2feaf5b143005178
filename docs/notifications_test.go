package docs_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/rollout/notify"
)

// tags are the names a struct's fields have in YAML or JSON, inline and
// embedded structs flattened.
func tags(t reflect.Type, key string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get(key), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if opts == "inline" || (f.Anonymous && name == "") {
			out = append(out, tags(f.Type, key)...)
			continue
		}
		out = append(out, name)
	}
	return out
}

// firstSpans are the code spans of a table's first cells: `a`, `b` gives
// a and b.
func firstSpans(t *testing.T, file, marker string) []string {
	var out []string
	for _, r := range tableRows(t, file, marker) {
		for _, m := range codeSpanRE.FindAllStringSubmatch(r.cells[0], -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// TestNotificationKindsDocumented: the kinds table lists every kind, with
// its default severity, and no other.
func TestNotificationKindsDocumented(t *testing.T) {
	rows := tableRows(t, "notifications.md", "kinds")
	var kinds []notify.Kind
	for _, r := range rows {
		k := notify.Kind(strings.Trim(r.cells[0], "`"))
		kinds = append(kinds, k)
		require.Equal(t, string(notify.DefaultSeverity[k]), r.cells[1], "notifications.md:%d: the default severity of %s", r.line, k)
	}
	require.Equal(t, notify.Kinds, kinds)
}

// TestNotificationRouteFieldsDocumented: the route table documents exactly
// the keys a route takes.
func TestNotificationRouteFieldsDocumented(t *testing.T) {
	want := tags(reflect.TypeFor[notify.RouteConfig](), "yaml")
	got := firstSpans(t, "notifications.md", "route-fields")
	slices.Sort(want)
	slices.Sort(got)
	require.Equal(t, want, got)
}

// TestWebhookPayloadDocumented: the payload table documents exactly the
// JSON a webhook route posts.
func TestWebhookPayloadDocumented(t *testing.T) {
	var want []string
	for _, f := range tags(reflect.TypeFor[notify.WebhookPayload](), "json") {
		if f != "notification" {
			want = append(want, f)
		}
	}
	for _, f := range tags(reflect.TypeFor[notify.Notification](), "json") {
		want = append(want, "notification."+f)
	}
	var got []string
	for _, s := range firstSpans(t, "notifications.md", "payload-fields") {
		if !strings.Contains(s, ".") && !slices.Contains([]string{"version", "text"}, s) {
			s = "notification." + s // `notification.kind`, `severity`
		}
		got = append(got, s)
	}
	slices.Sort(want)
	slices.Sort(got)
	require.Equal(t, want, got)
}
