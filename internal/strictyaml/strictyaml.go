// Package strictyaml decodes rolecall's config-like YAML files (the --config
// file, the --issuers file) strictly, against the yaml tags of the Go struct
// they decode into. A key the struct does not have, a duplicate key, a value
// of the wrong kind and a key without a value are errors naming the file, the
// line and the key's path, with the keys the mapping may have and the closest
// one as a suggestion:
//
//	rolecall.yaml: line 2: unknown key polcy; did you mean policy? the file has grpc, admin, ...
//
// Every such problem in the document is reported together.
package strictyaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Decode decodes the YAML document data, read from the file name, over v, a
// non-nil pointer: keys present in data replace v's values, absent keys keep
// them. The document is checked against v's type first, and every problem is
// returned at once, joined with errors.Join, each as "NAME: line N: ...". An
// empty document changes nothing; a second, non-empty document is an error.
// On error, v is unchanged.
func Decode(name string, data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("strictyaml: Decode wants a non-nil pointer, not %T", v)
	}
	fail := func(err error) error {
		return fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		return nil // empty: nothing to change
	case err != nil:
		return fail(err)
	}
	for { // further documents may only be empty, as after a trailing ---
		var more yaml.Node
		err := dec.Decode(&more)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail(err)
		}
		if len(more.Content) > 0 && more.Content[0].ShortTag() != "!!null" {
			return fmt.Errorf("%s: line %d: a second YAML document; want one", name, more.Line)
		}
	}

	var k checker
	if len(doc.Content) == 1 {
		k.value(doc.Content[0], rv.Elem().Type(), "", true)
	}
	if len(k.problems) > 0 {
		errs := make([]error, len(k.problems))
		for i, p := range k.problems {
			errs[i] = fmt.Errorf("%s: %s", name, p)
		}
		return errors.Join(errs...)
	}

	// The checker found nothing wrong; decode for real, still strictly.
	next := reflect.New(rv.Elem().Type())
	next.Elem().Set(rv.Elem())
	dec = yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(next.Interface()); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			errs := make([]error, len(te.Errors))
			for i, e := range te.Errors {
				errs[i] = fmt.Errorf("%s: %s", name, e)
			}
			return errors.Join(errs...)
		}
		return fail(err)
	}
	rv.Elem().Set(next.Elem())
	return nil
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	// A yaml.Node field takes any YAML; its reader checks it.
	nodeType = reflect.TypeFor[yaml.Node]()
)

// checker walks a YAML node tree along the Go type it is decoded into and
// records every problem, each as "line N: " and what is wrong with which key.
type checker struct {
	problems []string
}

func (k *checker) bad(n *yaml.Node, format string, args ...any) {
	p := fmt.Sprintf("line %d: ", n.Line) + fmt.Sprintf(format, args...)
	if !slices.Contains(k.problems, p) { // a merged anchor is checked where it is used
		k.problems = append(k.problems, p)
	}
}

// value checks n, at the key path path, as a value of type t. strictNull
// makes a key without a value an error for scalars: it would silently keep
// a default where the author likely meant an empty value.
func (k *checker) value(n *yaml.Node, t reflect.Type, path string, strictNull bool) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	isNull := n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
	if t.Kind() == reflect.Pointer { // present or not: the value is checked as its type's
		t = t.Elem()
	}
	switch {
	case t == nodeType:
		return
	case t.Kind() == reflect.Struct:
		if isNull {
			return // an empty section keeps its values
		}
		if n.Kind != yaml.MappingNode {
			k.bad(n, "%s: want a mapping of keys, found %s", label(path), describe(n))
			return
		}
		k.mapping(n, t, path, strictNull, map[string]int{})
	case t.Kind() == reflect.Slice:
		if isNull {
			return
		}
		if n.Kind != yaml.SequenceNode {
			k.bad(n, "%s: want a list, found %s", label(path), describe(n))
			return
		}
		// The elements of a list start from zero values: a null is a zero.
		for i, e := range n.Content {
			k.value(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), false)
		}
	default:
		k.scalar(n, t, path, isNull, strictNull)
	}
}

