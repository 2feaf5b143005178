//go:build !linux

package tcpprobe_test

import "testing"

// unanswered needs Linux, which drops a SYN to a full accept queue; other
// systems may refuse or reset it instead.
func unanswered(t *testing.T) string {
	t.Skip("needs Linux to build a listener that never answers")
	return ""
}
