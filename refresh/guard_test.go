package refresh_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
	"github.com/rolecall/rolecall/refresh"
	"github.com/rolecall/rolecall/refresh/file"
	"github.com/rolecall/rolecall/refresh/internal/refreshtest"
)

// readers is a policy of revision rev in which subjects s0 … s(n-1) each
// hold one grant (orders read), and w0 … w(writers-1) two (orders read and
// write).
func readers(rev string, n, writers int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "revision: %s\nresources: [{id: orders, actions: [read, write]}]\n", rev)
	b.WriteString("roles:\n  - {id: reader, type: user, permissions: [{resource: orders, actions: [read]}]}\n")
	b.WriteString("  - {id: writer, type: user, permissions: [{resource: orders, actions: [\"*\"]}]}\n")
	if n+writers == 0 {
		b.WriteString("subjects: []\n")
		return b.String()
	}
	b.WriteString("subjects:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {id: s%d, roles: [reader]}\n", i)
	}
	for i := range writers {
		fmt.Fprintf(&b, "  - {id: w%d, roles: [writer]}\n", i)
	}
	return b.String()
}

// docUpstream serves one document, tagged with its content, and records the
// tags it is asked with. With replicas, it ignores the tag and answers with
// a new one every time, as a fleet of hub replicas behind a balancer might.
type docUpstream struct {
	doc      refresh.Document
	asked    []string
	replicas bool
	fetches  int
}

func (u *docUpstream) String() string { return "test:doc" }

func (u *docUpstream) set(content string) {
	u.doc = refresh.Document{Data: []byte(content), Format: policyfile.YAML, ETag: refresh.ContentTag([]byte(content))}
}

func (u *docUpstream) Fetch(_ context.Context, etag string) (refresh.Document, error) {
	u.asked = append(u.asked, etag)
	u.fetches++
	if u.replicas {
		d := u.doc
		d.ETag = fmt.Sprintf("replica-%d", u.fetches)
		return d, nil
	}
	if etag == u.doc.ETag {
		return refresh.Document{}, refresh.ErrNotModified
	}
	return u.doc, nil
}

// guarded is a refresher on up with max_revoke_ratio ratio, a real cache, a
// clock the test moves and its log in a buffer.
type guarded struct {
	*rig
	up  *docUpstream
	log *bytes.Buffer
	now time.Time
}

