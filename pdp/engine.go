package pdp

import "sync/atomic"

// Engine serves decisions from the current Snapshot. Readers load the
// snapshot through an atomic pointer and never lock; a refresh compiles a new
// snapshot off to the side and swaps it in whole, so every decision sees one
// complete policy. The zero Engine has no policy and fails closed.
type Engine struct {
	current atomic.Pointer[Snapshot]
}

// Snapshot returns the snapshot being served, or nil before the first load.
func (e *Engine) Snapshot() *Snapshot { return e.current.Load() }

// Swap makes s the snapshot being served and returns the previous one.
func (e *Engine) Swap(s *Snapshot) *Snapshot { return e.current.Swap(s) }

// Decide validates q and answers it from the current snapshot. It returns a
// *QueryError for a malformed query and ErrNoPolicy before the first load.
func (e *Engine) Decide(q Query) (Decision, error) {
	if err := q.Validate(); err != nil {
		return Decision{}, err
	}
	s := e.current.Load()
	if s == nil {
		return Decision{}, ErrNoPolicy
	}
	return s.Decide(q), nil
}

// ListPermissions validates its arguments and lists the subject's permissions
// from the current snapshot. subject is required; org and resource are
// optional.
func (e *Engine) ListPermissions(subject, org, resource string) (Permissions, error) {
	for _, f := range [...]struct {
		name, value string
		required    bool
	}{{"subject", subject, true}, {"org", org, false}, {"resource", resource, false}} {
		if err := checkQueryField(f.name, f.value, f.required); err != nil {
			return Permissions{}, err
		}
	}
	s := e.current.Load()
	if s == nil {
		return Permissions{}, ErrNoPolicy
	}
	return s.ListPermissions(subject, org, resource), nil
}
