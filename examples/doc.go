// Package examples holds the example policies, policy tests and series, and
// the manifests that wire canary serve into Argo Rollouts, Flagger and
// Alertmanager, together with a GitOps layout of policies and their tests.
// It has no code: its tests check that every example works with the real
// tools it names (see README.md).
package examples
