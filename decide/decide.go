// Package decide is the authorization use case, whatever the transport: a
// check, a batch, the permissions of a subject, a bearer token validated and
// a check decided as its issuer says, and a proxied request authorized for an
// enforcement edge. The edges (grpcapi, httpapi, authzen, the CLI) decode
// their input, call a Decider and encode its answer.
package decide

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/rolecall/rolecall/decisionlog"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/refresh"
	"github.com/rolecall/rolecall/token"
)

// MaxBatch is the most checks one Batch may carry.
const MaxBatch = 1000

// ErrNoIssuers is returned by CheckToken when no token issuer is configured.
var ErrNoIssuers = errors.New("no token issuers are configured")

// RefusedError is a request a Decider refuses to answer to this caller (see
// WhoCan); its message says why and is safe to show to the caller.
type RefusedError struct{ msg string }

func (e *RefusedError) Error() string { return e.msg }

// ArgumentError is a request a Decider refuses to decide; its message names
// the field and is safe to show to the caller.
type ArgumentError struct{ msg string }

func (e *ArgumentError) Error() string { return e.msg }

func argumentErrorf(format string, args ...any) error {
	return &ArgumentError{msg: fmt.Sprintf(format, args...)}
}

// StatusSource reports the state of the policy being served.
type StatusSource interface {
	Status() refresh.Status
}

