package importer

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/stretchr/testify/require"
)

// The importer decodes templates into its own types (argotypes.go) so that
// the binary does not link Argo Rollouts' API. These tests hold those types
// to Argo's, which tests may import: the same JSON names in every part the
// importer models, the same values decoded from every template, and the
// same errors for what Argo refuses.

// jsonFields maps the JSON names of a struct's fields to their types, with
// the fields of embedded (inline) structs promoted as encoding/json does.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			for n, ft := range jsonFields(f.Type) {
				out[n] = ft
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// jsonKind is what a field holds in JSON: pointers are looked through, and
// a named string (Argo's DurationString) is a string.
func jsonKind(t reflect.Type) reflect.Kind {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind()
}

var opaqueType = reflect.TypeFor[argoOpaque]()

// TestArgoTypesMatchArgo: each modelled part has exactly Argo's field names,
// each of the same JSON kind, so the strict decode accepts what Argo's API
// accepts there and refuses the rest. A provider other than Prometheus is
// only required to be there.
func TestArgoTypesMatchArgo(t *testing.T) {
	for _, tc := range []struct {
		name       string
		ours, argo reflect.Type
	}{
		{"AnalysisTemplate", reflect.TypeFor[argoManifest](), reflect.TypeFor[v1alpha1.AnalysisTemplate]()},
		{"ClusterAnalysisTemplate", reflect.TypeFor[argoManifest](), reflect.TypeFor[v1alpha1.ClusterAnalysisTemplate]()},
		{"spec", reflect.TypeFor[argoSpec](), reflect.TypeFor[v1alpha1.AnalysisTemplateSpec]()},
		{"metric", reflect.TypeFor[argoMetric](), reflect.TypeFor[v1alpha1.Metric]()},
		{"arg", reflect.TypeFor[argoArg](), reflect.TypeFor[v1alpha1.Argument]()},
		{"valueFrom", reflect.TypeFor[argoValueFrom](), reflect.TypeFor[v1alpha1.ValueFrom]()},
		{"secretKeyRef", reflect.TypeFor[argoSecretKeyRef](), reflect.TypeFor[v1alpha1.SecretKeyRef]()},
		{"fieldRef", reflect.TypeFor[argoFieldRef](), reflect.TypeFor[v1alpha1.FieldRef]()},
		{"dryRun", reflect.TypeFor[argoDryRun](), reflect.TypeFor[v1alpha1.DryRun]()},
		{"measurementRetention", reflect.TypeFor[argoRetention](), reflect.TypeFor[v1alpha1.MeasurementRetention]()},
		{"templates", reflect.TypeFor[argoTemplateRef](), reflect.TypeFor[v1alpha1.AnalysisTemplateRef]()},
		{"provider", reflect.TypeFor[argoProvider](), reflect.TypeFor[v1alpha1.MetricProvider]()},
		{"prometheus", reflect.TypeFor[argoPrometheus](), reflect.TypeFor[v1alpha1.PrometheusMetric]()},
		{"authentication", reflect.TypeFor[argoAuth](), reflect.TypeFor[v1alpha1.Authentication]()},
		{"sigv4", reflect.TypeFor[argoSigv4](), reflect.TypeFor[v1alpha1.Sigv4Config]()},
		{"oauth2", reflect.TypeFor[argoOAuth2](), reflect.TypeFor[v1alpha1.OAuth2Config]()},
		{"headers", reflect.TypeFor[argoHeader](), reflect.TypeFor[v1alpha1.WebMetricHeader]()},
		{"rangeQuery", reflect.TypeFor[argoRangeQuery](), reflect.TypeFor[v1alpha1.PrometheusRangeQueryArgs]()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours, argo := jsonFields(tc.ours), jsonFields(tc.argo)
			require.Equal(t, sortedKeys(argo), sortedKeys(ours), "JSON field names")
			for name, ot := range ours {
				if ot == opaqueType {
					require.Equal(t, reflect.Struct, jsonKind(argo[name]), "%s: Argo's settings are an object", name)
					continue
				}
				require.Equal(t, jsonKind(argo[name]), jsonKind(ot), "field %s", name)
			}
		})
	}
}

// decodeWithArgo decodes the templates of a file as DecodeArgo does, with
// Argo's API types.
func decodeWithArgo(file string, data []byte) ([]v1alpha1.AnalysisTemplateSpec, error) {
	docs, err := documents(file, data)
	if err != nil {
		return nil, err
	}
	var out []v1alpha1.AnalysisTemplateSpec
	for _, d := range docs {
		switch d.kind {
		case "AnalysisTemplate":
			var t v1alpha1.AnalysisTemplate
			if err := d.strict(file, &t); err != nil {
				return nil, err
			}
			out = append(out, t.Spec)
		case "ClusterAnalysisTemplate":
			var t v1alpha1.ClusterAnalysisTemplate
			if err := d.strict(file, &t); err != nil {
				return nil, err
			}
			out = append(out, t.Spec)
		}
	}
	return out, nil
}

