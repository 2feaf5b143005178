// Package proptest holds what the stateful property tests share: how many
// random sequences they run, and where a sequence keeps its files.
package proptest

import (
	"flag"
	"os"
	"strconv"
	"testing"

	"pgregory.net/rapid"
)

// Checks is how many random sequences each property runs in make test.
const Checks = 1000

// Main runs the package's tests with rapid.checks at Checks, unless
// -rapid.checks or RAPID_CHECKS says otherwise. Call it from TestMain.
func Main(m *testing.M) int {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "rapid.checks" })
	if !set && os.Getenv("RAPID_CHECKS") == "" {
		if err := flag.Set("rapid.checks", strconv.Itoa(Checks)); err != nil {
			panic(err) // rapid's flag is registered when it is imported
		}
	}
	return m.Run()
}

// Dir is a fresh directory for one sequence, in memory when the machine
// has a tmpfs at /dev/shm: a thousand sequences open a thousand stores.
func Dir(t *rapid.T) string {
	base := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "canary-property-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
