package token

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// Claims are what a verified token says, in one shape for every profile.
type Claims struct {
	Subject     string
	SubjectType string // "user" or "m2m"
	Issuer      string
	Audiences   []string
	ClientID    string
	Scopes      []string
	Org         string
	Roles       []string
	ExpiresAt   time.Time
	IssuedAt    time.Time // zero when the token has no iat
	TokenID     string

	notBefore time.Time
	typ       string
	// orgResource is set for a Logto organization token: the resource its
	// scopes apply to.
	orgResource string
}

// GrantsScope is the scopes authorization model (Logto): the token allows
// action on resource iff the resource is one of its audiences and the action
// one of its scopes. A Logto organization token (audience
// urn:logto:organization:<id>) carries organization permissions, which apply
// to the issuer's organization_resource.
func (c *Claims) GrantsScope(resource, action string) bool {
	if !slices.Contains(c.Scopes, action) {
		return false
	}
	return slices.Contains(c.Audiences, resource) || (c.orgResource != "" && resource == c.orgResource)
}

// header is the part of a JWS protected header rolecall reads. Anything
// that could point at a key (jku, x5u, x5c, jwk) is deliberately not read.
type header struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Typ  string          `json:"typ"`
	Crit json.RawMessage `json:"crit"`
}

func fail(code Code, format string, args ...any) Result {
	return Result{Error: code, Detail: fmt.Sprintf(format, args...)}
}

// Validate checks token for req. It never returns an error: an invalid token
// is a Result with Valid false, a Code and a detail.
func (v *Validator) Validate(ctx context.Context, tok string, req Request) Result {
	res := v.validate(ctx, tok, req)
	v.results[res.Error].Add(1)
	return res
}

func (v *Validator) validate(ctx context.Context, tok string, req Request) Result {
	if len(tok) > MaxTokenBytes {
		return fail(Malformed, "token is %d bytes; the limit is %d", len(tok), MaxTokenBytes)
	}
	if tok == "" {
		return fail(Malformed, "token is empty")
	}
	now := v.now()
	if v.verified.enabled() {
		if e := v.verified.get(tok); e != nil {
			v.cacheHits.Add(1)
			return v.finish(e.issuer, e.claims, req, now)
		}
		v.cacheMisses.Add(1)
	}

	parts := strings.Split(tok, ".")
	switch {
	case len(parts) == 5:
		return fail(Malformed, "encrypted tokens (JWE) are not supported")
	case len(parts) != 3:
		return fail(Malformed, "not a compact JWS: want three dot-separated parts, got %d", len(parts))
	}
	var h header
	if err := decodeSegment(parts[0], &h); err != nil {
		return fail(Malformed, "header: %v", err)
	}
	var payload map[string]json.RawMessage
	if err := decodeSegment(parts[1], &payload); err != nil {
		return fail(Malformed, "payload: %v", err)
	}
	if _, err := base64.RawURLEncoding.DecodeString(parts[2]); err != nil || parts[2] == "" {
		return fail(Malformed, "signature is not base64url")
	}
	if h.Crit != nil {
		return fail(Malformed, "header lists critical extensions (crit) that rolecall does not understand")
	}

	switch {
	case h.Alg == "":
		return fail(Malformed, "header has no alg")
	case strings.EqualFold(h.Alg, "none"):
		return fail(UnsupportedAlgorithm, `alg "none" is never accepted`)
	}
	var iss string
	if err := claimString(payload, "iss", &iss); err != nil {
		return fail(Malformed, "%v", err)
	}
	if iss == "" {
		return fail(MissingClaim, "token has no iss claim")
	}
	is := v.issuers[iss]
	if is == nil {
		return fail(UnknownIssuer, "issuer %q is not configured", iss)
	}
	if !is.algs[h.Alg] {
		return fail(UnsupportedAlgorithm, "alg %q is not allowed for issuer %s", h.Alg, iss)
	}
	sigAlg, ok := jwa.LookupSignatureAlgorithm(h.Alg)
	if !ok {
		return fail(UnsupportedAlgorithm, "alg %q is unknown", h.Alg)
	}

	if res := v.verify(ctx, is, h, sigAlg, tok); res.Error != OK {
		return res
	}

	claims, res := extractClaims(is, h, payload)
	if res.Error != OK {
		res.Authorization = is.cfg.Authorization
		return res
	}
	if claims.ExpiresAt.After(now.Add(-is.cfg.ClockSkew)) {
		v.verified.put(tok, is, claims)
	}
	return v.finish(is, claims, req, now)
}

