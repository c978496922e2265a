package publish_test

import (
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rolecall/rolecall/bundle"
	"github.com/rolecall/rolecall/internal/rctest"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
	"github.com/rolecall/rolecall/publish"
	"github.com/rolecall/rolecall/refresh"
)

const bookstoreRevision = "bookstore-2026-11-20.1"

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 123456789, time.UTC)

// bookstore is the example policy as the refresher installs it, with its
// revision replaced by revision when not "".
func bookstore(t testing.TB, revision string, at time.Time) refresh.Installed {
	t.Helper()
	data, err := os.ReadFile(rctest.BookstorePath())
	if err != nil {
		t.Fatal(err)
	}
	if revision != "" {
		data = bytes.Replace(data, []byte(bookstoreRevision), []byte(revision), 1)
	}
	snap, err := policyfile.Compile(data, policyfile.YAML)
	if err != nil {
		t.Fatal(err)
	}
	return refresh.Installed{Snapshot: snap, Document: refresh.Document{Data: data, Format: policyfile.YAML}, PublishedAt: at}
}

func newPublisher(t testing.TB, opts publish.Options) *publish.Publisher {
	t.Helper()
	p, err := publish.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// serve runs p on a loopback listener and returns its policy URL.
func serve(t testing.TB, p *publish.Publisher) string {
	t.Helper()
	srv := httptest.NewServer(p.Handler())
	t.Cleanup(srv.Close)
	return srv.URL + publish.Path
}

// client does not decompress, so the tests see what is sent.
var client = &http.Client{Transport: &http.Transport{DisableCompression: true}}

func get(t testing.TB, method, url string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	return rctest.Send(t, client, rctest.Request(t, method, url, nil, header))
}

// record serves one request in process, for the tests in a synctest bubble.
func record(p *publish.Publisher, method string, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, publish.Path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	p.Handler().ServeHTTP(w, req)
	return w
}

func openSnapshot(t testing.TB, body []byte, pub ed25519.PublicKey) (*bundle.Bundle, *pdp.Snapshot) {
	t.Helper()
	b, err := bundle.Open(body, pub)
	if err != nil {
		t.Fatalf("the answer is not a bundle that opens: %v", err)
	}
	snap, err := pdp.UnmarshalSnapshot(b.Snapshot)
	if err != nil {
		t.Fatalf("the bundle's snapshot does not load: %v", err)
	}
	return b, snap
}

func digestTag(t testing.TB, in refresh.Installed) string {
	t.Helper()
	bin, err := in.Snapshot.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bin)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

func TestNegotiation(t *testing.T) {
	p := newPublisher(t, publish.Options{Name: "hub-0"})
	in := bookstore(t, "", t0)
	p.Publish(in)
	url := serve(t, p)
	const snap, json = bundle.MediaType, publish.JSONMediaType
	for _, tc := range []struct {
		accept string
		want   string // a content type, or "406"
	}{
		{"", snap},
		{"*/*", snap},
		{"*", snap},
		{snap, snap},
		{"application/*", snap}, // a tie: the snapshot wins
		{json, json},
		{"APPLICATION/JSON", json},
		{"application/json, application/vnd.rolecall.snapshot;q=0.5", json},
		{"application/vnd.rolecall.snapshot;q=0.2, application/json;q=0.9", json},
		{"application/json;q=0, */*", snap},
		{"application/vnd.rolecall.snapshot;q=0, */*;q=0.1", json},
		{"text/html, application/json;q=0.001", json},
		{"text/html", "406"},
		{"*/*;q=0", "406"},
		{"application/vnd.rolecall.snapshot;q=0, application/json;q=0", "406"},
		{"application/json;q=lots, text/html", "406"}, // the malformed range is ignored
		{"nonsense", snap}, // no range parses: as if absent
	} {
		t.Run(tc.accept, func(t *testing.T) {
			resp, body := get(t, http.MethodGet, url, map[string]string{"Accept": tc.accept})
			if tc.want == "406" {
				if resp.StatusCode != http.StatusNotAcceptable || !strings.Contains(string(body), snap+", "+json) {
					t.Fatalf("Accept %q: %d %q, want 406 naming %s and %s", tc.accept, resp.StatusCode, body, snap, json)
				}
				return
			}
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != tc.want {
				t.Fatalf("Accept %q: %d %s, want 200 %s", tc.accept, resp.StatusCode, resp.Header.Get("Content-Type"), tc.want)
			}
			for k, v := range map[string]string{
				"Cache-Control":           "no-cache",
				"Vary":                    "Accept, Accept-Encoding, Prefer",
				refresh.PublishedAtHeader: "2026-12-02T10:00:00.123456789Z",
				publish.RevisionHeader:    bookstoreRevision,
				"Content-Length":          strconv.Itoa(len(body)),
			} {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			var rev string
			if tc.want == snap {
				b, s := openSnapshot(t, body, nil)
				rev = s.Revision()
				if b.Publisher != "hub-0" || !b.PublishedAt.Equal(t0) {
					t.Errorf("bundle meta %+v, want publisher hub-0 at %v", b.Meta, t0)
				}
				if etag := resp.Header.Get("ETag"); etag != digestTag(t, in) {
					t.Errorf("ETag %s, want the snapshot's digest %s", etag, digestTag(t, in))
				}
			} else {
				s, err := policyfile.Compile(body, policyfile.JSON)
				if err != nil {
					t.Fatalf("the JSON does not compile: %v", err)
				}
				rev = s.Revision()
				sum := sha256.Sum256(body)
				if etag := resp.Header.Get("ETag"); etag != `"`+hex.EncodeToString(sum[:])+`"` {
					t.Errorf("JSON ETag %s, want its SHA-256", etag)
				}
			}
			if rev != bookstoreRevision {
				t.Errorf("revision %q, want %q", rev, bookstoreRevision)
			}
		})
	}
}

// Two hub replicas compiling the same policy at different times give the
// same strong tag: it is the content's digest, not the envelope's.
func TestETagIsTheContentDigest(t *testing.T) {
	a := newPublisher(t, publish.Options{Name: "hub-0"})
	b := newPublisher(t, publish.Options{Name: "hub-1"})
	a.Publish(bookstore(t, "", t0))
	b.Publish(bookstore(t, "", t0.Add(time.Minute)))
	ra, bodyA := get(t, http.MethodGet, serve(t, a), nil)
	rb, bodyB := get(t, http.MethodGet, serve(t, b), nil)
	if bytes.Equal(bodyA, bodyB) {
		t.Fatal("the two bundles are equal; want different published_at and publisher")
	}
	if ra.Header.Get("ETag") != rb.Header.Get("ETag") || ra.Header.Get("ETag") != digestTag(t, bookstore(t, "", t0)) {
		t.Fatalf("ETags %s and %s, want both the snapshot digest", ra.Header.Get("ETag"), rb.Header.Get("ETag"))
	}
	if strings.HasPrefix(ra.Header.Get("ETag"), "W/") {
		t.Fatal("a weak tag; want a strong one")
	}
	// A replica's tag is a match at the other replica.
	resp, _ := get(t, http.MethodGet, serve(t, b), map[string]string{"If-None-Match": ra.Header.Get("ETag")})
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("hub-0's tag at hub-1: %d, want 304", resp.StatusCode)
	}
}

func TestNotModified(t *testing.T) {
	p := newPublisher(t, publish.Options{})
	p.Publish(bookstore(t, "", t0))
	url := serve(t, p)
	snap, _ := get(t, http.MethodGet, url, nil)
	js, _ := get(t, http.MethodGet, url, map[string]string{"Accept": "application/json"})
	tag, jsonTag := snap.Header.Get("ETag"), js.Header.Get("ETag")
	gzTag := strings.TrimSuffix(tag, `"`) + `-gzip"`
	for _, tc := range []struct {
		name, accept, encoding, inm string
		want                        int
		wantTag                     string
	}{
		{"identity tag", "", "", tag, 304, tag},
		{"gzip tag, identity answer", "", "", gzTag, 304, tag},
		{"identity tag, gzip answer", "", "gzip", tag, 304, gzTag},
		{"star", "", "", "*", 304, tag},
		{"weak form of the tag", "", "", "W/" + tag, 304, tag},
		{"in a list", "", "", `"other", ` + tag, 304, tag},
		{"another tag", "", "", `"other"`, 200, tag},
		{"the JSON's tag asking for the snapshot", "", "", jsonTag, 200, tag},
		{"JSON tag", "application/json", "", jsonTag, 304, jsonTag},
		{"snapshot tag asking for JSON", "application/json", "", tag, 200, jsonTag},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, http.MethodGet, url, map[string]string{"Accept": tc.accept, "Accept-Encoding": tc.encoding, "If-None-Match": tc.inm})
			if resp.StatusCode != tc.want || resp.Header.Get("ETag") != tc.wantTag {
				t.Fatalf("%d ETag %s, want %d ETag %s", resp.StatusCode, resp.Header.Get("ETag"), tc.want, tc.wantTag)
			}
			if tc.want == 304 {
				if len(body) != 0 || resp.Header.Get(publish.RevisionHeader) != bookstoreRevision || resp.Header.Get(refresh.PublishedAtHeader) == "" || resp.Header.Get("Cache-Control") != "no-cache" {
					t.Fatalf("304 with body %q and headers %v", body, resp.Header)
				}
			}
		})
	}
}

