package main

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// suites is policytest's testdata, whose golden reports name the suites
// relative to it ("testdata/fail.yaml").
const suites = "../../policytest/testdata"

// goldenReport is the report policytest's tests pin for a suite, with the
// suite named as this test names it.
func goldenReport(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(suites, name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(data), "testdata/", suites+"/")
}

func TestPolicyTest(t *testing.T) {
	empty := t.TempDir()
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		stdout     string // exact, when not empty
		stdoutFile string // a golden report of policytest's testdata, when not empty
		stderr     string // contained, when not empty
	}{
		{name: "the example suite passes", args: []string{"../../examples"}, code: 0, stdout: "ok: 30 passed, 0 failed (1 suite)\n"},
		{name: "a suite file whatever its name", args: []string{suites + "/pass.yaml"}, code: 0, stdoutFile: "pass.out"},
		{name: "-v lists passing cases", args: []string{"-v", suites + "/pass.yaml"}, code: 0, stdoutFile: "pass.verbose.out"},
		{name: "flags after the paths", args: []string{suites + "/pass.yaml", "-v"}, code: 0, stdoutFile: "pass.verbose.out"},
		{name: "a failing suite explains each failure", args: []string{suites + "/fail.yaml"}, code: 1, stdoutFile: "fail.out"},
		{name: "a broken policy fails every case", args: []string{suites + "/broken.yaml"}, code: 1, stdoutFile: "broken.out"},
		{name: "a directory is searched recursively", args: []string{suites + "/dir"}, code: 0, stdout: "ok: 2 passed, 0 failed (2 suites)\n"},
		{name: "--run selects by suite and case name", args: []string{"--run", "^bookstore/(carol|dave)", "-v", "../../examples"}, code: 0,
			stdout: "ok   ../../examples/bookstore.test.yaml: carol's two roles add up\n" +
				"ok   ../../examples/bookstore.test.yaml: dave invites members to acme\n" +
				"ok   ../../examples/bookstore.test.yaml: dave cannot invite members to globex\n" +
				"ok   ../../examples/bookstore.test.yaml: carol holds all six bookstore permissions\n" +
				"ok   ../../examples/bookstore.test.yaml: dave's permissions in acme on orders\n" +
				"ok: 5 passed, 0 failed (1 suite)\n"},
		{name: "--run selects by case name", args: []string{"--run", "^bob reads orders$", suites + "/fail.yaml"}, code: 1,
			stdout: "FAIL ../../policytest/testdata/fail.yaml: bob reads orders\n" +
				"    check:    subject bob, resource https://api.store.io/orders, action read:order\n" +
				"    want:     allowed GRANTED by order_admin\n" +
				"    got:      denied NO_PERMISSION (revision bookstore-2026-11-20.1)\n" +
				"    because:  bob's effective roles: product_admin; they grant on https://api.store.io/orders: nothing\n" +
				"FAIL: 0 passed, 1 failed (1 suite)\n"},
		{name: "--run that matches nothing", args: []string{"--run", "nothing like this", "../../examples"}, code: 2, stderr: `no case matches --run "nothing like this"`},
		{name: "an invalid --run", args: []string{"--run", "(", "../../examples"}, code: 2, stderr: "--run: error parsing regexp"},
		{name: "no suites", args: []string{empty}, code: 2, stderr: "no test suites (files named *.test.yaml or *.test.yml) in"},
		{name: "a missing path", args: []string{filepath.Join(empty, "nowhere")}, code: 2, stderr: "no such file or directory"},
		{name: "a malformed suite", args: []string{suites + "/malformed/bad-reason.yaml", suites + "/pass.yaml"}, code: 2, stdout: "-",
			stderr: `bad-reason.yaml: line 3: checks[0] "alice downloads": unknown reason "DENIED"`},
		{name: "every malformed suite is reported", args: []string{suites + "/malformed"}, code: 2, stdout: "-"},
		{name: "an unknown flag", args: []string{"--frobnicate"}, code: 2, stdout: "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, append([]string{"policy", "test"}, tc.args...)...)
			if tc.stdoutFile != "" {
				tc.stdout = goldenReport(t, tc.stdoutFile)
			}
			if tc.stdout == "-" {
				tc.stdout = ""
				if stdout != "" {
					t.Errorf("stdout %q, want nothing", stdout)
				}
			}
			if code != tc.code || (tc.stdout != "" && stdout != tc.stdout) || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("policy test %q: exit %d, want %d\nstdout:\n%s\nwant:\n%s\nstderr: %q, want it to contain %q",
					tc.args, code, tc.code, stdout, tc.stdout, stderr, tc.stderr)
			}
		})
	}
}

// TestPolicyTestMalformedSuitesAreEachReported: a directory of malformed suites (found
// because they are named as suites) reports each, and runs none.
func TestPolicyTestMalformedSuitesAreEachReported(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"a.test.yaml": "checks: []\n",
		"b.test.yml":  "policy: {}\npolicy_file: x.yaml\nchecks: [{name: c, subject: s, resource: r, action: a, allowed: true}]\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, stderr := runCmd(t, "policy", "test", dir)
	for _, want := range []string{"a.test.yaml: no policy", "a.test.yaml: no cases", "b.test.yml: both policy and policy_file are set"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if code != 2 || stdout != "" || strings.Contains(stderr, "panic") {
		t.Errorf("exit %d, stdout %q; want 2 and nothing", code, stdout)
	}
}

func TestPolicyTestJUnit(t *testing.T) {
	report := filepath.Join(t.TempDir(), "report.xml")
	code, _, stderr := runCmd(t, "policy", "test", "--junit", report, "../../examples", suites+"/fail.yaml", suites+"/broken.yaml")
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, stderr)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Errors   int `xml:"errors,attr"`
		Suites   []struct {
			Name  string `xml:"name,attr"`
			Tests int    `xml:"tests,attr"`
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("the report is not XML: %v\n%s", err, data)
	}
	if doc.Tests != 46 || doc.Failures != 11 || doc.Errors != 2 || len(doc.Suites) != 3 || doc.Suites[0].Name != "../../examples/bookstore.test.yaml" || doc.Suites[0].Tests != 30 {
		t.Errorf("report: %d tests, %d failures, %d errors in %d suites; want 46, 11, 2 in 3, the first the example's with 30:\n%s",
			doc.Tests, doc.Failures, doc.Errors, len(doc.Suites), data)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(report), ".*tmp*")); len(left) != 0 {
		t.Errorf("--junit left temporary files: %q", left)
	}

	code, _, stderr = runCmd(t, "policy", "test", "--junit", filepath.Join(t.TempDir(), "no", "such", "dir.xml"), "../../examples")
	if code != 2 || !strings.Contains(stderr, "--junit:") {
		t.Errorf("--junit into a missing directory: exit %d, %q; want 2 and the error", code, stderr)
	}
}

func TestPolicyTestHelp(t *testing.T) {
	code, _, stderr := runCmd(t, "policy", "test", "--help")
	for _, want := range []string{"Example:\n  rolecall policy test examples", "*.test.yaml", "-run regexp", "-junit file"} {
		if code != 0 || !strings.Contains(stderr, want) {
			t.Errorf("policy test --help: exit %d, lacks %q:\n%s", code, want, stderr)
		}
	}
	if code, stdout, _ := runCmd(t, "policy", "--help"); code != 0 || !strings.Contains(stdout, "  test [PATH...]") {
		t.Errorf("policy --help: exit %d, lacks the test subcommand:\n%s", code, stdout)
	}
}
