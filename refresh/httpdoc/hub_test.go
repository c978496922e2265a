package httpdoc_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/rolecall/rolecall/bundle"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
	"github.com/rolecall/rolecall/publish"
	"github.com/rolecall/rolecall/refresh"
	"github.com/rolecall/rolecall/refresh/httpdoc"
	"github.com/rolecall/rolecall/refresh/internal/refreshtest"
)

// hubPolicy is revision n of a small policy, compiled and published as a
// hub publishes it.
func hubPolicy(t *testing.T, n int) refresh.Installed {
	t.Helper()
	doc := []byte("revision: r" + strconv.Itoa(n) + "\n" + `resources: [{id: docs, actions: [read]}]
roles: [{id: reader, type: user, permissions: [{resource: docs, actions: [read]}]}]
subjects: [{id: u` + strconv.Itoa(n) + `, roles: [reader]}]
`)
	snap, err := policyfile.Compile(doc, policyfile.YAML)
	if err != nil {
		t.Fatal(err)
	}
	return refresh.Installed{Snapshot: snap, Document: refresh.Document{Data: doc, Format: policyfile.YAML}, PublishedAt: time.Now().Add(time.Duration(n) * time.Millisecond)}
}

// A real publisher behind a proxy that misbehaves on request, and a real
// refresher with its cache reading it: every fault is a clear error, nothing
// of the bad answer is served or cached, and the last good policy keeps
// serving until a good one arrives.
func TestHubFaultsKeepTheLastGoodPolicy(t *testing.T) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
	pub, err := publish.New(publish.Options{Name: "hub-0", SignKey: key})
	if err != nil {
		t.Fatal(err)
	}
	pub.Publish(hubPolicy(t, 1))
	var mu gosync.Mutex
	fault, behind := "", pub
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		f, p := fault, behind
		mu.Unlock()
		if f == "corrupted" {
			r.Header.Del("Accept-Encoding") // damage the bundle, not gzip's checksum
		}
		rec := httptest.NewRecorder()
		p.Handler().ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		switch f {
		case "html":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("<html><body>Sign in to continue</body></html>"))
			return
		case "truncated":
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(body[:len(body)/2]) // Content-Length says more
			return
		case "corrupted":
			body = bytes.Clone(body)
			body[len(body)-70] ^= 0xff
		case "dropped":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	}))
	defer proxy.Close()

	up, err := httpdoc.New(httpdoc.Config{URL: proxy.URL + "/v1/policy", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	engine := &pdp.Engine{}
	db := refreshtest.OpenCache(t, filepath.Join(t.TempDir(), "rolecall.db"))
	ref, err := refresh.New(refresh.Config{Upstream: up, Engine: engine, Cache: db, PublicKey: key.Public().(ed25519.PublicKey), Jitter: -1})
	if err != nil {
		t.Fatal(err)
	}
	serving := func() string {
		if s := engine.Snapshot(); s != nil {
			return s.Revision()
		}
		return ""
	}
	if err := ref.RefreshOnce(t.Context()); err != nil || serving() != "r1" {
		t.Fatalf("first refresh: %v, serving %q", err, serving())
	}
	pub.Publish(hubPolicy(t, 2)) // every fault below hides r2

	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{4}, ed25519.SeedSize))
	forged, err := publish.New(publish.Options{SignKey: other})
	if err != nil {
		t.Fatal(err)
	}
	forged.Publish(hubPolicy(t, 9))
	future := hubPolicy(t, 3)
	future.PublishedAt = time.Now().Add(6 * time.Hour)
	ahead, err := publish.New(publish.Options{SignKey: key})
	if err != nil {
		t.Fatal(err)
	}
	ahead.Publish(future)
	for _, tc := range []struct {
		fault string
		via   *publish.Publisher // another publisher behind the proxy
		want  string
		is    error
	}{
		{fault: "html", want: "answered 200 with text/html, not a policy"},
		{fault: "truncated", want: "cut short"},
		{fault: "corrupted", is: bundle.ErrBad},
		{fault: "dropped", want: "GET " + proxy.URL + "/v1/policy"},
		{via: forged, is: bundle.ErrSignature},
		{via: ahead, want: "ahead of this host's clock"},
	} {
		mu.Lock()
		fault, behind = tc.fault, pub
		if tc.via != nil {
			behind = tc.via
		}
		mu.Unlock()
		err := ref.RefreshOnce(t.Context())
		if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("fault %q%v: RefreshOnce = %v; want %v containing %q", tc.fault, tc.via != nil, err, tc.is, tc.want)
		}
		if serving() != "r1" {
			t.Fatalf("fault %q: serving %q, want r1 still", tc.fault, serving())
		}
		if st := ref.Status(); st.LastError == "" || st.Revision != "r1" {
			t.Errorf("fault %q: status %+v; want r1 with the error", tc.fault, st)
		}
		if rec, _, err := db.LoadPolicy(); err != nil || rec.Revision != "r1" {
			t.Fatalf("fault %q: the cache holds %q (%v), want r1", tc.fault, rec.Revision, err)
		}
	}
	mu.Lock()
	fault, behind = "", pub
	mu.Unlock()
	if err := ref.RefreshOnce(t.Context()); err != nil || serving() != "r2" {
		t.Fatalf("after the faults: %v, serving %q; want r2", err, serving())
	}
	if st := ref.Status(); !st.Verified || st.Publisher != "hub-0" || st.Format != "snapshot" {
		t.Fatalf("status %+v: want a verified snapshot from hub-0", st)
	}
}