// everyField is a template that sets every field the importer models, and
// metadata a cluster adds, with each kind of provider.
const everyField = `apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: every-field
  namespace: payments
  labels: {team: payments}
  annotations: {note: exported}
  uid: 0f4c6a52-7d0e-4d1e-9a57-3e3e0c3c8b11
  resourceVersion: "42"
  generation: 3
  creationTimestamp: "2026-01-02T03:04:05Z"
spec:
  args:
  - name: service-name
  - name: window
    value: 10m
  - name: port
    value: 9090
  - name: token
    valueFrom: {secretKeyRef: {name: tokens, key: api}}
  - name: ns
    valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
  dryRun:
  - metricName: web-.*
  measurementRetention:
  - metricName: success-rate
    limit: 20
  templates:
  - templateName: shared
    clusterScope: true
  metrics:
  - name: success-rate
    interval: 1m
    initialDelay: 30s
    count: 5
    successCondition: result[0] >= 0.95
    failureCondition: result[0] < 0.5
    failureLimit: 2
    inconclusiveLimit: "{{args.port}}"
    consecutiveErrorLimit: 4
    consecutiveSuccessLimit: 3
    provider:
      prometheus:
        address: http://prometheus:{{args.port}}
        query: sum(rate(ok{service="{{args.service-name}}"}[5m]))
        timeout: 30
        insecure: true
        headers:
        - {key: X-Scope-OrgID, value: tenant}
        authentication:
          sigv4: {region: eu-west-1, profile: prod, roleArn: "arn:aws:iam::1:role/r"}
          oauth2: {tokenUrl: "https://idp/token", clientId: canary, clientSecret: "{{args.token}}", scopes: [read]}
        rangeQuery:
          start: now() - duration("{{args.window}}")
          end: now()
          step: 1m
  - name: web-check
    provider:
      web:
        url: http://example/{{args.service-name}}
        timeoutSeconds: 10
        headers: [{key: Authorization, value: "Bearer {{args.token}}"}]
        jsonPath: "{$.ok}"
  - name: datadog
    provider:
      datadog: {query: "avg:errors{*}", interval: 5m}
  - name: job
    provider:
      job:
        spec:
          backoffLimit: 1
          template:
            spec:
              restartPolicy: Never
              containers: [{name: check, image: busybox}]
  - name: plugin
    provider:
      plugin:
        argoproj-labs/sample-prometheus: {address: http://p, query: up}
  - name: cloudwatch
    provider:
      cloudWatch:
        interval: 5m
        metricDataQueries: [{id: rate, expression: "errors / requests", period: 300}]
`

// TestArgoDecodeAsArgo decodes every template of testdata/argo and
// everyField with Argo's types and the importer's: both accept it, and
// what the importer keeps is, in Argo's types, exactly what Argo read.
func TestArgoDecodeAsArgo(t *testing.T) {
	inputs := map[string][]byte{"every-field.yaml": []byte(everyField)}
	files, err := filepath.Glob("testdata/argo/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		inputs[f] = data
	}
	for file, data := range inputs {
		t.Run(filepath.Base(file), func(t *testing.T) {
			want, err := decodeWithArgo(file, data)
			require.NoError(t, err, "Argo's types")
			got, _, err := DecodeArgo(file, data)
			require.NoError(t, err, "the importer's types")
			require.Len(t, got, len(want))
			for i, tm := range got {
				spec, err := ArgoSpec(tm)
				require.NoError(t, err)
				require.Equal(t, want[i], spec, "template %s", tm.Name)
			}
		})
	}
}

