package httpdoc_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rolecall/rolecall/cache"
	"github.com/rolecall/rolecall/internal/testcerts"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/refresh"
	"github.com/rolecall/rolecall/refresh/httpdoc"
	"github.com/rolecall/rolecall/refresh/internal/refreshtest"
)

// fault is how the fake upstream misbehaves.
type fault int32

const (
	healthy fault = iota
	refused
	dnsFailure
	status500
	status503RetryAfter
	status401
	status403
	halfBody
	slowBody
	overLimit
	invalidJSON
	invalidPolicy
	always304
	newETagSameBody
)

// fakeUpstream serves a policy document with ETags on a real loopback
// server and can be told to fail in every way the issue lists.
type fakeUpstream struct {
	srv     *httptest.Server
	closed  string // an address where nothing listens
	fault   atomic.Int32
	hits    atomic.Int64
	mu      sync.Mutex
	body    string
	etag    string
	lastINM string
	auth    string
}

func newFakeUpstream(t *testing.T, body string) *fakeUpstream {
	t.Helper()
	f := &fakeUpstream{body: body, etag: `"v1"`}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.closed = l.Addr().String()
	_ = l.Close()
	return f
}

func (f *fakeUpstream) serve(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	f.mu.Lock()
	body, etag := f.body, f.etag
	f.lastINM, f.auth = r.Header.Get("If-None-Match"), r.Header.Get("Authorization")
	f.mu.Unlock()
	switch fault(f.fault.Load()) {
	case status500:
		http.Error(w, "boom", http.StatusInternalServerError)
		return
	case status503RetryAfter:
		w.Header().Set("Retry-After", "120")
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
		return
	case status401:
		http.Error(w, "who are you", http.StatusUnauthorized)
		return
	case status403:
		http.Error(w, "not you", http.StatusForbidden)
		return
	case halfBody:
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = io.WriteString(w, body[:len(body)/2])
		hj, _ := w.(http.Hijacker)
		conn, _, _ := hj.Hijack()
		_ = conn.Close()
		return
	case slowBody:
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = io.WriteString(w, body[:len(body)/2])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		return
	case overLimit:
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = io.WriteString(w, "# "+strings.Repeat("x", 4096)+"\n"+body)
		return
	case invalidJSON:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("ETag", `"bad-json"`)
		_, _ = io.WriteString(w, `{"resources": [`)
		return
	case invalidPolicy:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("ETag", `"bad-policy"`)
		_, _ = io.WriteString(w, `{"revision": "v9", "resources": [{"id": "orders", "actions": ["read"]}], "roles": [{"id": "w", "type": "user", "permissions": [{"resource": "orders", "actions": ["wrte"]}]}]}`)
		return
	case always304:
		w.WriteHeader(http.StatusNotModified)
		return
	case newETagSameBody:
		etag = fmt.Sprintf(`"v1-%d"`, f.hits.Load())
	}
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Content-Type", "application/yaml")
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		_, _ = io.WriteString(zw, body)
		_ = zw.Close()
		return
	}
	_, _ = io.WriteString(w, body)
}

// transport reaches the fake upstream, or fails to connect as the fault says:
// a real dial to a closed port, or the error the resolver gives for an
// unknown host.
func (f *fakeUpstream) transport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DisableKeepAlives = true // every fetch dials, so dial faults apply
	dialer := &net.Dialer{Timeout: time.Second}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		switch fault(f.fault.Load()) {
		case refused:
			return dialer.DialContext(ctx, network, f.closed)
		case dnsFailure:
			return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: "policy.invalid", IsNotFound: true}}
		}
		return dialer.DialContext(ctx, network, addr)
	}
	return t
}

type httpRig struct {
	up     *fakeUpstream
	engine *pdp.Engine
	db     *cache.Cache
	ref    *refresh.Refresher
	logs   *bytes.Buffer
	loads  atomic.Int64
	now    atomic.Pointer[time.Time]
}

