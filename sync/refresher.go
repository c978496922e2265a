package sync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	gosync "sync"
	"time"

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
	// OnLoad, when set, is called after every swap, such as to mark the
	// server ready.
	OnLoad func(*pdp.Snapshot)
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Now defaults to time.Now; tests set it.
	Now func() time.Time
}

// DefaultInterval is the poll interval when Config.Interval is zero.
const DefaultInterval = 5 * time.Minute

// Status describes the policy being served and the last refresh.
type Status struct {
	Source    string
	Loaded    bool
	Revision  string
	ETag      string
	FromCache bool
	LoadedAt  time.Time
	FetchedAt time.Time
	LastError string
	Counts    pdp.Counts
}

// Refresher fetches, validates, persists and swaps in policies. RefreshOnce is
// one step; Run repeats it on a timer and on Trigger.
type Refresher struct {
	cfg     Config
	log     *slog.Logger
	trigger chan struct{}

	// mu guards the fields below. It is never held by a decision: the engine
	// is read through its own atomic pointer.
	mu     gosync.Mutex
	status Status
	// unsaved is an accepted document the cache failed to store; it is
	// retried on every refresh until stored.
	unsaved *cache.PolicyRecord
	// rejected is the tag of the last document that failed to compile, so
	// that an unchanged broken document is not parsed and logged on every
	// poll.
	rejected string
}

// New checks cfg and returns a Refresher.
func New(cfg Config) (*Refresher, error) {
	var errs []error
	if cfg.Upstream == nil {
		errs = append(errs, errors.New("sync: Config.Upstream is required"))
	}
	if cfg.Engine == nil {
		errs = append(errs, errors.New("sync: Config.Engine is required"))
	}
	if cfg.Interval < 0 {
		errs = append(errs, fmt.Errorf("sync: Config.Interval is %v; it must not be negative", cfg.Interval))
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

// Status returns a copy of the current status.
func (r *Refresher) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// WarmStart serves the cached policy, if the cache holds a valid one, so that
// decisions are answered before the upstream is reached. It reports whether a
// policy was loaded. A cached document that no longer compiles is logged and
// skipped, never served.
func (r *Refresher) WarmStart() (bool, error) {
	if r.cfg.Cache == nil {
		return false, nil
	}
	rec, ok, err := r.cfg.Cache.LoadPolicy()
	if err != nil {
		return false, fmt.Errorf("read cached policy: %w", err)
	}
	if !ok {
		return false, nil
	}
	snap, err := policyfile.Compile(rec.Document, policyfile.Format(rec.Format))
	if err != nil {
		return false, fmt.Errorf("cached policy (revision %q) does not compile: %w", rec.Revision, err)
	}
	etag := rec.ETag
	if rec.Source != r.cfg.Upstream.String() {
		etag = "" // a tag from another source says nothing about this one
	}
	r.swap(snap, func(st *Status) {
		st.ETag = etag
		st.FromCache = true
		st.FetchedAt = rec.FetchedAt
	})
	r.log.Info("serving cached policy", "revision", snap.Revision(), "cached_from", rec.Source, "fetched_at", rec.FetchedAt)
	return true, nil
}

// RefreshOnce fetches the upstream's document and, when it changed and is
// valid, persists it and swaps it in. On any failure the current policy keeps
// serving and the error is recorded in the status and returned.
func (r *Refresher) RefreshOnce(ctx context.Context) error {
	r.retryUnsaved()
	r.mu.Lock()
	etag := r.status.ETag
	r.mu.Unlock()

	doc, err := r.cfg.Upstream.Fetch(ctx, etag)
	now := r.cfg.Now()
	if errors.Is(err, ErrNotModified) {
		r.mu.Lock()
		r.status.FetchedAt = now
		r.status.FromCache = false // the source confirmed what the cache held
		r.status.LastError = ""
		r.mu.Unlock()
		return nil
	}
	if err != nil {
		return r.fail(fmt.Errorf("fetch: %w", err))
	}
	r.mu.Lock()
	lastErr, seen := r.status.LastError, doc.ETag != "" && doc.ETag == r.rejected
	r.mu.Unlock()
	if seen {
		return fmt.Errorf("document %s was rejected before: %s", doc.ETag, lastErr)
	}
	snap, err := policyfile.Compile(doc.Data, doc.Format)
	if err != nil {
		r.mu.Lock()
		r.rejected = doc.ETag
		r.mu.Unlock()
		return r.fail(err)
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
		if err := r.cfg.Cache.SavePolicy(rec); err != nil {
			// Serving the newer policy matters more than persisting it: it
			// may revoke access. The save is retried on the next refresh.
			r.log.Error("could not persist the new policy; serving it anyway and retrying", "revision", snap.Revision(), "error", err)
			r.mu.Lock()
			r.unsaved = &rec
			r.mu.Unlock()
		}
	}
	r.swap(snap, func(st *Status) {
		st.ETag = doc.ETag
		st.FromCache = false
		st.FetchedAt = now
	})
	r.log.Info("policy loaded", "revision", snap.Revision(), "etag", doc.ETag,
		"resources", snap.Counts().Resources, "roles", snap.Counts().Roles,
		"organizations", snap.Counts().Organizations, "subjects", snap.Counts().Subjects)
	return nil
}

func (r *Refresher) swap(snap *pdp.Snapshot, update func(*Status)) {
	r.cfg.Engine.Swap(snap)
	r.mu.Lock()
	r.status.Loaded = true
	r.status.Revision = snap.Revision()
	r.status.Counts = snap.Counts()
	r.status.LoadedAt = r.cfg.Now()
	r.status.LastError = ""
	update(&r.status)
	r.mu.Unlock()
	if r.cfg.OnLoad != nil {
		r.cfg.OnLoad(snap)
	}
}

func (r *Refresher) fail(err error) error {
	r.mu.Lock()
	r.status.LastError = err.Error()
	loaded := r.status.Loaded
	r.mu.Unlock()
	if loaded {
		r.log.Error("policy refresh failed; keeping the last good policy", "error", err)
	} else {
		r.log.Error("policy refresh failed and no policy is loaded; decisions answer UNAVAILABLE", "error", err)
	}
	return err
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

// Run refreshes at once, then every Interval (with jitter) and on Trigger,
// until ctx is done. Refresh failures are logged and recorded, never fatal.
func (r *Refresher) Run(ctx context.Context) error {
	_ = r.RefreshOnce(ctx)
	t := time.NewTimer(r.nextDelay())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-r.trigger:
		}
		_ = r.RefreshOnce(ctx)
		t.Reset(r.nextDelay())
	}
}

func (r *Refresher) nextDelay() time.Duration {
	d := r.cfg.Interval
	if r.cfg.Jitter > 0 {
		d += time.Duration((rand.Float64()*2 - 1) * r.cfg.Jitter * float64(d))
	}
	return d
}
