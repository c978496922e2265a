package pdp

import (
	"math/bits"
	"slices"
	"strings"
	"unsafe"
)

// Comparison is the effective difference between two snapshots: not how
// their documents differ, but what Decide answers differently. A grant is a
// (subject, organization or none, resource, action) that Decide allows.
//
// Both snapshots are read as they are compiled: roles, permissions and
// organizations are matched by id across them, and each subject's
// effective roles and permissions are computed in every context it may be
// admitted to, once per snapshot, without enumerating checks.
type Comparison struct {
	old, new *Snapshot
	from, to string

	perms []Permission // the permissions of either, sorted
	roles []string     // the role ids of either, sorted
	orgs  []string     // the organization ids of either, sorted
	sides [2]side      // old, new

	definitions Definitions
}

// side translates one snapshot's indexes into the comparison's.
type side struct {
	s     *Snapshot
	perm  []int32 // permission index → comparison's
	role  []int32 // role index → comparison's
	org   []int32 // organization index → comparison's
	bits  []uint64
	words int
	byKey map[int32][]int32
}

// Definitions are the changes to what the policy defines, beside who holds
// what.
type Definitions struct {
	ResourcesAdded, ResourcesRemoved []string
	// Actions added to or removed from resources.
	ActionsAdded, ActionsRemoved []Permission
	RolesAdded, RolesRemoved     []string
	// Roles in both whose permissions changed.
	RolesChanged                             []RoleChange
	OrganizationsAdded, OrganizationsRemoved []string
	// Organizations in both whose default roles or implicit rules changed.
	OrganizationsChanged []OrganizationChange
}

// Empty reports whether nothing the policies define changed.
func (d *Definitions) Empty() bool {
	return len(d.ResourcesAdded)+len(d.ResourcesRemoved)+len(d.ActionsAdded)+len(d.ActionsRemoved)+
		len(d.RolesAdded)+len(d.RolesRemoved)+len(d.RolesChanged)+
		len(d.OrganizationsAdded)+len(d.OrganizationsRemoved)+len(d.OrganizationsChanged) == 0
}

// RoleChange is how one role's permissions changed.
type RoleChange struct {
	Role         string
	Gained, Lost []Permission
}

// OrganizationChange is how one organization's default roles and implicit
// rules changed.
type OrganizationChange struct {
	Organization                           string
	DefaultRolesAdded, DefaultRolesRemoved []string
	ImplicitRulesChanged                   bool
}

// SubjectChange is how one subject's access changed. It is valid only
// during the call that receives it.
type SubjectChange struct {
	Subject string
	// Added: only the new snapshot has the subject; Removed: only the old.
	Added, Removed bool
	// Contexts that changed, the global one (Org "") first, then by
	// organization id.
	Contexts []ContextChange
}

// ContextChange is how a subject's roles and grants changed in one context:
// globally (Org "") or inside one organization.
type ContextChange struct {
	Org string
	// Joined: admitted to the organization only in the new snapshot; Left:
	// only in the old.
	Joined, Left             bool
	RolesAdded, RolesRemoved []string
	Gained, Lost             []Permission
}

// Totals count a comparison's effect.
type Totals struct {
	// Grants of the old snapshot and of the new one.
	GrantsBefore, GrantsAfter int64
	// Grants only the new one allows, and only the old one.
	GrantsGained, GrantsLost       int64
	SubjectsAdded, SubjectsRemoved int64
	// Subjects in both whose roles or grants changed in some context.
	SubjectsChanged int64
}

// Compare prepares the comparison of old (nil: no policy) with new, and
// computes the changes to what they define.
func Compare(old, new *Snapshot) *Comparison {
	if old == nil {
		old = emptySnapshot()
	}
	c := &Comparison{old: old, new: new, from: old.revision, to: new.revision}
	var permsFrom, permsTo []int32
	c.perms, permsFrom, permsTo = union(old.perms, new.perms, comparePermissions)
	var rolesFrom, rolesTo []int32
	c.roles, rolesFrom, rolesTo = union(old.roles, new.roles, strings.Compare)
	var orgsFrom, orgsTo []int32
	c.orgs, orgsFrom, orgsTo = union(orgIDs(old), orgIDs(new), strings.Compare)
	c.sides[0] = c.side(old, permsFrom, rolesFrom, orgsFrom)
	c.sides[1] = c.side(new, permsTo, rolesTo, orgsTo)
	c.compareDefinitions()
	return c
}

