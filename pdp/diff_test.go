package pdp_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rolecall/rolecall/pdp"
)

// randomPolicy returns a valid policy drawn from a small space of ids, so
// that two policies drawn with different seeds share most of their
// resources, roles, organizations and subjects, and differ in what they
// grant to whom.
func randomPolicy(seed uint64) *pdp.Policy {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	pick := func(n int) int { return rng.IntN(n) }
	p := &pdp.Policy{Revision: fmt.Sprintf("r%d", seed)}
	actions := map[string][]string{}
	for r := range 3 {
		if pick(5) == 0 {
			continue
		}
		res := pdp.Resource{ID: fmt.Sprintf("res%d", r)}
		for a := range 4 {
			if pick(3) > 0 {
				res.Actions = append(res.Actions, fmt.Sprintf("act%d", a))
			}
		}
		if len(res.Actions) == 0 {
			res.Actions = []string{"act0"}
		}
		actions[res.ID] = res.Actions
		p.Resources = append(p.Resources, res)
	}
	var byType = map[pdp.RoleType][]string{}
	for i, typ := range []pdp.RoleType{pdp.RoleUser, pdp.RoleUser, pdp.RoleUser, pdp.RoleM2M, pdp.RoleOrganization, pdp.RoleOrganization, pdp.RoleOrganization} {
		if pick(6) == 0 {
			continue
		}
		role := pdp.Role{ID: fmt.Sprintf("role%d", i), Type: typ}
		for _, res := range p.Resources {
			if pick(2) == 0 {
				continue
			}
			g := pdp.Grant{Resource: res.ID}
			if pick(6) == 0 {
				g.Actions = []string{"*"}
			} else {
				for _, a := range actions[res.ID] {
					if pick(2) == 0 {
						g.Actions = append(g.Actions, a)
					}
				}
			}
			if len(g.Actions) > 0 {
				role.Permissions = append(role.Permissions, g)
			}
		}
		byType[typ] = append(byType[typ], role.ID)
		p.Roles = append(p.Roles, role)
	}
	some := func(ids []string) []string {
		var out []string
		for _, id := range ids {
			if pick(3) == 0 {
				out = append(out, id)
			}
		}
		return out
	}
	orgRoles := byType[pdp.RoleOrganization]
	var orgs []string
	for o := range 4 {
		if pick(5) == 0 {
			continue
		}
		org := pdp.Organization{ID: fmt.Sprintf("org%d", o), DefaultRoles: some(orgRoles)}
		for range pick(3) {
			if len(orgRoles) == 0 {
				break
			}
			r := pdp.ImplicitRule{Roles: []string{orgRoles[pick(len(orgRoles))]}}
			switch pick(4) {
			case 0:
				r.EmailDomain = fmt.Sprintf("d%d.io", pick(2))
			case 1:
				r.SSOConnection = fmt.Sprintf("conn%d", pick(2))
			case 2:
				r.SSOGroup = fmt.Sprintf("grp%d", pick(2))
			default:
				r.EmailDomain, r.SSOGroup = fmt.Sprintf("D%d.io", pick(2)), fmt.Sprintf("grp%d", pick(2))
			}
			org.ImplicitRoles = append(org.ImplicitRoles, r)
		}
		orgs = append(orgs, org.ID)
		p.Organizations = append(p.Organizations, org)
	}
	for s := range 10 {
		if pick(5) == 0 {
			continue
		}
		sub := pdp.Subject{ID: fmt.Sprintf("sub%d", s), Type: pdp.SubjectUser}
		global := byType[pdp.RoleUser]
		if s%4 == 3 {
			sub.Type, global = pdp.SubjectM2M, byType[pdp.RoleM2M]
		}
		sub.Roles = some(global)
		if pick(2) == 0 {
			sub.Email = fmt.Sprintf("sub%d@d%d.io", s, pick(2))
		}
		if pick(3) == 0 {
			sub.SSOConnection = fmt.Sprintf("conn%d", pick(2))
		}
		sub.SSOGroups = some([]string{"grp0", "grp1"})
		for _, o := range orgs {
			if pick(3) == 0 {
				if sub.Memberships == nil {
					sub.Memberships = map[string][]string{}
				}
				sub.Memberships[o] = some(orgRoles)
			}
		}
		p.Subjects = append(p.Subjects, sub)
	}
	return p
}

