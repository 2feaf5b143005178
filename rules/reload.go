package rules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Loader holds the policies in service and reloads them on demand. A
// reload that fails keeps the last good set in service: a broken commit to
// the policy repository must not take analyses down.
type Loader struct {
	paths []string
	opts  Options

	mu          sync.Mutex // serializes reloads
	fingerprint string

	current atomic.Pointer[Set]
	status  atomic.Pointer[LoadStatus]
}

// LoadStatus describes the latest reload attempt.
type LoadStatus struct {
	// LastAttempt and LastSuccess are when a reload last ran and last
	// succeeded.
	LastAttempt, LastSuccess time.Time
	// Err is the latest attempt's error; nil when it succeeded.
	Err error
}

// NewLoader returns a loader for the paths; nothing is loaded until Reload.
// It checks nothing against a server's configuration: see NewLoaderWith.
func NewLoader(paths ...string) *Loader { return NewLoaderWith(Options{}, paths...) }

// NewLoaderWith returns a loader that loads the paths with options, such as
// the sources the server has configured; nothing is loaded until Reload.
func NewLoaderWith(o Options, paths ...string) *Loader {
	l := &Loader{paths: paths, opts: o}
	l.status.Store(&LoadStatus{})
	return l
}

// Paths returns the paths the loader reads.
func (l *Loader) Paths() []string { return l.paths }

// Set returns the policies in service, or nil before the first successful
// load.
func (l *Loader) Set() *Set { return l.current.Load() }

// Status returns the latest reload's outcome.
func (l *Loader) Status() LoadStatus { return *l.status.Load() }

// Reload loads the paths again. On success the new set replaces the old
// one; on failure the old one stays and the error (Errors, with every
// problem's file:line:col) is returned and kept in Status. A load that
// finds no policy at all fails too, with an error wrapping ErrNoPolicies.
func (l *Loader) Reload() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reload()
}

func (l *Loader) reload() error {
	// The fingerprint is taken before the files are read: a change made
	// while they load is seen by the next poll, never lost. It is kept
	// for a failed load too, so that the same broken files (or an empty
	// directory) are reported once, not on every poll.
	fp, fpErr := fingerprintPaths(l.paths)
	if fpErr != nil {
		fp = ""
	}
	l.fingerprint = fp
	now := time.Now()
	st := &LoadStatus{LastAttempt: now, LastSuccess: l.Status().LastSuccess}
	set, err := LoadWith(l.opts, l.paths...)
	if err == nil && len(set.Policies) == 0 {
		err = fmt.Errorf("%w in %s: refusing to load an empty set", ErrNoPolicies, strings.Join(l.paths, ", "))
	}
	if err != nil {
		st.Err = err
		l.status.Store(st)
		return err
	}
	st.LastSuccess = now
	l.current.Store(set)
	l.status.Store(st)
	return nil
}

// ReloadIfChanged reloads when the content of the policy files changed
// since the last reload, and reports whether it tried.
func (l *Loader) ReloadIfChanged() (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fp, err := fingerprintPaths(l.paths)
	if err == nil && fp == l.fingerprint {
		return false, nil
	}
	return true, l.reload()
}

// Watch polls the policy files every interval and reloads when their
// content changes, until ctx is done. onReload is called after each attempt.
//
// Polling content rather than watching inotify events is deliberate:
// Kubernetes ConfigMap volumes and git-sync both publish a change by
// swapping a symlink, which file-event watchers often miss, and a policy
// directory is small enough to hash every few seconds.
func (l *Loader) Watch(ctx context.Context, interval time.Duration, onReload func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if tried, err := l.ReloadIfChanged(); tried && onReload != nil {
				onReload(err)
			}
		}
	}
}

// fingerprintPaths hashes the names and content of every policy file under
// the paths, walking them as Load does.
func fingerprintPaths(paths []string) (string, error) {
	h := sha256.New()
	for _, root := range paths {
		files, err := policyFiles(root)
		if err != nil {
			return "", err
		}
		for _, path := range files {
			if err := hashFile(h, path); err != nil {
				return "", err
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashFile writes path's name and content to h.
func hashFile(h io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	io.WriteString(h, path+"\x00")
	_, err = io.Copy(h, f)
	return err
}
