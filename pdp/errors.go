package pdp

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNoPolicy is returned by Engine.Decide and Engine.ListPermissions while no
// policy has been loaded. Callers must fail closed: answer "unavailable", never
// "allow".
var ErrNoPolicy = errors.New("no policy loaded")

// Problem is one thing wrong with a policy document, located by its path in
// the document, such as "roles[3].permissions[0].actions[2]".
type Problem struct {
	Path    string
	Message string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// ValidationError lists every problem found in a policy document. A document
// with any problem is rejected whole.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return "invalid policy: " + e.Problems[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid policy: %d problems:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// QueryError reports a malformed query: which field and why. Servers map it to
// INVALID_ARGUMENT.
type QueryError struct {
	Field  string
	Reason string
}

func (e *QueryError) Error() string { return e.Field + ": " + e.Reason }

// problems collects Problems in the order they are found.
type problems []Problem

func (ps *problems) add(path, format string, args ...any) {
	*ps = append(*ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return &ValidationError{Problems: ps}
}
