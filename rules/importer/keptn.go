package importer

// KeptnObjects are the Keptn objects of the input.
type KeptnObjects struct{}

// DecodeKeptn reads Keptn manifests.
func DecodeKeptn(file string, data []byte, objs *KeptnObjects) ([]Note, error) { return nil, nil }

// FromKeptn makes policies of Keptn AnalysisDefinitions.
func FromKeptn(objs KeptnObjects) ([]Document, []Note, error) { return nil, nil, nil }
