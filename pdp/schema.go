package pdp

import (
	"cmp"
	"slices"
	"strings"
)

// The schema of the policy document, read by docReader for every syntax and
// size: the one definition of which fields exist, what kind each holds, and
// in what order problems with them are listed. Decode and Build both read
// through it; only what they do with each entity differs (the sink).

var (
	policyFields       = []string{"revision", "resources", "roles", "organizations", "subjects"}
	resourceFields     = []string{"id", "description", "actions"}
	roleFields         = []string{"id", "type", "description", "permissions"}
	grantFields        = []string{"resource", "actions"}
	organizationFields = []string{"id", "name", "description", "default_roles", "implicit_roles"}
	ruleFields         = []string{"email_domain", "sso_connection", "sso_group", "roles"}
	subjectFields      = []string{"id", "type", "email", "sso_connection", "sso_groups", "roles", "memberships"}
)

// The document's lists, in the order a sink receives them: each may refer
// to the ones before it (roles to resources, organizations to roles,
// subjects to organizations and roles).
const (
	phaseResources = iota
	phaseRoles
	phaseOrganizations
	phaseSubjects
	phases
)

// sink receives the entities of a document as docReader reads them. The
// entities are reused for the next one: a sink copies what it keeps,
// strings included (they may share memory with the document). Every list
// ends, in phase order, even when the document lacks it.
type sink interface {
	revision(rev string)
	resource(i int, r *Resource)
	role(i int, r *Role)
	organization(i int, o *Organization)
	subject(i int, s *subjectDoc)
	end(phase int)
}

// subjectDoc is a subject as read, with its memberships sorted by
// organization instead of in a map, so that reading a million of them
// allocates nothing.
type subjectDoc struct {
	Subject // Memberships unused
	members []memberDoc
}

type memberDoc struct {
	org   string
	roles []string
}

// docReader reads a policy document from a Source into a sink, and collects
// the structural problems: unknown fields and values of the wrong kind. A
// value of the wrong kind reads as absent, so that validation still sees
// the rest of the entity. The first error of the Source ends the read.
//
// The path to the value being read is a stack the reader keeps, spelt only
// when a problem names it.
type docReader struct {
	src  Source
	sink sink
	ps   problems
	err  error
	at   []pathElem

	// Reused for each subject.
	sub    subjectDoc
	groups []string
	roles  []string
}

// pathElem is a step of a path: a field or key, or a list index (index >= 0).
type pathElem struct {
	name  string
	index int
}

func (d *docReader) pushField(name string) { d.at = append(d.at, pathElem{name: name, index: -1}) }
func (d *docReader) pushIndex(i int)       { d.at = append(d.at, pathElem{index: i}) }
func (d *docReader) pop()                  { d.at = d.at[:len(d.at)-1] }

// problem records a problem at the first depth steps of the path.
func (d *docReader) problem(depth int, format string, args ...any) {
	d.ps.add(d.path(depth), format, args...)
}

// path returns the first depth steps of the path.
func (d *docReader) path(depth int) *path {
	var p *path
	for _, e := range d.at[:depth] {
		p = &path{parent: p, name: e.name, index: e.index}
	}
	return p
}

// read reads the whole document.
func (d *docReader) read() {
	var (
		captured [phases]Source // lists met before one they refer to
		done     int            // lists read and ended
	)
	it := d.mapping(policyFields)
	it.hold = true
	for it.next(d) {
		switch k := it.field - 1; {
		case k < 0:
			d.sink.revision(d.str())
		case k == done:
			d.readPhase(&it, k, nil)
			for done++; done < phases && captured[done] != nil; done++ {
				d.readPhase(&it, done, captured[done])
			}
		default:
			// A list that refers to one not read yet is read after it.
			src, err := d.src.Capture()
			d.fail(err)
			captured[k] = src
		}
		it.done(d)
	}
	for ; done < phases && d.err == nil; done++ {
		if captured[done] != nil {
			d.readPhase(&it, done, captured[done])
		} else {
			d.sink.end(done)
		}
	}
	it.finish(d)
}

