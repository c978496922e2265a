// Package devissuer is a DEVELOPMENT-ONLY JWT access-token issuer.
//
// NOT FOR PRODUCTION. Signing keys are generated at start-up and live only in
// memory, they are never persisted or protected, and anyone who can reach
// [Issuer.Handler] can mint a token for any claims they like. It exists so
// that rolecall's tests can mint tokens shaped like real Logto and Stytch
// access tokens against a JWKS served from an httptest server, and so that
// the `rolecall dev-issuer` demo command can do the same on loopback. Never
// point a production rolecall at it.
//
// The signatures and the JWKS are produced by github.com/lestrrat-go/jwx/v3,
// so what rolecall verifies in tests is what a real library emits rather
// than hand-rolled JOSE.
package devissuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// DefaultType is the "typ" header of minted tokens: RFC 9068 access tokens
// are "at+jwt", which is what Logto emits.
const DefaultType = "at+jwt"

// DefaultTTL is how long a minted token lives when the claims carry no "exp".
const DefaultTTL = time.Hour

// rsaBits is the modulus size for RS*/PS* keys: the smallest size verifiers
// commonly accept, which keeps key generation in tests fast.
const rsaBits = 2048

// ErrUnsupportedAlgorithm is returned by [New] for an algorithm outside
// [Algorithms].
var ErrUnsupportedAlgorithm = errors.New("devissuer: unsupported algorithm")

// algorithms lists the asymmetric JWS algorithms the issuer can sign with,
// in the order reported to users. Symmetric (HS*) and "none" are absent on
// purpose: an access-token issuer publishes a JWKS, which only makes sense
// for public keys.
var algorithms = []string{
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA",
}

// Algorithms returns the JWS algorithms accepted in [Options.Algorithm].
func Algorithms() []string {
	return append([]string(nil), algorithms...)
}

// Options configures [New].
type Options struct {
	// Issuer is the "iss" claim added to minted tokens whose claims do not
	// set one. It may be left empty and set later with [Issuer.SetIssuer],
	// because the dev-issuer command only knows its URL after listening.
	Issuer string
	// Algorithm is the JWS algorithm: RS256 (the default when empty), RS384,
	// RS512, PS256, PS384, PS512, ES256, ES384, ES512 or EdDSA (Ed25519).
	Algorithm string
}

// signingKey is one generated key pair. It is immutable once built, so Mint
// can use it after releasing the issuer's lock.
type signingKey struct {
	kid  string
	priv crypto.Signer
	pub  jwk.Key // public half with kid, alg and use set, as published
}

// Issuer mints signed tokens and publishes the matching JWKS. It is safe for
// concurrent use.
type Issuer struct {
	alg jwa.SignatureAlgorithm

	mu     sync.RWMutex
	issuer string
	keys   []*signingKey // published keys, oldest first; the last signs
	jwks   []byte        // JSON of keys' public halves, rebuilt on change
}

// New returns an issuer with a freshly generated key for opts.Algorithm.
func New(opts Options) (*Issuer, error) {
	name := opts.Algorithm
	if name == "" {
		name = "RS256"
	}
	alg, err := lookupAlgorithm(name)
	if err != nil {
		return nil, err
	}
	i := &Issuer{alg: alg, issuer: opts.Issuer}
	if _, err := i.Rotate(); err != nil {
		return nil, err
	}
	return i, nil
}

func lookupAlgorithm(name string) (jwa.SignatureAlgorithm, error) {
	allowed := strings.Join(algorithms, ", ")
	for _, a := range algorithms {
		if a != name {
			continue
		}
		alg, ok := jwa.LookupSignatureAlgorithm(name)
		if !ok {
			return jwa.EmptySignatureAlgorithm(), fmt.Errorf("%w %q: not known to jwx (allowed: %s)", ErrUnsupportedAlgorithm, name, allowed)
		}
		return alg, nil
	}
	return jwa.EmptySignatureAlgorithm(), fmt.Errorf("%w %q (allowed: %s)", ErrUnsupportedAlgorithm, name, allowed)
}

// SetIssuer changes the default "iss" claim for tokens minted from now on.
func (i *Issuer) SetIssuer(iss string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.issuer = iss
}

// Issuer returns the default "iss" claim.
func (i *Issuer) Issuer() string {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.issuer
}

