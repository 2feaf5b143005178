package rules

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func goodPolicy(t testing.TB) *Policy {
	t.Helper()
	set, err := Load("testdata/good/policy.yaml")
	require.NoError(t, err)
	return set.Policies[0]
}

func TestResolveParams(t *testing.T) {
	pol := goodPolicy(t)
	tests := []struct {
		name    string
		in      map[string]string
		want    map[string]string
		wantErr string
	}{
		{
			name: "defaults filled, unknown params dropped",
			in:   map[string]string{"namespace": "caiso", "name": "lmp-ingest", "checksum": "abc", "extra": "x y"},
			want: map[string]string{"namespace": "caiso", "name": "lmp-ingest", "track": "canary", "window": "5m", "path": "/api/v1/"},
		},
		{
			name:    "missing required params are all named",
			in:      map[string]string{},
			wantErr: `invalid params: param "namespace": is required; param "name": is required`,
		},
		{
			name:    "PromQL injection through a label value",
			in:      map[string]string{"namespace": "caiso", "name": `x"} or vector(1) #`},
			wantErr: `invalid params: param "name": "x\"} or vector(1) #" is not a Kubernetes-style name`,
		},
		{
			name:    "injection through a regex matcher",
			in:      map[string]string{"namespace": "caiso", "name": "x", "path": `/a"}[5m])) or vector(0) #`},
			wantErr: `does not match pattern "/[a-z0-9/._-]*"`,
		},
		{
			name:    "pattern must match the whole value",
			in:      map[string]string{"namespace": "caiso", "name": "x", "window": "5m]) or up[5m"},
			wantErr: `param "window": "5m]) or up[5m" does not match pattern "[0-9]+[smh]"`,
		},
		{
			name:    "empty value",
			in:      map[string]string{"namespace": "", "name": "x"},
			wantErr: `param "namespace": "" is not a Kubernetes-style name`,
		},
		{
			name:    "newline",
			in:      map[string]string{"namespace": "caiso\n", "name": "x"},
			wantErr: `is not a Kubernetes-style name`,
		},
		{
			name:    "too long",
			in:      map[string]string{"namespace": "caiso", "name": "x", "path": "/" + strings.Repeat("a", 2000)},
			wantErr: `param "path": is 2001 bytes long, more than 1024`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pol.ResolveParams(tt.in)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, ErrInvalidParams)
				require.ErrorContains(t, err, tt.wantErr)
				require.NotContains(t, err.Error(), "\n", "the reason must fit on one line")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestRender(t *testing.T) {
	pol := goodPolicy(t)
	params, err := pol.ResolveParams(map[string]string{"namespace": "caiso", "name": "lmp-ingest", "path": "/api/v1.2/"})
	require.NoError(t, err)
	got, _, err := pol.Query("error_rate").Render(params)
	require.NoError(t, err)
	require.Equal(t, `sum(rate(http_requests_total{namespace="caiso",app="lmp-ingest",track="canary",code=~"5..",path=~"/api/v1\\.2/.*"}[5m]))`+"\n", got)
	got, _, err = pol.Query("lag").Render(params)
	require.NoError(t, err)
	require.Equal(t, `lag{app="lmp-ingest"}`, got)
}

func TestTemplateHelpers(t *testing.T) {
	tests := []struct {
		name, tmpl, value, want string
	}{
		{name: "label escapes quotes and backslashes", tmpl: `{{ label .v }}`, value: `a"b\c`, want: `a\"b\\c`},
		{name: "label escapes newlines", tmpl: `{{ label .v }}`, value: "a\nb", want: `a\nb`},
		{name: "regex quotes metacharacters", tmpl: `{{ regex .v }}`, value: `a.b*(c)`, want: `a\\.b\\*\\(c\\)`},
		{name: "quote", tmpl: `{{ quote .v }}`, value: `x"y`, want: `"x\"y"`},
		{name: "trimSuffix in a pipeline", tmpl: `{{ .v | trimSuffix "-canary" }}`, value: "lmp-canary", want: "lmp"},
		{name: "lower", tmpl: `{{ lower .v }}`, value: "CAISO", want: "caiso"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := parseTemplate("t", tt.tmpl)
			require.NoError(t, err)
			var b strings.Builder
			require.NoError(t, tmpl.Execute(&b, map[string]string{"v": tt.value}))
			require.Equal(t, tt.want, b.String())
		})
	}
}

func TestRelativeHelpers(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name      string
		fn        func(float64, float64) float64
		v, base   float64
		want      float64
		wantIsInf int
	}{
		{name: "pct up", fn: PctChange, v: 120, base: 100, want: 20},
		{name: "pct down", fn: PctChange, v: 80, base: 100, want: -20},
		{name: "pct negative base", fn: PctChange, v: -80, base: -100, want: 20},
		{name: "pct both zero", fn: PctChange, v: 0, base: 0, want: 0},
		{name: "pct zero base", fn: PctChange, v: 0.01, base: 0, wantIsInf: 1},
		{name: "ratio", fn: Ratio, v: 3, base: 2, want: 1.5},
		{name: "ratio both zero", fn: Ratio, v: 0, base: 0, want: 1},
		{name: "ratio zero base", fn: Ratio, v: 2, base: 0, wantIsInf: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.fn(tt.v, tt.base)
			if tt.wantIsInf != 0 {
				require.True(t, math.IsInf(got, tt.wantIsInf), "got %v want %v", got, inf)
				return
			}
			require.InDelta(t, tt.want, got, 1e-12)
		})
	}
}