// TestDecodeArgoRefuses: what Argo's API refuses in the modelled parts,
// the importer refuses with the same error, at the document's line.
func TestDecodeArgoRefuses(t *testing.T) {
	const head = "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata: {name: t}\n"
	const prom = "    provider:\n      prometheus:\n        query: up\n"
	for _, tc := range []struct {
		name, doc string
		// err is the importer's error; Argo's types must give the same,
		// unless sameAsArgo is false (a type error names Go types).
		err        string
		sameAsArgo bool
	}{
		{"unknown top-level field", "status: {phase: Running}\n" + head + "spec: {metrics: []}\n",
			`t.yaml:1: AnalysisTemplate t: error unmarshaling JSON: while decoding JSON: json: unknown field "status"`, true},
		{"an AnalysisRun's field", head + "spec:\n  ttlStrategy: {secondsAfterCompletion: 60}\n",
			`t.yaml:1: AnalysisTemplate t: error unmarshaling JSON: while decoding JSON: json: unknown field "ttlStrategy"`, true},
		{"misspelt metric field", head + "spec:\n  metrics:\n  - name: m\n    successCondtion: result[0] > 1\n" + prom,
			`t.yaml:1: AnalysisTemplate t: error unmarshaling JSON: while decoding JSON: json: unknown field "successCondtion"`, true},
		{"unknown provider", head + "spec:\n  metrics:\n  - name: m\n    provider:\n      prometeus: {query: up}\n",
			`t.yaml:1: AnalysisTemplate t: error unmarshaling JSON: while decoding JSON: json: unknown field "prometeus"`, true},
		{"misspelt prometheus field", head + "spec:\n  metrics:\n  - name: m\n" + prom + "        adress: http://p\n",
			`t.yaml:1: AnalysisTemplate t: error unmarshaling JSON: while decoding JSON: json: unknown field "adress"`, true},
		{"misspelt rangeQuery field", head + "spec:\n  metrics:\n  - name: m\n" + prom + "        rangeQuery: {start: now(), stop: now()}\n",
			`t.yaml:1: AnalysisTemplate t: error unmarshaling JSON: while decoding JSON: json: unknown field "stop"`, true},
		{"misspelt oauth2 field", head + "spec:\n  metrics:\n  - name: m\n" + prom + "        authentication: {oauth2: {tokenEndpoint: x}}\n",
			`t.yaml:1: AnalysisTemplate t: error unmarshaling JSON: while decoding JSON: json: unknown field "tokenEndpoint"`, true},
		{"misspelt arg source", head + "spec:\n  args:\n  - name: a\n    valueFrom: {secretRef: {name: s, key: k}}\n",
			`t.yaml:1: AnalysisTemplate t: error unmarshaling JSON: while decoding JSON: json: unknown field "secretRef"`, true},
		{"misspelt template ref", head + "spec:\n  templates:\n  - name: other\n",
			`t.yaml:1: AnalysisTemplate t: error unmarshaling JSON: while decoding JSON: json: unknown field "name"`, true},
		{"provider settings not an object", head + "spec:\n  metrics:\n  - name: m\n    provider:\n      web: http://example\n",
			`t.yaml:1: AnalysisTemplate t: error unmarshaling JSON: while decoding JSON: json: provider settings must be an object, not "http://example"`, false},
		{"timeout not a number", "# x\n" + head + "spec:\n  metrics:\n  - name: m\n" + prom + "        timeout: 30s\n",
			`t.yaml:2: AnalysisTemplate t: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal string into Go struct field argoPrometheus.spec.metrics.provider.prometheus.timeout of type int64`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := DecodeArgo("t.yaml", []byte(tc.doc))
			require.EqualError(t, err, tc.err)
			_, argoErr := decodeWithArgo("t.yaml", []byte(tc.doc))
			require.Error(t, argoErr, "Argo's types refuse it too")
			if tc.sameAsArgo {
				require.EqualError(t, argoErr, tc.err)
			}
		})
	}
}

// TestArgoOtherProviders: a metric of a provider other than Prometheus
// decodes, and the import says it was not carried over, by name.
func TestArgoOtherProviders(t *testing.T) {
	const head = "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata: {name: t}\nspec:\n  metrics:\n  - name: m\n    provider:\n"
	for _, tc := range []struct {
		name, provider, want string
		// argoRefuses: Argo's types refuse the provider's settings. The
		// importer keeps them undecoded and does not check them: it
		// carries none of them over.
		argoRefuses bool
	}{
		{"web", "      web: {url: http://example, jsonPath: '{$.ok}'}\n", "provider web is not imported", false},
		{"datadog", "      datadog: {query: 'avg:errors{*}'}\n", "provider datadog is not imported", false},
		{"newRelic", "      newRelic: {query: SELECT 1}\n", "provider newRelic is not imported", false},
		{"kayenta", "      kayenta: {address: http://k, application: a, canaryConfigName: c, metricsAccountName: m, configurationAccountName: c, storageAccountName: s, threshold: {pass: 90, marginal: 75}, scopes: []}\n", "provider kayenta is not imported", false},
		{"skywalking", "      skywalking: {address: http://s, query: q}\n", "provider skywalking is not imported", false},
		{"plugins, sorted", "      plugin: {b/two: {}, a/one: {x: 1}}\n", "provider plugin a/one, b/two is not imported", false},
		{"a null prometheus is none", "      prometheus: null\n      graphite: {query: q}\n", "provider graphite is not imported", false},
		{"none", "      {}\n", "provider (none) is not imported", false},
		{"web, misspelt", "      web: {urll: http://example}\n", "provider web is not imported", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := head + tc.provider
			_, err := decodeWithArgo("t.yaml", []byte(doc))
			if tc.argoRefuses {
				require.Error(t, err, "Argo's types refuse it")
			} else {
				require.NoError(t, err, "Argo's types take it")
			}
			tmpls, _, err := DecodeArgo("t.yaml", []byte(doc))
			require.NoError(t, err)
			require.Len(t, tmpls, 1)
			pol, notes, err := FromArgo(tmpls[0])
			require.NoError(t, err)
			require.Nil(t, pol)
			var texts []string
			for _, n := range notes {
				texts = append(texts, n.Text)
			}
			require.Contains(t, strings.Join(texts, "\n"), tc.want+": canary reads Prometheus")
		})
	}
}
