package refresh_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rolecall/rolecall/bundle"
	"github.com/rolecall/rolecall/cache"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
	"github.com/rolecall/rolecall/refresh"
	"github.com/rolecall/rolecall/refresh/internal/refreshtest"
)

var (
	t0     = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	hubKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	hubPub = hubKey.Public().(ed25519.PublicKey)
)

// seal compiles doc and seals it as a hub would publish it at at.
func seal(t *testing.T, doc string, at time.Time, key ed25519.PrivateKey) []byte {
	t.Helper()
	snap, err := policyfile.Compile([]byte(doc), policyfile.YAML)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := snap.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Seal(bin, bundle.Meta{Revision: snap.Revision(), PublishedAt: at, Publisher: "hub-0"}, key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bundles is an upstream answering with whatever document is set, tagged
// with its content; it can hold fetches open like a rolecall publisher.
type bundles struct {
	mu      gosync.Mutex
	doc     refresh.Document
	err     error
	holds   bool          // answers FetchWait as a long-polling server
	changed chan struct{} // closed when doc changes
	fetches int
	waits   int
}

// count returns the fetches and long polls so far.
func (u *bundles) count() (fetches, waits int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.fetches, u.waits
}

func newBundles() *bundles { return &bundles{changed: make(chan struct{})} }

func (u *bundles) String() string { return "https://hub.test/v1/policy" }

func (u *bundles) set(data []byte, format policyfile.Format) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.doc = refresh.Document{Data: data, Format: format, ETag: refresh.ContentTag(data)}
	close(u.changed)
	u.changed = make(chan struct{})
}

func (u *bundles) Fetch(_ context.Context, etag string) (refresh.Document, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.fetches++
	if u.err != nil {
		return refresh.Document{}, u.err
	}
	if etag != "" && etag == u.doc.ETag {
		return refresh.Document{}, refresh.ErrNotModified
	}
	return u.doc, nil
}

func (u *bundles) FetchWait(ctx context.Context, etag string, wait time.Duration) (refresh.Document, bool, error) {
	u.mu.Lock()
	u.waits++
	holds, changed, current := u.holds, u.changed, u.doc.ETag
	u.mu.Unlock()
	if holds && etag == current {
		select {
		case <-changed:
		case <-time.After(wait):
		case <-ctx.Done():
			return refresh.Document{}, holds, ctx.Err()
		}
	}
	doc, err := u.Fetch(ctx, etag)
	return doc, holds, err
}

type bundleRig struct {
	up       *bundles
	engine   *pdp.Engine
	cache    *cache.Cache
	ref      *refresh.Refresher
	now      time.Time
	installs []refresh.Installed
}

func newBundleRig(t *testing.T, key ed25519.PublicKey) *bundleRig {
	t.Helper()
	r := &bundleRig{up: newBundles(), engine: &pdp.Engine{}, now: t0.Add(time.Second)}
	r.cache = refreshtest.OpenCache(t, filepath.Join(t.TempDir(), "rolecall.db"))
	r.ref = r.refresher(t, key)
	return r
}

func (r *bundleRig) refresher(t *testing.T, key ed25519.PublicKey) *refresh.Refresher {
	t.Helper()
	ref, err := refresh.New(refresh.Config{
		Upstream: r.up, Engine: r.engine, Cache: r.cache, PublicKey: key,
		Interval: time.Minute, Jitter: -1, LongPollWait: 30 * time.Second,
		Now:       func() time.Time { return r.now },
		OnInstall: func(in refresh.Installed) { r.installs = append(r.installs, in) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func (r *bundleRig) revision() string {
	s := r.engine.Snapshot()
	if s == nil {
		return ""
	}
	return s.Revision()
}

func TestBundleInstalledWithoutCompiling(t *testing.T) {
	r := newBundleRig(t, hubPub)
	r.up.set(seal(t, goodV1, t0, hubKey), refresh.FormatSnapshot)
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r.revision() != "v1" {
		t.Fatalf("serving %q, want v1", r.revision())
	}
	st := r.ref.Status()
	if st.Format != "snapshot" || !st.PublishedAt.Equal(t0) || st.Publisher != "hub-0" ||
		st.SigningKey != bundle.KeyID(hubPub) || !st.Verified || st.PropagationDelay != time.Second {
		t.Fatalf("status = %+v; want a verified snapshot from hub-0 published at %v, 1s propagation", st, t0)
	}
	if len(r.installs) != 1 || r.installs[0].Document.Format != refresh.FormatSnapshot || r.installs[0].Binary == nil || r.installs[0].Publisher != "hub-0" {
		t.Fatalf("OnInstall got %+v", r.installs)
	}
	// The bundle is cached as it came, and a restart opens it again with
	// the key: the policy and its publish time survive.
	rec, ok, err := r.cache.LoadPolicy()
	if err != nil || !ok || rec.Format != "snapshot" || !bundle.IsBundle(rec.Document) {
		t.Fatalf("cached %q %v %v, want the bundle", rec.Format, ok, err)
	}
	r2 := &bundleRig{up: r.up, engine: &pdp.Engine{}, cache: r.cache, now: r.now}
	ref2 := r2.refresher(t, hubPub)
	if ok, err := ref2.WarmStart(); !ok || err != nil {
		t.Fatalf("WarmStart = %v, %v", ok, err)
	}
	if st := ref2.Status(); r2.revision() != "v1" || !st.FromCache || !st.PublishedAt.Equal(t0) || !st.Verified {
		t.Fatalf("after a restart: serving %q, status %+v", r2.revision(), st)
	}
	// A replayed older bundle is refused after the restart too.
	r.up.set(seal(t, goodV2, t0.Add(-time.Minute), hubKey), refresh.FormatSnapshot)
	if err := ref2.RefreshOnce(t.Context()); err == nil || !strings.Contains(err.Error(), "before the one served") {
		t.Fatalf("older bundle after a restart: %v", err)
	}
	// A warm start with another key refuses the cached bundle: nothing is
	// served rather than an unverified policy.
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	r3 := &bundleRig{up: r.up, engine: &pdp.Engine{}, cache: r.cache, now: r.now}
	if ok, err := r3.refresher(t, other).WarmStart(); ok || !errors.Is(err, bundle.ErrSignature) {
		t.Fatalf("WarmStart with another key = %v, %v; want ErrSignature", ok, err)
	}
	if r3.engine.Snapshot() != nil {
		t.Fatal("a bundle signed with another key is served")
	}
}

// Every bad bundle is refused with a clear error and the last good policy
// keeps serving.
func TestBundleRefused(t *testing.T) {
	good := seal(t, goodV1, t0, hubKey)
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	newer := seal(t, goodV2, t0.Add(time.Minute), hubKey)
	newerSnap := func() []byte {
		snap, _ := policyfile.Compile([]byte(goodV2), policyfile.YAML)
		bin, _ := snap.MarshalBinary()
		bin[7] = pdp.SnapshotVersion + 1
		b, _ := bundle.Seal(bin, bundle.Meta{Revision: "v2", PublishedAt: t0.Add(time.Minute)}, hubKey)
		return b
	}()
	mislabelled := func() []byte {
		snap, _ := policyfile.Compile([]byte(goodV2), policyfile.YAML)
		bin, _ := snap.MarshalBinary()
		b, _ := bundle.Seal(bin, bundle.Meta{Revision: "v9", PublishedAt: t0.Add(time.Minute)}, hubKey)
		return b
	}()
	for _, tc := range []struct {
		name   string
		data   []byte
		format policyfile.Format
		is     error
		msg    string
	}{
		{"unsigned", seal(t, goodV2, t0.Add(time.Minute), nil), refresh.FormatSnapshot, bundle.ErrUnsigned, "only bundles signed with it"},
		{"another key", seal(t, goodV2, t0.Add(time.Minute), other), refresh.FormatSnapshot, bundle.ErrSignature, "signed with key"},
		{"a document", []byte(goodV2), policyfile.YAML, bundle.ErrUnsigned, "the upstream sent a yaml document"},
		{"truncated", newer[:len(newer)-10], refresh.FormatSnapshot, bundle.ErrBad, "truncated"},
		{"corrupted", func() []byte { b := bytes.Clone(newer); b[len(b)-80] ^= 1; return b }(), refresh.FormatSnapshot, bundle.ErrBad, ""},
		{"html", []byte("<html><body>login</body></html>"), refresh.FormatSnapshot, bundle.ErrBad, "not a rolecall policy bundle"},
		{"newer snapshot version", newerSnap, refresh.FormatSnapshot, pdp.ErrNewerSnapshot, "format version 2, this rolecall reads version 1; upgrade rolecall"},
		{"revision mismatch", mislabelled, refresh.FormatSnapshot, bundle.ErrBad, `says revision "v9" but its snapshot is revision "v2"`},
		{"replayed older", seal(t, goodV2, t0.Add(-time.Hour), hubKey), refresh.FormatSnapshot, nil, "before the one served"},
		{"clock far ahead", seal(t, goodV2, t0.Add(3*time.Hour), hubKey), refresh.FormatSnapshot, nil, "ahead of this host's clock: check the publisher's clock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newBundleRig(t, hubPub)
			r.up.set(good, refresh.FormatSnapshot)
			if err := r.ref.RefreshOnce(t.Context()); err != nil {
				t.Fatal(err)
			}
			r.up.set(tc.data, tc.format)
			err := r.ref.RefreshOnce(t.Context())
			if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("RefreshOnce = %v; want %v containing %q", err, tc.is, tc.msg)
			}
			if r.revision() != "v1" || r.ref.Status().LastError != err.Error() {
				t.Fatalf("serving %q with last error %q; want v1 still served and the error recorded", r.revision(), r.ref.Status().LastError)
			}
			if rec, _, _ := r.cache.LoadPolicy(); rec.Revision != "v1" {
				t.Fatalf("the cache holds %q, want v1", rec.Revision)
			}
		})
	}
}

// Another hub replica publishing the same policy later or earlier is the
// same content: confirmed, not installed, never refused as a replay.
func TestBundleSameContentFromAnotherReplica(t *testing.T) {
	r := newBundleRig(t, nil)
	r.up.set(seal(t, goodV1, t0, nil), refresh.FormatSnapshot)
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.up.set(seal(t, goodV1, t0.Add(-time.Second), hubKey), refresh.FormatSnapshot)
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatalf("the same policy from another replica: %v", err)
	}
	if len(r.installs) != 1 || r.ref.Status().AttemptsNotModified != 1 {
		t.Fatalf("installs %d, not-modified %d; want 1 and 1", len(r.installs), r.ref.Status().AttemptsNotModified)
	}
}

// Documents keep working without a key, and a hub's Rolecall-Published-At
// gives their propagation delay.
func TestDocumentPublishedAt(t *testing.T) {
	r := newBundleRig(t, nil)
	r.up.set([]byte(goodV1), policyfile.YAML)
	r.up.doc.PublishedAt = t0
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := r.ref.Status(); st.Format != "yaml" || !st.PublishedAt.Equal(t0) || st.PropagationDelay != time.Second || st.Verified {
		t.Fatalf("status = %+v", st)
	}
	if in := r.installs[0]; in.Document.Format != policyfile.YAML || in.Binary == nil || !in.PublishedAt.Equal(t0) {
		t.Fatalf("OnInstall got %+v", in)
	}
}

// With a long-polling upstream the loop holds a fetch open and installs a
// change as soon as it is published; an urgent refresh does not wait for
// the held fetch.
func TestLongPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newBundleRig(t, nil)
		r.now = time.Time{}
		ref, err := refresh.New(refresh.Config{Upstream: r.up, Engine: r.engine, Interval: time.Hour, Jitter: -1, LongPollWait: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		r.up.holds = true
		r.up.set(seal(t, goodV1, time.Now(), nil), refresh.FormatSnapshot)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- ref.Run(ctx) }()
		// The first fetch has nothing to wait on and is answered at once;
		// the second is held.
		synctest.Wait()
		if fetches, waits := r.up.count(); r.revision() != "v1" || waits != 2 || fetches != 1 {
			t.Fatalf("serving %q after %d fetches and %d long polls; want v1, one answered and one held", r.revision(), fetches, waits)
		}
		r.up.set(seal(t, goodV2, time.Now(), nil), refresh.FormatSnapshot)
		synctest.Wait()
		if r.revision() != "v2" || !ref.Status().LongPolling {
			t.Fatalf("serving %q after a publish (long polling %v), want v2 at once (not after the hour's interval)", r.revision(), ref.Status().LongPolling)
		}
		// An idle publisher answers 304 after the wait; the loop asks again.
		_, before := r.up.count()
		time.Sleep(61 * time.Second)
		synctest.Wait()
		if _, after := r.up.count(); after < before+2 {
			t.Fatalf("%d long polls in 61s of a 30s wait, want 2 more", after-before)
		}
		// RefreshOnce ends the held fetch rather than joining it.
		start := time.Now()
		if err := ref.RefreshOnce(t.Context()); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 0 {
			t.Fatalf("RefreshOnce waited %v for the held long poll", d)
		}
		if st := ref.Status(); st.LastError != "" || st.ConsecutiveFailures != 0 {
			t.Fatalf("ending a long poll counted as a failure: %+v", st)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// A server that does not hold fetches puts the loop on its interval.
func TestLongPollFallsBackToInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newBundleRig(t, nil)
		ref, err := refresh.New(refresh.Config{Upstream: r.up, Engine: r.engine, Interval: time.Minute, Jitter: -1, LongPollWait: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		r.up.set([]byte(goodV1), policyfile.YAML)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- ref.Run(ctx) }()
		time.Sleep(10*time.Minute + time.Second)
		synctest.Wait()
		if n, _ := r.up.count(); n < 10 || n > 12 {
			t.Fatalf("%d fetches in 10 minutes at a 1-minute interval, want about 11", n)
		}
		if ref.Status().LongPolling {
			t.Fatal("status says long polling with a server that does not hold fetches")
		}
		cancel()
		<-done
	})
}

// A hub's JSON carries an unsigned publish time: it measures propagation,
// one far in the future is ignored, and it never becomes what bundles are
// held to.
func TestDocumentPublishedAtIsNotAReplayFloor(t *testing.T) {
	r := newBundleRig(t, nil)
	r.up.set([]byte(goodV1), policyfile.YAML)
	r.up.doc.PublishedAt = t0.Add(6 * time.Hour)
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := r.ref.Status(); !st.PublishedAt.IsZero() || st.PropagationDelay != 0 {
		t.Fatalf("a publish time 6 h ahead was taken: %+v", st)
	}
	// An honest bundle published before that header's time installs.
	r.up.set(seal(t, goodV2, t0, nil), refresh.FormatSnapshot)
	if err := r.ref.RefreshOnce(t.Context()); err != nil || r.revision() != "v2" {
		t.Fatalf("a bundle after a future-dated document: %v, serving %q", err, r.revision())
	}
}

// The publisher hears of a new policy before OnChange reports it, so that
// a withheld policy served again is already the new one there.
func TestOnInstallBeforeOnChange(t *testing.T) {
	var calls []string
	engine := &pdp.Engine{}
	up := newBundles()
	up.set([]byte(goodV1), policyfile.YAML)
	ref, err := refresh.New(refresh.Config{Upstream: up, Engine: engine,
		OnInstall: func(refresh.Installed) { calls = append(calls, "install") },
		OnChange:  func() { calls = append(calls, "change") }})
	if err != nil {
		t.Fatal(err)
	}
	if err := ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if strings.Join(calls, ",") != "install,change" {
		t.Fatalf("callbacks %v, want install then change", calls)
	}
}