func mustCompile(t *testing.T, p *pdp.Policy) *pdp.Snapshot {
	t.Helper()
	s, err := pdp.Compile(p)
	if err != nil {
		t.Fatalf("random policy does not compile: %v", err)
	}
	return s
}

// access is what brute force finds a subject holds in one context: its
// effective roles and the permissions Decide allows, or nothing when it is
// not admitted.
type access struct {
	admitted bool
	roles    []string
	grants   []pdp.Permission
}

func bruteAccess(s *pdp.Snapshot, p *pdp.Policy, subject, org string) access {
	var a access
	if !slices.ContainsFunc(p.Subjects, func(x pdp.Subject) bool { return x.ID == subject }) {
		return a
	}
	if org != "" && !slices.ContainsFunc(p.Organizations, func(x pdp.Organization) bool { return x.ID == org }) {
		return a
	}
	for _, perm := range allPermissions(p) {
		d := s.Decide(pdp.Query{Subject: subject, Org: org, Resource: perm.Resource, Action: perm.Action})
		if d.Reason == pdp.NotAMember {
			return a
		}
		if d.Allowed {
			a.grants = append(a.grants, perm)
		}
	}
	a.admitted = true
	a.roles = s.ListPermissions(subject, org, "").Roles
	if l := s.ListPermissions(subject, org, ""); l.Reason == pdp.NotAMember {
		a.admitted = false
	}
	return a
}

func allPermissions(p *pdp.Policy) []pdp.Permission {
	var out []pdp.Permission
	for _, r := range p.Resources {
		for _, a := range r.Actions {
			out = append(out, pdp.Permission{Resource: r.ID, Action: a})
		}
	}
	return out
}

