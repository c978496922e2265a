package pdp

import (
	"strconv"
	"strings"
)

// path locates a value in a policy document, such as
// roles[3].permissions[0].actions[2]. It is a chain of values on the stack
// of the functions reading the document, and is spelt out only when a
// problem names it: a million subjects would otherwise build a million path
// strings, and ten times as many for their fields, only to throw them away.
type path struct {
	parent *path
	name   string // a field name or a mapping key, when index < 0
	index  int    // a list index
}

// field is the value of a mapping's field (or key) name.
func (p *path) field(name string) path { return path{parent: p, name: name, index: -1} }

// at is element i of a list.
func (p *path) at(i int) path { return path{parent: p, index: i} }

// String spells the path: fields joined by dots, indexes in brackets, and
// keys that are not plain words quoted in brackets (memberships["org/1"]).
func (p *path) String() string {
	if p == nil {
		return ""
	}
	if p.index >= 0 {
		return p.parent.String() + "[" + strconv.Itoa(p.index) + "]"
	}
	return field(p.parent.String(), p.name)
}

// field joins a field name to the path of its mapping.
func field(path, name string) string {
	if !isWord(name) {
		return path + "[" + strconv.Quote(name) + "]"
	}
	if path == "" {
		// A copy: a path's strings must not flow into what String returns,
		// or the compiler would move every path to the heap.
		return strings.Clone(name)
	}
	return path + "." + name
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