func newHTTPRig(t *testing.T, cfg httpdoc.Config, rcfg refresh.Config) *httpRig {
	t.Helper()
	r := &httpRig{up: newFakeUpstream(t, refreshtest.GoodV1), engine: &pdp.Engine{}, logs: &bytes.Buffer{}}
	t0 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	r.now.Store(&t0)
	r.db = refreshtest.OpenCache(t, filepath.Join(t.TempDir(), "rolecall.db"))
	cfg.URL = r.up.srv.URL + "/policy.yaml"
	if cfg.Transport == nil {
		cfg.Transport = r.up.transport()
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 500 * time.Millisecond
	}
	up, err := httpdoc.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rcfg.Upstream, rcfg.Engine, rcfg.Cache = up, r.engine, r.db
	rcfg.OnChange = func() { r.loads.Add(1) }
	rcfg.Logger = slog.New(slog.NewTextHandler(r.logs, nil))
	rcfg.Now = func() time.Time { return *r.now.Load() }
	if rcfg.Interval == 0 {
		rcfg.Interval = 5 * time.Minute
	}
	r.ref, err = refresh.New(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *httpRig) advance(d time.Duration) {
	t := r.now.Load().Add(d)
	r.now.Store(&t)
}

// checkLoad runs Checks until stop is closed and reports any answer that is
// not v1's.
func checkLoad(engine *pdp.Engine, stop <-chan struct{}) (done func() (int64, error)) {
	var n atomic.Int64
	errc := make(chan error, 1)
	go func() {
		q := pdp.Query{Subject: "alice", Resource: "orders", Action: "read"}
		for {
			select {
			case <-stop:
				errc <- nil
				return
			default:
			}
			d, err := engine.Decide(q)
			if err != nil || !d.Allowed || d.MatchedRole != "reader" || d.Revision != "v1" {
				errc <- fmt.Errorf("decision during faults = %+v, %v; want v1's allow", d, err)
				return
			}
			n.Add(1)
		}
	}()
	return func() (int64, error) { return n.Load(), <-errc }
}

// Every fault of the issue, one after the other, while Checks run: each
// refresh fails with its own error, the previous policy keeps answering, and
// bbolt keeps the previous good document.
func TestHTTPFaultsKeepTheLastGoodPolicy(t *testing.T) {
	r := newHTTPRig(t, httpdoc.Config{MaxBytes: int64(len(refreshtest.GoodV1) + 1024)}, refresh.Config{})
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := checkLoad(r.engine, stop)

	tests := []struct {
		fault fault
		inErr string
	}{
		{refused, "connection refused"},
		{dnsFailure, "no such host"},
		{status500, "500 Internal Server Error"},
		{status503RetryAfter, "503 Service Unavailable; retry after 2m0s"},
		{status401, "401 Unauthorized: the upstream refused rolecall's credentials"},
		{status403, "403 Forbidden: the upstream refused rolecall's credentials"},
		{halfBody, "unexpected EOF"},
		{slowBody, "no complete answer within 500ms"},
		{overLimit, fmt.Sprintf("over the %d-byte limit", len(refreshtest.GoodV1)+1024)},
		{invalidJSON, "invalid JSON at line 1"},
		{invalidPolicy, `roles[0].permissions[0].actions[0]: action "wrte" is not defined on resource "orders"`},
	}
	for _, tt := range tests {
		r.up.fault.Store(int32(tt.fault))
		err := r.ref.RefreshOnce(t.Context())
		if err == nil || !strings.Contains(err.Error(), tt.inErr) {
			t.Errorf("fault %d: err = %v, want it to contain %q", tt.fault, err, tt.inErr)
		}
		if s := r.engine.Snapshot(); s == nil || s.Revision() != "v1" {
			t.Fatalf("fault %d: serving %v, want v1", tt.fault, s)
		}
		if rec, ok, _ := r.db.LoadPolicy(); !ok || rec.Revision != "v1" {
			t.Fatalf("fault %d: cache holds %q, want v1", tt.fault, rec.Revision)
		}
		if st := r.ref.Status(); !strings.Contains(st.LastError, tt.inErr) {
			t.Errorf("fault %d: status last error %q", tt.fault, st.LastError)
		}
	}
	close(stop)
	n, err := done()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("the Check load made no decision")
	}
	if st := r.ref.Status(); st.ConsecutiveFailures != len(tests) || !st.Loaded || st.Revision != "v1" {
		t.Errorf("status after the faults = %+v", st)
	}
	if loads := r.loads.Load(); loads != 1 {
		t.Errorf("%d loads, want 1", loads)
	}

	// Recovery: the next good answer clears the failures.
	r.up.fault.Store(int32(healthy))
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := r.ref.Status(); st.ConsecutiveFailures != 0 || st.LastError != "" {
		t.Errorf("status after recovery = %+v", st)
	}
}

