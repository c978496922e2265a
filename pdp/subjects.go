package pdp

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"slices"
)

// Subjects live in a byte arena, a record each, and are found by id
// through an open-addressed index whose slots point straight at the
// records. At a million subjects nothing of this fits a cache, so a
// decision costs what it touches: the index slot, then the record, which
// holds the id beside everything Decide reads about the subject (its global
// roles and its memberships with their roles), in one or two adjacent cache
// lines. A map of ids to record indexes, records holding spans of shared
// pools, cost five cache misses a decision where this costs two.
//
// A record, every number a little-endian uint32 and offsets relative to the
// record's start:
//
//	id length, id bytes
//	email domain, SSO connection: interned attributes, noAttr when unset
//	groups offset
//	global role count, global roles (sorted role indexes)
//	membership count, memberships: (organization index, roles offset), sorted
//	each membership's roles: count, sorted role indexes
//	at the groups offset: SSO group count, groups (interned attributes)

// subjectIndex finds a subject's record by its id. A slot is a record's
// offset plus one (0: empty) beside 32 bits of the id's hash; the slot's
// position is taken from the same bits, so the table grows without hashing
// again. Slots are probed linearly and at most 80% full.
type subjectIndex struct {
	seed  maphash.Seed
	mask  uint64
	used  int
	slots []uint64 // hash<<32 | offset+1
}

// newSubjectIndex sizes an index for n subjects.
func newSubjectIndex(n int) subjectIndex {
	size := uint64(8)
	if want := uint64(n) + uint64(n)/4 + 1; want > size {
		size = 1 << bits.Len64(want-1)
	}
	return subjectIndex{seed: maphash.MakeSeed(), slots: make([]uint64, size), mask: size - 1}
}

func (x *subjectIndex) hash(id string) uint64 { return maphash.String(x.seed, id) >> 32 }

// hashBytes is hash of the id in b, equal to hash(string(b)).
func (x *subjectIndex) hashBytes(b []byte) uint64 { return maphash.Bytes(x.seed, b) >> 32 }

// add records the record at off under its id and returns -1, or, recording
// nothing, returns the offset of the record that has the id already.
func (x *subjectIndex) add(s *Snapshot, off uint32) int64 {
	if x.used+1 > len(x.slots)/5*4 {
		x.grow()
	}
	id := s.idBytes(off)
	tag := x.hashBytes(id)
	for p := tag & x.mask; ; p = (p + 1) & x.mask {
		slot := x.slots[p]
		if slot == 0 {
			x.slots[p] = tag<<32 | (uint64(off) + 1)
			x.used++
			return -1
		}
		if slot>>32 == tag && bytes.Equal(s.idBytes(uint32(slot)-1), id) {
			return int64(uint32(slot) - 1)
		}
	}
}

// grow doubles the table.
func (x *subjectIndex) grow() {
	old := x.slots
	x.slots = make([]uint64, 2*len(old))
	x.mask = uint64(len(x.slots)) - 1
	for _, slot := range old {
		if slot == 0 {
			continue
		}
		p := slot >> 32 & x.mask
		for x.slots[p] != 0 {
			p = (p + 1) & x.mask
		}
		x.slots[p] = slot
	}
}

// findSubject returns the offset of the record of the subject with id.
func (s *Snapshot) findSubject(id string) (uint32, bool) {
	if len(s.subjects) <= smallSubjects {
		// A few ids are compared faster than one is hashed.
		for _, off := range s.subjects {
			if s.hasID(off, id) {
				return off, true
			}
		}
		return 0, false
	}
	x := &s.subjectIdx
	tag := x.hash(id)
	for p := tag & x.mask; ; p = (p + 1) & x.mask {
		slot := x.slots[p]
		if slot == 0 {
			return 0, false
		}
		if slot>>32 == tag {
			if off := uint32(slot) - 1; s.hasID(off, id) {
				return off, true
			}
		}
	}
}

// smallSubjects is the number of subjects up to which a lookup compares ids
// in turn instead of hashing.
const smallSubjects = 8

// The arena is a list of chunks, so that it grows without copying what it
// holds (a copy would leave the old arena behind as garbage, twice the new
// one's size in all): an offset is a chunk's index in its top bits and a
// position in the chunk below. A record never spans two chunks, so offsets
// within one add as numbers do.
const (
	chunkBits  = 24
	chunkMax   = 1 << chunkBits // the largest chunk, and record
	chunkMask  = chunkMax - 1
	maxChunks  = 1 << (32 - chunkBits)
	firstChunk = 64 << 10
)

// word reads the arena's number at off.
func (s *Snapshot) word(off uint32) uint32 {
	return binary.LittleEndian.Uint32(s.chunks[off>>chunkBits][off&chunkMask:])
}

// nums returns the n numbers at off, still encoded.
func (s *Snapshot) nums(off, n uint32) []byte {
	at := off & chunkMask
	return s.chunks[off>>chunkBits][at : at+4*n]
}

func (s *Snapshot) idBytes(off uint32) []byte {
	c, at := s.chunks[off>>chunkBits], off&chunkMask
	n := binary.LittleEndian.Uint32(c[at:])
	return c[at+4 : at+4+n]
}

// hasID reports whether the record at off has id, allocating nothing.
func (s *Snapshot) hasID(off uint32, id string) bool { return string(s.idBytes(off)) == id }

// subject is a record's parts, located.
type subject struct {
	off    uint32 // the record
	attrs  uint32 // the email domain, then the SSO connection and groups offset
	global uint32 // the global role count, then the roles
	member uint32 // the membership count, then the memberships
}

