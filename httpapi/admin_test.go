package httpapi_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rolecall/rolecall/decide"
	"github.com/rolecall/rolecall/httpapi"
	"github.com/rolecall/rolecall/internal/rctest"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/refresh"
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
	ts := httptest.NewServer(httpapi.AdminHandler(decide.New(engine, decide.Options{}), httpapi.AdminOptions{Refresher: ref, LogtoWebhookKey: []byte(webhookKey)}))
	t.Cleanup(ts.Close)
	return ts
}

// The handler itself is tested in refresh/logto; this checks the route.
func TestAdminMountsTheLogtoWebhook(t *testing.T) {
	ref := &fakeRefresher{}
	ts := adminServer(t, rctest.Bookstore(t), ref)
	body := []byte(`{"event": "Role.Created"}`)
	mac := hmac.New(sha256.New, []byte(webhookKey))
	mac.Write(body)
	sig := hex.EncodeToString(mac.Sum(nil))
	if code, resp := rctest.Do(t, http.MethodPost, ts.URL+"/v1/webhooks/logto", body, map[string]string{"logto-signature-sha-256": sig}); code != http.StatusAccepted || ref.triggers.Load() != 1 {
		t.Errorf("signed role event: %d %s, %d triggers; want 202 and 1 trigger", code, resp, ref.triggers.Load())
	}
}

func TestWebhookWithoutKeyIsNotServed(t *testing.T) {
	ref := &fakeRefresher{}
	ts := httptest.NewServer(httpapi.AdminHandler(decide.New(rctest.Bookstore(t), decide.Options{}), httpapi.AdminOptions{Refresher: ref}))
	defer ts.Close()
	if code, _ := rctest.Do(t, http.MethodPost, ts.URL+"/v1/webhooks/logto", []byte(`{}`), nil); code != http.StatusNotFound {
		t.Errorf("webhook without a key: %d, want 404", code)
	}
}

func TestAdminStatusRefreshAndReadiness(t *testing.T) {
	ref := &fakeRefresher{status: refresh.Status{Source: "https://policy.example/p.json", Loaded: true, Revision: "bookstore-2026-11-20.1", ConsecutiveFailures: 2, LastError: "fetch: 503", LastSuccess: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}}
	engine := rctest.Bookstore(t)
	ts := adminServer(t, engine, ref)

	code, body := rctest.Do(t, http.MethodGet, ts.URL+"/v1/status", nil, nil)
	var st map[string]any
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != http.StatusOK {
		t.Fatalf("status: %d %s", code, body)
	}
	for k, want := range map[string]any{"source": "https://policy.example/p.json", "revision": "bookstore-2026-11-20.1", "consecutive_failures": float64(2), "last_error": "fetch: 503", "stale": false, "last_success": "2026-11-21T12:00:00Z"} {
		if st[k] != want {
			t.Errorf("status %s = %v, want %v", k, st[k], want)
		}
	}

	if code, body := rctest.Do(t, http.MethodPost, ts.URL+"/v1/refresh", nil, nil); code != http.StatusOK || ref.refreshs.Load() != 1 || !strings.Contains(body, "revision") {
		t.Errorf("refresh: %d %s", code, body)
	}
	ref.err = errors.New("fetch: GET https://policy.example/p.json: 503 Service Unavailable")
	if code, body := rctest.Do(t, http.MethodPost, ts.URL+"/v1/refresh", nil, nil); code != http.StatusBadGateway || !strings.Contains(body, "503") {
		t.Errorf("failed refresh: %d %s", code, body)
	}
	if code, _ := rctest.Do(t, http.MethodGet, ts.URL+"/v1/refresh", nil, nil); code != http.StatusMethodNotAllowed {
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
			engine.Swap(rctest.Bookstore(t).Snapshot())
		}
		code, body := rctest.Do(t, http.MethodGet, ts.URL+"/readyz", nil, nil)
		if code != tt.code || !strings.HasPrefix(body, tt.body) {
			t.Errorf("%s: readyz %d %q, want %d %q", tt.name, code, body, tt.code, tt.body)
		}
	}
	if code, body := rctest.Do(t, http.MethodGet, ts.URL+"/healthz", nil, nil); code != http.StatusOK || body != "ok\n" {
		t.Errorf("healthz: %d %q", code, body)
	}
}

func TestPprofOnlyWhenEnabled(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		ts := httptest.NewServer(httpapi.AdminHandler(decide.New(rctest.Bookstore(t), decide.Options{}), httpapi.AdminOptions{Refresher: &fakeRefresher{}, Pprof: enabled}))
		code, _ := rctest.Do(t, http.MethodGet, ts.URL+"/debug/pprof/", nil, nil)
		ts.Close()
		if want := map[bool]int{false: http.StatusNotFound, true: http.StatusOK}[enabled]; code != want {
			t.Errorf("pprof enabled=%v: /debug/pprof/ answered %d, want %d", enabled, code, want)
		}
	}
}

func TestLogLevelAtRunTime(t *testing.T) {
	var level slog.LevelVar
	ts := httptest.NewServer(httpapi.AdminHandler(decide.New(rctest.Bookstore(t), decide.Options{}), httpapi.AdminOptions{Refresher: &fakeRefresher{}, LogLevel: &level}))
	defer ts.Close()
	if code, body := rctest.Do(t, http.MethodPut, ts.URL+"/v1/loglevel", []byte("warn\n"), nil); code != http.StatusOK || level.Level() != slog.LevelWarn {
		t.Errorf("PUT warn: %d %q, level %v", code, body, level.Level())
	}
	if code, _ := rctest.Do(t, http.MethodPut, ts.URL+"/v1/loglevel", []byte("loud"), nil); code != http.StatusBadRequest || level.Level() != slog.LevelWarn {
		t.Errorf("PUT loud: %d, level %v", code, level.Level())
	}
	if code, body := rctest.Do(t, http.MethodGet, ts.URL+"/v1/loglevel", nil, nil); code != http.StatusOK || body != "WARN\n" {
		t.Errorf("GET: %d %q", code, body)
	}
}
