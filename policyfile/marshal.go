package policyfile

import (
	"encoding/json"

	"github.com/rolecall/rolecall/pdp"
)

// The document shape, for writing. Reading goes through pdp.Decode, which
// reports problems by path; these types only serialize.
type (
	docPolicy struct {
		Revision      string            `json:"revision,omitempty"`
		Resources     []docResource     `json:"resources"`
		Roles         []docRole         `json:"roles"`
		Organizations []docOrganization `json:"organizations,omitempty"`
		Subjects      []docSubject      `json:"subjects,omitempty"`
	}
	docResource struct {
		ID          string   `json:"id"`
		Description string   `json:"description,omitempty"`
		Actions     []string `json:"actions"`
	}
	docRole struct {
		ID          string     `json:"id"`
		Type        string     `json:"type"`
		Description string     `json:"description,omitempty"`
		Permissions []docGrant `json:"permissions,omitempty"`
	}
	docGrant struct {
		Resource string   `json:"resource"`
		Actions  []string `json:"actions"`
	}
	docOrganization struct {
		ID            string            `json:"id"`
		Name          string            `json:"name,omitempty"`
		Description   string            `json:"description,omitempty"`
		DefaultRoles  []string          `json:"default_roles,omitempty"`
		ImplicitRoles []docImplicitRule `json:"implicit_roles,omitempty"`
	}
	docImplicitRule struct {
		EmailDomain   string   `json:"email_domain,omitempty"`
		SSOConnection string   `json:"sso_connection,omitempty"`
		SSOGroup      string   `json:"sso_group,omitempty"`
		Roles         []string `json:"roles"`
	}
	docSubject struct {
		ID            string              `json:"id"`
		Type          string              `json:"type,omitempty"`
		Email         string              `json:"email,omitempty"`
		SSOConnection string              `json:"sso_connection,omitempty"`
		SSOGroups     []string            `json:"sso_groups,omitempty"`
		Roles         []string            `json:"roles,omitempty"`
		Memberships   map[string][]string `json:"memberships,omitempty"`
	}
)

// MarshalJSON writes p as a canonical policy document in JSON, which Parse
// reads back to an equal policy. Upstream adapters (Stytch, Logto) use it to
// turn what they fetch into the one format the cache stores. Map keys are
// written sorted, so equal policies give equal bytes.
func MarshalJSON(p *pdp.Policy) ([]byte, error) {
	d := docPolicy{
		Revision:      p.Revision,
		Resources:     make([]docResource, len(p.Resources)),
		Roles:         make([]docRole, len(p.Roles)),
		Organizations: make([]docOrganization, len(p.Organizations)),
		Subjects:      make([]docSubject, len(p.Subjects)),
	}
	for i, r := range p.Resources {
		d.Resources[i] = docResource{ID: r.ID, Description: r.Description, Actions: nonNil(r.Actions)}
	}
	for i, r := range p.Roles {
		dr := docRole{ID: r.ID, Type: string(r.Type), Description: r.Description}
		for _, g := range r.Permissions {
			dr.Permissions = append(dr.Permissions, docGrant{Resource: g.Resource, Actions: nonNil(g.Actions)})
		}
		d.Roles[i] = dr
	}
	for i, o := range p.Organizations {
		do := docOrganization{ID: o.ID, Name: o.Name, Description: o.Description, DefaultRoles: o.DefaultRoles}
		for _, r := range o.ImplicitRoles {
			do.ImplicitRoles = append(do.ImplicitRoles, docImplicitRule{EmailDomain: r.EmailDomain, SSOConnection: r.SSOConnection, SSOGroup: r.SSOGroup, Roles: nonNil(r.Roles)})
		}
		d.Organizations[i] = do
	}
	for i, s := range p.Subjects {
		ds := docSubject{ID: s.ID, Type: string(s.Type), Email: s.Email, SSOConnection: s.SSOConnection, SSOGroups: s.SSOGroups, Roles: s.Roles}
		if len(s.Memberships) > 0 {
			ds.Memberships = make(map[string][]string, len(s.Memberships))
			for org, roles := range s.Memberships {
				ds.Memberships[org] = nonNil(roles)
			}
		}
		d.Subjects[i] = ds
	}
	return json.Marshal(d)
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}
