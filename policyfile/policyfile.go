// Package policyfile reads the canonical policy document from its YAML or
// JSON syntax. It turns bytes into the document tree that pdp.Decode
// understands, so that pdp itself needs nothing beyond the standard library,
// and it is stricter than a plain unmarshal: duplicate keys, several YAML
// documents in one file and runaway alias expansion are errors.
package policyfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/rolecall/rolecall/pdp"
)

// Format is the syntax of a policy document.
type Format string

const (
	YAML Format = "yaml"
	JSON Format = "json"
)

// ErrEmpty is returned for a document with no content.
var ErrEmpty = errors.New("policy document is empty")

// DetectFormat picks the format from the file name's extension (.json, .yaml,
// .yml) and otherwise from the content: a document whose first non-blank
// byte is "{" is JSON, anything else YAML.
func DetectFormat(name string, data []byte) Format {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".json":
		return JSON
	case ".yaml", ".yml":
		return YAML
	}
	if t := bytes.TrimLeft(data, " \t\r\n\ufeff"); len(t) > 0 && t[0] == '{' {
		return JSON
	}
	return YAML
}

// Tree parses data into a document tree: map[string]any, []any, string,
// json.Number, bool and nil.
func Tree(data []byte, f Format) (any, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, ErrEmpty
	}
	switch f {
	case JSON:
		return jsonDocumentTree(data)
	case YAML:
		return yamlTree(data)
	default:
		return nil, fmt.Errorf("unknown policy format %q (want yaml or json)", f)
	}
}

// Parse parses and decodes a policy document. Structural problems (unknown
// fields, wrong kinds of values) come back as a *pdp.ValidationError; the
// policy is validated in full by pdp.Compile.
func Parse(data []byte, f Format) (*pdp.Policy, error) {
	src, err := source(data, f)
	if err != nil {
		return nil, err
	}
	p, err := pdp.ReadPolicy(src)
	if err := src.end(err); err != nil {
		return nil, err
	}
	if p.Revision == "" {
		p.Revision = ContentRevision(data)
	}
	return p, nil
}

// Compile parses, validates and compiles a policy document, reading it
// straight into the snapshot (pdp.Build): a document costs little more
// memory than the snapshot it becomes, at any size.
func Compile(data []byte, f Format) (*pdp.Snapshot, error) {
	src, err := source(data, f)
	if err != nil {
		return nil, err
	}
	snap, err := pdp.Build(src, func() string { return ContentRevision(data) })
	if err := src.end(err); err != nil {
		return nil, err
	}
	return snap, nil
}

// documentSource is a pdp.Source that can tell, after the read, whether
// anything but white space follows the document.
type documentSource interface {
	pdp.Source
	// end returns the error that ends the read: err, unless the syntax
	// after the value read is wrong, which is the more basic problem.
	end(err error) error
}

// source returns the Source that reads data in format f: JSON as it is
// read, straight from its bytes; YAML through its node tree, which the YAML
// parser builds whole anyway.
func source(data []byte, f Format) (documentSource, error) {
	if f == JSON {
		if len(bytes.TrimSpace(data)) == 0 {
			return nil, ErrEmpty
		}
		return jsonDocument{newJSONSource(data)}, nil
	}
	tree, err := Tree(data, f)
	if err != nil {
		return nil, err
	}
	return treeDocument{pdp.TreeSource(tree)}, nil
}

type jsonDocument struct{ *jsonSource }

func (d jsonDocument) end(err error) error {
	// Syntax after the document is a more basic problem than its content.
	if _, invalid := err.(*pdp.ValidationError); err == nil || invalid {
		if endErr := d.End(); endErr != nil {
			return endErr
		}
	}
	return err
}

type treeDocument struct{ pdp.Source }

func (treeDocument) end(err error) error { return err }

// jsonDocumentTree reads a whole JSON document into a tree.
func jsonDocumentTree(data []byte) (any, error) {
	src := newJSONSource(data)
	v, err := readTree(src)
	if err != nil {
		return nil, err
	}
	return v, src.End()
}

// readTree reads the next value of src into a tree: map[string]any, []any,
// string, json.Number, bool and nil.
func readTree(src pdp.Source) (any, error) {
	kind, err := src.Peek()
	if err != nil {
		return nil, err
	}
	switch kind {
	case pdp.String:
		return src.Scalar()
	case pdp.Number:
		n, err := src.Scalar()
		return json.Number(n), err
	case pdp.Bool:
		b, err := src.Scalar()
		return b == "true", err
	case pdp.List, pdp.Mapping:
		if err := src.Enter(); err != nil {
			return nil, err
		}
		var (
			l []any
			m map[string]any
		)
		if kind == pdp.List {
			l = []any{}
		} else {
			m = map[string]any{}
		}
		for {
			k, ok, err := src.Next()
			if err != nil {
				return nil, err
			}
			if !ok {
				break
			}
			v, err := readTree(src)
			if err != nil {
				return nil, err
			}
			if kind == pdp.List {
				l = append(l, v)
			} else {
				m[k] = v
			}
		}
		if kind == pdp.List {
			return l, nil
		}
		return m, nil
	}
	return nil, src.Skip()
}

// ContentRevision names a document by its content, for documents that carry
// no revision of their own.
func ContentRevision(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:8])
}
