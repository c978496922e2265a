package pdp

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"sync"
)

// SubjectQuery asks who may perform Action on Resource, inside Org when Org
// is not empty: the question of an audit, answered page by page.
type SubjectQuery struct {
	Org      string
	Resource string
	Action   string
	// Limit is the most subjects a page holds: 0 means DefaultPageSize; at
	// most MaxPageSize.
	Limit int
	// PageToken continues after the page that returned it; empty for the
	// first page.
	PageToken string
}

// Page sizes of ListSubjects.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// AllowedSubject is a subject that may perform the action, and the role
// that grants it: the one Decide names.
type AllowedSubject struct {
	Subject     string
	MatchedRole string
}

// SubjectPage is one page of the answer to a SubjectQuery.
type SubjectPage struct {
	// Subjects in the policy document's order.
	Subjects []AllowedSubject
	// NextPageToken continues the list; empty on the last page. A page
	// before the last may hold fewer subjects than asked for, even none.
	NextPageToken string
	// Reason is UnknownResource, UnknownAction or UnknownOrganization when
	// the query names something the policy does not have, else Granted.
	Reason   Reason
	Revision string
}

// Validate reports the first malformed field of q.
func (q SubjectQuery) Validate() error {
	for _, f := range [...]struct {
		name, value string
		required    bool
	}{{"org", q.Org, false}, {"resource", q.Resource, true}, {"action", q.Action, true}} {
		if err := checkQueryField(f.name, f.value, f.required); err != nil {
			return err
		}
	}
	if q.Limit < 0 || q.Limit > MaxPageSize {
		return &QueryError{Field: "page_size", Reason: fmt.Sprintf("is %d; want 0 (for %d) to %d", q.Limit, DefaultPageSize, MaxPageSize)}
	}
	return nil
}

// ListSubjects validates q and answers it from the current snapshot.
func (e *Engine) ListSubjects(q SubjectQuery) (SubjectPage, error) {
	if err := q.Validate(); err != nil {
		return SubjectPage{}, err
	}
	s := e.current.Load()
	if s == nil {
		return SubjectPage{}, ErrNoPolicy
	}
	return s.ListSubjects(q)
}

// ListSubjects lists the subjects Decide allows to perform q.Action on
// q.Resource (inside q.Org when it is set), each with the role Decide would
// name. It assumes q is valid (see SubjectQuery.Validate); a page token of
// another snapshot is a *QueryError.
//
// The candidates come from an inverted index (subjects by global role, by
// membership, and by the attributes implicit rules match), built on the
// first call and kept with the snapshot; every candidate is then decided as
// Decide would, so the answer cannot differ from Check's.
func (s *Snapshot) ListSubjects(q SubjectQuery) (SubjectPage, error) {
	page := SubjectPage{Revision: s.revision, Reason: Granted}
	from := 0
	if q.PageToken != "" {
		var ok bool
		if from, ok = s.parsePageToken(q.PageToken); !ok {
			return page, &QueryError{Field: "page_token", Reason: fmt.Sprintf("is not a page token of policy revision %q; start again without one", s.revision)}
		}
	}
	limit := q.Limit
	if limit == 0 {
		limit = DefaultPageSize
	}
	ri, ok := s.resourceIdx[q.Resource]
	if !ok {
		page.Reason = UnknownResource
		return page, nil
	}
	res := &s.resources[ri]
	off, ok := res.actions[q.Action]
	if !ok {
		page.Reason = UnknownAction
		return page, nil
	}
	perm := res.base + off
	oi := int32(noOrg)
	if q.Org != "" {
		if oi, ok = s.orgIdx[q.Org]; !ok {
			page.Reason = UnknownOrganization
			return page, nil
		}
	}

	x := s.whoIndex()
	var lists [][]uint32
	if oi == noOrg {
		for r := range s.roles {
			if hasBit(s.roleBits(int32(r)), perm) {
				lists = append(lists, x.global.list(r))
			}
		}
	} else {
		lists = append(lists, x.members.list(int(oi)))
		for i := range s.orgs[oi].implicit {
			lists = append(lists, x.byAttr.list(int(x.attrSlot[ruleKey(&s.orgs[oi].implicit[i])])))
		}
	}
	m := newMerge(lists, uint32(from))
	for pos, more := m.next(); more; pos, more = m.next() {
		if len(page.Subjects) == limit {
			page.NextPageToken = s.pageToken(int(pos))
			break
		}
		sub := s.subjectAt(s.subjects[pos])
		best := int32(noRole)
		if oi == noOrg {
			best = s.firstGranting(s.globalRoles(sub), perm, best)
		} else {
			best, _ = s.bestIn(sub, oi, perm)
		}
		if best != noRole {
			page.Subjects = append(page.Subjects, AllowedSubject{Subject: string(s.idBytes(sub.off)), MatchedRole: s.roles[best]})
		}
	}
	return page, nil
}

// A page token is the position of the first subject of the next page,
// bound to the snapshot by a hash of its revision and subject count.
func (s *Snapshot) pageToken(pos int) string {
	b := binary.LittleEndian.AppendUint64(nil, s.tokenTag())
	return base64.RawURLEncoding.EncodeToString(binary.AppendUvarint(b, uint64(pos)))
}

func (s *Snapshot) parsePageToken(tok string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) < 9 || binary.LittleEndian.Uint64(b) != s.tokenTag() {
		return 0, false
	}
	pos, n := binary.Uvarint(b[8:])
	if n != len(b)-8 || pos > uint64(len(s.subjects)) {
		return 0, false
	}
	return int(pos), true
}

