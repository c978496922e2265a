package pdp_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
)

// caseFile is one file of decision cases in testdata/: a policy (inline or
// from a file) with the checks and permission listings to run against it, or
// invalid policies with the problems they must produce. Adding a case needs
// no Go code.
type caseFile struct {
	Description string
	Policy      yaml.Node
	PolicyFile  string `yaml:"policy_file"`
	Checks      []checkCase
	Permissions []permissionsCase
	Invalid     []invalidCase
}

type checkCase struct {
	Name                           string
	Subject, Org, Resource, Action string
	Allowed                        bool
	Reason                         string
	MatchedRole                    string `yaml:"matched_role"`
}

type permissionsCase struct {
	Name                   string
	Subject, Org, Resource string
	Want                   []string // "resource action"
	Roles                  []string
	Reason                 string
}

type invalidCase struct {
	Name     string
	Policy   yaml.Node
	Problems []string
}

func loadCaseFiles(t *testing.T) map[string]caseFile {
	t.Helper()
	paths, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no case files in testdata: %v", err)
	}
	files := make(map[string]caseFile, len(paths))
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var cf caseFile
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&cf); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		files[path] = cf
	}
	return files
}

// policyBytes returns the case file's policy document: the referenced file as
// it is, or the inline policy re-encoded as YAML. Either way it goes through
// the same parser as a real policy file.
func policyBytes(t *testing.T, path string, inline *yaml.Node, file string) ([]byte, policyfile.Format) {
	t.Helper()
	if file != "" {
		name := filepath.Join(filepath.Dir(path), file)
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return data, policyfile.DetectFormat(name, data)
	}
	data, err := yaml.Marshal(inline)
	if err != nil {
		t.Fatal(err)
	}
	return data, policyfile.YAML
}

func TestDecisionCases(t *testing.T) {
	for path, cf := range loadCaseFiles(t) {
		if len(cf.Checks) == 0 && len(cf.Permissions) == 0 {
			continue
		}
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, format := policyBytes(t, path, &cf.Policy, cf.PolicyFile)
			snap, err := policyfile.Compile(data, format)
			if err != nil {
				t.Fatalf("policy does not compile: %v", err)
			}
			var e pdp.Engine
			e.Swap(snap)
			for _, c := range cf.Checks {
				t.Run(c.Name, func(t *testing.T) {
					got, err := e.Decide(pdp.Query{Subject: c.Subject, Org: c.Org, Resource: c.Resource, Action: c.Action})
					if err != nil {
						t.Fatalf("Decide: %v", err)
					}
					reason, ok := pdp.ParseReason(c.Reason)
					if !ok {
						t.Fatalf("case names unknown reason %q", c.Reason)
					}
					want := pdp.Decision{Allowed: c.Allowed, Reason: reason, MatchedRole: c.MatchedRole, Revision: snap.Revision()}
					if diff := cmp.Diff(want, got); diff != "" {
						t.Errorf("decision (-want +got):\n%s", diff)
					}
				})
			}
			for _, c := range cf.Permissions {
				t.Run("permissions/"+c.Name, func(t *testing.T) {
					got, err := e.ListPermissions(c.Subject, c.Org, c.Resource)
					if err != nil {
						t.Fatalf("ListPermissions: %v", err)
					}
					var perms []string
					for _, p := range got.Permissions {
						perms = append(perms, p.Resource+" "+p.Action)
					}
					if diff := cmp.Diff(c.Want, perms); diff != "" {
						t.Errorf("permissions (-want +got):\n%s", diff)
					}
					if diff := cmp.Diff(c.Roles, got.Roles); diff != "" {
						t.Errorf("roles (-want +got):\n%s", diff)
					}
					if got.Reason.String() != c.Reason {
						t.Errorf("reason = %v, want %s", got.Reason, c.Reason)
					}
				})
			}
		})
	}
}

func TestValidationCases(t *testing.T) {
	n := 0
	for path, cf := range loadCaseFiles(t) {
		for _, c := range cf.Invalid {
			n++
			t.Run(filepath.Base(path)+"/"+c.Name, func(t *testing.T) {
				data, format := policyBytes(t, path, &c.Policy, "")
				_, err := policyfile.Compile(data, format)
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
