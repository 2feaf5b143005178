package main

import (
	"encoding/xml"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/aurum/canary/analysis/policytest"
)

func (c *cli) newTestCmd() *cobra.Command {
	var runRE, junit string
	cmd := &cobra.Command{
		Use:   "test [--run REGEX] [--junit FILE] FILE...",
		Short: "run policy unit tests over recorded series",
		Long: `Run policy unit tests over recorded series, as promtool test rules does.

The exit code is 0 when every test passes, 1 when any fails or a file cannot
be used. The output has no timings, so it can be compared in CI.`,
		Example: `  canary test examples/tests/iso-ingest.test.yaml
  canary test --run '^error spike' --junit report.xml tests/*.test.yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error { return exit(c.test(cmd, runRE, junit, files)) },
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return []cobra.Completion{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
		},
	}
	cmd.Flags().StringVar(&runRE, "run", "", "run only the tests whose name matches this regular expression")
	cmd.Flags().StringVar(&junit, "junit", "", "also write a JUnit XML report to this file")
	_ = cmd.RegisterFlagCompletionFunc("run", noFiles)
	_ = cmd.MarkFlagFilename("junit", "xml")
	return cmd
}

// test runs policy unit tests: exit 0 when every test passes, 1 when any
// fails or a file cannot be used. Output is promtool-like and has no
// timings, so it can be compared in CI.
func (c *cli) test(cmd *cobra.Command, runRE, junit string, files []string) int {
	ctx := c.ctx
	var err error
	var opts policytest.Options
	if runRE != "" {
		if opts.Run, err = regexp.Compile(runRE); err != nil {
			return c.usageError(cmd, "--run: %v", err)
		}
	}
	var results []policytest.FileResult
	failed, total := 0, 0
	for _, f := range files {
		fmt.Fprintf(c.stdout, "Unit testing: %s\n", f)
		r := policytest.RunFile(ctx, f, opts)
		results = append(results, r)
		if r.Err != nil {
			fmt.Fprintf(c.stdout, "  %s %v\n", c.paint("FAILED"), indent(r.Err.Error(), "    "))
			failed++
			total++
			continue
		}
		for _, g := range r.Groups {
			total++
			if !g.Failed() {
				fmt.Fprintf(c.stdout, "  %s  %s\n", c.paint("PASS"), g.Name)
				continue
			}
			failed++
			fmt.Fprintf(c.stdout, "  %s  %s\n", c.paint("FAIL"), g.Name)
			for _, msg := range g.Failures {
				fmt.Fprintf(c.stdout, "    %s\n", indent(msg, "    "))
			}
		}
	}
	if junit != "" {
		if err := writeJUnit(junit, results); err != nil {
			return c.errorf(cmd, "%v", err)
		}
	}
	fmt.Fprintln(c.stdout)
	if failed > 0 {
		fmt.Fprintf(c.stdout, "%s: %d of %s failed\n", c.paint("FAILED"), failed, plural(total, "test"))
		return exitError
	}
	fmt.Fprintf(c.stdout, "%s: %s passed\n", c.paint("SUCCESS"), plural(total, "test"))
	return exitOK
}

func indent(s, prefix string) string {
	return strings.ReplaceAll(s, "\n", "\n"+prefix)
}

type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Cases    []junitCase `xml:"testcase"`
	Error    *junitText  `xml:"error,omitempty"`
}

type junitCase struct {
	Name    string     `xml:"name,attr"`
	Time    float64    `xml:"time,attr"`
	Failure *junitText `xml:"failure,omitempty"`
}

type junitText struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// writeJUnit writes one suite per test file, one case per group, as CI
// systems expect from promtool's --junit.
func writeJUnit(path string, results []policytest.FileResult) error {
	var doc junitSuites
	for _, r := range results {
		s := junitSuite{Name: r.File}
		if r.Err != nil {
			s.Errors = 1
			s.Error = &junitText{Message: "test file cannot be used", Text: r.Err.Error()}
		}
		for _, g := range r.Groups {
			tc := junitCase{Name: g.Name, Time: g.Duration.Seconds()}
			if g.Failed() {
				s.Failures++
				tc.Failure = &junitText{Message: fmt.Sprintf("%d expectation(s) not met", len(g.Failures)), Text: strings.Join(g.Failures, "\n")}
			}
			s.Cases = append(s.Cases, tc)
		}
		s.Tests = len(s.Cases)
		doc.Suites = append(doc.Suites, s)
	}
	out, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append([]byte(xml.Header), append(out, '\n')...), 0o644)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
