package refresh

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	gosync "sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/rolecall/rolecall/bundle"
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
	// MaxRevokeRatio, when above 0, holds back a fetched policy that would
	// remove more than this share of the served policy's grants (a subject,
	// organization or none, resource and action that Decide allows): it is
	// neither persisted nor served, the last good policy keeps serving, and
	// Status.Held says why until Accept installs it or the upstream changes
	// again. At most 1; 0 (the default) is off.
	MaxRevokeRatio float64
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
	// Format is what the served policy was read from: "snapshot" for a
	// published bundle, else the document's syntax.
	Format string
	// PublishedAt and Publisher say when and by whom the served policy was
	// first published, for a policy from a rolecall publisher (a bundle or
	// a hub's JSON); zero and "" otherwise.
	PublishedAt time.Time
	Publisher   string
	// SigningKey is the id of the key that signed the served bundle, ""
	// when unsigned; Verified says the signature was checked with the
	// configured public key.
	SigningKey string
	Verified   bool
	// PropagationDelay is how long after PublishedAt this process started
	// serving the policy: the distribution tier's latency. Zero when unknown
	// or when the policy came from the cache.
	PropagationDelay time.Duration
	// LongPolling is set while a long-poll fetch is open or the upstream
	// held the last one (a rolecall publisher), instead of being polled on
	// the interval.
	LongPolling bool
	// LastChange is the effective change the served policy made against the
	// one it replaced; nil for the first policy of this process (a warm
	// start's, or the first fetched without one).
	LastChange *Change
	// Held is the fetched policy held back by Config.MaxRevokeRatio; nil
	// when none is. While one is held, LastError gives its reason.
	Held *Held
	// Changes sums the LastChange of every policy installed in this
	// process, and PoliciesHeld counts the policies held back (each once,
	// however often fetched again), for metrics.
	Changes      ChangeCounts
	PoliciesHeld uint64
	// Cumulative refresh outcomes, for metrics: a new policy loaded, the
	// upstream confirming the one served, a fetched policy held back (or
	// still held), and failures.
	AttemptsLoaded, AttemptsNotModified, AttemptsHeld, AttemptsFailed uint64
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
	// held is the policy held back by MaxRevokeRatio, or nil.
	held *heldCandidate

	// fetchMu serializes refreshes: a long poll and an urgent refresh never
	// install at the same time. cancelWait ends a long poll held open (nil
	// when none is); urgent counts refreshes waiting for it to end.
	fetchMu    gosync.Mutex
	cancelWait context.CancelFunc
	urgent     int
	// waiting is set while a long-poll fetch is open.
	waiting bool
	// bundleFloor is when the newest bundle served was published: no bundle
	// published before it is installed (a replay, a stale copy).
	bundleFloor time.Time
}

// maxFutureSkew is how far in this host's future a bundle's publish time may
// be. Further means the publisher's clock is wrong; serving the bundle would
// make every honest bundle after it look like a replay.
const maxFutureSkew = 5 * time.Minute

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
	if !(cfg.MaxRevokeRatio >= 0 && cfg.MaxRevokeRatio <= 1) {
		errs = append(errs, fmt.Errorf("refresh: Config.MaxRevokeRatio is %v; want 0 (off) to 1", cfg.MaxRevokeRatio))
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
	st.LongPolling = st.LongPolling || r.waiting
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
	pol := rec.loaded
	r.install(pol, func(st *Status) {
		st.ETag = etag
		st.FromCache = true
		st.FetchedAt = rec.FetchedAt
		st.LastSuccess = rec.FetchedAt
		st.PropagationDelay = 0
	})
	r.log.Info("serving cached policy", "revision", snap.Revision(), "cached_from", rec.Source, "fetched_at", rec.FetchedAt)
	r.checkStale()
	return true, nil
}

// cachedPolicy is what a warm start knows of the cached document.
type cachedPolicy struct {
	cache.PolicyRecord
	loaded loaded
}