// Algorithm returns the JWS algorithm name, e.g. "ES256".
func (i *Issuer) Algorithm() string {
	return i.alg.String()
}

// KeyID returns the kid of the current signing key.
func (i *Issuer) KeyID() string {
	return i.current().kid
}

// PublicKey returns the current signing key's public key
// (*rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey).
func (i *Issuer) PublicKey() crypto.PublicKey {
	return i.current().priv.Public()
}

func (i *Issuer) current() *signingKey {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.keys[len(i.keys)-1]
}

// Rotate generates a new key of the same algorithm and makes it the signing
// key. The previous public keys stay in the JWKS, as a real issuer keeps
// them during rotation so tokens already handed out still verify; drop them
// with [Issuer.RemoveKey].
func (i *Issuer) Rotate() (kid string, err error) {
	// Generate outside the lock: RSA generation takes tens of milliseconds
	// and concurrent Mint calls should not wait for it.
	k, err := generateKey(i.alg)
	if err != nil {
		return "", err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	// Work on a copy and commit only once the JWKS is built, so a failure
	// leaves keys and JWKS in agreement.
	keys := append(slices.Clone(i.keys), k)
	jwks, err := marshalJWKS(keys)
	if err != nil {
		return "", err
	}
	i.keys, i.jwks = keys, jwks
	return k.kid, nil
}

// RemoveKey drops the key with the given kid from the JWKS and reports
// whether it did. The current signing key cannot be removed, since Mint would
// then have nothing to sign with; to get a token whose kid the JWKS does not
// know, sign with a second Issuer or override "kid" with [WithHeader].
func (i *Issuer) RemoveKey(kid string) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	last := len(i.keys) - 1
	for n, k := range i.keys[:last] {
		if k.kid != kid {
			continue
		}
		keys := slices.Delete(slices.Clone(i.keys), n, n+1)
		jwks, err := marshalJWKS(keys)
		if err != nil {
			// Every key marshalled when it was added, so a subset should
			// not fail; if it does, keep keys and JWKS in agreement.
			return false
		}
		i.keys, i.jwks = keys, jwks
		return true
	}
	return false
}

// JWKS returns the public key set as JSON ({"keys":[...]}), every key with
// kid, kty, alg and use "sig" and no private parameters.
func (i *Issuer) JWKS() []byte {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return append([]byte(nil), i.jwks...)
}

func generateKey(alg jwa.SignatureAlgorithm) (*signingKey, error) {
	var priv crypto.Signer
	var err error
	switch alg.String() {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		priv, err = rsa.GenerateKey(rand.Reader, rsaBits)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES512":
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("%w %q", ErrUnsupportedAlgorithm, alg)
	}
	if err != nil {
		return nil, fmt.Errorf("devissuer: generate %s key: %w", alg, err)
	}

	// Import the public half only, so the published JWK cannot carry
	// private parameters whatever jwx does with private keys.
	pub, err := jwk.Import(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("devissuer: import %s public key: %w", alg, err)
	}
	// The RFC 7638 thumbprint makes a stable, collision-free kid without
	// keeping a counter, and is what several real issuers use.
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("devissuer: thumbprint %s key: %w", alg, err)
	}
	kid := base64.RawURLEncoding.EncodeToString(tp)
	for name, v := range map[string]any{
		jwk.KeyIDKey:     kid,
		jwk.AlgorithmKey: alg,
		jwk.KeyUsageKey:  jwk.ForSignature,
	} {
		if err := pub.Set(name, v); err != nil {
			return nil, fmt.Errorf("devissuer: set JWK %q: %w", name, err)
		}
	}
	return &signingKey{kid: kid, priv: priv, pub: pub}, nil
}

