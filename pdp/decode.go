package pdp

import "strings"

// Decode turns a document tree into a Policy. The tree is what a JSON or YAML
// decoder produces: map[string]any for mappings, []any for lists, and string,
// json.Number, bool or nil for scalars. It is ReadPolicy of TreeSource(tree).
func Decode(tree any) (*Policy, error) {
	return ReadPolicy(TreeSource(tree))
}

// ReadPolicy reads a policy document into a Policy. Unknown fields and
// values of the wrong kind are problems; null is the same as an absent
// field. It reports every problem at once. When the document has structural
// problems the partially read policy is validated too, so that one run
// lists as much as possible; a clean document is returned unvalidated, since
// Compile validates. Build reads a document straight into a Snapshot
// instead, by the same schema.
func ReadPolicy(src Source) (*Policy, error) {
	c := &collector{p: &Policy{}}
	d := &docReader{src: src, sink: c}
	d.read()
	if d.err != nil {
		return nil, d.err
	}
	if d.ps.empty() {
		return c.p, nil
	}
	b := newBuilder()
	feed(b, c.p)
	_, err := b.finish(&d.ps)
	return nil, err
}

// collector is the sink that keeps a document's entities as a Policy.
type collector struct{ p *Policy }

func (c *collector) revision(rev string) { c.p.Revision = strings.Clone(rev) }

func (c *collector) resource(_ int, r *Resource) {
	c.p.Resources = append(c.p.Resources, cloneResource(r))
}
func (c *collector) role(_ int, r *Role) { c.p.Roles = append(c.p.Roles, cloneRole(r)) }
func (c *collector) organization(_ int, o *Organization) {
	c.p.Organizations = append(c.p.Organizations, cloneOrganization(o))
}

// cloneResource, cloneRole and cloneOrganization copy an entity a sink keeps,
// strings included: a Source's may share memory with the document.
func cloneResource(r *Resource) Resource {
	return Resource{ID: strings.Clone(r.ID), Description: strings.Clone(r.Description), Actions: cloneStrings(r.Actions)}
}

func cloneRole(r *Role) Role {
	role := Role{ID: strings.Clone(r.ID), Type: RoleType(strings.Clone(string(r.Type))), Description: strings.Clone(r.Description)}
	for _, g := range r.Permissions {
		role.Permissions = append(role.Permissions, Grant{Resource: strings.Clone(g.Resource), Actions: cloneStrings(g.Actions)})
	}
	return role
}

func cloneOrganization(o *Organization) Organization {
	org := Organization{
		ID:           strings.Clone(o.ID),
		Name:         strings.Clone(o.Name),
		Description:  strings.Clone(o.Description),
		DefaultRoles: cloneStrings(o.DefaultRoles),
	}
	for _, r := range o.ImplicitRoles {
		org.ImplicitRoles = append(org.ImplicitRoles, ImplicitRule{
			EmailDomain:   strings.Clone(r.EmailDomain),
			SSOConnection: strings.Clone(r.SSOConnection),
			SSOGroup:      strings.Clone(r.SSOGroup),
			Roles:         cloneStrings(r.Roles),
		})
	}
	return org
}

func (c *collector) subject(_ int, s *subjectDoc) {
	sub := Subject{
		ID:            strings.Clone(s.ID),
		Type:          SubjectType(strings.Clone(string(s.Type))),
		Email:         strings.Clone(s.Email),
		SSOConnection: strings.Clone(s.SSOConnection),
		SSOGroups:     cloneStrings(s.SSOGroups),
		Roles:         cloneStrings(s.Roles),
	}
	if len(s.members) > 0 {
		sub.Memberships = make(map[string][]string, len(s.members))
		for _, m := range s.members {
			roles := cloneStrings(m.roles)
			if roles == nil {
				roles = []string{}
			}
			sub.Memberships[strings.Clone(m.org)] = roles
		}
	}
	c.p.Subjects = append(c.p.Subjects, sub)
}

func (c *collector) end(int) {}
