package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	gosync "sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/rolecall/rolecall/cache"
	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
	"github.com/rolecall/rolecall/policyfile"
)

// Crash tests: "rolecall serve" as a child process, killed with SIGKILL while
// it takes in a stream of policy versions, and started on damaged cache
// files.
//
// Every policy version n is self-identifying and internally consistent, so
// that serving version n can be told apart from serving a mix of n and
// another version:
//
//   - its revision is "crash-<n>", and the upstream tags it "v<n>";
//   - subject "v<n>" holds role g0, which grants gen:a0; no other version
//     has that subject;
//   - subjects u0 … u(count(n)-1) exist, count(n) depending on n, and u<i>
//     holds exactly role g<(i+n) mod 16>, which grants only gen:a<(i+n) mod 16>;
//   - each subject's e-mail names n, which pads the document over several
//     bbolt pages.
//
// crashVerify asks one CheckBatch (decided on one snapshot) about all of
// that, and GetPolicyStatus for the revision, tag and counts.
const (
	crashMaxSubjects = 300
	crashActions     = 16
)

func crashRevision(n int) string { return fmt.Sprintf("crash-%d", n) }

func crashETag(n int) string { return fmt.Sprintf(`"v%d"`, n) }

func crashSubjectCount(n int) int { return crashMaxSubjects - n%23 }

func crashPolicy(n int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "revision: %q\nresources:\n  - id: gen\n    actions: [", crashRevision(n))
	for k := range crashActions {
		if k > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "a%d", k)
	}
	b.WriteString("]\nroles:\n")
	for k := range crashActions {
		fmt.Fprintf(&b, "  - {id: g%d, type: user, permissions: [{resource: gen, actions: [a%d]}]}\n", k, k)
	}
	fmt.Fprintf(&b, "subjects:\n  - {id: v%d, roles: [g0]}\n", n)
	for i := range crashSubjectCount(n) {
		fmt.Fprintf(&b, "  - {id: u%d, email: u%d.version-%d@crash.example, roles: [g%d]}\n", i, i, n, (i+n)%crashActions)
	}
	return b.Bytes()
}

// crashUpstream is an HTTP policy upstream on loopback that hands out a new
// policy version on every GET while it is up, and 503 while it is down.
type crashUpstream struct {
	mu     gosync.Mutex
	up     bool
	served int // versions 1…served have been handed out
	srv    *httptest.Server
}

func newCrashUpstream(t *testing.T) *crashUpstream {
	u := &crashUpstream{up: true}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		if !u.up {
			u.mu.Unlock()
			http.Error(w, "upstream down for the test", http.StatusServiceUnavailable)
			return
		}
		u.served++
		n := u.served
		u.mu.Unlock()
		w.Header().Set("ETag", crashETag(n))
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(crashPolicy(n))
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *crashUpstream) url() string { return u.srv.URL + "/policy.yaml" }

func (u *crashUpstream) setUp(up bool) {
	u.mu.Lock()
	u.up = up
	u.mu.Unlock()
}

func (u *crashUpstream) newest() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.served
}

// startCrashChild starts bin as "rolecall serve" in dir with its policy from
// upstream, and does not wait for it to be ready.
func startCrashChild(t *testing.T, bin, dir, upstream string, extra ...string) *child {
	t.Helper()
	return spawnServe(t, bin, dir, append([]string{"--upstream", upstream}, extra...)...)
}

// sigkill kills the child with SIGKILL and checks that it was the signal
// that ended it, not an exit of its own before.
func (c *child) sigkill(t testing.TB) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	err := c.wait(t, 10*time.Second)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !exit.Sys().(syscall.WaitStatus).Signaled() || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the child ended with %v before it was killed; logs:\n%s", err, c.logs)
	}
	_ = c.conn.Close()
}

// crashStatus asks the child for its policy status, waiting at most 10 s.
func (c *child) crashStatus() (*rolecallv1.GetPolicyStatusResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return rolecallv1.NewPolicyDecisionServiceClient(c.conn).GetPolicyStatus(ctx, &rolecallv1.GetPolicyStatusRequest{})
}

