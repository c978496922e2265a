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

	subjectIdx subjectIndex
	subjects   []subject
	ids        string // the subjects' ids, one after another
	rolePool   []int32
	memberPool []membership
	attrs      []string // interned attribute values: email domains, SSO connections and groups
	attrPool   []int32  // subjects' SSO groups, as attrs indexes
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

// implicitRule holds interned attribute values (indexes into
// Snapshot.attrs); noAttr means the condition is not set.
type implicitRule struct {
	emailDomain   int32 // lower case
	ssoConnection int32
	ssoGroup      int32
	roles         []int32
}

// noAttr marks an unset attribute.
const noAttr = -1

// subject is a compact, fixed-size record: the variable parts live in the
// snapshot's shared pools, so that a million subjects cost a million small
// records, not millions of allocations.
type subject struct {
	id            span  // the id, in Snapshot.ids
	emailDomain   int32 // interned, lower case; noAttr when none
	ssoConnection int32 // interned; noAttr when none
	groups        span  // SSO groups: interned indexes in attrPool
	global        span  // global roles: sorted indexes in rolePool
	members       span  // memberships in memberPool, sorted by organization
}

// span is a run of a shared pool.
type span struct{ off, n uint32 }

type membership struct {
	org   int32
	roles span // sorted indexes in rolePool
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
	intern := &interner{idx: map[string]int32{}}
	s.compileOrganizations(p, roleIdx, intern)
	s.compileSubjects(p, roleIdx, intern)
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

func (s *Snapshot) compileOrganizations(p *Policy, roleIdx map[string]int32, intern *interner) {
	os := slices.Clone(p.Organizations)
	slices.SortFunc(os, func(a, b Organization) int { return strings.Compare(a.ID, b.ID) })
	s.orgIdx = make(map[string]int32, len(os))
	s.orgs = make([]organization, len(os))
	for i, o := range os {
		org := organization{id: o.ID, defaults: roleSet(roleIdx, o.DefaultRoles)}
		for _, r := range o.ImplicitRoles {
			org.implicit = append(org.implicit, implicitRule{
				emailDomain:   intern.index(strings.ToLower(r.EmailDomain)),
				ssoConnection: intern.index(r.SSOConnection),
				ssoGroup:      intern.index(r.SSOGroup),
				roles:         roleSet(roleIdx, r.Roles),
			})
		}
		s.orgs[i] = org
		s.orgIdx[o.ID] = int32(i)
	}
}

func (s *Snapshot) compileSubjects(p *Policy, roleIdx map[string]int32, intern *interner) {
	// The ids share one backing string: one allocation, not a million.
	n := 0
	for _, ps := range p.Subjects {
		n += len(ps.ID)
	}
	var b strings.Builder
	b.Grow(n)
	for _, ps := range p.Subjects {
		b.WriteString(ps.ID)
	}
	ids := b.String()

	s.ids = ids
	s.subjects = make([]subject, len(p.Subjects))
	var orgs []string // a subject's organizations, reused
	off := 0
	for i, ps := range p.Subjects {
		sub := subject{
			id:            span{uint32(off), uint32(len(ps.ID))},
			emailDomain:   intern.index(emailDomain(ps.Email)),
			ssoConnection: intern.index(ps.SSOConnection),
			global:        s.appendRoles(roleIdx, ps.Roles),
		}
		start := len(s.attrPool)
		for _, g := range ps.SSOGroups {
			s.attrPool = append(s.attrPool, intern.index(g))
		}
		sub.groups = span{uint32(start), uint32(len(s.attrPool) - start)}
		// In organization order, not the map's: the role pool, and so the
		// binary snapshot and its digest, must be the same for the same
		// policy in every process (publishers' digests name the content).
		// Organization indexes follow their sorted ids.
		orgs = orgs[:0]
		for org := range ps.Memberships {
			orgs = append(orgs, org)
		}
		slices.Sort(orgs)
		start = len(s.memberPool)
		for _, org := range orgs {
			s.memberPool = append(s.memberPool, membership{org: s.orgIdx[org], roles: s.appendRoles(roleIdx, ps.Memberships[org])})
		}
		ms := s.memberPool[start:]
		sub.members = span{uint32(start), uint32(len(ms))}
		off += len(ps.ID)
		s.subjects[i] = sub
	}
	// Validation refused repeated ids, so every add succeeds.
	s.subjectIdx = newSubjectIndex(len(s.subjects))
	for i := range s.subjects {
		s.subjectIdx.add(s, int32(i))
	}
	s.attrs = intern.values
}

// appendRoles adds role ids to the role pool as sorted, distinct indexes.
func (s *Snapshot) appendRoles(idx map[string]int32, ids []string) span {
	start := len(s.rolePool)
	for _, id := range ids {
		s.rolePool = append(s.rolePool, idx[id])
	}
	set := roleSetOf(s.rolePool[start:])
	s.rolePool = s.rolePool[:start+len(set)]
	return span{uint32(start), uint32(len(set))}
}

// interner numbers distinct attribute values.
type interner struct {
	idx    map[string]int32
	values []string
}

func (in *interner) index(v string) int32 {
	if v == "" {
		return noAttr
	}
	if i, ok := in.idx[v]; ok {
		return i
	}
	i := int32(len(in.values))
	in.values = append(in.values, v)
	in.idx[v] = i
	return i
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

// rolesOf returns a run of the role pool.
func (s *Snapshot) rolesOf(sp span) []int32 { return s.rolePool[sp.off : sp.off+sp.n] }