// readPhase reads list k of the top mapping, from src when the list was
// captured to be read late, and ends it.
func (d *docReader) readPhase(it *mapIter, k int, src Source) {
	it.resume(d, k+1, policyFields[k+1])
	d.at = append(d.at[:it.depth], pathElem{name: policyFields[k+1], index: -1})
	if src != nil {
		outer := d.src
		d.src = src
		defer func() { d.src = outer }()
	}
	switch k {
	case phaseResources:
		d.resources()
	case phaseRoles:
		d.roleList()
	case phaseOrganizations:
		d.organizations()
	case phaseSubjects:
		d.subjects()
	}
	it.done(d)
	d.sink.end(k)
}

func (d *docReader) resources() {
	for it := d.list(); it.next(d); {
		var r Resource
		for m := d.mapping(resourceFields); m.next(d); m.done(d) {
			switch m.field {
			case 0:
				r.ID = d.str()
			case 1:
				r.Description = d.str()
			case 2:
				r.Actions = d.strs(nil)
			}
		}
		if d.err == nil {
			d.sink.resource(it.i, &r)
		}
	}
}

func (d *docReader) roleList() {
	for it := d.list(); it.next(d); {
		var r Role
		for m := d.mapping(roleFields); m.next(d); m.done(d) {
			switch m.field {
			case 0:
				r.ID = d.str()
			case 1:
				r.Type = RoleType(d.str())
			case 2:
				r.Description = d.str()
			case 3:
				r.Permissions = d.grants()
			}
		}
		if d.err == nil {
			d.sink.role(it.i, &r)
		}
	}
}

func (d *docReader) grants() []Grant {
	var out []Grant
	for it := d.list(); it.next(d); {
		var g Grant
		for m := d.mapping(grantFields); m.next(d); m.done(d) {
			switch m.field {
			case 0:
				g.Resource = d.str()
			case 1:
				g.Actions = d.strs(nil)
			}
		}
		out = append(out, g)
	}
	return out
}

func (d *docReader) organizations() {
	for it := d.list(); it.next(d); {
		var o Organization
		for m := d.mapping(organizationFields); m.next(d); m.done(d) {
			switch m.field {
			case 0:
				o.ID = d.str()
			case 1:
				o.Name = d.str()
			case 2:
				o.Description = d.str()
			case 3:
				o.DefaultRoles = d.strs(nil)
			case 4:
				o.ImplicitRoles = d.rules()
			}
		}
		if d.err == nil {
			d.sink.organization(it.i, &o)
		}
	}
}

func (d *docReader) rules() []ImplicitRule {
	var out []ImplicitRule
	for it := d.list(); it.next(d); {
		var r ImplicitRule
		for m := d.mapping(ruleFields); m.next(d); m.done(d) {
			switch m.field {
			case 0:
				r.EmailDomain = d.str()
			case 1:
				r.SSOConnection = d.str()
			case 2:
				r.SSOGroup = d.str()
			case 3:
				r.Roles = d.strs(nil)
			}
		}
		out = append(out, r)
	}
	return out
}

// subjects reads the subjects into one reused subjectDoc: a million
// subjects allocate nothing here.
func (d *docReader) subjects() {
	s := &d.sub
	for it := d.list(); it.next(d); {
		s.Subject = Subject{}
		s.members = s.members[:0]
		for m := d.mapping(subjectFields); m.next(d); m.done(d) {
			switch m.field {
			case 0:
				s.ID = d.str()
			case 1:
				s.Type = SubjectType(d.str())
			case 2:
				s.Email = d.str()
			case 3:
				s.SSOConnection = d.str()
			case 4:
				s.SSOGroups = d.strs(d.groups[:0])
				d.groups = keep(d.groups, s.SSOGroups)
			case 5:
				s.Roles = d.strs(d.roles[:0])
				d.roles = keep(d.roles, s.Roles)
			case 6:
				d.memberships(s)
			}
		}
		if d.err == nil {
			sortMembers(s.members)
			d.sink.subject(it.i, s)
		}
	}
}

