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
	"strconv"
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
func (f *fakeRefresher) Accept(context.Context, string) error {
	return errors.New("fakeRefresher: no accept")
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

// docUpstream serves the document it holds, tagged with its content.
type docUpstream struct{ doc atomic.Pointer[string] }

func (u *docUpstream) String() string { return "test:doc" }
func (u *docUpstream) Fetch(_ context.Context, etag string) (refresh.Document, error) {
	data := []byte(*u.doc.Load())
	if tag := refresh.ContentTag(data); tag != etag {
		return refresh.Document{Data: data, Format: "yaml", ETag: tag}, nil
	}
	return refresh.Document{}, refresh.ErrNotModified
}

func (u *docUpstream) set(doc string) { u.doc.Store(&doc) }

func readersDoc(rev string, n int) string {
	var b strings.Builder
	b.WriteString("revision: " + rev + "\nresources: [{id: orders, actions: [read]}]\nroles: [{id: reader, type: user, permissions: [{resource: orders, actions: [read]}]}]\nsubjects:\n")
	for i := range n {
		b.WriteString("  - {id: s" + strconv.Itoa(i) + ", roles: [reader]}\n")
	}
	return b.String()
}

// A refresh whose policy is held back answers 409 with the reason; accept
// answers 409 when nothing or another revision is held, and installs the
// held revision with 200 and the status.
func TestAdminRefreshHoldAndAccept(t *testing.T) {
	up := &docUpstream{}
	up.set(readersDoc("r1", 10))
	engine := &pdp.Engine{}
	ref, err := refresh.New(refresh.Config{Upstream: up, Engine: engine, MaxRevokeRatio: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(httpapi.AdminHandler(decide.New(engine, decide.Options{}), httpapi.AdminOptions{Refresher: ref}))
	defer ts.Close()
	post := func(query string) (int, string) {
		return rctest.Do(t, http.MethodPost, ts.URL+"/v1/refresh"+query, nil, nil)
	}

	if code, body := post("?accept=r1"); code != http.StatusConflict || body != `{"error":"no policy is held"}`+"\n" {
		t.Errorf("accept with nothing held: %d %s", code, body)
	}
	if code, body := post(""); code != http.StatusOK || !strings.Contains(body, `"revision":"r1"`) {
		t.Fatalf("first refresh: %d %s", code, body)
	}
	up.set(readersDoc("r2", 1))
	const reason = `revision \"r2\" would remove 9 of 10 grants (90.0%), more than policy.max_revoke_ratio 0.5 allows; confirm with POST /v1/refresh?accept=r2`
	if code, body := post(""); code != http.StatusConflict || body != `{"error":"policy held back: `+reason+`"}`+"\n" {
		t.Errorf("refresh to a suspicious policy: %d %s", code, body)
	}
	code, body := rctest.Do(t, http.MethodGet, ts.URL+"/v1/status", nil, nil)
	var st struct {
		Revision   string
		LastError  string `json:"last_error"`
		LastChange any    `json:"last_change"`
		Held       struct {
			Revision, Reason string
			Change           struct {
				GrantsBefore string `json:"grants_before"`
				GrantsLost   string `json:"grants_lost"`
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != http.StatusOK {
		t.Fatalf("status: %d %s", code, body)
	}
	if st.Revision != "r1" || st.Held.Revision != "r2" || st.Held.Change.GrantsLost != "9" || st.Held.Change.GrantsBefore != "10" ||
		!strings.Contains(st.LastError, "would remove 9 of 10 grants") || st.LastChange != nil {
		t.Errorf("status while held: %s", body)
	}
	if code, body := post("?accept=r3"); code != http.StatusConflict || body != `{"error":"held revision is \"r2\", not \"r3\""}`+"\n" {
		t.Errorf("accept of another revision: %d %s", code, body)
	}
	if code, body := post("?accept=r2"); code != http.StatusOK || !strings.Contains(body, `"revision":"r2"`) || !strings.Contains(body, `"held":null`) ||
		!strings.Contains(body, `"grants_lost":"9"`) {
		t.Errorf("accept: %d %s", code, body)
	}
	if d, _ := engine.Decide(pdp.Query{Subject: "s5", Resource: "orders", Action: "read"}); d.Allowed || d.Revision != "r2" {
		t.Errorf("decision after accept = %+v, want r2's deny", d)
	}
}
