package webhooks

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/aurum/canary/rules"
	"github.com/aurum/canary/runs"
)

// The decoders face whatever reaches the port: none may panic or hang, and
// whatever they accept must be usable.

func FuzzFlaggerPayload(f *testing.F) {
	f.Add([]byte(`{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"85d557f47b","metadata":{"a":"b"}}`))
	f.Add([]byte(`{"name":"podinfo","namespace":"test"}`))
	f.Add([]byte(`{"name":"x\"}","namespace":"test","metadata":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parseFlagger(data)
		if err != nil {
			return
		}
		require.True(t, rules.IsName(p.Name))
		require.True(t, rules.IsName(p.Namespace))
		params := p.params()
		require.Equal(t, p.Name, params[paramName])
		require.Equal(t, p.Namespace, params[paramNamespace])
	})
}

func FuzzAlertmanagerPayload(f *testing.F) {
	f.Add([]byte(amPayload4("firing", "good", "critical", "a1b2c3d4e5f6a7b8")))
	f.Add([]byte(amPayload4("resolved", "x", "warning", "")))
	f.Add([]byte(`{"version":"4","alerts":[{"labels":{"a":"b"}}],"status":"firing"}`))
	f.Add([]byte(`{"alerts":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		alerts, err := parseAlertmanager(data)
		if err != nil {
			return
		}
		for _, a := range alerts {
			require.Contains(t, []string{"firing", "resolved"}, a.Status)
			require.NotEmpty(t, a.Labels)
		}
	})
}

func FuzzAnalysisRequest(f *testing.F) {
	f.Add([]byte(`{"params":{"namespace":"caiso","name":"good"}}`))
	f.Add([]byte(`{"params":{}}`))
	f.Add([]byte(`{"params":{"a":1}}`))
	f.Add([]byte(`{"params":{"a":"b"}} trailing`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var req analysisRequest
		if err := decodeStrict(data, &req); err != nil {
			require.Contains(t, err.Error(), "bad JSON body")
		}
	})
}

// FuzzActionRequest: a manual action's body is strict JSON; whatever it
// decodes to, the reason is checked before anything is latched.
func FuzzActionRequest(f *testing.F) {
	f.Add([]byte(`{"reason":"bad data in PJM zone"}`))
	f.Add([]byte(`{"reason":"x","revision":"r1"}`))
	f.Add([]byte(`{"reason":""}`))
	f.Add([]byte(`{"reason":"x","by":"someone else"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var req actionRequest
		if err := decodeStrict(data, &req); err != nil {
			require.Contains(t, err.Error(), "bad JSON body")
			return
		}
		if err := runs.CheckReason(runs.ActionRollback, req.Reason); err == nil {
			require.NotEmpty(t, strings.TrimSpace(req.Reason))
			require.LessOrEqual(t, len(strings.TrimSpace(req.Reason)), runs.MaxReason)
		}
	})
}
