package devissuer

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// logtoClaims has the shape of a Logto access token for an API resource.
func logtoClaims() map[string]any {
	return map[string]any{
		"iss":       "https://tenant.logto.app/oidc",
		"sub":       "u1a2b3c4d5",
		"aud":       "https://api.example.com",
		"client_id": "m2m-app-123",
		"scope":     "read:docs write:docs",
		"jti":       "jti-logto-1",
	}
}

// stytchClaims has the shape of a Stytch B2B session JWT: array audience,
// nbf and namespaced object claims.
func stytchClaims() map[string]any {
	return map[string]any{
		"sub": "member-live-0f0e0d",
		"aud": []any{"project-live-1234"},
		"nbf": float64(1700000000),
		"https://stytch.com/session": map[string]any{
			"id":                     "member-session-live-abc",
			"started_at":             "2026-01-01T00:00:00Z",
			"roles":                  []any{"stytch_member", "admin"},
			"authentication_factors": []any{map[string]any{"type": "magic_link", "delivery_method": "email"}},
		},
		"https://stytch.com/organization": map[string]any{
			"organization_id": "organization-live-xyz",
			"slug":            "acme",
		},
	}
}

func newIssuer(t testing.TB, alg string) *Issuer {
	t.Helper()
	iss, err := New(Options{Issuer: "https://dev.example/", Algorithm: alg})
	if err != nil {
		t.Fatalf("New(%q): %v", alg, err)
	}
	return iss
}

// verify checks tok against the key with tok's kid in jwksJSON, the way a
// relying party would, and returns the protected header and claims.
func verify(t *testing.T, jwksJSON []byte, alg, tok string) (jws.Headers, map[string]any) {
	t.Helper()
	hdr := protectedHeader(t, tok)
	kid, ok := hdr.KeyID()
	if !ok {
		t.Fatalf("token has no kid header")
	}
	set, err := jwk.Parse(jwksJSON)
	if err != nil {
		t.Fatalf("jwk.Parse(JWKS): %v", err)
	}
	key, ok := set.LookupKeyID(kid)
	if !ok {
		t.Fatalf("kid %q not in JWKS %s", kid, jwksJSON)
	}
	sigAlg, ok := jwa.LookupSignatureAlgorithm(alg)
	if !ok {
		t.Fatalf("jwa does not know %q", alg)
	}
	payload, err := jws.Verify([]byte(tok), jws.WithKey(sigAlg, key))
	if err != nil {
		t.Fatalf("jws.Verify: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatalf("unmarshal claims: %v", err)
	}
	return hdr, claims
}

func protectedHeader(t *testing.T, tok string) jws.Headers {
	t.Helper()
	msg, err := jws.ParseString(tok)
	if err != nil {
		t.Fatalf("jws.ParseString: %v", err)
	}
	sigs := msg.Signatures()
	if len(sigs) != 1 {
		t.Fatalf("got %d signatures, want 1", len(sigs))
	}
	return sigs[0].ProtectedHeaders()
}

// rawHeader decodes the protected header JSON as sent on the wire, so tests
// see exactly which fields are present.
func rawHeader(t *testing.T, tok string) map[string]any {
	t.Helper()
	hdr := protectedHeader(t, tok)
	b, err := json.Marshal(hdr)
	if err != nil {
		t.Fatalf("marshal header: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("unmarshal header: %v", err)
	}
	return m
}

func TestMintVerifiesForEveryAlgorithm(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, alg := range Algorithms() {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			iss := newIssuer(t, alg)
			if got := iss.Algorithm(); got != alg {
				t.Errorf("Algorithm() = %q, want %q", got, alg)
			}
			checkPublicKeyType(t, alg, iss)

			for _, tc := range []struct {
				name   string
				claims map[string]any
				want   map[string]any // defaults the issuer must add
			}{
				{
					name:   "logto",
					claims: logtoClaims(),
					want:   map[string]any{"iat": float64(now.Unix()), "exp": float64(now.Add(DefaultTTL).Unix())},
				},
				{
					name:   "stytch",
					claims: stytchClaims(),
					want: map[string]any{
						"iss": "https://dev.example/",
						"iat": float64(now.Unix()),
						"exp": float64(now.Add(DefaultTTL).Unix()),
					},
				},
				{
					name:   "explicit times kept",
					claims: map[string]any{"sub": "s", "iat": float64(5), "exp": float64(6)},
					want:   map[string]any{"iss": "https://dev.example/"},
				},
			} {
				t.Run(tc.name, func(t *testing.T) {
					before := fmt.Sprint(tc.claims)
					tok, err := iss.Mint(tc.claims, WithNow(now))
					if err != nil {
						t.Fatalf("Mint: %v", err)
					}
					if after := fmt.Sprint(tc.claims); after != before {
						t.Errorf("Mint modified the caller's claims: %s -> %s", before, after)
					}
					hdr, got := verify(t, iss.JWKS(), alg, tok)

					want := map[string]any{}
					for k, v := range tc.claims {
						want[k] = v
					}
					for k, v := range tc.want {
						want[k] = v
					}
					if diff := cmp.Diff(want, got); diff != "" {
						t.Errorf("claims mismatch (-want +got):\n%s", diff)
					}
					wantHdr := map[string]any{"alg": alg, "kid": iss.KeyID(), "typ": "at+jwt"}
					if diff := cmp.Diff(wantHdr, rawHeader(t, tok)); diff != "" {
						t.Errorf("header mismatch (-want +got):\n%s", diff)
					}
					if a, _ := hdr.Algorithm(); a.String() != alg {
						t.Errorf("header alg = %q, want %q", a, alg)
					}
				})
			}
		})
	}
}

