package pdp

import "slices"

// What a subject holds in one context: Decide, ListPermissions,
// ListSubjects and Compare all read it through these, so that they follow
// one set of rules.

// bestIn returns the first role, in sorted order, that grants perm to sub
// inside organization oi, or noRole; and whether sub is admitted there at
// all: a member, or matched by one of its implicit rules.
func (s *Snapshot) bestIn(sub subject, oi, perm int32) (best int32, admitted bool) {
	org := &s.orgs[oi]
	best = noRole
	if roles, ok := s.rolesIn(sub, oi); ok {
		admitted = true
		best = s.firstGranting(roles, perm, best)
	}
	for i := range org.implicit {
		if r := &org.implicit[i]; s.matches(r, sub) {
			admitted = true
			best = s.firstGranting(r.roles, perm, best)
		}
	}
	if admitted {
		best = s.firstGranting(org.defaults, perm, best)
	}
	return best, admitted
}

// effectiveRoles appends to dst the roles sub holds inside organization oi,
// or globally when oi is noOrg, sorted and distinct; and whether sub is
// admitted to the organization (always, globally).
func (s *Snapshot) effectiveRoles(dst []int32, sub subject, oi int32) ([]int32, bool) {
	start := len(dst)
	if oi == noOrg {
		return decodeRoles(dst, s.globalRoles(sub)), true
	}
	o := &s.orgs[oi]
	held, admitted := s.rolesIn(sub, oi)
	dst = decodeRoles(dst, held)
	for i := range o.implicit {
		if r := &o.implicit[i]; s.matches(r, sub) {
			admitted = true
			dst = decodeRoles(dst, r.roles)
		}
	}
	if !admitted {
		return dst[:start], false
	}
	dst = decodeRoles(dst, o.defaults)
	set := roleSetOf(dst[start:])
	return dst[:start+len(set)], true
}

// noOrg stands for the global context: no organization.
const noOrg = -1

// ruleKey is the attribute an implicit rule is found by: its email domain,
// else its SSO connection, else its SSO group. A rule has at least one.
func ruleKey(r *implicitRule) int32 {
	switch {
	case r.emailDomain != noAttr:
		return r.emailDomain
	case r.ssoConnection != noAttr:
		return r.ssoConnection
	}
	return r.ssoGroup
}

// rulesByKey maps each attribute that keys an implicit rule to the
// organizations with such rules, so that finding the organizations that
// admit a subject by its attributes reads only the rules that may match.
func (s *Snapshot) rulesByKey() map[int32][]int32 {
	m := make(map[int32][]int32)
	for oi := range s.orgs {
		for i := range s.orgs[oi].implicit {
			k := ruleKey(&s.orgs[oi].implicit[i])
			if l := m[k]; len(l) == 0 || l[len(l)-1] != int32(oi) {
				m[k] = append(l, int32(oi))
			}
		}
	}
	return m
}

// contexts appends to dst the organizations sub may be admitted to: those
// it is a member of, and those whose implicit rules are keyed by one of its
// attributes (byKey, from rulesByKey), sorted and distinct. effectiveRoles
// says whether an implicit rule really admits it.
func (s *Snapshot) contexts(dst []int32, sub subject, byKey map[int32][]int32) []int32 {
	start := len(dst)
	for k := range s.memberships(sub) {
		oi, _ := s.membership(sub, k)
		dst = append(dst, oi)
	}
	if len(byKey) > 0 {
		for _, a := range [...]int32{s.emailDomainOf(sub), s.ssoConnectionOf(sub)} {
			if a != noAttr {
				dst = append(dst, byKey[a]...)
			}
		}
		groups := s.groupsOf(sub)
		for i := range len(groups) / 4 {
			dst = append(dst, byKey[role(groups, i)]...)
		}
	}
	set := dst[start:]
	slices.Sort(set)
	return dst[:start+len(slices.Compact(set))]
}
