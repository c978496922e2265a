package policytest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
)

// Result is what running a suite found.
type Result struct {
	Suite *Suite
	// PolicyProblems, when the policy did not compile, are its problems,
	// one a line as `rolecall policy lint` prints them; every case failed.
	PolicyProblems []string
	Cases          []CaseResult
	Elapsed        time.Duration
}

// CaseResult is one case's outcome.
type CaseResult struct {
	// Name is the case's name; ID is "suite/name", suite being the
	// suite's BaseName.
	Name, ID string
	// Failure is empty when the case passed, else the explanation: what
	// was asked, wanted and decided, and why, one indented line each.
	Failure string
	Elapsed time.Duration
}

// Failed counts the failed cases.
func (r *Result) Failed() int {
	n := 0
	for _, c := range r.Cases {
		if c.Failure != "" {
			n++
		}
	}
	return n
}

// Run compiles the suite's policy once and runs every case that match
// selects (nil: all) against it. match is given the case's ID and its name.
func Run(s *Suite, match func(id, name string) bool) Result {
	start := time.Now()
	res := Result{Suite: s}
	var e pdp.Engine
	policyName, snap, err := s.compile()
	if err != nil {
		res.PolicyProblems = problemLines(policyName, err)
	} else {
		e.Swap(snap)
	}
	base := BaseName(s.Path)
	runCase := func(name string, eval func() string) {
		id := base + "/" + name
		if match != nil && !match(id, name) {
			return
		}
		t := time.Now()
		c := CaseResult{Name: name, ID: id}
		if res.PolicyProblems != nil {
			c.Failure = "    the policy " + policyName + " does not compile:\n" + indent(res.PolicyProblems)
		} else {
			c.Failure = eval()
		}
		c.Elapsed = time.Since(t)
		res.Cases = append(res.Cases, c)
	}
	for _, c := range s.Checks {
		runCase(c.Name, func() string { return evalCheck(&e, c) })
	}
	for _, c := range s.ListPermissions {
		runCase(c.Name, func() string { return evalPermissions(&e, c) })
	}
	for _, c := range s.WhoCan {
		runCase(c.Name, func() string { return evalWhoCan(&e, c) })
	}
	res.Elapsed = time.Since(start)
	return res
}

// compile compiles the suite's policy: the policy file, or the inline policy
// encoded as YAML. It returns the name to print the policy's problems with.
func (s *Suite) compile() (string, *pdp.Snapshot, error) {
	if s.PolicyFile != "" {
		name := filepath.Join(filepath.Dir(s.Path), s.PolicyFile)
		data, err := os.ReadFile(name)
		if err != nil {
			return name, nil, err
		}
		snap, err := policyfile.Compile(data, policyfile.DetectFormat(name, data))
		return name, snap, err
	}
	name := s.Path + " (inline policy)"
	data, err := yaml.Marshal(&s.Policy)
	if err != nil {
		return name, nil, err
	}
	snap, err := policyfile.Compile(data, policyfile.YAML)
	return name, snap, err
}

// problemLines lists why a policy did not compile, as `rolecall policy
// lint` prints it: each problem on a line of its own after the policy's name.
func problemLines(name string, err error) []string {
	var verr *pdp.ValidationError
	if !errors.As(err, &verr) {
		return []string{fmt.Sprintf("%s: %v", name, err)}
	}
	lines := make([]string, 0, len(verr.Problems)+1)
	for _, p := range verr.Problems {
		lines = append(lines, fmt.Sprintf("%s: %s", name, p))
	}
	if verr.Omitted > 0 {
		lines = append(lines, fmt.Sprintf("%s: and %d more problems", name, verr.Omitted))
	}
	return lines
}

func indent(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("        " + l + "\n")
	}
	return b.String()
}

