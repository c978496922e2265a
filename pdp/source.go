package pdp

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
)

// Kind is the kind of a value in a policy document.
type Kind uint8

const (
	Null Kind = iota
	Bool
	Number
	String
	List
	Mapping
)

// String names the kind as problems and errors do: "a list", "null".
func (k Kind) String() string {
	switch k {
	case Null:
		return "null"
	case Bool:
		return "a boolean"
	case Number:
		return "a number"
	case String:
		return "a string"
	case List:
		return "a list"
	case Mapping:
		return "a mapping"
	}
	return "an unsupported value"
}

// A Source reads one policy document a value at a time, in document order,
// for Build and Decode: it is how a syntax (JSON, YAML) meets the one schema
// that reads every policy document, without a tree of the whole document in
// between. A Source reports malformed syntax, repeated mapping keys and
// nesting beyond its limit as errors, which end the read.
//
// The calls follow the document's structure: Peek the next value's kind,
// then read it with Scalar (a string or a number), Skip (any value), or
// Enter (a list or a mapping) followed by Next until Next reports the end.
//
// Strings a Source returns may share memory with the document being read:
// they stay valid, and unchanged, until Build or Decode returns, which copy
// what they keep.
type Source interface {
	// Peek reports the kind of the next value, without reading it.
	Peek() (Kind, error)
	// Scalar reads a string, returning its decoded text, a number,
	// returning its literal text, or a boolean, returning "true" or
	// "false".
	Scalar() (string, error)
	// Skip reads the next value whole, whatever its kind.
	Skip() error
	// Enter reads the start of the list or mapping that Peek reported.
	Enter() error
	// Next moves to the next element of the list or mapping entered last.
	// In a mapping it returns the element's key; the element's value is the
	// next value. At the end it reads the closing and reports ok == false.
	Next() (key string, ok bool, err error)
	// Capture reads the next value and returns a Source that reads that
	// value again, from its start.
	Capture() (Source, error)
}

// TreeSource reads a document tree as a JSON or YAML decoder produces it:
// map[string]any, []any, string, json.Number, bool and nil. A mapping's keys
// are read in sorted order.
func TreeSource(tree any) Source {
	return &treeSource{stack: []treeFrame{{values: []any{tree}}}}
}

type treeSource struct {
	stack []treeFrame
}

// treeFrame is an entered list or mapping; the bottom frame holds the root.
type treeFrame struct {
	keys   []string // a mapping's keys, sorted
	values []any
	next   int
}

func (s *treeSource) top() *treeFrame { return &s.stack[len(s.stack)-1] }

func (s *treeSource) peekValue() any {
	f := s.top()
	if f.next >= len(f.values) {
		return nil
	}
	return f.values[f.next]
}

func (s *treeSource) Peek() (Kind, error) {
	switch s.peekValue().(type) {
	case nil:
		return Null, nil
	case bool:
		return Bool, nil
	case json.Number, float64, int, int64:
		return Number, nil
	case string:
		return String, nil
	case []any:
		return List, nil
	case map[string]any:
		return Mapping, nil
	default:
		return Null, errUnsupported
	}
}

func (s *treeSource) Scalar() (string, error) {
	v := s.peekValue()
	s.top().next++
	switch v := v.(type) {
	case string:
		return v, nil
	case json.Number:
		return v.String(), nil
	case bool:
		return strconv.FormatBool(v), nil
	}
	return "", errNotScalar
}

func (s *treeSource) Skip() error {
	s.top().next++
	return nil
}

func (s *treeSource) Enter() error {
	v := s.peekValue()
	s.top().next++
	switch v := v.(type) {
	case []any:
		s.stack = append(s.stack, treeFrame{values: v})
	case map[string]any:
		keys := slices.Sorted(maps.Keys(v))
		values := make([]any, len(keys))
		for i, k := range keys {
			values[i] = v[k]
		}
		s.stack = append(s.stack, treeFrame{keys: keys, values: values})
	default:
		return errNotScalar
	}
	return nil
}

// Next needs no move of its own: reading an element's value moves past it.
func (s *treeSource) Next() (string, bool, error) {
	f := s.top()
	if f.next >= len(f.values) {
		s.stack = s.stack[:len(s.stack)-1]
		return "", false, nil
	}
	if f.keys != nil {
		return f.keys[f.next], true, nil
	}
	return "", true, nil
}

func (s *treeSource) Capture() (Source, error) {
	v := s.peekValue()
	s.top().next++
	return TreeSource(v), nil
}

var (
	errUnsupported = &sourceError{"an unsupported value"}
	errNotScalar   = &sourceError{"the value is not a scalar"}
)

type sourceError struct{ msg string }

func (e *sourceError) Error() string { return "policy document tree: " + e.msg }
