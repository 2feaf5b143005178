package kafka

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// SCRAM iteration counts this client accepts from a server. Kafka stores
// credentials with 4096 to 16384 iterations; a server that offers fewer is
// trying to make a stolen exchange cheap to crack, one that offers millions
// to make the client burn CPU.
const (
	minSCRAMIterations = 4096
	maxSCRAMIterations = 1 << 20
)

// scramClient is the client side of SCRAM (RFC 5802, RFC 7677), as Sarama's
// SCRAMClient. It is written on the standard library because the module
// that Sarama's own examples use (xdg-go/scram) is not a dependency of this
// one. Like Kafka's Java client it does not apply SASLprep to the
// credentials: they are sent as UTF-8, which matches what Kafka's
// kafka-configs tool stores.
type scramClient struct {
	hash func() hash.Hash

	user, password, authzID string
	step                    int
	gs2Header               string
	clientNonce             string
	clientFirstBare         string
	serverSignature         []byte
	done                    bool
}

func newSCRAMClient(h func() hash.Hash) *scramClient { return &scramClient{hash: h} }

// Begin starts an exchange.
func (c *scramClient) Begin(user, password, authzID string) error {
	*c = scramClient{hash: c.hash, user: user, password: password, authzID: authzID}
	return nil
}

// Done reports whether the server's signature has been verified.
func (c *scramClient) Done() bool { return c.done }

// Step answers the server's last message: "" starts the exchange.
func (c *scramClient) Step(challenge string) (string, error) {
	c.step++
	switch c.step {
	case 1:
		return c.clientFirst()
	case 2:
		return c.clientFinal(challenge)
	case 3:
		return "", c.verify(challenge)
	}
	return "", errors.New("scram: exchange already finished")
}

func (c *scramClient) clientFirst() (string, error) {
	nonce := make([]byte, 24)
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("scram: nonce: %w", err)
	}
	c.clientNonce = base64.RawStdEncoding.EncodeToString(nonce)
	c.gs2Header = "n,,"
	if c.authzID != "" {
		c.gs2Header = "n,a=" + scramEscape(c.authzID) + ","
	}
	c.clientFirstBare = "n=" + scramEscape(c.user) + ",r=" + c.clientNonce
	return c.gs2Header + c.clientFirstBare, nil
}

func (c *scramClient) clientFinal(serverFirst string) (string, error) {
	var nonce, salt64, iters string
	for _, attr := range strings.Split(serverFirst, ",") {
		k, v, _ := strings.Cut(attr, "=")
		switch k {
		case "m":
			return "", errors.New("scram: server requires an extension this client does not support")
		case "e":
			return "", fmt.Errorf("scram: server error: %s", v)
		case "r":
			nonce = v
		case "s":
			salt64 = v
		case "i":
			iters = v
		}
	}
	if !strings.HasPrefix(nonce, c.clientNonce) || len(nonce) == len(c.clientNonce) {
		return "", errors.New("scram: server nonce does not extend the client nonce")
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil || len(salt) == 0 {
		return "", errors.New("scram: server sent no usable salt")
	}
	n, err := strconv.Atoi(iters)
	if err != nil || n < minSCRAMIterations || n > maxSCRAMIterations {
		return "", fmt.Errorf("scram: server asks for %q iterations; want %d to %d", iters, minSCRAMIterations, maxSCRAMIterations)
	}
	salted, err := pbkdf2.Key(c.hash, c.password, salt, n, c.hash().Size())
	if err != nil {
		return "", fmt.Errorf("scram: %w", err)
	}
	clientKey := c.hmac(salted, "Client Key")
	h := c.hash()
	h.Write(clientKey)
	storedKey := h.Sum(nil)

	finalNoProof := "c=" + base64.StdEncoding.EncodeToString([]byte(c.gs2Header)) + ",r=" + nonce
	authMessage := c.clientFirstBare + "," + serverFirst + "," + finalNoProof
	proof := c.hmac(storedKey, authMessage)
	for i := range proof {
		proof[i] ^= clientKey[i]
	}
	c.serverSignature = c.hmac(c.hmac(salted, "Server Key"), authMessage)
	return finalNoProof + ",p=" + base64.StdEncoding.EncodeToString(proof), nil
}

// verify checks the server's final message: a server that cannot sign the
// exchange does not know the password, whatever it says.
func (c *scramClient) verify(serverFinal string) error {
	k, v, _ := strings.Cut(serverFinal, "=")
	switch k {
	case "e":
		return fmt.Errorf("scram: server error: %s", v)
	case "v":
		sig, err := base64.StdEncoding.DecodeString(v)
		if err != nil || !hmac.Equal(sig, c.serverSignature) {
			return errors.New("scram: the server's signature does not match")
		}
		c.done = true
		return nil
	}
	return errors.New("scram: unexpected final message from the server")
}

func (c *scramClient) hmac(key []byte, msg string) []byte {
	m := hmac.New(c.hash, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// scramEscape encodes a SCRAM saslname: ',' and '=' would end the
// attribute.
func scramEscape(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}
