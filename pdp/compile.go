package pdp

import (
	"math"
	"slices"
	"strings"
)

// Snapshot is a compiled, immutable policy. Every lookup Decide needs is
// precomputed: ids map to dense indexes, and each role holds a bitset over all
// (resource, action) permissions, so a decision is a few map lookups and bit
// tests. A Snapshot is never modified after Compile returns, so any number of
// goroutines may read it without locks.
type Snapshot struct {
	revision string
	counts   Counts

	resourceIdx map[string]int32
	resources   []resource
	perms       []Permission // permission index → (resource, action), sorted

	roles []string // role ids, sorted: a lower index is earlier in sorted order
	words int      // uint64 words per role bitset
	bits  []uint64

	orgIdx map[string]int32
	orgs   []organization

	subjectIdx map[string]int32
	subjects   []subject
}

type resource struct {
	id      string
	base    int32            // permission index of the first action
	actions map[string]int32 // action → offset from base
}

type organization struct {
	id       string
	defaults []int32 // role indexes, sorted
	implicit []implicitRule
}

type implicitRule struct {
	emailDomain   string // lower case
	ssoConnection string
	ssoGroup      string
	roles         []int32
}

type subject struct {
	typ           SubjectType
	emailDomain   string // lower case
	ssoConnection string
	ssoGroups     []string
	global        []int32 // role indexes, sorted
	memberships   []membership
}

type membership struct {
	org   int32
	roles []int32
}

// Permission is one action on one resource.
type Permission struct {
	Resource string
	Action   string
}

// Counts are the sizes of a policy.
type Counts struct {
	Resources, Roles, Organizations, Subjects int
}

// noRole is greater than every role index, so "the first granting role" is
// the minimum over candidates.
const noRole = math.MaxInt32

// Compile validates p and builds its Snapshot. It reports every problem at
// once as a *ValidationError; an invalid policy never compiles.
func Compile(p *Policy) (*Snapshot, error) {
	if _, ps := check(p); len(ps) > 0 {
		return nil, ps.err()
	}
	s := &Snapshot{
		revision: p.Revision,
		counts: Counts{
			Resources:     len(p.Resources),
			Roles:         len(p.Roles),
			Organizations: len(p.Organizations),
			Subjects:      len(p.Subjects),
		},
	}
	s.compileResources(p)
	roleIdx := s.compileRoles(p)
	s.compileOrganizations(p, roleIdx)
	s.compileSubjects(p, roleIdx)
	return s, nil
}

func (s *Snapshot) compileResources(p *Policy) {
	rs := slices.Clone(p.Resources)
	slices.SortFunc(rs, func(a, b Resource) int { return strings.Compare(a.ID, b.ID) })
	s.resourceIdx = make(map[string]int32, len(rs))
	s.resources = make([]resource, len(rs))
	for i, r := range rs {
		actions := slices.Sorted(slices.Values(r.Actions))
		res := resource{id: r.ID, base: int32(len(s.perms)), actions: make(map[string]int32, len(actions))}
		for k, a := range actions {
			res.actions[a] = int32(k)
			s.perms = append(s.perms, Permission{Resource: r.ID, Action: a})
		}
		s.resources[i] = res
		s.resourceIdx[r.ID] = int32(i)
	}
}

func (s *Snapshot) compileRoles(p *Policy) map[string]int32 {
	rs := slices.Clone(p.Roles)
	slices.SortFunc(rs, func(a, b Role) int { return strings.Compare(a.ID, b.ID) })
	s.words = (len(s.perms) + 63) / 64
	s.roles = make([]string, len(rs))
	s.bits = make([]uint64, len(rs)*s.words)
	idx := make(map[string]int32, len(rs))
	for i, r := range rs {
		s.roles[i] = r.ID
		idx[r.ID] = int32(i)
		set := s.roleBits(int32(i))
		for _, g := range r.Permissions {
			res := &s.resources[s.resourceIdx[g.Resource]]
			for _, a := range g.Actions {
				if a == "*" {
					for _, off := range res.actions {
						setBit(set, res.base+off)
					}
					continue
				}
				setBit(set, res.base+res.actions[a])
			}
		}
	}
	return idx
}

func (s *Snapshot) compileOrganizations(p *Policy, roleIdx map[string]int32) {
	os := slices.Clone(p.Organizations)
	slices.SortFunc(os, func(a, b Organization) int { return strings.Compare(a.ID, b.ID) })
	s.orgIdx = make(map[string]int32, len(os))
	s.orgs = make([]organization, len(os))
	for i, o := range os {
		org := organization{id: o.ID, defaults: roleSet(roleIdx, o.DefaultRoles)}
		for _, r := range o.ImplicitRoles {
			org.implicit = append(org.implicit, implicitRule{
				emailDomain:   strings.ToLower(r.EmailDomain),
				ssoConnection: r.SSOConnection,
				ssoGroup:      r.SSOGroup,
				roles:         roleSet(roleIdx, r.Roles),
			})
		}
		s.orgs[i] = org
		s.orgIdx[o.ID] = int32(i)
	}
}

func (s *Snapshot) compileSubjects(p *Policy, roleIdx map[string]int32) {
	s.subjectIdx = make(map[string]int32, len(p.Subjects))
	s.subjects = make([]subject, len(p.Subjects))
	for i, ps := range p.Subjects {
		sub := subject{
			typ:           ps.Type,
			emailDomain:   emailDomain(ps.Email),
			ssoConnection: ps.SSOConnection,
			ssoGroups:     ps.SSOGroups,
			global:        roleSet(roleIdx, ps.Roles),
		}
		if sub.typ == "" {
			sub.typ = SubjectUser
		}
		for org, roles := range ps.Memberships {
			sub.memberships = append(sub.memberships, membership{org: s.orgIdx[org], roles: roleSet(roleIdx, roles)})
		}
		slices.SortFunc(sub.memberships, func(a, b membership) int { return int(a.org) - int(b.org) })
		s.subjects[i] = sub
		s.subjectIdx[ps.ID] = int32(i)
	}
}

// roleSet turns role ids into sorted, distinct role indexes.
func roleSet(idx map[string]int32, ids []string) []int32 {
	if len(ids) == 0 {
		return nil
	}
	out := make([]int32, 0, len(ids))
	for _, id := range ids {
		out = append(out, idx[id])
	}
	return roleSetOf(out)
}

// roleSetOf sorts role indexes and removes repeats, in place.
func roleSetOf(roles []int32) []int32 {
	slices.Sort(roles)
	return slices.Compact(roles)
}

func emailDomain(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return ""
	}
	return strings.ToLower(email[at+1:])
}

func (s *Snapshot) roleBits(r int32) []uint64 {
	return s.bits[int(r)*s.words : (int(r)+1)*s.words]
}

func setBit(set []uint64, p int32) { set[p>>6] |= 1 << (p & 63) }

func hasBit(set []uint64, p int32) bool { return set[p>>6]&(1<<(p&63)) != 0 }

// Revision is the policy revision this snapshot was compiled from.
func (s *Snapshot) Revision() string { return s.revision }

// Counts reports the sizes of the compiled policy.
func (s *Snapshot) Counts() Counts { return s.counts }
