package pdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// snapshotMagic starts a binary snapshot; the last byte is the format
// version.
var snapshotMagic = []byte("RCSNAP\x00\x01")

// ErrBadSnapshot wraps every reason a binary snapshot is refused.
var ErrBadSnapshot = errors.New("invalid binary snapshot")

// MarshalBinary writes the compiled snapshot in a compact binary form that
// UnmarshalSnapshot reads back far faster than a policy document compiles:
// the cache keeps it beside the document so that a restart with a very large
// policy answers within moments.
func (s *Snapshot) MarshalBinary() ([]byte, error) {
	w := &writer{buf: make([]byte, 0, s.binarySizeHint())}
	w.buf = append(w.buf, snapshotMagic...)
	w.str(s.revision)
	w.uint(uint64(s.counts.Resources))
	w.uint(uint64(s.counts.Roles))
	w.uint(uint64(s.counts.Organizations))
	w.uint(uint64(s.counts.Subjects))

	w.uint(uint64(len(s.resources)))
	for _, r := range s.resources {
		w.str(r.id)
		w.uint(uint64(len(r.actions)))
		for p := r.base; p < r.base+int32(len(r.actions)); p++ {
			w.str(s.perms[p].Action) // in offset order
		}
	}
	w.uint(uint64(len(s.roles)))
	for _, id := range s.roles {
		w.str(id)
	}
	w.uint(uint64(s.words))
	for _, b := range s.bits {
		w.buf = binary.LittleEndian.AppendUint64(w.buf, b)
	}
	w.uint(uint64(len(s.orgs)))
	for _, o := range s.orgs {
		w.str(o.id)
		w.roles(o.defaults)
		w.uint(uint64(len(o.implicit)))
		for _, r := range o.implicit {
			w.int(int64(r.emailDomain))
			w.int(int64(r.ssoConnection))
			w.int(int64(r.ssoGroup))
			w.roles(r.roles)
		}
	}
	w.uint(uint64(len(s.attrs)))
	for _, a := range s.attrs {
		w.str(a)
	}
	s.writeSubjects(w)
	return w.buf, nil
}

// binarySizeHint is the size of the binary form, or a little over: the
// subjects, nearly all of it at scale, counted exactly by a dry run of
// writeSubjects, the rest estimated. Growing a buffer of tens of megabytes
// by appending would leave four times its size behind as garbage.
func (s *Snapshot) binarySizeHint() int {
	w := &writer{counting: true}
	s.writeSubjects(w)
	n := w.n + 64 + len(s.revision) + 8*len(s.bits)
	for _, r := range s.resources {
		n += 2*binary.MaxVarintLen32 + len(r.id)
	}
	for _, p := range s.perms {
		n += binary.MaxVarintLen32 + len(p.Action)
	}
	for _, id := range s.roles {
		n += binary.MaxVarintLen32 + len(id)
	}
	for _, o := range s.orgs {
		n += 2*binary.MaxVarintLen32 + len(o.id) + binary.MaxVarintLen32*len(o.defaults)/4
		for _, r := range o.implicit {
			n += binary.MaxVarintLen32 * (4 + len(r.roles)/4)
		}
	}
	for _, a := range s.attrs {
		n += binary.MaxVarintLen32 + len(a)
	}
	return n
}

