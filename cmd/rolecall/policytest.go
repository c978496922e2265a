package main

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/rolecall/rolecall/internal/atomicfile"
	"github.com/rolecall/rolecall/policytest"
)

func policyTest(args []string, sio stdio) error {
	fs := newFlags("policy test", "policy test [flags] [PATH...]",
		`Run policy test suites: YAML files naming a policy and the decisions it must
make (checks) and the permissions it must list (list_permissions). A PATH is a
suite file, or a directory searched recursively for files named *.test.yaml or
*.test.yml (skipping directories whose name starts with a dot); the default is
the current directory. Each failing case is printed
with what it wanted, what was decided and why, then a summary line. Exit code:
0 when every case passes, 1 when any fails, 2 for bad usage, a suite that
cannot be read or is malformed, or no suites at all.`,
		`  rolecall policy test examples
  rolecall policy test --run 'bookstore/catalogue' -v --junit report.xml .`,
		sio.err)
	runPattern := fs.String("run", "", "run only the cases that match this `regexp` (Go syntax), matched against \"suite/case name\" (suite: the file's name without .test.yaml) and against the case name")
	junit := fs.String("junit", "", "also write a JUnit XML report to this `file`")
	verbose := fs.Bool("v", false, "print passing cases too")
	paths, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	var match func(id, name string) bool
	if *runPattern != "" {
		re, err := regexp.Compile(*runPattern)
		if err != nil {
			return usageError("--run: %v", err)
		}
		match = func(id, name string) bool { return re.MatchString(id) || re.MatchString(name) }
	}
	if len(paths) == 0 {
		paths = []string{"."}
	}
	files, err := policytest.Find(paths)
	if err != nil {
		return &exitErr{code: exitError, err: err}
	}
	if len(files) == 0 {
		return usageError("no test suites (files named *.test.yaml or *.test.yml) in %v", paths)
	}
	var suites []*policytest.Suite
	var errs []error
	for _, f := range files {
		s, err := policytest.Load(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		suites = append(suites, s)
	}
	if len(errs) > 0 {
		fmt.Fprintln(sio.err, errors.Join(errs...))
		return &exitErr{code: exitError, err: errSilent}
	}

	start := time.Now()
	results := make([]policytest.Result, 0, len(suites))
	cases, failed := 0, 0
	for _, s := range suites {
		r := policytest.Run(s, match)
		cases += len(r.Cases)
		failed += r.Failed()
		results = append(results, r)
	}
	if cases == 0 {
		return usageError("no case matches --run %q", *runPattern)
	}
	if err := policytest.WriteText(sio.out, results, *verbose); err != nil {
		return err
	}
	if *junit != "" {
		data, err := policytest.JUnit(results, start)
		if err != nil {
			return err
		}
		if err := atomicfile.Write(*junit, data, 0o644, true); err != nil {
			return &exitErr{code: exitError, err: fmt.Errorf("--junit: %w", err)}
		}
	}
	if failed > 0 {
		return &exitErr{code: exitDeny, err: errSilent}
	}
	return nil
}
