package queries

import (
	"maps"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRedactFields(t *testing.T) {
	tests := []struct {
		name   string
		fields map[string]string
		want   map[string]string
		secret string // must not be in any value; empty for none
	}{
		{name: "nil", fields: nil, want: nil},
		{name: "empty", fields: map[string]string{}, want: map[string]string{}},
		{
			name:   "headers",
			fields: map[string]string{"header.Authorization": "Bearer s3cret", "header.X-Empty": "", "Header.Cookie": "s3cret", "HEADER.x": "s3cret"},
			want:   map[string]string{"header.Authorization": "<redacted>", "header.X-Empty": "<redacted>", "Header.Cookie": "<redacted>", "HEADER.x": "<redacted>"},
			secret: "s3cret",
		},
		{
			name:   "fields that are no headers are kept",
			fields: map[string]string{"headers": "x", "header": "y", "group": "enricher", "topics": "a,b", "expect": "200-299", "json": "data.n"},
			want:   map[string]string{"headers": "x", "header": "y", "group": "enricher", "topics": "a,b", "expect": "200-299", "json": "data.n"},
		},
		{
			name:   "URL without user info",
			fields: map[string]string{"url": "https://api.example.com:8443/health?x=1#top"},
			want:   map[string]string{"url": "https://api.example.com:8443/health?x=1#top"},
		},
		{
			name:   "user and password",
			fields: map[string]string{"url": "http://probe:s3cret@api.example.com/health"},
			want:   map[string]string{"url": "http://probe:xxxxx@api.example.com/health"},
			secret: "s3cret",
		},
		{
			name:   "user alone is a token",
			fields: map[string]string{"url": "https://s3cret@github.example/repo"},
			want:   map[string]string{"url": "https://xxxxx@github.example/repo"},
			secret: "s3cret",
		},
		{
			name:   "empty password",
			fields: map[string]string{"url": "http://probe:@h/"},
			want:   map[string]string{"url": "http://probe:xxxxx@h/"},
		},
		{
			name:   "postgres DSN",
			fields: map[string]string{"dsn": "postgres://canary:s3cret@db:5432/app?sslmode=verify-full"},
			want:   map[string]string{"dsn": "postgres://canary:xxxxx@db:5432/app?sslmode=verify-full"},
			secret: "s3cret",
		},
		{
			name:   "comma-separated list",
			fields: map[string]string{"urls": "http://a:s3cret@h1/x,https://h2,http://s3cret@h3:80"},
			want:   map[string]string{"urls": "http://a:xxxxx@h1/x,https://h2,http://xxxxx@h3:80"},
			secret: "s3cret",
		},
		{
			name:   "list with spaces",
			fields: map[string]string{"urls": "http://h1, http://a:s3cret@h2"},
			want:   map[string]string{"urls": "http://h1, http://a:xxxxx@h2"},
			secret: "s3cret",
		},
		{
			name:   "password with a comma",
			fields: map[string]string{"url": "http://a:s3c,ret@h/"},
			want:   map[string]string{"url": "http://a:xxxxx@h/"},
			secret: "ret",
		},
		{
			name:   "password with an at sign",
			fields: map[string]string{"url": "http://a:s3c@ret@h/"},
			want:   map[string]string{"url": "http://a:xxxxx@h/"},
			secret: "ret",
		},
		{
			name:   "password with a slash does not parse",
			fields: map[string]string{"url": "http://a:s3c/ret@h/x"},
			want:   map[string]string{"url": "http://a:xxxxx@h/x"},
			secret: "ret",
		},
		{
			name:   "password with a question mark",
			fields: map[string]string{"url": "http://a:s3c?ret@h"},
			want:   map[string]string{"url": "http://a:xxxxx@h"},
			secret: "ret",
		},
		{
			name:   "password with a quote and a space",
			fields: map[string]string{"url": `http://a:s3c" ret@h`},
			want:   map[string]string{"url": "http://a:xxxxx@h"},
			secret: "ret",
		},
		{
			name:   "an at sign in the path is no user info",
			fields: map[string]string{"url": "https://social.example/@me?q=a@b"},
			want:   map[string]string{"url": "https://social.example/@me?q=a@b"},
		},
		{
			name:   "no URL",
			fields: map[string]string{"body": "user@example.com", "address": "db:5432"},
			want:   map[string]string{"body": "user@example.com", "address": "db:5432"},
		},
		{
			name:   "URL in a body",
			fields: map[string]string{"body": `{"callback":"http://u:s3cret@hook.example/x"}`},
			want:   map[string]string{"body": `{"callback":"http://u:xxxxx@hook.example/x"}`},
			secret: "s3cret",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := maps.Clone(tt.fields)
			got := RedactFields(tt.fields)
			require.Equal(t, tt.want, got)
			require.Equal(t, before, tt.fields, "the fields themselves are left alone")
			if tt.secret != "" {
				for k, v := range got {
					require.NotContains(t, v, tt.secret, "field %s", k)
				}
			}
		})
	}
}

func TestRedactURLs(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "nothing to hide", in: "connection refused", want: "connection refused"},
		{name: "URL without user info", in: `Get "http://h:80/x": EOF`, want: `Get "http://h:80/x": EOF`},
		{name: "quoted URL", in: `Get "http://u:s3cret@h/x": EOF`, want: `Get "http://u:xxxxx@h/x": EOF`},
		{name: "unquoted URL", in: "GET http://s3cret@h/x: connection refused", want: "GET http://xxxxx@h/x: connection refused"},
		{
			name: "URL that does not parse",
			in:   `failed to parse Location header "http://u:s3c ret@h:1/": parse "http://u:s3c ret@h:1/": net/url: invalid userinfo`,
			want: `failed to parse Location header "http://u:xxxxx@h:1/": parse "http://u:xxxxx@h:1/": net/url: invalid userinfo`,
		},
		{name: "two URLs", in: "http://a:s3cret@h1 and https://b@h2/", want: "http://a:xxxxx@h1 and https://xxxxx@h2/"},
		{name: "already redacted", in: "http://u:xxxxx@h/", want: "http://u:xxxxx@h/"},
		{name: "scheme at the end", in: "scheme://", want: "scheme://"},
		{name: "at sign right after the scheme", in: "http://@h/", want: "http://@h/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, RedactURLs(tt.in))
		})
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		wantMsg string // empty: parses
	}{
		{name: "valid", raw: "http://u:s3cret@h:80/x"},
		{name: "port after user info", raw: "http://u:s3cret@host:99x/", wantMsg: `invalid port ":99x" after host`},
		{name: "no user info", raw: "http://host:99x/", wantMsg: `invalid port ":99x" after host`},
		{name: "slash in the password", raw: "http://u:s3/cret@h/", wantMsg: `invalid port "xxxxx" after host`},
		{name: "bad escape in the password", raw: "http://u:s3cret%zz@h/", wantMsg: `invalid URL escape "xxxxx"`},
		{name: "space in the password", raw: "http://u:s3c ret@h/", wantMsg: "net/url: invalid userinfo"},
		{name: "control character", raw: "http://u:s3cret@h/\x7f", wantMsg: "net/url: invalid control character in URL"},
		{name: "bad host character after user info", raw: "http://u:s3cret@h^st/", wantMsg: `invalid character "^" in host name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := ParseURL(tt.raw)
			if tt.wantMsg == "" {
				require.NoError(t, err)
				require.Equal(t, tt.raw, u.String())
				return
			}
			require.EqualError(t, err, tt.wantMsg)
			require.NotContains(t, err.Error(), "s3")
			require.NotContains(t, err.Error(), "cret")
		})
	}
}