// crashVersion parses the version out of a "crash-<n>" revision.
func crashVersion(revision string) (int, error) {
	s, ok := strings.CutPrefix(revision, "crash-")
	n, err := strconv.Atoi(s)
	if !ok || err != nil || n < 1 {
		return 0, fmt.Errorf("revision %q is not one this test's upstream serves", revision)
	}
	return n, nil
}

// crashVerify checks that the child serves exactly version n, whole: the
// status names it, and every decision in one batch is version n's.
func crashVerify(c *child, n int) error {
	st, err := c.crashStatus()
	if err != nil {
		return err
	}
	var errs []error
	if st.GetRevision() != crashRevision(n) || st.GetEtag() != crashETag(n) ||
		st.GetSubjects() != int32(crashSubjectCount(n)+1) || st.GetRoles() != crashActions || st.GetResources() != 1 {
		errs = append(errs, fmt.Errorf("status says revision %q, etag %s, %d subjects, %d roles, %d resources; version %d has %q, %s, %d, %d, 1",
			st.GetRevision(), st.GetEtag(), st.GetSubjects(), st.GetRoles(), st.GetResources(),
			n, crashRevision(n), crashETag(n), crashSubjectCount(n)+1, crashActions))
	}

	type want struct {
		allowed bool
		role    string
	}
	var checks []*rolecallv1.CheckRequest
	var wants []want
	add := func(subject, action string, w want) {
		checks = append(checks, &rolecallv1.CheckRequest{Subject: subject, Resource: "gen", Action: action})
		wants = append(wants, w)
	}
	add(fmt.Sprintf("v%d", n), "a0", want{true, "g0"})
	add(fmt.Sprintf("v%d", n-1), "a0", want{})
	add(fmt.Sprintf("v%d", n+1), "a0", want{})
	for i := range crashMaxSubjects {
		k := (i + n) % crashActions
		if i < crashSubjectCount(n) {
			add(fmt.Sprintf("u%d", i), fmt.Sprintf("a%d", k), want{true, fmt.Sprintf("g%d", k)})
		} else {
			add(fmt.Sprintf("u%d", i), fmt.Sprintf("a%d", k), want{})
		}
		add(fmt.Sprintf("u%d", i), fmt.Sprintf("a%d", (k+1)%crashActions), want{})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := rolecallv1.NewPolicyDecisionServiceClient(c.conn).CheckBatch(ctx, &rolecallv1.CheckBatchRequest{Checks: checks})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("CheckBatch: %w", err))...)
	}
	if len(resp.GetResults()) != len(checks) {
		return errors.Join(append(errs, fmt.Errorf("CheckBatch answered %d of %d checks", len(resp.GetResults()), len(checks)))...)
	}
	wrong := 0
	for i, r := range resp.GetResults() {
		w := wants[i]
		if r.GetAllowed() == w.allowed && r.GetMatchedRole() == w.role && r.GetPolicyRevision() == crashRevision(n) {
			continue
		}
		if wrong++; wrong <= 5 {
			errs = append(errs, fmt.Errorf("check %s %s: allowed %v by %q under %q; version %d: allowed %v by %q",
				checks[i].GetSubject(), checks[i].GetAction(), r.GetAllowed(), r.GetMatchedRole(), r.GetPolicyRevision(), n, w.allowed, w.role))
		}
	}
	if wrong > 5 {
		errs = append(errs, fmt.Errorf("… %d of %d checks disagree with version %d", wrong, len(checks), n))
	}
	return errors.Join(errs...)
}

// corruptFiles lists the files moved aside next to db.
func corruptFiles(t *testing.T, db string) []string {
	t.Helper()
	m, err := filepath.Glob(db + ".corrupt-*")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func crashSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("ROLECALL_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("ROLECALL_CRASH_SEED: %v", err)
		}
	}
	t.Logf("seed %d (set ROLECALL_CRASH_SEED=%d to repeat the random choices)", seed, seed)
	return seed
}

