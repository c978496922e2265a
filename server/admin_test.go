package server_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/refresh"
	"github.com/rolecall/rolecall/server"
)

// fakeRefresher records what the admin endpoints ask of it.
type fakeRefresher struct {
	status   refresh.Status
	refreshs atomic.Int64
	triggers atomic.Int64
	err      error
}

func (f *fakeRefresher) Status() refresh.Status { return f.status }
func (f *fakeRefresher) RefreshOnce(context.Context) error {
	f.refreshs.Add(1)
	return f.err
}
func (f *fakeRefresher) Trigger() { f.triggers.Add(1) }

const webhookKey = "whsec-test-signing-key"

func adminServer(t *testing.T, engine *pdp.Engine, ref *fakeRefresher) *httptest.Server {
	t.Helper()
	srv := server.New(engine, server.Options{Status: ref})
	ts := httptest.NewServer(srv.AdminHandler(server.AdminOptions{Refresher: ref, LogtoWebhookKey: []byte(webhookKey)}))
	t.Cleanup(ts.Close)
	return ts
}

func do(t *testing.T, method, url string, body []byte, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func sign(body []byte) string {
	mac := hmac.New(sha256.New, []byte(webhookKey))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

func TestLogtoWebhook(t *testing.T) {
	ref := &fakeRefresher{}
	ts := adminServer(t, bookstoreEngine(t), ref)
	url := ts.URL + "/v1/webhooks/logto"
	roleEvent := []byte(`{"hookId": "h1", "event": "Role.Scopes.Updated", "createdAt": "2026-11-21T12:00:00.000Z", "data": {"id": "r1"}}`)
	signIn := []byte(`{"hookId": "h1", "event": "PostSignIn", "createdAt": "2026-11-21T12:00:00.000Z"}`)

	tests := []struct {
		name     string
		body     []byte
		sig      string
		code     int
		triggers int64
	}{
		{"a signed permission event triggers a refresh", roleEvent, sign(roleEvent), http.StatusAccepted, 1},
		{"a replay is at most one more refresh", roleEvent, sign(roleEvent), http.StatusAccepted, 2},
		{"an event that changes no permission is ignored", signIn, sign(signIn), http.StatusOK, 2},
		{"a wrong signature is refused", roleEvent, sign([]byte("other body")), http.StatusUnauthorized, 2},
		{"no signature is refused", roleEvent, "", http.StatusUnauthorized, 2},
		{"a signature that is not hex is refused", roleEvent, "zz" + sign(roleEvent)[2:], http.StatusUnauthorized, 2},
		{"a 10 MiB body is too large", bytes.Repeat([]byte("a"), 10<<20), "00", http.StatusRequestEntityTooLarge, 2},
		{"a signed body that is no event", []byte(`[1,2]`), sign([]byte(`[1,2]`)), http.StatusBadRequest, 2},
	}
	for _, tt := range tests {
		h := map[string]string{"Content-Type": "application/json"}
		if tt.sig != "" {
			h["logto-signature-sha-256"] = tt.sig
		}
		code, body := do(t, http.MethodPost, url, tt.body, h)
		if code != tt.code || ref.triggers.Load() != tt.triggers {
			t.Errorf("%s: %d %s, %d triggers; want %d and %d triggers", tt.name, code, body, ref.triggers.Load(), tt.code, tt.triggers)
		}
	}
	for _, event := range []string{"Scope.Created", "OrganizationRole.Scopes.Updated", "OrganizationScope.Deleted", "Organization.Membership.Updated", "Organization.Deleted", "User.Deleted"} {
		body := []byte(`{"event": "` + event + `"}`)
		if code, _ := do(t, http.MethodPost, url, body, map[string]string{"logto-signature-sha-256": sign(body)}); code != http.StatusAccepted {
			t.Errorf("%s: %d, want 202", event, code)
		}
	}
}

func TestWebhookWithoutKeyIsNotServed(t *testing.T) {
	ref := &fakeRefresher{}
	srv := server.New(bookstoreEngine(t), server.Options{})
	ts := httptest.NewServer(srv.AdminHandler(server.AdminOptions{Refresher: ref}))
	defer ts.Close()
	if code, _ := do(t, http.MethodPost, ts.URL+"/v1/webhooks/logto", []byte(`{}`), nil); code != http.StatusNotFound {
		t.Errorf("webhook without a key: %d, want 404", code)
	}
}

func TestAdminStatusRefreshAndReadiness(t *testing.T) {
	ref := &fakeRefresher{status: refresh.Status{Source: "https://policy.example/p.json", Loaded: true, Revision: "bookstore-2026-11-20.1", ConsecutiveFailures: 2, LastError: "fetch: 503", LastSuccess: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}}
	engine := bookstoreEngine(t)
	ts := adminServer(t, engine, ref)

	code, body := do(t, http.MethodGet, ts.URL+"/v1/status", nil, nil)
	var st map[string]any
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != http.StatusOK {
		t.Fatalf("status: %d %s", code, body)
	}
	for k, want := range map[string]any{"source": "https://policy.example/p.json", "revision": "bookstore-2026-11-20.1", "consecutive_failures": float64(2), "last_error": "fetch: 503", "stale": false, "last_success": "2026-11-21T12:00:00Z"} {
		if st[k] != want {
			t.Errorf("status %s = %v, want %v", k, st[k], want)
		}
	}

	if code, body := do(t, http.MethodPost, ts.URL+"/v1/refresh", nil, nil); code != http.StatusOK || ref.refreshs.Load() != 1 || !strings.Contains(body, "revision") {
		t.Errorf("refresh: %d %s", code, body)
	}
	ref.err = errors.New("fetch: GET https://policy.example/p.json: 503 Service Unavailable")
	if code, body := do(t, http.MethodPost, ts.URL+"/v1/refresh", nil, nil); code != http.StatusBadGateway || !strings.Contains(body, "503") {
		t.Errorf("failed refresh: %d %s", code, body)
	}
	if code, _ := do(t, http.MethodGet, ts.URL+"/v1/refresh", nil, nil); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/refresh: %d, want 405", code)
	}

	readiness := []struct {
		name   string
		status refresh.Status
		clear  bool
		code   int
		body   string
	}{
		{"ready", refresh.Status{Loaded: true}, false, http.StatusOK, "ready\n"},
		{"stale but served", refresh.Status{Loaded: true, Stale: true}, false, http.StatusOK, "ready; serving a stale policy"},
		{"withheld", refresh.Status{Loaded: true, Stale: true, Withheld: true}, true, http.StatusServiceUnavailable, "not ready: the policy is older than max_stale and withheld"},
		{"nothing loaded", refresh.Status{}, true, http.StatusServiceUnavailable, "not ready: no policy loaded yet"},
	}
	for _, tt := range readiness {
		ref.status = tt.status
		if tt.clear {
			engine.Swap(nil)
		} else {
			engine.Swap(bookstoreEngine(t).Snapshot())
		}
		code, body := do(t, http.MethodGet, ts.URL+"/readyz", nil, nil)
		if code != tt.code || !strings.HasPrefix(body, tt.body) {
			t.Errorf("%s: readyz %d %q, want %d %q", tt.name, code, body, tt.code, tt.body)
		}
	}
	if code, body := do(t, http.MethodGet, ts.URL+"/healthz", nil, nil); code != http.StatusOK || body != "ok\n" {
		t.Errorf("healthz: %d %q", code, body)
	}
}

func TestPprofOnlyWhenEnabled(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		srv := server.New(bookstoreEngine(t), server.Options{})
		ts := httptest.NewServer(srv.AdminHandler(server.AdminOptions{Refresher: &fakeRefresher{}, Pprof: enabled}))
		code, _ := do(t, http.MethodGet, ts.URL+"/debug/pprof/", nil, nil)
		ts.Close()
		if want := map[bool]int{false: http.StatusNotFound, true: http.StatusOK}[enabled]; code != want {
			t.Errorf("pprof enabled=%v: /debug/pprof/ answered %d, want %d", enabled, code, want)
		}
	}
}

func TestLogLevelAtRunTime(t *testing.T) {
	var level slog.LevelVar
	srv := server.New(bookstoreEngine(t), server.Options{})
	ts := httptest.NewServer(srv.AdminHandler(server.AdminOptions{Refresher: &fakeRefresher{}, LogLevel: &level}))
	defer ts.Close()
	if code, body := do(t, http.MethodPut, ts.URL+"/v1/loglevel", []byte("warn\n"), nil); code != http.StatusOK || level.Level() != slog.LevelWarn {
		t.Errorf("PUT warn: %d %q, level %v", code, body, level.Level())
	}
	if code, _ := do(t, http.MethodPut, ts.URL+"/v1/loglevel", []byte("loud"), nil); code != http.StatusBadRequest || level.Level() != slog.LevelWarn {
		t.Errorf("PUT loud: %d, level %v", code, level.Level())
	}
	if code, body := do(t, http.MethodGet, ts.URL+"/v1/loglevel", nil, nil); code != http.StatusOK || body != "WARN\n" {
		t.Errorf("GET: %d %q", code, body)
	}
}
