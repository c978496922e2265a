package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/rolecall/rolecall/bundle"
	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
	"github.com/rolecall/rolecall/internal/rctest"
	"github.com/rolecall/rolecall/token/devissuer"
)

// TestSecretsNeverLeak plants secrets everywhere rolecall holds one: the
// upstream's bearer token and basic-auth password, the Logto webhook key,
// the publish listener's token and signing key, and the tokens callers send. It then makes every path that reports
// something run, at debug level with the decision log on: an upstream that
// refuses the credentials and echoes them back in its error body, a good
// fetch, signed and forged webhooks, valid, forged and expired tokens. No
// secret may appear in the logs, the decision log, /v1/status, /metrics,
// GetPolicyStatus or any error a caller gets.
func TestSecretsNeverLeak(t *testing.T) {
	const (
		bearer       = "upstream-bearer-Zq81x"
		webhookKey   = "webhook-key-Hh27Lm"
		publishToken = "publish-token-Pw93c"
	)
	signKey, _, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	policy, err := os.ReadFile(bookstore)
	if err != nil {
		t.Fatal(err)
	}
	var refuse atomic.Bool
	refuse.Store(true)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refuse.Load() || r.Header.Get("Authorization") != "Bearer "+bearer {
			// A misbehaving upstream that repeats what it was sent.
			http.Error(w, "rejected credentials: "+r.Header.Get("Authorization"), http.StatusUnauthorized)
			return
		}
		_, _ = w.Write(policy)
	}))
	defer up.Close()

	iss, err := devissuer.New(devissuer.Options{Algorithm: "ES256"})
	if err != nil {
		t.Fatal(err)
	}
	idp := httptest.NewServer(iss.Handler())
	defer idp.Close()
	iss.SetIssuer(idp.URL)
	const aud = "https://api.store.io/orders"
	good, err := iss.Mint(map[string]any{"sub": "carol", "aud": aud, "scope": "read:order", "exp": time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	expired, err := iss.Mint(map[string]any{"sub": "carol", "aud": aud, "exp": time.Now().Add(-time.Hour).Unix()}, devissuer.WithNow(time.Now().Add(-2*time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	forged := good[:strings.LastIndexByte(good, '.')+1] + "Zm9yZ2VkLXNpZ25hdHVyZS1Ycjc0"

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	admin, publishAddr := freeAddr(t), freeAddr(t)
	d := startServe(t, dir,
		"--publish-addr", publishAddr, "--publish-token-file", write("publish", publishToken),
		"--publish-sign-key", write("sign.pem", string(signKey)),
		"--upstream", up.URL+"/policy.yaml", "--refresh-interval", "1h",
		"--upstream-bearer-token-file", write("bearer", bearer),
		"--logto-webhook-key-file", write("webhook", webhookKey),
		"--issuer", idp.URL, "--jwks-url", idp.URL+"/jwks", "--audience", aud,
		"--admin-addr", admin, "--log-level", "debug",
		"--decision-log", "--decision-log-output", "stderr")
	stopped := false
	defer func() {
		if !stopped {
			d.stop()
		}
	}()
	base := "http://" + admin
	waitListening(t, admin)

	var seen bytes.Buffer // everything rolecall said to anyone
	get := func(path string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		seen.Write(b)
	}
	post := func(path string, body []byte, header map[string]string) {
		_, b := rctest.Do(t, http.MethodPost, base+path, body, header)
		seen.WriteString(b)
	}

	// The upstream refuses: the failure is logged and reported.
	post("/v1/refresh", nil, nil)
	get("/v1/status")
	get("/readyz")
	// Forged webhooks, one signed with a guess that shares the key's prefix.
	event := []byte(`{"event":"Role.Created"}`)
	post("/v1/webhooks/logto", event, nil)
	post("/v1/webhooks/logto", event, map[string]string{"logto-signature-sha-256": webhookKey})
	// The upstream accepts; a signed webhook refreshes.
	refuse.Store(false)
	mac := hmac.New(sha256.New, []byte(webhookKey))
	mac.Write(event)
	post("/v1/webhooks/logto", event, map[string]string{"logto-signature-sha-256": hex.EncodeToString(mac.Sum(nil))})
	post("/v1/refresh", nil, nil)
	d.waitHealth(t, healthpb.HealthCheckResponse_SERVING)

	api := rolecallv1.NewPolicyDecisionServiceClient(d.conn)
	for _, tok := range []string{good, expired, forged, "not-a-jwt-" + bearer} {
		resp, err := api.ValidateToken(t.Context(), &rolecallv1.ValidateTokenRequest{
			Token: tok, Audience: aud,
			AuthorizationCheck: &rolecallv1.AuthorizationCheck{Resource: aud, Action: "read:order"},
		})
		if err != nil {
			seen.WriteString(err.Error())
			continue
		}
		b, _ := protojson.Marshal(resp)
		seen.Write(b)
	}
	if resp, err := api.ValidateToken(t.Context(), &rolecallv1.ValidateTokenRequest{Token: good, Audience: aud}); err != nil || !resp.GetValid() {
		t.Fatalf("the good token is not valid (%v, %v): the test would prove nothing; logs:\n%s", resp, err, d.logs)
	}
	st, err := api.GetPolicyStatus(t.Context(), &rolecallv1.GetPolicyStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := protojson.Marshal(st)
	seen.Write(b)
	get("/v1/status")
	get("/metrics")
	// The publish listener, asked with a guess at its token and with it.
	for _, h := range []map[string]string{
		{"Authorization": "Bearer " + publishToken[:len(publishToken)-1]},
		{"Authorization": "Bearer " + publishToken, "Accept": "application/json"},
		{"Authorization": "Bearer " + publishToken},
	} {
		_, b := rctest.Do(t, http.MethodGet, "http://"+publishAddr+"/v1/policy", nil, h)
		seen.WriteString(b)
	}
	d.stop()
	stopped = true

	out := seen.String() + d.logs.String()
	if !strings.Contains(d.logs.String(), "401") || !strings.Contains(d.logs.String(), `"allowed"`) {
		t.Fatalf("the logs lack the upstream failure or the decision log; the test would prove nothing:\n%s", d.logs)
	}
	// A token's signature is what makes it a credential; its claims alone
	// are not secret, but a full token is.
	secrets := map[string]string{
		"upstream bearer token":  bearer,
		"webhook key":            webhookKey,
		"valid token":            good,
		"valid token signature":  good[strings.LastIndexByte(good, '.')+1:],
		"expired token":          expired,
		"forged token signature": forged[strings.LastIndexByte(forged, '.')+1:],
		"publish token":          publishToken,
		"signing key":            strings.Split(string(signKey), "\n")[1],
	}
	for what, s := range secrets {
		if i := strings.Index(out, s); i >= 0 {
			lo, hi := max(0, i-200), min(len(out), i+len(s)+50)
			t.Errorf("the %s appears in rolecall's output: …%s…", what, out[lo:hi])
		}
	}
}