func checkPublicKeyType(t *testing.T, alg string, iss *Issuer) {
	t.Helper()
	var ok bool
	switch alg[:2] {
	case "RS", "PS":
		var k *rsa.PublicKey
		k, ok = iss.PublicKey().(*rsa.PublicKey)
		if ok && k.N.BitLen() != rsaBits {
			t.Errorf("RSA modulus is %d bits, want %d", k.N.BitLen(), rsaBits)
		}
	case "ES":
		_, ok = iss.PublicKey().(*ecdsa.PublicKey)
	case "Ed":
		_, ok = iss.PublicKey().(ed25519.PublicKey)
	}
	if !ok {
		t.Errorf("PublicKey() is %T, unexpected for %s", iss.PublicKey(), alg)
	}
}

func TestJWKSHasNoPrivateMaterial(t *testing.T) {
	private := []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"}
	for _, alg := range Algorithms() {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			iss := newIssuer(t, alg)
			if _, err := iss.Rotate(); err != nil {
				t.Fatalf("Rotate: %v", err)
			}
			var doc struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal(iss.JWKS(), &doc); err != nil {
				t.Fatalf("unmarshal JWKS: %v", err)
			}
			if len(doc.Keys) != 2 {
				t.Fatalf("JWKS has %d keys, want 2", len(doc.Keys))
			}
			for _, k := range doc.Keys {
				for _, p := range private {
					if _, ok := k[p]; ok {
						t.Errorf("JWKS key %v carries private parameter %q", k["kid"], p)
					}
				}
				for _, f := range []string{"kid", "kty"} {
					if s, _ := k[f].(string); s == "" {
						t.Errorf("JWKS key lacks %q: %v", f, k)
					}
				}
				if k["alg"] != alg || k["use"] != "sig" {
					t.Errorf("JWKS key alg/use = %v/%v, want %s/sig", k["alg"], k["use"], alg)
				}
			}
		})
	}
}

