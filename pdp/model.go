package pdp

// Policy is the canonical policy document: the whole RBAC state that one
// snapshot answers from. It is plain data; Compile validates it and builds the
// lookup index that Decide reads.
type Policy struct {
	// Revision is an opaque version set by the upstream and shown in every
	// decision. Loaders fill it with a content hash when the document has none.
	Revision      string
	Resources     []Resource
	Roles         []Role
	Organizations []Organization
	Subjects      []Subject
}

// Resource is something actions are performed on: a Logto API resource (its
// indicator, such as "https://api.store.io/orders") or a Stytch resource_id
// (such as "document").
type Resource struct {
	ID          string
	Description string
	// Actions are the permissions (OAuth scopes) the resource defines, such as
	// "read:order". "*" is reserved: in a role it means every action.
	Actions []string
}

// RoleType says where a role may be held.
type RoleType string

const (
	// RoleUser roles are held globally by users.
	RoleUser RoleType = "user"
	// RoleM2M roles are held globally by machine-to-machine applications.
	RoleM2M RoleType = "m2m"
	// RoleOrganization roles form the organization template: they are held
	// inside an organization, by members, as defaults or implicitly.
	RoleOrganization RoleType = "organization"
)

// Role groups permissions across resources.
type Role struct {
	ID          string
	Type        RoleType
	Description string
	Permissions []Grant
}

// Grant gives a role some actions on one resource; "*" means all of them.
type Grant struct {
	Resource string
	Actions  []string
}

// Organization is a tenant. All organizations share the organization roles;
// each decides who holds which.
type Organization struct {
	ID          string
	Name        string
	Description string
	// DefaultRoles are held by every member of the organization.
	DefaultRoles []string
	// ImplicitRoles are held by subjects whose attributes match a rule, even
	// without an explicit membership.
	ImplicitRoles []ImplicitRule
}

// ImplicitRule assigns roles by subject attributes. Every condition that is
// set must match; at least one must be set.
type ImplicitRule struct {
	// EmailDomain matches the part of the subject's email after the last "@",
	// case-insensitively and exactly (no subdomains).
	EmailDomain string
	// SSOConnection matches the subject's SSO connection id.
	SSOConnection string
	// SSOGroup matches one of the subject's SSO groups.
	SSOGroup string
	Roles    []string
}

// SubjectType says what kind of principal a subject is.
type SubjectType string

const (
	// SubjectUser is a person.
	SubjectUser SubjectType = "user"
	// SubjectM2M is a machine-to-machine application.
	SubjectM2M SubjectType = "m2m"
)

// Subject is a user or an m2m application with its role assignments.
type Subject struct {
	ID   string
	Type SubjectType
	// Attributes matched by organizations' implicit rules.
	Email         string
	SSOConnection string
	SSOGroups     []string
	// Roles are the subject's global roles: of type user for users and m2m for
	// applications. They do not apply inside organizations.
	Roles []string
	// Memberships maps an organization id to the organization roles the
	// subject holds there. An empty list is a membership with default roles
	// only.
	Memberships map[string][]string
}

// MaxIDLen is the longest id, in bytes, that a policy or a query may use.
const MaxIDLen = 1024