func TestGzip(t *testing.T) {
	p := newPublisher(t, publish.Options{})
	p.Publish(bookstore(t, "", t0))
	url := serve(t, p)
	for _, accept := range []string{bundle.MediaType, publish.JSONMediaType} {
		_, identity := get(t, http.MethodGet, url, map[string]string{"Accept": accept})
		for _, enc := range []string{"gzip", "br, gzip;q=0.5", "*"} {
			resp, body := get(t, http.MethodGet, url, map[string]string{"Accept": accept, "Accept-Encoding": enc})
			if resp.Header.Get("Content-Encoding") != "gzip" || !strings.HasSuffix(resp.Header.Get("ETag"), `-gzip"`) {
				t.Fatalf("%s, Accept-Encoding %q: Content-Encoding %q, ETag %s", accept, enc, resp.Header.Get("Content-Encoding"), resp.Header.Get("ETag"))
			}
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			plain, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(plain, identity) {
				t.Fatalf("%s: the gzip answer does not decode to the identity body (%v)", accept, err)
			}
			head, headBody := get(t, http.MethodHead, url, map[string]string{"Accept": accept, "Accept-Encoding": enc})
			if head.StatusCode != 200 || len(headBody) != 0 || head.Header.Get("Content-Length") != resp.Header.Get("Content-Length") || head.Header.Get("ETag") != resp.Header.Get("ETag") {
				t.Fatalf("HEAD: %d, %d body bytes, headers %v; GET's %v", head.StatusCode, len(headBody), head.Header, resp.Header)
			}
		}
		for _, enc := range []string{"", "identity", "gzip;q=0", "br", "*;q=0"} {
			resp, body := get(t, http.MethodGet, url, map[string]string{"Accept": accept, "Accept-Encoding": enc})
			if resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, identity) {
				t.Fatalf("Accept-Encoding %q: Content-Encoding %q", enc, resp.Header.Get("Content-Encoding"))
			}
		}
	}
}

