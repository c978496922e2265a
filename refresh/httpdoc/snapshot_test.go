package httpdoc_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rolecall/rolecall/bundle"
	"github.com/rolecall/rolecall/policyfile"
	"github.com/rolecall/rolecall/refresh"
	"github.com/rolecall/rolecall/refresh/httpdoc"
	"github.com/rolecall/rolecall/refresh/internal/refreshtest"
)

// sealed is a published bundle, unsigned: the upstream does not open it,
// the refresher does.
func sealed(t *testing.T, revision string) []byte {
	t.Helper()
	data, err := bundle.Seal([]byte("RCSNAP\x00\x01 pretend compiled policy "+revision), bundle.Meta{Revision: revision, PublishedAt: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC), Publisher: "hub-0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// serve starts a loopback server running h and an upstream for its
// /v1/policy, built with cfg.
func serve(t *testing.T, cfg httpdoc.Config, h http.HandlerFunc) (*httpdoc.Upstream, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg.URL = srv.URL + "/v1/policy"
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	up, err := httpdoc.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return up, cfg.URL
}

// headers records the request headers a server saw, in order.
type headers struct {
	mu   sync.Mutex
	seen []http.Header
}

func (h *headers) add(r *http.Request) {
	h.mu.Lock()
	h.seen = append(h.seen, r.Header.Clone())
	h.mu.Unlock()
}

func (h *headers) last() http.Header {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.seen) == 0 {
		return http.Header{}
	}
	return h.seen[len(h.seen)-1]
}

func TestFetchAsksForTheSnapshotFirst(t *testing.T) {
	var seen headers
	up, _ := serve(t, httpdoc.Config{}, func(w http.ResponseWriter, r *http.Request) {
		seen.add(r)
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write([]byte(refreshtest.GoodV1))
	})
	if _, err := up.Fetch(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	const want = "application/vnd.rolecall.snapshot, application/json;q=0.9, application/yaml;q=0.8, */*;q=0.1"
	if got := seen.last().Get("Accept"); got != want {
		t.Errorf("Accept = %q, want %q", got, want)
	}
	if got := seen.last().Get("Prefer"); got != "" {
		t.Errorf("Fetch sent Prefer: %q", got)
	}
}

// The format comes from the answer: a publisher's content type, a plain
// server's JSON or YAML type as before, or the bytes when an object store
// says application/octet-stream or nothing. What is not a policy is refused
// with an error saying what it is.
func TestFetchDecidesTheFormatFromTheAnswer(t *testing.T) {
	snap := sealed(t, "r1")
	const jsonDoc = `{"revision": "v1"}`
	tests := []struct {
		name        string
		contentType string // "-": none at all
		body        []byte
		want        policyfile.Format
		wantErr     string
	}{
		{"a publisher's snapshot", bundle.MediaType, snap, refresh.FormatSnapshot, ""},
		{"an object store's octet-stream bundle", "application/octet-stream", snap, refresh.FormatSnapshot, ""},
		{"a bundle without a content type", "-", snap, refresh.FormatSnapshot, ""},
		{"plain JSON", "application/json; charset=utf-8", []byte(jsonDoc), policyfile.JSON, ""},
		{"plain YAML", "application/yaml", []byte(refreshtest.GoodV1), policyfile.YAML, ""},
		{"YAML as text/plain", "text/plain; charset=utf-8", []byte(refreshtest.GoodV1), policyfile.YAML, ""},
		{"JSON as octet-stream", "application/octet-stream", []byte(jsonDoc), policyfile.JSON, ""},
		{"an HTML login page", "text/html; charset=utf-8", []byte("<!DOCTYPE html><html><body>Sign in</body></html>"), "",
			"the upstream answered 200 with text/html, not a policy (a login page or proxy error?)"},
		{"an HTML page without its type", "application/octet-stream", []byte("<!DOCTYPE html><html><body>502</body></html>"), "",
			"the upstream answered 200 with an HTML page, not a policy (a login page or proxy error?)"},
		{"a snapshot type on a document", bundle.MediaType, []byte(jsonDoc), "",
			"the content type says snapshot but the body is not a rolecall bundle"},
		{"an empty body", "application/json", nil, "", "the upstream answered 200 with an empty body, not a policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up, url := serve(t, httpdoc.Config{}, func(w http.ResponseWriter, r *http.Request) {
				if tt.contentType == "-" {
					w.Header()["Content-Type"] = nil // no sniffing by net/http
				} else {
					w.Header().Set("Content-Type", tt.contentType)
				}
				w.Header().Set("ETag", `"e1"`)
				_, _ = w.Write(tt.body)
			})
			doc, err := up.Fetch(t.Context(), "")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "GET "+url) {
					t.Fatalf("err = %v, want it to name %s and say %q", err, url, tt.wantErr)
				}
				if doc.Data != nil {
					t.Errorf("a refused answer came with %d bytes", len(doc.Data))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if doc.Format != tt.want || !bytes.Equal(doc.Data, tt.body) || doc.ETag != `"e1"` {
				t.Errorf("Fetch = format %q, %d bytes, etag %s; want %q, the %d bytes served, \"e1\"", doc.Format, len(doc.Data), doc.ETag, tt.want, len(tt.body))
			}
		})
	}
}

