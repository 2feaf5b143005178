package main

import (
	"io"
	"os"

	"github.com/mattn/go-isatty"
)

// isTerminal reports whether w is a terminal, where verdicts are coloured.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// ANSI colours for verdicts.
const (
	ansiReset  = "\x1b[0m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiBold   = "\x1b[1m"
)

// paint colours s for a verdict or outcome when colour is on.
func (c *cli) paint(s string) string {
	if !c.color {
		return s
	}
	switch s {
	case "pass", "continue", "promote", "PASS", "SUCCESS":
		return ansiGreen + s + ansiReset
	case "fail", "rollback", "FAIL", "FAILED":
		return ansiRed + ansiBold + s + ansiReset
	case "inconclusive", "error", "pause":
		return ansiYellow + s + ansiReset
	}
	return s
}