// waitUntil polls cond for up to 10 s: for the loopback tests, where a
// request's arrival at the server is not observable otherwise.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A long poll over a real connection is answered with the new bundle when
// a policy is published.
func TestLongPollWakesOnPublish(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := newPublisher(t, publish.Options{Registerer: reg})
	first := bookstore(t, "", t0)
	p.Publish(first)
	url := serve(t, p)
	type answer struct {
		resp *http.Response
		body []byte
	}
	done := make(chan answer, 2)
	for _, accept := range []string{bundle.MediaType, publish.JSONMediaType} {
		resp, _ := get(t, http.MethodGet, url, map[string]string{"Accept": accept})
		go func() {
			resp, body := get(t, http.MethodGet, url, map[string]string{"Accept": accept, "If-None-Match": resp.Header.Get("ETag"), "Prefer": "wait=60"})
			done <- answer{resp, body}
		}()
	}
	waitUntil(t, "both requests wait", func() bool { return p.Waiting() == 2 })
	if got := gauge(t, reg, "rolecall_publish_waiting"); got != 2 {
		t.Fatalf("rolecall_publish_waiting = %v, want 2", got)
	}
	second := bookstore(t, "bookstore-2026-11-21.1", t0.Add(time.Hour))
	p.Publish(second)
	for range 2 {
		a := <-done
		if a.resp.StatusCode != http.StatusOK || a.resp.Header.Get("Preference-Applied") != "wait=60" || a.resp.Header.Get(publish.RevisionHeader) != "bookstore-2026-11-21.1" {
			t.Fatalf("woken long poll: %d, headers %v", a.resp.StatusCode, a.resp.Header)
		}
		var rev string
		if a.resp.Header.Get("Content-Type") == bundle.MediaType {
			_, s := openSnapshot(t, a.body, nil)
			rev = s.Revision()
		} else {
			s, err := policyfile.Compile(a.body, policyfile.JSON)
			if err != nil {
				t.Fatal(err)
			}
			rev = s.Revision()
		}
		if rev != "bookstore-2026-11-21.1" {
			t.Fatalf("the woken long poll got revision %q", rev)
		}
	}
	if p.Waiting() != 0 {
		t.Fatalf("Waiting() = %d after the answers", p.Waiting())
	}
}

