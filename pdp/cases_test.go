package pdp_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
	"github.com/rolecall/rolecall/policytest"
)

// The files of testdata/ are decision cases, policytest suites (a policy
// with the checks and permission listings to run against it), or
// validation cases: invalid policies with the problems they must produce.
// Adding a case needs no Go code. The example policy's own suite, in
// examples/, runs here too.

// validationFile is a file of validation cases.
type validationFile struct {
	Description string
	Invalid     []invalidCase
}

type invalidCase struct {
	Name     string
	Policy   yaml.Node
	Problems []string
}

// caseFiles returns testdata's files of each kind: suites, and validation
// cases (the files with an "invalid" key).
func caseFiles(t *testing.T) (suites []string, validation map[string]validationFile) {
	t.Helper()
	paths, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no case files in testdata: %v", err)
	}
	validation = map[string]validationFile{}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var keys map[string]yaml.Node
		if err := yaml.Unmarshal(data, &keys); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if _, ok := keys["invalid"]; !ok {
			suites = append(suites, path)
			continue
		}
		var vf validationFile
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&vf); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		validation[path] = vf
	}
	return suites, validation
}

func TestDecisionCases(t *testing.T) {
	suites, _ := caseFiles(t)
	examples, err := filepath.Glob("../examples/*.test.yaml")
	if err != nil || len(examples) == 0 {
		t.Fatalf("no suites in examples: %v", err)
	}
	for _, path := range append(suites, examples...) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			s, err := policytest.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			r := policytest.Run(s, nil)
			if r.PolicyProblems != nil {
				t.Fatalf("policy does not compile:\n%s", strings.Join(r.PolicyProblems, "\n"))
			}
			if len(r.Cases) != len(s.Checks)+len(s.ListPermissions)+len(s.WhoCan) {
				t.Fatalf("ran %d cases of %d", len(r.Cases), len(s.Checks)+len(s.ListPermissions)+len(s.WhoCan))
			}
			for _, c := range r.Cases {
				t.Run(c.Name, func(t *testing.T) {
					if c.Failure != "" {
						t.Errorf("\n%s", c.Failure)
					}
				})
			}
		})
	}
}

func TestValidationCases(t *testing.T) {
	n := 0
	_, validation := caseFiles(t)
	for path, vf := range validation {
		for _, c := range vf.Invalid {
			n++
			t.Run(filepath.Base(path)+"/"+c.Name, func(t *testing.T) {
				data, err := yaml.Marshal(&c.Policy)
				if err != nil {
					t.Fatal(err)
				}
				_, err = policyfile.Compile(data, policyfile.YAML)
				var verr *pdp.ValidationError
				if !errors.As(err, &verr) {
					t.Fatalf("Compile error = %v, want a *pdp.ValidationError", err)
				}
				var got []string
				for _, p := range verr.Problems {
					got = append(got, p.String())
				}
				if diff := cmp.Diff(c.Problems, got); diff != "" {
					t.Errorf("problems (-want +got):\n%s", diff)
				}
			})
		}
	}
	if n == 0 {
		t.Fatal("no validation cases found")
	}
}