// evalCheck decides c and returns its failure, or "" when it passed.
func evalCheck(e *pdp.Engine, c Check) string {
	q := pdp.Query{Subject: c.Subject, Org: c.Org, Resource: c.Resource, Action: c.Action}
	asked := "    check:    " + describeQuery(q.Subject, q.Org, q.Resource) + ", action " + q.Action + "\n"
	d, err := e.Decide(q)
	if err != nil {
		return asked + "    error:    " + err.Error() + "\n"
	}
	reason, _ := parseReason(c.Reason)
	pass := d.Allowed == *c.Allowed &&
		(c.Reason == "" || d.Reason == reason) &&
		(c.MatchedRole == nil || d.MatchedRole == *c.MatchedRole)
	if pass {
		return ""
	}
	want := verdict(*c.Allowed)
	if c.Reason != "" {
		want += " " + c.Reason
	}
	switch {
	case c.MatchedRole == nil:
	case *c.MatchedRole == "":
		want += ", naming no role"
	default:
		want += " by " + *c.MatchedRole
	}
	got := verdict(d.Allowed) + " " + d.Reason.String()
	if d.MatchedRole != "" {
		got += " by " + d.MatchedRole
	}
	got += " (revision " + d.Revision + ")"
	out := asked +
		"    want:     " + want + "\n" +
		"    got:      " + got + "\n" +
		"    because:  " + explain(e.Snapshot(), q, d) + "\n"
	if roles := granting(e.Snapshot(), q); len(roles) > 1 {
		out += "    granting: " + strings.Join(roles, ", ") + " (the decision names the first in sorted order)\n"
	}
	return out
}

// granting lists the subject's effective roles that grant the query's action.
func granting(s *pdp.Snapshot, q pdp.Query) []string {
	var roles []string
	for _, r := range s.ListPermissions(q.Subject, q.Org, q.Resource).Roles {
		if s.DecideRoles([]string{r}, q.Resource, q.Action).Allowed {
			roles = append(roles, r)
		}
	}
	return roles
}

func verdict(allowed bool) string {
	if allowed {
		return "allowed"
	}
	return "denied"
}

func describeQuery(subject, org, resource string) string {
	s := "subject " + subject
	if org != "" {
		s += ", org " + org
	}
	if resource != "" {
		s += ", resource " + resource
	}
	return s
}

// explain says why the subject was decided as it was: what the policy lacks,
// or the subject's effective roles in the context and what they grant on
// the resource.
func explain(s *pdp.Snapshot, q pdp.Query, d pdp.Decision) string {
	switch d.Reason {
	case pdp.UnknownResource:
		return "the policy has no resource " + q.Resource
	case pdp.UnknownAction:
		return q.Resource + " does not define the action " + q.Action
	}
	p := s.ListPermissions(q.Subject, q.Org, q.Resource)
	if why := whyNoRoles(q.Subject, q.Org, q.Resource, p.Reason); why != "" {
		return why
	}
	return rolesAndGrants(q.Subject, q.Org, q.Resource, p)
}

// whyNoRoles explains a listing's reason when it is that the subject has no
// effective roles to look at, else returns "".
func whyNoRoles(subject, org, resource string, r pdp.Reason) string {
	switch r {
	case pdp.UnknownResource:
		return "the policy has no resource " + resource
	case pdp.UnknownSubject:
		return "the policy has no subject " + subject
	case pdp.UnknownOrganization:
		return "the policy has no organization " + org
	case pdp.NotAMember:
		return subject + " is not a member of " + org + ", and no implicit rule of " + org + " matches " + subject
	}
	return ""
}

func rolesAndGrants(subject, org, resource string, p pdp.Permissions) string {
	var b strings.Builder
	b.WriteString(subject + "'s effective roles")
	if org != "" {
		b.WriteString(" in " + org)
	}
	b.WriteString(": ")
	if len(p.Roles) == 0 {
		b.WriteString("none")
	} else {
		b.WriteString(strings.Join(p.Roles, ", "))
	}
	b.WriteString("; they grant")
	if resource != "" {
		b.WriteString(" on " + resource)
	}
	b.WriteString(": ")
	if len(p.Permissions) == 0 {
		b.WriteString("nothing")
		return b.String()
	}
	var perms []string
	for _, perm := range p.Permissions {
		if resource != "" {
			perms = append(perms, perm.Action)
		} else {
			perms = append(perms, perm.Resource+" "+perm.Action)
		}
	}
	b.WriteString(strings.Join(perms, ", "))
	return b.String()
}

