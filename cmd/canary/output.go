package main

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/spf13/cobra"
	sigsyaml "sigs.k8s.io/yaml"
)

// Output formats of -o: every command that prints a result takes them.
const (
	outputTable = "table"
	outputJSON  = "json"
	outputYAML  = "yaml"
)

// outputFormats are -o's values, as completion offers them.
var outputFormats = []string{outputTable, outputJSON, outputYAML}

// addOutputFlag adds -o/--output to cmd, with its values completed.
func addOutputFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVarP(p, "output", "o", outputTable, "output format: table, json or yaml")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(outputFormats, cobra.ShellCompDirectiveNoFileComp))
}

// checkOutput refuses an -o value that is not a format; aliases are older
// names of table (backtest's text).
func checkOutput(output string, aliases ...string) error {
	if slices.Contains(outputFormats, output) || slices.Contains(aliases, output) {
		return nil
	}
	return fmt.Errorf("-o must be table, json or yaml, not %q", output)
}

// render prints v as -o asks: JSON or YAML of v (the API's field names), or
// the table table writes.
func (c *cli) render(cmd *cobra.Command, output string, v any, table func()) int {
	switch output {
	case outputJSON:
		if !c.writeJSON(cmd, v) {
			return exitError
		}
	case outputYAML:
		data, err := sigsyaml.Marshal(v)
		if err != nil {
			return c.errorf(cmd, "%v", err)
		}
		c.stdout.Write(data)
	default:
		table()
	}
	return exitOK
}

// writeJSON prints v as indented JSON, the answer of -o json.
func (c *cli) writeJSON(cmd *cobra.Command, v any) bool {
	enc := json.NewEncoder(c.stdout)
	// Reasons hold comparisons (0.05 > 0.01): written as they read, as the
	// HTTP API writes them.
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		c.errorf(cmd, "%v", err)
		return false
	}
	return true
}