// From and To are the revisions compared.
func (c *Comparison) From() string { return c.from }
func (c *Comparison) To() string   { return c.to }

// Definitions returns the changes to resources, roles and organizations.
func (c *Comparison) Definitions() *Definitions { return &c.definitions }

func emptySnapshot() *Snapshot {
	return &Snapshot{resourceIdx: map[string]int32{}, orgIdx: map[string]int32{}, subjectIdx: newSubjectIndex(0)}
}

func orgIDs(s *Snapshot) []string {
	ids := make([]string, len(s.orgs))
	for i := range s.orgs {
		ids[i] = s.orgs[i].id
	}
	return ids
}

func comparePermissions(a, b Permission) int {
	if c := strings.Compare(a.Resource, b.Resource); c != 0 {
		return c
	}
	return strings.Compare(a.Action, b.Action)
}

// union merges two sorted lists of distinct values and maps each list's
// indexes to the union's.
func union[T any](a, b []T, cmp func(T, T) int) (all []T, fromA, fromB []int32) {
	fromA, fromB = make([]int32, len(a)), make([]int32, len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		n := int32(len(all))
		switch {
		case j == len(b) || i < len(a) && cmp(a[i], b[j]) < 0:
			all, fromA[i] = append(all, a[i]), n
			i++
		case i == len(a) || cmp(a[i], b[j]) > 0:
			all, fromB[j] = append(all, b[j]), n
			j++
		default:
			all, fromA[i], fromB[j] = append(all, a[i]), n, n
			i, j = i+1, j+1
		}
	}
	return all, fromA, fromB
}

func (c *Comparison) side(s *Snapshot, perm, role, org []int32) side {
	sd := side{s: s, perm: perm, role: role, org: org, words: (len(c.perms) + 63) / 64, byKey: s.rulesByKey()}
	// Each role's permissions, renumbered as the comparison's.
	sd.bits = make([]uint64, len(s.roles)*sd.words)
	for r := range s.roles {
		set := sd.roleBits(int32(r))
		for p := range s.perms {
			if hasBit(s.roleBits(int32(r)), int32(p)) {
				setBit(set, perm[p])
			}
		}
	}
	return sd
}

func (sd *side) roleBits(r int32) []uint64 {
	return sd.bits[int(r)*sd.words : (int(r)+1)*sd.words]
}

// present returns, for each of the comparison's values, its index in one
// side (or -1).
func present(n int, from []int32) []int32 {
	at := make([]int32, n)
	for i := range at {
		at[i] = -1
	}
	for i, u := range from {
		at[u] = int32(i)
	}
	return at
}

func (c *Comparison) compareDefinitions() {
	d := &c.definitions
	old, new := &c.sides[0], &c.sides[1]
	oldRes, newRes := c.old.resourceIdx, c.new.resourceIdx
	for id := range oldRes {
		if _, ok := newRes[id]; !ok {
			d.ResourcesRemoved = append(d.ResourcesRemoved, id)
		}
	}
	for id := range newRes {
		if _, ok := oldRes[id]; !ok {
			d.ResourcesAdded = append(d.ResourcesAdded, id)
		}
	}
	slices.Sort(d.ResourcesAdded)
	slices.Sort(d.ResourcesRemoved)
	oldPerm, newPerm := present(len(c.perms), old.perm), present(len(c.perms), new.perm)
	for u, p := range c.perms {
		_, inOld := oldRes[p.Resource]
		_, inNew := newRes[p.Resource]
		switch {
		case inOld && inNew && oldPerm[u] < 0:
			d.ActionsAdded = append(d.ActionsAdded, p)
		case inOld && inNew && newPerm[u] < 0:
			d.ActionsRemoved = append(d.ActionsRemoved, p)
		}
	}

	oldRole, newRole := present(len(c.roles), old.role), present(len(c.roles), new.role)
	for u, id := range c.roles {
		switch o, n := oldRole[u], newRole[u]; {
		case o < 0:
			d.RolesAdded = append(d.RolesAdded, id)
		case n < 0:
			d.RolesRemoved = append(d.RolesRemoved, id)
		default:
			ch := RoleChange{Role: id}
			ch.Gained, ch.Lost = c.permissionDiff(nil, nil, old.roleBits(o), new.roleBits(n))
			if len(ch.Gained)+len(ch.Lost) > 0 {
				d.RolesChanged = append(d.RolesChanged, ch)
			}
		}
	}

	oldOrg, newOrg := present(len(c.orgs), old.org), present(len(c.orgs), new.org)
	for u, id := range c.orgs {
		switch o, n := oldOrg[u], newOrg[u]; {
		case o < 0:
			d.OrganizationsAdded = append(d.OrganizationsAdded, id)
		case n < 0:
			d.OrganizationsRemoved = append(d.OrganizationsRemoved, id)
		default:
			ch := OrganizationChange{Organization: id}
			ch.DefaultRolesAdded, ch.DefaultRolesRemoved = c.roleDiff(nil, nil,
				old.roles(nil, c.old.orgs[o].defaults), new.roles(nil, c.new.orgs[n].defaults))
			ch.ImplicitRulesChanged = !slices.Equal(c.rules(old, o), c.rules(new, n))
			if len(ch.DefaultRolesAdded)+len(ch.DefaultRolesRemoved) > 0 || ch.ImplicitRulesChanged {
				d.OrganizationsChanged = append(d.OrganizationsChanged, ch)
			}
		}
	}
}