// evalPermissions lists c's permissions and returns its failure, or "" when
// it passed.
func evalPermissions(e *pdp.Engine, c PermissionsCase) string {
	asked := line("list_permissions:", describeQuery(c.Subject, c.Org, c.Resource))
	p, err := e.ListPermissions(c.Subject, c.Org, c.Resource)
	if err != nil {
		return asked + "    error:    " + err.Error() + "\n"
	}
	got := make([]string, len(p.Permissions))
	for i, perm := range p.Permissions {
		got[i] = perm.Resource + " " + perm.Action
	}
	want := slices.Sorted(slices.Values(c.Want))
	var b strings.Builder
	if !slices.Equal(want, got) {
		b.WriteString(line("want permissions:", list(want)) + line("got permissions:", list(got)))
		if missing := minus(want, got); len(missing) > 0 {
			b.WriteString(line("missing:", list(missing)))
		}
		if extra := minus(got, want); len(extra) > 0 {
			b.WriteString(line("extra:", list(extra)))
		}
	}
	if c.Roles != nil {
		if wantRoles := slices.Sorted(slices.Values(c.Roles)); !slices.Equal(wantRoles, p.Roles) {
			b.WriteString(line("want roles:", list(wantRoles)) + line("got roles:", list(p.Roles)))
		}
	}
	if c.Reason != "" && c.Reason != p.Reason.String() {
		b.WriteString(line("want reason:", c.Reason) + line("got reason:", p.Reason.String()))
	}
	if b.Len() == 0 {
		return ""
	}
	if why := whyNoRoles(c.Subject, c.Org, c.Resource, p.Reason); why != "" {
		b.WriteString(line("because:", why))
	}
	return asked + b.String() + line("revision:", p.Revision)
}

// evalWhoCan lists who may do c's action, every page, and returns its
// failure, or "" when it passed.
func evalWhoCan(e *pdp.Engine, c WhoCanCase) string {
	asked := "resource " + c.Resource + ", action " + c.Action
	if c.Org != "" {
		asked = "org " + c.Org + ", " + asked
	}
	asked = line("who_can:", asked)
	var got []string
	q := pdp.SubjectQuery{Org: c.Org, Resource: c.Resource, Action: c.Action, Limit: pdp.MaxPageSize}
	var page pdp.SubjectPage
	for {
		var err error
		if page, err = e.ListSubjects(q); err != nil {
			return asked + line("error:", err.Error())
		}
		for _, s := range page.Subjects {
			got = append(got, s.Subject+" "+s.MatchedRole)
		}
		if q.PageToken = page.NextPageToken; q.PageToken == "" {
			break
		}
	}
	want, got := slices.Sorted(slices.Values(c.Want)), slices.Sorted(slices.Values(got))
	if slices.Equal(want, got) {
		return ""
	}
	out := asked + line("want:", list(want)) + line("got:", list(got))
	if missing := minus(want, got); len(missing) > 0 {
		out += line("missing:", list(missing))
	}
	if extra := minus(got, want); len(extra) > 0 {
		out += line("extra:", list(extra))
	}
	switch page.Reason {
	case pdp.UnknownResource:
		out += line("because:", "the policy has no resource "+c.Resource)
	case pdp.UnknownAction:
		out += line("because:", c.Resource+" does not define the action "+c.Action)
	case pdp.UnknownOrganization:
		out += line("because:", "the policy has no organization "+c.Org)
	}
	return out + line("revision:", page.Revision)
}

// line is a line of a listing's failure, its values in one column.
func line(label, value string) string {
	return fmt.Sprintf("    %-18s%s\n", label, value)
}

func list(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	return strings.Join(items, ", ")
}

// minus is the items of a not in b.
func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

// WriteText writes a run's report: each failure (each passing case too when
// verbose), then the summary line, "ok: 34 passed, 0 failed (2 suites)" or
// "FAIL: 33 passed, 1 failed (2 suites)".
func WriteText(w io.Writer, results []Result, verbose bool) error {
	var b strings.Builder
	passed, failed := 0, 0
	for _, r := range results {
		if r.PolicyProblems != nil && len(r.Cases) > 0 {
			fmt.Fprintf(&b, "FAIL %s: the policy does not compile, so its %d cases fail:\n%s", r.Suite.Path, len(r.Cases), indent(r.PolicyProblems))
		}
		for _, c := range r.Cases {
			switch {
			case c.Failure == "":
				passed++
				if verbose {
					fmt.Fprintf(&b, "ok   %s: %s\n", r.Suite.Path, c.Name)
				}
			case r.PolicyProblems != nil:
				failed++
				fmt.Fprintf(&b, "FAIL %s: %s\n", r.Suite.Path, c.Name)
			default:
				failed++
				fmt.Fprintf(&b, "FAIL %s: %s\n%s", r.Suite.Path, c.Name, c.Failure)
			}
		}
	}
	status := "ok"
	if failed > 0 {
		status = "FAIL"
	}
	suites := "suites"
	if len(results) == 1 {
		suites = "suite"
	}
	fmt.Fprintf(&b, "%s: %d passed, %d failed (%d %s)\n", status, passed, failed, len(results), suites)
	_, err := io.WriteString(w, b.String())
	return err
}
