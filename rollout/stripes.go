package rollout

import (
	"hash/maphash"
	"sync"
)

// stripes serialises work per key with a fixed set of mutexes: a map of
// one mutex per key would grow with every rollout and target ever seen.
// Two keys that share a stripe only wait for each other, which is rare
// and harmless.
type stripes struct {
	seed maphash.Seed
	mu   [64]sync.Mutex
}

func newStripes() *stripes { return &stripes{seed: maphash.MakeSeed()} }

// lock locks key's stripe and returns its unlock.
func (s *stripes) lock(key string) func() {
	m := &s.mu[maphash.String(s.seed, key)%uint64(len(s.mu))]
	m.Lock()
	return m.Unlock
}