// rules spells an organization's implicit rules, sorted, to compare them
// across snapshots.
func (c *Comparison) rules(sd *side, oi int32) []string {
	s := sd.s
	attr := func(a int32) string {
		if a == noAttr {
			return ""
		}
		return s.attrs[a]
	}
	var out []string
	for _, r := range s.orgs[oi].implicit {
		var b strings.Builder
		for _, v := range [...]string{attr(r.emailDomain), attr(r.ssoConnection), attr(r.ssoGroup)} {
			b.WriteString(v)
			b.WriteByte(0)
		}
		for _, u := range sd.roles(nil, r.roles) {
			b.WriteString(c.roles[u])
			b.WriteByte(0)
		}
		out = append(out, b.String())
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// roles appends encoded roles of the side's snapshot, renumbered as the
// comparison's; the renumbering keeps their order.
func (sd *side) roles(dst []int32, enc []byte) []int32 {
	for i := range len(enc) / 4 {
		dst = append(dst, sd.role[role(enc, i)])
	}
	return dst
}

// permissionDiff appends to gained and lost the permissions in b and not a,
// and in a and not b.
func (c *Comparison) permissionDiff(gained, lost []Permission, a, b []uint64) ([]Permission, []Permission) {
	for w := range a {
		for g := b[w] &^ a[w]; g != 0; g &= g - 1 {
			gained = append(gained, c.perms[w*64+bits.TrailingZeros64(g)])
		}
		for l := a[w] &^ b[w]; l != 0; l &= l - 1 {
			lost = append(lost, c.perms[w*64+bits.TrailingZeros64(l)])
		}
	}
	return gained, lost
}

// roleDiff appends to added and removed the roles in b and not a, and in a
// and not b; a and b are sorted.
func (c *Comparison) roleDiff(added, removed []string, a, b []int32) ([]string, []string) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || i < len(a) && a[i] < b[j]:
			removed = append(removed, c.roles[a[i]])
			i++
		case i == len(a) || a[i] > b[j]:
			added = append(added, c.roles[b[j]])
			j++
		default:
			i, j = i+1, j+1
		}
	}
	return added, removed
}

// held is what a subject holds in each context of one snapshot, in the
// comparison's numbering: contexts sorted by organization, the global one
// (noOrg) first.
type held struct {
	orgs  []int32  // the comparison's organization index, or noOrg
	spans []int    // contexts' roles: roles[spans[k]:spans[k+1]]
	roles []int32  // the comparison's role indexes, sorted per context
	sets  []uint64 // contexts' grants: words each
	buf   []int32  // scratch
	ctxs  []int32  // scratch
}

// load fills h with what the subject at off holds in sd's snapshot.
func (h *held) load(sd *side, off uint32) {
	s := sd.s
	sub := s.subjectAt(off)
	h.orgs, h.spans, h.roles, h.sets = h.orgs[:0], append(h.spans[:0], 0), h.roles[:0], h.sets[:0]
	h.ctxs = s.contexts(append(h.ctxs[:0], noOrg), sub, sd.byKey)
	for _, oi := range h.ctxs {
		var admitted bool
		h.buf, admitted = s.effectiveRoles(h.buf[:0], sub, oi)
		if !admitted {
			continue
		}
		u := int32(noOrg)
		if oi != noOrg {
			u = sd.org[oi]
		}
		h.orgs = append(h.orgs, u)
		set := len(h.sets)
		h.sets = slices.Grow(h.sets, sd.words)[:set+sd.words]
		clear(h.sets[set:])
		for _, r := range h.buf {
			h.roles = append(h.roles, sd.role[r])
			for w, b := range sd.roleBits(r) {
				h.sets[set+w] |= b
			}
		}
		h.spans = append(h.spans, len(h.roles))
	}
}