func TestRotateAndRemoveKey(t *testing.T) {
	iss := newIssuer(t, "ES256")
	oldKid := iss.KeyID()
	oldTok, err := iss.Mint(map[string]any{"sub": "before"})
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}

	newKid, err := iss.Rotate()
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if newKid == oldKid {
		t.Fatalf("Rotate kept kid %q", newKid)
	}
	if iss.KeyID() != newKid {
		t.Errorf("KeyID() = %q after Rotate, want %q", iss.KeyID(), newKid)
	}
	set, err := jwk.Parse(iss.JWKS())
	if err != nil {
		t.Fatalf("jwk.Parse: %v", err)
	}
	oldKey, okOld := set.LookupKeyID(oldKid)
	newKey, okNew := set.LookupKeyID(newKid)
	if !okOld || !okNew || set.Len() != 2 {
		t.Fatalf("JWKS after Rotate: old %v new %v len %d, want both and 2", okOld, okNew, set.Len())
	}

	// The old token still verifies during rotation.
	verify(t, iss.JWKS(), "ES256", oldTok)

	newTok, err := iss.Mint(map[string]any{"sub": "after"})
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	if kid, _ := protectedHeader(t, newTok).KeyID(); kid != newKid {
		t.Errorf("token kid = %q, want %q", kid, newKid)
	}
	if _, err := jws.Verify([]byte(newTok), jws.WithKey(jwa.ES256(), newKey)); err != nil {
		t.Errorf("new token with new key: %v", err)
	}
	if _, err := jws.Verify([]byte(newTok), jws.WithKey(jwa.ES256(), oldKey)); err == nil {
		t.Errorf("new token verified with the old key")
	}

	if iss.RemoveKey(newKid) {
		t.Errorf("RemoveKey removed the current signing key")
	}
	if iss.RemoveKey("no-such-kid") {
		t.Errorf("RemoveKey reported removing an unknown kid")
	}
	if !iss.RemoveKey(oldKid) {
		t.Fatalf("RemoveKey(%q) = false", oldKid)
	}
	set, err = jwk.Parse(iss.JWKS())
	if err != nil {
		t.Fatalf("jwk.Parse: %v", err)
	}
	if _, ok := set.LookupKeyID(oldKid); ok || set.Len() != 1 {
		t.Errorf("JWKS still has old kid (len %d)", set.Len())
	}
	verify(t, iss.JWKS(), "ES256", newTok)
}

func TestMintHeaderOptions(t *testing.T) {
	iss := newIssuer(t, "ES256")
	attacker := newIssuer(t, "ES256")
	attackerJWK, err := jwk.Import(attacker.PublicKey())
	if err != nil {
		t.Fatalf("jwk.Import: %v", err)
	}
	kid := iss.KeyID()

	for _, tc := range []struct {
		name string
		opts []MintOption
		want map[string]any // wire header except "jwk", checked separately
		jwk  bool
	}{
		{
			name: "default",
			want: map[string]any{"alg": "ES256", "kid": kid, "typ": "at+jwt"},
		},
		{
			name: "typ JWT",
			opts: []MintOption{WithType("JWT")},
			want: map[string]any{"alg": "ES256", "kid": kid, "typ": "JWT"},
		},
		{
			name: "no typ",
			opts: []MintOption{WithType("")},
			want: map[string]any{"alg": "ES256", "kid": kid},
		},
		{
			name: "without kid",
			opts: []MintOption{WithoutKeyID()},
			want: map[string]any{"alg": "ES256", "typ": "at+jwt"},
		},
		{
			name: "jku and x5u",
			opts: []MintOption{WithHeader("jku", "https://evil.example/jwks"), WithHeader("x5u", "https://evil.example/cert")},
			want: map[string]any{"alg": "ES256", "kid": kid, "typ": "at+jwt", "jku": "https://evil.example/jwks", "x5u": "https://evil.example/cert"},
		},
		{
			name: "crit and private header",
			opts: []MintOption{WithHeader("crit", []string{"exp"}), WithHeader("x-custom", 7)},
			want: map[string]any{"alg": "ES256", "kid": kid, "typ": "at+jwt", "crit": []any{"exp"}, "x-custom": float64(7)},
		},
		{
			name: "kid override",
			opts: []MintOption{WithHeader("kid", "unknown-kid")},
			want: map[string]any{"alg": "ES256", "kid": "unknown-kid", "typ": "at+jwt"},
		},
		{
			name: "embedded jwk from crypto key",
			opts: []MintOption{WithHeader("jwk", attacker.PublicKey())},
			want: map[string]any{"alg": "ES256", "kid": kid, "typ": "at+jwt"},
			jwk:  true,
		},
		{
			name: "embedded jwk from jwk.Key",
			opts: []MintOption{WithHeader("jwk", attackerJWK)},
			want: map[string]any{"alg": "ES256", "kid": kid, "typ": "at+jwt"},
			jwk:  true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := iss.Mint(map[string]any{"sub": "s"}, tc.opts...)
			if err != nil {
				t.Fatalf("Mint: %v", err)
			}
			got := rawHeader(t, tok)
			embedded, hasJWK := got["jwk"].(map[string]any)
			delete(got, "jwk")
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("header mismatch (-want +got):\n%s", diff)
			}
			if hasJWK != tc.jwk {
				t.Fatalf("jwk header present = %v, want %v", hasJWK, tc.jwk)
			}
			if tc.jwk {
				if embedded["x"] == nil || embedded["d"] != nil {
					t.Errorf("embedded jwk = %v, want the attacker's public key", embedded)
				}
			}
			// The signature is still the issuer's, whatever the header says.
			if _, err := jws.Verify([]byte(tok), jws.WithKey(jwa.ES256(), iss.PublicKey())); err != nil {
				t.Errorf("verify with issuer key: %v", err)
			}
		})
	}
}

