package pdp

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Validate reports every problem with p, each located by its path. Compile
// validates too; Validate is for callers that build a Policy in code, such as
// upstream adapters, and want the problems without compiling.
func (p *Policy) Validate() error {
	_, ps := check(p)
	return ps.err()
}

func (p *Policy) validate() problems {
	_, ps := check(p)
	return ps
}

// catalog indexes the ids a policy defines (the first definition of each), as
// found while checking it, so that references can be checked against them.
type catalog struct {
	// id → position of the first definition in its list
	resources, roles, orgs, subjects map[string]int

	actions   map[string]map[string]bool // resource id → its actions
	roleTypes map[string]RoleType        // role id → type ("" when invalid)
}

func check(p *Policy) (*catalog, problems) {
	var ps problems
	c := &catalog{
		resources: make(map[string]int, len(p.Resources)),
		roles:     make(map[string]int, len(p.Roles)),
		orgs:      make(map[string]int, len(p.Organizations)),
		subjects:  make(map[string]int, len(p.Subjects)),
		actions:   make(map[string]map[string]bool, len(p.Resources)),
		roleTypes: make(map[string]RoleType, len(p.Roles)),
	}
	if p.Revision != "" {
		checkText(&ps, "revision", p.Revision, MaxIDLen)
	}

	for i, r := range p.Resources {
		path := index("resources", i)
		first := define(&ps, c.resources, "resources", "resource", i, r.ID)
		checkText(&ps, field(path, "description"), r.Description, maxTextLen)
		defined := make(map[string]bool, len(r.Actions))
		for k, a := range r.Actions {
			ap := index(field(path, "actions"), k)
			switch {
			case !checkID(&ps, ap, a):
			case a == "*":
				ps.add(ap, `"*" is reserved (in a role it means every action) and cannot be defined as an action`)
			case defined[a]:
				ps.add(ap, "duplicate action %q", a)
			default:
				defined[a] = true
			}
		}
		if first {
			c.actions[r.ID] = defined
		}
	}

	for i, r := range p.Roles {
		path := index("roles", i)
		first := define(&ps, c.roles, "roles", "role", i, r.ID)
		typ := r.Type
		switch typ {
		case RoleUser, RoleM2M, RoleOrganization:
		case "":
			ps.add(field(path, "type"), "is required: one of user, m2m, organization")
		default:
			ps.add(field(path, "type"), "must be one of user, m2m, organization, got %q", typ)
			typ = ""
		}
		if first {
			c.roleTypes[r.ID] = typ
		}
		checkText(&ps, field(path, "description"), r.Description, maxTextLen)
		for j, g := range r.Permissions {
			c.checkGrant(&ps, index(field(path, "permissions"), j), g)
		}
	}

	// Organizations are all defined before their rules are checked, and roles
	// before organizations, so references may point forward or back.
	for i, o := range p.Organizations {
		define(&ps, c.orgs, "organizations", "organization", i, o.ID)
	}
	for i, o := range p.Organizations {
		path := index("organizations", i)
		checkText(&ps, field(path, "name"), o.Name, maxTextLen)
		checkText(&ps, field(path, "description"), o.Description, maxTextLen)
		for j, id := range o.DefaultRoles {
			c.checkOrgRole(&ps, index(field(path, "default_roles"), j), id)
		}
		for j, rule := range o.ImplicitRoles {
			c.checkImplicitRule(&ps, index(field(path, "implicit_roles"), j), rule)
		}
	}

	for i, s := range p.Subjects {
		define(&ps, c.subjects, "subjects", "subject", i, s.ID)
		c.checkSubject(&ps, index("subjects", i), s)
	}
	return c, ps
}

// define checks the id of entry i of list and records the entry as the id's
// definition. It reports whether the entry is the id's first definition.
func define(ps *problems, seen map[string]int, list, kind string, i int, id string) bool {
	path := field(index(list, i), "id")
	if !checkID(ps, path, id) {
		return false
	}
	if j, dup := seen[id]; dup {
		ps.add(path, "duplicate %s id %q (first defined at %s[%d])", kind, id, list, j)
		return false
	}
	seen[id] = i
	return true
}