func gauge(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// In a synctest bubble, time is the bubble's: an answer "at once" takes no
// time at all, and a wait takes exactly its length.
func TestLongPollTiming(t *testing.T) {
	for _, tc := range []struct {
		name    string
		maxWait time.Duration
		header  map[string]string // If-None-Match is the current tag unless set
		code    int
		took    time.Duration
		applied string
	}{
		{"expires after N seconds", 0, map[string]string{"Prefer": "wait=10"}, 304, 10 * time.Second, "wait=10"},
		{"N over 300 is clamped", 0, map[string]string{"Prefer": "wait=1000"}, 304, 300 * time.Second, "wait=300"},
		{"N over a huge number is clamped", 0, map[string]string{"Prefer": "wait=99999999999999999999999"}, 304, 300 * time.Second, "wait=300"},
		{"N over MaxWait is clamped", 30 * time.Second, map[string]string{"Prefer": "wait=100"}, 304, 30 * time.Second, "wait=30"},
		{"among other preferences, any case, with parameters", 0, map[string]string{"Prefer": `respond-async, WAIT = 5 ; x=y, wait=9`}, 304, 5 * time.Second, "wait=5"},
		{"a quoted value", 0, map[string]string{"Prefer": `wait="7"`}, 304, 7 * time.Second, "wait=7"},
		{"malformed: a fraction", 0, map[string]string{"Prefer": "wait=1.5"}, 304, 0, ""},
		{"malformed: negative", 0, map[string]string{"Prefer": "wait=-5"}, 304, 0, ""},
		{"malformed: no value", 0, map[string]string{"Prefer": "wait"}, 304, 0, ""},
		{"malformed: a word", 0, map[string]string{"Prefer": "wait=soon"}, 304, 0, ""},
		{"wait=0 does not wait", 0, map[string]string{"Prefer": "wait=0"}, 304, 0, ""},
		{"no Prefer", 0, map[string]string{}, 304, 0, ""},
		{"a stale tag answers at once", 0, map[string]string{"Prefer": "wait=60", "If-None-Match": `"old"`}, 200, 0, "wait=60"},
		{"no If-None-Match answers at once", 0, map[string]string{"Prefer": "wait=60", "If-None-Match": ""}, 200, 0, "wait=60"},
		{"not acceptable answers at once", 0, map[string]string{"Prefer": "wait=60", "Accept": "text/html"}, 406, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newPublisher(t, publish.Options{MaxWait: tc.maxWait})
				in := bookstore(t, "", t0)
				p.Publish(in)
				header := map[string]string{"If-None-Match": digestTag(t, in)}
				for k, v := range tc.header {
					header[k] = v
				}
				start := time.Now()
				w := record(p, http.MethodGet, header)
				if w.Code != tc.code || time.Since(start) != tc.took || w.Header().Get("Preference-Applied") != tc.applied {
					t.Fatalf("%d after %v, Preference-Applied %q; want %d after %v, %q", w.Code, time.Since(start), w.Header().Get("Preference-Applied"), tc.code, tc.took, tc.applied)
				}
			})
		})
	}
}

