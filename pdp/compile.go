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
	subjects   []uint32 // each subject's record in the arena, in document order
	chunks     [][]byte // the arena of the subjects' records: see subjects.go
	attrs      []string // interned attribute values: email domains, SSO connections and groups

	who lazyWho // the who-can index, built by the first ListSubjects
}

type resource struct {
	id      string
	base    int32            // permission index of the first action
	actions map[string]int32 // action → offset from base
}

type organization struct {
	id       string
	defaults []byte // role indexes, sorted, encoded as the arena's (encodeRoles)
	implicit []implicitRule
}

// implicitRule holds interned attribute values (indexes into
// Snapshot.attrs); noAttr means the condition is not set.
type implicitRule struct {
	emailDomain   int32 // lower case
	ssoConnection int32
	ssoGroup      int32
	roles         []byte // encoded as the arena's (encodeRoles)
}

// noAttr marks an unset attribute.
const noAttr = -1

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

// compileResources numbers the resources and their actions, in sorted
// order: the permission index.
func (s *Snapshot) compileResources(resources []Resource) {
	rs := slices.Clone(resources)
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

// compileRoles numbers the roles in sorted order, which it returns, and
// builds each one's permission bitset.
func (s *Snapshot) compileRoles(roles []Role) []string {
	rs := slices.Clone(roles)
	slices.SortFunc(rs, func(a, b Role) int { return strings.Compare(a.ID, b.ID) })
	s.words = (len(s.perms) + 63) / 64
	s.roles = make([]string, len(rs))
	s.bits = make([]uint64, len(rs)*s.words)
	for i, r := range rs {
		s.roles[i] = r.ID
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
	return s.roles
}

// compileOrganizations numbers the organizations in sorted order, with
// their default roles and implicit rules; the rules' attributes are the
// first interned.
func (s *Snapshot) compileOrganizations(orgs []Organization, roleIdx func(string) (int32, bool), intern *interner) {
	os := slices.Clone(orgs)
	slices.SortFunc(os, func(a, b Organization) int { return strings.Compare(a.ID, b.ID) })
	s.orgIdx = make(map[string]int32, len(os))
	s.orgs = make([]organization, len(os))
	for i, o := range os {
		org := organization{id: o.ID, defaults: encodeRoles(roleSet(roleIdx, o.DefaultRoles))}
		for _, r := range o.ImplicitRoles {
			org.implicit = append(org.implicit, implicitRule{
				emailDomain:   intern.index(strings.ToLower(r.EmailDomain)),
				ssoConnection: intern.index(r.SSOConnection),
				ssoGroup:      intern.index(r.SSOGroup),
				roles:         encodeRoles(roleSet(roleIdx, r.Roles)),
			})
		}
		s.orgs[i] = org
		s.orgIdx[o.ID] = int32(i)
	}
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
	v = strings.Clone(v) // v may share memory with the document
	in.values = append(in.values, v)
	in.idx[v] = i
	return i
}

// roleSet turns role ids into sorted, distinct role indexes.
func roleSet(idx func(string) (int32, bool), ids []string) []int32 {
	if len(ids) == 0 {
		return nil
	}
	out := make([]int32, 0, len(ids))
	for _, id := range ids {
		if i, ok := idx(id); ok {
			out = append(out, i)
		}
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