func (s *Snapshot) tokenTag() uint64 {
	h := fnv.New64a()
	h.Write([]byte(s.revision))
	h.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(s.subjects))))
	return h.Sum64()
}

// whoIndexes lists subjects by what makes them candidates for a permission,
// each list sorted by position in the document.
type whoIndexes struct {
	global   csr // role → subjects holding it globally
	members  csr // organization → its members
	byAttr   csr // a rule key's slot → subjects with that attribute
	attrSlot map[int32]int32
}

// WhoIndexBytes reports the memory the who-can index takes, building it if
// ListSubjects has not yet.
func (s *Snapshot) WhoIndexBytes() int {
	x := s.whoIndex()
	n := 0
	for _, c := range [...]*csr{&x.global, &x.members, &x.byAttr} {
		n += 4 * (len(c.start) + len(c.pos))
	}
	return n + 16*len(x.attrSlot)
}

// whoIndex returns the snapshot's inverted index, built by the first call.
// A Snapshot is otherwise never modified after it is compiled; the index is
// derived from it alone, and sidecars that never ask who can pay nothing
// for it.
func (s *Snapshot) whoIndex() *whoIndexes {
	s.who.once.Do(func() { s.who.x = s.buildWhoIndex() })
	return s.who.x
}

// lazyWho holds the who-can index once built.
type lazyWho struct {
	once sync.Once
	x    *whoIndexes
}

func (s *Snapshot) buildWhoIndex() *whoIndexes {
	x := &whoIndexes{attrSlot: make(map[int32]int32)}
	for oi := range s.orgs {
		for i := range s.orgs[oi].implicit {
			k := ruleKey(&s.orgs[oi].implicit[i])
			if _, ok := x.attrSlot[k]; !ok {
				x.attrSlot[k] = int32(len(x.attrSlot))
			}
		}
	}
	global := newCSRBuilder(len(s.roles))
	members := newCSRBuilder(len(s.orgs))
	byAttr := newCSRBuilder(len(x.attrSlot))
	// Two passes over the subjects: count, then place, so that each list is
	// allocated once at its size.
	for pass := range 2 {
		for pos, off := range s.subjects {
			sub := s.subjectAt(off)
			p := uint32(pos)
			g := s.globalRoles(sub)
			for i := range len(g) / 4 {
				global.add(pass, int(role(g, i)), p)
			}
			for k := range s.memberships(sub) {
				oi, _ := s.membership(sub, k)
				members.add(pass, int(oi), p)
			}
			if len(x.attrSlot) == 0 {
				continue
			}
			for _, a := range [...]int32{s.emailDomainOf(sub), s.ssoConnectionOf(sub)} {
				if slot, ok := x.attrSlot[a]; ok {
					byAttr.add(pass, int(slot), p)
				}
			}
			groups := s.groupsOf(sub)
			for i := range len(groups) / 4 {
				if slot, ok := x.attrSlot[role(groups, i)]; ok {
					byAttr.add(pass, int(slot), p)
				}
			}
		}
		if pass == 0 {
			global.alloc()
			members.alloc()
			byAttr.alloc()
		}
	}
	x.global, x.members, x.byAttr = global.c, members.c, byAttr.c
	return x
}

// csr is lists of positions in one array: list k is pos[start[k]:start[k+1]].
type csr struct {
	start []uint32
	pos   []uint32
}

func (c *csr) list(k int) []uint32 { return c.pos[c.start[k]:c.start[k+1]] }

// csrBuilder counts list lengths in a first pass and places positions in a
// second.
type csrBuilder struct {
	c    csr
	fill []uint32
}

func newCSRBuilder(lists int) *csrBuilder {
	return &csrBuilder{c: csr{start: make([]uint32, lists+1)}}
}

func (b *csrBuilder) add(pass, k int, p uint32) {
	if pass == 0 {
		b.c.start[k+1]++
		return
	}
	b.c.pos[b.fill[k]] = p
	b.fill[k]++
}

func (b *csrBuilder) alloc() {
	for k := 1; k < len(b.c.start); k++ {
		b.c.start[k] += b.c.start[k-1]
	}
	b.c.pos = make([]uint32, b.c.start[len(b.c.start)-1])
	b.fill = append([]uint32(nil), b.c.start[:len(b.c.start)-1]...)
}

// merge yields the distinct positions of sorted lists in ascending order,
// from a first position on.
type merge struct {
	lists [][]uint32
}

func newMerge(lists [][]uint32, from uint32) *merge {
	m := &merge{}
	for _, l := range lists {
		lo, hi := 0, len(l)
		for lo < hi {
			if mid := (lo + hi) / 2; l[mid] < from {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		if lo < len(l) {
			m.lists = append(m.lists, l[lo:])
		}
	}
	return m
}

func (m *merge) next() (uint32, bool) {
	if len(m.lists) == 0 {
		return 0, false
	}
	least := m.lists[0][0]
	for _, l := range m.lists[1:] {
		least = min(least, l[0])
	}
	live := m.lists[:0]
	for _, l := range m.lists {
		for len(l) > 0 && l[0] == least { // a list may repeat a subject
			l = l[1:]
		}
		if len(l) > 0 {
			live = append(live, l)
		}
	}
	m.lists = live
	return least, true
}