// The hardening issue's crash test: rolecall takes in a stream of policy
// versions (a new one every few milliseconds, so that a kill often lands in
// a save) and is killed with SIGKILL at a random moment, round after round,
// sometimes again while it starts. After each kill it is started with the
// upstream down, so that it can only serve what the cache holds, and it must
// serve, from the cache, exactly one version the upstream handed out, no
// older than the last one the killed process reported serving (a policy is
// persisted before it is served), whole: never nothing, never a mix of two
// versions. The cache file must never be found damaged.
func TestSIGKILLNeverLosesOrMixesPolicy(t *testing.T) {
	rng := rand.New(rand.NewPCG(crashSeed(t), 0x726f6c6563616c6c))
	bin := buildRolecall(t)
	dir := t.TempDir()
	up := newCrashUpstream(t)
	start := func() *child {
		return startCrashChild(t, bin, dir, up.url(), "--refresh-interval", "5ms")
	}

	budget, maxRounds := 20*time.Second, 25
	if testing.Short() {
		budget, maxRounds = 6*time.Second, 8
	}
	deadline := time.Now().Add(budget)

	// Round 0 fills the empty cache from the upstream.
	c := start()
	if err := c.waitServing(10 * time.Second); err != nil {
		t.Fatalf("first start: %v; logs:\n%s", err, c.logs)
	}
	lastSeen, verified, advanced, earlyKills := 0, 0, 0, 0
	prev := 0
	for round := 1; round <= maxRounds && (round <= 3 || time.Now().Before(deadline)); round++ {
		// Let it take in new versions, then kill it at a random moment.
		up.setUp(true)
		if round > 1 {
			if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil { // refresh now, not after the 1 s backoff
				t.Fatal(err)
			}
		}
		time.Sleep(time.Duration(rng.Int64N(int64(300 * time.Millisecond))))
		st, err := c.crashStatus()
		if err != nil {
			t.Fatalf("round %d: status before the kill: %v; logs:\n%s", round, err, c.logs)
		}
		seen, err := crashVersion(st.GetRevision())
		if err != nil {
			t.Fatalf("round %d: before the kill: %v", round, err)
		}
		lastSeen = max(lastSeen, seen)
		c.sigkill(t)

		// Now and then, kill it again while it starts: opening and checking
		// the cache, warm-starting, making its first fetch.
		if rng.IntN(3) == 0 {
			earlyKills++
			up.setUp(rng.IntN(2) == 0)
			c = start()
			time.Sleep(time.Duration(rng.Int64N(int64(60 * time.Millisecond))))
			c.sigkill(t)
		}

		// Restart with the upstream down: only the cache can answer.
		up.setUp(false)
		c = start()
		if err := c.waitServing(10 * time.Second); err != nil {
			t.Fatalf("round %d: after SIGKILL, with the upstream down, the restarted server serves nothing: %v; logs:\n%s", round, err, c.logs)
		}
		st, err = c.crashStatus()
		if err != nil {
			t.Fatal(err)
		}
		n, err := crashVersion(st.GetRevision())
		if err != nil {
			t.Fatalf("round %d: after the restart: %v", round, err)
		}
		if !st.GetLoaded() || !st.GetFromCache() {
			t.Errorf("round %d: after the restart the status says loaded %v, from cache %v; want the cached policy", round, st.GetLoaded(), st.GetFromCache())
		}
		if newest := up.newest(); n < lastSeen || n > newest {
			t.Fatalf("round %d: the restarted server serves version %d; the killed one last reported %d, and the upstream handed out 1…%d; logs:\n%s",
				round, n, lastSeen, newest, c.logs)
		}
		if err := crashVerify(c, n); err != nil {
			t.Fatalf("round %d: the restarted server does not serve version %d whole:\n%v", round, n, err)
		}
		if m := corruptFiles(t, c.db); len(m) > 0 || strings.Contains(c.logs.String(), "moved aside") {
			t.Fatalf("round %d: the cache was found damaged after SIGKILL: moved aside %v; logs:\n%s", round, m, c.logs)
		}
		verified++
		if n > prev {
			advanced++
		}
		prev, lastSeen = n, n
	}
	c.sigkill(t)
	t.Logf("%d rounds (%d with a second kill while starting); the cached version advanced in %d; the upstream handed out %d versions",
		verified, earlyKills, advanced, up.newest())
	// A test in which the kills never land after new versions were stored
	// proves nothing.
	if advanced < verified/2 {
		t.Errorf("the cached version advanced in only %d of %d rounds: the stream of updates did not reach the cache", advanced, verified)
	}
}

