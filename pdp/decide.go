package pdp

import (
	"fmt"
	"slices"
	"unicode/utf8"
)

// Reason explains a decision. The values match rolecall.v1.Reason.
type Reason uint8

const (
	ReasonUnspecified Reason = iota
	// Granted: an effective role grants the action on the resource.
	Granted
	// NoPermission: the subject is known, but no effective role grants it.
	NoPermission
	// NotAMember: the subject is neither a member of the organization nor
	// matched by one of its implicit rules.
	NotAMember
	// UnknownSubject: the policy has no such subject.
	UnknownSubject
	// UnknownResource: the policy has no such resource.
	UnknownResource
	// UnknownAction: the resource does not define the action.
	UnknownAction
	// UnknownOrganization: the policy has no such organization.
	UnknownOrganization
)

var reasonNames = [...]string{
	ReasonUnspecified:   "UNSPECIFIED",
	Granted:             "GRANTED",
	NoPermission:        "NO_PERMISSION",
	NotAMember:          "NOT_A_MEMBER",
	UnknownSubject:      "UNKNOWN_SUBJECT",
	UnknownResource:     "UNKNOWN_RESOURCE",
	UnknownAction:       "UNKNOWN_ACTION",
	UnknownOrganization: "UNKNOWN_ORGANIZATION",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// ParseReason returns the Reason named s (as printed by String).
func ParseReason(s string) (Reason, bool) {
	for r, name := range reasonNames {
		if name == s {
			return Reason(r), true
		}
	}
	return ReasonUnspecified, false
}

// Query asks whether Subject may perform Action on Resource, inside Org when
// Org is not empty.
type Query struct {
	Subject  string
	Org      string
	Resource string
	Action   string
}

// Validate reports the first malformed field: Subject, Resource and Action
// are required, and every field is at most MaxIDLen bytes of valid UTF-8.
func (q Query) Validate() error {
	if err := checkQueryField("subject", q.Subject, true); err != nil {
		return err
	}
	if err := checkQueryField("org", q.Org, false); err != nil {
		return err
	}
	if err := checkQueryField("resource", q.Resource, true); err != nil {
		return err
	}
	return checkQueryField("action", q.Action, true)
}

func checkQueryField(name, v string, required bool) error {
	switch {
	case v == "" && required:
		return &QueryError{Field: name, Reason: "must not be empty"}
	case len(v) > MaxIDLen:
		return &QueryError{Field: name, Reason: fmt.Sprintf("is %d bytes long; the limit is %d", len(v), MaxIDLen)}
	case !utf8.ValidString(v):
		return &QueryError{Field: name, Reason: "is not valid UTF-8"}
	}
	return nil
}

// Decision is the answer to a Query. Its strings point into the snapshot, so
// making one allocates nothing.
type Decision struct {
	Allowed bool
	Reason  Reason
	// MatchedRole is the granting role, the first in sorted order when
	// several grant; empty on a deny.
	MatchedRole string
	// Revision is the revision of the policy that decided.
	Revision string
}

// Decide answers q from the snapshot, following the decision rules in the
// package documentation. It assumes q is valid (see Query.Validate); an
// invalid query is merely unknown here. It takes no lock and allocates nothing.
func (s *Snapshot) Decide(q Query) Decision {
	d := Decision{Revision: s.revision}
	ri, ok := s.resourceIdx[q.Resource]
	if !ok {
		d.Reason = UnknownResource
		return d
	}
	res := &s.resources[ri]
	off, ok := res.actions[q.Action]
	if !ok {
		d.Reason = UnknownAction
		return d
	}
	perm := res.base + off
	rec, ok := s.findSubject(q.Subject)
	if !ok {
		d.Reason = UnknownSubject
		return d
	}
	sub := s.subjectAt(rec)

	best := int32(noRole)
	if q.Org == "" {
		best = s.firstGranting(s.globalRoles(sub), perm, best)
	} else {
		oi, ok := s.orgIdx[q.Org]
		if !ok {
			d.Reason = UnknownOrganization
			return d
		}
		var admitted bool
		if best, admitted = s.bestIn(sub, oi, perm); !admitted {
			d.Reason = NotAMember
			return d
		}
	}
	if best == noRole {
		d.Reason = NoPermission
		return d
	}
	d.Allowed = true
	d.Reason = Granted
	d.MatchedRole = s.roles[best]
	return d
}

// firstGranting returns the lowest role index in roles (sorted, encoded as
// the arena's) that grants perm, or best if none below best does.
func (s *Snapshot) firstGranting(roles []byte, perm, best int32) int32 {
	for i := range len(roles) / 4 {
		r := role(roles, i)
		if r >= best {
			break
		}
		if hasBit(s.roleBits(r), perm) {
			return r
		}
	}
	return best
}

// matches reports whether the subject meets every condition of the rule.
func (s *Snapshot) matches(r *implicitRule, sub subject) bool {
	if r.emailDomain != noAttr && r.emailDomain != s.emailDomainOf(sub) {
		return false
	}
	if r.ssoConnection != noAttr && r.ssoConnection != s.ssoConnectionOf(sub) {
		return false
	}
	if r.ssoGroup != noAttr {
		groups := s.groupsOf(sub)
		for i := range len(groups) / 4 {
			if role(groups, i) == r.ssoGroup {
				return true
			}
		}
		return false
	}
	return true
}

// Permissions is what a subject may do: the answer to ListPermissions.
type Permissions struct {
	// Permissions sorted by resource, then action.
	Permissions []Permission
	// Roles are the effective roles, sorted.
	Roles []string
	// Reason says why Permissions is empty: UnknownSubject,
	// UnknownOrganization, NotAMember, UnknownResource (the filter) or
	// NoPermission. It is Granted when Permissions is not empty.
	Reason   Reason
	Revision string
}

// ListPermissions lists every permission the subject holds, inside org when
// org is not empty, optionally only those on resource. It follows the same
// rules as Decide.
func (s *Snapshot) ListPermissions(subjectID, org, resourceID string) Permissions {
	out := Permissions{Revision: s.revision}
	lo, hi := int32(0), int32(len(s.perms))
	if resourceID != "" {
		ri, ok := s.resourceIdx[resourceID]
		if !ok {
			out.Reason = UnknownResource
			return out
		}
		res := &s.resources[ri]
		lo, hi = res.base, res.base+int32(len(res.actions))
	}
	off, ok := s.findSubject(subjectID)
	if !ok {
		out.Reason = UnknownSubject
		return out
	}
	sub := s.subjectAt(off)

	oi := int32(noOrg)
	if org != "" {
		var ok bool
		if oi, ok = s.orgIdx[org]; !ok {
			out.Reason = UnknownOrganization
			return out
		}
	}
	roles, admitted := s.effectiveRoles(nil, sub, oi)
	if !admitted {
		out.Reason = NotAMember
		return out
	}

	union := make([]uint64, s.words)
	for _, r := range roles {
		out.Roles = append(out.Roles, s.roles[r])
		for w, b := range s.roleBits(r) {
			union[w] |= b
		}
	}
	for p := lo; p < hi; p++ {
		if hasBit(union, p) {
			out.Permissions = append(out.Permissions, s.perms[p])
		}
	}
	out.Reason = NoPermission
	if len(out.Permissions) > 0 {
		out.Reason = Granted
	}
	return out
}

// DecideRoles answers whether any of roles grants action on resource, for a
// subject the policy need not know: the roles come from elsewhere, such as a
// Stytch session token, and are evaluated against the policy's role
// definitions. Roles the policy does not define are ignored. The first
// granting role in sorted order is named. Like Decide, it takes no lock and
// allocates nothing.
func (s *Snapshot) DecideRoles(roles []string, resource, action string) Decision {
	d := Decision{Revision: s.revision}
	ri, ok := s.resourceIdx[resource]
	if !ok {
		d.Reason = UnknownResource
		return d
	}
	res := &s.resources[ri]
	off, ok := res.actions[action]
	if !ok {
		d.Reason = UnknownAction
		return d
	}
	perm := res.base + off
	best := int32(noRole)
	for _, id := range roles {
		r, found := slices.BinarySearch(s.roles, id)
		if found && int32(r) < best && hasBit(s.roleBits(int32(r)), perm) {
			best = int32(r)
		}
	}
	if best == noRole {
		d.Reason = NoPermission
		return d
	}
	d.Allowed, d.Reason, d.MatchedRole = true, Granted, s.roles[best]
	return d
}