// cachedSnapshot reads the cached policy: its binary snapshot when there is
// a good one (fast, even for millions of subjects), else its document,
// compiled, or its bundle, opened. It returns a nil snapshot when the cache
// holds no policy. With a public key only a bundle signed with it is used.
func (r *Refresher) cachedSnapshot() (*pdp.Snapshot, cachedPolicy, error) {
	// The cached binary snapshot is the fast path, unless the document is
	// needed anyway: a publisher publishes it as JSON, and with a public key
	// only a verified bundle is served.
	var snap *pdp.Snapshot
	var rec cache.PolicyRecord
	var ok bool
	var err error
	if r.cfg.PublicKey == nil && r.cfg.OnInstall == nil {
		rec, ok, err = r.cfg.Cache.LoadSnapshot(func(b []byte) (err error) {
			snap, err = pdp.UnmarshalSnapshot(b)
			return err
		})
	}
	if err == nil && ok && snap.Revision() == rec.Revision {
		// The document's digest is stored beside it; reading it is cheap.
		if sum, err := r.cfg.Cache.PolicyDigest(); err == nil {
			l := loaded{snap: snap, sum: sum, format: policyfile.Format(rec.Format), publishedAt: rec.FetchedAt}
			return snap, cachedPolicy{rec, l}, nil
		}
	}
	if err != nil {
		r.log.Warn("cached policy snapshot unusable; reading the cached document", "error", err)
	}
	rec, ok, err = r.cfg.Cache.LoadPolicy()
	if err != nil {
		return nil, cachedPolicy{}, fmt.Errorf("read cached policy: %w", err)
	}
	if !ok {
		return nil, cachedPolicy{}, nil
	}
	doc := Document{Data: rec.Document, Format: policyfile.Format(rec.Format), ETag: rec.ETag}
	l, err := r.load(doc, rec.FetchedAt)
	if err != nil {
		return nil, cachedPolicy{}, fmt.Errorf("cached policy (revision %q) not usable: %w", rec.Revision, err)
	}
	return l.snap, cachedPolicy{rec, l}, nil
}

// loaded is a policy read from a document or bundle, ready to install.
type loaded struct {
	snap *pdp.Snapshot
	// binary is the snapshot in binary form when at hand (a bundle's, or
	// marshalled for the cache); nil otherwise.
	binary []byte
	// sum identifies the content: the document's SHA-256, or the bundle's
	// snapshot digest, the same for every publisher of that policy.
	sum         [sha256.Size]byte
	doc         Document
	format      policyfile.Format
	publishedAt time.Time
	publisher   string
	keyID       string
	verified    bool
	// bundleRevision is the revision the bundle's envelope names.
	bundleRevision string
	// published is set for a policy from a rolecall publisher, whose
	// publish time measures propagation.
	published bool
}

// identify opens a bundle (checking its digest and, with a public key, its
// signature) or hashes a document, without compiling anything: enough to
// tell whether the content is the one served.
func (r *Refresher) identify(doc Document, fetchedAt time.Time) (loaded, error) {
	l := loaded{doc: doc, format: doc.Format, publishedAt: fetchedAt}
	if doc.Format != FormatSnapshot {
		if r.cfg.PublicKey != nil {
			return loaded{}, fmt.Errorf("%w: a public key is configured (policy.public_key_file), so only snapshot bundles signed with it (key %s) are accepted; the upstream sent a %s document", bundle.ErrUnsigned, bundle.KeyID(r.cfg.PublicKey), doc.Format)
		}
		if doc.SHA256 != nil {
			l.sum = *doc.SHA256
		} else {
			l.sum = sha256.Sum256(doc.Data)
		}
		// A document's publish time is an unsigned header: it measures
		// propagation, never what a later bundle is held to, and one far in
		// the future is ignored.
		if !doc.PublishedAt.IsZero() && doc.PublishedAt.Sub(fetchedAt) <= maxFutureSkew {
			l.publishedAt, l.published = doc.PublishedAt, true
		}
		return l, nil
	}
	b, err := bundle.Open(doc.Data, r.cfg.PublicKey)
	if err != nil {
		return loaded{}, err
	}
	l.binary, l.sum = b.Snapshot, b.Digest
	l.publishedAt, l.publisher, l.published = b.PublishedAt, b.Publisher, true
	l.keyID, l.verified, l.bundleRevision = b.KeyID, b.Verified, b.Revision
	return l, nil
}

// load identifies doc and decodes it: a bundle's snapshot is unmarshalled
// and checked, a document parsed, validated and compiled.
func (r *Refresher) load(doc Document, fetchedAt time.Time) (loaded, error) {
	l, err := r.identify(doc, fetchedAt)
	if err != nil {
		return loaded{}, err
	}
	return l, r.decode(&l)
}