// writeSubjects writes the subjects as format version 1 lays them out: the
// pools their records have spans of (the roles they hold, their SSO
// groups, their memberships), then each subject's id and record.
func (s *Snapshot) writeSubjects(w *writer) {
	var nroles, ngroups, nmembers int
	for _, off := range s.subjects {
		sub := s.subjectAt(off)
		nroles += len(s.globalRoles(sub)) / 4
		ngroups += len(s.groupsOf(sub)) / 4
		for k := range s.memberships(sub) {
			_, roles := s.membership(sub, k)
			nroles += len(roles) / 4
		}
		nmembers += int(s.memberships(sub))
	}
	// The role pool: each subject's global roles, then its memberships'.
	w.uint(uint64(nroles))
	for _, off := range s.subjects {
		sub := s.subjectAt(off)
		w.values(s.globalRoles(sub))
		for k := range s.memberships(sub) {
			_, roles := s.membership(sub, k)
			w.values(roles)
		}
	}
	w.uint(uint64(ngroups))
	for _, off := range s.subjects {
		w.values(s.groupsOf(s.subjectAt(off)))
	}
	w.uint(uint64(nmembers))
	at := uint32(0) // in the role pool
	for _, off := range s.subjects {
		sub := s.subjectAt(off)
		at += uint32(len(s.globalRoles(sub)) / 4)
		for k := range s.memberships(sub) {
			org, roles := s.membership(sub, k)
			w.int(int64(org))
			w.span(span{at, uint32(len(roles) / 4)})
			at += uint32(len(roles) / 4)
		}
	}
	w.uint(uint64(len(s.subjects)))
	var roleAt, groupAt, memberAt uint32
	for _, off := range s.subjects {
		sub := s.subjectAt(off)
		id := s.idBytes(off)
		w.uint(uint64(len(id)))
		w.bytes(id)
		w.int(int64(s.emailDomainOf(sub)))
		w.int(int64(s.ssoConnectionOf(sub)))
		groups, global, members := uint32(len(s.groupsOf(sub))/4), uint32(len(s.globalRoles(sub))/4), s.memberships(sub)
		w.span(span{groupAt, groups})
		w.span(span{roleAt, global})
		w.span(span{memberAt, members})
		groupAt += groups
		roleAt += global
		for k := range members {
			_, roles := s.membership(sub, k)
			roleAt += uint32(len(roles) / 4)
		}
		memberAt += members
	}
}

// UnmarshalSnapshot reads a snapshot written by MarshalBinary. It checks
// every count, index and span, and that the sorted runs Decide relies on are
// sorted, so that a damaged or foreign blob is an error, never a panic or a
// wrong answer.
func UnmarshalSnapshot(data []byte) (s *Snapshot, err error) {
	if err := checkMagic(data); err != nil {
		return nil, err
	}
	r := &reader{buf: data[len(snapshotMagic):]}
	s = &Snapshot{}
	s.revision = r.str()
	s.counts = Counts{Resources: r.count(), Roles: r.count(), Organizations: r.count(), Subjects: r.count()}

	nres := r.count()
	s.resources = make([]resource, 0, min(nres, 1<<16))
	s.resourceIdx = make(map[string]int32, min(nres, 1<<16))
	for i := 0; i < nres && r.err == nil; i++ {
		res := resource{id: r.str(), base: int32(len(s.perms))}
		na := r.count()
		res.actions = make(map[string]int32, min(na, 1<<10))
		for k := 0; k < na && r.err == nil; k++ {
			a := r.str()
			if _, dup := res.actions[a]; dup {
				r.fail("duplicate action %q", a)
			}
			res.actions[a] = int32(k)
			s.perms = append(s.perms, Permission{Resource: res.id, Action: a})
		}
		if _, dup := s.resourceIdx[res.id]; dup {
			r.fail("duplicate resource %q", res.id)
		}
		s.resourceIdx[res.id] = int32(i)
		s.resources = append(s.resources, res)
	}
	nroles := r.count()
	s.roles = make([]string, 0, min(nroles, 1<<16))
	for i := 0; i < nroles && r.err == nil; i++ {
		s.roles = append(s.roles, r.str())
	}
	s.words = r.count()
	if r.err == nil && s.words != (len(s.perms)+63)/64 {
		r.fail("%d bitset words for %d permissions", s.words, len(s.perms))
	}
	if r.err == nil {
		n := nroles * s.words
		if n > len(r.buf)/8 {
			r.fail("truncated role bitsets")
		} else {
			s.bits = make([]uint64, n)
			for i := range s.bits {
				s.bits[i] = binary.LittleEndian.Uint64(r.buf[8*i:])
			}
			r.buf = r.buf[8*n:]
		}
	}
	norgs := r.count()
	s.orgs = make([]organization, 0, min(norgs, 1<<16))
	s.orgIdx = make(map[string]int32, min(norgs, 1<<16))
	for i := 0; i < norgs && r.err == nil; i++ {
		o := organization{id: r.str(), defaults: encodeRoles(r.roleSet(nroles))}
		ni := r.count()
		for k := 0; k < ni && r.err == nil; k++ {
			o.implicit = append(o.implicit, implicitRule{emailDomain: r.int32(), ssoConnection: r.int32(), ssoGroup: r.int32(), roles: encodeRoles(r.roleSet(nroles))})
		}
		if _, dup := s.orgIdx[o.id]; dup {
			r.fail("duplicate organization %q", o.id)
		}
		s.orgIdx[o.id] = int32(i)
		s.orgs = append(s.orgs, o)
	}
	nattrs := r.count()
	s.attrs = make([]string, 0, min(nattrs, 1<<20))
	for i := 0; i < nattrs && r.err == nil; i++ {
		s.attrs = append(s.attrs, r.str())
	}
	s.readSubjects(r, data, nroles, nattrs)
	if r.err == nil && len(r.buf) != 0 {
		r.fail("%d bytes after the end", len(r.buf))
	}
	if r.err == nil && (len(s.resources) != s.counts.Resources || len(s.roles) != s.counts.Roles || len(s.orgs) != s.counts.Organizations || len(s.subjects) != s.counts.Subjects) {
		r.fail("counts do not match the contents")
	}
	if r.err != nil {
		return nil, r.err
	}
	return s, nil
}

