package policyfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"github.com/rolecall/rolecall/pdp"
)

// largeDocument is the size from which a JSON document is decoded with a
// typed decoder. The strict decoder builds a generic tree first, which for a
// document of a hundred megabytes (a million subjects) costs gigabytes of
// garbage and tens of seconds; the typed decoder is several times faster.
// It cannot see duplicate keys, which for such documents go undetected (the
// upstream is trusted configuration: whoever controls it can write any
// policy). Any document the typed decoder refuses is decoded again strictly,
// so problems are still reported by path.
var largeDocument = 4 << 20

// parseLargeJSON decodes a large JSON document without the generic tree. It
// returns ok == false when the document needs the strict decoder.
func parseLargeJSON(data []byte) (*pdp.Policy, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var d docPolicy
	if err := dec.Decode(&d); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, false
	}
	p := &pdp.Policy{
		Revision:      d.Revision,
		Resources:     make([]pdp.Resource, len(d.Resources)),
		Roles:         make([]pdp.Role, len(d.Roles)),
		Organizations: make([]pdp.Organization, len(d.Organizations)),
		Subjects:      make([]pdp.Subject, len(d.Subjects)),
	}
	for i, r := range d.Resources {
		p.Resources[i] = pdp.Resource{ID: r.ID, Description: r.Description, Actions: r.Actions}
	}
	for i, r := range d.Roles {
		role := pdp.Role{ID: r.ID, Type: pdp.RoleType(r.Type), Description: r.Description, Permissions: make([]pdp.Grant, len(r.Permissions))}
		for j, g := range r.Permissions {
			role.Permissions[j] = pdp.Grant{Resource: g.Resource, Actions: g.Actions}
		}
		p.Roles[i] = role
	}
	for i, o := range d.Organizations {
		org := pdp.Organization{ID: o.ID, Name: o.Name, Description: o.Description, DefaultRoles: o.DefaultRoles}
		for _, r := range o.ImplicitRoles {
			org.ImplicitRoles = append(org.ImplicitRoles, pdp.ImplicitRule{EmailDomain: r.EmailDomain, SSOConnection: r.SSOConnection, SSOGroup: r.SSOGroup, Roles: r.Roles})
		}
		p.Organizations[i] = org
	}
	for i, s := range d.Subjects {
		p.Subjects[i] = pdp.Subject{ID: s.ID, Type: pdp.SubjectType(s.Type), Email: s.Email, SSOConnection: s.SSOConnection, SSOGroups: s.SSOGroups, Roles: s.Roles, Memberships: s.Memberships}
	}
	return p, true
}
