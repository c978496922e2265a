package refresh_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rolecall/rolecall/cache"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
	"github.com/rolecall/rolecall/refresh"
	"github.com/rolecall/rolecall/refresh/file"
	"github.com/rolecall/rolecall/refresh/internal/refreshtest"
)

const goodV1 = refreshtest.GoodV1

const goodV2 = `
revision: v2
resources: [{id: orders, actions: [read, write]}]
roles: [{id: writer, type: user, permissions: [{resource: orders, actions: ["*"]}]}]
subjects: [{id: alice, roles: [writer]}]
`

// A role granting an action its resource does not define.
const invalid = `
revision: v3
resources: [{id: orders, actions: [read]}]
roles: [{id: writer, type: user, permissions: [{resource: orders, actions: [wrte]}]}]
`

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

type rig struct {
	dir, policy string
	engine      *pdp.Engine
	cache       *cache.Cache
	ref         *refresh.Refresher
	loads       int
	// configure, when set, edits the refresher's config.
	configure func(*refresh.Config)
}

func newRig(t *testing.T, content string) *rig {
	t.Helper()
	dir := t.TempDir()
	r := &rig{dir: dir, policy: filepath.Join(dir, "policy.yaml"), engine: &pdp.Engine{}}
	if content != "" {
		writeFile(t, r.policy, content)
	}
	r.cache = refreshtest.OpenCache(t, filepath.Join(dir, "rolecall.db"))
	r.ref = r.refresher(t)
	return r
}

func (r *rig) refresher(t *testing.T) *refresh.Refresher {
	t.Helper()
	cfg := refresh.Config{
		Upstream: file.New(r.policy),
		Engine:   r.engine,
		Cache:    r.cache,
		Interval: 5 * time.Second,
		Jitter:   -1,
		OnChange: func() { r.loads++ },
	}
	if r.configure != nil {
		r.configure(&cfg)
	}
	ref, err := refresh.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func (r *rig) revision() string {
	if s := r.engine.Snapshot(); s != nil {
		return s.Revision()
	}
	return ""
}

func (r *rig) cachedRevision(t *testing.T) string {
	t.Helper()
	rec, ok, err := r.cache.LoadPolicy()
	if err != nil || !ok {
		t.Fatalf("cache holds no policy: ok=%v err=%v", ok, err)
	}
	return rec.Revision
}

func TestRefreshLoadsPersistsAndSwaps(t *testing.T) {
	r := newRig(t, goodV1)
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r.revision() != "v1" || r.cachedRevision(t) != "v1" || r.loads != 1 {
		t.Fatalf("served %q, cached %q, loads %d; want v1, v1, 1", r.revision(), r.cachedRevision(t), r.loads)
	}
	st := r.ref.Status()
	if !st.Loaded || st.FromCache || st.LastError != "" || st.Counts.Subjects != 1 || !strings.HasPrefix(st.ETag, "sha256:") {
		t.Errorf("status after first load = %+v", st)
	}
	if !strings.HasPrefix(st.Source, "file:/") {
		t.Errorf("source = %q, want an absolute file: source", st.Source)
	}

	// Unchanged content is not swapped in again.
	if err := r.ref.RefreshOnce(t.Context()); err != nil || r.loads != 1 {
		t.Fatalf("refresh of an unchanged file: err=%v loads=%d, want nil and 1", err, r.loads)
	}
}

func TestInvalidEditKeepsLastGoodPolicy(t *testing.T) {
	r := newRig(t, goodV1)
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}

	writeFile(t, r.policy, invalid)
	err := r.ref.RefreshOnce(t.Context())
	var verr *pdp.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("refresh of an invalid edit: err = %v, want a *pdp.ValidationError", err)
	}
	const want = `roles[0].permissions[0].actions[0]: action "wrte" is not defined on resource "orders"`
	if st := r.ref.Status(); !strings.Contains(st.LastError, want) {
		t.Errorf("status.LastError = %q, want it to name %q", st.LastError, want)
	}
	if r.revision() != "v1" || r.cachedRevision(t) != "v1" {
		t.Fatalf("after an invalid edit: served %q, cached %q; want v1 for both", r.revision(), r.cachedRevision(t))
	}
	// The broken document is remembered, not parsed again on every poll.
	if err := r.ref.RefreshOnce(t.Context()); err == nil || !strings.Contains(err.Error(), "rejected before") {
		t.Errorf("second refresh of the same broken file: err = %v", err)
	}

	writeFile(t, r.policy, goodV2)
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r.revision() != "v2" || r.cachedRevision(t) != "v2" || r.ref.Status().LastError != "" {
		t.Fatalf("after a valid edit: served %q, cached %q, last error %q", r.revision(), r.cachedRevision(t), r.ref.Status().LastError)
	}
	d, _ := r.engine.Decide(pdp.Query{Subject: "alice", Resource: "orders", Action: "write"})
	if !d.Allowed || d.MatchedRole != "writer" {
		t.Errorf("decision after the valid edit = %+v, want allowed by writer", d)
	}
}

