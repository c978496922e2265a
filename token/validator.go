package token

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/rolecall/rolecall/cache"
)

// MaxTokenBytes is the largest token parsed; longer ones are Malformed.
const MaxTokenBytes = 16 << 10

// Options configures a Validator. The zero value is usable.
type Options struct {
	// Cache, when set, persists every fetched key set and provides them at
	// start when an issuer cannot be reached.
	Cache *cache.Cache
	// HTTPClient fetches key sets. Default: a client with a 10 s timeout.
	HTTPClient *http.Client
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
	// UnknownKeyRefetch is the least time between two fetches of one issuer's
	// key set caused by unknown key ids. Default 30 s.
	UnknownKeyRefetch time.Duration
	// VerifiedTokens bounds the cache of verified tokens. Default 10,000;
	// negative disables the cache.
	VerifiedTokens int
	// OnChange, when set, is called after an issuer's key set is installed,
	// such as to update readiness.
	OnChange func()
}

// Request is what a caller expects of a token.
type Request struct {
	// Audience expected; empty means any of the issuer's configured ones.
	Audience string
	// RequiredScopes must all be granted by the token.
	RequiredScopes []string
	// Org, when set, must be the token's organization.
	Org string
	// OrgHint is an organization the caller acts in (an authorization
	// check's) without requiring it of the token: a Logto organization
	// token's audience may match it.
	OrgHint string
}

// Result is the outcome of Validate. An invalid token is a result, not an
// error.
type Result struct {
	Valid  bool
	Error  Code
	Detail string // for people; never holds the token or a secret
	// Claims are set when the signature verified (also when a later check
	// failed, so that callers can log who was refused); nil otherwise.
	Claims *Claims
	// Authorization is how the issuer's authorization checks are decided.
	Authorization Mode
}

// Validator validates tokens from a fixed set of issuers.
type Validator struct {
	issuers  map[string]*issuer
	ordered  []*issuer
	cache    *cache.Cache
	client   *http.Client
	log      *slog.Logger
	now      func() time.Time
	refetch  time.Duration
	verified *verifiedCache
	onChange func()

	// Cumulative counts for metrics, read by Stats.
	results     [KeysUnavailable + 1]atomic.Uint64
	cacheHits   atomic.Uint64
	cacheMisses atomic.Uint64
}

// issuer is one configured issuer and its keys.
type issuer struct {
	cfg  IssuerConfig
	algs map[string]bool
	keys atomic.Pointer[keySet]

	// fetchMu serialises key set fetches: concurrent unknown-kid misses wait
	// for one fetch instead of each starting their own.
	fetchMu     gosync.Mutex
	jwksURL     string
	lastAttempt time.Time // last fetch started, for the unknown-kid rate limit
	nextRefresh time.Time

	statusMu  gosync.Mutex
	lastError string
	fromCache bool

	fetchesOK, fetchesFailed atomic.Uint64
}