// Options configures a Decider. The zero value is usable.
type Options struct {
	// Tokens validates bearer tokens; nil when no issuer is configured.
	Tokens *token.Validator
	// Recorder, when set, receives every decision (see NewRecorder).
	Recorder Recorder
	// Authz, when set, enables Authorize for the enforcement edges.
	Authz *AuthzOptions
	// WhoCan says which callers ListSubjects answers; the zero value is
	// WhoCanLocal.
	WhoCan WhoCan
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// WhoCan says which callers ListSubjects ("who can?") answers. Its answer
// holds subject ids in bulk, which a Check gives away only one guessed id
// at a time, so by default it is answered only to callers on this host.
type WhoCan uint8

const (
	// WhoCanLocal answers callers over a Unix socket or from a loopback
	// address: the trust Check already has in a sidecar. The default.
	WhoCanLocal WhoCan = iota
	// WhoCanAny answers every caller that reaches the listener, for a
	// listener guarded otherwise (mutual TLS, a network policy).
	WhoCanAny
	// WhoCanOff answers no one.
	WhoCanOff
)

// WhoCanModes are the names ParseWhoCan accepts, in the order of the
// constants.
var WhoCanModes = []string{"local", "any", "off"}

// ParseWhoCan reads a WhoCan by its name: local, any or off.
func ParseWhoCan(s string) (WhoCan, error) {
	for i, m := range WhoCanModes {
		if s == m {
			return WhoCan(i), nil
		}
	}
	return WhoCanLocal, fmt.Errorf("%q: want local, any or off", s)
}

func (w WhoCan) String() string {
	if int(w) < len(WhoCanModes) {
		return WhoCanModes[w]
	}
	return fmt.Sprintf("WhoCan(%d)", w)
}

// Decider decides from an engine's current policy and records what it
// decides.
type Decider struct {
	engine *pdp.Engine
	tokens *token.Validator
	rec    Recorder
	// wantIDs: the recorder keeps request IDs (the decision log is on).
	wantIDs bool
	authz   *AuthzOptions
	whoCan  WhoCan
	log     *slog.Logger
}

// New returns a Decider answering from engine.
func New(engine *pdp.Engine, opts Options) *Decider {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Decider{engine: engine, tokens: opts.Tokens, rec: opts.Recorder, whoCan: opts.WhoCan, log: opts.Logger}
	if r, ok := opts.Recorder.(interface{ keepsRequestIDs() bool }); ok {
		d.wantIDs = r.keepsRequestIDs()
	} else {
		d.wantIDs = opts.Recorder != nil
	}
	if opts.Authz != nil {
		a := *opts.Authz
		a.withDefaults()
		d.authz = &a
	}
	return d
}

// Engine is the engine the Decider answers from.
func (d *Decider) Engine() *pdp.Engine { return d.engine }

// WhoCan says which callers ListSubjects answers.
func (d *Decider) WhoCan() WhoCan { return d.whoCan }

// Authz is the enforcement configuration with its defaults applied, nil when
// the enforcement edges are off.
func (d *Decider) Authz() *AuthzOptions { return d.authz }

// Check decides q. requestID, when not empty, goes to the decision log.
func (d *Decider) Check(ctx context.Context, q pdp.Query, requestID string) (pdp.Decision, error) {
	start := d.now()
	dec, err := d.engine.Decide(q)
	if err != nil {
		return pdp.Decision{}, err
	}
	d.record(decisionlog.KindCheck, requestID, q, dec, start)
	return dec, nil
}

// Batch decides every query from one snapshot, so that every result comes
// from one policy. It refuses an empty batch, one over MaxBatch and any
// invalid query, naming its index.
func (d *Decider) Batch(ctx context.Context, qs []pdp.Query, requestID string) ([]pdp.Decision, error) {
	switch {
	case len(qs) == 0:
		return nil, argumentErrorf("checks: must hold at least one check")
	case len(qs) > MaxBatch:
		return nil, argumentErrorf("checks: holds %d checks; the limit is %d", len(qs), MaxBatch)
	}
	for i, q := range qs {
		if err := q.Validate(); err != nil {
			return nil, argumentErrorf("checks[%d].%v", i, err)
		}
	}
	snap, err := d.Snapshot()
	if err != nil {
		return nil, err
	}
	out := make([]pdp.Decision, len(qs))
	for i, q := range qs {
		out[i] = d.DecideIn(snap, decisionlog.KindCheckBatch, requestID, q)
	}
	return out, nil
}

// Snapshot is the current policy, for callers that decide several queries
// from one policy with DecideIn; pdp.ErrNoPolicy before the first load.
func (d *Decider) Snapshot() (*pdp.Snapshot, error) {
	snap := d.engine.Snapshot()
	if snap == nil {
		return nil, pdp.ErrNoPolicy
	}
	return snap, nil
}

// DecideIn decides a valid q from snap and records the decision as kind.
func (d *Decider) DecideIn(snap *pdp.Snapshot, kind, requestID string, q pdp.Query) pdp.Decision {
	start := d.now()
	dec := snap.Decide(q)
	d.record(kind, requestID, q, dec, start)
	return dec
}

// ListPermissions lists what subject may do, inside org when set, on
// resource when set.
func (d *Decider) ListPermissions(ctx context.Context, subject, org, resource string) (pdp.Permissions, error) {
	return d.engine.ListPermissions(subject, org, resource)
}

// ListSubjects answers who may perform q.Action on q.Resource (inside q.Org
// when set), one page at a time: see pdp.Engine.ListSubjects. local says
// whether the caller is on this host (a Unix socket or a loopback address),
// as the edge knows it; a caller the WhoCan option does not admit gets a
// *RefusedError. Like ListPermissions, it is a question about the policy,
// not a decision: nothing is recorded.
func (d *Decider) ListSubjects(ctx context.Context, q pdp.SubjectQuery, local bool) (pdp.SubjectPage, error) {
	switch {
	case d.whoCan == WhoCanOff:
		return pdp.SubjectPage{}, &RefusedError{msg: "who-can (ListSubjects) is turned off on this server (who_can: off)"}
	case d.whoCan == WhoCanLocal && !local:
		return pdp.SubjectPage{}, &RefusedError{msg: "who-can (ListSubjects) is answered only over the Unix socket or from loopback (who_can: local)"}
	}
	return d.engine.ListSubjects(q)
}

// Status is the state of the policy being served and of the token issuers.
type Status struct {
	refresh.Status
	// Issuers is nil when no issuer is configured.
	Issuers []token.IssuerStatus
}

// PolicyStatus reports src's state, or the engine's alone when src is nil.
func (d *Decider) PolicyStatus(src StatusSource) Status {
	var st Status
	if src != nil {
		st.Status = src.Status()
	} else if snap := d.engine.Snapshot(); snap != nil {
		st.Status = refresh.Status{Loaded: true, Revision: snap.Revision(), Counts: snap.Counts()}
	}
	if d.tokens != nil {
		st.Issuers = d.tokens.Status()
	}
	return st
}

// Readiness reports whether decisions can be served and, when they cannot
// or when the policy is stale, why: a policy is loaded and not withheld
// (per st, when set), and every token issuer has keys.
func (d *Decider) Readiness(st StatusSource) (bool, string) {
	stale := false
	if st != nil {
		status := st.Status()
		if status.Withheld {
			return false, "the policy is older than max_stale and withheld"
		}
		stale = status.Stale
	}
	if d.engine.Snapshot() == nil {
		return false, "no policy loaded yet"
	}
	if d.tokens != nil {
		if ok, why := d.tokens.Ready(); !ok {
			return false, why
		}
	}
	if stale {
		return true, "serving a stale policy: its last successful refresh is older than max_stale"
	}
	return true, ""
}

// KeepsRequestIDs reports whether recorded decisions keep their request ID
// (the decision log is on), so that an edge looks the ID up only then: with
// metrics alone the lookup would cost more than the decision.
func (d *Decider) KeepsRequestIDs() bool { return d.wantIDs }

// now reads the clock only when a decision will be observed: on this path
// the clock costs more than the decision.
func (d *Decider) now() time.Time {
	if d.rec == nil {
		return time.Time{}
	}
	return time.Now()
}

func (d *Decider) record(kind, requestID string, q pdp.Query, dec pdp.Decision, start time.Time) {
	if d.rec != nil {
		d.rec.Record(kind, requestID, q, dec, start)
	}
}
