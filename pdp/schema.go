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
type docReader struct {
	src  Source
	sink sink
	ps   problems
	err  error

	// Reused for each subject.
	sub    subjectDoc
	groups []string
	roles  []string
}

// read reads the whole document.
func (d *docReader) read() {
	var (
		captured [phases]Source // lists met before one they refer to
		done     int            // lists read and ended
	)
	var root *path
	it := d.mapping(root, policyFields)
	it.hold = true
	for it.next(d) {
		switch k := it.field - 1; {
		case k < 0:
			fp := root.field(it.key)
			d.sink.revision(d.str(&fp))
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
	name := policyFields[k+1]
	var root *path
	fp := root.field(name)
	it.resume(d, k+1, name)
	if src != nil {
		outer := d.src
		d.src = src
		defer func() { d.src = outer }()
	}
	d.phase(k, &fp)
	it.done(d)
	d.sink.end(k)
}

// phase reads one of the document's lists.
func (d *docReader) phase(k int, p *path) {
	switch k {
	case phaseResources:
		d.resources(p)
	case phaseRoles:
		d.roleList(p)
	case phaseOrganizations:
		d.organizations(p)
	case phaseSubjects:
		d.subjects(p)
	}
}

func (d *docReader) resources(p *path) {
	for it := d.list(p); it.next(d); {
		ep := p.at(it.i)
		var r Resource
		for m := d.mapping(&ep, resourceFields); m.next(d); m.done(d) {
			fp := ep.field(m.key)
			switch m.field {
			case 0:
				r.ID = d.str(&fp)
			case 1:
				r.Description = d.str(&fp)
			case 2:
				r.Actions = d.strs(&fp, nil)
			}
		}
		if d.err == nil {
			d.sink.resource(it.i, &r)
		}
	}
}

func (d *docReader) roleList(p *path) {
	for it := d.list(p); it.next(d); {
		ep := p.at(it.i)
		var r Role
		for m := d.mapping(&ep, roleFields); m.next(d); m.done(d) {
			fp := ep.field(m.key)
			switch m.field {
			case 0:
				r.ID = d.str(&fp)
			case 1:
				r.Type = RoleType(d.str(&fp))
			case 2:
				r.Description = d.str(&fp)
			case 3:
				r.Permissions = d.grants(&fp)
			}
		}
		if d.err == nil {
			d.sink.role(it.i, &r)
		}
	}
}

func (d *docReader) grants(p *path) []Grant {
	var out []Grant
	for it := d.list(p); it.next(d); {
		ep := p.at(it.i)
		var g Grant
		for m := d.mapping(&ep, grantFields); m.next(d); m.done(d) {
			fp := ep.field(m.key)
			switch m.field {
			case 0:
				g.Resource = d.str(&fp)
			case 1:
				g.Actions = d.strs(&fp, nil)
			}
		}
		out = append(out, g)
	}
	return out
}

func (d *docReader) organizations(p *path) {
	for it := d.list(p); it.next(d); {
		ep := p.at(it.i)
		var o Organization
		for m := d.mapping(&ep, organizationFields); m.next(d); m.done(d) {
			fp := ep.field(m.key)
			switch m.field {
			case 0:
				o.ID = d.str(&fp)
			case 1:
				o.Name = d.str(&fp)
			case 2:
				o.Description = d.str(&fp)
			case 3:
				o.DefaultRoles = d.strs(&fp, nil)
			case 4:
				o.ImplicitRoles = d.rules(&fp)
			}
		}
		if d.err == nil {
			d.sink.organization(it.i, &o)
		}
	}
}

func (d *docReader) rules(p *path) []ImplicitRule {
	var out []ImplicitRule
	for it := d.list(p); it.next(d); {
		ep := p.at(it.i)
		var r ImplicitRule
		for m := d.mapping(&ep, ruleFields); m.next(d); m.done(d) {
			fp := ep.field(m.key)
			switch m.field {
			case 0:
				r.EmailDomain = d.str(&fp)
			case 1:
				r.SSOConnection = d.str(&fp)
			case 2:
				r.SSOGroup = d.str(&fp)
			case 3:
				r.Roles = d.strs(&fp, nil)
			}
		}
		out = append(out, r)
	}
	return out
}

// subjects reads the subjects into one reused subjectDoc: a million
// subjects allocate nothing here.
func (d *docReader) subjects(p *path) {
	s := &d.sub
	for it := d.list(p); it.next(d); {
		ep := p.at(it.i)
		s.Subject = Subject{}
		s.members = s.members[:0]
		for m := d.mapping(&ep, subjectFields); m.next(d); m.done(d) {
			fp := ep.field(m.key)
			switch m.field {
			case 0:
				s.ID = d.str(&fp)
			case 1:
				s.Type = SubjectType(d.str(&fp))
			case 2:
				s.Email = d.str(&fp)
			case 3:
				s.SSOConnection = d.str(&fp)
			case 4:
				s.SSOGroups = d.strs(&fp, d.groups[:0])
				d.groups = keep(d.groups, s.SSOGroups)
			case 5:
				s.Roles = d.strs(&fp, d.roles[:0])
				d.roles = keep(d.roles, s.Roles)
			case 6:
				d.memberships(&fp, s)
			}
		}
		if d.err == nil {
			slices.SortFunc(s.members, func(a, b memberDoc) int { return strings.Compare(a.org, b.org) })
			d.sink.subject(it.i, s)
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
func (d *docReader) memberships(p *path, s *subjectDoc) {
	for m := d.mapping(p, nil); m.next(d); m.done(d) {
		fp := p.field(m.key)
		n := len(s.members)
		if n < cap(s.members) {
			s.members = s.members[:n+1]
		} else {
			s.members = append(s.members, memberDoc{})
		}
		md := &s.members[n]
		md.org = m.key
		md.roles = d.strs(&fp, md.roles[:0])
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
func (d *docReader) str(p *path) string {
	k, ok := d.peek()
	switch {
	case !ok:
		return ""
	case k == String || k == Number:
		v, err := d.src.Scalar()
		d.fail(err)
		return v
	case k != Null:
		d.ps.add(p, "must be a string, got %s", kindName(k))
	}
	d.skip()
	return ""
}

// strs reads a list of strings, appending to buf. It returns nil when the
// value is absent or no list, and a list that is not nil otherwise.
func (d *docReader) strs(p *path, buf []string) []string {
	if buf == nil {
		buf = []string{}
	}
	it := d.list(p)
	if !it.ok {
		return nil
	}
	for it.next(d) {
		ep := p.at(it.i)
		buf = append(buf, d.str(&ep))
	}
	return buf
}

// listIter steps through a list's elements.
type listIter struct {
	ok bool // the value is a list
	i  int  // the element's index
}

// list starts reading a list at p. A value that is null reads as an empty
// list; one of another kind is a problem and is skipped.
func (d *docReader) list(p *path) listIter {
	k, ok := d.peek()
	switch {
	case !ok:
		return listIter{}
	case k == List:
		d.fail(d.src.Enter())
		return listIter{ok: d.err == nil, i: -1}
	case k != Null:
		d.ps.add(p, "must be a list, got %s", kindName(k))
	}
	d.skip()
	return listIter{}
}

// next moves to the next element; false at the end or after an error.
func (it *listIter) next(d *docReader) bool {
	if !it.ok || d.err != nil {
		return false
	}
	_, more, err := d.src.Next()
	if d.fail(err) || !more {
		it.ok = false
		return false
	}
	it.i++
	return true
}

// mapIter steps through a mapping's fields, and keeps the problems found
// under the mapping in the order they have always been listed in: unknown
// fields first, sorted, then each field's own problems in the schema's
// order of fields, or by key where any key is allowed (memberships),
// whatever order the document has them in.
type mapIter struct {
	p      *path
	fields []string // nil: any key is allowed
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

// mapping starts reading a mapping at p whose fields are those named, or
// with any keys when fields is nil. A value that is null reads as an empty
// mapping; one of another kind is a problem and is skipped.
func (d *docReader) mapping(p *path, fields []string) mapIter {
	it := mapIter{p: p, fields: fields}
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
		d.ps.add(p, "must be a mapping, got %s", kindName(k))
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
	if to := len(d.ps.list); to > it.from {
		it.parts = append(it.parts, part{it.field, strings.Clone(it.key), it.from, to})
		it.from = to
	}
}

// resume makes field the current one: the top mapping reads some of its
// lists after its end.
func (it *mapIter) resume(d *docReader, field int, key string) {
	it.field, it.key, it.from = field, key, len(d.ps.list)
}

// finish puts the problems under the mapping in order.
func (it *mapIter) finish(d *docReader) {
	if len(it.unknown) == 0 && slices.IsSortedFunc(it.parts, comparePart) {
		return
	}
	ps := &d.ps
	slices.Sort(it.unknown)
	var out []Problem
	for _, k := range it.unknown {
		out = append(out, unknownField(it.p, k, it.fields))
	}
	slices.SortStableFunc(it.parts, comparePart)
	for _, pt := range it.parts {
		out = append(out, ps.list[pt.from:pt.to]...)
	}
	ps.list = append(ps.list[:it.start], out...)
	ps.trim()
	it.unknown, it.parts = nil, nil
}

func comparePart(a, b part) int {
	if c := cmp.Compare(a.field, b.field); c != 0 {
		return c
	}
	return strings.Compare(a.key, b.key)
}

func unknownField(p *path, key string, allowed []string) Problem {
	return newProblem(p, "unknown field %q (allowed: %s)", key, strings.Join(allowed, ", "))
}

func kindName(k Kind) string {
	switch k {
	case Null:
		return "null"
	case Bool:
		return "a boolean"
	case Number:
		return "a number"
	case String:
		return "a string"
	case List:
		return "a list"
	case Mapping:
		return "a mapping"
	}
	return "an unsupported value"
}
