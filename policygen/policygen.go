// Package policygen builds deterministic synthetic policies and matching
// workloads, for benchmarks and for sizing a deployment. The same options
// and seed always give the same policy, byte for byte.
package policygen

import (
	"fmt"
	"math/rand/v2"

	"github.com/rolecall/rolecall/pdp"
)

// Options size a synthetic policy.
type Options struct {
	Seed                  uint64
	Subjects              int // users and, one in ten, m2m applications
	Orgs                  int
	Roles                 int // split between global and organization roles
	MembershipsPerSubject int // average; 0 for none
	Resources             int // default 20
	ActionsPerResource    int // default 8
}

func (o *Options) defaults() {
	if o.Resources == 0 {
		o.Resources = 20
	}
	if o.ActionsPerResource == 0 {
		o.ActionsPerResource = 8
	}
	if o.Roles < 4 {
		o.Roles = 4
	}
}

// ID formats: stable and sortable.
func resourceID(i int) string { return fmt.Sprintf("https://api.example.com/r%03d", i) }
func actionID(i int) string   { return fmt.Sprintf("act%02d", i) }
func roleID(i int) string     { return fmt.Sprintf("role-%04d", i) }
func orgID(i int) string      { return fmt.Sprintf("org-%06d", i) }
func subjectID(i int) string  { return fmt.Sprintf("user-%08d", i) }

// Generate builds the policy. Roles are half user (with a few m2m) and half
// organization roles; each grants a few random actions on a few resources;
// subjects hold one or two global roles and, on average,
// MembershipsPerSubject organization memberships with one or two roles each.
func Generate(o Options) *pdp.Policy {
	o.defaults()
	r := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	p := &pdp.Policy{Revision: fmt.Sprintf("generated-seed%d-s%d-o%d-r%d-m%d", o.Seed, o.Subjects, o.Orgs, o.Roles, o.MembershipsPerSubject)}
	for i := range o.Resources {
		res := pdp.Resource{ID: resourceID(i)}
		for a := range o.ActionsPerResource {
			res.Actions = append(res.Actions, actionID(a))
		}
		p.Resources = append(p.Resources, res)
	}
	globalRoles := o.Roles / 2
	m2mRoles := max(1, globalRoles/10)
	var userRoles, botRoles, orgRoles []string
	for i := range o.Roles {
		role := pdp.Role{ID: roleID(i)}
		switch {
		case i < m2mRoles:
			role.Type = pdp.RoleM2M
			botRoles = append(botRoles, role.ID)
		case i < globalRoles:
			role.Type = pdp.RoleUser
			userRoles = append(userRoles, role.ID)
		default:
			role.Type = pdp.RoleOrganization
			orgRoles = append(orgRoles, role.ID)
		}
		picked := map[int]bool{}
		for range 1 + r.IntN(3) {
			ri := r.IntN(o.Resources)
			if picked[ri] {
				continue
			}
			picked[ri] = true
			g := pdp.Grant{Resource: resourceID(ri)}
			if r.IntN(8) == 0 {
				g.Actions = []string{"*"}
			} else {
				seen := map[int]bool{}
				for range 1 + r.IntN(4) {
					a := r.IntN(o.ActionsPerResource)
					if !seen[a] {
						seen[a] = true
						g.Actions = append(g.Actions, actionID(a))
					}
				}
			}
			role.Permissions = append(role.Permissions, g)
		}
		p.Roles = append(p.Roles, role)
	}
	for i := range o.Orgs {
		org := pdp.Organization{ID: orgID(i)}
		if len(orgRoles) > 0 && i%4 == 0 {
			org.DefaultRoles = []string{orgRoles[r.IntN(len(orgRoles))]}
		}
		p.Organizations = append(p.Organizations, org)
	}
	for i := range o.Subjects {
		s := pdp.Subject{ID: subjectID(i)}
		pool := userRoles
		if i%10 == 9 {
			s.Type, pool = pdp.SubjectM2M, botRoles
		}
		if len(pool) > 0 {
			s.Roles = []string{pool[r.IntN(len(pool))]}
			if r.IntN(3) == 0 {
				if second := pool[r.IntN(len(pool))]; second != s.Roles[0] {
					s.Roles = append(s.Roles, second)
				}
			}
		}
		if o.Orgs > 0 && len(orgRoles) > 0 && o.MembershipsPerSubject > 0 {
			n := r.IntN(2*o.MembershipsPerSubject + 1)
			for range n {
				org := orgID(r.IntN(o.Orgs))
				if s.Memberships == nil {
					s.Memberships = map[string][]string{}
				}
				if _, dup := s.Memberships[org]; dup {
					continue
				}
				s.Memberships[org] = []string{orgRoles[r.IntN(len(orgRoles))]}
			}
		}
		p.Subjects = append(p.Subjects, s)
	}
	return p
}

// Workload returns n queries against a policy generated with o: a mix of
// global and organization checks, by known and unknown subjects, for
// actions that are granted and that are not, so that allows and denies mix.
func Workload(o Options, n int) []pdp.Query {
	o.defaults()
	r := rand.New(rand.NewPCG(o.Seed+1, o.Seed^0x5bd1e995))
	qs := make([]pdp.Query, n)
	for i := range qs {
		q := pdp.Query{
			Subject:  subjectID(r.IntN(max(o.Subjects, 1))),
			Resource: resourceID(r.IntN(o.Resources)),
			Action:   actionID(r.IntN(o.ActionsPerResource)),
		}
		switch k := r.IntN(10); {
		case k < 4 && o.Orgs > 0:
			q.Org = orgID(r.IntN(o.Orgs))
		case k == 9:
			q.Subject = fmt.Sprintf("nobody-%d", i)
		}
		qs[i] = q
	}
	return qs
}
