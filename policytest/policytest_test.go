package policytest_test

import (
	"bytes"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rolecall/rolecall/policytest"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/ with what the code prints")

// golden compares got with the file path, or rewrites it under -update.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

func load(t *testing.T, path string) *policytest.Suite {
	t.Helper()
	s, err := policytest.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestReports runs each suite of testdata/ and compares its report, with
// and without -v, with the golden NAME.out and NAME.verbose.out.
func TestReports(t *testing.T) {
	for _, name := range []string{"pass", "fail", "broken"} {
		t.Run(name, func(t *testing.T) {
			s := load(t, filepath.Join("testdata", name+".yaml"))
			r := policytest.Run(s, nil)
			if n := len(s.Checks) + len(s.ListPermissions) + len(s.WhoCan); len(r.Cases) != n {
				t.Fatalf("ran %d cases, want all %d", len(r.Cases), n)
			}
			for _, verbose := range []bool{false, true} {
				var out bytes.Buffer
				if err := policytest.WriteText(&out, []policytest.Result{r}, verbose); err != nil {
					t.Fatal(err)
				}
				file := name + ".out"
				if verbose {
					file = name + ".verbose.out"
				}
				golden(t, filepath.Join("testdata", file), out.String())
			}
		})
	}
}

// TestFailedCounts pins which cases of the failing suites fail, so that a
// golden file rewritten by mistake cannot hide a change of verdict.
func TestFailedCounts(t *testing.T) {
	for _, tc := range []struct {
		suite          string
		passed, failed int
		problems       int
	}{
		{suite: "pass", passed: 3},
		{suite: "fail", passed: 3, failed: 11},
		{suite: "broken", failed: 2, problems: 2},
	} {
		r := policytest.Run(load(t, filepath.Join("testdata", tc.suite+".yaml")), nil)
		if got := r.Failed(); got != tc.failed || len(r.Cases)-got != tc.passed || len(r.PolicyProblems) != tc.problems {
			t.Errorf("%s: %d passed, %d failed, %d policy problems; want %d, %d, %d",
				tc.suite, len(r.Cases)-got, got, len(r.PolicyProblems), tc.passed, tc.failed, tc.problems)
		}
	}
}

// TestMalformedSuites loads each suite of testdata/malformed/ and compares
// the error with the golden NAME.err.
func TestMalformedSuites(t *testing.T) {
	paths, err := filepath.Glob("testdata/malformed/*.yaml")
	if err != nil || len(paths) < 10 {
		t.Fatalf("want the malformed suites of testdata/malformed: %v, %d found", err, len(paths))
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			s, err := policytest.Load(path)
			if err == nil {
				t.Fatalf("Load accepted the suite: %+v", s)
			}
			if !strings.HasPrefix(err.Error(), path+": ") {
				t.Errorf("the error does not start with the suite's path: %v", err)
			}
			golden(t, strings.TrimSuffix(path, ".yaml")+".err", err.Error()+"\n")
		})
	}
}

func TestRunSelects(t *testing.T) {
	s := load(t, "../examples/bookstore.test.yaml")
	for _, tc := range []struct {
		pattern string
		want    []string
	}{
		{`^bookstore/carol`, []string{"bookstore/carol's two roles add up", "bookstore/carol holds all six bookstore permissions"}},
		{`catalogue sync`, []string{"bookstore/the catalogue sync writes products", "bookstore/the catalogue sync cannot delete products"}},
		{`^bob is not a member of acme$`, []string{"bookstore/bob is not a member of acme"}},
		{`^other/`, nil},
	} {
		re := regexp.MustCompile(tc.pattern)
		r := policytest.Run(s, func(id, name string) bool { return re.MatchString(id) || re.MatchString(name) })
		var got []string
		for _, c := range r.Cases {
			got = append(got, c.ID)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("--run %s (-want +got):\n%s", tc.pattern, diff)
		}
	}
}

func TestFind(t *testing.T) {
	for _, tc := range []struct {
		paths []string
		want  []string
	}{
		{[]string{"testdata/dir"}, []string{"testdata/dir/a.test.yaml", "testdata/dir/sub/b.test.yml"}},
		// A file named is a suite whatever its name; each is found once.
		{[]string{"testdata/dir/notasuite.yaml", "testdata/dir", "testdata/dir/a.test.yaml"}, []string{"testdata/dir/notasuite.yaml", "testdata/dir/a.test.yaml", "testdata/dir/sub/b.test.yml"}},
		{[]string{"testdata/malformed"}, nil},
	} {
		got, err := policytest.Find(tc.paths)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Find(%q) (-want +got):\n%s", tc.paths, diff)
		}
	}
	if _, err := policytest.Find([]string{"testdata/nowhere"}); err == nil {
		t.Error("Find of a missing path: no error")
	}
}