// sortMembers sorts memberships by organization: an insertion sort, as a
// subject has a few.
func sortMembers(ms []memberDoc) {
	for i := 1; i < len(ms); i++ {
		for k := i; k > 0 && ms[k-1].org > ms[k].org; k-- {
			ms[k-1], ms[k] = ms[k], ms[k-1]
		}
	}
}

// keep returns the larger of two buffers, so that a grown one is reused.
func keep(buf, l []string) []string {
	if cap(l) > cap(buf) {
		return l
	}
	return buf
}

// memberships reads a mapping of organization ids to the roles held there;
// a value that is no list is a membership with the default roles only.
func (d *docReader) memberships(s *subjectDoc) {
	for m := d.mapping(nil); m.next(d); m.done(d) {
		n := len(s.members)
		if n < cap(s.members) {
			s.members = s.members[:n+1]
		} else {
			s.members = append(s.members, memberDoc{})
		}
		md := &s.members[n]
		md.org = m.key
		md.roles = d.strs(md.roles[:0])
	}
}

// fail records the Source's first error, which ends the read.
func (d *docReader) fail(err error) bool {
	if err != nil && d.err == nil {
		d.err = err
	}
	return d.err != nil
}

// peek returns the next value's kind; ok is false after an error.
func (d *docReader) peek() (Kind, bool) {
	if d.err != nil {
		return Null, false
	}
	k, err := d.src.Peek()
	return k, !d.fail(err)
}

func (d *docReader) skip() { d.fail(d.src.Skip()) }

// str reads a string, or a number as its literal text, so that
// "revision: 42" in YAML reads as "42". Anything else is a problem and
// reads as "".
func (d *docReader) str() string {
	k, ok := d.peek()
	switch {
	case !ok:
		return ""
	case k == String || k == Number:
		v, err := d.src.Scalar()
		d.fail(err)
		return v
	case k != Null:
		d.problem(len(d.at), "must be a string, got %s", k)
	}
	d.skip()
	return ""
}

// strs reads a list of strings, appending to buf. It returns nil when the
// value is absent or no list, and a list that is not nil otherwise.
func (d *docReader) strs(buf []string) []string {
	if buf == nil {
		buf = []string{}
	}
	it := d.list()
	if !it.ok {
		return nil
	}
	for it.next(d) {
		buf = append(buf, d.str())
	}
	return buf
}

// listIter steps through a list's elements, each the current path's last
// step while it is read.
type listIter struct {
	ok bool // the value is a list
	i  int  // the element's index
}

// list starts reading a list. A value that is null reads as an empty list;
// one of another kind is a problem and is skipped.
func (d *docReader) list() listIter {
	k, ok := d.peek()
	switch {
	case !ok:
		return listIter{}
	case k == List:
		d.fail(d.src.Enter())
		return listIter{ok: d.err == nil, i: -1}
	case k != Null:
		d.problem(len(d.at), "must be a list, got %s", k)
	}
	d.skip()
	return listIter{}
}

// next moves to the next element; false at the end or after an error.
func (it *listIter) next(d *docReader) bool {
	if !it.ok {
		return false
	}
	if it.i >= 0 {
		d.pop()
	}
	if d.err != nil {
		it.ok = false
		return false
	}
	_, more, err := d.src.Next()
	if d.fail(err) || !more {
		it.ok = false
		return false
	}
	it.i++
	d.pushIndex(it.i)
	return true
}

