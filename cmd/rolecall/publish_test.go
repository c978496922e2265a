package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/rolecall/rolecall/bundle"
	"github.com/rolecall/rolecall/internal/rctest"
	"github.com/rolecall/rolecall/internal/testcerts"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
	"github.com/rolecall/rolecall/refresh"
)

// fixedUpstream serves one document, for the probe below.
type fixedUpstream struct{ doc refresh.Document }

func (u fixedUpstream) Fetch(context.Context, string) (refresh.Document, error) { return u.doc, nil }
func (u fixedUpstream) String() string                                          { return "fixed" }

// skipUnlessRefresherPublishes skips a test of the publish listener end to
// end while the refresher does not yet call Config.OnInstall (that side of
// the change lands separately): without it nothing is ever published.
func skipUnlessRefresherPublishes(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile(bookstore)
	if err != nil {
		t.Fatal(err)
	}
	called := false
	ref, err := refresh.New(refresh.Config{
		Upstream:  fixedUpstream{refresh.Document{Data: data, Format: policyfile.YAML, ETag: `"1"`}},
		Engine:    &pdp.Engine{},
		OnInstall: func(refresh.Installed) { called = true },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !called {
		t.Skip("the refresher does not call Config.OnInstall yet, so nothing is published")
	}
}

// rolecall serve --publish-addr serves the policy it holds, as a signed
// bundle the consumers load, to requests with the bearer token, and a
// long poll learns of a reload.
func TestServePublishesThePolicy(t *testing.T) {
	skipUnlessRefresherPublishes(t)
	dir := t.TempDir()
	policy := copyBookstore(t, dir)
	priv, pubPEM, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile, tokenFile := filepath.Join(dir, "sign.pem"), filepath.Join(dir, "token")
	if err := os.WriteFile(keyFile, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte("publish-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(dir, "verify.pem")
	if err := os.WriteFile(pubFile, pubPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	verify, err := bundle.LoadPublicKey(pubFile)
	if err != nil {
		t.Fatal(err)
	}

	addr := freeAddr(t)
	d := startServe(t, dir, "--policy", policy, "--refresh-interval", "1h",
		"--publish-addr", addr, "--publish-token-file", tokenFile, "--publish-sign-key", keyFile)
	defer d.stop()
	d.waitHealth(t, healthpb.HealthCheckResponse_SERVING)
	url := "http://" + addr + "/v1/policy"

	fetch := func(header map[string]string) (*http.Response, []byte) {
		t.Helper()
		return rctest.Send(t, http.DefaultClient, rctest.Request(t, http.MethodGet, url, nil, header))
	}
	open := func(body []byte, pub ed25519.PublicKey) *pdp.Snapshot {
		t.Helper()
		b, err := bundle.Open(body, pub)
		if err != nil {
			t.Fatalf("the published bundle does not open: %v", err)
		}
		snap, err := pdp.UnmarshalSnapshot(b.Snapshot)
		if err != nil {
			t.Fatalf("the published snapshot does not load: %v", err)
		}
		return snap
	}

	if resp, _ := fetch(nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without the token: %d, want 401", resp.StatusCode)
	}
	auth := "Bearer publish-secret"
	resp, body := fetch(map[string]string{"Authorization": auth})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != bundle.MediaType {
		t.Fatalf("GET %s: %d %s %q; logs:\n%s", url, resp.StatusCode, resp.Header.Get("Content-Type"), body, d.logs)
	}
	if snap := open(body, verify); snap.Revision() != "bookstore-2026-11-20.1" {
		t.Fatalf("published revision %q", snap.Revision())
	}
	if !strings.Contains(d.logs.String(), "signing_key="+bundle.KeyID(verify)) || !strings.Contains(d.logs.String(), "auth=bearer") {
		t.Errorf("the start log does not say how the policy is published:\n%s", d.logs)
	}

	// A long poll with the current tag is answered once the policy changes.
	bumpBookstore(t, policy)
	// SIGHUP reloads, again every 200 ms until the long poll is answered
	// (the first may come before the poll waits).
	answered, reloading := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(reloading)
		for {
			_ = syscall.Kill(os.Getpid(), syscall.SIGHUP)
			select {
			case <-answered:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	defer func() { close(answered); <-reloading }()
	resp, body = fetch(map[string]string{"Authorization": auth, "If-None-Match": resp.Header.Get("ETag"), "Prefer": "wait=20"})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Preference-Applied") != "wait=20" {
		t.Fatalf("long poll: %d, headers %v", resp.StatusCode, resp.Header)
	}
	if snap := open(body, verify); snap.Revision() != "bookstore-2026-11-21.1" {
		t.Fatalf("the long poll got revision %q", snap.Revision())
	}
}

func TestServePublishUsageErrors(t *testing.T) {
	dir := t.TempDir()
	_, pubPEM, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	notPrivate := filepath.Join(dir, "verify.pem")
	if err := os.WriteFile(notPrivate, pubPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty-token")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--publish-addr", "0.0.0.0:0"}, `publish.address: "0.0.0.0:0" reaches beyond loopback without authentication: set publish.bearer_token_file or publish.tls.client_ca_file (mutual TLS), since a published policy holds every subject's id and email`},
		{[]string{"--publish-addr", "127.0.0.1:0", "--publish-sign-key", notPrivate}, `publish.sign_key_file: ` + notPrivate + `: a PEM "PUBLIC KEY", want "PRIVATE KEY"`},
		{[]string{"--publish-addr", "127.0.0.1:0", "--publish-tls-key", "tls.key"}, "publish.tls.cert_file: must be set when publish.tls has key_file or client_ca_file"},
		{[]string{"--publish-addr", "127.0.0.1:0", "--publish-token-file", empty}, "publish bearer token file " + empty + " is empty"},
		{[]string{"--publish-addr", "127.0.0.1:0", "--publish-max-wait", "10m"}, "publish.max_wait: 10m0s: want more than 0s and at most 5m0s"},
	} {
		code, _, errOut := runCmd(t, append([]string{"serve", "--policy", bookstore, "--cache", filepath.Join(t.TempDir(), "c.db"),
			"--grpc-addr", "", "--unix-socket", filepath.Join(t.TempDir(), "s.sock"), "--admin-addr", "", "--authz-addr", ""}, tc.args...)...)
		if code != 2 || !strings.Contains(errOut, tc.msg) {
			t.Errorf("serve %v: exit %d, stderr %q; want 2 and %q", tc.args, code, errOut, tc.msg)
		}
	}
}

// The publish listener serves mutual TLS: a client with a certificate from
// the client CA gets an HTTP answer, one without is refused in the
// handshake.
func TestServePublishMutualTLS(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA := testcerts.NewCA(t, "server CA"), testcerts.NewCA(t, "client CA")
	crt, key, _ := serverCA.Issue(t, "127.0.0.1", false)
	ccrt, ckey, _ := clientCA.Issue(t, "consumer", true)
	f := func(name string, data []byte) string { return testcerts.WriteFile(t, dir, name, data) }
	addr := freeAddr(t)
	d := startServe(t, dir, "--policy", bookstore, "--publish-addr", addr,
		"--publish-tls-cert", f("tls.crt", crt), "--publish-tls-key", f("tls.key", key), "--publish-tls-client-ca", f("client-ca.crt", clientCA.PEM))
	defer d.stop()
	d.waitHealth(t, healthpb.HealthCheckResponse_SERVING)
	if logs := d.logs.String(); !strings.Contains(logs, `security="mutual TLS"`) || !strings.Contains(logs, "auth=none") {
		t.Errorf("the log does not say the publish listener is mutual TLS:\n%s", logs)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(serverCA.PEM)
	pair, err := tls.X509KeyPair(ccrt, ckey)
	if err != nil {
		t.Fatal(err)
	}
	get := func(certs []tls.Certificate) (*http.Response, error) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
		defer c.CloseIdleConnections()
		resp, err := c.Get("https://" + addr + "/v1/policy")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		return resp, err
	}
	// 200 once the refresher publishes; 503 until it does.
	if resp, err := get([]tls.Certificate{pair}); err != nil || (resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable) {
		t.Fatalf("with a client certificate: %v %v", resp, err)
	}
	if resp, err := get(nil); err == nil {
		t.Fatalf("without a client certificate: %d, want a refused handshake", resp.StatusCode)
	}
}
