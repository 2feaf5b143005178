// Package docs is the reference documentation of Aurum Canary: the policy
// format (policy.md), the HTTP API as an OpenAPI 3.0 document
// (openapi.yaml), the integration guides for Argo Rollouts, Flagger and
// Alertmanager, and operations.
//
// The package holds no code beyond the embedded OpenAPI document, which
// canary serve answers at GET /v1/openapi.yaml. Its tests keep the
// documents true to the code: every field the policy parser accepts is in
// the reference and nothing else is, the example policies load, the
// metrics, alert rules and configurations shown are the real ones.
package docs

import _ "embed" // for OpenAPI

// OpenAPI is the OpenAPI 3.0 document of canary serve's HTTP API.
//
//go:embed openapi.yaml
var OpenAPI []byte