// A long poll is answered when the policy changes, not when the same
// content is published again.
func TestLongPollIgnoresTheSameContent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPublisher(t, publish.Options{})
		in := bookstore(t, "", t0)
		p.Publish(in)
		done := make(chan *httptest.ResponseRecorder)
		start := time.Now()
		go func() {
			done <- record(p, http.MethodGet, map[string]string{"If-None-Match": digestTag(t, in), "Prefer": "wait=20"})
		}()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		p.Publish(bookstore(t, "", t0.Add(5*time.Second))) // the same snapshot, compiled again
		time.Sleep(5 * time.Second)
		synctest.Wait()
		p.Publish(bookstore(t, "bookstore-2026-11-21.1", t0.Add(10*time.Second)))
		w := <-done
		if w.Code != http.StatusOK || w.Header().Get(publish.RevisionHeader) != "bookstore-2026-11-21.1" || time.Since(start) != 10*time.Second {
			t.Fatalf("%d %s after %v; want 200 with the new revision after 10s", w.Code, w.Header().Get(publish.RevisionHeader), time.Since(start))
		}
	})
}

func TestNoPolicyYet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPublisher(t, publish.Options{})
		w := record(p, http.MethodGet, nil)
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" || !strings.Contains(w.Body.String(), "no policy loaded yet") {
			t.Fatalf("no policy: %d %v %q", w.Code, w.Header(), w.Body)
		}
		// Asked to wait, it waits for the first policy...
		done := make(chan *httptest.ResponseRecorder)
		go func() { done <- record(p, http.MethodGet, map[string]string{"Prefer": "wait=30"}) }()
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if p.Waiting() != 1 {
			t.Fatalf("Waiting() = %d, want 1", p.Waiting())
		}
		p.Publish(bookstore(t, "", t0))
		w = <-done
		if w.Code != http.StatusOK || w.Header().Get("Preference-Applied") != "wait=30" {
			t.Fatalf("waiting for the first policy: %d %v", w.Code, w.Header())
		}
		// ...and with none by the end of the wait, it is 503.
		empty := newPublisher(t, publish.Options{})
		start := time.Now()
		w = record(empty, http.MethodGet, map[string]string{"Prefer": "wait=30"})
		if w.Code != http.StatusServiceUnavailable || time.Since(start) != 30*time.Second || w.Header().Get("Retry-After") != "1" {
			t.Fatalf("no policy within the wait: %d after %v", w.Code, time.Since(start))
		}
	})
}