func (r *Refresher) decode(l *loaded) (err error) {
	if l.format != FormatSnapshot {
		l.snap, err = policyfile.Compile(l.doc.Data, l.doc.Format)
		return err
	}
	if l.snap, err = pdp.UnmarshalSnapshot(l.binary); err != nil {
		return err
	}
	if l.snap.Revision() != l.bundleRevision {
		return fmt.Errorf("%w: the bundle says revision %q but its snapshot is revision %q", bundle.ErrBad, l.bundleRevision, l.snap.Revision())
	}
	return nil
}

// RefreshOnce fetches the upstream's document and, when it changed and is
// valid, persists it and swaps it in. On any failure the current policy keeps
// serving and the error is recorded in the status and returned. Concurrent
// calls share one fetch; a long poll held open is ended first, so that an
// urgent refresh (SIGHUP, POST /v1/refresh) never waits on it.
func (r *Refresher) RefreshOnce(ctx context.Context) error {
	r.mu.Lock()
	r.urgentLocked()
	r.mu.Unlock()
	defer r.urgentDone()
	_, err, _ := r.flight.Do("refresh", func() (any, error) { return nil, r.refresh(ctx, 0, nil) })
	return err
}

// Accept installs the held policy of this revision despite MaxRevokeRatio.
// The held policy is not kept in memory (a second compiled policy would
// double a large sidecar's memory), so Accept fetches the upstream again:
// when it still has that revision, it is installed without the guard, as a
// refresh installs; when it has another, that one is refreshed as any new
// policy and Accept returns an *AcceptError saying so. Nothing held, or
// another revision held, is an *AcceptError too. An accept applies to this
// one refresh only, which no other refresh shares.
func (r *Refresher) Accept(ctx context.Context, revision string) error {
	r.mu.Lock()
	err := r.acceptableLocked(revision)
	if err == nil {
		r.urgentLocked()
	}
	r.mu.Unlock()
	if err != nil {
		return err
	}
	defer r.urgentDone()
	return r.refresh(ctx, 0, &revision)
}

// urgentLocked ends a long poll held open and keeps new ones from starting
// until urgentDone.
func (r *Refresher) urgentLocked() {
	r.urgent++
	if r.cancelWait != nil {
		r.cancelWait()
	}
}

func (r *Refresher) urgentDone() {
	r.mu.Lock()
	r.urgent--
	r.mu.Unlock()
}

// longPoll is one refresh through a long-poll fetch. A poll ended by
// RefreshOnce or Trigger is neither a success nor a failure.
func (r *Refresher) longPoll(ctx context.Context, wait time.Duration) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.mu.Lock()
	if r.urgent > 0 {
		r.mu.Unlock()
		return
	}
	r.cancelWait = cancel
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.cancelWait = nil
		r.mu.Unlock()
	}()
	_ = r.refresh(wctx, wait, nil)
}

// refresh fetches, holding the fetch open up to wait when the upstream can
// long-poll, and installs what changed. With accept, the held policy of that
// revision is installed despite MaxRevokeRatio.
func (r *Refresher) refresh(ctx context.Context, wait time.Duration, accept *string) error {
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	defer r.checkStale()
	var large bool
	err := r.fetchAndInstall(ctx, wait, accept, &large)
	if large {
		// A large document was installed: it, the marshalled snapshot, the
		// old policy and what reading them left are garbage now. Give the
		// memory back at once rather than as the scavenger gets to it;
		// here, where nothing refers to the document any more, or the
		// collection would keep it.
		debug.FreeOSMemory()
	}
	return err
}