func newGuarded(t *testing.T, ratio float64, content string, extra func(*refresh.Config)) *guarded {
	t.Helper()
	g := &guarded{up: &docUpstream{}, log: &bytes.Buffer{}, now: time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)}
	g.up.set(content)
	dir := t.TempDir()
	g.rig = &rig{dir: dir, engine: &pdp.Engine{}}
	g.cache = refreshtest.OpenCache(t, filepath.Join(dir, "rolecall.db"))
	g.configure = func(c *refresh.Config) {
		c.Upstream = g.up
		c.MaxRevokeRatio = ratio
		c.Logger = slog.New(slog.NewTextHandler(g.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.Now = func() time.Time { return g.now }
		if extra != nil {
			extra(c)
		}
	}
	g.ref = g.refresher(t)
	return g
}

// changes counts the comparisons logged: one per policy compiled while
// another is served.
func (g *guarded) changes() int { return strings.Count(g.log.String(), "msg=\"policy change\"") }

func TestEveryInstallReportsItsChange(t *testing.T) {
	g := newGuarded(t, 0, readers("v1", 10, 0), nil)
	if err := g.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The first policy of a process replaces none.
	if st := g.ref.Status(); st.LastChange != nil || st.Changes != (refresh.ChangeCounts{}) || g.changes() != 0 {
		t.Fatalf("after the first policy: last change %+v, counts %+v, %d logged", st.LastChange, st.Changes, g.changes())
	}

	// Four readers go, two writers come, s0 becomes a writer.
	g.up.set(strings.Replace(readers("v2", 6, 2), "{id: s0, roles: [reader]}", "{id: s0, roles: [writer]}", 1))
	g.now = g.now.Add(time.Minute)
	if err := g.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	st := g.ref.Status()
	want := pdp.Totals{GrantsBefore: 10, GrantsAfter: 6 + 1 + 4, GrantsGained: 1 + 4, GrantsLost: 4, SubjectsAdded: 2, SubjectsRemoved: 4, SubjectsChanged: 1}
	if c := st.LastChange; c == nil || c.From != "v1" || c.To != "v2" || c.Totals != want || !c.At.Equal(g.now) {
		t.Fatalf("last change = %+v, want v1 → v2 at %v with %+v", c, g.now, want)
	}
	for _, field := range []string{"from_revision=v1", "to_revision=v2", "grants_before=10", "grants_after=11", "grants_gained=5", "grants_lost=4",
		"subjects_added=2", "subjects_removed=4", "subjects_changed=1", "compare="} {
		if !strings.Contains(g.log.String(), field) {
			t.Errorf("the change's log line lacks %s:\n%s", field, g.log)
		}
	}

	// The counts add up across refreshes.
	g.up.set(readers("v3", 6, 0))
	if err := g.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	st = g.ref.Status()
	// v2 → v3: s0 loses write, w0 and w1 go with two grants each.
	if c := st.LastChange; c == nil || c.GrantsLost != 5 || c.SubjectsRemoved != 2 || c.GrantsGained != 0 {
		t.Fatalf("last change = %+v", c)
	}
	if want := (refresh.ChangeCounts{GrantsGained: 5, GrantsLost: 4 + 5, SubjectsAdded: 2, SubjectsRemoved: 4 + 2}); st.Changes != want {
		t.Errorf("counts = %+v, want %+v", st.Changes, want)
	}
	if g.changes() != 2 {
		t.Errorf("%d changes logged, want 2", g.changes())
	}
}

// A warm start has no previous policy; the first refresh after it compares
// against the cached one.
func TestWarmStartHasNoChange(t *testing.T) {
	g := newGuarded(t, 0.5, readers("v1", 10, 0), nil)
	if err := g.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	g.engine = &pdp.Engine{}
	g.ref = g.refresher(t)
	if ok, err := g.ref.WarmStart(); !ok || err != nil {
		t.Fatalf("WarmStart = %v, %v", ok, err)
	}
	if st := g.ref.Status(); st.LastChange != nil || st.Held != nil {
		t.Fatalf("after a warm start: last change %+v, held %+v", st.LastChange, st.Held)
	}
	// The guard applies against the cached policy: a restart does not
	// bypass it.
	g.up.set(readers("v2", 2, 0))
	if err := g.ref.RefreshOnce(t.Context()); !errors.Is(err, refresh.ErrHeld) {
		t.Fatalf("refresh after the warm start: %v, want ErrHeld", err)
	}
	if st := g.ref.Status(); st.Held == nil || st.Held.Change.From != "v1" || g.revision() != "v1" || !st.FromCache {
		t.Fatalf("held %+v, serving %q, from cache %v", st.Held, g.revision(), st.FromCache)
	}
}

func TestSuspiciousChangeIsHeldBack(t *testing.T) {
	g := newGuarded(t, 0.5, readers("v1", 10_000, 0), nil)
	if err := g.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	servedTag := g.ref.Status().ETag
	start := g.now

	// 9,412 of 10,000 grants go.
	g.up.set(readers("r2", 588, 0))
	heldTag := g.up.doc.ETag
	g.now = g.now.Add(time.Minute)
	err := g.ref.RefreshOnce(t.Context())
	const reason = `revision "r2" would remove 9,412 of 10,000 grants (94.1%), more than policy.max_revoke_ratio 0.5 allows; confirm with POST /v1/refresh?accept=r2`
	if !errors.Is(err, refresh.ErrHeld) || err.Error() != "policy held back: "+reason {
		t.Fatalf("refresh of a suspicious policy: %v, want ErrHeld with %q", err, reason)
	}
	st := g.ref.Status()
	if g.revision() != "v1" || g.cachedRevision(t) != "v1" {
		t.Fatalf("serving %q, cached %q: the held policy must be neither", g.revision(), g.cachedRevision(t))
	}
	h := st.Held
	if h == nil || h.Revision != "r2" || h.Reason != reason || !h.Since.Equal(g.now) || h.Change.GrantsLost != 9412 || h.Change.GrantsBefore != 10_000 || h.Change.From != "v1" {
		t.Fatalf("held = %+v", h)
	}
	// Visible as an error, but the upstream answered: no failure to back
	// off from, and the upstream counts as reached for max_stale.
	if st.LastError != err.Error() || !st.LastErrorAt.Equal(g.now) || st.ConsecutiveFailures != 0 || st.AttemptsFailed != 0 ||
		!st.LastSuccess.Equal(g.now) || !st.FetchedAt.Equal(start) || st.ETag != servedTag || st.Revision != "v1" {
		t.Fatalf("status while held = %+v", st)
	}
	if st.PoliciesHeld != 1 || st.AttemptsHeld != 1 || st.LastChange != nil || st.Changes != (refresh.ChangeCounts{}) {
		t.Fatalf("held %d, held attempts %d, last change %+v, counts %+v", st.PoliciesHeld, st.AttemptsHeld, st.LastChange, st.Changes)
	}
	if g.ref.NextDelay() < time.Second {
		t.Errorf("the next refresh is in %v: a hold must not back off like a failure", g.ref.NextDelay())
	}
	if d, _ := g.engine.Decide(pdp.Query{Subject: "s9999", Resource: "orders", Action: "read"}); !d.Allowed || d.Revision != "v1" {
		t.Errorf("decision while held = %+v, want allowed by v1", d)
	}

	// The next poll asks with the held policy's tag, so the upstream's
	// "not modified" says it still has the held one: still held, nothing
	// compiled, counted once.
	g.now = g.now.Add(time.Minute)
	if err := g.ref.RefreshOnce(t.Context()); !errors.Is(err, refresh.ErrHeld) {
		t.Fatalf("second refresh: %v", err)
	}
	if asked := g.up.asked[len(g.up.asked)-1]; asked != heldTag {
		t.Errorf("asked with %q, want the held policy's tag %q", asked, heldTag)
	}
	st = g.ref.Status()
	if st.Held != h || st.PoliciesHeld != 1 || st.AttemptsHeld != 2 || !st.LastSuccess.Equal(g.now) || st.ETag != servedTag || g.changes() != 1 {
		t.Fatalf("after the held policy again: held %+v, %d held, %d attempts, %d compiled, etag %q", st.Held, st.PoliciesHeld, st.AttemptsHeld, g.changes(), st.ETag)
	}

	// A change upstream that is not suspicious installs and ends the hold.
	g.up.set(readers("v3", 9_000, 0))
	if err := g.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	st = g.ref.Status()
	if st.Held != nil || st.LastError != "" || g.revision() != "v3" || g.cachedRevision(t) != "v3" || st.LastChange.GrantsLost != 1000 {
		t.Fatalf("after a sound change: held %+v, last error %q, serving %q, change %+v", st.Held, st.LastError, g.revision(), st.LastChange)
	}
}

// The held policy fetched again under another tag is known by its content,
// not compiled again; another suspicious policy replaces it.
func TestHeldPolicyIsKnownByItsContent(t *testing.T) {
	g := newGuarded(t, 0.25, readers("v1", 100, 0), nil)
	if err := g.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	g.up.replicas = true
	g.up.set(readers("v2", 10, 0))
	for range 3 {
		if err := g.ref.RefreshOnce(t.Context()); !errors.Is(err, refresh.ErrHeld) {
			t.Fatalf("refresh: %v, want ErrHeld", err)
		}
	}
	st := g.ref.Status()
	if g.changes() != 1 || st.PoliciesHeld != 1 || st.AttemptsHeld != 3 || st.Held.Revision != "v2" {
		t.Fatalf("%d compiled, %d held, %d attempts, held %+v; want one compile and one hold", g.changes(), st.PoliciesHeld, st.AttemptsHeld, st.Held)
	}
	first := st.Held.Since

	g.now = g.now.Add(time.Hour)
	g.up.set(readers("v2b", 50, 0))
	if err := g.ref.RefreshOnce(t.Context()); !errors.Is(err, refresh.ErrHeld) {
		t.Fatalf("refresh of another suspicious policy: %v", err)
	}
	st = g.ref.Status()
	if st.Held.Revision != "v2b" || st.Held.Change.GrantsLost != 50 || st.PoliciesHeld != 2 || !st.Held.Since.After(first) || g.revision() != "v1" {
		t.Fatalf("held %+v, %d held, serving %q; want v2b held since now", st.Held, st.PoliciesHeld, g.revision())
	}

	// A broken document upstream ends the hold: the upstream no longer has
	// the held policy.
	g.up.set(invalid)
	if err := g.ref.RefreshOnce(t.Context()); err == nil || errors.Is(err, refresh.ErrHeld) {
		t.Fatalf("refresh of an invalid document: %v", err)
	}
	if st := g.ref.Status(); st.Held != nil || !strings.Contains(st.LastError, "wrte") || g.revision() != "v1" {
		t.Fatalf("held %+v, last error %q, serving %q", st.Held, st.LastError, g.revision())
	}
}

// The upstream going back to the served policy ends the hold.
func TestHoldEndsWhenTheUpstreamReturnsToTheServedPolicy(t *testing.T) {
	g := newGuarded(t, 0.5, readers("v1", 10, 0), nil)
	if err := g.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	g.up.set(readers("v2", 1, 0))
	if err := g.ref.RefreshOnce(t.Context()); !errors.Is(err, refresh.ErrHeld) {
		t.Fatal(err)
	}
	g.up.set(readers("v1", 10, 0))
	if err := g.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := g.ref.Status(); st.Held != nil || st.LastError != "" || st.AttemptsNotModified != 1 {
		t.Fatalf("after the upstream returned to v1: %+v", st)
	}
}

// Off (0) or at most the ratio: nothing is held. A policy of no grants
// replaced by anything is not held either.
func TestGuardThresholds(t *testing.T) {
	tests := []struct {
		name     string
		ratio    float64
		from, to string
		held     bool
	}{
		{"off", 0, readers("a", 10, 0), readers("b", 0, 0), false},
		{"exactly the ratio", 0.5, readers("a", 10, 0), readers("b", 5, 0), false},
		{"just over", 0.5, readers("a", 10, 0), readers("b", 4, 0), true},
		{"one, all may go", 1, readers("a", 10, 0), readers("b", 0, 0), false},
		{"from no grants", 0.1, readers("a", 0, 0), readers("b", 0, 0), false},
		{"gains do not offset losses", 0.5, readers("a", 10, 0), readers("b", 0, 10), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuarded(t, tt.ratio, tt.from, nil)
			if err := g.ref.RefreshOnce(t.Context()); err != nil {
				t.Fatal(err)
			}
			g.up.set(tt.to)
			err := g.ref.RefreshOnce(t.Context())
			if held := errors.Is(err, refresh.ErrHeld); held != tt.held || (!held && err != nil) {
				t.Fatalf("refresh: %v, want held %v", err, tt.held)
			}
		})
	}
}