func TestHTTPNotModifiedCostsNothing(t *testing.T) {
	r := newHTTPRig(t, httpdoc.Config{}, refresh.Config{})
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	rec, _, _ := r.db.LoadPolicy()
	r.advance(time.Minute)
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.up.mu.Lock()
	inm := r.up.lastINM
	r.up.mu.Unlock()
	if inm != `"v1"` {
		t.Errorf("If-None-Match = %q, want the ETag", inm)
	}
	after, _, _ := r.db.LoadPolicy()
	if r.loads.Load() != 1 || !after.FetchedAt.Equal(rec.FetchedAt) {
		t.Errorf("a 304 caused %d loads and a cache write (fetched at %v then %v)", r.loads.Load(), rec.FetchedAt, after.FetchedAt)
	}
	if st := r.ref.Status(); !st.FetchedAt.Equal(*r.now.Load()) || !st.LastSuccess.Equal(*r.now.Load()) {
		t.Errorf("a 304 did not count as a success: %+v", st)
	}

	// A new ETag on the same bytes is no new policy either.
	r.up.fault.Store(int32(newETagSameBody))
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r.loads.Load() != 1 || !strings.HasPrefix(r.ref.Status().ETag, `"v1-`) {
		t.Errorf("same body, new tag: %d loads, etag %q", r.loads.Load(), r.ref.Status().ETag)
	}
}

func TestHTTP304WithoutADocumentIsAnError(t *testing.T) {
	r := newHTTPRig(t, httpdoc.Config{}, refresh.Config{})
	r.up.fault.Store(int32(always304))
	err := r.ref.RefreshOnce(t.Context())
	if err == nil || !strings.Contains(err.Error(), "304 Not Modified, but no document was asked about") {
		t.Fatalf("err = %v", err)
	}
	if _, err := r.engine.Decide(pdp.Query{Subject: "a", Resource: "b", Action: "c"}); !errors.Is(err, pdp.ErrNoPolicy) {
		t.Errorf("Decide = %v, want ErrNoPolicy", err)
	}
}

// Down at start with nothing cached: not ready, and the first success makes
// it ready without a restart.
func TestHTTPDownAtStartThenUp(t *testing.T) {
	r := newHTTPRig(t, httpdoc.Config{}, refresh.Config{})
	r.up.fault.Store(int32(refused))
	if ok, _ := r.ref.WarmStart(); ok {
		t.Fatal("warm start from an empty cache")
	}
	if err := r.ref.RefreshOnce(t.Context()); err == nil {
		t.Fatal("refresh succeeded with the upstream down")
	}
	if _, err := r.engine.Decide(pdp.Query{Subject: "alice", Resource: "orders", Action: "read"}); !errors.Is(err, pdp.ErrNoPolicy) {
		t.Fatalf("Decide = %v, want ErrNoPolicy", err)
	}
	r.up.fault.Store(int32(healthy))
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if d, err := r.engine.Decide(pdp.Query{Subject: "alice", Resource: "orders", Action: "read"}); err != nil || !d.Allowed {
		t.Errorf("Decide after the upstream came up = %+v, %v", d, err)
	}
}

