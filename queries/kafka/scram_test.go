package kafka

import (
	"crypto/sha256"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSCRAMVector runs the SHA-256 exchange of RFC 7677, section 3.
func TestSCRAMVector(t *testing.T) {
	c := newSCRAMClient(sha256.New)
	require.NoError(t, c.Begin("user", "pencil", ""))
	first, err := c.Step("")
	require.NoError(t, err)
	require.Regexp(t, `^n,,n=user,r=[A-Za-z0-9+/]{32}$`, first)
	// The RFC's nonce instead of the random one.
	c.clientNonce = "rOprNGfwEbeRWgbNEkqO"
	c.clientFirstBare = "n=user,r=" + c.clientNonce

	final, err := c.Step("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
	require.NoError(t, err)
	require.Equal(t, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", final)
	require.False(t, c.Done())

	_, err = c.Step("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
	require.NoError(t, err)
	require.True(t, c.Done())
}

func TestSCRAMRejects(t *testing.T) {
	for _, tt := range []struct {
		name        string
		serverFirst string
		serverFinal string
		want        string
	}{
		{name: "nonce not extended", serverFirst: "r=other,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", want: "server nonce"},
		{name: "too few iterations", serverFirst: "r=NONCEx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1", want: "iterations"},
		{name: "no salt", serverFirst: "r=NONCEx,i=4096", want: "salt"},
		{name: "mandatory extension", serverFirst: "m=ext,r=NONCEx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", want: "extension"},
		{name: "server error", serverFirst: "e=unknown-user", want: "server error: unknown-user"},
		{name: "wrong signature", serverFirst: "r=NONCEx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", serverFinal: "v=AAAA", want: "signature"},
		{name: "final error", serverFirst: "r=NONCEx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", serverFinal: "e=invalid-proof", want: "server error: invalid-proof"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newSCRAMClient(sha256.New)
			require.NoError(t, c.Begin("user", "pencil", ""))
			_, err := c.Step("")
			require.NoError(t, err)
			c.clientNonce = "NONCE"
			c.clientFirstBare = "n=user,r=NONCE"
			_, err = c.Step(tt.serverFirst)
			if tt.serverFinal != "" {
				require.NoError(t, err)
				_, err = c.Step(tt.serverFinal)
			}
			require.ErrorContains(t, err, tt.want)
			require.False(t, c.Done())
		})
	}
}

func TestSCRAMEscape(t *testing.T) {
	require.Equal(t, "a=3Db=2Cc", scramEscape("a=b,c"))
}
