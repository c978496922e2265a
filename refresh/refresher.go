package refresh

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	gosync "sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/rolecall/rolecall/cache"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
)

// Config configures a Refresher.
type Config struct {
	// Upstream provides policy documents. Required.
	Upstream Upstream
	// Engine is where accepted policies are swapped in. Required.
	Engine *pdp.Engine
	// Cache, when set, persists every accepted document before it is served
	// and provides the policy for a warm start.
	Cache *cache.Cache
	// Interval between polls. Default 5 minutes.
	Interval time.Duration
	// Jitter spreads polls by up to ±Jitter×Interval so that a fleet of
	// sidecars does not poll in step. Default 0.1; negative disables it.
	Jitter float64
	// BackoffBase is the first retry delay after a failure; each further
	// failure doubles it, up to BackoffMax. Defaults: 1 s, and Interval.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// MaxStale, when set, is how old the last successful refresh may be
	// before the policy counts as stale.
	MaxStale time.Duration
	// FailWhenStale withholds a stale policy: decisions answer UNAVAILABLE
	// until the upstream is reached again. By default a stale policy keeps
	// serving and the status says it is stale.
	FailWhenStale bool
	// OnChange, when set, is called whenever what is served changes: a new
	// policy, or a stale one withheld or restored. The server uses it to
	// update readiness.
	OnChange func()
	// PublicKey, when set, accepts only snapshot bundles signed with it:
	// documents, unsigned bundles and bundles signed with another key are
	// refused, and the last good policy keeps serving.
	PublicKey ed25519.PublicKey
	// LongPollWait is how long the server of a LongPollUpstream may hold a
	// fetch open waiting for a change (Prefer: wait). 0 disables long polling.
	LongPollWait time.Duration
	// OnInstall, when set, is called with every policy swapped in (the warm
	// start's too), after the swap and outside the refresher's lock. A
	// publisher uses it.
	OnInstall func(Installed)
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Now defaults to time.Now; tests set it.
	Now func() time.Time
}

// largeDocument is the size from which the refresher returns memory to the
// operating system after loading a document.
const largeDocument = 4 << 20

// DefaultInterval is the poll interval when Config.Interval is zero.
const DefaultInterval = 5 * time.Minute

// Installed is a policy the refresher has just swapped in.
type Installed struct {
	Snapshot *pdp.Snapshot
	// Binary is the snapshot's MarshalBinary, when the refresher made one;
	// nil otherwise.
	Binary []byte
	// Document is what the policy was read from: a JSON or YAML document,
	// or the bundle itself when Format is FormatSnapshot.
	Document Document
	// PublishedAt is when the policy was first served by its publisher: the
	// bundle's or the Rolecall-Published-At header's time, else when this
	// refresher first fetched it.
	PublishedAt time.Time
	// Publisher names who published it ("" when not a published policy).
	Publisher string
}

// Status describes the policy being served and the refreshes.
type Status struct {
	Source    string
	Loaded    bool
	Revision  string
	ETag      string
	FromCache bool
	LoadedAt  time.Time
	// FetchedAt is when the policy being served was fetched (or confirmed
	// unchanged) from the upstream.
	FetchedAt time.Time
	// LastSuccess is when the upstream last answered with a valid policy or
	// a confirmation; for a cached policy, when it was fetched.
	LastSuccess         time.Time
	LastError           string
	LastErrorAt         time.Time
	ConsecutiveFailures int
	// Stale is set when MaxStale is set and LastSuccess is older.
	Stale bool
	// Withheld is set when a stale policy is not served (FailWhenStale).
	Withheld bool
	Counts   pdp.Counts
	// Cumulative refresh outcomes, for metrics: a new policy loaded, the
	// upstream confirming the one held, and failures.
	AttemptsLoaded, AttemptsNotModified, AttemptsFailed uint64
}

// Refresher fetches, validates, persists and swaps in policies. RefreshOnce is
// one step; Run repeats it on a timer and on Trigger.
type Refresher struct {
	cfg     Config
	log     *slog.Logger
	trigger chan struct{}
	flight  singleflight.Group

	// mu guards the fields below. It is never held by a decision: the engine
	// is read through its own atomic pointer.
	mu     gosync.Mutex
	status Status
	// served is the snapshot being served, or withheld while stale.
	served *pdp.Snapshot
	// contentSum identifies the served document by content, so that a new
	// tag on the same bytes is not a new policy.
	contentSum [sha256.Size]byte
	// unsaved is an accepted document the cache failed to store; it is
	// retried on every refresh until stored.
	unsaved *cache.PolicyRecord
	// rejected is the tag of the last document that failed to compile, so
	// that an unchanged broken document is not parsed and logged on every
	// poll.
	rejected string
	// retryAfter is what the upstream last asked for with Retry-After.
	retryAfter time.Duration
}

