// Package policytest tests a policy like code: a suite file names a policy
// and the decisions it must make, and Run reports each case as passed or
// failed, with what was expected, what was decided and why. It owns the
// suite format, shared by `rolecall policy test` and pdp's own decision
// cases, and the one evaluator that runs it.
//
// A suite is a YAML file:
//
//	description: What the suite is about.
//	policy_file: bookstore.yaml   # relative to the suite; or an inline policy: mapping
//	checks:
//	  - {name: bob reads products, subject: bob, resource: products, action: read, allowed: true, reason: GRANTED, matched_role: product_admin}
//	list_permissions:
//	  - {name: bob's catalogue, subject: bob, want: [products read], roles: [product_admin], reason: GRANTED}
//	who_can:
//	  - {name: who writes products, resource: products, action: write, want: [bob product_admin]}
//
// In a check, allowed is required; reason and matched_role are checked when
// given (matched_role: "" demands that no role is named). In a
// list_permissions case, want is the exact list of "resource action"
// permissions (absent: none); roles and reason are checked when given
// (roles: [] demands no effective role). In a who_can case, want is the exact
// list of "subject role" (absent: nobody).
package policytest

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rolecall/rolecall/internal/strictyaml"
	"github.com/rolecall/rolecall/pdp"
)

// Suite is a suite file: a policy and the cases to run against it.
type Suite struct {
	Description string
	// Policy is an inline policy document, read by the same parser as a
	// policy file. Exactly one of Policy and PolicyFile is set.
	Policy yaml.Node
	// PolicyFile is a policy file, relative to the suite file.
	PolicyFile      string `yaml:"policy_file"`
	Checks          []Check
	ListPermissions []PermissionsCase `yaml:"list_permissions"`
	WhoCan          []WhoCanCase      `yaml:"who_can"`

	// Path is the suite file, as it was named to Load.
	Path string `yaml:"-"`
}

// Check is one decision the policy must make.
type Check struct {
	Name                           string
	Subject, Org, Resource, Action string
	Allowed                        *bool // required
	Reason                         string
	// MatchedRole is checked when present; a pointer to "" demands that
	// the decision names no role.
	MatchedRole *string `yaml:"matched_role"`
}

// PermissionsCase is one list of permissions the policy must give a
// subject, as ListPermissions answers it.
type PermissionsCase struct {
	Name                   string
	Subject, Org, Resource string
	// Want is every permission, as "resource action", in any order.
	Want []string
	// Roles, the effective roles, are checked when not nil.
	Roles  []string
	Reason string
}

// WhoCanCase is the exact set of subjects the policy must allow to perform
// an action, as ListSubjects answers it: the question of an audit.
type WhoCanCase struct {
	Name                  string
	Org, Resource, Action string
	// Want is every allowed subject as "subject role", the role being the
	// one the decision names, in any order; empty: nobody.
	Want []string
}

// Load reads and checks the suite file path. A key the format does not have,
// a value of the wrong kind, a case without a name or a required field, a
// repeated case name, an unknown reason or a policy given twice or not at
// all is an error naming the file and the case.
func Load(path string) (*Suite, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Suite
	if err := strictyaml.Decode(path, data, &s); err != nil {
		return nil, err
	}
	s.Path = path
	if err := s.check(caseLines(data)); err != nil {
		return nil, err
	}
	return &s, nil
}

// caseLines maps "checks[i]" and "list_permissions[i]" to the line each case
// starts on, in a document strictyaml has accepted.
func caseLines(data []byte) map[string]int {
	lines := map[string]int{}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) != 1 {
		return lines
	}
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		key, list := top.Content[i], top.Content[i+1]
		for j, c := range list.Content {
			lines[fmt.Sprintf("%s[%d]", key.Value, j)] = c.Line
		}
	}
	return lines
}

