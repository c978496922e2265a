package token_test

import (
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/rolecall/rolecall/cache"
	"github.com/rolecall/rolecall/token"
	"github.com/rolecall/rolecall/token/devissuer"
)

// t0 is the fixed clock of these tests.
var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// jwksMode makes the key set endpoint misbehave.
type jwksMode int32

const (
	serveKeys    jwksMode = iota
	serveDown             // 503
	serveGarbage          // 200 with a body that is no key set
	serveSlow             // answers after the client gave up
)

// fakeIssuer is a development issuer behind a real loopback HTTP server
// that counts key set requests and can be told to fail.
type fakeIssuer struct {
	*devissuer.Issuer
	srv      *httptest.Server
	jwksHits atomic.Int64
	mode     atomic.Int32
}

func newFakeIssuer(t testing.TB, alg string) *fakeIssuer {
	t.Helper()
	di, err := devissuer.New(devissuer.Options{Algorithm: alg})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeIssuer{Issuer: di}
	inner := di.Handler()
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/jwks" {
			f.jwksHits.Add(1)
			switch jwksMode(f.mode.Load()) {
			case serveDown:
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			case serveGarbage:
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"keys": "not a list"`))
				return
			case serveSlow:
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
				return
			}
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	di.SetIssuer(f.srv.URL)
	return f
}

func (f *fakeIssuer) mint(t testing.TB, claims map[string]any, opts ...devissuer.MintOption) string {
	t.Helper()
	tok, err := f.Mint(claims, append([]devissuer.MintOption{devissuer.WithNow(t0)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type clock struct{ now atomic.Pointer[time.Time] }

func (c *clock) Now() time.Time      { return *c.now.Load() }
func (c *clock) Set(t time.Time)     { c.now.Store(&t) }
func (c *clock) Add(d time.Duration) { c.Set(c.Now().Add(d)) }

func newClock() *clock {
	c := &clock{}
	c.Set(t0)
	return c
}

func newValidator(t *testing.T, clk *clock, db *cache.Cache, cfgs ...token.IssuerConfig) *token.Validator {
	t.Helper()
	v, err := token.New(cfgs, token.Options{Now: clk.Now, Cache: db, HTTPClient: &http.Client{Timeout: 500 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.RefreshKeys(t.Context(), true); err != nil {
		t.Logf("initial key fetch: %v", err)
	}
	return v
}

const ordersAPI = "https://api.store.io/orders"

func logtoConfig(f *fakeIssuer) token.IssuerConfig {
	// No jwks_url: found through OIDC discovery, as a real Logto tenant.
	return token.IssuerConfig{Issuer: f.Issuer.Issuer(), Profile: token.Logto, Audiences: []string{ordersAPI}}
}

func stytchConfig(f *fakeIssuer, project string) token.IssuerConfig {
	return token.IssuerConfig{Issuer: "stytch.com/" + project, Profile: token.Stytch, JWKSURL: f.srv.URL + "/jwks", Audiences: []string{project}}
}

// Claims shaped like a Logto access token for an API resource (RFC 9068).
func logtoResourceClaims() map[string]any {
	return map[string]any{
		"jti": "tok-1", "sub": "alice", "client_id": "web-app", "aud": ordersAPI,
		"scope": "read:order write:order", "iat": t0.Unix(), "exp": t0.Add(time.Hour).Unix(),
	}
}

func TestLogtoTokens(t *testing.T) {
	f := newFakeIssuer(t, "ES384")
	clk := newClock()
	v := newValidator(t, clk, nil, logtoConfig(f))

	orgToken := map[string]any{
		"jti": "tok-2", "sub": "dave", "client_id": "web-app", "aud": "urn:logto:organization:acme",
		"scope": "invite:member read:member", "iat": t0.Unix(), "exp": t0.Add(time.Hour).Unix(),
	}
	m2m := map[string]any{
		"jti": "tok-3", "sub": "svc-sync", "client_id": "svc-sync", "aud": ordersAPI,
		"scope": "read:order", "iat": t0.Unix(), "exp": t0.Add(time.Hour).Unix(),
	}
	orgAPI := logtoResourceClaims()
	orgAPI["organization_id"] = "acme"

	tests := []struct {
		name   string
		claims map[string]any
		req    token.Request
		want   token.Claims
	}{
		{"resource token", logtoResourceClaims(), token.Request{RequiredScopes: []string{"read:order"}},
			token.Claims{Subject: "alice", SubjectType: "user", ClientID: "web-app", Audiences: []string{ordersAPI}, Scopes: []string{"read:order", "write:order"}, TokenID: "tok-1"}},
		{"organization token", orgToken, token.Request{Org: "acme", RequiredScopes: []string{"invite:member"}},
			token.Claims{Subject: "dave", SubjectType: "user", ClientID: "web-app", Audiences: []string{"urn:logto:organization:acme"}, Scopes: []string{"invite:member", "read:member"}, Org: "acme", TokenID: "tok-2"}},
		{"organization API resource token", orgAPI, token.Request{Org: "acme", Audience: ordersAPI},
			token.Claims{Subject: "alice", SubjectType: "user", ClientID: "web-app", Audiences: []string{ordersAPI}, Scopes: []string{"read:order", "write:order"}, Org: "acme", TokenID: "tok-1"}},
		{"machine-to-machine token", m2m, token.Request{},
			token.Claims{Subject: "svc-sync", SubjectType: "m2m", ClientID: "svc-sync", Audiences: []string{ordersAPI}, Scopes: []string{"read:order"}, TokenID: "tok-3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := v.Validate(t.Context(), f.mint(t, tt.claims), tt.req)
			if !res.Valid {
				t.Fatalf("invalid: %v %s", res.Error, res.Detail)
			}
			tt.want.Issuer = f.Issuer.Issuer()
			tt.want.ExpiresAt = time.Unix(t0.Add(time.Hour).Unix(), 0)
			tt.want.IssuedAt = time.Unix(t0.Unix(), 0)
			if diff := cmp.Diff(tt.want, *res.Claims, cmpopts.IgnoreUnexported(token.Claims{})); diff != "" {
				t.Errorf("claims (-want +got):\n%s", diff)
			}
			if res.Authorization != token.ModeScopes {
				t.Errorf("authorization mode = %q, want scopes", res.Authorization)
			}
		})
	}

	res := v.Validate(t.Context(), f.mint(t, orgToken), token.Request{Org: "acme"})
	if !res.Claims.GrantsScope("organization", "invite:member") || res.Claims.GrantsScope("organization", "delete:organization") {
		t.Error("an organization token's scopes must grant exactly its organization permissions")
	}
	res = v.Validate(t.Context(), f.mint(t, logtoResourceClaims()), token.Request{})
	if !res.Claims.GrantsScope(ordersAPI, "read:order") || res.Claims.GrantsScope("https://api.store.io/products", "read:order") {
		t.Error("a resource token's scopes must grant only on its audience")
	}
}

func TestStytchSessionToken(t *testing.T) {
	f := newFakeIssuer(t, "RS256")
	const project = "project-test-8aed2e54"
	v := newValidator(t, newClock(), nil, stytchConfig(f, project))
	// The claims of a Stytch B2B session JWT.
	claims := map[string]any{
		"iss": "stytch.com/" + project, "aud": []string{project}, "sub": "member-live-1",
		"iat": t0.Unix(), "nbf": t0.Unix(), "exp": t0.Add(5 * time.Minute).Unix(),
		"https://stytch.com/session": map[string]any{
			"id": "member-session-1", "started_at": "2026-11-21T11:00:00Z", "roles": []string{"stytch_member", "limited_admin"},
			"authentication_factors": []map[string]any{{"type": "magic_link", "delivery_method": "email"}},
		},
		"https://stytch.com/organization": map[string]any{"organization_id": "organization-live-initech", "slug": "initech"},
	}
	res := v.Validate(t.Context(), f.mint(t, claims, devissuer.WithType("JWT")), token.Request{Org: "organization-live-initech"})
	if !res.Valid {
		t.Fatalf("invalid: %v %s", res.Error, res.Detail)
	}
	if diff := cmp.Diff([]string{"stytch_member", "limited_admin"}, res.Claims.Roles); diff != "" {
		t.Errorf("roles (-want +got):\n%s", diff)
	}
	if res.Claims.Org != "organization-live-initech" || res.Claims.Subject != "member-live-1" || res.Authorization != token.ModeTokenRoles {
		t.Errorf("claims = %+v, mode %s", res.Claims, res.Authorization)
	}
	res = v.Validate(t.Context(), f.mint(t, claims, devissuer.WithType("JWT")), token.Request{Org: "organization-live-globex"})
	if res.Error != token.OrganizationMismatch {
		t.Errorf("token for another organization: %v %s", res.Error, res.Detail)
	}
}

func TestGenericIssuerClaimNames(t *testing.T) {
	f := newFakeIssuer(t, "EdDSA")
	v := newValidator(t, newClock(), nil, token.IssuerConfig{
		Issuer: f.Issuer.Issuer(), Profile: token.Generic, JWKSURL: f.srv.URL + "/jwks", Audiences: []string{"api"},
		Type: "at+jwt", Claims: token.ClaimNames{Scope: "scp", Org: "org_id", Roles: "groups", ClientID: "azp"},
	})
	res := v.Validate(t.Context(), f.mint(t, map[string]any{
		"sub": "u1", "aud": "api", "scp": []string{"a", "b"}, "org_id": "o1", "groups": []string{"g1"}, "azp": "cli", "exp": t0.Add(time.Hour).Unix(),
	}), token.Request{RequiredScopes: []string{"b"}, Org: "o1"})
	if !res.Valid || res.Claims.ClientID != "cli" || res.Claims.Org != "o1" || len(res.Claims.Roles) != 1 || res.Authorization != token.ModePolicy {
		t.Fatalf("result = %+v %+v", res, res.Claims)
	}
}

// hand-built tokens for what no honest library signs.
func rawToken(header, payload map[string]any, sig []byte) string {
	h, _ := json.Marshal(header)
	p, _ := json.Marshal(payload)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestAttacksAndBadInput(t *testing.T) {
	f := newFakeIssuer(t, "RS256")
	other := newFakeIssuer(t, "RS256")
	clk := newClock()
	v := newValidator(t, clk, nil, logtoConfig(f), logtoConfig(other))

	// An attacker's key set, which must never be fetched.
	var attackerHits atomic.Int64
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attackerHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(f.JWKS())
	}))
	defer attacker.Close()
	mallory, err := devissuer.New(devissuer.Options{Algorithm: "RS256", Issuer: f.Issuer.Issuer()})
	if err != nil {
		t.Fatal(err)
	}

	good := logtoResourceClaims()
	good["iss"] = f.Issuer.Issuer()
	claims := func(edit func(map[string]any)) map[string]any {
		c := logtoResourceClaims()
		edit(c)
		return c
	}

	// HS256 signed with the issuer's RSA public key as the HMAC secret: the
	// classic algorithm confusion.
	pubDER, _ := x509.MarshalPKIXPublicKey(f.PublicKey().(*rsa.PublicKey))
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hsHeader := map[string]any{"alg": "HS256", "kid": f.KeyID(), "typ": "at+jwt"}
	unsigned := rawToken(hsHeader, good, nil)
	mac := hmac.New(sha256.New, pubPEM)
	mac.Write([]byte(unsigned[:strings.LastIndexByte(unsigned, '.')]))
	confused := rawToken(hsHeader, good, mac.Sum(nil))

	malloryToken, err := mallory.Mint(good, devissuer.WithNow(t0), devissuer.WithHeader("kid", f.KeyID()))
	if err != nil {
		t.Fatal(err)
	}
	valid := f.mint(t, good)
	tampered := valid[:strings.IndexByte(valid, '.')+1] + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+f.Issuer.Issuer()+`","sub":"root","client_id":"web-app","aud":"`+ordersAPI+`","exp":9999999999}`)) + valid[strings.LastIndexByte(valid, '.'):]
	skew := token.DefaultClockSkew

	tests := []struct {
		name  string
		token string
		req   token.Request
		code  token.Code
		inMsg string
	}{
		{"a good token is valid", valid, token.Request{}, token.OK, ""},
		{"alg none", rawToken(map[string]any{"alg": "none", "typ": "at+jwt"}, good, nil) + "", token.Request{}, token.Malformed, "signature is not base64url"},
		{"alg none with a signature", rawToken(map[string]any{"alg": "none", "typ": "at+jwt"}, good, []byte("x")), token.Request{}, token.UnsupportedAlgorithm, `alg "none" is never accepted`},
		{"HS256 with the RSA public key as secret", confused, token.Request{}, token.UnsupportedAlgorithm, `alg "HS256" is not allowed`},
		{"a valid signature from another configured issuer's key", other.mint(t, claims(func(c map[string]any) { c["iss"] = f.Issuer.Issuer() })), token.Request{}, token.UnknownKey, "is not in the key set"},
		{"another key claiming the issuer's kid", malloryToken, token.Request{}, token.BadSignature, "signature does not verify"},
		{"a tampered payload", tampered, token.Request{}, token.BadSignature, "signature does not verify"},
		{"a kid not in the set", f.mint(t, good, devissuer.WithHeader("kid", "no-such-kid")), token.Request{}, token.UnknownKey, `key "no-such-kid" is not in the key set`},
		{"jku pointing at an attacker's key set", mustMint(t, mallory, good, devissuer.WithHeader("jku", attacker.URL+"/jwks"), devissuer.WithHeader("kid", "attacker")), token.Request{}, token.UnknownKey, "not in the key set"},
		{"x5u pointing at an attacker", mustMint(t, mallory, good, devissuer.WithHeader("x5u", attacker.URL+"/cert"), devissuer.WithHeader("kid", "attacker")), token.Request{}, token.UnknownKey, "not in the key set"},
		{"an embedded jwk of the attacker", mustMint(t, mallory, good, devissuer.WithHeader("jwk", mallory.PublicKey()), devissuer.WithoutKeyID()), token.Request{}, token.BadSignature, "signature does not verify"},
		{"a crit header not understood", f.mint(t, good, devissuer.WithHeader("crit", []string{"exp"}), devissuer.WithHeader("exp", 1)), token.Request{}, token.Malformed, "critical extensions"},
		{"expired 1 s beyond the skew", f.mint(t, claims(func(c map[string]any) { c["exp"] = t0.Add(-skew - time.Second).Unix() })), token.Request{}, token.Expired, "token expired at"},
		{"expired but within the skew", f.mint(t, claims(func(c map[string]any) { c["exp"] = t0.Add(-skew + time.Second).Unix() })), token.Request{}, token.OK, ""},
		{"nbf in the future", f.mint(t, claims(func(c map[string]any) { c["nbf"] = t0.Add(skew + time.Minute).Unix() })), token.Request{}, token.NotYetValid, "not valid before"},
		{"iat in the future", f.mint(t, claims(func(c map[string]any) { c["iat"] = t0.Add(skew + time.Minute).Unix() })), token.Request{}, token.NotYetValid, "issued in the future"},
		{"a wrong iss with a valid signature", f.mint(t, claims(func(c map[string]any) { c["iss"] = "https://evil.example" })), token.Request{}, token.UnknownIssuer, `issuer "https://evil.example" is not configured`},
		{"no iss", f.mint(t, claims(func(c map[string]any) { c["iss"] = nil })), token.Request{}, token.MissingClaim, "no iss claim"},
		{"a wrong audience", f.mint(t, claims(func(c map[string]any) { c["aud"] = "https://api.store.io/products" })), token.Request{}, token.WrongAudience, `token is for "https://api.store.io/products"`},
		{"a requested audience the token lacks", valid, token.Request{Audience: "https://api.store.io/products"}, token.WrongAudience, "not \"https://api.store.io/products\""},
		{"an ID token given to a Logto issuer", f.mint(t, good, devissuer.WithType("JWT")), token.Request{}, token.WrongType, `typ is "JWT"`},
		{"no client_id for Logto", f.mint(t, claims(func(c map[string]any) { delete(c, "client_id") })), token.Request{}, token.MissingClaim, "client_id"},
		{"no sub", f.mint(t, claims(func(c map[string]any) { delete(c, "sub") })), token.Request{}, token.MissingClaim, "no sub claim"},
		{"no exp", f.mint(t, claims(func(c map[string]any) { c["exp"] = nil })), token.Request{}, token.MissingClaim, "no exp claim"},
		{"exp of the wrong type", f.mint(t, claims(func(c map[string]any) { c["exp"] = "tomorrow" })), token.Request{}, token.Malformed, "claim exp must be a NumericDate"},
		{"a missing scope", valid, token.Request{RequiredScopes: []string{"read:order", "delete:order"}}, token.MissingScope, `lacks scope "delete:order"`},
		{"a token for no organization", valid, token.Request{Org: "acme"}, token.OrganizationMismatch, "the token is for none"},
		{"truncated", valid[:len(valid)/2], token.Request{}, token.Malformed, ""},
		{"not base64", "a$b.c$d.e$f", token.Request{}, token.Malformed, "not base64url"},
		{"two parts", "abc.def", token.Request{}, token.Malformed, "three dot-separated parts"},
		{"a JWE", "a.b.c.d.e", token.Request{}, token.Malformed, "JWE"},
		{"1 MiB", strings.Repeat("a", 1<<20), token.Request{}, token.Malformed, "the limit is 16384"},
		{"empty", "", token.Request{}, token.Malformed, "empty"},
		{"a header that is not JSON", base64.RawURLEncoding.EncodeToString([]byte("[1]")) + ".e30.c2ln", token.Request{}, token.Malformed, "header: not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := v.Validate(t.Context(), tt.token, tt.req)
			if res.Error != tt.code || res.Valid != (tt.code == token.OK) || !strings.Contains(res.Detail, tt.inMsg) {
				t.Errorf("Validate = %v %q (valid %v), want %v containing %q", res.Error, res.Detail, res.Valid, tt.code, tt.inMsg)
			}
			if strings.Contains(res.Detail, tt.token) && tt.token != "" {
				t.Error("the detail repeats the token")
			}
		})
	}
	if n := attackerHits.Load(); n != 0 {
		t.Errorf("the attacker's server got %d requests; token headers must never be used to find keys", n)
	}
}