// New checks cfg and returns a Refresher.
func New(cfg Config) (*Refresher, error) {
	var errs []error
	if cfg.Upstream == nil {
		errs = append(errs, errors.New("refresh: Config.Upstream is required"))
	}
	if cfg.Engine == nil {
		errs = append(errs, errors.New("refresh: Config.Engine is required"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Interval", cfg.Interval}, {"BackoffBase", cfg.BackoffBase}, {"BackoffMax", cfg.BackoffMax}, {"MaxStale", cfg.MaxStale}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("refresh: Config.%s is %v; it must not be negative", d.name, d.v))
		}
	}
	if cfg.FailWhenStale && cfg.MaxStale == 0 {
		errs = append(errs, errors.New("refresh: Config.FailWhenStale needs MaxStale"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Jitter == 0 {
		cfg.Jitter = 0.1
	}
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase = time.Second
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = max(cfg.Interval, cfg.BackoffBase)
	}
	if cfg.OnChange == nil {
		cfg.OnChange = func() {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Refresher{
		cfg:     cfg,
		log:     cfg.Logger.With("source", cfg.Upstream.String()),
		trigger: make(chan struct{}, 1),
		status:  Status{Source: cfg.Upstream.String()},
	}, nil
}

// Status returns a copy of the current status, with staleness as of now.
func (r *Refresher) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.status
	st.Stale = r.staleLocked(r.cfg.Now())
	return st
}

func (r *Refresher) staleLocked(now time.Time) bool {
	return r.cfg.MaxStale > 0 && r.served != nil && now.Sub(r.status.LastSuccess) > r.cfg.MaxStale
}

// WarmStart serves the cached policy, if the cache holds a valid one, so that
// decisions are answered before the upstream is reached. It reports whether a
// policy was loaded. A cached document that no longer compiles is logged and
// skipped, never served.
func (r *Refresher) WarmStart() (bool, error) {
	if r.cfg.Cache == nil {
		return false, nil
	}
	snap, rec, err := r.cachedSnapshot()
	if err != nil || snap == nil {
		return false, err
	}
	etag := rec.ETag
	if rec.Source != r.cfg.Upstream.String() {
		etag = "" // a tag from another source says nothing about this one
	}
	r.install(snap, rec.contentSum, func(st *Status) {
		st.ETag = etag
		st.FromCache = true
		st.FetchedAt = rec.FetchedAt
		st.LastSuccess = rec.FetchedAt
	})
	r.log.Info("serving cached policy", "revision", snap.Revision(), "cached_from", rec.Source, "fetched_at", rec.FetchedAt)
	r.checkStale()
	return true, nil
}

// cachedPolicy is what a warm start knows of the cached document.
type cachedPolicy struct {
	cache.PolicyRecord
	contentSum [sha256.Size]byte
}

// cachedSnapshot reads the cached policy: its binary snapshot when there is
// a good one (fast, even for millions of subjects), else its document,
// compiled. It returns a nil snapshot when the cache holds no policy.
func (r *Refresher) cachedSnapshot() (*pdp.Snapshot, cachedPolicy, error) {
	var snap *pdp.Snapshot
	rec, ok, err := r.cfg.Cache.LoadSnapshot(func(b []byte) (err error) {
		snap, err = pdp.UnmarshalSnapshot(b)
		return err
	})
	if err == nil && ok && snap.Revision() == rec.Revision {
		// The document's digest is stored beside it; reading it is cheap.
		if sum, err := r.cfg.Cache.PolicyDigest(); err == nil {
			return snap, cachedPolicy{rec, sum}, nil
		}
	}
	if err != nil || ok {
		r.log.Warn("cached policy snapshot unusable; compiling the cached document", "error", err)
	}
	rec, ok, err = r.cfg.Cache.LoadPolicy()
	if err != nil {
		return nil, cachedPolicy{}, fmt.Errorf("read cached policy: %w", err)
	}
	if !ok {
		return nil, cachedPolicy{}, nil
	}
	snap, err = policyfile.Compile(rec.Document, policyfile.Format(rec.Format))
	if err != nil {
		return nil, cachedPolicy{}, fmt.Errorf("cached policy (revision %q) does not compile: %w", rec.Revision, err)
	}
	return snap, cachedPolicy{rec, sha256.Sum256(rec.Document)}, nil
}

// RefreshOnce fetches the upstream's document and, when it changed and is
// valid, persists it and swaps it in. On any failure the current policy keeps
// serving and the error is recorded in the status and returned. Concurrent
// calls share one fetch.
func (r *Refresher) RefreshOnce(ctx context.Context) error {
	_, err, _ := r.flight.Do("refresh", func() (any, error) { return nil, r.refresh(ctx) })
	return err
}

func (r *Refresher) refresh(ctx context.Context) error {
	defer r.checkStale()
	r.retryUnsaved()
	r.mu.Lock()
	etag := r.status.ETag
	r.mu.Unlock()

	doc, err := r.cfg.Upstream.Fetch(ctx, etag)
	now := r.cfg.Now()
	if errors.Is(err, ErrNotModified) {
		r.confirm(now, etag)
		return nil
	}
	if err != nil {
		return r.fail(now, fmt.Errorf("fetch: %w", err))
	}
	sum := sha256.Sum256(doc.Data)
	r.mu.Lock()
	same := r.served != nil && sum == r.contentSum
	lastErr, rejected := r.status.LastError, doc.ETag != "" && doc.ETag == r.rejected
	r.mu.Unlock()
	if same {
		// A new tag on the same bytes: nothing to compile, store or swap.
		r.confirm(now, doc.ETag)
		return nil
	}
	if rejected {
		return r.fail(now, fmt.Errorf("document %s was rejected before: %s", doc.ETag, lastErr))
	}
	snap, err := policyfile.Compile(doc.Data, doc.Format)
	if err != nil {
		r.mu.Lock()
		r.rejected = doc.ETag
		r.mu.Unlock()
		return r.fail(now, err)
	}
	if r.cfg.Cache != nil {
		rec := cache.PolicyRecord{
			Document:  doc.Data,
			Format:    string(doc.Format),
			Revision:  snap.Revision(),
			ETag:      doc.ETag,
			Source:    r.cfg.Upstream.String(),
			FetchedAt: now.UTC(),
		}
		if bin, err := snap.MarshalBinary(); err == nil {
			rec.Snapshot = bin
		}
		if err := r.cfg.Cache.SavePolicy(rec); err != nil {
			// Serving the newer policy matters more than persisting it: it
			// may revoke access. The save is retried on the next refresh.
			r.log.Error("could not persist the new policy; serving it anyway and retrying", "revision", snap.Revision(), "error", err)
			r.mu.Lock()
			r.unsaved = &rec
			r.mu.Unlock()
		}
	}
	r.install(snap, sum, func(st *Status) {
		st.ETag = doc.ETag
		st.FromCache = false
		st.FetchedAt = now
		st.LastSuccess = now
	})
	r.mu.Lock()
	r.status.AttemptsLoaded++
	r.mu.Unlock()
	if len(doc.Data) >= largeDocument {
		// Compiling a large document left gigabytes of garbage; give the
		// memory back now rather than as the scavenger gets to it.
		debug.FreeOSMemory()
	}
	r.log.Info("policy loaded", "revision", snap.Revision(), "etag", doc.ETag,
		"resources", snap.Counts().Resources, "roles", snap.Counts().Roles,
		"organizations", snap.Counts().Organizations, "subjects", snap.Counts().Subjects)
	return nil
}

// install serves snap and records it.
func (r *Refresher) install(snap *pdp.Snapshot, sum [sha256.Size]byte, update func(*Status)) {
	r.cfg.Engine.Swap(snap)
	r.mu.Lock()
	r.served, r.contentSum = snap, sum
	r.status.Loaded = true
	r.status.Withheld = false
	r.status.Revision = snap.Revision()
	r.status.Counts = snap.Counts()
	r.status.LoadedAt = r.cfg.Now()
	r.status.LastError = ""
	r.status.ConsecutiveFailures = 0
	r.retryAfter = 0
	update(&r.status)
	r.mu.Unlock()
	r.cfg.OnChange()
}

// confirm records that the upstream still holds the served document.
func (r *Refresher) confirm(now time.Time, etag string) {
	r.mu.Lock()
	r.status.ETag = etag
	r.status.FetchedAt = now
	r.status.LastSuccess = now
	r.status.FromCache = false // the source confirmed what the cache held
	r.status.AttemptsNotModified++
	r.status.LastError = ""
	r.status.ConsecutiveFailures = 0
	r.retryAfter = 0
	r.mu.Unlock()
}

func (r *Refresher) fail(now time.Time, err error) error {
	r.mu.Lock()
	r.status.LastError = err.Error()
	r.status.LastErrorAt = now
	r.status.ConsecutiveFailures++
	r.status.AttemptsFailed++
	var ra *RetryAfterError
	if errors.As(err, &ra) {
		r.retryAfter = ra.Wait
	}
	loaded := r.status.Loaded
	r.mu.Unlock()
	if loaded {
		r.log.Error("policy refresh failed; keeping the last good policy", "error", err)
	} else {
		r.log.Error("policy refresh failed and no policy is loaded; decisions answer UNAVAILABLE", "error", err)
	}
	return err
}

// checkStale withholds a stale policy (FailWhenStale) or restores a withheld
// one once fresh again.
func (r *Refresher) checkStale() {
	if !r.cfg.FailWhenStale {
		return
	}
	r.mu.Lock()
	stale := r.staleLocked(r.cfg.Now())
	changed := stale != r.status.Withheld
	r.status.Withheld = stale
	served := r.served
	r.mu.Unlock()
	if !changed {
		return
	}
	if stale {
		r.cfg.Engine.Swap(nil)
		r.log.Error("policy is older than max_stale; withholding it: decisions answer UNAVAILABLE until the upstream is reached", "max_stale", r.cfg.MaxStale)
	} else {
		r.cfg.Engine.Swap(served)
		r.log.Info("policy is fresh again; serving it")
	}
	r.cfg.OnChange()
}

func (r *Refresher) retryUnsaved() {
	r.mu.Lock()
	rec := r.unsaved
	r.mu.Unlock()
	if rec == nil {
		return
	}
	if err := r.cfg.Cache.SavePolicy(*rec); err != nil {
		r.log.Error("still cannot persist the policy being served", "revision", rec.Revision, "error", err)
		return
	}
	r.mu.Lock()
	if r.unsaved == rec {
		r.unsaved = nil
	}
	r.mu.Unlock()
}

// Trigger asks Run to refresh now. Triggers that arrive while one is pending
// collapse into one refresh.
func (r *Refresher) Trigger() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

// Run refreshes at once, then every Interval (with jitter), sooner with
// backoff after failures, and on Trigger, until ctx is done. Failures are
// logged and recorded, never fatal.
func (r *Refresher) Run(ctx context.Context) error {
	_ = r.RefreshOnce(ctx)
	t := time.NewTimer(r.NextDelay())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-r.trigger:
		}
		_ = r.RefreshOnce(ctx)
		t.Reset(r.NextDelay())
	}
}

// NextDelay is how long Run waits before the next refresh: the interval with
// jitter after a success; after failures, BackoffBase doubled per
// consecutive failure up to BackoffMax (or longer when the upstream asked
// with Retry-After, up to an hour), with jitter. With FailWhenStale it never
// sleeps past the moment the policy turns stale, so that it is withheld on
// time.
func (r *Refresher) NextDelay() time.Duration {
	r.mu.Lock()
	failures, retryAfter := r.status.ConsecutiveFailures, r.retryAfter
	staleIn := time.Duration(-1)
	if r.cfg.FailWhenStale && r.served != nil && !r.status.Withheld {
		staleIn = r.cfg.MaxStale - r.cfg.Now().Sub(r.status.LastSuccess)
	}
	r.mu.Unlock()

	d := r.cfg.Interval
	if failures > 0 {
		d = r.cfg.BackoffMax
		if failures <= 30 {
			d = min(r.cfg.BackoffBase<<(failures-1), r.cfg.BackoffMax)
		}
		if retryAfter > d {
			d = min(retryAfter, time.Hour)
		}
	}
	if r.cfg.Jitter > 0 {
		d += time.Duration((rand.Float64()*2 - 1) * r.cfg.Jitter * float64(d))
	}
	if staleIn >= 0 && staleIn < d {
		d = staleIn + time.Millisecond
	}
	return max(d, time.Millisecond)
}