// Down (hanging) at start with a cached policy: decisions are answered from
// the cache while the first fetch is still waiting; nothing waits on I/O.
func TestWarmStartAnswersWhileTheUpstreamHangs(t *testing.T) {
	r := newHTTPRig(t, httpdoc.Config{Timeout: 10 * time.Second}, refresh.Config{})
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A second process on the same cache, with the upstream now hanging.
	engine := &pdp.Engine{}
	up, err := httpdoc.New(httpdoc.Config{URL: r.up.srv.URL + "/policy.yaml", Transport: r.up.transport(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := refresh.New(refresh.Config{Upstream: up, Engine: engine, Cache: r.db})
	if err != nil {
		t.Fatal(err)
	}
	r.up.fault.Store(int32(slowBody))
	if ok, err := ref.WarmStart(); !ok || err != nil {
		t.Fatalf("WarmStart = %v, %v", ok, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	fetched := make(chan error, 1)
	go func() { fetched <- ref.RefreshOnce(ctx) }()
	for range 100 {
		if d, err := engine.Decide(pdp.Query{Subject: "alice", Resource: "orders", Action: "read"}); err != nil || !d.Allowed {
			t.Fatalf("Decide while the upstream hangs = %+v, %v", d, err)
		}
	}
	select {
	case err := <-fetched:
		t.Fatalf("the fetch finished early (%v); the test needs it hanging", err)
	default:
	}
	cancel()
	<-fetched
}

func TestHTTPCredentialsAndTLS(t *testing.T) {
	dir := t.TempDir()
	const secret = "s3cr3t-b3ar3r-t0k3n-do-not-log"
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := newHTTPRig(t, httpdoc.Config{BearerTokenFile: tokenFile}, refresh.Config{})
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.up.mu.Lock()
	auth := r.up.auth
	r.up.mu.Unlock()
	if auth != "Bearer "+secret {
		t.Errorf("Authorization = %q", auth)
	}
	r.up.fault.Store(int32(status401))
	_ = r.ref.RefreshOnce(t.Context())
	st := r.ref.Status()
	if strings.Contains(fmt.Sprintf("%+v", st), secret) || strings.Contains(r.logs.String(), secret) || strings.Contains(r.ref.Status().Source, secret) {
		t.Error("the bearer token leaked into status or logs")
	}
	if !strings.Contains(r.logs.String(), "refused rolecall's credentials") {
		t.Errorf("a 401 is not logged clearly: %s", r.logs.String())
	}

	t.Setenv("ROLECALL_TEST_PASSWORD", "pw-from-env")
	b := newHTTPRig(t, httpdoc.Config{BasicUser: "rolecall", BasicPasswordEnv: "ROLECALL_TEST_PASSWORD"}, refresh.Config{})
	if err := b.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	b.up.mu.Lock()
	basic := b.up.auth
	b.up.mu.Unlock()
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth("rolecall", "pw-from-env")
	if basic != req.Header.Get("Authorization") {
		t.Errorf("basic auth = %q", basic)
	}
}

func TestHTTPMutualTLS(t *testing.T) {
	dir := t.TempDir()
	clientCA := testcerts.NewCA(t, "client CA")
	certPEM, keyPEM, _ := clientCA.Issue(t, "rolecall-client", true)
	clientCert := testcerts.WriteFile(t, dir, "client.pem", certPEM)
	clientKey := testcerts.WriteFile(t, dir, "client-key.pem", keyPEM)
	clientPool := x509.NewCertPool()
	clientPool.AppendCertsFromPEM(clientCA.PEM)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write([]byte(refreshtest.GoodV1))
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientPool}
	srv.StartTLS()
	defer srv.Close()
	caFile := filepath.Join(dir, "server-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	fetch := func(cfg httpdoc.Config) error {
		cfg.URL = srv.URL + "/policy.yaml"
		up, err := httpdoc.New(cfg)
		if err != nil {
			return err
		}
		_, err = up.Fetch(t.Context(), "")
		return err
	}
	if err := fetch(httpdoc.Config{CAFile: caFile, ClientCertFile: clientCert, ClientKeyFile: clientKey}); err != nil {
		t.Errorf("mutual TLS with the right certificates: %v", err)
	}
	if err := fetch(httpdoc.Config{CAFile: caFile}); err == nil {
		t.Error("the server accepted a client without a certificate")
	}
	if err := fetch(httpdoc.Config{ClientCertFile: clientCert, ClientKeyFile: clientKey}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("an untrusted server certificate: err = %v", err)
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := httpdoc.New(httpdoc.Config{URL: "ftp://user:pw@host/x?token=abc", BearerTokenFile: "a", BearerTokenEnv: "B", ClientCertFile: "c"})
	for _, want := range []string{"want an http(s) URL", "not in the URL", "from a file or an environment variable, not both", "both its certificate and key"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
	if err != nil && (strings.Contains(err.Error(), "pw") || strings.Contains(err.Error(), "abc")) {
		t.Errorf("the error leaks URL secrets: %v", err)
	}
}