func TestAcceptInstallsTheHeldPolicy(t *testing.T) {
	g := newGuarded(t, 0.5, readers("v1", 10, 0), nil)
	var conflict *refresh.AcceptError
	if err := g.ref.Accept(t.Context(), "v1"); !errors.As(err, &conflict) || err.Error() != "no policy is held" {
		t.Fatalf("accept with nothing held: %v", err)
	}
	if err := g.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	g.up.set(readers("v2", 1, 0))
	if err := g.ref.RefreshOnce(t.Context()); !errors.Is(err, refresh.ErrHeld) {
		t.Fatal(err)
	}
	fetches := g.up.fetches
	if err := g.ref.Accept(t.Context(), "v3"); !errors.As(err, &conflict) || err.Error() != `held revision is "v2", not "v3"` {
		t.Fatalf("accept of another revision: %v", err)
	}
	if g.up.fetches != fetches || g.ref.Status().Held == nil {
		t.Fatal("a refused accept fetched or ended the hold")
	}

	if err := g.ref.Accept(t.Context(), "v2"); err != nil {
		t.Fatalf("accept: %v", err)
	}
	st := g.ref.Status()
	if g.revision() != "v2" || g.cachedRevision(t) != "v2" || st.Held != nil || st.LastError != "" {
		t.Fatalf("after accept: serving %q, cached %q, held %+v, last error %q", g.revision(), g.cachedRevision(t), st.Held, st.LastError)
	}
	if c := st.LastChange; c == nil || c.GrantsLost != 9 || c.SubjectsRemoved != 9 || st.Changes.GrantsLost != 9 || st.PoliciesHeld != 1 {
		t.Fatalf("after accept: change %+v, counts %+v", c, st.Changes)
	}
	if !strings.Contains(g.log.String(), "held policy accepted") {
		t.Errorf("the accept is not logged:\n%s", g.log)
	}
	// Consumed: the next suspicious policy is held again, and only a held
	// revision can be accepted.
	g.up.set(readers("v3", 0, 0))
	if err := g.ref.RefreshOnce(t.Context()); !errors.Is(err, refresh.ErrHeld) {
		t.Fatalf("v2 → v3 removes 1 of 1 grant: %v, want ErrHeld", err)
	}
	g.up.set(readers("v4", 0, 1))
	if err := g.ref.Accept(t.Context(), "v4"); !errors.As(err, &conflict) || err.Error() != `held revision is "v3", not "v4"` {
		t.Fatalf("accept of a revision not yet held: %v", err)
	}
}

