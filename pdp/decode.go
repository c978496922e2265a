package pdp

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// Decode turns a document tree into a Policy. The tree is what a JSON or YAML
// decoder produces: map[string]any for mappings, []any for lists, and string,
// json.Number, bool or nil for scalars. Unknown fields and values of the wrong
// kind are problems; null is the same as an absent field.
//
// Decode reports every problem at once. When the tree has structural problems
// the partially decoded policy is validated too, so that one run lists as much
// as possible; a clean tree is returned unvalidated, since Compile validates.
func Decode(tree any) (*Policy, error) {
	var d decoder
	p := d.policy(tree)
	if len(d.problems) == 0 {
		return p, nil
	}
	seen := make(map[string]bool, len(d.problems))
	for _, pr := range d.problems {
		seen[pr.Path] = true
	}
	for _, pr := range p.validate() {
		if !seen[pr.Path] {
			d.problems = append(d.problems, pr)
		}
	}
	return nil, d.problems.err()
}

type decoder struct {
	problems problems
}

func (d *decoder) policy(tree any) *Policy {
	p := &Policy{}
	m, ok := d.mapping("", tree, "revision", "resources", "roles", "organizations", "subjects")
	if !ok {
		return p
	}
	p.Revision = d.str("revision", m["revision"])
	for i, v := range d.list("resources", m["resources"]) {
		p.Resources = append(p.Resources, d.resource(index("resources", i), v))
	}
	for i, v := range d.list("roles", m["roles"]) {
		p.Roles = append(p.Roles, d.role(index("roles", i), v))
	}
	for i, v := range d.list("organizations", m["organizations"]) {
		p.Organizations = append(p.Organizations, d.organization(index("organizations", i), v))
	}
	for i, v := range d.list("subjects", m["subjects"]) {
		p.Subjects = append(p.Subjects, d.subject(index("subjects", i), v))
	}
	return p
}

func (d *decoder) resource(path string, v any) Resource {
	m, _ := d.mapping(path, v, "id", "description", "actions")
	return Resource{
		ID:          d.str(field(path, "id"), m["id"]),
		Description: d.str(field(path, "description"), m["description"]),
		Actions:     d.strs(field(path, "actions"), m["actions"]),
	}
}

func (d *decoder) role(path string, v any) Role {
	m, _ := d.mapping(path, v, "id", "type", "description", "permissions")
	r := Role{
		ID:          d.str(field(path, "id"), m["id"]),
		Type:        RoleType(d.str(field(path, "type"), m["type"])),
		Description: d.str(field(path, "description"), m["description"]),
	}
	perms := field(path, "permissions")
	for i, v := range d.list(perms, m["permissions"]) {
		gp := index(perms, i)
		g, _ := d.mapping(gp, v, "resource", "actions")
		r.Permissions = append(r.Permissions, Grant{
			Resource: d.str(field(gp, "resource"), g["resource"]),
			Actions:  d.strs(field(gp, "actions"), g["actions"]),
		})
	}
	return r
}

func (d *decoder) organization(path string, v any) Organization {
	m, _ := d.mapping(path, v, "id", "name", "description", "default_roles", "implicit_roles")
	o := Organization{
		ID:           d.str(field(path, "id"), m["id"]),
		Name:         d.str(field(path, "name"), m["name"]),
		Description:  d.str(field(path, "description"), m["description"]),
		DefaultRoles: d.strs(field(path, "default_roles"), m["default_roles"]),
	}
	rules := field(path, "implicit_roles")
	for i, v := range d.list(rules, m["implicit_roles"]) {
		rp := index(rules, i)
		r, _ := d.mapping(rp, v, "email_domain", "sso_connection", "sso_group", "roles")
		o.ImplicitRoles = append(o.ImplicitRoles, ImplicitRule{
			EmailDomain:   d.str(field(rp, "email_domain"), r["email_domain"]),
			SSOConnection: d.str(field(rp, "sso_connection"), r["sso_connection"]),
			SSOGroup:      d.str(field(rp, "sso_group"), r["sso_group"]),
			Roles:         d.strs(field(rp, "roles"), r["roles"]),
		})
	}
	return o
}

func (d *decoder) subject(path string, v any) Subject {
	m, _ := d.mapping(path, v, "id", "type", "email", "sso_connection", "sso_groups", "roles", "memberships")
	s := Subject{
		ID:            d.str(field(path, "id"), m["id"]),
		Type:          SubjectType(d.str(field(path, "type"), m["type"])),
		Email:         d.str(field(path, "email"), m["email"]),
		SSOConnection: d.str(field(path, "sso_connection"), m["sso_connection"]),
		SSOGroups:     d.strs(field(path, "sso_groups"), m["sso_groups"]),
		Roles:         d.strs(field(path, "roles"), m["roles"]),
	}
	mp := field(path, "memberships")
	if mm, ok := d.mapping(mp, m["memberships"]); ok && len(mm) > 0 {
		s.Memberships = make(map[string][]string, len(mm))
		for _, org := range sortedKeys(mm) {
			roles := d.strs(field(mp, org), mm[org])
			if roles == nil {
				roles = []string{}
			}
			s.Memberships[org] = roles
		}
	}
	return s
}

// mapping checks that v is a mapping whose keys are all in allowed (any key is
// allowed when none are given). A nil v is an empty mapping.
func (d *decoder) mapping(path string, v any, allowed ...string) (map[string]any, bool) {
	if v == nil {
		return nil, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		d.problems.add(path, "must be a mapping, got %s", kind(v))
		return nil, false
	}
	if len(allowed) > 0 {
		for _, k := range sortedKeys(m) {
			if !slices.Contains(allowed, k) {
				d.problems.add(path, "unknown field %q (allowed: %s)", k, strings.Join(allowed, ", "))
			}
		}
	}
	return m, true
}

func (d *decoder) list(path string, v any) []any {
	if v == nil {
		return nil
	}
	l, ok := v.([]any)
	if !ok {
		d.problems.add(path, "must be a list, got %s", kind(v))
		return nil
	}
	return l
}

// str accepts a string, or a number kept as its literal text so that
// "revision: 42" in YAML reads as "42".
func (d *decoder) str(path string, v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return v.String()
	default:
		d.problems.add(path, "must be a string, got %s", kind(v))
		return ""
	}
}

func (d *decoder) strs(path string, v any) []string {
	l := d.list(path, v)
	if l == nil {
		return nil
	}
	out := make([]string, len(l))
	for i, e := range l {
		out[i] = d.str(index(path, i), e)
	}
	return out
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number, float64, int, int64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	default:
		return "an unsupported value"
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// field and index build problem paths: roles[3].permissions[0].actions.
// Mapping keys that are not plain words are quoted: memberships["org/1"].
func field(path, name string) string {
	if !isWord(name) {
		return path + "[" + strconv.Quote(name) + "]"
	}
	if path == "" {
		return name
	}
	return path + "." + name
}

func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

func isWord(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