// subjectAt locates the parts of the record at off.
func (s *Snapshot) subjectAt(off uint32) subject {
	attrs := off + 4 + s.word(off)
	global := attrs + 12
	return subject{off: off, attrs: attrs, global: global, member: global + 4 + 4*s.word(global)}
}

func (s *Snapshot) emailDomainOf(sub subject) int32   { return int32(s.word(sub.attrs)) }
func (s *Snapshot) ssoConnectionOf(sub subject) int32 { return int32(s.word(sub.attrs + 4)) }

// groupsOf returns the subject's SSO groups, encoded.
func (s *Snapshot) groupsOf(sub subject) []byte {
	at := sub.off + s.word(sub.attrs+8)
	return s.nums(at+4, s.word(at))
}

// globalRoles returns the subject's global roles, encoded.
func (s *Snapshot) globalRoles(sub subject) []byte {
	return s.nums(sub.global+4, s.word(sub.global))
}

// memberships returns the number of the subject's memberships.
func (s *Snapshot) memberships(sub subject) uint32 { return s.word(sub.member) }

// membership returns the organization and the roles of the subject's
// membership k.
func (s *Snapshot) membership(sub subject, k uint32) (int32, []byte) {
	pair := sub.member + 4 + 8*k
	at := sub.off + s.word(pair+4)
	return int32(s.word(pair)), s.nums(at+4, s.word(at))
}

// rolesIn returns the roles the subject holds as a member of org.
func (s *Snapshot) rolesIn(sub subject, org int32) ([]byte, bool) {
	lo, hi := uint32(0), s.memberships(sub)
	for lo < hi {
		m := (lo + hi) / 2
		if int32(s.word(sub.member+4+8*m)) < org {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < s.memberships(sub) {
		if o, roles := s.membership(sub, lo); o == org {
			return roles, true
		}
	}
	return nil, false
}

// role returns role index i of encoded roles.
func role(roles []byte, i int) int32 { return int32(binary.LittleEndian.Uint32(roles[4*i:])) }

// record is a subject's parts, but its id, before they are written to the
// arena.
type record struct {
	emailDomain   int32
	ssoConnection int32
	groups        []int32
	global        []int32 // sorted, distinct
	members       []memberRecord
}

type memberRecord struct {
	org   int32
	roles []int32 // sorted, distinct
}

// appendRecord writes the record of subject id at the end of the arena,
// returning its offset, or false when the record is larger than a chunk or
// the arena would outgrow its 32-bit offsets.
func appendRecord[ID string | []byte](s *Snapshot, id ID, r *record) (uint32, bool) {
	size := 4 + len(id) + 12 + 4 + 4*len(r.global) + 4 + 8*len(r.members) + 4 + 4*len(r.groups)
	for _, m := range r.members {
		size += 4 + 4*len(m.roles)
	}
	if size > chunkMax {
		return 0, false
	}
	n := len(s.chunks)
	if n == 0 || cap(s.chunks[n-1])-len(s.chunks[n-1]) < size {
		if n == maxChunks {
			return 0, false
		}
		// Chunks double up to their largest size: small policies stay small.
		next := firstChunk
		if n > 0 {
			next = min(2*cap(s.chunks[n-1]), chunkMax)
		}
		s.chunks = append(s.chunks, make([]byte, 0, max(next, size)))
		n++
	}
	a := s.chunks[n-1]
	pos := len(a)
	off := uint32(n-1)<<chunkBits | uint32(pos)
	u32 := func(v uint32) { a = binary.LittleEndian.AppendUint32(a, v) }
	i32s := func(l []int32) {
		u32(uint32(len(l)))
		for _, v := range l {
			u32(uint32(v))
		}
	}
	u32(uint32(len(id)))
	a = append(a, id...)
	u32(uint32(r.emailDomain))
	u32(uint32(r.ssoConnection))
	groupsAt := uint32(size - 4 - 4*len(r.groups))
	u32(groupsAt)
	i32s(r.global)
	u32(uint32(len(r.members)))
	rolesAt := uint32(len(a)-pos) + 8*uint32(len(r.members))
	for _, m := range r.members {
		u32(uint32(m.org))
		u32(rolesAt)
		rolesAt += 4 + 4*uint32(len(m.roles))
	}
	for _, m := range r.members {
		i32s(m.roles)
	}
	i32s(r.groups)
	s.chunks[n-1] = a
	s.subjects = append(s.subjects, off)
	return off, true
}

// trimArena gives back what the last chunk has to spare, once every record
// is written.
func (s *Snapshot) trimArena() {
	if n := len(s.chunks); n > 0 {
		if last := s.chunks[n-1]; cap(last)-len(last) > len(last)/8 {
			s.chunks[n-1] = slices.Clip(slices.Clone(last))
		}
	}
}

// encodeRoles encodes numbers as the arena does, so that one loop reads an
// organization's roles and a subject's.
func encodeRoles(l []int32) []byte {
	if len(l) == 0 {
		return nil
	}
	enc := make([]byte, 0, 4*len(l))
	for _, v := range l {
		enc = binary.LittleEndian.AppendUint32(enc, uint32(v))
	}
	return enc
}

// decodeRoles appends encoded numbers to l.
func decodeRoles(l []int32, enc []byte) []int32 {
	for i := 0; i < len(enc)/4; i++ {
		l = append(l, role(enc, i))
	}
	return l
}

// subjectIndexOf returns the position in the document of the record at off.
func (s *Snapshot) subjectIndexOf(off uint32) int {
	i, _ := slices.BinarySearch(s.subjects, off)
	return i
}
