package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/rolecall/rolecall/config"
	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
)

const bookstore = "../../examples/bookstore.yaml"

// runCmd runs the CLI in process and returns its exit code and output.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCheckLocal(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		inStderr string
	}{
		{"allow", []string{"--subject", "alice", "--resource", "https://api.store.io/orders", "--action", "read:order"}, 0,
			"allowed: GRANTED by role order_admin (policy revision bookstore-2026-11-20.1)\n", ""},
		{"deny", []string{"--subject", "bob", "--resource", "https://api.store.io/orders", "--action", "read:order"}, 1,
			"denied: NO_PERMISSION (policy revision bookstore-2026-11-20.1)\n", ""},
		{"organization deny", []string{"--subject", "dave", "--org", "globex", "--resource", "organization", "--action", "invite:member"}, 1,
			"denied: NO_PERMISSION (policy revision bookstore-2026-11-20.1)\n", ""},
		{"json", []string{"--json", "--subject", "dave", "--org", "acme", "--resource", "organization", "--action", "invite:member"}, 0,
			`{"allowed":true,"reason":"GRANTED","matched_role":"admin","policy_revision":"bookstore-2026-11-20.1"}` + "\n", ""},
		{"missing subject", []string{"--resource", "r", "--action", "a"}, 2, "", "--subject: must not be empty"},
		{"subject over 1 KiB", []string{"--subject", strings.Repeat("s", 1025), "--resource", "r", "--action", "a"}, 2, "", "--subject: is 1025 bytes long"},
		{"stray argument", []string{"--subject", "a", "--resource", "r", "--action", "a", "extra"}, 2, "", `unexpected arguments ["extra"]`},
		{"unknown flag", []string{"--subjet", "a"}, 2, "", "flag provided but not defined: -subjet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, append([]string{"check", "--policy", bookstore}, tt.args...)...)
			if code != tt.code || out != tt.stdout || !strings.Contains(errOut, tt.inStderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr containing %q", code, out, errOut, tt.code, tt.stdout, tt.inStderr)
			}
		})
	}
	code, _, errOut := runCmd(t, "check", "--policy", "nope.yaml", "--subject", "a", "--resource", "r", "--action", "x")
	if code != 2 || !strings.Contains(errOut, "nope.yaml") {
		t.Errorf("check with a missing policy file: exit %d, stderr %q", code, errOut)
	}
}