func mustMint(t *testing.T, di *devissuer.Issuer, claims map[string]any, opts ...devissuer.MintOption) string {
	t.Helper()
	tok, err := di.Mint(claims, append([]devissuer.MintOption{devissuer.WithNow(t0)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestHMACOnlyWithAConfiguredSecret(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	secret := strings.Repeat("s", 40)
	if err := writeFile(secretFile, secret); err != nil {
		t.Fatal(err)
	}
	_, err := token.New([]token.IssuerConfig{{Issuer: "https://hs.example", JWKSURL: "https://hs.example/jwks", Audiences: []string{"api"}, Algorithms: []string{"HS256"}}}, token.Options{})
	if err == nil || !strings.Contains(err.Error(), "HS256 needs hmac_secret_file") {
		t.Fatalf("HS256 without a secret: err = %v", err)
	}
	clk := newClock()
	v, err := token.New([]token.IssuerConfig{{Issuer: "https://hs.example", JWKSURL: "https://hs.example/jwks", Audiences: []string{"api"}, Algorithms: []string{"HS256"}, HMACSecretFile: secretFile}}, token.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	payload := map[string]any{"iss": "https://hs.example", "sub": "u", "aud": "api", "exp": t0.Add(time.Hour).Unix()}
	sign := func(key string) string {
		unsigned := rawToken(map[string]any{"alg": "HS256", "typ": "JWT"}, payload, nil)
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write([]byte(unsigned[:len(unsigned)-1]))
		return unsigned[:len(unsigned)-1] + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	}
	if res := v.Validate(t.Context(), sign(secret), token.Request{}); !res.Valid {
		t.Errorf("HS256 with the configured secret: %v %s", res.Error, res.Detail)
	}
	if res := v.Validate(t.Context(), sign(strings.Repeat("x", 40)), token.Request{}); res.Error != token.BadSignature {
		t.Errorf("HS256 with another secret: %v %s", res.Error, res.Detail)
	}
}

func TestKeyRotationRefetchesOnce(t *testing.T) {
	f := newFakeIssuer(t, "ES256")
	clk := newClock()
	v := newValidator(t, clk, nil, logtoConfig(f))
	if res := v.Validate(t.Context(), f.mint(t, logtoResourceClaims()), token.Request{}); !res.Valid {
		t.Fatalf("before rotation: %v %s", res.Error, res.Detail)
	}
	hits := f.jwksHits.Load()
	if _, err := f.Rotate(); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute) // past the unknown-kid rate limit of the first fetch
	rotated := f.mint(t, logtoResourceClaims())
	if res := v.Validate(t.Context(), rotated, token.Request{}); !res.Valid {
		t.Fatalf("after rotation: %v %s", res.Error, res.Detail)
	}
	if got := f.jwksHits.Load() - hits; got != 1 {
		t.Errorf("rotation caused %d key set fetches, want 1", got)
	}
}

func TestUnknownKidFloodIsBounded(t *testing.T) {
	f := newFakeIssuer(t, "ES256")
	clk := newClock()
	v := newValidator(t, clk, nil, logtoConfig(f))
	hits := f.jwksHits.Load()
	clk.Add(time.Minute)
	for i := range 500 {
		tok := f.mint(t, logtoResourceClaims(), devissuer.WithHeader("kid", fmt.Sprintf("random-%d", i)))
		if res := v.Validate(t.Context(), tok, token.Request{}); res.Error != token.UnknownKey {
			t.Fatalf("token %d: %v %s", i, res.Error, res.Detail)
		}
	}
	if got := f.jwksHits.Load() - hits; got != 1 {
		t.Errorf("500 unknown kids caused %d fetches, want 1 per 30 s", got)
	}
	clk.Add(31 * time.Second)
	v.Validate(t.Context(), f.mint(t, logtoResourceClaims(), devissuer.WithHeader("kid", "again")), token.Request{})
	if got := f.jwksHits.Load() - hits; got != 2 {
		t.Errorf("after 30 s: %d fetches, want 2", got)
	}
}

func TestWarmStartWithIssuerDown(t *testing.T) {
	f := newFakeIssuer(t, "ES384")
	dbPath := filepath.Join(t.TempDir(), "rolecall.db")
	db, err := cache.Open(dbPath, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	newValidator(t, clk, db, logtoConfig(f)) // fetches and persists the keys
	_ = db.Close()

	cfg := logtoConfig(f)
	tok := f.mint(t, logtoResourceClaims())
	f.srv.Close() // the issuer is gone

	db, err = cache.Open(dbPath, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, err := token.New([]token.IssuerConfig{cfg}, token.Options{Now: clk.Now, Cache: db, HTTPClient: &http.Client{Timeout: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	v.LoadCachedKeys()
	if err := v.RefreshKeys(t.Context(), true); err == nil {
		t.Fatal("refresh succeeded with the issuer down")
	}
	if res := v.Validate(t.Context(), tok, token.Request{}); !res.Valid {
		t.Fatalf("with cached keys and the issuer down: %v %s", res.Error, res.Detail)
	}
	st := v.Status()[0]
	if st.Keys != 1 || !st.FromCache || st.LastError == "" {
		t.Errorf("status = %+v", st)
	}
	if ok, _ := v.Ready(); !ok {
		t.Error("not ready with cached keys")
	}
}

func TestKeySetFaults(t *testing.T) {
	tests := []struct {
		name  string
		mode  jwksMode
		setup func(f *fakeIssuer) token.IssuerConfig
		inErr string
	}{
		{"issuer down", serveDown, nil, "503"},
		{"garbage key set", serveGarbage, nil, "not a JSON Web Key Set"},
		{"slow key set", serveSlow, nil, "Client.Timeout"},
		{"connection refused", serveKeys, func(f *fakeIssuer) token.IssuerConfig {
			l, _ := net.Listen("tcp", "127.0.0.1:0")
			addr := l.Addr().String()
			_ = l.Close()
			c := logtoConfig(f)
			c.JWKSURL = "http://" + addr + "/jwks"
			return c
		}, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeIssuer(t, "ES256")
			f.mode.Store(int32(tt.mode))
			cfg := logtoConfig(f)
			if tt.setup != nil {
				cfg = tt.setup(f)
			}
			v := newValidator(t, newClock(), nil, cfg)
			start := time.Now()
			res := v.Validate(t.Context(), f.mint(t, logtoResourceClaims()), token.Request{})
			if res.Error != token.KeysUnavailable {
				t.Errorf("Validate = %v %s, want KEYS_UNAVAILABLE", res.Error, res.Detail)
			}
			if time.Since(start) > 3*time.Second {
				t.Errorf("Validate took %v with a broken key set", time.Since(start))
			}
			if ok, why := v.Ready(); ok || !strings.Contains(why, "no keys for issuer") {
				t.Errorf("Ready = %v, %q", ok, why)
			}
			if st := v.Status()[0]; !strings.Contains(st.LastError, tt.inErr) {
				t.Errorf("last error %q, want it to mention %q", st.LastError, tt.inErr)
			}
		})
	}
}

func TestKeyOfTheWrongType(t *testing.T) {
	rsaIssuer := newFakeIssuer(t, "RS256")
	ecIssuer := newFakeIssuer(t, "ES256")
	// The key set served for the EC issuer holds only an RSA key with the EC
	// key's kid.
	jwks := strings.Replace(string(rsaIssuer.JWKS()), rsaIssuer.KeyID(), ecIssuer.KeyID(), 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(jwks))
	}))
	defer srv.Close()
	cfg := logtoConfig(ecIssuer)
	cfg.JWKSURL = srv.URL
	v := newValidator(t, newClock(), nil, cfg)
	res := v.Validate(t.Context(), ecIssuer.mint(t, logtoResourceClaims()), token.Request{})
	if res.Error != token.UnknownKey || !strings.Contains(res.Detail, "cannot verify ES256") {
		t.Errorf("Validate = %v %s, want UNKNOWN_KEY naming the algorithm", res.Error, res.Detail)
	}
}

func TestVerifiedTokenCacheNeverOutlivesExp(t *testing.T) {
	f := newFakeIssuer(t, "ES256")
	clk := newClock()
	v := newValidator(t, clk, nil, logtoConfig(f))
	tok := f.mint(t, logtoResourceClaims())
	for range 3 {
		if res := v.Validate(t.Context(), tok, token.Request{}); !res.Valid {
			t.Fatalf("%v %s", res.Error, res.Detail)
		}
	}
	clk.Add(time.Hour + token.DefaultClockSkew)
	if res := v.Validate(t.Context(), tok, token.Request{}); res.Error != token.Expired {
		t.Errorf("a remembered token past exp: %v %s", res.Error, res.Detail)
	}
	// Request checks still run on a remembered token.
	clk.Set(t0)
	if res := v.Validate(t.Context(), tok, token.Request{RequiredScopes: []string{"admin"}}); res.Error != token.MissingScope {
		t.Errorf("a remembered token with a missing scope: %v", res.Error)
	}
}

func TestConfigProblemsAreReportedTogether(t *testing.T) {
	_, err := token.New([]token.IssuerConfig{
		{Profile: "okta"},
		{Issuer: "stytch.com/p", Profile: token.Stytch, Audiences: []string{"p"}},
		{Issuer: "https://a.example", Audiences: []string{"x"}, Algorithms: []string{"none", "XS1"}, ClockSkew: time.Hour},
		{Issuer: "https://a.example", Audiences: []string{"x"}},
	}, token.Options{})
	for _, want := range []string{
		"issuers[0]: issuer is required", `issuers[0]: profile "okta"`, "issuers[0]: audiences: at least one is required",
		"issuers[1] (stytch.com/p): jwks_url is required", `issuers[2] (https://a.example): algorithms: "none" is never allowed`,
		`unknown algorithm "XS1"`, "clock_skew 1h0m0s", "issuers[3] (https://a.example): duplicate of issuers[2]",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config error %v\nwant it to contain %q", err, want)
		}
	}
}

func TestLoadIssuersFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "issuers.yaml")
	if err := writeFile(good, "issuers:\n  - issuer: https://t.logto.app/oidc\n    profile: logto\n    audiences: [https://api]\n    clock_skew: 30s\n"); err != nil {
		t.Fatal(err)
	}
	cfgs, err := token.LoadIssuersFile(good)
	if err != nil || len(cfgs) != 1 || cfgs[0].ClockSkew != 30*time.Second || cfgs[0].Profile != token.Logto {
		t.Fatalf("LoadIssuersFile = %+v, %v", cfgs, err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := writeFile(bad, "issuers:\n  - issuer: x\n    audience: [y]\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := token.LoadIssuersFile(bad); err == nil || !strings.Contains(err.Error(), "line 3: unknown key issuers[0].audience") {
		t.Errorf("unknown key: err = %v", err)
	}
}

// The --issuers file is decoded as strictly as the configuration file.
func TestLoadIssuersFileIsStrict(t *testing.T) {
	const issuerKeys = "issuer, profile, jwks_url, audiences, algorithms, clock_skew, type, claims, authorization, jwks_refresh, organization_resource, hmac_secret_file"
	tests := []struct {
		name string
		doc  string
		want []string // each the whole message after "PATH: "
	}{
		{
			name: "an unknown key names its line and suggests the key meant",
			doc:  "issuers:\n  - issuer: https://a.example\n    audience: [api]\n",
			want: []string{"line 3: unknown key issuers[0].audience; did you mean issuers[0].audiences? issuers[0] has " + issuerKeys},
		},
		{
			name: "an unknown key at the top is an error too",
			doc:  "issuer:\n  - issuer: https://a.example\n",
			want: []string{"line 1: unknown key issuer; did you mean issuers? the file has issuers"},
		},
		{
			name: "an unknown claim name suggests the closest",
			doc:  "issuers:\n  - issuer: https://a.example\n    audiences: [api]\n    claims:\n      subjct: uid\n",
			want: []string{"line 5: unknown key issuers[0].claims.subjct; did you mean issuers[0].claims.subject? issuers[0].claims has subject, client_id, scope, org, roles"},
		},
		{
			name: "every problem at once, in any issuer",
			doc:  "issuers:\n  - issuer: https://a.example\n    clock_skew: 5\n  - issuer: https://b.example\n    profil: logto\n    issuer: https://c.example\n",
			want: []string{
				`line 3: issuers[0].clock_skew: "5": want a duration with its unit, such as 0s, 10s, 5m or 1h30m`,
				"line 5: unknown key issuers[1].profil; did you mean issuers[1].profile? issuers[1] has " + issuerKeys,
				"line 6: issuers[1].issuer is set twice (first at line 4)",
			},
		},
		{
			name: "a mapping where the issuers are a list",
			doc:  "issuers:\n  issuer: https://a.example\n",
			want: []string{"line 2: issuers: want a list, found a mapping"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "issuers.yaml")
			if err := writeFile(path, tt.doc); err != nil {
				t.Fatal(err)
			}
			// Every problem on a line of its own, as errors.Join writes them.
			want := path + ": " + strings.Join(tt.want, "\n"+path+": ")
			if _, err := token.LoadIssuersFile(path); err == nil || err.Error() != want {
				t.Errorf("LoadIssuersFile error:\n%v\nwant:\n%s", err, want)
			}
		})
	}
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
