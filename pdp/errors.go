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

// ValidationError lists every problem found in a policy document, up to
// MaxProblems of them. A document with any problem is rejected whole.
type ValidationError struct {
	Problems []Problem
	// Omitted counts the problems found beyond MaxProblems, which are not
	// listed.
	Omitted int
}

// MaxProblems bounds the problems a ValidationError lists: a document of a
// gigabyte could otherwise hold hundreds of millions, and the list take more
// memory than any policy.
const MaxProblems = 1000

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 && e.Omitted == 0 {
		return "invalid policy: " + e.Problems[0].String()
	}
	var b strings.Builder
	if e.Omitted > 0 {
		fmt.Fprintf(&b, "invalid policy: %d problems, the first %d listed:", len(e.Problems)+e.Omitted, len(e.Problems))
	} else {
		fmt.Fprintf(&b, "invalid policy: %d problems:", len(e.Problems))
	}
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

// problems collects Problems in the order they are found, the first
// MaxProblems of them.
type problems struct {
	list    []Problem
	omitted int
}

func newProblem(p *path, format string, args ...any) Problem {
	return Problem{Path: p.String(), Message: fmt.Sprintf(format, args...)}
}

func (ps *problems) add(p *path, format string, args ...any) {
	if len(ps.list) >= MaxProblems {
		ps.omitted++
		return
	}
	ps.list = append(ps.list, newProblem(p, format, args...))
}

func (ps *problems) append(p Problem) {
	if len(ps.list) >= MaxProblems {
		ps.omitted++
		return
	}
	ps.list = append(ps.list, p)
}

// extend appends the problems of o.
func (ps *problems) extend(o *problems) {
	for _, p := range o.list {
		ps.append(p)
	}
	ps.omitted += o.omitted
}

// trim keeps the first MaxProblems, counting the rest.
func (ps *problems) trim() {
	if n := len(ps.list) - MaxProblems; n > 0 {
		ps.omitted += n
		ps.list = ps.list[:MaxProblems]
	}
}

func (ps *problems) empty() bool { return len(ps.list) == 0 && ps.omitted == 0 }

func (ps *problems) err() error {
	if ps.empty() {
		return nil
	}
	return &ValidationError{Problems: ps.list, Omitted: ps.omitted}
}