// Accept fetches again: when the upstream has moved on, the new policy is
// refreshed as any other and Accept says the held one was not installed.
func TestAcceptOfAPolicyTheUpstreamNoLongerHas(t *testing.T) {
	g := newGuarded(t, 0.5, readers("v1", 10, 0), nil)
	if err := g.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	g.up.set(readers("v2", 1, 0))
	if err := g.ref.RefreshOnce(t.Context()); !errors.Is(err, refresh.ErrHeld) {
		t.Fatal(err)
	}
	g.up.set(readers("v3", 8, 0))
	var conflict *refresh.AcceptError
	err := g.ref.Accept(t.Context(), "v2")
	if !errors.As(err, &conflict) || !strings.Contains(err.Error(), `revision "v2" was not installed: the upstream no longer has it, it has revision "v3", installed as any new policy`) {
		t.Fatalf("accept after the upstream moved on: %v", err)
	}
	if st := g.ref.Status(); g.revision() != "v3" || st.Held != nil {
		t.Fatalf("serving %q, held %+v", g.revision(), st.Held)
	}

	// Moved on to another suspicious policy: that one is held instead.
	g.up.set(readers("v4", 1, 0))
	if err := g.ref.RefreshOnce(t.Context()); !errors.Is(err, refresh.ErrHeld) {
		t.Fatal(err)
	}
	g.up.set(readers("v5", 2, 0))
	if err := g.ref.Accept(t.Context(), "v4"); !errors.Is(err, refresh.ErrHeld) {
		t.Fatalf("accept of v4 with v5 upstream: %v, want v5 held", err)
	}
	if st := g.ref.Status(); g.revision() != "v3" || st.Held == nil || st.Held.Revision != "v5" {
		t.Fatalf("serving %q, held %+v", g.revision(), st.Held)
	}
}