func TestWarmStartServesCacheWhenSourceIsGone(t *testing.T) {
	r := newRig(t, goodV1)
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	dbPath := r.cache.Path()
	if err := r.cache.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(r.policy); err != nil {
		t.Fatal(err)
	}

	// A new process: fresh engine, cache reopened from the same file.
	r.engine = &pdp.Engine{}
	r.cache = refreshtest.OpenCache(t, dbPath)
	r.ref = r.refresher(t)
	ok, err := r.ref.WarmStart()
	if err != nil || !ok {
		t.Fatalf("WarmStart = %v, %v; want true, nil", ok, err)
	}
	if err := r.ref.RefreshOnce(t.Context()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refresh with the file gone: err = %v, want not-exist", err)
	}
	st := r.ref.Status()
	if r.revision() != "v1" || !st.Loaded || !st.FromCache || st.LastError == "" {
		t.Fatalf("served %q with status %+v; want v1 from the cache with the fetch error recorded", r.revision(), st)
	}
	d, err := r.engine.Decide(pdp.Query{Subject: "alice", Resource: "orders", Action: "read"})
	if err != nil || !d.Allowed {
		t.Errorf("decision from the cached policy = %+v, %v", d, err)
	}

	// The source returns unchanged: the cached policy is confirmed.
	writeFile(t, r.policy, goodV1)
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := r.ref.Status(); st.FromCache || st.LastError != "" {
		t.Errorf("status after the source confirmed the cache = %+v", st)
	}
}

func TestWarmStartWithEmptyCacheLoadsNothing(t *testing.T) {
	r := newRig(t, "")
	ok, err := r.ref.WarmStart()
	if ok || err != nil || r.engine.Snapshot() != nil {
		t.Fatalf("WarmStart on an empty cache = %v, %v", ok, err)
	}
	if err := r.ref.RefreshOnce(t.Context()); err == nil {
		t.Fatal("refresh of a missing file succeeded")
	}
	if _, err := r.engine.Decide(pdp.Query{Subject: "a", Resource: "b", Action: "c"}); !errors.Is(err, pdp.ErrNoPolicy) {
		t.Errorf("Decide with nothing loaded: err = %v, want ErrNoPolicy", err)
	}
}

func TestRunPollsOnIntervalAndTrigger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, goodV1)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- r.ref.Run(ctx) }()

		synctest.Wait()
		if r.revision() != "v1" {
			t.Fatalf("Run did not load at once: serving %q", r.revision())
		}

		writeFile(t, r.policy, goodV2)
		time.Sleep(4 * time.Second)
		synctest.Wait()
		if r.revision() != "v1" {
			t.Fatalf("reloaded before the interval: serving %q", r.revision())
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if r.revision() != "v2" {
			t.Fatalf("not reloaded after the 5 s interval: serving %q", r.revision())
		}

		writeFile(t, r.policy, goodV1)
		r.ref.Trigger()
		r.ref.Trigger() // collapses with the first
		synctest.Wait()
		if r.revision() != "v1" || r.loads != 3 {
			t.Fatalf("after Trigger: serving %q after %d loads; want v1 after 3", r.revision(), r.loads)
		}

		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v", err)
		}
	})
}

func TestNewReportsEveryConfigProblem(t *testing.T) {
	_, err := refresh.New(refresh.Config{Interval: -time.Second})
	for _, want := range []string{"Upstream is required", "Engine is required", "must not be negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(bad config) = %v, want it to mention %q", err, want)
		}
	}
}

// A warm start uses the cached binary snapshot when it is good, and compiles
// the cached document when it is not.
func TestWarmStartUsesTheBinarySnapshot(t *testing.T) {
	dir := t.TempDir()
	db := refreshtest.OpenCache(t, filepath.Join(dir, "rolecall.db"))
	v1, err := policyfile.Compile([]byte(goodV1), policyfile.YAML)
	if err != nil {
		t.Fatal(err)
	}
	bin, _ := v1.MarshalBinary()
	save := func(snapshot []byte) {
		// The document says v2; only the snapshot says v1.
		if err := db.SavePolicy(cache.PolicyRecord{Document: []byte(goodV2), Format: "yaml", Revision: "v1", Source: "file:" + filepath.Join(dir, "p.yaml"), FetchedAt: time.Now().UTC(), Snapshot: snapshot}); err != nil {
			t.Fatal(err)
		}
	}
	warm := func() string {
		e := &pdp.Engine{}
		ref, err := refresh.New(refresh.Config{Upstream: file.New(filepath.Join(dir, "p.yaml")), Engine: e, Cache: db})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := ref.WarmStart(); !ok || err != nil {
			t.Fatalf("WarmStart = %v, %v", ok, err)
		}
		return e.Snapshot().Revision()
	}
	save(bin)
	if got := warm(); got != "v1" {
		t.Errorf("warm start served %q, want v1 from the snapshot", got)
	}
	save([]byte("RCSNAP\x00\x01garbage"))
	if got := warm(); got != "v2" {
		t.Errorf("warm start with a bad snapshot served %q, want v2 compiled from the document", got)
	}
}

// A policy whose save failed is retried until stored, but never over a
// newer one saved since: the cache always ends up with what is served.
func TestUnsavedNeverOverwritesANewerPolicy(t *testing.T) {
	r := newRig(t, goodV1)
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A large document goes to a file beside the cache; make that fail.
	blocker := filepath.Join(r.dir, "rolecall.db.documents")
	writeFile(t, blocker, "not a directory")
	writeFile(t, r.policy, goodV2+"#"+strings.Repeat("x", 2<<20)+"\n")
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r.revision() != "v2" || r.cachedRevision(t) != "v1" {
		t.Fatalf("serving %q, cached %q; want v2 served though its save failed", r.revision(), r.cachedRevision(t))
	}
	// A small v3 is saved inline; then the directory problem goes away.
	writeFile(t, r.policy, strings.Replace(goodV2, "revision: v2", "revision: v3", 1))
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r.revision() != "v3" || r.cachedRevision(t) != "v3" {
		t.Fatalf("serving %q, cached %q; want v3 in both", r.revision(), r.cachedRevision(t))
	}
}
