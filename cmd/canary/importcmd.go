package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/aurum/canary/rules/importer"
)

// Exit codes of canary import, besides exitOK (every template carried over
// whole) and exitError (bad input, nothing importable, a file not written).
const exitPartial = 2 // policies written, but something was not carried over

// runImport turns other tools' templates into policies: one per template,
// to stdout or, with --out, a file per policy; what was not carried over
// goes to stderr.
func runImport(_ context.Context, c *cli, args []string) int {
	fs := c.newFlags("import")
	out := fs.String("out", "", "write each policy to DIR/NAME.yaml instead of stdout")
	force := fs.Bool("force", false, "with --out, replace policy files that exist")
	mesh := fs.String("mesh-provider", "", "flagger: the provider of Canaries that name none (Flagger's -mesh-provider), for the built-in metrics: "+importer.FlaggerBuiltinProviders())
	rest, err := parseArgs(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(rest) < 2 {
		fs.Usage()
		return exitError
	}
	tool, files := rest[0], rest[1:]
	inputs := map[string][]byte{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(c.stderr, "canary import: %v\n", err)
			return exitError
		}
		inputs[f] = data
	}
	docs, notes, err := importer.Import(tool, files, inputs, importer.Options{MeshProvider: *mesh})
	if err != nil {
		fmt.Fprintf(c.stderr, "canary import: %v\n", err)
		return exitError
	}
	if *out != "" {
		if err := writePolicies(*out, docs, *force); err != nil {
			fmt.Fprintf(c.stderr, "canary import: %v\n", err)
			return exitError
		}
		for _, d := range docs {
			fmt.Fprintf(c.stderr, "wrote %s (%s)\n", filepath.Join(*out, d.Name+".yaml"), d.From)
		}
	} else {
		for i, d := range docs {
			if i > 0 {
				fmt.Fprintln(c.stdout, "---")
			}
			c.stdout.Write(d.YAML)
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(c.stderr, "Not carried over:")
		for _, n := range notes {
			fmt.Fprintf(c.stderr, "  - %s\n", n)
		}
	}
	switch {
	case len(docs) == 0:
		fmt.Fprintln(c.stderr, "canary import: no policy could be made of the input")
		return exitError
	case len(notes) > 0:
		return exitPartial
	}
	return exitOK
}

// writePolicies writes each document to dir/NAME.yaml. Without force it
// writes none when one of the files exists: a policy edited by hand is not
// replaced by surprise.
func writePolicies(dir string, docs []importer.Document, force bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var exist []error
	for _, d := range docs {
		path := filepath.Join(dir, d.Name+".yaml")
		if old, err := os.ReadFile(path); err == nil && !force && !bytes.Equal(old, d.YAML) {
			exist = append(exist, fmt.Errorf("%s exists (use --force to replace it)", path))
		}
	}
	if len(exist) > 0 {
		return errors.Join(exist...)
	}
	for _, d := range docs {
		if err := os.WriteFile(filepath.Join(dir, d.Name+".yaml"), d.YAML, 0o644); err != nil {
			return err
		}
	}
	return nil
}
