package token_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rolecall/rolecall/token"
	"github.com/rolecall/rolecall/token/devissuer"
)

// benchIssuer serves a development issuer's key set and returns a validator
// for it (verified-token cache on or off) and a Logto-shaped token.
func benchIssuer(b *testing.B, alg string, cached bool) (*token.Validator, string, *devissuer.Issuer) {
	b.Helper()
	di, err := devissuer.New(devissuer.Options{Algorithm: alg})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(di.Handler())
	b.Cleanup(srv.Close)
	di.SetIssuer(srv.URL)
	size := -1
	if cached {
		size = 0
	}
	v, err := token.New([]token.IssuerConfig{{Issuer: srv.URL, Profile: token.Logto, JWKSURL: srv.URL + "/jwks", Audiences: []string{ordersAPI}, Algorithms: []string{alg}}},
		token.Options{Now: func() time.Time { return t0 }, VerifiedTokens: size, HTTPClient: http.DefaultClient})
	if err != nil {
		b.Fatal(err)
	}
	if err := v.RefreshKeys(b.Context(), true); err != nil {
		b.Fatal(err)
	}
	tok, err := di.Mint(logtoResourceClaims(), devissuer.WithNow(t0))
	if err != nil {
		b.Fatal(err)
	}
	return v, tok, di
}

var benchAlgs = []string{"RS256", "ES256", "ES384", "EdDSA"}

// BenchmarkValidate measures a whole validation. cold verifies the signature
// every time (the verified-token cache is off); warm is a cache hit; bare is
// the signature verification alone with the standard library, the floor
// that cold is compared with.
func BenchmarkValidate(b *testing.B) {
	req := token.Request{RequiredScopes: []string{"read:order"}}
	for _, alg := range benchAlgs {
		b.Run("cold/"+alg, func(b *testing.B) {
			v, tok, _ := benchIssuer(b, alg, false)
			b.ReportAllocs()
			for b.Loop() {
				if res := v.Validate(b.Context(), tok, req); !res.Valid {
					b.Fatal(res.Error, res.Detail)
				}
			}
		})
		b.Run("bare/"+alg, func(b *testing.B) {
			_, tok, di := benchIssuer(b, alg, false)
			verify := bareVerifier(b, alg, di.PublicKey())
			dot := strings.LastIndexByte(tok, '.')
			signed, sig := tok[:dot], tok[dot+1:]
			b.ReportAllocs()
			for b.Loop() {
				raw, err := base64.RawURLEncoding.DecodeString(sig)
				if err != nil || !verify([]byte(signed), raw) {
					b.Fatal("bare verification failed")
				}
			}
		})
	}
	b.Run("warm", func(b *testing.B) {
		v, tok, _ := benchIssuer(b, "ES256", true)
		b.ReportAllocs()
		for b.Loop() {
			if res := v.Validate(b.Context(), tok, req); !res.Valid {
				b.Fatal(res.Error, res.Detail)
			}
		}
	})
}

func bareVerifier(b *testing.B, alg string, pub crypto.PublicKey) func(msg, sig []byte) bool {
	switch alg {
	case "RS256":
		return func(msg, sig []byte) bool {
			h := crypto.SHA256.New()
			h.Write(msg)
			return rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, h.Sum(nil), sig) == nil
		}
	case "ES256", "ES384":
		hash := crypto.SHA256
		if alg == "ES384" {
			hash = crypto.SHA384
		}
		return func(msg, sig []byte) bool {
			h := hash.New()
			h.Write(msg)
			n := len(sig) / 2
			r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
			return ecdsa.Verify(pub.(*ecdsa.PublicKey), h.Sum(nil), r, s)
		}
	case "EdDSA":
		return func(msg, sig []byte) bool { return ed25519.Verify(pub.(ed25519.PublicKey), msg, sig) }
	}
	b.Fatalf("no bare verifier for %s", alg)
	return nil
}
