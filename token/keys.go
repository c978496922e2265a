package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// maxJWKSBytes bounds a key set or discovery document; real ones are a few
// KiB.
const maxJWKSBytes = 1 << 20

// minRSABits is the smallest RSA key accepted from a key set.
const minRSABits = 2048

// verificationKey is a public key from an issuer's key set, ready for one
// family of algorithms.
type verificationKey struct {
	kid string
	alg string // the JWK's own alg, "" when it names none
	key any    // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// keySet is an immutable, parsed key set.
type keySet struct {
	byKID     map[string]*verificationKey
	all       []*verificationKey
	raw       []byte
	fetchedAt time.Time
}

// fits reports whether k may verify a signature made with alg: the key type
// and curve must be the algorithm's, and a key that names its algorithm is
// used with that algorithm only.
func (k *verificationKey) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch pub := k.key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return pub.Curve == elliptic.P256()
		case "ES384":
			return pub.Curve == elliptic.P384()
		case "ES512":
			return pub.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA" || alg == "Ed25519"
	}
	return false
}

// parseKeySet turns a JWKS document into verification keys. Keys that are not
// for signatures, of unsupported types, or too weak are skipped with a note;
// a set without a single usable key is an error.
func parseKeySet(raw []byte, fetchedAt time.Time) (*keySet, []string, error) {
	set, err := jwk.Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	ks := &keySet{byKID: make(map[string]*verificationKey, set.Len()), raw: raw, fetchedAt: fetchedAt}
	var skipped []string
	for i := range set.Len() {
		k, _ := set.Key(i)
		kid, _ := k.KeyID()
		if use, ok := k.KeyUsage(); ok && use != "sig" {
			skipped = append(skipped, fmt.Sprintf("key %q: use %q is not sig", kid, use))
			continue
		}
		// Only the public half is ever used, whatever the set holds.
		pubJWK, err := k.PublicKey()
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %q: %v", kid, err))
			continue
		}
		var pub any
		if err := jwk.Export(pubJWK, &pub); err != nil {
			skipped = append(skipped, fmt.Sprintf("key %q: %v", kid, err))
			continue
		}
		switch p := pub.(type) {
		case *rsa.PublicKey:
			if p.N.BitLen() < minRSABits {
				skipped = append(skipped, fmt.Sprintf("key %q: RSA key of %d bits is too weak (minimum %d)", kid, p.N.BitLen(), minRSABits))
				continue
			}
		case *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			skipped = append(skipped, fmt.Sprintf("key %q: unsupported key type %s", kid, k.KeyType()))
			continue
		}
		vk := &verificationKey{kid: kid, key: pub}
		if alg, ok := k.Algorithm(); ok {
			vk.alg = alg.String()
		}
		if _, dup := ks.byKID[kid]; dup && kid != "" {
			skipped = append(skipped, fmt.Sprintf("key %q: duplicate kid", kid))
			continue
		}
		ks.all = append(ks.all, vk)
		if kid != "" {
			ks.byKID[kid] = vk
		}
	}
	if len(ks.all) == 0 {
		return nil, skipped, fmt.Errorf("no usable signing key in the key set (%s)", strings.Join(skipped, "; "))
	}
	return ks, skipped, nil
}

// fetchJSON GETs url and returns its body, bounded in size, with the response
// so callers can read caching headers.
func fetchJSON(ctx context.Context, client *http.Client, url string) ([]byte, *http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, resp, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err == nil && !strings.Contains(mt, "json") {
			return nil, resp, fmt.Errorf("GET %s: content type %q is not JSON", url, mt)
		}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, resp, fmt.Errorf("GET %s: reading body: %w", url, err)
	}
	if len(body) > maxJWKSBytes {
		return nil, resp, fmt.Errorf("GET %s: body over %d bytes", url, maxJWKSBytes)
	}
	return body, resp, nil
}

// discover reads the issuer's OIDC discovery document and returns its
// jwks_uri. The document must name the same issuer.
func discover(ctx context.Context, client *http.Client, issuer string) (string, error) {
	url := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	body, _, err := fetchJSON(ctx, client, url)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("discovery: %s: %w", url, err)
	}
	if doc.Issuer != issuer {
		return "", fmt.Errorf("discovery: %s names issuer %q, not %q", url, doc.Issuer, issuer)
	}
	if doc.JWKSURI == "" {
		return "", fmt.Errorf("discovery: %s has no jwks_uri", url)
	}
	return doc.JWKSURI, nil
}

// Bounds on how long a fetched key set is trusted before it is fetched again,
// whatever the issuer's Cache-Control says.
const (
	minKeyRefresh = 5 * time.Minute
	maxKeyRefresh = 24 * time.Hour
)

// cacheLifetime reads max-age from Cache-Control, within bounds; fallback
// when there is none.
func cacheLifetime(resp *http.Response, fallback time.Duration) time.Duration {
	if resp == nil {
		return fallback
	}
	for _, directive := range strings.Split(resp.Header.Get("Cache-Control"), ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
		if !strings.EqualFold(name, "max-age") {
			continue
		}
		secs, err := strconv.Atoi(strings.Trim(value, `"`))
		if err != nil || secs < 0 {
			return fallback
		}
		return min(max(time.Duration(secs)*time.Second, minKeyRefresh), maxKeyRefresh)
	}
	return fallback
}