// mapping checks the keys of n against the fields of the struct type t.
// seen holds the keys already set, with their lines.
func (k *checker) mapping(n *yaml.Node, t reflect.Type, path string, strictNull bool, seen map[string]int) {
	fields := yamlFields(t)
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if key.Kind != yaml.ScalarNode {
			k.bad(key, "%s: want a key name, found %s", label(path), describe(key))
			continue
		}
		if key.ShortTag() == "!!merge" {
			merges = append(merges, val)
			continue
		}
		full := Join(path, key.Value)
		f, ok := fields[key.Value]
		if !ok {
			k.bad(key, "unknown key %s; %s", full, known(path, key.Value, fields))
			continue
		}
		if line, dup := seen[key.Value]; dup {
			k.bad(key, "%s is set twice (first at line %d)", full, line)
			continue
		}
		seen[key.Value] = key.Line
		k.value(val, f.Type, full, strictNull)
	}
	// Merged keys (<<: *anchor) apply where the mapping does not set them.
	for _, m := range merges {
		if m.Kind == yaml.AliasNode && m.Alias != nil {
			m = m.Alias
		}
		list := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			list = m.Content
		}
		for _, e := range list {
			if e.Kind == yaml.AliasNode && e.Alias != nil {
				e = e.Alias
			}
			if e.Kind != yaml.MappingNode {
				k.bad(e, "%s: a merge (<<) wants a mapping or a list of mappings, found %s", label(path), describe(e))
				continue
			}
			// A merged key may repeat one the mapping sets: it is overridden.
			k.mapping(e, t, path, strictNull, map[string]int{})
		}
	}
}

// scalar checks n as a scalar of type t.
func (k *checker) scalar(n *yaml.Node, t reflect.Type, path string, isNull, strictNull bool) {
	if isNull {
		if strictNull {
			if t.Kind() == reflect.String {
				k.bad(n, `%s has no value: write "" for an empty string, or leave the key out for its default`, path)
			} else {
				k.bad(n, "%s has no value: want %s, or leave the key out for its default", path, want(t))
			}
		}
		return
	}
	if n.Kind != yaml.ScalarNode {
		k.bad(n, "%s: want %s, found %s", label(path), want(t), describe(n))
		return
	}
	tag := n.ShortTag()
	ok := true
	switch {
	case t == durationType:
		ok = tag == "!!str"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		ok = tag == "!!int"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		ok = tag == "!!int" || tag == "!!float"
	}
	if ok {
		ok = n.Decode(reflect.New(t).Interface()) == nil
	}
	if !ok {
		k.bad(n, "%s: %q: want %s", path, n.Value, want(t))
	}
}

// want describes the values of type t.
func want(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration with its unit, such as 0s, 10s, 5m or 1h30m"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		return fmt.Sprintf("an integer (%d bits)", t.Bits())
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		return fmt.Sprintf("a non-negative integer (%d bits)", t.Bits())
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	case t.Kind() == reflect.String:
		return "a string"
	default:
		return "a " + t.String()
	}
}

// describe names the kind of n, for errors.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return strconv.Quote(n.Value)
	}
}

// label is path for messages; the top level is "the file".
func label(path string) string {
	if path == "" {
		return "the file"
	}
	return path
}

// Join is the path of key inside the mapping at path, as errors write it:
// grpc.tls.cert_file, issuers[0].claims.subject; the top level is "".
func Join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// known lists the keys a mapping may have, suggesting the closest to the
// unknown key name.
func known(path, name string, fields map[string]reflect.StructField) string {
	keys := make([]string, 0, len(fields))
	for key := range fields {
		keys = append(keys, key)
	}
	slices.SortFunc(keys, func(a, b string) int { return fields[a].Index[0] - fields[b].Index[0] })
	var s strings.Builder
	best, bestDist := "", math.MaxInt
	for _, key := range keys {
		if d := distance(strings.ToLower(name), key); d < bestDist {
			best, bestDist = key, d
		}
	}
	if best != "" && bestDist <= max(1, len(best)/3) {
		fmt.Fprintf(&s, "did you mean %s? ", Join(path, best))
	}
	fmt.Fprintf(&s, "%s has %s", label(path), strings.Join(keys, ", "))
	return s.String()
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// yamlFields maps the YAML keys of the struct type t to its fields, as
// yaml.v3 names them: the yaml tag's name, else the lowercased field name.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	fields := make(map[string]reflect.StructField, t.NumField())
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || len(f.Index) != 1 {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = strings.ToLower(f.Name)
		}
		fields[name] = f
	}
	return fields
}