func TestFetchReadsPublishedAt(t *testing.T) {
	at := time.Date(2026, 12, 2, 10, 0, 0, 123456789, time.UTC)
	for _, tt := range []struct {
		name, header string
		want         time.Time
	}{
		{"RFC 3339 with nanoseconds", at.Format(time.RFC3339Nano), at},
		{"another zone, kept as UTC", at.In(time.FixedZone("CET", 3600)).Format(time.RFC3339Nano), at},
		{"malformed: unknown, no error", "yesterday", time.Time{}},
		{"absent", "", time.Time{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up, _ := serve(t, httpdoc.Config{}, func(w http.ResponseWriter, r *http.Request) {
				if tt.header != "" {
					w.Header().Set(refresh.PublishedAtHeader, tt.header)
				}
				w.Header().Set("Content-Type", bundle.MediaType)
				_, _ = w.Write(sealed(t, "r1"))
			})
			doc, err := up.Fetch(t.Context(), "")
			if err != nil {
				t.Fatal(err)
			}
			if !doc.PublishedAt.Equal(tt.want) || doc.PublishedAt.Location() != time.UTC {
				t.Errorf("PublishedAt = %v, want %v in UTC", doc.PublishedAt, tt.want)
			}
		})
	}
}

func TestFetchDecodesAGzippedBundle(t *testing.T) {
	snap := sealed(t, "r1")
	var seen headers
	up, _ := serve(t, httpdoc.Config{}, func(w http.ResponseWriter, r *http.Request) {
		seen.add(r)
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			t.Error("gzip not asked for")
		}
		w.Header().Set("Content-Type", bundle.MediaType)
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		_, _ = zw.Write(snap)
		_ = zw.Close()
	})
	doc, err := up.Fetch(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if doc.Format != refresh.FormatSnapshot || !bytes.Equal(doc.Data, snap) {
		t.Errorf("Fetch = format %q, %d bytes; want the %d bytes of the bundle, decoded", doc.Format, len(doc.Data), len(snap))
	}
}

// hub is a fake rolecall publisher: it serves a bundle tagged etag, and
// when asked to wait on that tag it says so on holding and waits for the
// test's word on release.
type hub struct {
	seen    headers
	holding chan struct{}
	release chan func(http.ResponseWriter, *http.Request)
}

func newHub() *hub {
	return &hub{holding: make(chan struct{}, 4), release: make(chan func(http.ResponseWriter, *http.Request))}
}

func (h *hub) serve(etag string, snap []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h.seen.add(r)
		if r.Header.Get("If-None-Match") == etag && r.Header.Get("Prefer") != "" {
			h.holding <- struct{}{}
			select {
			case answer := <-h.release:
				answer(w, r)
			case <-r.Context().Done():
			}
			return
		}
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Type", bundle.MediaType)
		_, _ = w.Write(snap)
	}
}

type waitResult struct {
	doc  refresh.Document
	held bool
	err  error
}

func fetchWait(ctx context.Context, up *httpdoc.Upstream, etag string, wait time.Duration) <-chan waitResult {
	c := make(chan waitResult, 1)
	go func() {
		doc, held, err := up.FetchWait(ctx, etag, wait)
		c <- waitResult{doc, held, err}
	}()
	return c
}

