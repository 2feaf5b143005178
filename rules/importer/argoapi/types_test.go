package argoapi_test

import (
	"reflect"
	"testing"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/rules/importer/argoapi"
)

// TestSameAsArgo holds the copy to Argo Rollouts' own types, recursively
// from each template kind down: the same type names, kinds, fields in the
// same order with the same names and tags (json among them, so strict
// decoding accepts and refuses the same documents), and the same types
// from other packages (metav1, intstr, batchv1). An upgrade of Argo
// Rollouts that changes the analysis API fails here until the copy
// follows.
func TestSameAsArgo(t *testing.T) {
	for _, tt := range []struct {
		name       string
		ours, argo any
	}{
		{name: "AnalysisTemplate", ours: argoapi.AnalysisTemplate{}, argo: v1alpha1.AnalysisTemplate{}},
		{name: "ClusterAnalysisTemplate", ours: argoapi.ClusterAnalysisTemplate{}, argo: v1alpha1.ClusterAnalysisTemplate{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[reflect.Type]bool{}
			sameType(t, tt.name, reflect.TypeOf(tt.ours), reflect.TypeOf(tt.argo), seen)
			require.Greater(t, len(seen), 30, "the walk reached the providers' types")
		})
	}
}

// sameType compares one of our types with Argo's at path.
func sameType(t *testing.T, path string, ours, argo reflect.Type, seen map[reflect.Type]bool) {
	t.Helper()
	require.Equal(t, argo.Kind(), ours.Kind(), "%s: kind", path)
	ourPkg, argoPkg := ours.PkgPath(), argo.PkgPath()
	switch {
	case argoPkg == reflect.TypeOf(v1alpha1.Metric{}).PkgPath():
		require.Equal(t, reflect.TypeOf(argoapi.Metric{}).PkgPath(), ourPkg, "%s: Argo's %s is copied", path, argo.Name())
		require.Equal(t, argo.Name(), ours.Name(), "%s: type name", path)
	case argo.Name() == "" && argo.Kind() != reflect.Struct:
		// A pointer, slice or map: compared by what it holds, below.
		require.Empty(t, ours.Name(), "%s: unnamed", path)
	default:
		// A built-in or another package's type: the very same.
		require.Equal(t, argo, ours, "%s", path)
		return
	}
	if seen[ours] {
		return
	}
	seen[ours] = true
	switch argo.Kind() {
	case reflect.Struct:
		require.Equal(t, argo.NumField(), ours.NumField(), "%s: number of fields", path)
		for i := range argo.NumField() {
			a, o := argo.Field(i), ours.Field(i)
			require.Equal(t, a.Name, o.Name, "%s: field %d", path, i)
			require.Equal(t, a.Tag, o.Tag, "%s.%s: tag", path, a.Name)
			require.Equal(t, a.Anonymous, o.Anonymous, "%s.%s: embedded", path, a.Name)
			sameType(t, path+"."+a.Name, o.Type, a.Type, seen)
		}
	case reflect.Pointer, reflect.Slice, reflect.Array:
		sameType(t, path+"[]", ours.Elem(), argo.Elem(), seen)
	case reflect.Map:
		sameType(t, path+"[key]", ours.Key(), argo.Key(), seen)
		sameType(t, path+"[value]", ours.Elem(), argo.Elem(), seen)
	}
}
