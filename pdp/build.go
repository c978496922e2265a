package pdp

import (
	"maps"
	"slices"
	"strings"
)

// Build reads a policy document from src, validates it and compiles it,
// entity by entity, as Compile does a Policy: no tree of the document and no
// Policy is built on the way, so that a document of a million subjects
// costs little more than the Snapshot it becomes. Problems come back as one
// *ValidationError, listed as Decode and Compile list them; an error of the
// Source (malformed syntax, say) comes back as it is. fallbackRevision names
// the policy when the document has no revision.
func Build(src Source, fallbackRevision func() string) (*Snapshot, error) {
	b := newBuilder()
	d := &docReader{src: src, sink: b}
	d.read()
	if d.err != nil {
		return nil, d.err
	}
	if b.s.revision == "" && fallbackRevision != nil {
		b.s.revision = fallbackRevision()
	}
	return b.finish(&d.ps)
}

// Compile validates p and builds its Snapshot. It reports every problem at
// once as a *ValidationError; an invalid policy never compiles.
func Compile(p *Policy) (*Snapshot, error) {
	b := newBuilder()
	feed(b, p)
	return b.finish(nil)
}

// Validate reports every problem with p, each located by its path. Compile
// validates too; Validate is for callers that build a Policy in code, such as
// upstream adapters, and want the problems without the Snapshot.
func (p *Policy) Validate() error {
	_, err := Compile(p)
	return err
}

// feed hands a Policy's entities to a sink, as docReader hands a
// document's.
func feed(sk sink, p *Policy) {
	sk.revision(p.Revision)
	for i := range p.Resources {
		sk.resource(i, &p.Resources[i])
	}
	sk.end(phaseResources)
	for i := range p.Roles {
		sk.role(i, &p.Roles[i])
	}
	sk.end(phaseRoles)
	for i := range p.Organizations {
		sk.organization(i, &p.Organizations[i])
	}
	sk.end(phaseOrganizations)
	var sd subjectDoc
	for i := range p.Subjects {
		sd.Subject = p.Subjects[i]
		sd.members = sd.members[:0]
		for _, org := range slices.Sorted(maps.Keys(sd.Memberships)) {
			sd.members = append(sd.members, memberDoc{org: org, roles: sd.Memberships[org]})
		}
		sk.subject(i, &sd)
	}
	sk.end(phaseSubjects)
}

// builder validates the entities of a policy as they arrive and compiles
// them into a Snapshot. Each list is checked against the lists before it,
// which are complete by then (see sink); the small lists (resources, roles,
// organizations) are kept until they end, the subjects go straight into the
// Snapshot's arena. Once a problem is found nothing more is compiled but
// subjects' ids, which later duplicates are found by; the checks go on, so
// that every problem is reported.
type builder struct {
	ps problems
	s  *Snapshot

	revisionProblem problems

	// The first definition of each id, for duplicates and references.
	resourceDefs map[string]int
	actions      map[string]map[string]bool // resource id → its actions
	roleFirst    map[string]int
	roleDefs     map[string]roleDef
	orgDefs      map[string]int

	resources []Resource
	roles     []Role
	orgs      []Organization
	intern    interner

	rec     record  // reused for each subject
	lookups lookups // reused for each subject
}

type roleDef struct {
	typ   RoleType // "" when invalid
	index int32    // in the Snapshot, once compiled
}

func newBuilder() *builder {
	return &builder{
		s:            &Snapshot{subjectIdx: newSubjectIndex(0)},
		resourceDefs: map[string]int{},
		roleFirst:    map[string]int{},
		actions:      map[string]map[string]bool{},
		roleDefs:     map[string]roleDef{},
		orgDefs:      map[string]int{},
		intern:       interner{idx: map[string]int32{}},
	}
}

// compiling reports whether the policy is valid so far.
func (b *builder) compiling() bool { return b.ps.empty() }

var (
	resourcesPath     = (*path)(nil).field("resources")
	rolesPath         = (*path)(nil).field("roles")
	organizationsPath = (*path)(nil).field("organizations")
	subjectsPath      = (*path)(nil).field("subjects")
)