// crashValidCache returns the bytes of a valid cache file holding version 1,
// document and binary snapshot, written as serve writes them, and the
// snapshot.
func crashValidCache(t *testing.T) (file, snapshot []byte) {
	t.Helper()
	snap, err := policyfile.Compile(crashPolicy(1), policyfile.YAML)
	if err != nil {
		t.Fatal(err)
	}
	if snapshot, err = snap.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "valid.db")
	db, err := cache.Open(path, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SavePolicy(cache.PolicyRecord{Document: crashPolicy(1), Format: "yaml", Revision: crashRevision(1), ETag: crashETag(1),
		Source: "test", FetchedAt: time.Now(), Snapshot: snapshot}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if file, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	return file, snapshot
}

// A cache file that is damaged (truncated, overwritten with garbage, torn
// meta pages, a damaged data page) is detected at start, moved aside as
// <cache>.corrupt-<time> byte for byte, reported in the log, and rebuilt from
// the upstream: a second start with the upstream down serves the rebuilt
// cache.
func TestServeMovesCorruptCacheAside(t *testing.T) {
	bin := buildRolecall(t)

	valid, _ := crashValidCache(t)
	page := os.Getpagesize() // bbolt's page size
	if len(valid) < 6*page {
		t.Fatalf("the valid cache is only %d bytes; the cases below need more pages", len(valid))
	}
	garbage := make([]byte, 64<<10)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(garbage)
	overwrite := func(at int, b []byte) []byte {
		out := bytes.Clone(valid)
		copy(out[at:], b)
		return out
	}

	cases := []struct {
		name string
		file []byte
	}{
		{"garbage bytes", garbage},
		{"truncated to less than a page", valid[:100]},
		{"truncated to its meta pages", valid[:2*page]},
		{"truncated in the middle", valid[:len(valid)/2]},
		{"torn meta pages", overwrite(0, make([]byte, 2*page))},
		{"garbage over the data pages", overwrite(2*page, garbage[:len(valid)-2*page])},
	}
	moved := regexp.MustCompile(`^rolecall\.db\.corrupt-\d{8}T\d{6}Z(\.\d+)?$`)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "rolecall.db")
			if err := os.WriteFile(path, tc.file, 0o600); err != nil {
				t.Fatal(err)
			}
			up := newCrashUpstream(t)

			c := startCrashChild(t, bin, dir, up.url(), "--refresh-interval", "1h")
			if err := c.waitServing(10 * time.Second); err != nil {
				t.Fatalf("with a damaged cache: %v; logs:\n%s", err, c.logs)
			}
			aside := corruptFiles(t, path)
			if len(aside) != 1 || !moved.MatchString(filepath.Base(aside[0])) {
				t.Fatalf("moved aside: %v; want one rolecall.db.corrupt-<time>; logs:\n%s", aside, c.logs)
			}
			if got, err := os.ReadFile(aside[0]); err != nil || !bytes.Equal(got, tc.file) {
				t.Errorf("the moved-aside file (%v) is not the damaged file as it was", err)
			}
			logs := c.logs.String()
			if !strings.Contains(logs, "moved aside") || !strings.Contains(logs, aside[0]) {
				t.Errorf("the log does not report the file moved aside to %s:\n%s", aside[0], logs)
			}
			st, err := c.crashStatus()
			if err != nil {
				t.Fatal(err)
			}
			if st.GetFromCache() || st.GetRevision() != crashRevision(1) {
				t.Errorf("status with a damaged cache: from cache %v, revision %q; want %q from the upstream", st.GetFromCache(), st.GetRevision(), crashRevision(1))
			}
			if err := crashVerify(c, 1); err != nil {
				t.Errorf("serving from the upstream: %v", err)
			}
			c.sigkill(t)

			c = restartFromRebuiltCache(t, bin, dir, up)
			if again := corruptFiles(t, path); len(again) != 1 {
				t.Errorf("the rebuilt cache was moved aside too: %v; logs:\n%s", again, c.logs)
			}
			c.sigkill(t)
		})
	}
}