// verify finds the key and checks the signature.
func (v *Validator) verify(ctx context.Context, is *issuer, h header, alg jwa.SignatureAlgorithm, tok string) Result {
	if strings.HasPrefix(h.Alg, "HS") {
		if _, err := jws.Verify([]byte(tok), jws.WithKey(alg, is.cfg.hmacSecret)); err != nil {
			return fail(BadSignature, "signature does not verify")
		}
		return Result{}
	}
	ks := is.keys.Load()
	if ks == nil {
		v.refetchForUnknownKey(ctx, is, nil)
		if ks = is.keys.Load(); ks == nil {
			return fail(KeysUnavailable, "no keys for issuer %s: its key set could not be fetched", is.cfg.Issuer)
		}
	}
	candidates := keysFor(ks, h, alg)
	if len(candidates) == 0 && v.refetchForUnknownKey(ctx, is, ks) {
		if fresh := is.keys.Load(); fresh != nil {
			ks = fresh
			candidates = keysFor(ks, h, alg)
		}
	}
	if len(candidates) == 0 {
		if h.Kid == "" {
			return fail(UnknownKey, "token has no kid and issuer %s has no key for %s", is.cfg.Issuer, h.Alg)
		}
		if k := ks.byKID[h.Kid]; k != nil {
			return fail(UnknownKey, "key %q of issuer %s cannot verify %s", h.Kid, is.cfg.Issuer, h.Alg)
		}
		return fail(UnknownKey, "key %q is not in the key set of issuer %s", h.Kid, is.cfg.Issuer)
	}
	for _, k := range candidates {
		if _, err := jws.Verify([]byte(tok), jws.WithKey(alg, k.key)); err == nil {
			return Result{}
		}
	}
	return fail(BadSignature, "signature does not verify")
}

// keysFor returns the keys that may verify a token with header h: the one
// named by kid, or, for a token without kid, every key fitting the
// algorithm.
func keysFor(ks *keySet, h header, alg jwa.SignatureAlgorithm) []*verificationKey {
	if h.Kid != "" {
		if k := ks.byKID[h.Kid]; k != nil && k.fits(alg.String()) {
			return []*verificationKey{k}
		}
		return nil
	}
	var out []*verificationKey
	for _, k := range ks.all {
		if k.fits(alg.String()) {
			out = append(out, k)
		}
	}
	return out
}

// finish runs the checks that depend on time and on the request, for a
// verified token.
func (v *Validator) finish(is *issuer, c *Claims, req Request, now time.Time) Result {
	r := Result{Claims: c, Authorization: is.cfg.Authorization}
	skew := is.cfg.ClockSkew
	switch {
	case !now.Before(c.ExpiresAt.Add(skew)):
		r.Error, r.Detail = Expired, fmt.Sprintf("token expired at %s", c.ExpiresAt.UTC().Format(time.RFC3339))
	case !c.notBefore.IsZero() && now.Add(skew).Before(c.notBefore):
		r.Error, r.Detail = NotYetValid, fmt.Sprintf("token is not valid before %s", c.notBefore.UTC().Format(time.RFC3339))
	case !c.IssuedAt.IsZero() && now.Add(skew).Before(c.IssuedAt):
		r.Error, r.Detail = NotYetValid, fmt.Sprintf("token is issued in the future (%s)", c.IssuedAt.UTC().Format(time.RFC3339))
	case is.cfg.Type != "" && !typeMatches(c.typ, is.cfg.Type):
		r.Error, r.Detail = WrongType, fmt.Sprintf("typ is %q; issuer %s issues %q access tokens", c.typ, is.cfg.Issuer, is.cfg.Type)
	default:
		if code, detail := checkRequest(is, c, req); code != OK {
			r.Error, r.Detail = code, detail
		} else {
			r.Valid = true
		}
	}
	return r
}

// typeMatches compares typ values as RFC 8725 says: case-insensitively, with
// or without the "application/" prefix. Stytch's profile also accepts a token
// without typ, since typ is optional for plain JWTs.
func typeMatches(got, want string) bool {
	got = strings.TrimPrefix(strings.ToLower(got), "application/")
	want = strings.ToLower(want)
	return got == want || (want == "jwt" && got == "")
}

