package main

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/aurum/canary/analysis/policytest"
)

// runTest runs policy unit tests: exit 0 when every test passes, 1 when any
// fails or a file cannot be used. Output is promtool-like and has no
// timings, so it can be compared in CI.
func runTest(ctx context.Context, c *cli, args []string) int {
	fs := c.newFlags("test")
	runRE := fs.String("run", "", "run only the tests whose name matches this regular expression")
	junit := fs.String("junit", "", "also write a JUnit XML report to this file")
	files, err := parseArgs(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(files) == 0 {
		fs.Usage()
		return exitError
	}
	var opts policytest.Options
	if *runRE != "" {
		if opts.Run, err = regexp.Compile(*runRE); err != nil {
			return c.usageError(fs, "--run: %v", err)
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
	if *junit != "" {
		if err := writeJUnit(*junit, results); err != nil {
			fmt.Fprintf(c.stderr, "canary test: %v\n", err)
			return exitError
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
