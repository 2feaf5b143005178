package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/aurum/canary/rules/importer"
)

// Exit codes of canary import, besides exitOK (every template carried over
// whole) and exitError (bad input, nothing importable, a file not written).
const exitPartial = 2 // policies written, but something was not carried over

// importTools are the tools canary import reads the templates of.
var importTools = []string{"argo", "flagger", "keptn"}

func (c *cli) newImportCmd() *cobra.Command {
	var (
		out, mesh string
		force     bool
	)
	cmd := &cobra.Command{
		Use:   "import argo|flagger|keptn [--out DIR [--force]] [--mesh-provider P] FILE...",
		Short: "turn Argo Rollouts, Flagger and Keptn templates into policies",
		Long: `Turn Argo Rollouts AnalysisTemplates, Flagger MetricTemplates and Canaries, and
Keptn SLOs into policies: one per template, to stdout or, with --out, a file
per policy. What was not carried over goes to stderr.

The exit code is 0 when every template was carried over whole, 2 when
policies were written with notes, 1 for bad input or nothing importable.`,
		Example: `  canary import argo analysistemplate.yaml
  canary import flagger --mesh-provider nginx --out policies/ canary.yaml metrictemplates.yaml`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) < 2 {
				return errors.New("give the tool (argo, flagger or keptn) and the files to import")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return exit(c.importTemplates(cmd, out, mesh, force, args[0], args[1:]))
		},
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return importTools, cobra.ShellCompDirectiveNoFileComp
			}
			return []cobra.Completion{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&out, "out", "", "write each policy to DIR/NAME.yaml instead of stdout")
	fs.BoolVar(&force, "force", false, "with --out, replace policy files that exist")
	fs.StringVar(&mesh, "mesh-provider", "", "flagger: the provider of Canaries that name none (Flagger's -mesh-provider), for the built-in metrics: "+importer.FlaggerBuiltinProviders())
	_ = cmd.MarkFlagDirname("out")
	_ = cmd.RegisterFlagCompletionFunc("mesh-provider", func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return strings.Split(importer.FlaggerBuiltinProviders(), ", "), cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// importTemplates turns other tools' templates into policies: one per
// template, to stdout or, with out, a file per policy; what was not
// carried over goes to stderr.
func (c *cli) importTemplates(cmd *cobra.Command, out, mesh string, force bool, tool string, files []string) int {
	inputs := map[string][]byte{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return c.errorf(cmd, "%v", err)
		}
		inputs[f] = data
	}
	docs, notes, err := importer.Import(tool, files, inputs, importer.Options{MeshProvider: mesh})
	if err != nil {
		return c.errorf(cmd, "%v", err)
	}
	if out != "" {
		if err := writePolicies(out, docs, force); err != nil {
			return c.errorf(cmd, "%v", err)
		}
		for _, d := range docs {
			fmt.Fprintf(c.stderr, "wrote %s (%s)\n", filepath.Join(out, d.Name+".yaml"), d.From)
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
		return c.errorf(cmd, "no policy could be made of the input")
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