// readSubjects reads what writeSubjects wrote into the arena, checking
// every span and index, and that the runs Decide searches are sorted.
func (s *Snapshot) readSubjects(r *reader, data []byte, nroles, nattrs int) {
	if readInOrder && s.readSubjectsInOrder(r, data, nroles, nattrs) {
		s.trimArena()
		return
	}
	s.subjects, s.chunks = nil, nil
	rolePool := r.int32s()
	for _, v := range rolePool {
		if v < 0 || int(v) >= nroles {
			r.fail("role index %d out of range", v)
			break
		}
	}
	attrPool := r.int32s()
	for _, v := range attrPool {
		if v < 0 || int(v) >= nattrs {
			r.fail("attribute index %d out of range", v)
			break
		}
	}
	attr := func(a int32) int32 {
		if a != noAttr && (a < 0 || int(a) >= nattrs) {
			r.fail("attribute index %d out of range", a)
		}
		return a
	}
	for i := range s.orgs {
		for _, ir := range s.orgs[i].implicit {
			attr(ir.emailDomain)
			attr(ir.ssoConnection)
			attr(ir.ssoGroup)
		}
	}
	nm := r.count()
	type poolMember struct {
		org   int32
		roles span
	}
	members := make([]poolMember, 0, min(nm, 1<<24))
	for i := 0; i < nm && r.err == nil; i++ {
		m := poolMember{org: r.int32(), roles: r.span(len(rolePool))}
		if m.org < 0 || int(m.org) >= len(s.orgs) {
			r.fail("organization index %d out of range", m.org)
		}
		if r.err == nil && !sorted(rolePool[m.roles.off:m.roles.off+m.roles.n]) {
			r.fail("unsorted roles")
		}
		members = append(members, m)
	}
	ns := r.count()
	s.subjects = make([]uint32, 0, min(ns, 1<<24))
	s.subjectIdx = newSubjectIndex(min(ns, 1<<24))
	var rec record
	for i := 0; i < ns && r.err == nil; i++ {
		ref := r.raw(len(data))
		id := data[ref.off : ref.off+ref.n]
		rec.emailDomain, rec.ssoConnection = attr(r.int32()), attr(r.int32())
		groups, global, ms := r.span(len(attrPool)), r.span(len(rolePool)), r.span(len(members))
		if r.err != nil {
			break
		}
		rec.groups = attrPool[groups.off : groups.off+groups.n]
		rec.global = rolePool[global.off : global.off+global.n]
		if !sorted(rec.global) {
			r.fail("unsorted roles")
		}
		rec.members = rec.members[:0]
		for k, m := range members[ms.off : ms.off+ms.n] {
			if k > 0 && rec.members[k-1].org >= m.org {
				r.fail("unsorted memberships")
			}
			rec.members = append(rec.members, memberRecord{org: m.org, roles: rolePool[m.roles.off : m.roles.off+m.roles.n]})
		}
		off, ok := appendRecord(s, id, &rec)
		if !ok {
			r.fail("a subject's record is larger than 16 MiB, or the subjects outgrow 4 GiB")
			break
		}
		if r.err == nil && s.subjectIdx.add(s, off) >= 0 {
			r.fail("duplicate subject %q", id)
		}
	}
	s.trimArena()
}

// readInOrder is cleared by a test, to read snapshots pool by pool.
var readInOrder = true

