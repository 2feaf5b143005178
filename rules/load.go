package rules

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Set is a loaded, compiled set of policies, safe to share between
// goroutines once loaded.
type Set struct {
	// Policies in name order.
	Policies []*Policy
	// Files that were read, in walk order.
	Files  []string
	byName map[string]*Policy
}

// Get returns the named policy or an error wrapping ErrUnknownPolicy.
func (s *Set) Get(name string) (*Policy, error) {
	if p, ok := s.byName[name]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownPolicy, name)
}

// Sources lists the sources a server has configured, by query kind
// (KindPrometheus, KindKafka, ...): the names policies may give as source,
// kafka.cluster or postgres.database; "" is the kind's default source. A
// kind absent from Sources has no configured source at all, so every query
// of that kind is an error, except for the probe kinds http and tcp: their
// targets are in the policies, so their default source needs no
// configuration and always exists.
type Sources map[string][]string

// Options change how policies load. The zero value checks nothing against a
// server's configuration.
type Options struct {
	// Sources, when not nil, makes a query whose source the server lacks
	// a load error, rather than an error on every analysis. nil checks
	// nothing, for a load without a server's configuration, such as
	// `canary check` given no config.
	Sources Sources
}

// Load reads policy files and directory trees. A directory contributes every
// *.yaml and *.yml file below it, skipping hidden entries such as .git, so a
// Git checkout can be loaded as it is. Every problem in every file is
// reported together as Errors; the set is returned only when there are none.
// It checks nothing against a server's configuration: see LoadWith.
func Load(paths ...string) (*Set, error) { return LoadWith(Options{}, paths...) }

// LoadWith is Load with options, such as the sources the server has
// configured.
func LoadWith(o Options, paths ...string) (*Set, error) {
	var files []string
	var errs Errors
	for _, root := range paths {
		found, err := policyFiles(root)
		if err != nil {
			errs = append(errs, &Error{File: root, Err: err})
			continue
		}
		files = append(files, found...)
	}
	set, perr := loadFiles(o, files)
	if es, ok := perr.(Errors); ok {
		errs = append(errs, es...)
	}
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	return set, nil
}

// policyFiles lists the policy files path stands for: path itself when it
// is a file, else every *.yaml and *.yml file below it, skipping hidden
// entries such as .git and following a symlinked directory.
func policyFiles(path string) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	root, err := walkRoot(path)
	if err != nil {
		return nil, err
	}
	var files []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != root && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() && isPolicyFile(path) {
			files = append(files, path)
		}
		return nil
	})
	return files, err
}

func isPolicyFile(path string) bool {
	ext := filepath.Ext(path)
	return ext == ".yaml" || ext == ".yml"
}

// LoadFiles parses exactly the given files, checking nothing against a
// server's configuration.
func LoadFiles(files []string) (*Set, error) { return loadFiles(Options{}, files) }

func loadFiles(o Options, files []string) (*Set, error) {
	set := &Set{byName: map[string]*Policy{}}
	var errs Errors
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, &Error{File: f, Err: err})
			continue
		}
		set.Files = append(set.Files, f)
		pols, perrs := parseDocs(f, data, o)
		errs = append(errs, perrs...)
		for _, p := range pols {
			if p.Name == "" {
				continue
			}
			if first, dup := set.byName[p.Name]; dup {
				errs = append(errs, &Error{File: f, Line: p.Line, Column: p.Column, Policy: p.Name,
					Err: fmt.Errorf("duplicate policy name (first at %s:%d:%d)", first.File, first.Line, first.Column)})
				continue
			}
			set.byName[p.Name] = p
			set.Policies = append(set.Policies, p)
		}
	}
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	sort.Slice(set.Policies, func(i, j int) bool { return set.Policies[i].Name < set.Policies[j].Name })
	return set, nil
}

// walkRoot resolves a directory given through a symlink: WalkDir does not
// follow its root, and git-sync and ConfigMap volumes publish policy
// directories exactly as symlinks.
func walkRoot(root string) (string, error) {
	info, err := os.Lstat(root)
	if err != nil || info.Mode()&fs.ModeSymlink == 0 {
		return root, err
	}
	return filepath.EvalSymlinks(root)
}