func TestBearerToken(t *testing.T) {
	dir := t.TempDir()
	tokenPath := filepath.Join(dir, "token")
	write := func(s string) {
		if err := os.WriteFile(tokenPath, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("first-secret\n")
	var now atomic.Int64
	now.Store(t0.UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	p := newPublisher(t, publish.Options{BearerTokenFile: tokenPath, Now: clock})
	p.Publish(bookstore(t, "", t0))
	url := serve(t, p)
	check := func(auth string, want int) {
		t.Helper()
		resp, body := get(t, http.MethodGet, url, map[string]string{"Authorization": auth})
		if resp.StatusCode != want {
			t.Fatalf("Authorization %q: %d %q, want %d", auth, resp.StatusCode, body, want)
		}
		if want == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") != `Bearer realm="rolecall"` {
			t.Fatalf("401 without WWW-Authenticate: %v", resp.Header)
		}
		if strings.Contains(string(body), "secret") {
			t.Fatalf("the answer quotes a token: %q", body)
		}
	}
	check("", 401)
	check("Bearer", 401)
	check("Basic Zmlyc3Qtc2VjcmV0", 401)
	check("Bearer wrong-secret", 401)
	check("Bearer first-secret-and-more", 401)
	check("Bearer first-secret", 200)
	check("bearer   first-secret", 200)

	// Rotated: the new token counts once the file is read again, within a
	// second; until then the old one still does.
	write("second-secret")
	check("Bearer first-secret", 200)
	now.Add(int64(time.Second))
	check("Bearer second-secret", 200)
	check("Bearer first-secret", 401)

	// A file emptied or removed keeps the last good token.
	write("   \n")
	now.Add(int64(time.Second))
	check("Bearer second-secret", 200)
	if err := os.Remove(tokenPath); err != nil {
		t.Fatal(err)
	}
	now.Add(int64(time.Second))
	check("Bearer second-secret", 200)
	check("Bearer ", 401)

	// An empty file, or none, at the start is an error.
	write("\n")
	if _, err := publish.New(publish.Options{BearerTokenFile: tokenPath}); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Fatalf("New with an empty token file: %v", err)
	}
	if _, err := publish.New(publish.Options{BearerTokenFile: filepath.Join(dir, "missing")}); err == nil {
		t.Fatal("New with a missing token file: no error")
	}
}

func TestMethodsAndPaths(t *testing.T) {
	p := newPublisher(t, publish.Options{})
	p.Publish(bookstore(t, "", t0))
	url := serve(t, p)
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		resp, _ := get(t, m, url, nil)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d, Allow %q", m, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
	for _, path := range []string{"", "/", "/v1/policy/", "/v1/policies", "/v1/policy/x"} {
		resp, _ := get(t, http.MethodGet, strings.TrimSuffix(url, publish.Path)+path, nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %q: %d, want 404", path, resp.StatusCode)
		}
	}
}

func key(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// fromBundle is a policy installed from a bundle another publisher sealed.
func fromBundle(t testing.TB, in refresh.Installed, origin ed25519.PrivateKey) (refresh.Installed, []byte, bundle.Meta) {
	t.Helper()
	bin, err := in.Snapshot.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	meta := bundle.Meta{Revision: in.Snapshot.Revision(), PublishedAt: t0, Publisher: "origin"}
	sealed, err := bundle.Seal(bin, meta, origin)
	if err != nil {
		t.Fatal(err)
	}
	return refresh.Installed{
		Snapshot:    in.Snapshot,
		Document:    refresh.Document{Data: sealed, Format: refresh.FormatSnapshot},
		PublishedAt: t0,
		Publisher:   "origin",
	}, sealed, meta
}

func TestRepublishedBundle(t *testing.T) {
	origin, hub := key(1), key(2)
	originPub, hubPub := origin.Public().(ed25519.PublicKey), hub.Public().(ed25519.PublicKey)
	in, sealed, meta := fromBundle(t, bookstore(t, "", time.Time{}), origin)

	t.Run("without a key, as it came", func(t *testing.T) {
		p := newPublisher(t, publish.Options{Name: "relay"})
		p.Publish(in)
		url := serve(t, p)
		resp, body := get(t, http.MethodGet, url, nil)
		if !bytes.Equal(body, sealed) {
			t.Fatal("the republished bundle is not the origin's bytes")
		}
		b, _ := openSnapshot(t, body, originPub)
		if !b.Verified || b.Meta != meta {
			t.Fatalf("opened %+v, want the origin's meta, verified", b)
		}
		if resp.Header.Get(refresh.PublishedAtHeader) != "2026-12-02T10:00:00.123456789Z" || resp.Header.Get("ETag") != `"`+hex.EncodeToString(b.Digest[:])+`"` {
			t.Fatalf("headers %v", resp.Header)
		}
		// No document: JSON is not acceptable, and says why.
		resp, msg := get(t, http.MethodGet, url, map[string]string{"Accept": "application/json"})
		if resp.StatusCode != http.StatusNotAcceptable || !strings.Contains(string(msg), "came from a published snapshot bundle") {
			t.Fatalf("JSON of a bundle: %d %q", resp.StatusCode, msg)
		}
		if resp, _ := get(t, http.MethodGet, url, map[string]string{"Accept": "application/json, */*;q=0.1"}); resp.StatusCode != 200 || resp.Header.Get("Content-Type") != bundle.MediaType {
			t.Fatalf("JSON or anything: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	})
	t.Run("with a key, signed again with the origin's meta", func(t *testing.T) {
		p := newPublisher(t, publish.Options{Name: "relay", SignKey: hub})
		p.Publish(in)
		_, body := get(t, http.MethodGet, serve(t, p), nil)
		b, snap := openSnapshot(t, body, hubPub)
		if !b.Verified || b.Meta != meta || b.KeyID != p.KeyID() || snap.Revision() != bookstoreRevision {
			t.Fatalf("opened %+v, want the origin's meta %+v signed by %s", b, meta, p.KeyID())
		}
	})
}

// A bundle source whose bytes do not open (a cache written by another
// version, say) is sealed again from the snapshot rather than not published.
func TestRepublishedBundleThatDoesNotOpen(t *testing.T) {
	in := bookstore(t, "", t0)
	in.Document = refresh.Document{Data: []byte("not a bundle"), Format: refresh.FormatSnapshot}
	p := newPublisher(t, publish.Options{Name: "relay"})
	p.Publish(in)
	resp, body := get(t, http.MethodGet, serve(t, p), nil)
	b, snap := openSnapshot(t, body, nil)
	if resp.StatusCode != 200 || b.Publisher != "relay" || !b.PublishedAt.Equal(t0) || snap.Revision() != bookstoreRevision {
		t.Fatalf("%d, bundle %+v", resp.StatusCode, b.Meta)
	}
}

func TestSignKey(t *testing.T) {
	k := key(3)
	p := newPublisher(t, publish.Options{SignKey: k})
	p.Publish(bookstore(t, "", t0))
	_, body := get(t, http.MethodGet, serve(t, p), nil)
	b, _ := openSnapshot(t, body, k.Public().(ed25519.PublicKey))
	if !b.Verified || b.KeyID != bundle.KeyID(k.Public().(ed25519.PublicKey)) {
		t.Fatalf("opened %+v", b)
	}
	if _, err := bundle.Open(body, key(4).Public().(ed25519.PublicKey)); err == nil {
		t.Fatal("opened with another key")
	}
	if _, err := publish.New(publish.Options{SignKey: k[:10]}); err == nil {
		t.Fatal("New with a short key: no error")
	}
	if _, err := publish.New(publish.Options{MaxWait: 301 * time.Second}); err == nil {
		t.Fatal("New with MaxWait over 300s: no error")
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := newPublisher(t, publish.Options{Registerer: reg})
	url := serve(t, p)
	get(t, http.MethodGet, url, nil) // 503
	p.Publish(bookstore(t, "", t0))
	_, body := get(t, http.MethodGet, url, nil)
	resp, _ := get(t, http.MethodGet, url, map[string]string{"Accept": "application/json"})
	get(t, http.MethodGet, url, map[string]string{"Accept": "application/json", "If-None-Match": resp.Header.Get("ETag")})
	want := `
# HELP rolecall_publish_policy_info The policy revision being published: 1 for the current one.
# TYPE rolecall_publish_policy_info gauge
rolecall_publish_policy_info{revision="bookstore-2026-11-20.1"} 1
# HELP rolecall_publish_requests_total Requests to the publish listener, by HTTP status code and representation (snapshot, json, none).
# TYPE rolecall_publish_requests_total counter
rolecall_publish_requests_total{code="200",format="json"} 1
rolecall_publish_requests_total{code="200",format="snapshot"} 1
rolecall_publish_requests_total{code="304",format="json"} 1
rolecall_publish_requests_total{code="503",format="none"} 1
# HELP rolecall_publish_waiting Long polls being held by the publish listener, waiting for a new policy.
# TYPE rolecall_publish_waiting gauge
rolecall_publish_waiting 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "rolecall_publish_policy_info", "rolecall_publish_requests_total", "rolecall_publish_waiting"); err != nil {
		t.Fatal(err)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "rolecall_publish_sent_bytes_total" {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == "snapshot" && m.GetCounter().GetValue() != float64(len(body)) {
					t.Fatalf("snapshot bytes sent %v, want %d", m.GetCounter().GetValue(), len(body))
				}
			}
		}
	}
}

// The request headers the handler parses (Accept, Accept-Encoding, Prefer,
// If-None-Match) never make it fail, hang past the wait it applies, or
// answer with what was not offered.
func FuzzRequestHeaders(f *testing.F) {
	f.Add("application/json;q=0.5, */*;q=0.1", "gzip;q=1, br", "wait=10", `"x", W/"y"`)
	f.Add("*/*;q=0", "*;q=0", "WAIT = 5 ; p, respond-async", "*")
	f.Add("application/vnd.rolecall.snapshot;q=0, text/*", "", `wait="301"`, "")
	f.Add(";;,,/", "x-gzip", "wait=99999999999999999999", ",")
	in := bookstore(f, "", t0)
	f.Fuzz(func(t *testing.T, accept, encoding, prefer, inm string) {
		synctest.Test(t, func(t *testing.T) {
			p := newPublisher(t, publish.Options{})
			p.Publish(in)
			start := time.Now()
			w := record(p, http.MethodGet, map[string]string{"Accept": accept, "Accept-Encoding": encoding, "Prefer": prefer, "If-None-Match": inm})
			applied := w.Header().Get("Preference-Applied")
			var n int
			if applied != "" {
				if _, err := fmt.Sscanf(applied, "wait=%d", &n); err != nil || n < 1 || n > 300 {
					t.Fatalf("Preference-Applied %q", applied)
				}
			}
			if took := time.Since(start); took > time.Duration(n)*time.Second {
				t.Fatalf("answered after %v, with Preference-Applied %q", took, applied)
			}
			switch ct := w.Header().Get("Content-Type"); w.Code {
			case http.StatusOK:
				if ct != bundle.MediaType && ct != publish.JSONMediaType {
					t.Fatalf("200 with Content-Type %q", ct)
				}
			case http.StatusNotModified, http.StatusNotAcceptable:
			default:
				t.Fatalf("status %d", w.Code)
			}
		})
	})
}

// A withheld (stale) policy is not served: a waiting long poll is answered
// 503 at once, and so is every request until the policy is restored, so
// that consumers do not take a stale publisher's answers as fresh.
func TestWithhold(t *testing.T) {
	p := newPublisher(t, publish.Options{})
	p.Withhold(true) // nothing published yet: nothing to withhold
	in := bookstore(t, "", t0)
	p.Publish(in)
	url := serve(t, p)
	resp, _ := get(t, http.MethodGet, url, nil)
	etag := resp.Header.Get("ETag")
	done := make(chan *http.Response, 1)
	go func() {
		resp, _ := get(t, http.MethodGet, url, map[string]string{"If-None-Match": etag, "Prefer": "wait=60"})
		done <- resp
	}()
	waitUntil(t, "the long poll waits", func() bool { return p.Waiting() == 1 })
	p.Withhold(true)
	if resp := <-done; resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || resp.Header.Get("Preference-Applied") != "" {
		t.Fatalf("the waiting long poll got %d %v; want 503 with Retry-After at once", resp.StatusCode, resp.Header)
	}
	for _, h := range []map[string]string{nil, {"If-None-Match": etag}, {"If-None-Match": etag, "Prefer": "wait=60"}} {
		if resp, body := get(t, http.MethodGet, url, h); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "stale") {
			t.Fatalf("withheld, %v: %d %q; want 503 saying the policy is stale", h, resp.StatusCode, body)
		}
	}
	p.Withhold(false)
	if resp, _ := get(t, http.MethodGet, url, map[string]string{"If-None-Match": etag}); resp.StatusCode != http.StatusNotModified {
		t.Fatalf("restored: %d, want 304 for the tag held", resp.StatusCode)
	}
}