// readSubjectsInOrder reads the subjects as writeSubjects lays them out,
// each pool in the order of the subjects, so that a subject's runs start
// where the previous subject's ended: each pool is read through a cursor of
// its own and none is built, where a million subjects' pools would take 36
// MB only for the records to copy them. For data laid out otherwise, or
// damaged, it reports false having changed nothing in r, and readSubjects
// reads the pools whole, which also says what is wrong.
func (s *Snapshot) readSubjectsInOrder(rd *reader, data []byte, nroles, nattrs int) bool {
	r := *rd
	roles, nrole := r.skipNumbers(1)
	attrs, nattr := r.skipNumbers(1)
	members, nmember := r.skipNumbers(3) // organization, roles offset, role count
	ns := r.count()
	if r.err != nil {
		return false
	}
	attrOK := func(a int32) bool { return a == noAttr || a >= 0 && int(a) < nattrs }
	for i := range s.orgs {
		for _, ir := range s.orgs[i].implicit {
			if !attrOK(ir.emailDomain) || !attrOK(ir.ssoConnection) || !attrOK(ir.ssoGroup) {
				return false
			}
		}
	}
	// run reads n numbers of a pool at its cursor, below limit and, for
	// roles, sorted.
	run := func(c *reader, l []int32, n uint64, left *int, limit int, sortedRun bool) ([]int32, bool) {
		if n > uint64(*left) {
			return l, false
		}
		*left -= int(n)
		for k := uint64(0); k < n; k++ {
			v := c.int32()
			if v < 0 || int(v) >= limit || sortedRun && k > 0 && l[len(l)-1] >= v {
				return l, false
			}
			l = append(l, v)
		}
		return l, c.err == nil
	}
	s.subjects = make([]uint32, 0, ns)
	s.subjectIdx = newSubjectIndex(ns)
	var rec record
	rolesLeft, attrsLeft, membersLeft := nrole, nattr, nmember
	for range ns {
		ref := r.raw(len(data))
		rec.emailDomain, rec.ssoConnection = r.int32(), r.int32()
		groupsAt, ngroups := r.uint(), r.uint()
		globalAt, nglobal := r.uint(), r.uint()
		membersAt, nmembers := r.uint(), r.uint()
		if r.err != nil || !attrOK(rec.emailDomain) || !attrOK(rec.ssoConnection) ||
			groupsAt != uint64(nattr-attrsLeft) || globalAt != uint64(nrole-rolesLeft) || membersAt != uint64(nmember-membersLeft) ||
			nmembers > uint64(membersLeft) {
			return false
		}
		var ok bool
		if rec.groups, ok = run(&attrs, rec.groups[:0], ngroups, &attrsLeft, nattrs, false); !ok {
			return false
		}
		if rec.global, ok = run(&roles, rec.global[:0], nglobal, &rolesLeft, nroles, true); !ok {
			return false
		}
		membersLeft -= int(nmembers)
		rec.members = slices.Grow(rec.members[:0], int(nmembers))[:nmembers]
		for k := range rec.members {
			m := &rec.members[k]
			m.org = members.int32()
			rolesAt, n := members.uint(), members.uint()
			if members.err != nil || m.org < 0 || int(m.org) >= len(s.orgs) || k > 0 && rec.members[k-1].org >= m.org || rolesAt != uint64(nrole-rolesLeft) {
				return false
			}
			if m.roles, ok = run(&roles, m.roles[:0], n, &rolesLeft, nroles, true); !ok {
				return false
			}
		}
		id := data[ref.off : ref.off+ref.n]
		off, ok := appendRecord(s, id, &rec)
		if !ok || s.subjectIdx.add(s, off) >= 0 {
			return false
		}
	}
	if rolesLeft != 0 || attrsLeft != 0 || membersLeft != 0 {
		return false
	}
	*rd = r
	return true
}

// skipNumbers reads a count of runs of k numbers and skips them, returning
// a reader at the first number and the count.
func (r *reader) skipNumbers(k int) (reader, int) {
	n := r.count()
	at := *r
	for i := 0; i < n*k && r.err == nil; i++ {
		r.int()
	}
	return at, n
}

// SnapshotVersion is the binary snapshot format this package writes and
// reads.
const SnapshotVersion = 1

// ErrNewerSnapshot is returned (wrapped in ErrBadSnapshot) for a snapshot
// written by a newer rolecall in a format version this one cannot read.
var ErrNewerSnapshot = errors.New("snapshot format is newer than this rolecall reads")