func (b *builder) revision(rev string) {
	b.s.revision = strings.Clone(rev)
	if rev != "" {
		p := (*path)(nil).field("revision")
		checkText(&b.revisionProblem, &p, rev, MaxIDLen)
	}
}

func (b *builder) resource(i int, r *Resource) {
	p := resourcesPath.at(i)
	first := define(&b.ps, &p, b.resourceDefs, "resources", "resource", i, r.ID)
	dp := p.field("description")
	checkText(&b.ps, &dp, r.Description, maxTextLen)
	ap := p.field("actions")
	defined := make(map[string]bool, len(r.Actions))
	for k, a := range r.Actions {
		ep := ap.at(k)
		switch {
		case !checkID(&b.ps, &ep, a):
		case a == "*":
			b.ps.add(&ep, `"*" is reserved (in a role it means every action) and cannot be defined as an action`)
		case defined[a]:
			b.ps.add(&ep, "duplicate action %q", a)
		default:
			defined[strings.Clone(a)] = true
		}
	}
	if first {
		b.actions[strings.Clone(r.ID)] = defined
	}
	b.resources = append(b.resources, cloneResource(r))
}

func (b *builder) role(i int, r *Role) {
	p := rolesPath.at(i)
	first := define(&b.ps, &p, b.roleFirst, "roles", "role", i, r.ID)
	typ := r.Type
	tp := p.field("type")
	switch typ {
	case RoleUser, RoleM2M, RoleOrganization:
	case "":
		b.ps.add(&tp, "is required: one of user, m2m, organization")
	default:
		b.ps.add(&tp, "must be one of user, m2m, organization, got %q", typ)
		typ = ""
	}
	if first {
		b.roleDefs[strings.Clone(r.ID)] = roleDef{typ: RoleType(strings.Clone(string(typ)))}
	}
	dp := p.field("description")
	checkText(&b.ps, &dp, r.Description, maxTextLen)
	pp := p.field("permissions")
	for j, g := range r.Permissions {
		gp := pp.at(j)
		b.checkGrant(&gp, g)
	}
	b.roles = append(b.roles, cloneRole(r))
}

func (b *builder) organization(_ int, o *Organization) { b.orgs = append(b.orgs, cloneOrganization(o)) }

// end checks what needs a whole list, and compiles it when the policy is
// valid so far.
func (b *builder) end(phase int) {
	switch phase {
	case phaseResources:
		if b.compiling() {
			b.s.compileResources(b.resources)
		}
	case phaseRoles:
		if b.compiling() {
			for i, id := range b.s.compileRoles(b.roles) {
				d := b.roleDefs[id]
				d.index = int32(i)
				b.roleDefs[id] = d
			}
		}
		b.resources, b.roles = nil, nil
	case phaseOrganizations:
		b.checkOrganizations()
		if b.compiling() {
			b.s.compileOrganizations(b.orgs, b.roleIndex, &b.intern)
		}
		b.orgs = nil
	}
}

// checkOrganizations checks the organizations. All are defined before their
// rules are checked, and roles before organizations, so references may
// point forward or back.
func (b *builder) checkOrganizations() {
	for i, o := range b.orgs {
		p := organizationsPath.at(i)
		define(&b.ps, &p, b.orgDefs, "organizations", "organization", i, o.ID)
	}
	for i, o := range b.orgs {
		p := organizationsPath.at(i)
		np, dp := p.field("name"), p.field("description")
		checkText(&b.ps, &np, o.Name, maxTextLen)
		checkText(&b.ps, &dp, o.Description, maxTextLen)
		rp := p.field("default_roles")
		for j, id := range o.DefaultRoles {
			ep := rp.at(j)
			b.checkOrgRole(&ep, id)
		}
		ip := p.field("implicit_roles")
		for j, rule := range o.ImplicitRoles {
			ep := ip.at(j)
			b.checkImplicitRule(&ep, rule)
		}
	}
}