func TestPolicyLint(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(`
resources: [{id: orders, actions: [read]}]
roles:
  - {id: a, type: user, permissions: [{resource: orders, actions: [wrte]}]}
subjects: [{id: s, roles: [ghost], colour: blue}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	notYAML := filepath.Join(dir, "broken.json")
	if err := os.WriteFile(notYAML, []byte(`{"resources": [}`), 0o600); err != nil {
		t.Fatal(err)
	}

	code, out, _ := runCmd(t, "policy", "lint", bookstore)
	if code != 0 || out != bookstore+": ok (revision bookstore-2026-11-20.1: 5 resources, 8 roles, 3 organizations, 8 subjects)\n" {
		t.Errorf("lint of the example: exit %d, %q", code, out)
	}

	code, out, _ = runCmd(t, "policy", "lint", bad)
	want := bad + `: subjects[0]: unknown field "colour" (allowed: id, type, email, sso_connection, sso_groups, roles, memberships)
` + bad + `: roles[0].permissions[0].actions[0]: action "wrte" is not defined on resource "orders"
` + bad + `: subjects[0].roles[0]: role "ghost" is not defined
`
	if code != 1 || out != want {
		t.Errorf("lint of an invalid file: exit %d\n got: %s\nwant: %s", code, out, want)
	}

	code, out, _ = runCmd(t, "policy", "lint", notYAML)
	if code != 1 || !strings.Contains(out, "invalid JSON at line 1, column 16") {
		t.Errorf("lint of broken JSON: exit %d, %q", code, out)
	}

	code, _, errOut := runCmd(t, "policy", "lint", filepath.Join(dir, "missing.yaml"))
	if code != 2 || !strings.Contains(errOut, "missing.yaml") {
		t.Errorf("lint of a missing file: exit %d, %q", code, errOut)
	}
	if code, _, _ := runCmd(t, "policy", "lint"); code != 2 {
		t.Errorf("lint without files: exit %d, want 2", code)
	}
}

func TestHelpShowsAnExample(t *testing.T) {
	for _, args := range [][]string{{"serve", "--help"}, {"check", "--help"}, {"policy", "lint", "--help"}, {"policy", "build", "--help"}, {"policy", "keygen", "--help"}, {"policy", "inspect", "--help"}, {"version", "--help"}} {
		code, _, errOut := runCmd(t, args...)
		if code != 0 || !strings.Contains(errOut, "Example:\n  rolecall "+args[0]) {
			t.Errorf("%v: exit %d, output %q", args, code, errOut)
		}
	}
	code, out, _ := runCmd(t, "--help")
	if code != 0 || !strings.Contains(out, "serve") || !strings.Contains(out, "policy") {
		t.Errorf("--help: exit %d, %q", code, out)
	}
	if code, _, errOut := runCmd(t, "frobnicate"); code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, %q", code, errOut)
	}
	if code, out, _ := runCmd(t, "version"); code != 0 || !strings.HasPrefix(out, "rolecall ") {
		t.Errorf("version: exit %d, %q", code, out)
	}
}

func TestServeUsageErrors(t *testing.T) {
	code, _, errOut := runCmd(t, "serve", "--grpc-addr", "", "--log-level", "loud")
	for _, want := range []string{"policy.upstream: required", "grpc: address and unix_socket are both empty", `log.level: "loud": want debug, info, warn or error`} {
		if code != 2 || !strings.Contains(errOut, want) {
			t.Errorf("serve with bad flags: exit %d, stderr %q; want it to say %q", code, errOut, want)
		}
	}
}

// syncBuffer collects a server's logs while tests read them.
type syncBuffer struct {
	mu gosync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type daemon struct {
	sock string
	logs *syncBuffer
	stop func()
	conn *grpc.ClientConn
}

// startServe runs "rolecall serve" in process on a Unix socket in dir.
func startServe(t *testing.T, dir string, extra ...string) *daemon {
	t.Helper()
	d := &daemon{sock: filepath.Join(dir, "rolecall.sock"), logs: &syncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	// No fixed ports: the admin and edge listeners are off unless a test
	// names addresses (later flags win) or a config file does.
	args := []string{"serve", "--grpc-addr", "", "--unix-socket", d.sock, "--cache", filepath.Join(dir, "rolecall.db")}
	if !slices.Contains(extra, "--config") {
		args = append(args, "--admin-addr", "", "--authz-addr", "")
	}
	args = append(args, extra...)
	go func() { done <- run(ctx, args, strings.NewReader(""), d.logs, d.logs) }()
	d.stop = func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exited %d; logs:\n%s", code, d.logs)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("serve did not stop; logs:\n%s", d.logs)
		}
	}
	t.Cleanup(func() {
		if d.conn != nil {
			_ = d.conn.Close()
		}
	})
	var err error
	d.conn, err = grpc.NewClient("unix://"+d.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// waitHealth waits, for at most 10 s, until the server reports want.
func (d *daemon) waitHealth(t *testing.T, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	h := healthpb.NewHealthClient(d.conn)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := h.Check(t.Context(), &healthpb.HealthCheckRequest{})
		if err == nil && resp.GetStatus() == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("health is %v (err %v), want %v; logs:\n%s", resp.GetStatus(), err, want, d.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *daemon) status(t *testing.T) *rolecallv1.GetPolicyStatusResponse {
	t.Helper()
	st, err := rolecallv1.NewPolicyDecisionServiceClient(d.conn).GetPolicyStatus(t.Context(), &rolecallv1.GetPolicyStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func copyBookstore(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(bookstore)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// nextBookstore is the bookstore's next revision, bookstore-2026-11-21.1.
const nextBookstore = "bookstore-2026-11-21.1"

// bumpBookstore rewrites the copy of the bookstore policy at path as its
// next revision.
func bumpBookstore(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(data), "bookstore-2026-11-20.1", nextBookstore, 1)
	if err := os.WriteFile(path, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Accept a policy, stop, delete the policy file, start again: the cached
// policy answers, and status says it came from the cache.
func TestServeWarmStartFromCache(t *testing.T) {
	dir := t.TempDir()
	policy := copyBookstore(t, dir)

	d := startServe(t, dir, "--policy", policy)
	d.waitHealth(t, healthpb.HealthCheckResponse_SERVING)
	if st := d.status(t); st.GetFromCache() || st.GetRevision() != "bookstore-2026-11-20.1" {
		t.Errorf("first start status = %v", st)
	}
	d.stop()
	if _, err := os.Stat(d.sock); !os.IsNotExist(err) {
		t.Errorf("socket file still there after stop: %v", err)
	}

	if err := os.Remove(policy); err != nil {
		t.Fatal(err)
	}
	d = startServe(t, dir, "--policy", policy)
	defer d.stop()
	d.waitHealth(t, healthpb.HealthCheckResponse_SERVING)
	code, out, errOut := runCmd(t, "check", "--unix-socket", d.sock, "--subject", "carol", "--resource", "https://api.store.io/products", "--action", "write:product")
	if code != 0 || out != "allowed: GRANTED by role product_admin (policy revision bookstore-2026-11-20.1)\n" {
		t.Errorf("check against the warm-started server: exit %d, %q, %q", code, out, errOut)
	}
	st := d.status(t)
	if !st.GetFromCache() || !st.GetLoaded() || st.GetSubjects() != 8 || !strings.Contains(st.GetLastError(), "no such file") {
		t.Errorf("status after a warm start with the file gone = %v", st)
	}
}

// With no cache and no policy, the server is up but not ready and answers
// UNAVAILABLE; the policy appearing makes it ready without a restart. An
// invalid edit afterwards keeps the last good policy.
func TestServeBecomesReadyWhenPolicyAppears(t *testing.T) {
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	d := startServe(t, dir, "--policy", policy, "--refresh-interval", "50ms")
	defer d.stop()
	d.waitHealth(t, healthpb.HealthCheckResponse_NOT_SERVING)
	code, _, errOut := runCmd(t, "check", "--unix-socket", d.sock, "--subject", "alice", "--resource", "r", "--action", "a")
	if code != 2 || !strings.Contains(errOut, "Unavailable: no policy loaded yet") {
		t.Errorf("check before any policy: exit %d, stderr %q", code, errOut)
	}

	copyBookstore(t, dir)
	d.waitHealth(t, healthpb.HealthCheckResponse_SERVING)

	if err := os.WriteFile(policy, []byte("resources: [{id: r, actions: [read]}]\nroles: [{id: x, type: admin}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(d.status(t).GetLastError(), `roles[0].type: must be one of user, m2m, organization, got "admin"`) {
		if time.Now().After(deadline) {
			t.Fatalf("invalid edit not reported; status %v", d.status(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(d.logs.String(), "keeping the last good policy") {
		t.Errorf("invalid edit not logged; logs:\n%s", d.logs)
	}
	code, out, _ := runCmd(t, "check", "--unix-socket", d.sock, "--subject", "alice", "--resource", "https://api.store.io/orders", "--action", "read:order")
	if code != 0 || !strings.Contains(out, "bookstore-2026-11-20.1") {
		t.Errorf("check after an invalid edit: exit %d, %q", code, out)
	}
}

// SIGHUP refreshes at once, without waiting for the poll interval.
func TestServeReloadsOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	policy := copyBookstore(t, dir)
	d := startServe(t, dir, "--policy", policy, "--refresh-interval", "1h")
	defer d.stop()
	d.waitHealth(t, healthpb.HealthCheckResponse_SERVING)

	bumpBookstore(t, policy)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for d.status(t).GetRevision() != "bookstore-2026-11-21.1" {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not reload the policy; status %v; logs:\n%s", d.status(t), d.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDevIssuerAndValidateTokenUsage(t *testing.T) {
	typo := filepath.Join(t.TempDir(), "issuers.yaml")
	if err := os.WriteFile(typo, []byte("issuers:\n  - issuer: https://a.example\n    audience: [api]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"the dev issuer stays on loopback", []string{"dev-issuer", "--addr", "0.0.0.0:8400"}, "listens on loopback only"},
		{"the dev issuer refuses unknown algorithms", []string{"dev-issuer", "--addr", "127.0.0.1:0", "--alg", "HS256"}, "unsupported algorithm"},
		{"validate-token needs a token", []string{"validate-token"}, "give the token as one argument"},
		{"validate-token with a broken issuers file", []string{"validate-token", "--issuers", "nope.yaml", "x"}, "nope.yaml"},
		{"validate-token with a typo in the issuers file", []string{"validate-token", "--issuers", typo, "x"}, typo + ": line 3: unknown key issuers[0].audience; did you mean issuers[0].audiences?"},
		{"serve with an issuer flag before --issuer", []string{"serve", "--policy", bookstore, "--audience", "a"}, "comes after the --issuer it belongs to"},
		{"serve with an invalid issuer", []string{"serve", "--policy", bookstore, "--issuer", "stytch.com/p", "--profile", "stytch"}, "jwks_url is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCmd(t, tt.args...)
			if code != 2 || !strings.Contains(errOut, tt.msg) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errOut, tt.msg)
			}
		})
	}
}

// validate-token --issuers works without a server; with --policy it decides
// checks in the policy mode too.
func TestValidateTokenLocally(t *testing.T) {
	dir := t.TempDir()
	devAddr := startDevIssuer(t, freeAddr(t))
	issuers := filepath.Join(dir, "issuers.yaml")
	if err := os.WriteFile(issuers, []byte("issuers:\n  - issuer: http://"+devAddr+"\n    audiences: [bookstore]\n    claims: {org: org}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, tok, errOut := runCmd(t, "dev-issuer", "token", "--addr", devAddr, "--sub", "dave", "--aud", "bookstore", "--claims", `{"org": "acme"}`)
	if code != 0 {
		t.Fatalf("dev-issuer token: exit %d, %s", code, errOut)
	}
	var out, stderr bytes.Buffer
	code = run(t.Context(), []string{"validate-token", "--issuers", issuers, "--policy", bookstore, "--resource", "organization", "--action", "invite:member", "-"}, strings.NewReader(tok), &out, &stderr)
	if code != 0 || !strings.Contains(out.String(), "check:      allowed: GRANTED by role admin") || !strings.Contains(out.String(), "org:        acme") {
		t.Errorf("exit %d\n%s%s", code, out.String(), stderr.String())
	}
	out.Reset()
	code = run(t.Context(), []string{"validate-token", "--issuers", issuers, "--policy", bookstore, "--resource", "organization", "--action", "invite:member", "--check-org", "globex", "-"}, strings.NewReader(tok), &out, &stderr)
	if code != 1 || !strings.Contains(out.String(), "check:      denied: NO_PERMISSION") {
		t.Errorf("check in globex: exit %d\n%s", code, out.String())
	}
}

// TestMain fails the run when a test left a cache file in the package
// directory: every serve in these tests must keep its cache in a temporary
// directory.
func TestMain(m *testing.M) {
	code := m.Run()
	if _, err := os.Stat("rolecall.db"); err == nil {
		fmt.Fprintln(os.Stderr, "a test left rolecall.db in cmd/rolecall; give every serve a --cache in t.TempDir()")
		_ = os.Remove("rolecall.db")
		code = 1
	}
	os.Exit(code)
}

// documentUpstream serves a YAML policy document over loopback HTTP with
// its SHA-256 as ETag, answering 304 to a matching If-None-Match; set
// replaces the document.
func documentUpstream(t *testing.T, first string) (up *httptest.Server, set func(string)) {
	t.Helper()
	var doc atomic.Pointer[string]
	doc.Store(&first)
	up = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := *doc.Load()
		etag := fmt.Sprintf(`"%x"`, sha256.Sum256([]byte(body)))
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(up.Close)
	return up, func(s string) { doc.Store(&s) }
}

func TestServeFromHTTPUpstreamWithAdmin(t *testing.T) {
	data, err := os.ReadFile(bookstore)
	if err != nil {
		t.Fatal(err)
	}
	first := string(data)
	up, set := documentUpstream(t, first)

	dir := t.TempDir()
	keyFile := filepath.Join(dir, "webhook-key")
	if err := os.WriteFile(keyFile, []byte("logto-signing-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := freeAddr(t)
	d := startServe(t, dir, "--upstream", up.URL+"/bookstore.yaml", "--admin-addr", admin, "--logto-webhook-key-file", keyFile, "--refresh-interval", "1h")
	defer d.stop()
	d.waitHealth(t, healthpb.HealthCheckResponse_SERVING)
	base := "http://" + admin

	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("readyz: %d %q", code, body)
	}
	if code, body := get("/v1/status"); code != http.StatusOK || !strings.Contains(body, `"revision":"bookstore-2026-11-20.1"`) || !strings.Contains(body, `"source":"`+up.URL+`/bookstore.yaml"`) {
		t.Errorf("status: %d %s", code, body)
	}

	// An edit upstream arrives at once through a signed webhook.
	edited := strings.Replace(first, "bookstore-2026-11-20.1", "bookstore-2026-11-21.1", 1)
	set(edited)
	event := []byte(`{"event": "Role.Scopes.Updated"}`)
	mac := hmac.New(sha256.New, []byte("logto-signing-key"))
	mac.Write(event)
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/webhooks/logto", bytes.NewReader(event))
	req.Header.Set("logto-signature-sha-256", hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook: %d", resp.StatusCode)
	}
	deadline := time.Now().Add(10 * time.Second)
	for d.status(t).GetRevision() != "bookstore-2026-11-21.1" {
		if time.Now().After(deadline) {
			t.Fatalf("the webhook did not refresh; status %v", d.status(t))
		}
		time.Sleep(20 * time.Millisecond)
	}

	// POST /v1/refresh refreshes synchronously.
	third := strings.Replace(first, "bookstore-2026-11-20.1", "bookstore-2026-11-22.1", 1)
	set(third)
	resp, err = http.Post(base+"/v1/refresh", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "bookstore-2026-11-22.1") {
		t.Errorf("refresh: %d %s", resp.StatusCode, b)
	}
}

func TestServeUpstreamUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"--policy", bookstore, "--upstream", "https://x"}, "use --policy or --upstream, not both"},
		{[]string{"--upstream", "ftp://x"}, `policy.upstream: unknown scheme "ftp"`},
		{[]string{"--policy", bookstore, "--on-stale", "fail"}, "policy.on_stale: fail needs policy.max_stale"},
		{[]string{"--policy", bookstore, "--on-stale", "panic", "--max-stale", "1h"}, `policy.on_stale: "panic": want serve or fail`},
		{[]string{"--policy", bookstore, "--max-revoke-ratio", "2"}, "policy.max_revoke_ratio: 2: want 0 (off) to 1"},
		{[]string{"--upstream", "stytch://project-test-1"}, "ROLECALL_STYTCH_SECRET is empty (set it, or name --stytch-secret-file)"},
		{[]string{"--upstream", "logto://tenant.logto.app", "--logto-app-id", "app", "--logto-app-secret-file", "/nonexistent/secret"}, "/nonexistent/secret"},
		{[]string{"--upstream", "logto://tenant.logto.app"}, "policy.logto.app_id: required by a logto:// upstream"},
		{[]string{"--upstream", "https://x/p.json", "--upstream-bearer-token-env", "A", "--upstream-basic-user", "u"}, "choose a bearer token or basic auth"},
		{[]string{"--upstream", "https://x/v1/policy", "--upstream-long-poll-wait", "400s"}, "policy.http.long_poll_wait: 6m40s: at most 5m0s"},
		{[]string{"--policy", bookstore, "--policy-public-key", "/nonexistent/publisher.pub"}, "policy.public_key_file: open /nonexistent/publisher.pub"},
		{[]string{"--config", "/nonexistent/rolecall.yaml"}, "--config: open /nonexistent/rolecall.yaml"},
		{[]string{"--config"}, "--config needs a file"},
	}
	for _, tt := range tests {
		t.Setenv(config.EnvStytchSecret, "")
		code, _, errOut := runCmd(t, append([]string{"serve", "--cache", filepath.Join(t.TempDir(), "c.db")}, tt.args...)...)
		if code != 2 || !strings.Contains(errOut, tt.msg) {
			t.Errorf("serve %v: exit %d, stderr %q; want 2 and %q", tt.args, code, errOut, tt.msg)
		}
	}
}

// serve --config: the file's settings apply, a flag given overrides the file,
// decisions go to the decision log (request ids, never tokens) and to
// /metrics, and the log level changes at run time.
func TestServeFromConfigFile(t *testing.T) {
	dir := t.TempDir()
	admin := freeAddr(t)
	fileSock := filepath.Join(dir, "from-file.sock")
	dlogPath := filepath.Join(dir, "decisions.jsonl")
	cfgPath := filepath.Join(dir, "rolecall.yaml")
	abs, err := filepath.Abs(bookstore)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
grpc:
  address: ""
  unix_socket: %s
admin:
  address: %s
cache:
  path: %s
policy:
  upstream: %s
log:
  level: warn
decision_log:
  enabled: true
  output: %s
authz:
  address: ""
`, fileSock, admin, filepath.Join(dir, "rolecall.db"), abs, dlogPath)), 0o600); err != nil {
		t.Fatal(err)
	}

	// startServe adds --unix-socket DIR/rolecall.sock: the flag must win
	// over the file's unix_socket.
	d := startServe(t, dir, "--config", cfgPath)
	d.waitHealth(t, healthpb.HealthCheckResponse_SERVING)
	if _, err := os.Stat(fileSock); !os.IsNotExist(err) {
		t.Errorf("the file's socket exists although --unix-socket overrides it: %v", err)
	}

	api := rolecallv1.NewPolicyDecisionServiceClient(d.conn)
	ctx := metadata.AppendToOutgoingContext(t.Context(), "x-request-id", "req-42")
	if _, err := api.Check(ctx, &rolecallv1.CheckRequest{Subject: "alice", Resource: "https://api.store.io/orders", Action: "read:order"}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Check(t.Context(), &rolecallv1.CheckRequest{Subject: "bob", Resource: "https://api.store.io/orders", Action: "read:order"}); err != nil {
		t.Fatal(err)
	}
	const secretToken = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzZWNyZXQifQ.c2lnbmF0dXJl"
	_, _ = api.ValidateToken(t.Context(), &rolecallv1.ValidateTokenRequest{Token: secretToken})

	base := "http://" + admin
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	for _, want := range []string{
		`rolecall_decisions_total{allowed="true",reason="GRANTED"} 1`,
		`rolecall_decisions_total{allowed="false",reason="NO_PERMISSION"} 1`,
		`grpc_server_handled_total{grpc_code="OK",grpc_method="Check",grpc_service="rolecall.v1.PolicyDecisionService",grpc_type="unary"} 2`,
		`rolecall_policy_info{format="yaml",publisher="",revision="bookstore-2026-11-20.1",signing_key=""`,
		"go_goroutines",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	req, _ := http.NewRequest(http.MethodPut, base+"/v1/loglevel", strings.NewReader("debug"))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	resp, err = http.Get(base + "/v1/loglevel")
	if err != nil {
		t.Fatal(err)
	}
	level, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(level) != "DEBUG\n" {
		t.Errorf("log level after PUT debug = %q", level)
	}

	d.stop() // the decision log drains at shutdown
	logged, err := os.ReadFile(dlogPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(logged)), "\n")
	if len(lines) != 2 {
		t.Fatalf("decision log has %d lines, want 2:\n%s", len(lines), logged)
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first["subject"] != "alice" || first["allowed"] != true || first["reason"] != "GRANTED" || first["request_id"] != "req-42" || first["kind"] != "check" {
		t.Errorf("first decision logged as %v", first)
	}
	if strings.Contains(string(logged), secretToken) || strings.Contains(d.logs.String(), secretToken) {
		t.Error("a token reached the decision log or the process log")
	}
}

func TestConfigCheck(t *testing.T) {
	code, out, _ := runCmd(t, "config", "check", "../../examples/rolecall.yaml")
	if code != 0 || out != "../../examples/rolecall.yaml: ok\n" {
		t.Errorf("check of the example: exit %d, %q", code, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("policy:\n  upstream: x.yaml\n  on_stale: panic\nlog:\n  level: loud\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCmd(t, "config", "check", bad)
	if code != 1 || !strings.Contains(out, bad+`: policy.on_stale: "panic"`) || !strings.Contains(out, bad+`: log.level: "loud"`) {
		t.Errorf("check of a bad file: exit %d, %q", code, out)
	}
	typo := filepath.Join(t.TempDir(), "typo.yaml")
	if err := os.WriteFile(typo, []byte("grpc:\n  adress: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, _ = runCmd(t, "config", "check", typo); code != 1 || !strings.Contains(out, "line 2: unknown key grpc.adress") {
		t.Errorf("check of a typo: exit %d, %q", code, out)
	}
}

// The AuthZEN API is served on the HTTP edge listener and answers from the
// policy.
func TestServeAuthZEN(t *testing.T) {
	dir := t.TempDir()
	edge := freeAddr(t)
	d := startServe(t, dir, "--policy", bookstore, "--admin-addr", "", "--authz-addr", edge)
	defer d.stop()
	d.waitHealth(t, healthpb.HealthCheckResponse_SERVING)
	body := `{"subject": {"type": "user", "id": "dave"}, "resource": {"type": "organization", "id": "acme"}, "action": {"name": "invite:member"}, "context": {"org": "acme"}}`
	req, _ := http.NewRequest(http.MethodPost, "http://"+edge+"/access/v1/evaluation", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(got), `"decision":true`) || !strings.Contains(string(got), `"matched_role":"admin"`) {
		t.Errorf("AuthZEN evaluation: %d %s", resp.StatusCode, got)
	}
	resp, err = http.Get("http://" + edge + "/.well-known/authzen-configuration")
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(meta), `"search_subject_endpoint":"http://`+edge+`/access/v1/search/subject"`) {
		t.Errorf("AuthZEN metadata: %d %s", resp.StatusCode, meta)
	}
	// Subject Search from loopback: a local caller under who_can: local.
	body = `{"subject": {"type": "user"}, "resource": {"type": "organization"}, "action": {"name": "invite:member"}, "context": {"org": "acme"}}`
	req, _ = http.NewRequest(http.MethodPost, "http://"+edge+"/access/v1/search/subject", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(got), `"results":[{"type":"user","id":"dave","properties":{"matched_role":"admin"}}]`) {
		t.Errorf("AuthZEN subject search: %d %s", resp.StatusCode, got)
	}
}

// rolecall bench against a server in process: the counts it reports are the
// calls it made.
func TestBenchReportsCorrectCounts(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	d := startServe(t, dir, "--policy", bookstore, "--grpc-addr", addr)
	defer d.stop()
	d.waitHealth(t, healthpb.HealthCheckResponse_SERVING)
	code, out, errOut := runCmd(t, "bench", "--addr", addr, "--policy", bookstore, "--generate", "--requests", "500", "--concurrency", "4", "--connections", "2", "--json", "--server-pid", fmt.Sprint(os.Getpid()))
	if code != 0 {
		t.Fatalf("bench: exit %d: %s", code, errOut)
	}
	var r benchReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r.Check.Requests != 500 || r.Check.Errors != 0 || r.Health == nil || r.Health.Requests != 500 || r.Health.Errors != 0 {
		t.Errorf("bench counted %+v / %+v, want 500 calls of each and no errors", r.Check, r.Health)
	}
	if r.Check.Allowed == 0 || r.Check.Allowed == 500 {
		t.Errorf("%d of 500 generated checks allowed: the workload does not mix allows and denies", r.Check.Allowed)
	}
	if r.Check.RPS <= 0 || r.Check.Latency["p50"] <= 0 || r.Check.Latency["max"] < r.Check.Latency["p99"] || r.ThroughputRatio <= 0 || r.Check.ServerCPUSeconds <= 0 {
		t.Errorf("figures missing or inconsistent: %+v", r)
	}
	// Open loop at a fixed rate sends about that rate.
	code, out, errOut = runCmd(t, "bench", "--addr", addr, "--policy", bookstore, "--generate", "--duration", "1s", "--rps", "200", "--concurrency", "4", "--no-health", "--json")
	if code != 0 {
		t.Fatalf("bench --rps: exit %d: %s", code, errOut)
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Check.Requests < 150 || r.Check.Requests > 210 {
		t.Errorf("--rps 200 for 1s sent %d calls", r.Check.Requests)
	}
	if code, _, errOut := runCmd(t, "bench", "--addr", addr); code != 2 || !strings.Contains(errOut, "--workload FILE or --policy FILE --generate") {
		t.Errorf("bench without a workload: exit %d, %q", code, errOut)
	}
}

// rolecall bench --mode validate-token loads ValidateToken with the same
// tokens again and again.
func TestBenchValidateTokenMode(t *testing.T) {
	dir := t.TempDir()
	devAddr := startDevIssuer(t, freeAddr(t))
	issuers := filepath.Join(dir, "issuers.yaml")
	if err := os.WriteFile(issuers, []byte("issuers:\n  - issuer: http://"+devAddr+"\n    profile: logto\n    audiences: [api]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	d := startServe(t, dir, "--policy", bookstore, "--grpc-addr", addr, "--issuers", issuers)
	defer d.stop()
	d.waitHealth(t, healthpb.HealthCheckResponse_SERVING)
	_, tok, _ := runCmd(t, "dev-issuer", "token", "--addr", devAddr, "--sub", "alice", "--client-id", "web", "--aud", "api")
	tokens := filepath.Join(dir, "tokens.txt")
	if err := os.WriteFile(tokens, []byte(tok+"\nnot-a-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd(t, "bench", "--addr", addr, "--mode", "validate-token", "--token-file", tokens, "--requests", "200", "--concurrency", "2", "--no-health", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var r benchReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Check.Name != "validate-token" || r.Check.Requests != 200 || r.Check.Errors != 0 || r.Check.Allowed != 100 {
		t.Errorf("validate-token bench: %+v; want 200 calls, 100 valid tokens", r.Check)
	}
}