// checkMagic tells a snapshot of another version, which a newer rolecall
// wrote, from data that is no snapshot at all.
func checkMagic(data []byte) error {
	prefix := snapshotMagic[:len(snapshotMagic)-1]
	if len(data) < len(snapshotMagic) || string(data[:len(prefix)]) != string(prefix) {
		return fmt.Errorf("%w: not a rolecall snapshot", ErrBadSnapshot)
	}
	if v := data[len(prefix)]; v != SnapshotVersion {
		if v > SnapshotVersion {
			return fmt.Errorf("%w: %w: format version %d, this rolecall reads version %d; upgrade rolecall", ErrBadSnapshot, ErrNewerSnapshot, v, SnapshotVersion)
		}
		return fmt.Errorf("%w: format version %d is not read by this rolecall (version %d)", ErrBadSnapshot, v, SnapshotVersion)
	}
	return nil
}

func sorted(l []int32) bool {
	for i := 1; i < len(l); i++ {
		if l[i-1] >= l[i] {
			return false
		}
	}
	return true
}

// span is a run of one of format version 1's pools.
type span struct{ off, n uint32 }

// writer appends the binary form to buf, or only counts its bytes in n.
type writer struct {
	buf      []byte
	counting bool
	n        int
}

var varintBuf [binary.MaxVarintLen64]byte

func (w *writer) uint(v uint64) {
	if w.counting {
		w.n += binary.PutUvarint(varintBuf[:], v)
		return
	}
	w.buf = binary.AppendUvarint(w.buf, v)
}

func (w *writer) int(v int64) {
	if w.counting {
		w.n += binary.PutVarint(varintBuf[:], v)
		return
	}
	w.buf = binary.AppendVarint(w.buf, v)
}

func (w *writer) bytes(b []byte) {
	if w.counting {
		w.n += len(b)
		return
	}
	w.buf = append(w.buf, b...)
}

func (w *writer) str(s string) {
	w.uint(uint64(len(s)))
	if w.counting {
		w.n += len(s)
		return
	}
	w.buf = append(w.buf, s...)
}

// values writes numbers encoded as the arena's (encodeRoles), without their
// count.
func (w *writer) values(enc []byte) {
	for i := range len(enc) / 4 {
		w.int(int64(role(enc, i)))
	}
}

// roles writes numbers encoded as the arena's, as int32s writes a list.
func (w *writer) roles(enc []byte) {
	w.uint(uint64(len(enc) / 4))
	w.values(enc)
}

func (w *writer) span(sp span) {
	w.uint(uint64(sp.off))
	w.uint(uint64(sp.n))
}

// reader decodes; the first problem sticks in err and later reads return
// zero values.
type reader struct {
	buf []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrBadSnapshot, fmt.Sprintf(format, args...))
	}
}

func (r *reader) uint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.fail("truncated or overlong number")
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *reader) int() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.buf)
	if n <= 0 {
		r.fail("truncated or overlong number")
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

// count reads a length, bounded by what the rest of the data could hold.
func (r *reader) count() int {
	v := r.uint()
	if v > uint64(len(r.buf))+1 {
		r.fail("a count of %d is more than the data holds", v)
		return 0
	}
	return int(v)
}

func (r *reader) int32() int32 {
	v := r.int()
	if v < -1<<31 || v > 1<<31-1 {
		r.fail("number out of range")
	}
	return int32(v)
}

func (r *reader) str() string {
	n := r.count()
	if r.err != nil || n > len(r.buf) {
		r.fail("truncated string")
		return ""
	}
	s := string(r.buf[:n])
	r.buf = r.buf[n:]
	return s
}

// idRef locates a string in the data being read.
type idRef struct{ off, n uint32 }

// raw reads a string without copying it: where it lies in the data, whose
// whole length is total.
func (r *reader) raw(total int) idRef {
	n := r.count()
	if r.err != nil || n > len(r.buf) {
		r.fail("truncated string")
		return idRef{}
	}
	ref := idRef{uint32(total - len(r.buf)), uint32(n)}
	r.buf = r.buf[n:]
	return ref
}

func (r *reader) int32s() []int32 {
	n := r.count()
	out := make([]int32, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, r.int32())
	}
	return out
}

// roleSet reads sorted, distinct role indexes below nroles.
func (r *reader) roleSet(nroles int) []int32 {
	l := r.int32s()
	for i, v := range l {
		if v < 0 || int(v) >= nroles || (i > 0 && l[i-1] >= v) {
			r.fail("bad role set")
			break
		}
	}
	return l
}

// span reads a run that must lie within a pool of size n.
func (r *reader) span(n int) span {
	off, cnt := r.uint(), r.uint()
	if off > uint64(n) || cnt > uint64(n)-off {
		r.fail("a run [%d, +%d) outside a pool of %d", off, cnt, n)
		return span{}
	}
	return span{uint32(off), uint32(cnt)}
}