func checkRequest(is *issuer, c *Claims, req Request) (Code, string) {
	expected := is.cfg.Audiences
	if req.Audience != "" {
		expected = []string{req.Audience}
	}
	org := req.Org
	if org == "" {
		org = req.OrgHint
	}
	if !audienceMatches(c.Audiences, expected, is.cfg.Profile, org) {
		return WrongAudience, fmt.Sprintf("token is for %s, not %s", quoteList(c.Audiences), quoteList(expected))
	}
	var missing []string
	for _, s := range req.RequiredScopes {
		if !slices.Contains(c.Scopes, s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return MissingScope, fmt.Sprintf("token lacks scope %s", quoteList(missing))
	}
	if req.Org != "" && req.Org != c.Org {
		if c.Org == "" {
			return OrganizationMismatch, fmt.Sprintf("request is for organization %q; the token is for none", req.Org)
		}
		return OrganizationMismatch, fmt.Sprintf("request is for organization %q; the token is for %q", req.Org, c.Org)
	}
	return OK, ""
}

// logtoOrgAudience is the audience of a Logto organization token.
const logtoOrgAudience = "urn:logto:organization:"

func audienceMatches(got, expected []string, p Profile, org string) bool {
	for _, a := range got {
		if slices.Contains(expected, a) {
			return true
		}
		// A Logto organization token is for its organization, which the
		// request names.
		if p == Logto && org != "" && a == logtoOrgAudience+org {
			return true
		}
	}
	return false
}

func quoteList(l []string) string {
	if len(l) == 0 {
		return "(none)"
	}
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// decodeSegment decodes one base64url JWS segment holding a JSON object.
func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return fmt.Errorf("not base64url: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 || b[0] != '{' {
		return fmt.Errorf("not a JSON object")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	return nil
}

// extractClaims reads the claims every profile needs from a verified payload.
func extractClaims(is *issuer, h header, p map[string]json.RawMessage) (*Claims, Result) {
	c := &Claims{Issuer: is.cfg.Issuer, typ: h.Typ}
	names := is.cfg.Claims
	bad := func(err error) (*Claims, Result) { return nil, fail(Malformed, "%v", err) }

	if err := claimString(p, names.Subject, &c.Subject); err != nil {
		return bad(err)
	}
	if err := claimString(p, names.ClientID, &c.ClientID); err != nil {
		return bad(err)
	}
	if c.ClientID == "" {
		if err := claimString(p, "azp", &c.ClientID); err != nil {
			return bad(err)
		}
	}
	if err := claimString(p, "jti", &c.TokenID); err != nil {
		return bad(err)
	}
	var err error
	if c.Audiences, err = claimStrings(p, "aud", false); err != nil {
		return bad(err)
	}
	var exp, nbf, iat time.Time
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"exp", &exp}, {"nbf", &nbf}, {"iat", &iat}} {
		if *t.dst, err = claimTime(p, t.name); err != nil {
			return bad(err)
		}
	}
	c.ExpiresAt, c.notBefore, c.IssuedAt = exp, nbf, iat

	scopeClaim := names.Scope
	if scopeClaim == "" {
		scopeClaim = "scope"
	}
	if c.Scopes, err = claimStrings(p, scopeClaim, true); err != nil {
		return bad(err)
	}
	if len(c.Scopes) == 0 && names.Scope == "" {
		if c.Scopes, err = claimStrings(p, "scp", true); err != nil {
			return bad(err)
		}
	}

	switch is.cfg.Profile {
	case Logto:
		if err := claimString(p, "organization_id", &c.Org); err != nil {
			return bad(err)
		}
		for _, a := range c.Audiences {
			if id, ok := strings.CutPrefix(a, logtoOrgAudience); ok {
				if c.Org == "" {
					c.Org = id
				}
				c.orgResource = is.cfg.OrganizationResource
			}
		}
	case Stytch:
		var org struct {
			OrganizationID string `json:"organization_id"`
		}
		if err := claimObject(p, "https://stytch.com/organization", &org); err != nil {
			return bad(err)
		}
		c.Org = org.OrganizationID
		var session struct {
			Roles []string `json:"roles"`
		}
		if err := claimObject(p, "https://stytch.com/session", &session); err != nil {
			return bad(err)
		}
		c.Roles = session.Roles
	default:
		if names.Org != "" {
			if err := claimString(p, names.Org, &c.Org); err != nil {
				return bad(err)
			}
		}
		if names.Roles != "" {
			if c.Roles, err = claimStrings(p, names.Roles, true); err != nil {
				return bad(err)
			}
		}
	}

	c.SubjectType = "user"
	if c.ClientID != "" && c.Subject == c.ClientID {
		c.SubjectType = "m2m" // client credentials: the application is the subject
	}

	switch {
	case c.Subject == "":
		return nil, fail(MissingClaim, "token has no %s claim", names.Subject)
	case exp.IsZero():
		return nil, fail(MissingClaim, "token has no exp claim")
	case len(c.Audiences) == 0:
		return nil, fail(MissingClaim, "token has no aud claim")
	case is.cfg.Profile == Logto && c.ClientID == "":
		return nil, fail(MissingClaim, "token has no client_id claim (RFC 9068 requires it)")
	}
	return c, Result{}
}

func claimString(p map[string]json.RawMessage, name string, dst *string) error {
	raw, ok := p[name]
	if !ok || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("claim %s must be a string", name)
	}
	return nil
}

// claimStrings reads a claim that is a string or an array of strings. A
// string is split on spaces when spaced is set (scope lists).
func claimStrings(p map[string]json.RawMessage, name string, spaced bool) ([]string, error) {
	raw, ok := p[name]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if spaced {
			return strings.Fields(s), nil
		}
		return []string{s}, nil
	}
	var l []string
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, fmt.Errorf("claim %s must be a string or an array of strings", name)
	}
	return l, nil
}

func claimTime(p map[string]json.RawMessage, name string) (time.Time, error) {
	raw, ok := p[name]
	if !ok || string(raw) == "null" {
		return time.Time{}, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || math.IsNaN(f) || f < 0 || f > 1e11 {
		return time.Time{}, fmt.Errorf("claim %s must be a NumericDate (seconds since 1970)", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}

func claimObject(p map[string]json.RawMessage, name string, dst any) error {
	raw, ok := p[name]
	if !ok || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("claim %s is not of the expected shape: %v", name, err)
	}
	return nil
}
