package policyfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// maxDepth bounds nesting. The policy schema is five levels deep; anything far
// deeper is garbage or an attack on the parser's stack.
const maxDepth = 64

// jsonTree decodes JSON token by token so that a duplicate key, which
// encoding/json would silently resolve to the last value, is an error: in a
// security policy two definitions of one thing must never be guessed between.
func jsonTree(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := jsonValue(dec, data, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, jsonError(data, dec.InputOffset(), errors.New("unexpected data after the top-level value"))
	}
	return v, nil
}

func jsonValue(dec *json.Decoder, data []byte, depth int) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, jsonError(data, dec.InputOffset(), err)
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	if depth >= maxDepth {
		return nil, jsonError(data, dec.InputOffset(), fmt.Errorf("nested deeper than %d levels", maxDepth))
	}
	switch delim {
	case '{':
		m := make(map[string]any)
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, jsonError(data, dec.InputOffset(), err)
			}
			key := kt.(string) // the decoder only yields string keys inside an object
			if _, dup := m[key]; dup {
				return nil, jsonError(data, dec.InputOffset(), fmt.Errorf("duplicate key %q", key))
			}
			v, err := jsonValue(dec, data, depth+1)
			if err != nil {
				return nil, err
			}
			m[key] = v
		}
		return m, closeDelim(dec, data)
	default: // '['
		l := []any{}
		for dec.More() {
			v, err := jsonValue(dec, data, depth+1)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		return l, closeDelim(dec, data)
	}
}

// jsonError locates err at a line and column, which is what a person editing
// the file needs.
func jsonError(data []byte, offset int64, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		offset = se.Offset
	}
	offset = min(max(offset, 0), int64(len(data)))
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(offset) - bytes.LastIndexByte(before, '\n')
	return fmt.Errorf("invalid JSON at line %d, column %d: %w", line, col, err)
}

// closeDelim consumes the "}" or "]" that ends a value.
func closeDelim(dec *json.Decoder, data []byte) error {
	if _, err := dec.Token(); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return jsonError(data, dec.InputOffset(), err)
	}
	return nil
}
