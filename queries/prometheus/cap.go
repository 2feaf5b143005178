package prometheus

import (
	"fmt"
	"io"
	"math"
	"net/http"
)

// capTransport caps the body of every response at max bytes. client_golang
// reads a body whole into memory before it looks at it; the cap makes that
// read fail instead, once the body has passed max.
type capTransport struct {
	next http.RoundTripper
	max  int64
}

func (t *capTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || t.max == math.MaxInt64 {
		return resp, err
	}
	resp.Body = &cappedBody{body: resp.Body, max: t.max, left: t.max + 1, announced: resp.ContentLength}
	return resp, nil
}

// cappedBody reads at most max+1 bytes of body: one more than max tells a
// body of exactly max bytes from a longer one. Past that it fails with a
// *tooLargeError, and so does a body whose announced length is over max,
// before anything is read. Closing it unread closes the connection, which
// is how the server learns to stop sending.
type cappedBody struct {
	body      io.ReadCloser
	max       int64
	left      int64 // how much more may be read: max+1 less what was read
	announced int64 // Content-Length, -1 when unknown
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 || b.announced > b.max {
		return 0, &tooLargeError{max: b.max}
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.body.Read(p)
	b.left -= int64(n)
	if b.left <= 0 {
		return n, &tooLargeError{max: b.max}
	}
	return n, err
}

func (b *cappedBody) Close() error { return b.body.Close() }

// tooLargeError is the read error of a body longer than max bytes.
type tooLargeError struct{ max int64 }

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("the answer is over maxBytes (%d bytes)", e.max)
}
