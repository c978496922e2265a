package pdp

import (
	"hash/maphash"
	"math/bits"
)

// subjectIndex finds a subject's record by its id. It replaces a
// map[string]int32: at a million subjects a map spends three cache misses on
// a lookup (its control word, the slot, the key's bytes) and some 52 MB;
// this table spends one on its slot and 16 MB, and the record it points to
// holds where the id's bytes are, so a lookup costs the slot, the record and
// the id, and the record is needed anyway.
//
// Slots are open-addressed with linear probing, at most 80% full. A slot is
// the subject's index plus one (0: empty) beside 32 bits of the id's hash,
// so that a probe compares ids only when the hashes agree.
type subjectIndex struct {
	seed  maphash.Seed
	mask  uint64
	slots []uint64 // hash<<32 | index+1
}

// newSubjectIndex sizes an index for n subjects.
func newSubjectIndex(n int) subjectIndex {
	size := uint64(8)
	if want := uint64(n) + uint64(n)/4 + 1; want > size {
		size = 1 << bits.Len64(want-1)
	}
	return subjectIndex{seed: maphash.MakeSeed(), mask: size - 1, slots: make([]uint64, size)}
}

// add records that subject i of s has its id, and reports false, recording
// nothing, when another subject has that id already.
func (x *subjectIndex) add(s *Snapshot, i int32) bool {
	id := s.subjectID(i)
	h := maphash.String(x.seed, id)
	tag := h >> 32
	for p := h & x.mask; ; p = (p + 1) & x.mask {
		slot := x.slots[p]
		if slot == 0 {
			x.slots[p] = tag<<32 | uint64(i+1)
			return true
		}
		if slot>>32 == tag && s.subjectID(int32(uint32(slot))-1) == id {
			return false
		}
	}
}

// findSubject returns the index of the subject with id.
func (s *Snapshot) findSubject(id string) (int32, bool) {
	if len(s.subjects) <= smallSubjects {
		// A few ids are compared faster than one is hashed.
		for i := range s.subjects {
			if s.subjectID(int32(i)) == id {
				return int32(i), true
			}
		}
		return 0, false
	}
	x := &s.subjectIdx
	h := maphash.String(x.seed, id)
	tag := h >> 32
	for p := h & x.mask; ; p = (p + 1) & x.mask {
		slot := x.slots[p]
		if slot == 0 {
			return 0, false
		}
		if slot>>32 == tag {
			if i := int32(uint32(slot)) - 1; s.subjectID(i) == id {
				return i, true
			}
		}
	}
}

// smallSubjects is the number of subjects up to which a lookup compares ids
// in turn instead of hashing.
const smallSubjects = 8

// subjectID is subject i's id.
func (s *Snapshot) subjectID(i int32) string {
	sp := s.subjects[i].id
	return s.ids[sp.off : sp.off+sp.n]
}