func TestMintErrors(t *testing.T) {
	iss := newIssuer(t, "ES256")
	for _, tc := range []struct {
		name   string
		claims map[string]any
		opts   []MintOption
		want   string
	}{
		{"alg override", nil, []MintOption{WithHeader("alg", "none")}, `"alg" cannot be overridden`},
		{"kid of wrong type", nil, []MintOption{WithHeader("kid", 42)}, `header "kid"`},
		{"jwk not a key", nil, []MintOption{WithHeader("jwk", "nope")}, `header "jwk"`},
		{"unmarshalable claim", map[string]any{"c": make(chan int)}, nil, "marshal claims"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := iss.Mint(tc.claims, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Mint error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestMintDeliberatelyWrongClaimTypes(t *testing.T) {
	iss := newIssuer(t, "EdDSA")
	iss.SetIssuer("")
	claims := map[string]any{"exp": "tomorrow", "iat": true, "aud": 12, "sub": nil}
	tok, err := iss.Mint(claims)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	_, got := verify(t, iss.JWKS(), "EdDSA", tok)
	want := map[string]any{"exp": "tomorrow", "iat": true, "aud": float64(12), "sub": nil}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("claims mismatch (no iss expected with empty issuer) (-want +got):\n%s", diff)
	}
}

func TestNewRejectsUnknownAlgorithm(t *testing.T) {
	for _, alg := range []string{"HS256", "none", "es256", "RS1", "Ed25519"} {
		t.Run(alg, func(t *testing.T) {
			_, err := New(Options{Algorithm: alg})
			if !errors.Is(err, ErrUnsupportedAlgorithm) {
				t.Fatalf("New(%q) error = %v, want ErrUnsupportedAlgorithm", alg, err)
			}
			for _, a := range Algorithms() {
				if !strings.Contains(err.Error(), a) {
					t.Errorf("error %q does not name allowed algorithm %s", err, a)
				}
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	iss, err := New(Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if iss.Algorithm() != "RS256" {
		t.Errorf("default Algorithm() = %q, want RS256", iss.Algorithm())
	}
	if iss.Issuer() != "" {
		t.Errorf("Issuer() = %q, want empty", iss.Issuer())
	}
	iss.SetIssuer("http://127.0.0.1:1234")
	if iss.Issuer() != "http://127.0.0.1:1234" {
		t.Errorf("Issuer() after SetIssuer = %q", iss.Issuer())
	}
	before := time.Now().Unix()
	tok, err := iss.Mint(nil)
	if err != nil {
		t.Fatalf("Mint(nil): %v", err)
	}
	_, claims := verify(t, iss.JWKS(), "RS256", tok)
	iat, _ := claims["iat"].(float64)
	exp, _ := claims["exp"].(float64)
	if int64(iat) < before || int64(iat) > time.Now().Unix() || int64(exp-iat) != int64(DefaultTTL/time.Second) {
		t.Errorf("iat/exp = %v/%v, want now and now+1h", iat, exp)
	}
	if claims["iss"] != "http://127.0.0.1:1234" {
		t.Errorf("iss = %v", claims["iss"])
	}
}

func TestHandler(t *testing.T) {
	iss := newIssuer(t, "ES256")
	srv := httptest.NewServer(iss.Handler())
	t.Cleanup(srv.Close)
	iss.SetIssuer(srv.URL)

	t.Run("jwks", func(t *testing.T) {
		resp, body := do(t, http.MethodGet, srv.URL+"/jwks", "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "max-age=300" {
			t.Errorf("Cache-Control = %q", cc)
		}
		if !bytes.Equal(body, iss.JWKS()) {
			t.Errorf("body %s differs from JWKS() %s", body, iss.JWKS())
		}
	})

	t.Run("discovery", func(t *testing.T) {
		resp, body := do(t, http.MethodGet, srv.URL+"/.well-known/openid-configuration", "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("unmarshal %s: %v", body, err)
		}
		want := map[string]any{
			"issuer":                                srv.URL,
			"jwks_uri":                              srv.URL + "/jwks",
			"id_token_signing_alg_values_supported": []any{"ES256"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("discovery mismatch (-want +got):\n%s", diff)
		}
		// The advertised jwks_uri must actually serve the keys.
		resp, jwks := do(t, http.MethodGet, got["jwks_uri"].(string), "")
		if resp.StatusCode != http.StatusOK || !bytes.Equal(jwks, iss.JWKS()) {
			t.Errorf("GET jwks_uri: status %d body %s", resp.StatusCode, jwks)
		}
	})

	t.Run("discovery over TLS", func(t *testing.T) {
		tlsSrv := httptest.NewTLSServer(iss.Handler())
		t.Cleanup(tlsSrv.Close)
		resp, err := tlsSrv.Client().Get(tlsSrv.URL + "/.well-known/openid-configuration")
		if err != nil {
			t.Fatalf("GET discovery: %v", err)
		}
		defer resp.Body.Close()
		var got struct {
			JWKSURI string `json:"jwks_uri"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatalf("decode discovery: %v", err)
		}
		if want := tlsSrv.URL + "/jwks"; got.JWKSURI != want {
			t.Errorf("jwks_uri = %q, want %q", got.JWKSURI, want)
		}
	})

	for _, tc := range []struct {
		name    string
		query   string
		body    string
		wantTyp string
	}{
		{"logto shape", "", `{"sub":"u1","aud":"https://api.example.com","scope":"read","big":12345678901234567890}`, "at+jwt"},
		{"stytch shape typ JWT", "?typ=JWT", `{"sub":"member-1","aud":["project-1"],"https://stytch.com/session":{"roles":["admin"]}}`, "JWT"},
	} {
		t.Run("token "+tc.name, func(t *testing.T) {
			resp, body := do(t, http.MethodPost, srv.URL+"/token"+tc.query, tc.body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			var tr struct {
				AccessToken string `json:"access_token"`
				TokenType   string `json:"token_type"`
			}
			if err := json.Unmarshal(body, &tr); err != nil {
				t.Fatalf("unmarshal %s: %v", body, err)
			}
			if tr.TokenType != "Bearer" {
				t.Errorf("token_type = %q", tr.TokenType)
			}
			_, jwks := do(t, http.MethodGet, srv.URL+"/jwks", "")
			hdr, claims := verify(t, jwks, "ES256", tr.AccessToken)
			if typ, _ := hdr.Type(); typ != tc.wantTyp {
				t.Errorf("typ = %q, want %q", typ, tc.wantTyp)
			}
			var posted map[string]any
			if err := json.Unmarshal([]byte(tc.body), &posted); err != nil {
				t.Fatal(err)
			}
			for k, v := range posted {
				if diff := cmp.Diff(v, claims[k]); diff != "" {
					t.Errorf("claim %q mismatch (-posted +got):\n%s", k, diff)
				}
			}
			if claims["iss"] != srv.URL {
				t.Errorf("iss = %v, want %s", claims["iss"], srv.URL)
			}
			// UseNumber keeps integers beyond float64 precision verbatim.
			if tc.query == "" && !strings.Contains(payloadJSON(t, tr.AccessToken), `"big":12345678901234567890`) {
				t.Errorf("large integer claim was not kept verbatim")
			}
		})
	}

	for _, tc := range []struct {
		name, method, path, body string
		wantStatus               int
		wantBody                 string
	}{
		{"array body", http.MethodPost, "/token", `[1,2]`, http.StatusBadRequest, "JSON object"},
		{"string body", http.MethodPost, "/token", `"sub"`, http.StatusBadRequest, "JSON object"},
		{"null body", http.MethodPost, "/token", `null`, http.StatusBadRequest, "got null"},
		{"empty body", http.MethodPost, "/token", ``, http.StatusBadRequest, "JSON object"},
		{"malformed", http.MethodPost, "/token", `{"sub":`, http.StatusBadRequest, "JSON object"},
		{"trailing data", http.MethodPost, "/token", `{"sub":"a"} {"sub":"b"}`, http.StatusBadRequest, "single JSON object"},
		{"too large", http.MethodPost, "/token", `{"pad":"` + strings.Repeat("a", maxTokenRequest) + `"}`, http.StatusBadRequest, "exceeds 65536 bytes"},
		{"GET token", http.MethodGet, "/token", ``, http.StatusMethodNotAllowed, ""},
		{"POST jwks", http.MethodPost, "/jwks", `{}`, http.StatusMethodNotAllowed, ""},
		{"unknown path", http.MethodGet, "/nope", ``, http.StatusNotFound, ""},
		{"root", http.MethodGet, "/", ``, http.StatusNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, tc.method, srv.URL+tc.path, tc.body)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tc.wantStatus, body)
			}
			if !strings.Contains(string(body), tc.wantBody) {
				t.Errorf("body %q does not contain %q", body, tc.wantBody)
			}
		})
	}
}

func payloadJSON(t *testing.T, tok string) string {
	t.Helper()
	msg, err := jws.ParseString(tok)
	if err != nil {
		t.Fatalf("jws.ParseString: %v", err)
	}
	return string(msg.Payload())
}

func do(t *testing.T, method, url, body string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatalf("NewRequest: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, b
}

// TestConcurrentUse runs minting, rotation, key removal and HTTP serving at
// once; it exists for the race detector.
func TestConcurrentUse(t *testing.T) {
	iss := newIssuer(t, "ES256")
	srv := httptest.NewServer(iss.Handler())
	t.Cleanup(srv.Close)

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 4 {
		wg.Go(func() {
			for n := range 20 {
				if _, err := iss.Mint(map[string]any{"sub": fmt.Sprint(g, n)}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 5 {
			old := iss.KeyID()
			if _, err := iss.Rotate(); err != nil {
				errs <- err
				return
			}
			iss.RemoveKey(old)
			iss.SetIssuer(srv.URL)
		}
	})
	wg.Go(func() {
		for range 10 {
			resp, err := http.Post(srv.URL+"/token", "application/json", strings.NewReader(`{"sub":"http"}`))
			if err != nil {
				errs <- err
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("POST /token: status %d", resp.StatusCode)
				return
			}
			_ = iss.JWKS()
			_ = iss.PublicKey()
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkMint(b *testing.B) {
	iss := newIssuer(b, "ES256")
	claims := logtoClaims()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := iss.Mint(claims); err != nil {
			b.Fatal(err)
		}
	}
}