// New checks the issuers' configuration (all problems at once) and returns a
// Validator without keys; call LoadCachedKeys, then RefreshKeys or Run.
func New(cfgs []IssuerConfig, opts Options) (*Validator, error) {
	cfgs, err := ValidateConfigs(cfgs)
	if err != nil {
		return nil, err
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.UnknownKeyRefetch == 0 {
		opts.UnknownKeyRefetch = 30 * time.Second
	}
	if opts.VerifiedTokens == 0 {
		opts.VerifiedTokens = 10_000
	}
	v := &Validator{
		issuers:  make(map[string]*issuer, len(cfgs)),
		cache:    opts.Cache,
		client:   opts.HTTPClient,
		log:      opts.Logger,
		now:      opts.Now,
		refetch:  opts.UnknownKeyRefetch,
		verified: newVerifiedCache(opts.VerifiedTokens),
		onChange: opts.OnChange,
	}
	if v.onChange == nil {
		v.onChange = func() {}
	}
	for _, c := range cfgs {
		is := &issuer{cfg: c, algs: make(map[string]bool, len(c.Algorithms)), jwksURL: c.JWKSURL}
		for _, a := range c.Algorithms {
			is.algs[a] = true
		}
		v.issuers[c.Issuer] = is
		v.ordered = append(v.ordered, is)
	}
	return v, nil
}

// LoadCachedKeys installs the key sets stored in the cache, so that tokens
// validate at once after a restart even when issuers are unreachable.
func (v *Validator) LoadCachedKeys() {
	if v.cache == nil {
		return
	}
	for _, is := range v.ordered {
		rec, ok, err := v.cache.LoadKeySet(is.cfg.Issuer)
		if err != nil {
			v.log.Warn("cached key set unreadable", "issuer", is.cfg.Issuer, "error", err)
			continue
		}
		if !ok {
			continue
		}
		ks, _, err := parseKeySet(rec.JWKS, rec.FetchedAt)
		if err != nil {
			v.log.Warn("cached key set unusable", "issuer", is.cfg.Issuer, "error", err)
			continue
		}
		is.keys.Store(ks)
		is.statusMu.Lock()
		is.fromCache = true
		is.statusMu.Unlock()
		v.onChange()
		v.log.Info("using cached key set", "issuer", is.cfg.Issuer, "keys", len(ks.all), "fetched_at", rec.FetchedAt)
	}
}

// RefreshKeys fetches the key set of every issuer whose refresh is due (all
// of them when force is set) and returns the errors joined.
func (v *Validator) RefreshKeys(ctx context.Context, force bool) error {
	var errs []error
	for _, is := range v.ordered {
		is.fetchMu.Lock()
		due := force || !v.now().Before(is.nextRefresh)
		var err error
		if due {
			err = v.fetchLocked(ctx, is)
		}
		is.fetchMu.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Run fetches every key set, then keeps them fresh until ctx is done.
// Failures are logged and keep the keys already held. Call LoadCachedKeys
// first to validate at once after a restart.
func (v *Validator) Run(ctx context.Context) error {
	_ = v.RefreshKeys(ctx, true)
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_ = v.RefreshKeys(ctx, false)
		}
	}
}

// fetchLocked fetches, parses, persists and installs is's key set. The caller
// holds is.fetchMu.
func (v *Validator) fetchLocked(ctx context.Context, is *issuer) error {
	now := v.now()
	is.lastAttempt = now
	err := func() error {
		if is.jwksURL == "" {
			u, err := discover(ctx, v.client, is.cfg.Issuer)
			if err != nil {
				return err
			}
			is.jwksURL = u
		}
		raw, resp, err := fetchJSON(ctx, v.client, is.jwksURL)
		if err != nil {
			return err
		}
		ks, skipped, err := parseKeySet(raw, now)
		if err != nil {
			return fmt.Errorf("%s: %w", is.jwksURL, err)
		}
		for _, s := range skipped {
			v.log.Warn("key skipped", "issuer", is.cfg.Issuer, "detail", s)
		}
		is.nextRefresh = now.Add(cacheLifetime(resp, is.cfg.JWKSRefresh))
		if old := is.keys.Swap(ks); old == nil || string(old.raw) != string(raw) {
			v.verified.clear() // a removed key must not keep its tokens valid
			v.log.Info("key set loaded", "issuer", is.cfg.Issuer, "keys", len(ks.all))
			defer v.onChange()
		}
		if v.cache != nil {
			if err := v.cache.SaveKeySet(cache.KeySetRecord{Issuer: is.cfg.Issuer, JWKS: raw, FetchedAt: now.UTC()}); err != nil {
				v.log.Error("could not persist the key set", "issuer", is.cfg.Issuer, "error", err)
			}
		}
		return nil
	}()
	is.statusMu.Lock()
	defer is.statusMu.Unlock()
	if err != nil {
		is.fetchesFailed.Add(1)
		// Retry a failed fetch sooner than a successful one, but not in a loop.
		is.nextRefresh = now.Add(minKeyRefresh / 5)
		is.lastError = err.Error()
		v.log.Error("key set fetch failed; keeping the keys held", "issuer", is.cfg.Issuer, "error", err)
		return fmt.Errorf("issuer %s: %w", is.cfg.Issuer, err)
	}
	is.fetchesOK.Add(1)
	is.lastError = ""
	is.fromCache = false
	return nil
}

// refetchForUnknownKey fetches is's key set again after a token named a key
// id it does not hold, at most once per UnknownKeyRefetch, so that a flood of
// random key ids causes no flood of fetches. It reports whether a fetch ran.
func (v *Validator) refetchForUnknownKey(ctx context.Context, is *issuer, seen *keySet) bool {
	is.fetchMu.Lock()
	defer is.fetchMu.Unlock()
	if cur := is.keys.Load(); cur != seen {
		return true // another caller fetched while this one waited
	}
	if !is.lastAttempt.IsZero() && v.now().Sub(is.lastAttempt) < v.refetch {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = v.fetchLocked(ctx, is)
	return true
}

// IssuerStatus describes one issuer's keys.
type IssuerStatus struct {
	Issuer    string
	Keys      int
	FetchedAt time.Time
	FromCache bool
	LastError string
}

// Status reports every issuer's keys, in configuration order.
func (v *Validator) Status() []IssuerStatus {
	out := make([]IssuerStatus, 0, len(v.ordered))
	for _, is := range v.ordered {
		st := IssuerStatus{Issuer: is.cfg.Issuer}
		if ks := is.keys.Load(); ks != nil {
			st.Keys, st.FetchedAt = len(ks.all), ks.fetchedAt
		}
		is.statusMu.Lock()
		st.FromCache, st.LastError = is.fromCache, is.lastError
		is.statusMu.Unlock()
		out = append(out, st)
	}
	return out
}

// Ready reports whether every issuer has keys; the reason names the first
// that has none.
func (v *Validator) Ready() (bool, string) {
	for _, is := range v.ordered {
		if is.keys.Load() == nil {
			return false, fmt.Sprintf("no keys for issuer %s", is.cfg.Issuer)
		}
	}
	return true, ""
}

// Stats are cumulative counts since the Validator was made, for metrics.
type Stats struct {
	// Results counts validations by outcome, indexed by Code (OK = valid).
	Results [KeysUnavailable + 1]uint64
	// CacheHits and CacheMisses count verified-token cache lookups.
	CacheHits, CacheMisses uint64
	// Fetches counts key set fetches per issuer, in configuration order.
	Fetches []IssuerFetches
}

// IssuerFetches counts one issuer's key set fetches.
type IssuerFetches struct {
	Issuer     string
	OK, Failed uint64
}

// Stats returns the cumulative counts.
func (v *Validator) Stats() Stats {
	var st Stats
	for i := range v.results {
		st.Results[i] = v.results[i].Load()
	}
	st.CacheHits, st.CacheMisses = v.cacheHits.Load(), v.cacheMisses.Load()
	for _, is := range v.ordered {
		st.Fetches = append(st.Fetches, IssuerFetches{Issuer: is.cfg.Issuer, OK: is.fetchesOK.Load(), Failed: is.fetchesFailed.Load()})
	}
	return st
}