func (b *builder) subject(i int, sd *subjectDoc) {
	p := subjectsPath.at(i)
	ip := p.field("id")
	r := &b.rec
	var lk *lookups
	if b.compiling() {
		lk = b.resolve(sd)
	} else {
		r.groups, r.global, r.members = r.groups[:0], r.global[:0], r.members[:0]
		r.emailDomain, r.ssoConnection = noAttr, noAttr
	}
	off, ok := appendRecord(b.s, sd.ID, r)
	if !ok {
		b.ps.add(&ip, "the subject's record is larger than 16 MiB, or the subjects outgrow what one snapshot holds (4 GiB)")
		return
	}
	if checkID(&b.ps, &ip, sd.ID) {
		if first := b.s.subjectIdx.add(b.s, off); first >= 0 {
			b.ps.add(&ip, "duplicate subject id %q (first defined at subjects[%d])", sd.ID, b.s.subjectIndexOf(uint32(first)))
		}
	}
	b.checkSubject(&p, sd, lk)
}

// lookups are what resolve found for a subject's references, in their
// order, for checkSubject: each role and organization is looked up once,
// though both compiling and checking need it.
type lookups struct {
	global  []roleLookup   // the subject's roles
	orgs    []bool         // whether each membership's organization is defined
	members [][]roleLookup // each membership's roles
}

type roleLookup struct {
	def     roleDef
	defined bool
}

// resolve turns the subject's ids into the snapshot's indexes, in b.rec,
// and returns what it looked up.
func (b *builder) resolve(sd *subjectDoc) *lookups {
	r, lk := &b.rec, &b.lookups
	r.emailDomain = b.intern.index(emailDomain(sd.Email))
	r.ssoConnection = b.intern.index(sd.SSOConnection)
	r.groups = r.groups[:0]
	for _, g := range sd.SSOGroups {
		r.groups = append(r.groups, b.intern.index(g))
	}
	lk.global, r.global = b.lookupRoles(lk.global[:0], r.global[:0], sd.Roles)
	lk.orgs = lk.orgs[:0]
	lk.members = slices.Grow(lk.members[:0], len(sd.members))[:len(sd.members)]
	r.members = slices.Grow(r.members[:0], len(sd.members))[:len(sd.members)]
	n := 0
	for k, m := range sd.members {
		oi, known := b.s.orgIdx[m.org]
		lk.orgs = append(lk.orgs, known)
		mr := &r.members[n]
		lk.members[k], mr.roles = b.lookupRoles(lk.members[k][:0], mr.roles[:0], m.roles)
		if known {
			mr.org = oi
			n++
		}
	}
	r.members = r.members[:n]
	return lk
}

// lookupRoles appends what it finds of the roles named to found, and their
// indexes to set, sorted and distinct; names of no role are left out of set.
func (b *builder) lookupRoles(found []roleLookup, set []int32, ids []string) ([]roleLookup, []int32) {
	for _, id := range ids {
		d, ok := b.roleDefs[id]
		found = append(found, roleLookup{d, ok})
		if ok {
			set = append(set, d.index)
		}
	}
	return found, roleSetOf(set)
}

func (b *builder) roleIndex(id string) (int32, bool) {
	d, ok := b.roleDefs[id]
	return d.index, ok
}

// finish returns the Snapshot, or every problem found: structural ones
// first (from the document's reader, when there is one), then those found
// by validation, less any at a path a structural problem names already.
func (b *builder) finish(structural *problems) (*Snapshot, error) {
	all := b.revisionProblem
	all.extend(&b.ps)
	if structural != nil && !structural.empty() {
		seen := make(map[string]bool, len(structural.list))
		for _, p := range structural.list {
			seen[p.Path] = true
		}
		merged := *structural
		for _, p := range all.list {
			if !seen[p.Path] {
				merged.append(p)
			}
		}
		merged.omitted += all.omitted
		all = merged
	}
	if !all.empty() {
		return nil, all.err()
	}
	s := b.s
	s.counts = Counts{Resources: len(s.resources), Roles: len(s.roles), Organizations: len(s.orgs), Subjects: len(s.subjects)}
	s.attrs = b.intern.values
	s.trimArena()
	return s, nil
}

func cloneStrings(l []string) []string {
	if l == nil {
		return nil
	}
	out := make([]string, len(l))
	for i, v := range l {
		out[i] = strings.Clone(v)
	}
	return out
}