// none empties h: a subject the snapshot does not have.
func (h *held) none() { h.orgs, h.spans = h.orgs[:0], append(h.spans[:0], 0) }

func (h *held) context(k, words int) ([]int32, []uint64) {
	return h.roles[h.spans[k]:h.spans[k+1]], h.sets[k*words : (k+1)*words]
}

func popcount(set []uint64) int64 {
	n := 0
	for _, w := range set {
		n += bits.OnesCount64(w)
	}
	return int64(n)
}

// Subjects compares every subject's access and returns the totals. visit,
// when not nil, receives each subject whose access changed: those of the
// old snapshot in its document order, then those only the new one has, in
// its order. Without visit, nothing is allocated per subject.
func (c *Comparison) Subjects(visit func(*SubjectChange)) Totals {
	var t Totals
	var a, b held
	var ch SubjectChange
	old, new := &c.sides[0], &c.sides[1]
	words := old.words
	zero := make([]uint64, words)
	for _, off := range c.old.subjects {
		id := c.old.idBytes(off)
		a.load(old, off)
		newOff, ok := c.new.findSubject(unsafe.String(unsafe.SliceData(id), len(id)))
		if ok {
			b.load(new, newOff)
		} else {
			b.none()
			t.SubjectsRemoved++
		}
		changed := c.compareHeld(&t, &ch, &a, &b, zero, visit != nil)
		if changed && ok {
			t.SubjectsChanged++
		}
		if (changed || !ok) && visit != nil {
			ch.Subject, ch.Added, ch.Removed = string(id), false, !ok
			visit(&ch)
		}
	}
	a.none()
	for _, off := range c.new.subjects {
		id := c.new.idBytes(off)
		if _, ok := c.old.findSubject(unsafe.String(unsafe.SliceData(id), len(id))); ok {
			continue
		}
		t.SubjectsAdded++
		b.load(new, off)
		c.compareHeld(&t, &ch, &a, &b, zero, visit != nil)
		if visit != nil {
			ch.Subject, ch.Added, ch.Removed = string(id), true, false
			visit(&ch)
		}
	}
	return t
}

// compareHeld adds one subject's grants to t and reports whether anything
// changed; with spell, ch lists the changed contexts.
func (c *Comparison) compareHeld(t *Totals, ch *SubjectChange, a, b *held, zero []uint64, spell bool) bool {
	words := len(zero)
	ch.Contexts = ch.Contexts[:0]
	changed := false
	i, j := 0, 0
	for i < len(a.orgs) || j < len(b.orgs) {
		var ra, rb []int32
		sa, sb := zero, zero
		var org int32
		inA := j == len(b.orgs) || i < len(a.orgs) && a.orgs[i] <= b.orgs[j]
		inB := i == len(a.orgs) || j < len(b.orgs) && b.orgs[j] <= a.orgs[i]
		if inA {
			org = a.orgs[i]
			ra, sa = a.context(i, words)
			i++
		}
		if inB {
			org = b.orgs[j]
			rb, sb = b.context(j, words)
			j++
		}
		t.GrantsBefore += popcount(sa)
		t.GrantsAfter += popcount(sb)
		var gained, lost int64
		for w := range words {
			gained += int64(bits.OnesCount64(sb[w] &^ sa[w]))
			lost += int64(bits.OnesCount64(sa[w] &^ sb[w]))
		}
		t.GrantsGained += gained
		t.GrantsLost += lost
		// Globally, only a subject is added or removed, not admitted.
		if gained == 0 && lost == 0 && (inA == inB || org == noOrg) && slices.Equal(ra, rb) {
			continue
		}
		changed = true
		if !spell {
			continue
		}
		cc := ContextChange{Joined: !inA && org != noOrg, Left: !inB && org != noOrg}
		if org != noOrg {
			cc.Org = c.orgs[org]
		}
		cc.RolesAdded, cc.RolesRemoved = c.roleDiff(nil, nil, ra, rb)
		cc.Gained, cc.Lost = c.permissionDiff(nil, nil, sa, sb)
		ch.Contexts = append(ch.Contexts, cc)
	}
	return changed
}
