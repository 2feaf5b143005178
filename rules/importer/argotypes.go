package importer

import (
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The types below are the shape of an Argo Rollouts AnalysisTemplate (and
// ClusterAnalysisTemplate, which has the same spec) as the importer reads
// it, after the documented YAML form (apiVersion argoproj.io/v1alpha1).
// They stand in for Argo's API package, which would link all of Argo's
// generated API code into the binary for the few fields read here.
//
// Every field Argo accepts in the parts modelled here has a field of the
// same JSON name, so that the strict decode rejects what Argo's API server
// rejects and nothing else; argotypes_test.go holds the names to Argo's.
// The settings of a provider other than Prometheus are kept undecoded: the
// importer only says that it did not carry them over.

// argoManifest is one AnalysisTemplate or ClusterAnalysisTemplate.
type argoManifest struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	// Metadata is Kubernetes' own object metadata, so that whatever a
	// cluster adds to an exported object (labels, annotations,
	// managedFields, …) decodes as the API server would take it.
	Metadata metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec     argoSpec          `json:"spec"`
}

// argoSpec is a template's spec.
type argoSpec struct {
	Metrics              []argoMetric      `json:"metrics,omitempty"`
	Args                 []argoArg         `json:"args,omitempty"`
	DryRun               []argoDryRun      `json:"dryRun,omitempty"`
	MeasurementRetention []argoRetention   `json:"measurementRetention,omitempty"`
	Templates            []argoTemplateRef `json:"templates,omitempty"`
}

// argoMetric is one metric: how often it is measured, when a measurement
// passes, how many may fail, and the provider that measures it. Interval
// and initialDelay are Go duration strings; the limits and count are a
// number or a string (an {{args.x}} tag, resolved by Argo at run time).
type argoMetric struct {
	Name                    string              `json:"name"`
	Interval                string              `json:"interval,omitempty"`
	InitialDelay            string              `json:"initialDelay,omitempty"`
	Count                   *intstr.IntOrString `json:"count,omitempty"`
	SuccessCondition        string              `json:"successCondition,omitempty"`
	FailureCondition        string              `json:"failureCondition,omitempty"`
	FailureLimit            *intstr.IntOrString `json:"failureLimit,omitempty"`
	InconclusiveLimit       *intstr.IntOrString `json:"inconclusiveLimit,omitempty"`
	ConsecutiveErrorLimit   *intstr.IntOrString `json:"consecutiveErrorLimit,omitempty"`
	ConsecutiveSuccessLimit *intstr.IntOrString `json:"consecutiveSuccessLimit,omitempty"`
	Provider                argoProvider        `json:"provider"`
}

// argoArg is a template argument: a literal value, a value read from a
// Secret or from a field of the Rollout, or neither (the Rollout passes it).
type argoArg struct {
	Name      string         `json:"name"`
	Value     *string        `json:"value,omitempty"`
	ValueFrom *argoValueFrom `json:"valueFrom,omitempty"`
}

type argoValueFrom struct {
	SecretKeyRef *argoSecretKeyRef `json:"secretKeyRef,omitempty"`
	FieldRef     *argoFieldRef     `json:"fieldRef,omitempty"`
}

type argoSecretKeyRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

type argoFieldRef struct {
	FieldPath string `json:"fieldPath"`
}

// argoDryRun names the metrics (a regular expression) whose result never
// decides the run.
type argoDryRun struct {
	MetricName string `json:"metricName"`
}

// argoRetention is how many measurements Argo keeps of the metrics named.
type argoRetention struct {
	MetricName string `json:"metricName"`
	Limit      int32  `json:"limit"`
}

// argoTemplateRef is another template this one is composed with.
type argoTemplateRef struct {
	TemplateName string `json:"templateName"`
	ClusterScope *bool  `json:"clusterScope,omitempty"`
}

// argoProvider is where a metric's measurements come from: Prometheus,
// which the importer reads, or one of the others, kept as given. Argo
// takes exactly one; a template with none or more is Argo's to refuse, and
// the importer names the first it knows.
type argoProvider struct {
	Prometheus *argoPrometheus `json:"prometheus,omitempty"`
	Kayenta    argoOpaque      `json:"kayenta,omitempty"`
	Web        argoOpaque      `json:"web,omitempty"`
	Datadog    argoOpaque      `json:"datadog,omitempty"`
	Wavefront  argoOpaque      `json:"wavefront,omitempty"`
	NewRelic   argoOpaque      `json:"newRelic,omitempty"`
	Job        argoOpaque      `json:"job,omitempty"`
	CloudWatch argoOpaque      `json:"cloudWatch,omitempty"`
	Graphite   argoOpaque      `json:"graphite,omitempty"`
	Influxdb   argoOpaque      `json:"influxdb,omitempty"`
	SkyWalking argoOpaque      `json:"skywalking,omitempty"`
	// Plugin is keyed by the plugin's name (org/name); its settings are
	// the plugin's own, any JSON.
	Plugin map[string]json.RawMessage `json:"plugin,omitempty"`
}

// argoOpaque is the settings of a provider the importer does not read: an
// object, kept undecoded, or absent. Only that it is there matters.
type argoOpaque json.RawMessage

// UnmarshalJSON keeps an object as it is: a provider's settings are never
// a scalar or a list, and Argo refuses those too.
func (o *argoOpaque) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*o = nil
		return nil
	}
	if len(b) == 0 || b[0] != '{' {
		return fmt.Errorf("json: provider settings must be an object, not %s", b)
	}
	*o = append((*o)[:0], b...)
	return nil
}

// MarshalJSON writes the settings back as they were read.
func (o argoOpaque) MarshalJSON() ([]byte, error) {
	if o == nil {
		return []byte("null"), nil
	}
	return o, nil
}

// set reports whether the provider was given.
func (o argoOpaque) set() bool { return len(o) > 0 }

// argoPrometheus is a Prometheus metric: the query and where and how Argo
// sends it. Timeout is in seconds.
type argoPrometheus struct {
	Address        string          `json:"address,omitempty"`
	Query          string          `json:"query,omitempty"`
	Authentication argoAuth        `json:"authentication,omitempty"`
	Timeout        *int64          `json:"timeout,omitempty"`
	Insecure       bool            `json:"insecure,omitempty"`
	Headers        []argoHeader    `json:"headers,omitempty"`
	RangeQuery     *argoRangeQuery `json:"rangeQuery,omitempty"`
}

type argoAuth struct {
	Sigv4  argoSigv4  `json:"sigv4,omitempty"`
	OAuth2 argoOAuth2 `json:"oauth2,omitempty"`
}

type argoSigv4 struct {
	Region  string `json:"region,omitempty"`
	Profile string `json:"profile,omitempty"`
	RoleARN string `json:"roleArn,omitempty"`
}

type argoOAuth2 struct {
	TokenURL     string   `json:"tokenUrl,omitempty"`
	ClientID     string   `json:"clientId,omitempty"`
	ClientSecret string   `json:"clientSecret,omitempty"`
	Scopes       []string `json:"scopes,omitempty"`
}

type argoHeader struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// argoRangeQuery makes the query a range query. Start and end are expr
// expressions over now(); step is a Go duration string.
type argoRangeQuery struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
	Step  string `json:"step,omitempty"`
}