// A held policy does not make the served one stale: the upstream is
// reached, and withholding every decision would turn a guard against a
// mass revocation into a total one.
func TestHoldKeepsThePolicyFresh(t *testing.T) {
	g := newGuarded(t, 0.5, readers("v1", 10, 0), func(c *refresh.Config) {
		c.MaxStale, c.FailWhenStale = time.Hour, true
	})
	if err := g.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	g.up.set(readers("v2", 1, 0))
	for range 3 {
		g.now = g.now.Add(40 * time.Minute)
		if err := g.ref.RefreshOnce(t.Context()); !errors.Is(err, refresh.ErrHeld) {
			t.Fatal(err)
		}
	}
	if st := g.ref.Status(); st.Stale || st.Withheld || g.engine.Snapshot() == nil {
		t.Fatalf("two hours into a hold: stale %v, withheld %v", st.Stale, st.Withheld)
	}
}

// notModified counts the "not modified" answers of an upstream.
type notModified struct {
	refresh.Upstream
	n int
}

func (u *notModified) Fetch(ctx context.Context, etag string) (refresh.Document, error) {
	doc, err := u.Upstream.Fetch(ctx, etag)
	if errors.Is(err, refresh.ErrNotModified) {
		u.n++
	}
	return doc, err
}

// A held file costs one stat per poll: the file upstream is asked with the
// held tag, and answers "not modified" without reading the file.
func TestHeldFileIsNotReadAgain(t *testing.T) {
	r := newRig(t, readers("v1", 10, 0))
	up := &notModified{Upstream: file.New(r.policy)}
	r.configure = func(c *refresh.Config) { c.Upstream, c.MaxRevokeRatio = up, 0.5 }
	r.ref = r.refresher(t)
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	writeFile(t, r.policy, readers("v2", 1, 0))
	if err := r.ref.RefreshOnce(t.Context()); !errors.Is(err, refresh.ErrHeld) {
		t.Fatal(err)
	}
	if err := r.ref.RefreshOnce(t.Context()); !errors.Is(err, refresh.ErrHeld) || up.n != 1 {
		t.Fatalf("refresh of the unchanged held file: %v after %d not-modified answers, want ErrHeld after 1", err, up.n)
	}
	if r.revision() != "v1" || r.cachedRevision(t) != "v1" {
		t.Fatalf("serving %q, cached %q", r.revision(), r.cachedRevision(t))
	}
}

func TestNewRefusesARatioOutOfRange(t *testing.T) {
	for _, ratio := range []float64{-0.1, 1.5} {
		_, err := refresh.New(refresh.Config{Upstream: &docUpstream{}, Engine: &pdp.Engine{}, MaxRevokeRatio: ratio})
		if err == nil || !strings.Contains(err.Error(), "MaxRevokeRatio") {
			t.Errorf("New with MaxRevokeRatio %v: %v", ratio, err)
		}
	}
}
