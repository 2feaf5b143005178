package main

import (
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloader serves the certificate of a file pair and picks up a new
// one when the files change, as cert-manager and mounted Secrets rotate
// them, without a restart. The files are checked at most once a second,
// on handshakes.
type certReloader struct {
	certFile, keyFile string
	logger            *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	sum     [sha256.Size]byte
	checked time.Time
}

func newCertReloader(certFile, keyFile string, logger *slog.Logger) (*certReloader, error) {
	if certFile == "" || keyFile == "" {
		return nil, fmt.Errorf("tls: give both --tls-cert-file and --tls-key-file")
	}
	r := &certReloader{certFile: certFile, keyFile: keyFile, logger: logger}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

// load reads the pair when its content changed. A pair that does not load
// keeps the certificate in service (and is reported), as a broken policy
// change keeps the last good policies.
func (r *certReloader) load() error {
	certPEM, err := os.ReadFile(r.certFile)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	keyPEM, err := os.ReadFile(r.keyFile)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	sum := sha256.Sum256(append(append([]byte{}, certPEM...), keyPEM...))
	if r.cert != nil && sum == r.sum {
		return nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("tls: %s and %s: %w", r.certFile, r.keyFile, err)
	}
	if r.cert != nil {
		r.logger.Info("TLS certificate reloaded", "cert_file", r.certFile)
	}
	r.cert, r.sum = &cert, sum
	return nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) >= time.Second {
		r.checked = time.Now()
		if err := r.load(); err != nil {
			r.logger.Error("TLS certificate not reloaded; the previous one stays in service", "err", err)
		}
	}
	return r.cert, nil
}