// mapIter steps through a mapping's fields, each the current path's last
// step while it is read, and keeps the problems found under the mapping in
// the order they have always been listed in: unknown fields first, sorted,
// then each field's own problems in the schema's order of fields, or by key
// where any key is allowed (memberships), whatever order the document has
// them in.
type mapIter struct {
	fields []string // nil: any key is allowed
	depth  int      // the mapping's path: the first depth steps
	ok     bool
	hold   bool // the caller finishes the mapping, after reading more
	start  int  // the first problem under the mapping

	field int    // the current field's index in fields; -1 where any key is allowed
	key   string // the current key
	from  int    // the first problem of the current field

	unknown []string
	parts   []part
}

// part is the run of problems found under one field.
type part struct {
	field    int
	key      string
	from, to int
}

// mapping starts reading a mapping whose fields are those named, or with
// any keys when fields is nil. A value that is null reads as an empty
// mapping; one of another kind is a problem and is skipped.
func (d *docReader) mapping(fields []string) mapIter {
	it := mapIter{fields: fields, depth: len(d.at)}
	k, ok := d.peek()
	switch {
	case !ok:
		return it
	case k == Mapping:
		d.fail(d.src.Enter())
		it.ok = d.err == nil
		it.start = len(d.ps.list)
		return it
	case k != Null:
		d.problem(len(d.at), "must be a mapping, got %s", k)
	}
	d.skip()
	return it
}

// next moves to the next known field, skipping unknown ones (a problem
// each); false at the end or after an error.
func (it *mapIter) next(d *docReader) bool {
	for it.ok && d.err == nil {
		key, more, err := d.src.Next()
		if d.fail(err) || !more {
			break
		}
		it.field = -1
		if it.fields != nil {
			if it.field = slices.Index(it.fields, key); it.field < 0 {
				it.unknown = append(it.unknown, strings.Clone(key))
				d.skip()
				continue
			}
		}
		it.key = key
		it.from = len(d.ps.list)
		d.pushField(key)
		return true
	}
	if it.ok && !it.hold {
		it.finish(d)
	}
	it.ok = false
	return false
}

// done ends the current field.
func (it *mapIter) done(d *docReader) {
	if len(d.at) > it.depth {
		d.pop()
	}
	it.record(d)
}

// record notes the problems found under the current field since from.
func (it *mapIter) record(d *docReader) {
	if to := len(d.ps.list); to > it.from {
		it.parts = append(it.parts, part{it.field, strings.Clone(it.key), it.from, to})
		it.from = to
	}
}

// resume makes field the current one: the top mapping reads some of its
// lists after its end.
func (it *mapIter) resume(d *docReader, field int, key string) {
	it.record(d)
	it.field, it.key, it.from = field, key, len(d.ps.list)
}

// finish puts the problems under the mapping in order.
func (it *mapIter) finish(d *docReader) {
	if len(it.unknown) == 0 && partsSorted(it.parts) {
		return
	}
	ps := &d.ps
	slices.Sort(it.unknown)
	var out []Problem
	for _, k := range it.unknown {
		out = append(out, newProblem(d.path(it.depth), "unknown field %q (allowed: %s)", k, strings.Join(it.fields, ", ")))
	}
	// An insertion sort, stable: a mapping has a few fields.
	for i := 1; i < len(it.parts); i++ {
		for k := i; k > 0 && comparePart(it.parts[k-1], it.parts[k]) > 0; k-- {
			it.parts[k-1], it.parts[k] = it.parts[k], it.parts[k-1]
		}
	}
	for _, pt := range it.parts {
		out = append(out, ps.list[pt.from:pt.to]...)
	}
	ps.list = append(ps.list[:it.start], out...)
	ps.trim()
	it.unknown, it.parts = nil, nil
}

func partsSorted(parts []part) bool {
	for i := 1; i < len(parts); i++ {
		if comparePart(parts[i-1], parts[i]) > 0 {
			return false
		}
	}
	return true
}

func comparePart(a, b part) int {
	if c := cmp.Compare(a.field, b.field); c != 0 {
		return c
	}
	return strings.Compare(a.key, b.key)
}