// fetchAndInstall is refresh under fetchMu. It sets returnMemory when it
// read a large document.
func (r *Refresher) fetchAndInstall(ctx context.Context, wait time.Duration, accept *string, returnMemory *bool) error {
	r.retryUnsaved()
	r.mu.Lock()
	etag := r.status.ETag
	if accept != nil {
		// Another refresh may have ended the hold since Accept looked.
		if err := r.acceptableLocked(*accept); err != nil {
			r.mu.Unlock()
			return err
		}
	}
	// While a policy is held, ask whether the upstream still has it: an
	// upstream that does answers "not modified" for the price of a 304 or a
	// stat. An accept asks for the upstream's policy whatever it is.
	askedHeld := accept == nil && r.held != nil && r.held.etag != ""
	if askedHeld {
		etag = r.held.etag
	}
	r.mu.Unlock()
	// gone is Accept's answer when the upstream no longer has the revision.
	gone := func(has string) error {
		if accept == nil {
			return nil
		}
		return &AcceptError{fmt.Sprintf("revision %q was not installed: the upstream no longer has it, it has %s", *accept, has)}
	}

	var doc Document
	var err error
	if lp, ok := r.cfg.Upstream.(LongPollUpstream); ok && wait > 0 {
		var kept bool
		r.mu.Lock()
		r.waiting = true
		r.mu.Unlock()
		doc, kept, err = lp.FetchWait(ctx, etag, wait)
		r.mu.Lock()
		r.waiting = false
		r.mu.Unlock()
		if errors.Is(ctx.Err(), context.Canceled) {
			return nil // ended by an urgent refresh, a trigger or shutdown
		}
		r.mu.Lock()
		r.status.LongPolling = kept && (err == nil || errors.Is(err, ErrNotModified))
		r.mu.Unlock()
	} else {
		doc, err = r.cfg.Upstream.Fetch(ctx, etag)
	}
	now := r.cfg.Now()
	if errors.Is(err, ErrNotModified) {
		if askedHeld {
			return r.stillHeld(now, "")
		}
		r.confirm(now, etag)
		return gone("the policy served")
	}
	if err != nil {
		return r.fail(now, fmt.Errorf("fetch: %w", err))
	}
	// What a new policy costs past its fetch, for the log: reading it
	// (opening a bundle, or parsing, validating and compiling a document)
	// and persisting it.
	fetched := time.Now()
	l, err := r.identify(doc, now)
	if err != nil {
		return r.fail(now, err)
	}
	r.mu.Lock()
	served := r.served
	same := served != nil && l.sum == r.contentSum
	// The held policy again: known without compiling it, unless accepted.
	heldAgain := accept == nil && r.held != nil && l.sum == r.held.sum
	// Any other content ends a hold, whatever becomes of it: the upstream
	// no longer has the held policy.
	moved := r.held != nil && l.sum != r.held.sum
	lastErr, rejected := r.status.LastError, doc.ETag != "" && doc.ETag == r.rejected
	floor := r.bundleFloor
	r.mu.Unlock()
	if same {
		// A new tag on the same content (another hub replica's bundle, a
		// touched file): nothing to compile, store or swap.
		r.confirm(now, doc.ETag)
		return gone("the policy served")
	}
	if heldAgain {
		return r.stillHeld(now, doc.ETag)
	}
	fail := func(err error) error {
		if moved {
			r.mu.Lock()
			r.dropHoldLocked()
			r.mu.Unlock()
		}
		return r.fail(now, err)
	}
	if rejected {
		return fail(fmt.Errorf("document %s was rejected before: %s", doc.ETag, lastErr))
	}
	if l.format == FormatSnapshot {
		if !floor.IsZero() && l.publishedAt.Before(floor) {
			return fail(fmt.Errorf("refusing a snapshot bundle (revision %q) published at %s, before the one served (published at %s): a replayed or rolled-back bundle, or a publisher behind its peers",
				l.bundleRevision, l.publishedAt.Format(time.RFC3339Nano), floor.Format(time.RFC3339Nano)))
		}
		if ahead := l.publishedAt.Sub(now); ahead > maxFutureSkew {
			return fail(fmt.Errorf("refusing a snapshot bundle (revision %q) published at %s, %s ahead of this host's clock: check the publisher's clock",
				l.bundleRevision, l.publishedAt.Format(time.RFC3339Nano), ahead.Round(time.Second)))
		}
	}
	size := len(doc.Data)
	// A large document is written to the cache while it is read, on the
	// other core: the disk's time hides behind the compile's, and the
	// document's bytes can go before the snapshot is marshalled and stored.
	var staged chan stagedDocument
	if r.cfg.Cache != nil && size >= cache.LargeDocument {
		// The digest of the bytes: the upstream's, or a document's sum (a
		// bundle's is its snapshot's), or computed on that core too.
		digest := doc.SHA256
		if digest == nil && l.format != FormatSnapshot {
			digest = &l.sum
		}
		staged = make(chan stagedDocument, 1)
		go func(data []byte, sum *[sha256.Size]byte) {
			if sum == nil {
				s := sha256.Sum256(data)
				sum = &s
			}
			st, err := r.cfg.Cache.StageDocument(data, *sum)
			staged <- stagedDocument{st, err}
		}(doc.Data, digest)
	}
	if err := r.decode(&l); err != nil {
		if staged != nil {
			<-staged // unnamed, the file goes at the next save
		}
		r.mu.Lock()
		r.rejected = doc.ETag
		r.mu.Unlock()
		return fail(err)
	}
	decoded := time.Now()
	// What the new policy changes, against the one served; a suspicious
	// change is held back before anything is persisted or served.
	var change *Change
	accepted := accept != nil && *accept == l.snap.Revision()
	if served != nil {
		change = r.compare(served, l.snap, now)
		if reason := r.suspicious(change); reason != "" && !accepted {
			if staged != nil {
				<-staged // unnamed, the file goes at the next save
			}
			*returnMemory = size >= largeDocument
			return r.hold(now, l, doc.ETag, change, reason)
		}
	}
	compared := time.Now()
	// Persist first, then serve: a policy served and then lost in a crash
	// would come back older after a restart, an access it revoked granted
	// again.
	if r.cfg.Cache != nil {
		rec := cache.PolicyRecord{
			Document:  doc.Data,
			Format:    string(doc.Format),
			Revision:  l.snap.Revision(),
			ETag:      doc.ETag,
			Source:    r.cfg.Upstream.String(),
			FetchedAt: now.UTC(),
		}
		if staged != nil {
			// On an error the save writes the document itself, and says
			// what is wrong.
			if st := <-staged; st.err == nil {
				rec.Staged, rec.Document = st.doc, nil
				if r.cfg.OnInstall == nil && size >= largeDocument {
					// Nothing needs the bytes any more: collect them now,
					// before the snapshot's binary form and the cache's
					// copy of it are made.
					doc.Data, l.doc.Data = nil, nil
					runtime.GC()
				}
			}
		}
		// A bundle is stored as it came (its signature is checked again at
		// a warm start); a document with its compiled snapshot beside it.
		if l.format != FormatSnapshot {
			if bin, err := l.snap.MarshalBinary(); err == nil {
				rec.Snapshot, l.binary = bin, bin
			}
		}
		err := r.cfg.Cache.SavePolicy(rec)
		r.mu.Lock()
		// Either this record is pending or it is stored: an older pending
		// one must never be retried over it.
		r.unsaved = nil
		if err != nil {
			// Serving the newer policy matters more than persisting it: it
			// may revoke access. The save is retried on the next refresh.
			r.log.Error("could not persist the new policy; serving it anyway and retrying", "revision", l.snap.Revision(), "error", err)
			r.unsaved = &rec
		}
		r.mu.Unlock()
	}
	persisted := time.Now()
	// Propagation ends when the policy serves; a policy not from a
	// publisher is published, for this refresher's own publisher, now.
	installedAt := r.cfg.Now()
	if !l.published {
		l.publishedAt = installedAt
	}
	delay := max(installedAt.Sub(l.publishedAt), 0)
	r.install(l, func(st *Status) {
		st.ETag = doc.ETag
		st.FromCache = false
		st.FetchedAt = now
		st.LastSuccess = now
		st.PropagationDelay = 0
		if l.published {
			st.PropagationDelay = delay
		}
		st.LastChange = change
		if change != nil {
			st.Changes.add(change.Totals)
		}
	})
	r.mu.Lock()
	r.status.AttemptsLoaded++
	r.mu.Unlock()
	args := []any{"revision", l.snap.Revision(), "etag", doc.ETag, "format", l.format,
		"resources", l.snap.Counts().Resources, "roles", l.snap.Counts().Roles,
		"organizations", l.snap.Counts().Organizations, "subjects", l.snap.Counts().Subjects,
		"bytes", size, "decode", decoded.Sub(fetched).Round(time.Millisecond), "compare", compared.Sub(decoded).Round(time.Millisecond),
		"persist", persisted.Sub(compared).Round(time.Millisecond)}
	if l.published {
		args = append(args, "published_at", l.publishedAt, "publisher", l.publisher, "propagation_delay", delay)
	}
	if l.format == FormatSnapshot {
		args = append(args, "signing_key", l.keyID, "verified", l.verified)
	}
	r.log.Info("policy loaded", args...)
	if accepted && change != nil && r.suspicious(change) != "" {
		r.log.Warn("held policy accepted: installed despite policy.max_revoke_ratio", "revision", l.snap.Revision())
	}
	*returnMemory = size >= largeDocument
	if accept != nil && !accepted {
		return gone(fmt.Sprintf("revision %q, installed as any new policy", l.snap.Revision()))
	}
	return nil
}

