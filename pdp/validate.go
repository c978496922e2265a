package pdp

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The checks of each entity, which the builder runs as the entities arrive.

// define checks the id of entry i of list and records the entry as the id's
// definition. It reports whether the entry is the id's first definition.
func define(ps *problems, p *path, seen map[string]int, list, kind string, i int, id string) bool {
	ip := p.field("id")
	if !checkID(ps, &ip, id) {
		return false
	}
	if j, dup := seen[id]; dup {
		ps.add(&ip, "duplicate %s id %q (first defined at %s[%d])", kind, id, list, j)
		return false
	}
	seen[strings.Clone(id)] = i
	return true
}

func (b *builder) checkGrant(p *path, g Grant) {
	actions, known := b.actions[g.Resource]
	rp := p.field("resource")
	if checkID(&b.ps, &rp, g.Resource) && !known {
		b.ps.add(&rp, "resource %q is not defined", g.Resource)
	}
	ap := p.field("actions")
	if len(g.Actions) == 0 {
		b.ps.add(&ap, `must list at least one action (or "*")`)
	}
	for k, a := range g.Actions {
		ep := ap.at(k)
		if checkID(&b.ps, &ep, a) && known && a != "*" && !actions[a] {
			b.ps.add(&ep, "action %q is not defined on resource %q", a, g.Resource)
		}
	}
}

// roleRef checks a reference to role id, which lk is the lookup of, and
// returns the role's type, or "" when the role is unknown or has an invalid
// type (already reported).
func (b *builder) roleRef(p *path, id string, lk roleLookup) RoleType {
	// A defined role's id was checked where it is defined: most references
	// are to one, and a million subjects make millions of them.
	if lk.defined {
		return lk.def.typ
	}
	if checkID(&b.ps, p, id) {
		b.ps.add(p, "role %q is not defined", id)
	}
	return ""
}

// checkOrgRole checks a role held inside an organization.
func (b *builder) checkOrgRole(p *path, id string) {
	d, ok := b.roleDefs[id]
	b.checkOrgRoleOf(p, id, roleLookup{d, ok})
}

// checkOrgRoleOf is checkOrgRole with the role looked up already.
func (b *builder) checkOrgRoleOf(p *path, id string, lk roleLookup) {
	if typ := b.roleRef(p, id, lk); typ != "" && typ != RoleOrganization {
		b.ps.add(p, "role %q is %s role; only organization roles can be held inside an organization", id, withArticle(typ))
	}
}

func (b *builder) checkImplicitRule(p *path, r ImplicitRule) {
	if r.EmailDomain == "" && r.SSOConnection == "" && r.SSOGroup == "" {
		b.ps.add(p, "needs at least one of email_domain, sso_connection, sso_group")
	}
	ep, cp, gp := p.field("email_domain"), p.field("sso_connection"), p.field("sso_group")
	if r.EmailDomain != "" && checkID(&b.ps, &ep, r.EmailDomain) && strings.Contains(r.EmailDomain, "@") {
		b.ps.add(&ep, "must be a domain such as example.com, without \"@\"; got %q", r.EmailDomain)
	}
	if r.SSOConnection != "" {
		checkID(&b.ps, &cp, r.SSOConnection)
	}
	if r.SSOGroup != "" {
		checkID(&b.ps, &gp, r.SSOGroup)
	}
	rp := p.field("roles")
	if len(r.Roles) == 0 {
		b.ps.add(&rp, "must list at least one role")
	}
	for k, id := range r.Roles {
		kp := rp.at(k)
		b.checkOrgRole(&kp, id)
	}
}

// checkSubject checks a subject, taking its references from lk when the
// builder looked them up to compile them (nil: it looks them up).
func (b *builder) checkSubject(p *path, s *subjectDoc, lk *lookups) {
	role := func(l []roleLookup, k int, id string) roleLookup {
		if lk != nil {
			return l[k]
		}
		d, ok := b.roleDefs[id]
		return roleLookup{d, ok}
	}
	typ := s.Type
	switch typ {
	case "", SubjectUser:
		typ = SubjectUser
	case SubjectM2M:
	default:
		tp := p.field("type")
		b.ps.add(&tp, "must be user or m2m, got %q", typ)
		typ = ""
	}
	ep := p.field("email")
	checkText(&b.ps, &ep, s.Email, MaxIDLen)
	if s.SSOConnection != "" {
		cp := p.field("sso_connection")
		checkID(&b.ps, &cp, s.SSOConnection)
	}
	gp := p.field("sso_groups")
	for k, g := range s.SSOGroups {
		kp := gp.at(k)
		checkID(&b.ps, &kp, g)
	}
	rp := p.field("roles")
	var global []roleLookup
	if lk != nil {
		global = lk.global
	}
	for k, id := range s.Roles {
		kp := rp.at(k)
		switch rt := b.roleRef(&kp, id, role(global, k, id)); {
		case rt == RoleOrganization:
			b.ps.add(&kp, "role %q is an organization role; it can only be held inside an organization (memberships, default_roles, implicit_roles)", id)
		case rt == RoleUser && typ == SubjectM2M:
			b.ps.add(&kp, "role %q is a user role and cannot be given to m2m application %q", id, s.ID)
		case rt == RoleM2M && typ == SubjectUser:
			b.ps.add(&kp, "role %q is an m2m role and cannot be given to user %q", id, s.ID)
		}
	}
	mp := p.field("memberships")
	for mi, m := range s.members {
		op := mp.field(m.org)
		var (
			known bool
			roles []roleLookup
		)
		if lk != nil {
			known, roles = lk.orgs[mi], lk.members[mi]
		} else {
			_, known = b.orgDefs[m.org]
		}
		if !known && checkID(&b.ps, &op, m.org) {
			b.ps.add(&op, "organization %q is not defined", m.org)
		}
		for k, id := range m.roles {
			kp := op.at(k)
			b.checkOrgRoleOf(&kp, id, role(roles, k, id))
		}
	}
}

// checkID reports what is wrong with an id and says whether it is usable.
func checkID(ps *problems, p *path, id string) bool {
	if msg := idProblem(id); msg != "" {
		ps.add(p, "%s", msg)
		return false
	}
	return true
}

func idProblem(id string) string {
	switch {
	case id == "":
		return "must not be empty"
	case !utf8.ValidString(id):
		return "is not valid UTF-8"
	case len(id) > MaxIDLen:
		return fmt.Sprintf("is %d bytes long; the limit is %d", len(id), MaxIDLen)
	case strings.TrimSpace(id) != id:
		return fmt.Sprintf("%q has leading or trailing white space", id)
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return fmt.Sprintf("%q contains a control character", id)
	}
	return ""
}

// maxTextLen bounds free text such as descriptions.
const maxTextLen = 16 << 10

// checkText checks optional free text: valid UTF-8 and at most limit bytes.
func checkText(ps *problems, p *path, s string, limit int) {
	switch {
	case !utf8.ValidString(s):
		ps.add(p, "is not valid UTF-8")
	case len(s) > limit:
		ps.add(p, "is %d bytes long; the limit is %d", len(s), limit)
	}
}

// withArticle reads "a user", "an m2m".
func withArticle(t RoleType) string {
	if t == RoleM2M || t == RoleOrganization {
		return "an " + string(t)
	}
	return "a " + string(t)
}