func marshalJWKS(keys []*signingKey) ([]byte, error) {
	set := jwk.NewSet()
	for _, k := range keys {
		if err := set.AddKey(k.pub); err != nil {
			return nil, fmt.Errorf("devissuer: add key %s to JWKS: %w", k.kid, err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("devissuer: marshal JWKS: %w", err)
	}
	return b, nil
}

// MintOption adjusts one [Issuer.Mint] call.
type MintOption func(*mintConfig)

type header struct {
	name  string
	value any
}

type mintConfig struct {
	typ     string
	noKeyID bool
	now     func() time.Time
	headers []header
}

// WithType sets the "typ" header (default [DefaultType]); "" omits it.
// Stytch session JWTs, for instance, carry "JWT".
func WithType(typ string) MintOption {
	return func(c *mintConfig) { c.typ = typ }
}

// WithHeader sets an extra protected header, or overrides "typ" or "kid",
// after every other option has been applied; attack tests use it for "jku",
// "x5u", "jwk", "crit" and friends. Values must have the type jwx expects
// for standard headers (string for "jku"/"x5u"/"kid", []string for "crit");
// for "jwk" any public key [jwk.Import] accepts works too. "alg" cannot be
// overridden, because jwx always writes the algorithm it signed with.
func WithHeader(name string, value any) MintOption {
	return func(c *mintConfig) { c.headers = append(c.headers, header{name, value}) }
}

// WithoutKeyID omits the "kid" header.
func WithoutKeyID() MintOption {
	return func(c *mintConfig) { c.noKeyID = true }
}

// WithNow sets the clock used for the "iat" and "exp" defaults.
func WithNow(t time.Time) MintOption {
	return func(c *mintConfig) { c.now = func() time.Time { return t } }
}

// Mint signs claims with the current key and returns a compact JWS.
//
// Claims absent from the map get defaults: "iss" = [Issuer.Issuer] (unless
// that is empty), "iat" = now and "exp" = now + [DefaultTTL], as Unix
// seconds. Claims are marshalled with encoding/json exactly as given, so
// tests can put deliberately wrong types in them. The caller's map is not
// modified. The header holds "alg", "kid" and "typ" ([DefaultType] unless
// changed with [WithType]).
func (i *Issuer) Mint(claims map[string]any, opts ...MintOption) (string, error) {
	cfg := mintConfig{typ: DefaultType, now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}

	i.mu.RLock()
	key, iss := i.keys[len(i.keys)-1], i.issuer
	i.mu.RUnlock()

	payload := make(map[string]any, len(claims)+3)
	for k, v := range claims {
		payload[k] = v
	}
	now := cfg.now()
	if _, ok := payload["iss"]; !ok && iss != "" {
		payload["iss"] = iss
	}
	if _, ok := payload["iat"]; !ok {
		payload["iat"] = now.Unix()
	}
	if _, ok := payload["exp"]; !ok {
		payload["exp"] = now.Add(DefaultTTL).Unix()
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return "", fmt.Errorf("devissuer: marshal claims: %w", err)
	}

	hdrs, err := buildHeaders(&cfg, key.kid)
	if err != nil {
		return "", err
	}
	// Sign with the raw private key rather than a jwk.Key: jwx copies a
	// jwk.Key's kid into the header, which would defeat WithoutKeyID and
	// kid overrides.
	tok, err := jws.Sign(body, jws.WithKey(i.alg, key.priv, jws.WithProtectedHeaders(hdrs)))
	if err != nil {
		return "", fmt.Errorf("devissuer: sign: %w", err)
	}
	return string(tok), nil
}

func buildHeaders(cfg *mintConfig, kid string) (jws.Headers, error) {
	h := jws.NewHeaders()
	if cfg.typ != "" {
		if err := h.Set(jws.TypeKey, cfg.typ); err != nil {
			return nil, fmt.Errorf("devissuer: set header %q: %w", jws.TypeKey, err)
		}
	}
	if !cfg.noKeyID {
		if err := h.Set(jws.KeyIDKey, kid); err != nil {
			return nil, fmt.Errorf("devissuer: set header %q: %w", jws.KeyIDKey, err)
		}
	}
	for _, x := range cfg.headers {
		if x.name == jws.AlgorithmKey {
			return nil, fmt.Errorf("devissuer: header %q cannot be overridden: jwx sets it to the signing algorithm", x.name)
		}
		v := x.value
		if x.name == jws.JWKKey {
			if _, ok := v.(jwk.Key); !ok {
				k, err := jwk.Import(v)
				if err != nil {
					return nil, fmt.Errorf("devissuer: header %q: %w", x.name, err)
				}
				v = k
			}
		}
		if err := h.Set(x.name, v); err != nil {
			return nil, fmt.Errorf("devissuer: set header %q: %w", x.name, err)
		}
	}
	return h, nil
}