// FetchWait always sends Prefer (without an etag the publisher answers at
// once, and says whether it long-polls); Fetch never does.
func TestFetchWaitSendsPrefer(t *testing.T) {
	h := newHub()
	up, _ := serve(t, httpdoc.Config{}, func(w http.ResponseWriter, r *http.Request) {
		h.seen.add(r)
		w.Header().Set("ETag", `"v2"`)
		w.Header().Set("Content-Type", bundle.MediaType)
		_, _ = w.Write(sealed(t, "r2"))
	})
	for _, tt := range []struct {
		name   string
		fetch  func() error
		prefer string
	}{
		{"no etag: answered at once, but asked", func() error { _, _, err := up.FetchWait(t.Context(), "", 55*time.Second); return err }, "wait=55"},
		{"an etag", func() error { _, _, err := up.FetchWait(t.Context(), `"v1"`, 55*time.Second); return err }, "wait=55"},
		{"whole seconds", func() error { _, _, err := up.FetchWait(t.Context(), `"v1"`, 2500*time.Millisecond); return err }, "wait=2"},
		{"at least one second", func() error { _, _, err := up.FetchWait(t.Context(), `"v1"`, time.Millisecond); return err }, "wait=1"},
		{"a plain Fetch never waits", func() error { _, err := up.Fetch(t.Context(), `"v1"`); return err }, ""},
	} {
		if err := tt.fetch(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := h.seen.last().Values("Prefer"); strings.Join(got, ",") != tt.prefer {
			t.Errorf("%s: Prefer = %q, want %q", tt.name, got, tt.prefer)
		}
	}
}

// A publisher holding the request answers when the policy changes (200) or
// when the wait is over (304); either way it says Preference-Applied, and
// the fetch reports held. A server that ignores Prefer says nothing, and
// the fetch reports not held, so the refresher falls back to its interval.
func TestFetchWaitReportsWhetherTheServerHeld(t *testing.T) {
	next := sealed(t, "r2")
	changed := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Preference-Applied", "wait=55")
		w.Header().Set("ETag", `"v2"`)
		w.Header().Set("Content-Type", bundle.MediaType)
		_, _ = w.Write(next)
	}
	waited := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Preference-Applied", "wait=55")
		w.WriteHeader(http.StatusNotModified)
	}
	t.Run("held, then the policy changed", func(t *testing.T) {
		h := newHub()
		up, _ := serve(t, httpdoc.Config{}, h.serve(`"v1"`, sealed(t, "r1")))
		res := fetchWait(t.Context(), up, `"v1"`, 55*time.Second)
		<-h.holding
		select {
		case r := <-res:
			t.Fatalf("FetchWait returned while the server held it: %+v", r)
		default:
		}
		h.release <- changed
		r := <-res
		if r.err != nil || !r.held || r.doc.Format != refresh.FormatSnapshot || !bytes.Equal(r.doc.Data, next) || r.doc.ETag != `"v2"` {
			t.Errorf("FetchWait = held %v, %q %d bytes etag %s, %v; want held, the new bundle, \"v2\"", r.held, r.doc.Format, len(r.doc.Data), r.doc.ETag, r.err)
		}
	})
	t.Run("held, then nothing changed", func(t *testing.T) {
		h := newHub()
		up, _ := serve(t, httpdoc.Config{}, h.serve(`"v1"`, sealed(t, "r1")))
		res := fetchWait(t.Context(), up, `"v1"`, 55*time.Second)
		<-h.holding
		h.release <- waited
		r := <-res
		if !errors.Is(r.err, refresh.ErrNotModified) || !r.held || r.doc.Data != nil {
			t.Errorf("FetchWait = held %v, %d bytes, %v; want held and ErrNotModified", r.held, len(r.doc.Data), r.err)
		}
	})
	t.Run("Prefer ignored", func(t *testing.T) {
		up, _ := serve(t, httpdoc.Config{}, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("If-None-Match") == `"v1"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Header().Set("Content-Type", "application/yaml")
			_, _ = w.Write([]byte(refreshtest.GoodV1))
		})
		if _, held, err := up.FetchWait(t.Context(), `"v1"`, 55*time.Second); !errors.Is(err, refresh.ErrNotModified) || held {
			t.Errorf("304 without Preference-Applied: held %v, %v; want not held, ErrNotModified", held, err)
		}
		doc, held, err := up.FetchWait(t.Context(), `"v0"`, 55*time.Second)
		if err != nil || held || doc.Format != policyfile.YAML {
			t.Errorf("200 without Preference-Applied: held %v, format %q, %v; want not held, YAML", held, doc.Format, err)
		}
	})
	t.Run("Preference-Applied among others", func(t *testing.T) {
		up, _ := serve(t, httpdoc.Config{}, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Add("Preference-Applied", "return=minimal")
			w.Header().Add("Preference-Applied", "respond-async, Wait=10")
			w.WriteHeader(http.StatusNotModified)
		})
		if _, held, err := up.FetchWait(t.Context(), `"v1"`, 10*time.Second); !errors.Is(err, refresh.ErrNotModified) || !held {
			t.Errorf("FetchWait = held %v, %v; want held", held, err)
		}
	})
}

// The timeout bounds an answer, not a long poll: a request the server holds
// past the timeout, within wait + timeout, succeeds. The proof that the
// timeout has passed is a plain Fetch started later, with the same timeout,
// failing for it.
func TestFetchWaitOutlivesTheTimeout(t *testing.T) {
	h := newHub()
	up, _ := serve(t, httpdoc.Config{Timeout: 200 * time.Millisecond}, func(w http.ResponseWriter, r *http.Request) {
		h.seen.add(r)
		h.holding <- struct{}{}
		if r.Header.Get("Prefer") == "" {
			<-r.Context().Done() // the plain fetch: never answered
			return
		}
		select {
		case answer := <-h.release:
			answer(w, r)
		case <-r.Context().Done():
		}
	})
	longPoll := fetchWait(t.Context(), up, `"v1"`, 2*time.Second)
	<-h.holding
	plain := make(chan error, 1)
	go func() { _, err := up.Fetch(t.Context(), `"v1"`); plain <- err }()
	<-h.holding
	if err := <-plain; err == nil || !strings.Contains(err.Error(), "no complete answer within 200ms") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the plain fetch held past its timeout: err = %v, want the timeout", err)
	}
	answer := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Preference-Applied", "wait=2")
		w.WriteHeader(http.StatusNotModified)
	}
	select {
	case h.release <- answer:
	case r := <-longPoll:
		t.Fatalf("the long poll ended with the timeout, before the server answered: %v", r.err)
	}
	if r := <-longPoll; !errors.Is(r.err, refresh.ErrNotModified) || !r.held {
		t.Errorf("the long poll, answered after the timeout but within its wait: held %v, %v; want held and ErrNotModified", r.held, r.err)
	}
}

// A long poll the server drops, before or during its answer, is an error
// naming the URL, never a partial document.
func TestFetchWaitDroppedIsAnError(t *testing.T) {
	snap := sealed(t, "r2")
	hijackClose := func(w http.ResponseWriter) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		_ = conn.Close()
	}
	tests := []struct {
		name    string
		answer  func(w http.ResponseWriter, r *http.Request)
		maxSize int64
		want    string
	}{
		{"connection closed while waiting", func(w http.ResponseWriter, r *http.Request) {
			hijackClose(w)
		}, 0, "the upstream closed the connection while holding the request (long poll)"},
		{"body cut short", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Preference-Applied", "wait=55")
			w.Header().Set("Content-Type", bundle.MediaType)
			w.Header().Set("Content-Length", fmt.Sprint(len(snap)))
			_, _ = w.Write(snap[:len(snap)/2])
			w.(http.Flusher).Flush()
			hijackClose(w)
		}, 0, "reading the body: the body was cut short: unexpected EOF"},
		{"gzip cut short", func(w http.ResponseWriter, r *http.Request) {
			var zipped bytes.Buffer
			zw := gzip.NewWriter(&zipped)
			_, _ = zw.Write(snap)
			_ = zw.Close()
			w.Header().Set("Preference-Applied", "wait=55")
			w.Header().Set("Content-Type", bundle.MediaType)
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(zipped.Bytes()[:zipped.Len()/2])
		}, 0, "reading the body: the body was cut short: unexpected EOF"},
		{"over the size limit", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Preference-Applied", "wait=55")
			w.Header().Set("Content-Type", bundle.MediaType)
			_, _ = w.Write(snap)
		}, 16, "the document is over the 16-byte limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHub()
			up, url := serve(t, httpdoc.Config{MaxBytes: tt.maxSize}, h.serve(`"v1"`, sealed(t, "r1")))
			res := fetchWait(t.Context(), up, `"v1"`, 55*time.Second)
			<-h.holding
			h.release <- tt.answer
			r := <-res
			if r.err == nil || !strings.Contains(r.err.Error(), tt.want) || !strings.Contains(r.err.Error(), "GET "+url+":") {
				t.Errorf("err = %v, want it to name %s and say %q", r.err, url, tt.want)
			}
			if r.doc.Data != nil || r.held {
				t.Errorf("a dropped long poll gave held %v and %d bytes", r.held, len(r.doc.Data))
			}
		})
	}
}

func TestFetchWaitStopsWithItsContext(t *testing.T) {
	h := newHub()
	up, url := serve(t, httpdoc.Config{}, h.serve(`"v1"`, sealed(t, "r1")))
	ctx, cancel := context.WithCancel(t.Context())
	res := fetchWait(ctx, up, `"v1"`, 55*time.Second)
	<-h.holding
	cancel()
	select {
	case r := <-res:
		if !errors.Is(r.err, context.Canceled) || !strings.Contains(r.err.Error(), url) || r.held {
			t.Errorf("FetchWait after cancel = held %v, %v; want context.Canceled naming %s", r.held, r.err, url)
		}
	case <-time.After(10 * time.Second): // a watchdog, not a measure
		t.Fatal("FetchWait kept waiting after its context was cancelled")
	}
}
