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
// It cannot see duplicate keys, which encoding/json resolves by keeping the
// last, and it matches field names without regard to case ("Revision" is
// revision), so a separate pass over the bytes looks for both. Any document
// the typed decoder refuses, that repeats a key, or whose field names are
// not spelt exactly is decoded again strictly, so problems are still
// reported by path.
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
	if dup, stray := scanKeys(data); dup || stray {
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

// scanKeys reads data, valid JSON, in one pass, allocating only for escaped
// keys and for objects of many keys. dup reports an object repeating a key,
// compared as decoded. stray reports a field name that the typed decoder
// would take for another (any byte outside a-z, 0-9 and _: encoding/json
// folds case); keys of a memberships object are organization ids, not field
// names, and may be spelt any way.
func scanKeys(data []byte) (dup, stray bool) {
	var stack []keySet // one per open object or array
	for i := 0; i < len(data); {
		switch c := data[i]; c {
		case '{', '[':
			// A closed object's key slice is reused: a million subjects are
			// millions of objects.
			var keys [][]byte
			n := len(stack)
			if n < cap(stack) {
				keys = stack[:n+1][n].keys[:0]
			}
			ids := c == '{' && n > 0 && stack[n-1].object && string(stack[n-1].last) == "memberships"
			stack = append(stack, keySet{object: c == '{', wantKey: c == '{', ids: ids, keys: keys})
			i++
		case '}', ']':
			stack = stack[:len(stack)-1]
			i++
		case ',':
			if top := &stack[len(stack)-1]; top.object {
				top.wantKey = true
			}
			i++
		case '"':
			end, escaped := stringEnd(data, i)
			if n := len(stack); n > 0 && stack[n-1].wantKey {
				top := &stack[n-1]
				top.wantKey = false
				key := data[i+1 : end-1]
				if escaped {
					var u string
					if json.Unmarshal(data[i:end], &u) != nil {
						return true, true // not valid JSON after all: decode strictly
					}
					key = []byte(u)
				}
				if top.repeats(key) {
					dup = true
				}
				if !top.ids && !fieldName(key) {
					stray = true
				}
				top.last = key
			}
			i = end
		default:
			i++
		}
	}
	return dup, stray
}

// fieldName reports whether key is spelt as the document's field names are.
func fieldName(key []byte) bool {
	for _, c := range key {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// keySet holds the keys of one object seen so far.
type keySet struct {
	object  bool   // an object, not an array
	wantKey bool   // the next string is a key
	ids     bool   // a memberships object: its keys are ids, not field names
	last    []byte // the last key read
	keys    [][]byte
	set     map[string]struct{} // from manyKeys keys on
}

// manyKeys is the object size from which keys go into a map.
const manyKeys = 16

// repeats adds key and reports whether the object had it already.
func (k *keySet) repeats(key []byte) bool {
	if k.set == nil && len(k.keys) < manyKeys {
		for _, have := range k.keys {
			if bytes.Equal(have, key) {
				return true
			}
		}
		k.keys = append(k.keys, key)
		return false
	}
	if k.set == nil {
		k.set = make(map[string]struct{}, 2*manyKeys)
		for _, have := range k.keys {
			k.set[string(have)] = struct{}{}
		}
	}
	if _, ok := k.set[string(key)]; ok {
		return true
	}
	k.set[string(key)] = struct{}{}
	return false
}

// stringEnd returns the index after the string starting at data[i] (a
// quote), and whether it must be decoded to be compared: it holds an escape,
// or bytes beyond ASCII (invalid UTF-8 decodes to U+FFFD, so two different
// byte strings can be one key).
func stringEnd(data []byte, i int) (int, bool) {
	escaped := false
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '\\':
			escaped = true
			j++
		case c == '"':
			return j + 1, escaped
		case c >= 0x80:
			escaped = true
		}
	}
	return len(data), escaped
}