func minus[T comparable](a, b []T) []T {
	var out []T
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// TestCompareAgainstBruteForce checks Compare on pairs of random policies
// against Decide and ListPermissions asked for every subject, context and
// permission of either policy.
func TestCompareAgainstBruteForce(t *testing.T) {
	for seed := range uint64(400) {
		oldP, newP := randomPolicy(seed), randomPolicy(seed+1000)
		if seed%4 == 0 {
			newP = randomPolicy(seed) // the same policy: no change at all
			newP.Revision = "same"
		}
		old, new := mustCompile(t, oldP), mustCompile(t, newP)

		got := map[string]pdp.SubjectChange{}
		var order []string
		totals := pdp.Compare(old, new).Subjects(func(ch *pdp.SubjectChange) {
			c := *ch
			c.Contexts = nil
			if len(ch.Contexts) > 0 {
				c.Contexts = slices.Clone(ch.Contexts)
			}
			got[ch.Subject] = c
			order = append(order, ch.Subject)
		})

		var want pdp.Totals
		wantCh := map[string]pdp.SubjectChange{}
		var subjects []string
		for _, s := range oldP.Subjects {
			subjects = append(subjects, s.ID)
		}
		for _, s := range newP.Subjects {
			if !slices.Contains(subjects, s.ID) {
				subjects = append(subjects, s.ID)
			}
		}
		orgs := []string{""}
		for _, p := range []*pdp.Policy{oldP, newP} {
			for _, o := range p.Organizations {
				if !slices.Contains(orgs, o.ID) {
					orgs = append(orgs, o.ID)
				}
			}
		}
		slices.Sort(orgs)
		for _, sub := range subjects {
			inOld := slices.ContainsFunc(oldP.Subjects, func(x pdp.Subject) bool { return x.ID == sub })
			inNew := slices.ContainsFunc(newP.Subjects, func(x pdp.Subject) bool { return x.ID == sub })
			ch := pdp.SubjectChange{Subject: sub, Added: !inOld, Removed: !inNew}
			for _, org := range orgs {
				a, b := bruteAccess(old, oldP, sub, org), bruteAccess(new, newP, sub, org)
				want.GrantsBefore += int64(len(a.grants))
				want.GrantsAfter += int64(len(b.grants))
				gained, lost := minus(b.grants, a.grants), minus(a.grants, b.grants)
				want.GrantsGained += int64(len(gained))
				want.GrantsLost += int64(len(lost))
				if (a.admitted == b.admitted || org == "") && slices.Equal(a.roles, b.roles) && len(gained)+len(lost) == 0 {
					continue
				}
				ch.Contexts = append(ch.Contexts, pdp.ContextChange{
					Org:    org,
					Joined: org != "" && !a.admitted, Left: org != "" && !b.admitted,
					RolesAdded: minus(b.roles, a.roles), RolesRemoved: minus(a.roles, b.roles),
					Gained: gained, Lost: lost,
				})
			}
			switch {
			case !inOld:
				want.SubjectsAdded++
			case !inNew:
				want.SubjectsRemoved++
			case len(ch.Contexts) > 0:
				want.SubjectsChanged++
			}
			if len(ch.Contexts) > 0 || !inOld || !inNew {
				wantCh[sub] = ch
			}
		}
		if diff := cmp.Diff(want, totals); diff != "" {
			t.Fatalf("seed %d: totals (-brute force +Compare):\n%s", seed, diff)
		}
		if diff := cmp.Diff(wantCh, got, cmp.Transformer("empty", func(l []string) []string {
			if len(l) == 0 {
				return nil
			}
			return l
		}), cmp.Transformer("emptyPerms", func(l []pdp.Permission) []pdp.Permission {
			if len(l) == 0 {
				return nil
			}
			return l
		})); diff != "" {
			t.Fatalf("seed %d: changes (-brute force +Compare):\n%s", seed, diff)
		}
		if noVisit := pdp.Compare(old, new).Subjects(nil); noVisit != totals {
			t.Fatalf("seed %d: totals without a visitor %+v, with one %+v", seed, noVisit, totals)
		}
		if newP.Revision == "same" && (totals.GrantsGained != 0 || totals.GrantsLost != 0 || len(got) != 0) {
			t.Fatalf("seed %d: a policy compared with itself changed: %+v", seed, totals)
		}
	}
}

func TestCompareWithNoPolicy(t *testing.T) {
	p := randomPolicy(7)
	s := mustCompile(t, p)
	totals := pdp.Compare(nil, s).Subjects(nil)
	if totals.GrantsBefore != 0 || totals.GrantsLost != 0 || totals.SubjectsAdded != int64(len(p.Subjects)) || totals.GrantsGained != totals.GrantsAfter {
		t.Fatalf("totals against no policy = %+v", totals)
	}
}

func TestCompareDefinitions(t *testing.T) {
	old := mustCompile(t, &pdp.Policy{
		Revision:  "1",
		Resources: []pdp.Resource{{ID: "docs", Actions: []string{"read", "write"}}, {ID: "old", Actions: []string{"x"}}},
		Roles: []pdp.Role{
			{ID: "reader", Type: pdp.RoleUser, Permissions: []pdp.Grant{{Resource: "docs", Actions: []string{"read"}}}},
			{ID: "gone", Type: pdp.RoleUser},
			{ID: "member", Type: pdp.RoleOrganization},
		},
		Organizations: []pdp.Organization{{ID: "acme", DefaultRoles: []string{"member"}}, {ID: "closed"}},
	})
	new := mustCompile(t, &pdp.Policy{
		Revision:  "2",
		Resources: []pdp.Resource{{ID: "docs", Actions: []string{"read", "share"}}, {ID: "fresh", Actions: []string{"y"}}},
		Roles: []pdp.Role{
			{ID: "reader", Type: pdp.RoleUser, Permissions: []pdp.Grant{{Resource: "docs", Actions: []string{"*"}}}},
			{ID: "member", Type: pdp.RoleOrganization},
			{ID: "auditor", Type: pdp.RoleOrganization},
		},
		Organizations: []pdp.Organization{
			{ID: "acme", DefaultRoles: []string{"auditor"}, ImplicitRoles: []pdp.ImplicitRule{{EmailDomain: "acme.io", Roles: []string{"member"}}}},
			{ID: "new"},
		},
	})
	c := pdp.Compare(old, new)
	if c.From() != "1" || c.To() != "2" {
		t.Errorf("revisions %q → %q", c.From(), c.To())
	}
	want := &pdp.Definitions{
		ResourcesAdded: []string{"fresh"}, ResourcesRemoved: []string{"old"},
		ActionsAdded: []pdp.Permission{{Resource: "docs", Action: "share"}}, ActionsRemoved: []pdp.Permission{{Resource: "docs", Action: "write"}},
		RolesAdded: []string{"auditor"}, RolesRemoved: []string{"gone"},
		RolesChanged:       []pdp.RoleChange{{Role: "reader", Gained: []pdp.Permission{{Resource: "docs", Action: "share"}}}},
		OrganizationsAdded: []string{"new"}, OrganizationsRemoved: []string{"closed"},
		OrganizationsChanged: []pdp.OrganizationChange{{Organization: "acme", DefaultRolesAdded: []string{"auditor"}, DefaultRolesRemoved: []string{"member"}, ImplicitRulesChanged: true}},
	}
	if diff := cmp.Diff(want, c.Definitions()); diff != "" {
		t.Errorf("definitions (-want +got):\n%s", diff)
	}
}

// TestListSubjectsAgainstBruteForce checks who-can on random policies
// against Decide asked for every subject, read page by page.
func TestListSubjectsAgainstBruteForce(t *testing.T) {
	for seed := range uint64(300) {
		p := randomPolicy(seed)
		s := mustCompile(t, p)
		var e pdp.Engine
		e.Swap(s)
		orgs := []string{"", "nowhere"}
		for _, o := range p.Organizations {
			orgs = append(orgs, o.ID)
		}
		perms := append(allPermissions(p), pdp.Permission{Resource: "res0", Action: "nope"}, pdp.Permission{Resource: "nope", Action: "act0"})
		for _, org := range orgs {
			for _, perm := range perms {
				var want []pdp.AllowedSubject
				wantReason := pdp.Granted
				for _, sub := range p.Subjects {
					d := s.Decide(pdp.Query{Subject: sub.ID, Org: org, Resource: perm.Resource, Action: perm.Action})
					if d.Allowed {
						want = append(want, pdp.AllowedSubject{Subject: sub.ID, MatchedRole: d.MatchedRole})
					}
					if d.Reason == pdp.UnknownResource || d.Reason == pdp.UnknownAction || d.Reason == pdp.UnknownOrganization {
						wantReason = d.Reason
					}
				}
				limit := 1 + int(seed%3)
				var got []pdp.AllowedSubject
				q := pdp.SubjectQuery{Org: org, Resource: perm.Resource, Action: perm.Action, Limit: limit}
				for pages := 0; ; pages++ {
					page, err := e.ListSubjects(q)
					if err != nil {
						t.Fatalf("seed %d: ListSubjects(%+v): %v", seed, q, err)
					}
					if len(page.Subjects) > limit || pages > len(p.Subjects)+1 {
						t.Fatalf("seed %d: page of %d subjects for a limit of %d, or too many pages", seed, len(page.Subjects), limit)
					}
					if len(p.Subjects) > 0 && page.Reason != wantReason {
						t.Fatalf("seed %d: %q %v: reason %v, want %v", seed, org, perm, page.Reason, wantReason)
					}
					got = append(got, page.Subjects...)
					if page.NextPageToken == "" {
						break
					}
					q.PageToken = page.NextPageToken
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("seed %d: who can %v in %q (-Decide +ListSubjects):\n%s", seed, perm, org, diff)
				}
			}
		}
	}
}

func TestListSubjectsRefusesBadQueries(t *testing.T) {
	a, b := mustCompile(t, randomPolicy(1)), mustCompile(t, randomPolicy(2))
	var e pdp.Engine
	if _, err := e.ListSubjects(pdp.SubjectQuery{Resource: "r", Action: "a"}); err != pdp.ErrNoPolicy {
		t.Fatalf("no policy: %v", err)
	}
	e.Swap(a)
	page, err := e.ListSubjects(pdp.SubjectQuery{Resource: "res0", Action: "act0", Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	e.Swap(b)
	for _, tc := range []struct {
		q    pdp.SubjectQuery
		want string
	}{
		{pdp.SubjectQuery{Action: "a"}, "resource: must not be empty"},
		{pdp.SubjectQuery{Resource: "r"}, "action: must not be empty"},
		{pdp.SubjectQuery{Resource: "r", Action: "a", Limit: 1001}, "page_size: is 1001; want 0 (for 100) to 1000"},
		{pdp.SubjectQuery{Resource: "r", Action: "a", Limit: -1}, "page_size: is -1; want 0 (for 100) to 1000"},
		{pdp.SubjectQuery{Resource: "r", Action: "a", PageToken: "!!"}, `page_token: is not a page token of policy revision "r2"; start again without one`},
	} {
		_, err := e.ListSubjects(tc.q)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ListSubjects(%+v) = %v, want an error containing %q", tc.q, err, tc.want)
		}
	}
	if page.NextPageToken != "" {
		if _, err := e.ListSubjects(pdp.SubjectQuery{Resource: "res0", Action: "act0", PageToken: page.NextPageToken}); err == nil {
			t.Error("a page token of revision r1 was accepted by revision r2")
		}
	}
}