// A bbolt file that is intact but whose stored policy changed on disk (a
// flipped bit in the document and in its snapshot, which bbolt does not
// checksum) is caught by the stored digests: the damaged policy is never
// served, the log says why, and the upstream's policy replaces it in the
// cache.
func TestServeNeverServesACorruptCachedPolicy(t *testing.T) {
	bin := buildRolecall(t)
	valid, snapshot := crashValidCache(t)
	file := bytes.Clone(valid)
	for _, what := range [][]byte{[]byte("u17.version-1@crash.example"), snapshot[len(snapshot)/2 : len(snapshot)/2+32]} {
		i := bytes.Index(file, what)
		if i < 0 || bytes.Count(file, what) != 1 {
			t.Fatalf("%q is %d times in the cache file; want once", what, bytes.Count(file, what))
		}
		file[i+2] ^= 0x01
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "rolecall.db")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	up := newCrashUpstream(t)
	up.setUp(false)

	// With the upstream down, the damaged policy is all there is: nothing
	// is served rather than it.
	c := startCrashChild(t, bin, dir, up.url(), "--refresh-interval", "1h")
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := c.crashStatus()
		if err == nil && st.GetConsecutiveFailures() > 0 {
			if st.GetLoaded() {
				t.Fatalf("the damaged cached policy is served: %v", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no refresh attempt within 10 s: %v, %v; logs:\n%s", st, err, c.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if resp, err := healthpb.NewHealthClient(c.conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health with only a damaged cached policy: %v, %v; want NOT_SERVING", resp, err)
	}
	if _, err := rolecallv1.NewPolicyDecisionServiceClient(c.conn).Check(ctx, &rolecallv1.CheckRequest{Subject: "u17", Resource: "gen", Action: "a2"}); status.Code(err) != codes.Unavailable {
		t.Errorf("Check with only a damaged cached policy: %v; want UNAVAILABLE", err)
	}
	for _, want := range []string{"policy snapshot does not match its SHA-256 digest", "policy document does not match its SHA-256 digest", "cached policy not used"} {
		if !strings.Contains(c.logs.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, c.logs)
		}
	}
	// A copy of the damaged file is kept for inspection, and
	// the log names it.
	if kept := corruptFiles(t, c.db); len(kept) != 1 {
		t.Errorf("copies of the damaged cache: %v, want one; logs:\n%s", kept, c.logs)
	} else if !strings.Contains(c.logs.String(), "a copy of the file is kept at "+kept[0]) {
		t.Errorf("the log does not name the kept copy %s:\n%s", kept[0], c.logs)
	}

	// The upstream comes back: its policy is served and replaces the
	// damaged one in the cache.
	up.setUp(true)
	if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := c.waitServing(10 * time.Second); err != nil {
		t.Fatalf("the upstream is back: %v; logs:\n%s", err, c.logs)
	}
	if err := crashVerify(c, 1); err != nil {
		t.Errorf("serving from the upstream: %v", err)
	}
	c.sigkill(t)

	c = restartFromRebuiltCache(t, bin, dir, up)
	if strings.Contains(c.logs.String(), "does not match") {
		t.Errorf("the rebuilt cache is damaged too:\n%s", c.logs)
	}
	c.sigkill(t)
}

// restartFromRebuiltCache restarts rolecall in dir with the upstream down and
// checks that the cache it rebuilt serves version 1, whole, on its own.
func restartFromRebuiltCache(t *testing.T, bin, dir string, up *crashUpstream) *child {
	t.Helper()
	up.setUp(false)
	c := startCrashChild(t, bin, dir, up.url(), "--refresh-interval", "1h")
	if err := c.waitServing(10 * time.Second); err != nil {
		t.Fatalf("restart with the upstream down: the rebuilt cache serves nothing: %v; logs:\n%s", err, c.logs)
	}
	if st, err := c.crashStatus(); err != nil || !st.GetFromCache() {
		t.Errorf("after the restart: %v, %v; want the policy from the cache", st, err)
	}
	if err := crashVerify(c, 1); err != nil {
		t.Errorf("serving the rebuilt cache: %v", err)
	}
	return c
}
