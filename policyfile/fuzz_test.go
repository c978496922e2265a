package policyfile

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rolecall/rolecall/pdp"
)

// FuzzPolicy: no document makes the parser, validator or compiler panic; a
// document that validates always compiles, as read (Build) to the very
// snapshot its Policy compiles to, and with the same problems when it does
// not; and the compiled snapshot decides
// exactly as a naive reference evaluator written from docs/DESIGN.md's rules, on
// checks drawn from the document's own ids.
func FuzzPolicy(f *testing.F) {
	seeds, _ := filepath.Glob("../pdp/testdata/*.yaml")
	seeds = append(seeds, "../examples/bookstore.yaml")
	for _, path := range seeds {
		if data, err := os.ReadFile(path); err == nil {
			f.Add(data, true)
		}
	}
	f.Add([]byte(`{"resources":[{"id":"r","actions":["a","*"]}],"roles":[{"id":"x","type":"user","permissions":[{"resource":"r","actions":["*"]}]}],"subjects":[{"id":"s","roles":["x","x"]}]}`), false)
	f.Add([]byte("subjects: [{id: s, email: A@B.C, memberships: {o: []}}]\norganizations: [{id: o, implicit_roles: [{email_domain: b.c, roles: [m]}]}]\nroles: [{id: m, type: organization}]\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, yaml bool) {
		format := JSON
		if yaml {
			format = YAML
		}
		// The document compiled as it is read (Build) and its Policy
		// compiled agree: on the error, to the byte, or on the snapshot.
		read, readErr := Compile(data, format)
		p, err := Parse(data, format)
		if err != nil {
			if readErr == nil || readErr.Error() != err.Error() {
				t.Fatalf("Parse: %v\nCompile: %v", err, readErr)
			}
			return
		}
		if p.Validate() != nil {
			if _, err := pdp.Compile(p); err == nil {
				t.Fatal("an invalid policy compiled")
			}
		}
		snap, err := pdp.Compile(p)
		if err != nil {
			if readErr == nil || readErr.Error() != err.Error() {
				t.Fatalf("pdp.Compile: %v\nCompile: %v", err, readErr)
			}
			return
		}
		if readErr != nil {
			t.Fatalf("the policy compiles, the document as read does not: %v", readErr)
		}
		a, _ := snap.MarshalBinary()
		b, _ := read.MarshalBinary()
		if !bytes.Equal(a, b) {
			t.Fatal("the document as read and its Policy compile to different snapshots")
		}
		for _, q := range queriesOf(p) {
			got := snap.Decide(q)
			want := reference(p, q)
			if got.Allowed != want.Allowed || got.Reason != want.Reason || got.MatchedRole != want.MatchedRole {
				t.Fatalf("%+v: snapshot %+v, reference %+v", q, got, want)
			}
		}
	})
}

// queriesOf draws checks from a policy's ids, plus unknown ones.
func queriesOf(p *pdp.Policy) []pdp.Query {
	pick := func(ids []string) []string {
		if len(ids) > 4 {
			ids = ids[:4]
		}
		return append(slices.Clone(ids), "unknown-id")
	}
	var subjects, orgs, resources []string
	for _, s := range p.Subjects {
		subjects = append(subjects, s.ID)
	}
	orgs = []string{""}
	for _, o := range p.Organizations {
		orgs = append(orgs, o.ID)
	}
	actions := map[string][]string{}
	for _, r := range p.Resources {
		resources = append(resources, r.ID)
		actions[r.ID] = r.Actions
	}
	var qs []pdp.Query
	for _, s := range pick(subjects) {
		for _, o := range pick(orgs) {
			for _, r := range pick(resources) {
				for _, a := range pick(actions[r]) {
					qs = append(qs, pdp.Query{Subject: s, Org: o, Resource: r, Action: a})
				}
			}
		}
	}
	return qs
}

// reference decides q from the policy document directly, as docs/DESIGN.md
// states the rules, with no index.
func reference(p *pdp.Policy, q pdp.Query) pdp.Decision {
	var res *pdp.Resource
	for i := range p.Resources {
		if p.Resources[i].ID == q.Resource {
			res = &p.Resources[i]
			break
		}
	}
	switch {
	case res == nil:
		return pdp.Decision{Reason: pdp.UnknownResource}
	case !slices.Contains(res.Actions, q.Action):
		return pdp.Decision{Reason: pdp.UnknownAction}
	}
	var sub *pdp.Subject
	for i := range p.Subjects {
		if p.Subjects[i].ID == q.Subject {
			sub = &p.Subjects[i]
			break
		}
	}
	if sub == nil {
		return pdp.Decision{Reason: pdp.UnknownSubject}
	}
	var roles []string
	if q.Org == "" {
		roles = sub.Roles
	} else {
		var org *pdp.Organization
		for i := range p.Organizations {
			if p.Organizations[i].ID == q.Org {
				org = &p.Organizations[i]
				break
			}
		}
		if org == nil {
			return pdp.Decision{Reason: pdp.UnknownOrganization}
		}
		held, member := sub.Memberships[q.Org]
		roles = append(roles, held...)
		domain := ""
		if at := strings.LastIndexByte(sub.Email, '@'); at >= 0 {
			domain = strings.ToLower(sub.Email[at+1:])
		}
		for _, r := range org.ImplicitRoles {
			if (r.EmailDomain == "" || strings.ToLower(r.EmailDomain) == domain) &&
				(r.SSOConnection == "" || r.SSOConnection == sub.SSOConnection) &&
				(r.SSOGroup == "" || slices.Contains(sub.SSOGroups, r.SSOGroup)) {
				member = true
				roles = append(roles, r.Roles...)
			}
		}
		if !member {
			return pdp.Decision{Reason: pdp.NotAMember}
		}
		roles = append(roles, org.DefaultRoles...)
	}
	best := ""
	for _, id := range roles {
		for _, role := range p.Roles {
			if role.ID != id {
				continue
			}
			for _, g := range role.Permissions {
				if g.Resource == q.Resource && (slices.Contains(g.Actions, q.Action) || slices.Contains(g.Actions, "*")) && (best == "" || id < best) {
					best = id
				}
			}
		}
	}
	if best == "" {
		return pdp.Decision{Reason: pdp.NoPermission}
	}
	return pdp.Decision{Allowed: true, Reason: pdp.Granted, MatchedRole: best}
}
