package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/rolecall/rolecall/cache"
	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
)

// guardPolicy is a policy of revision rev in which subjects s0 … s(n-1)
// each hold one grant.
func guardPolicy(rev string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "revision: %s\nresources: [{id: orders, actions: [read]}]\nroles: [{id: reader, type: user, permissions: [{resource: orders, actions: [read]}]}]\nsubjects:\n", rev)
	for i := range n {
		fmt.Fprintf(&b, "  - {id: s%d, roles: [reader]}\n", i)
	}
	return b.String()
}

// A policy that would remove most grants is held back, end to end: a real
// HTTP upstream and a real cache; the old policy keeps answering across a
// restart, status and metrics say why, and an accept installs it.
func TestServeHoldsBackASuspiciousPolicy(t *testing.T) {
	up, set := documentUpstream(t, guardPolicy("r1", 200))

	dir := t.TempDir()
	admin := freeAddr(t)
	db := filepath.Join(dir, "rolecall.db")
	cfgPath := filepath.Join(dir, "rolecall.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
grpc:
  address: ""
admin:
  address: %s
cache:
  path: %s
policy:
  upstream: %s/policy.yaml
  refresh_interval: 1h
  max_revoke_ratio: 0.5
authz:
  address: ""
`, admin, db, up.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "http://" + admin
	post := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Post(base+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	metric := func(name string) string {
		t.Helper()
		for line := range strings.Lines(get("/metrics")) {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				return strings.TrimSpace(v)
			}
		}
		t.Fatalf("/metrics has no %s", name)
		return ""
	}
	check := func(d *daemon, subject string) *rolecallv1.CheckResponse {
		t.Helper()
		resp, err := rolecallv1.NewPolicyDecisionServiceClient(d.conn).Check(t.Context(), &rolecallv1.CheckRequest{Subject: subject, Resource: "orders", Action: "read"})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	const reason = `revision "r2" would remove 199 of 200 grants (99.5%), more than policy.max_revoke_ratio 0.5 allows; confirm with POST /v1/refresh?accept=r2`
	heldAsExpected := func(d *daemon) {
		t.Helper()
		st := d.status(t)
		h := st.GetHeld()
		if st.GetRevision() != "r1" || h.GetRevision() != "r2" || h.GetReason() != reason || h.GetSince() == nil ||
			h.GetChange().GetGrantsBefore() != 200 || h.GetChange().GetGrantsLost() != 199 || h.GetChange().GetSubjectsRemoved() != 199 ||
			st.GetLastError() != "policy held back: "+reason || st.GetConsecutiveFailures() != 0 {
			t.Errorf("status while held = %v", st)
		}
		if c := check(d, "s150"); !c.GetAllowed() || c.GetPolicyRevision() != "r1" {
			t.Errorf("s150 while r2 is held: %v, want allowed by r1", c)
		}
		if v := metric("rolecall_policy_held"); v != "1" {
			t.Errorf("rolecall_policy_held = %s, want 1", v)
		}
	}

	d := startServe(t, dir, "--config", cfgPath)
	d.waitHealth(t, healthpb.HealthCheckResponse_SERVING)
	if st := d.status(t); st.GetRevision() != "r1" || st.GetLastChange() != nil || st.GetHeld() != nil {
		t.Fatalf("first policy: %v", st)
	}

	set(guardPolicy("r2", 1))
	if code, body := post("/v1/refresh"); code != http.StatusConflict || !strings.Contains(body, "would remove 199 of 200 grants") {
		t.Fatalf("refresh to the suspicious policy: %d %s", code, body)
	}
	heldAsExpected(d)
	if body := get("/v1/status"); !strings.Contains(body, `"held":{"revision":"r2"`) {
		t.Errorf("/v1/status while held: %s", body)
	}
	// Polled again, it is known again without being counted again.
	if code, _ := post("/v1/refresh"); code != http.StatusConflict {
		t.Errorf("second refresh: %d, want 409", code)
	}
	if v := metric("rolecall_policy_held_total"); v != "1" {
		t.Errorf("rolecall_policy_held_total = %s, want 1", v)
	}
	if v := metric(`rolecall_policy_sync_attempts_total{result="held"}`); v != "2" {
		t.Errorf(`sync attempts held = %s, want 2`, v)
	}
	d.stop()

	// The held policy never reached the cache.
	c, err := cache.Open(db, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec, ok, err := c.LoadPolicy()
	if err != nil || !ok || rec.Revision != "r1" {
		t.Fatalf("cached policy: %q, %v, %v; want r1", rec.Revision, ok, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// A restart serves the cached r1 and holds r2 back again.
	d = startServe(t, dir, "--config", cfgPath)
	defer d.stop()
	d.waitHealth(t, healthpb.HealthCheckResponse_SERVING)
	deadline := time.Now().Add(10 * time.Second)
	for d.status(t).GetHeld() == nil {
		if time.Now().After(deadline) {
			t.Fatalf("r2 not held after the restart; status %v; logs:\n%s", d.status(t), d.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	heldAsExpected(d)
	if !strings.Contains(d.logs.String(), "policy held back") || !strings.Contains(d.logs.String(), "grants_lost=199") {
		t.Errorf("the hold is not logged:\n%s", d.logs)
	}

	if code, body := post("/v1/refresh?accept=wrong"); code != http.StatusConflict || body != `{"error":"held revision is \"r2\", not \"wrong\""}`+"\n" {
		t.Errorf("accept of the wrong revision: %d %s", code, body)
	}
	code, body := post("/v1/refresh?accept=r2")
	if code != http.StatusOK || !strings.Contains(body, `"revision":"r2"`) || !strings.Contains(body, `"held":null`) {
		t.Fatalf("accept: %d %s", code, body)
	}
	st := d.status(t)
	if lc := st.GetLastChange(); st.GetHeld() != nil || st.GetLastError() != "" || lc.GetFromRevision() != "r1" || lc.GetToRevision() != "r2" || lc.GetGrantsLost() != 199 || lc.GetAt() == nil {
		t.Errorf("status after accept: %v", st)
	}
	if c := check(d, "s150"); c.GetAllowed() || c.GetReason() != rolecallv1.Reason_REASON_UNKNOWN_SUBJECT || c.GetPolicyRevision() != "r2" {
		t.Errorf("s150 after accept: %v, want r2's UNKNOWN_SUBJECT", c)
	}
	for name, want := range map[string]string{
		"rolecall_policy_held": "0", "rolecall_policy_held_total": "1",
		"rolecall_policy_grants_lost_total": "199", "rolecall_policy_subjects_removed_total": "199",
		"rolecall_policy_grants_gained_total": "0", "rolecall_policy_subjects_added_total": "0",
	} {
		if v := metric(name); v != want {
			t.Errorf("%s = %s after accept, want %s", name, v, want)
		}
	}
	if code, body := post("/v1/refresh?accept=r2"); code != http.StatusConflict || body != `{"error":"no policy is held"}`+"\n" {
		t.Errorf("accept again: %d %s", code, body)
	}
}
