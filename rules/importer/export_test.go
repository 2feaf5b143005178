package importer

import (
	"encoding/json"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	sigsyaml "sigs.k8s.io/yaml"
)

// ArgoSpec is a decoded template's spec in Argo Rollouts' own API types,
// for the tests that run Argo's code on it. The conversion is strict: a
// field Argo does not know fails it.
func ArgoSpec(t ArgoTemplate) (v1alpha1.AnalysisTemplateSpec, error) {
	var out v1alpha1.AnalysisTemplateSpec
	js, err := json.Marshal(t.spec)
	if err != nil {
		return out, err
	}
	err = sigsyaml.UnmarshalStrict(js, &out)
	return out, err
}