// stagedDocument is what Cache.StageDocument returned.
type stagedDocument struct {
	doc *cache.StagedDocument
	err error
}

// install serves l and records it.
func (r *Refresher) install(l loaded, update func(*Status)) {
	r.cfg.Engine.Swap(l.snap)
	r.mu.Lock()
	r.served, r.contentSum = l.snap, l.sum
	r.status.Loaded = true
	r.status.Withheld = false
	r.status.Revision = l.snap.Revision()
	r.status.Counts = l.snap.Counts()
	r.status.LoadedAt = r.cfg.Now()
	r.status.LastError = ""
	r.status.ConsecutiveFailures = 0
	r.status.Format = string(l.format)
	r.status.PublishedAt, r.status.Publisher = time.Time{}, ""
	if l.published {
		r.status.PublishedAt, r.status.Publisher = l.publishedAt, l.publisher
	}
	if l.format == FormatSnapshot {
		r.bundleFloor = l.publishedAt
	}
	r.status.SigningKey, r.status.Verified = l.keyID, l.verified
	r.retryAfter = 0
	r.dropHoldLocked()
	update(&r.status)
	r.mu.Unlock()
	// The publisher first, so that what OnChange reports (a withheld policy
	// served again) is already the new policy there.
	if r.cfg.OnInstall != nil {
		r.cfg.OnInstall(Installed{Snapshot: l.snap, Binary: l.binary, Document: l.doc, PublishedAt: l.publishedAt, Publisher: l.publisher})
	}
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
	// The upstream has the served policy again: nothing is held.
	r.dropHoldLocked()
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
	r.mu.Lock()
	if r.cancelWait != nil {
		r.cancelWait()
	}
	r.mu.Unlock()
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

// Run refreshes at once, then every Interval (with jitter), sooner with
// backoff after failures, and on Trigger, until ctx is done. Failures are
// logged and recorded, never fatal.
//
// While the upstream long-polls (a rolecall publisher honouring
// Prefer: wait), the next fetch starts as soon as one ends, so a change
// arrives as soon as it is published; a publisher that stops holding
// fetches puts the refresher back on its interval.
func (r *Refresher) Run(ctx context.Context) error {
	// Against an upstream that can long-poll, every timed refresh asks to
	// wait a second at most: a publisher answers within it (at once when
	// the policy changed or nothing is served) and says that it
	// long-polls; any other server answers at once and stays on the
	// interval. Once a fetch was held, the next one is a full long poll.
	probe := min(firstWait, r.cfg.LongPollWait)
	timed := func() {
		if r.canAskToWait() {
			r.longPoll(ctx, probe)
		} else {
			_ = r.RefreshOnce(ctx)
		}
	}
	timed()
	t := time.NewTimer(r.NextDelay())
	defer t.Stop()
	for {
		if r.canLongPoll() {
			start := r.cfg.Now()
			r.longPoll(ctx, r.cfg.LongPollWait)
			// A publisher answering at once over and over (a busy source,
			// a misbehaving proxy) is not polled in a tight loop.
			select {
			case <-ctx.Done():
				return nil
			case <-r.trigger:
				_ = r.RefreshOnce(ctx)
			case <-time.After(max(minLongPollGap-r.cfg.Now().Sub(start), 0)):
				// A trigger that ended the poll as the gap ran out is not left
				// waiting behind the next one.
				select {
				case <-r.trigger:
					_ = r.RefreshOnce(ctx)
				default:
				}
			}
			continue
		}
		t.Reset(r.NextDelay())
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			timed()
		case <-r.trigger:
			_ = r.RefreshOnce(ctx)
		}
	}
}

// firstWait is what a fetch that is not yet a long poll asks a server to
// wait: long enough for a publisher to say it long-polls.
const firstWait = time.Second

// canAskToWait reports whether fetches may ask the upstream to hold them.
func (r *Refresher) canAskToWait() bool {
	_, ok := r.cfg.Upstream.(LongPollUpstream)
	return ok && r.cfg.LongPollWait > 0
}

// minLongPollGap is the least time from one long poll's start to the next.
const minLongPollGap = 100 * time.Millisecond

// canLongPoll reports whether the next refresh is a long poll: the
// upstream held the last fetch, which succeeded (after failures the backoff
// applies), and a policy is served (a wait needs its tag).
func (r *Refresher) canLongPoll() bool {
	if !r.canAskToWait() {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status.LongPolling && r.served != nil && r.status.ETag != "" && r.status.ConsecutiveFailures == 0
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
