package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// cliDocsDir is where the repository keeps the CLI reference `canary docs`
// writes; a test fails when it is out of date.
const cliDocsDir = "docs/cli"

func (c *cli) newDocsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "docs DIR",
		Short: "write the CLI reference: a Markdown page per command",
		Long: `Write the CLI reference into DIR: a Markdown page per command, with its usage,
description, examples and flags, linked to its parent and subcommands.
The repository keeps it in ` + cliDocsDir + `; run ` + "`canary docs " + cliDocsDir + "`" + ` after a change.`,
		Example: "  canary docs " + cliDocsDir,
		Args:    exactlyOne("the directory to write into"),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return nil, cobra.ShellCompDirectiveFilterDirs
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			// The reference is canary's, whatever name this binary runs
			// under (kubectl-canary).
			if err := writeDocs(c.newRoot(false), args[0]); err != nil {
				return exit(c.errorf(cmd, "%v", err))
			}
			fmt.Fprintf(c.stderr, "canary: docs: wrote the CLI reference into %s\n", args[0])
			return nil
		},
	}
}

// writeDocs writes root's reference into dir. The pages carry no date,
// so that the reference of one commit is the same wherever it is made.
func writeDocs(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root.DisableAutoGenTag = true
	return doc.GenMarkdownTree(root, dir)
}