func TestBaseName(t *testing.T) {
	for path, want := range map[string]string{
		"examples/bookstore.test.yaml": "bookstore",
		"a/b.test.yml":                 "b",
		"testdata/fail.yaml":           "fail",
		"suite":                        "suite",
	} {
		if got := policytest.BaseName(path); got != want {
			t.Errorf("BaseName(%q) = %q, want %q", path, got, want)
		}
	}
}

// The JUnit report as CI systems read it.
type (
	junitSuites struct {
		XMLName  xml.Name     `xml:"testsuites"`
		Tests    int          `xml:"tests,attr"`
		Failures int          `xml:"failures,attr"`
		Errors   int          `xml:"errors,attr"`
		Time     float64      `xml:"time,attr"`
		Suites   []junitSuite `xml:"testsuite"`
	}
	junitSuite struct {
		Name     string      `xml:"name,attr"`
		Tests    int         `xml:"tests,attr"`
		Failures int         `xml:"failures,attr"`
		Errors   int         `xml:"errors,attr"`
		Time     float64     `xml:"time,attr"`
		Cases    []junitCase `xml:"testcase"`
	}
	junitCase struct {
		Name      string        `xml:"name,attr"`
		Classname string        `xml:"classname,attr"`
		Time      float64       `xml:"time,attr"`
		Failure   *junitProblem `xml:"failure"`
		Error     *junitProblem `xml:"error"`
	}
	junitProblem struct {
		Message string `xml:"message,attr"`
		Text    string `xml:",chardata"`
	}
)

func TestJUnit(t *testing.T) {
	var results []policytest.Result
	for _, name := range []string{"pass", "fail", "broken"} {
		results = append(results, policytest.Run(load(t, filepath.Join("testdata", name+".yaml")), nil))
	}
	data, err := policytest.JUnit(results, time.Date(2026, 12, 2, 18, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte(xml.Header)) {
		t.Errorf("no XML declaration: %.60s", data)
	}
	var doc junitSuites
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("the report is not XML: %v\n%s", err, data)
	}
	if doc.Tests != 19 || doc.Failures != 11 || doc.Errors != 2 || len(doc.Suites) != 3 {
		t.Fatalf("testsuites: %d tests, %d failures, %d errors, %d suites; want 19, 11, 2, 3", doc.Tests, doc.Failures, doc.Errors, len(doc.Suites))
	}
	for i, want := range []struct {
		name                     string
		tests, failures, errors_ int
	}{{"testdata/pass.yaml", 3, 0, 0}, {"testdata/fail.yaml", 14, 11, 0}, {"testdata/broken.yaml", 2, 0, 2}} {
		s := doc.Suites[i]
		if s.Name != want.name || s.Tests != want.tests || s.Failures != want.failures || s.Errors != want.errors_ || len(s.Cases) != want.tests {
			t.Errorf("testsuite %d: %s with %d tests (%d testcases), %d failures, %d errors; want %s with %d, %d, %d",
				i, s.Name, s.Tests, len(s.Cases), s.Failures, s.Errors, want.name, want.tests, want.failures, want.errors_)
		}
		for _, c := range s.Cases {
			if c.Classname != s.Name {
				t.Errorf("testcase %q: classname %q, want the suite %q", c.Name, c.Classname, s.Name)
			}
		}
	}

	byName := map[string]*junitProblem{}
	for _, c := range doc.Suites[1].Cases {
		byName[c.Name] = c.Failure
	}
	bob := byName["bob reads orders"]
	if bob == nil {
		t.Fatal(`"bob reads orders": no failure element`)
	}
	if want := "want: allowed GRANTED by order_admin; got: denied NO_PERMISSION (revision bookstore-2026-11-20.1)"; bob.Message != want {
		t.Errorf("failure message = %q, want %q", bob.Message, want)
	}
	if !strings.Contains(bob.Text, "because:  bob's effective roles: product_admin; they grant on https://api.store.io/orders: nothing") {
		t.Errorf("failure text lacks the explanation:\n%s", bob.Text)
	}
	if byName["alice reads orders"] != nil {
		t.Error(`"alice reads orders" passed but has a failure element`)
	}
	broken := doc.Suites[2].Cases[0].Error
	if broken == nil || !strings.Contains(broken.Text, `role "writer" is not defined`) {
		t.Errorf("a case of the broken policy: error %+v, want the policy's problems", broken)
	}
	for _, s := range doc.Suites {
		if s.Time < 0 || slices.ContainsFunc(s.Cases, func(c junitCase) bool { return c.Time < 0 }) {
			t.Errorf("testsuite %s: a negative time", s.Name)
		}
	}
}
