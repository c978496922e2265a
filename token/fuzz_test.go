package token_test

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rolecall/rolecall/token"
	"github.com/rolecall/rolecall/token/devissuer"
)

// FuzzValidate feeds arbitrary strings to a validator that trusts one Ed25519
// issuer. Validate must never panic, and must never call a token valid unless
// its signature verifies, by an independent check with crypto/ed25519, under
// the issuer's key over exactly the token's first two segments.
func FuzzValidate(f *testing.F) {
	iss := newFakeIssuer(f, "EdDSA")
	pub, ok := iss.PublicKey().(ed25519.PublicKey)
	if !ok {
		f.Fatalf("public key is %T, want ed25519.PublicKey", iss.PublicKey())
	}
	clk := newClock()
	v, err := token.New([]token.IssuerConfig{{
		Issuer: iss.Issuer.Issuer(), Profile: token.Logto, Audiences: []string{ordersAPI},
		JWKSURL: iss.srv.URL + "/jwks", Algorithms: []string{"EdDSA"},
	}}, token.Options{Now: clk.Now})
	if err != nil {
		f.Fatal(err)
	}
	if err := v.RefreshKeys(f.Context(), true); err != nil {
		f.Fatal(err)
	}

	good := iss.mint(f, logtoResourceClaims())
	if r := v.Validate(f.Context(), good, token.Request{}); !r.Valid {
		f.Fatalf("seed token is not valid: %v %s", r.Error, r.Detail)
	}
	parts := strings.Split(good, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	seeds := []string{
		good,
		parts[0] + "." + parts[1] + ".", // no signature
		b64([]byte(`{"alg":"none"}`)) + "." + parts[1] + ".",                         // alg none
		parts[0] + "." + b64([]byte(`{"sub":"mallory","aud":"x"}`)) + "." + parts[2], // payload swapped
		parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-2] + "AA",          // signature altered
		hs256(pub, `{"alg":"HS256","kid":"`+iss.KeyID()+`"}`, parts[1]),              // key confusion
		iss.mint(f, logtoResourceClaims(), devissuer.WithType("JWT")),
		iss.mint(f, map[string]any{"sub": "bob", "aud": ordersAPI, "exp": t0.Add(-time.Hour).Unix()}),
		"", ".", "..", "a.b.c", "a.b.c.d.e", strings.Repeat("A", 100),
	}
	for _, s := range seeds {
		f.Add(s, "", "")
	}
	f.Add(good, ordersAPI, "read:order")
	f.Add(good, "https://elsewhere", "admin")

	f.Fuzz(func(t *testing.T, tok, aud, scope string) {
		req := token.Request{Audience: aud}
		if scope != "" {
			req.RequiredScopes = []string{scope}
		}
		r := v.Validate(t.Context(), tok, req)
		if r.Valid == (r.Error != token.OK) {
			t.Fatalf("Valid=%v with code %v", r.Valid, r.Error)
		}
		if !r.Valid {
			return
		}
		segs := strings.Split(tok, ".")
		if len(segs) != 3 {
			t.Fatalf("valid token %q has %d segments", tok, len(segs))
		}
		sig, err := base64.RawURLEncoding.DecodeString(segs[2])
		if err != nil || !ed25519.Verify(pub, []byte(segs[0]+"."+segs[1]), sig) {
			t.Fatalf("token %q is valid without a good signature", tok)
		}
	})
}

// hs256 signs header.payload with HMAC-SHA256 keyed by key: the classic
// algorithm-confusion forgery that uses a public key as an HMAC secret.
func hs256(key []byte, header, payload string) string {
	in := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + payload
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// A token over MaxTokenBytes is refused before it is parsed or a key is
// looked up, with a detail naming the limit.
func TestOversizedTokenIsMalformed(t *testing.T) {
	iss := newFakeIssuer(t, "ES256")
	v := newValidator(t, newClock(), nil, logtoConfig(iss))
	good := iss.mint(t, logtoResourceClaims())
	if r := v.Validate(t.Context(), good, token.Request{}); !r.Valid {
		t.Fatalf("the unpadded token is not valid: %v %s", r.Error, r.Detail)
	}
	hits := iss.jwksHits.Load()
	big := good + strings.Repeat("A", token.MaxTokenBytes-len(good)+1)
	r := v.Validate(t.Context(), big, token.Request{})
	want := fmt.Sprintf("token is %d bytes; the limit is %d", token.MaxTokenBytes+1, token.MaxTokenBytes)
	if r.Valid || r.Error != token.Malformed || r.Detail != want {
		t.Errorf("oversized token: valid %v, %v %q; want MALFORMED %q", r.Valid, r.Error, r.Detail, want)
	}
	if iss.jwksHits.Load() != hits {
		t.Error("an oversized token caused a key set fetch")
	}
}
