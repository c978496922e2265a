/*
Package pdp is rolecall's policy decision point: the RBAC policy model, its
validation, its compilation into an immutable lookup index, and Decide. It
depends on the standard library alone; everything else in rolecall is an
adapter around it.

# Policy model

A [Resource] (a Logto API resource such as "https://api.store.io/orders", or a
Stytch resource such as "document") defines actions ("read:order",
"download"). A permission is always a (resource, action) pair. A [Role] groups
permissions across resources; "*" grants every action of a resource. Roles
have a type:

  - user: held globally by users;
  - m2m: held globally by machine-to-machine applications;
  - organization: the organization template, held inside an organization.

An [Organization] may give default roles to every member and implicit roles to
subjects matched by email domain, SSO connection or SSO group. A [Subject] is
a user or an m2m application with global roles and memberships (organization →
organization roles).

# Decision rules

[Snapshot.Decide] answers a [Query] in this order:

 1. Unknown resource: UnknownResource. Action not defined on the resource:
    UnknownAction. Unknown subject: UnknownSubject.
 2. Without an organization, the effective roles are the subject's global
    roles.
 3. With an organization: unknown organization: UnknownOrganization. The
    subject is admitted if it is a member or matched by an implicit rule;
    otherwise NotAMember. The effective roles are the membership's roles, the
    matched implicit rules' roles and the organization's default roles. Global
    roles do not apply inside an organization.
 4. Allowed (Granted) if an effective role grants the action or "*" on the
    resource; the first such role in sorted order is named. Otherwise
    NoPermission.

A deny is an answer, not an error. [Engine.Decide] also rejects malformed
queries ([QueryError]) and fails closed with [ErrNoPolicy] before the first
policy is loaded.

# Validation

[Compile] rejects a policy with any problem and reports all of them at once in
a [ValidationError], each located by its path in the document, such as
"roles[3].permissions[0].actions[2]". [Decode] turns a parsed YAML or JSON
document into a [Policy], reporting unknown fields and values of the wrong kind
the same way.

# Concurrency and cost

A [Snapshot] is never modified after Compile returns. The [Engine] holds the
current one behind an atomic pointer: readers never lock, and a new policy is
compiled off to the side and swapped in whole, so each decision sees exactly
one policy. Ids map to dense indexes and each role holds a bitset over all
permissions, so Decide is a few map lookups and bit tests, and allocates
nothing.
*/
package pdp
