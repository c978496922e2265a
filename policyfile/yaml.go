package policyfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// maxAliasNodes bounds the nodes reached through YAML aliases, so that a few
// lines of nested aliases ("billion laughs") cannot expand into gigabytes.
const maxAliasNodes = 1 << 20

// yamlTree parses one YAML document into a document tree. Scalars keep their
// literal text where the schema wants strings, so "revision: 2026-11-20" is the
// string "2026-11-20", not a timestamp.
func yamlTree(data []byte) (any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ErrEmpty
		}
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		return nil, errors.New("invalid YAML: the file holds more than one document (---); a policy is one document")
	}
	c := yamlConverter{}
	return c.node(&doc, 0, false)
}

type yamlConverter struct {
	aliased int
}

func (c *yamlConverter) node(n *yaml.Node, depth int, viaAlias bool) (any, error) {
	if viaAlias {
		c.aliased++
		if c.aliased > maxAliasNodes {
			return nil, fmt.Errorf("invalid YAML: aliases expand to more than %d nodes", maxAliasNodes)
		}
	}
	if depth > maxDepth {
		return nil, fmt.Errorf("invalid YAML at line %d: nested deeper than %d levels", n.Line, maxDepth)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, ErrEmpty
		}
		return c.node(n.Content[0], depth, viaAlias)
	case yaml.AliasNode:
		return c.node(n.Alias, depth+1, true)
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for _, e := range n.Content {
			v, err := c.node(e, depth+1, viaAlias)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		return l, nil
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
				return nil, fmt.Errorf("invalid YAML at line %d: mapping keys must be plain strings (merge keys \"<<\" are not supported)", k.Line)
			}
			if _, dup := m[k.Value]; dup {
				return nil, fmt.Errorf("invalid YAML at line %d: duplicate key %q", k.Line, k.Value)
			}
			v, err := c.node(n.Content[i+1], depth+1, viaAlias)
			if err != nil {
				return nil, err
			}
			m[k.Value] = v
		}
		return m, nil
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, nil
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				return nil, fmt.Errorf("invalid YAML at line %d: %w", n.Line, err)
			}
			return b, nil
		case "!!int", "!!float":
			return json.Number(n.Value), nil
		default:
			return n.Value, nil
		}
	default:
		return nil, fmt.Errorf("invalid YAML at line %d: unsupported node", n.Line)
	}
}