func (c *catalog) checkGrant(ps *problems, path string, g Grant) {
	actions, known := c.actions[g.Resource]
	if checkID(ps, field(path, "resource"), g.Resource) && !known {
		ps.add(field(path, "resource"), "resource %q is not defined", g.Resource)
	}
	if len(g.Actions) == 0 {
		ps.add(field(path, "actions"), `must list at least one action (or "*")`)
	}
	for k, a := range g.Actions {
		ap := index(field(path, "actions"), k)
		if checkID(ps, ap, a) && known && a != "*" && !actions[a] {
			ps.add(ap, "action %q is not defined on resource %q", a, g.Resource)
		}
	}
}

// roleRef checks a reference to a role and returns the role's type, or "" when
// the role is unknown or has an invalid type (already reported).
func (c *catalog) roleRef(ps *problems, path, id string) RoleType {
	if !checkID(ps, path, id) {
		return ""
	}
	typ, ok := c.roleTypes[id]
	if !ok {
		ps.add(path, "role %q is not defined", id)
	}
	return typ
}

// checkOrgRole checks a role held inside an organization.
func (c *catalog) checkOrgRole(ps *problems, path, id string) {
	if typ := c.roleRef(ps, path, id); typ != "" && typ != RoleOrganization {
		ps.add(path, "role %q is %s role; only organization roles can be held inside an organization", id, withArticle(typ))
	}
}

func (c *catalog) checkImplicitRule(ps *problems, path string, r ImplicitRule) {
	if r.EmailDomain == "" && r.SSOConnection == "" && r.SSOGroup == "" {
		ps.add(path, "needs at least one of email_domain, sso_connection, sso_group")
	}
	if r.EmailDomain != "" && checkID(ps, field(path, "email_domain"), r.EmailDomain) && strings.Contains(r.EmailDomain, "@") {
		ps.add(field(path, "email_domain"), "must be a domain such as example.com, without \"@\"; got %q", r.EmailDomain)
	}
	if r.SSOConnection != "" {
		checkID(ps, field(path, "sso_connection"), r.SSOConnection)
	}
	if r.SSOGroup != "" {
		checkID(ps, field(path, "sso_group"), r.SSOGroup)
	}
	if len(r.Roles) == 0 {
		ps.add(field(path, "roles"), "must list at least one role")
	}
	for k, id := range r.Roles {
		c.checkOrgRole(ps, index(field(path, "roles"), k), id)
	}
}

func (c *catalog) checkSubject(ps *problems, path string, s Subject) {
	typ := s.Type
	switch typ {
	case "", SubjectUser:
		typ = SubjectUser
	case SubjectM2M:
	default:
		ps.add(field(path, "type"), "must be user or m2m, got %q", typ)
		typ = ""
	}
	checkText(ps, field(path, "email"), s.Email, MaxIDLen)
	if s.SSOConnection != "" {
		checkID(ps, field(path, "sso_connection"), s.SSOConnection)
	}
	for k, g := range s.SSOGroups {
		checkID(ps, index(field(path, "sso_groups"), k), g)
	}
	for k, id := range s.Roles {
		rp := index(field(path, "roles"), k)
		switch rt := c.roleRef(ps, rp, id); {
		case rt == RoleOrganization:
			ps.add(rp, "role %q is an organization role; it can only be held inside an organization (memberships, default_roles, implicit_roles)", id)
		case rt == RoleUser && typ == SubjectM2M:
			ps.add(rp, "role %q is a user role and cannot be given to m2m application %q", id, s.ID)
		case rt == RoleM2M && typ == SubjectUser:
			ps.add(rp, "role %q is an m2m role and cannot be given to user %q", id, s.ID)
		}
	}
	mp := field(path, "memberships")
	for _, org := range sortedKeys(s.Memberships) {
		op := field(mp, org)
		if _, known := c.orgs[org]; checkID(ps, op, org) && !known {
			ps.add(op, "organization %q is not defined", org)
		}
		for k, id := range s.Memberships[org] {
			c.checkOrgRole(ps, index(op, k), id)
		}
	}
}

// checkID reports what is wrong with an id and says whether it is usable.
func checkID(ps *problems, path, id string) bool {
	if msg := idProblem(id); msg != "" {
		ps.add(path, "%s", msg)
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
func checkText(ps *problems, path, s string, limit int) {
	switch {
	case !utf8.ValidString(s):
		ps.add(path, "is not valid UTF-8")
	case len(s) > limit:
		ps.add(path, "is %d bytes long; the limit is %d", len(s), limit)
	}
}

// withArticle reads "a user", "an m2m".
func withArticle(t RoleType) string {
	if t == RoleM2M || t == RoleOrganization {
		return "an " + string(t)
	}
	return "a " + string(t)
}
