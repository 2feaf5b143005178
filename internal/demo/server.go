package demo

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// server is an http.Server on its own listener whose shutdown does not
// wait for connections that never sent a request. http.Server.Shutdown
// counts such a connection as active for its first five seconds, and the
// demo's HTTP clients leave them behind: a request canceled while its
// connection was being dialled leaves the dial to finish in the background
// and the connection idle in the client's pool. Without this, stopping a
// World would often take the whole shutdown timeout.
type server struct {
	srv *http.Server
	ln  net.Listener

	mu    sync.Mutex
	fresh map[net.Conn]struct{} // connections in http.StateNew
}

func newServer(h http.Handler) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &server{ln: ln, fresh: map[net.Conn]struct{}{}}
	s.srv = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ConnState: s.track}
	return s, nil
}

func (s *server) track(c net.Conn, state http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if state == http.StateNew {
		s.fresh[c] = struct{}{}
	} else {
		delete(s.fresh, c)
	}
}

// url is http://<listener address>.
func (s *server) url() string { return "http://" + s.ln.Addr().String() }

// serve answers on the listener until shutdown.
func (s *server) serve() error {
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// shutdown stops the server gracefully within ctx, closing connections
// that have not sent a request as it goes, and closes whatever is left
// when ctx ends. served says whether serve ran; if not, the listener is
// closed here, since only Serve would have closed it.
func (s *server) shutdown(ctx context.Context, served bool) error {
	if !served {
		return s.ln.Close()
	}
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Shutdown(ctx) }()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		s.closeFresh()
		select {
		case err := <-errc:
			if err != nil {
				_ = s.srv.Close()
			}
			return err
		case <-tick.C:
		}
	}
}

func (s *server) closeFresh() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.fresh {
		_ = c.Close()
		delete(s.fresh, c)
	}
}