// check reports every problem of a decoded suite, each naming the file, and
// the case with its line.
func (s *Suite) check(lines map[string]int) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", s.Path, fmt.Sprintf(format, args...)))
	}
	hasInline := s.Policy.Kind != 0 && !(s.Policy.Kind == yaml.ScalarNode && s.Policy.ShortTag() == "!!null")
	switch {
	case hasInline && s.PolicyFile != "":
		bad("both policy and policy_file are set; want one")
	case !hasInline && s.PolicyFile == "":
		bad("no policy: set policy_file (a file relative to the suite) or policy (an inline policy)")
	case hasInline && s.Policy.Kind != yaml.MappingNode:
		bad("line %d: policy: want a mapping (an inline policy document)", s.Policy.Line)
	case s.PolicyFile != "":
		// A policy that cannot be read is the suite's mistake; one that
		// does not compile fails the suite's cases.
		if _, err := os.Stat(filepath.Join(filepath.Dir(s.Path), s.PolicyFile)); err != nil {
			bad("policy_file: %v", err)
		}
	}
	if len(s.Checks) == 0 && len(s.ListPermissions) == 0 && len(s.WhoCan) == 0 {
		bad("no cases: want checks, list_permissions or who_can")
	}
	names := map[string]string{}
	// named checks a case's name and returns where the case is, for its
	// problems: "line 7: checks[2] \"bob reads orders\"".
	named := func(key, name string) string {
		where := fmt.Sprintf("line %d: %s", lines[key], key)
		switch first, dup := names[name]; {
		case name == "":
			bad("%s: the case has no name", where)
			return where
		case dup:
			bad("%s %q: the name is also %s's (line %d); case names must be unique in a suite", where, name, first, lines[first])
		default:
			names[name] = key
		}
		return where + fmt.Sprintf(" %q", name)
	}
	for i, c := range s.Checks {
		where := named(fmt.Sprintf("checks[%d]", i), c.Name)
		for _, f := range [...]struct{ key, value string }{{"subject", c.Subject}, {"resource", c.Resource}, {"action", c.Action}} {
			if f.value == "" {
				bad("%s: no %s", where, f.key)
			}
		}
		if c.Subject != "" && c.Resource != "" && c.Action != "" {
			if err := (pdp.Query{Subject: c.Subject, Org: c.Org, Resource: c.Resource, Action: c.Action}).Validate(); err != nil {
				bad("%s: %v", where, err)
			}
		}
		if c.Allowed == nil {
			bad("%s: no allowed (want true or false)", where)
		}
		if c.Reason != "" {
			r, ok := parseReason(c.Reason)
			switch {
			case !ok:
				bad("%s: unknown reason %q; want one of %s", where, c.Reason, reasonList())
			case c.Allowed != nil && *c.Allowed != (r == pdp.Granted):
				bad("%s: allowed: %t with reason %s can never be decided", where, *c.Allowed, c.Reason)
			}
		}
		if c.Allowed != nil && !*c.Allowed && c.MatchedRole != nil && *c.MatchedRole != "" {
			bad("%s: a denial names no role, so matched_role %q can never be decided", where, *c.MatchedRole)
		}
	}
	for i, c := range s.ListPermissions {
		where := named(fmt.Sprintf("list_permissions[%d]", i), c.Name)
		if c.Subject == "" {
			bad("%s: no subject", where)
		} else if err := listingQuery(c).Validate(); err != nil {
			bad("%s: %v", where, err)
		}
		if c.Reason != "" {
			if _, ok := parseReason(c.Reason); !ok {
				bad("%s: unknown reason %q; want one of %s", where, c.Reason, reasonList())
			}
		}
	}
	for i, c := range s.WhoCan {
		where := named(fmt.Sprintf("who_can[%d]", i), c.Name)
		if err := (pdp.SubjectQuery{Org: c.Org, Resource: c.Resource, Action: c.Action}).Validate(); err != nil {
			bad("%s: %v", where, err)
		}
		for j, w := range c.Want {
			if f := strings.Fields(w); len(f) != 2 {
				bad("%s: want[%d] %q: want \"subject role\"", where, j, w)
			}
		}
	}
	return errors.Join(errs...)
}

// listingQuery is c's listing as a query, so that its fields are checked
// as a query's are: the resource and action, optional in a listing, stand in.
func listingQuery(c PermissionsCase) pdp.Query {
	return pdp.Query{Subject: c.Subject, Org: c.Org, Resource: cmp.Or(c.Resource, "-"), Action: "-"}
}

// parseReason reads a reason a suite may expect: any but UNSPECIFIED, which
// no decision has.
func parseReason(s string) (pdp.Reason, bool) {
	r, ok := pdp.ParseReason(s)
	return r, ok && r != pdp.ReasonUnspecified
}

func reasonList() string {
	var names []string
	for r := pdp.Granted; r <= pdp.UnknownOrganization; r++ {
		names = append(names, r.String())
	}
	return strings.Join(names, ", ")
}

// IsSuiteName reports whether a file's name marks it as a suite:
// NAME.test.yaml or NAME.test.yml.
func IsSuiteName(name string) bool {
	return strings.HasSuffix(name, ".test.yaml") || strings.HasSuffix(name, ".test.yml")
}

// BaseName is a suite's name in case identifiers: its file's name without
// the directory and the .test.yaml (.test.yml, else .yaml or .yml) suffix.
func BaseName(path string) string {
	base := filepath.Base(path)
	for _, suffix := range [...]string{".test.yaml", ".test.yml", ".yaml", ".yml"} {
		if strings.HasSuffix(base, suffix) && len(base) > len(suffix) {
			return strings.TrimSuffix(base, suffix)
		}
	}
	return base
}

// Find returns the suite files that paths name: a file is a suite whatever
// its name; a directory is searched recursively for files named as suites
// (IsSuiteName), skipping directories whose name starts with a dot. The
// files come sorted within each path, each once.
func Find(paths []string) ([]string, error) {
	var found []string
	seen := map[string]bool{}
	add := func(p string) {
		if clean := filepath.Clean(p); !seen[clean] {
			seen[clean] = true
			found = append(found, p)
		}
	}
	for _, root := range paths {
		info, err := os.Stat(root)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			add(root)
			continue
		}
		var inDir []string
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if p != root && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if IsSuiteName(d.Name()) {
				inDir = append(inDir, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		slices.Sort(inDir)
		for _, p := range inDir {
			add(p)
		}
	}
	return found, nil
}
