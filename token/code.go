// Package token validates JWT access tokens (RFC 9068) from configured
// issuers against their JSON Web Key Sets. Key sets are fetched from the
// issuer (directly or through OIDC discovery), refreshed on an interval and on
// an unknown key id (rate-limited), and kept in the bbolt cache so that
// validation works when the issuer is down. Verified tokens are remembered
// until they expire, so a caller that sends the same token on every request
// pays for the signature once.
//
// Validation follows docs/DESIGN.md: compact JWS only; the algorithm in the
// issuer's allow-list (never "none", never HMAC without a configured secret);
// the key found by kid in the issuer's own key set and fitting the algorithm;
// the signature; iss exactly; exp, nbf and iat with clock skew; typ per
// profile; audience; required scopes; organization. A token's jku, x5u, x5c or
// embedded jwk header is never used to find a key.
package token

import "fmt"

// Code says why a token is not valid. The values match rolecall.v1.TokenError.
type Code uint8

const (
	OK Code = iota
	Malformed
	UnsupportedAlgorithm
	UnknownIssuer
	UnknownKey
	BadSignature
	Expired
	NotYetValid
	WrongAudience
	WrongType
	MissingClaim
	MissingScope
	OrganizationMismatch
	KeysUnavailable
)

var codeNames = [...]string{
	OK:                   "OK",
	Malformed:            "MALFORMED",
	UnsupportedAlgorithm: "UNSUPPORTED_ALGORITHM",
	UnknownIssuer:        "UNKNOWN_ISSUER",
	UnknownKey:           "UNKNOWN_KEY",
	BadSignature:         "BAD_SIGNATURE",
	Expired:              "EXPIRED",
	NotYetValid:          "NOT_YET_VALID",
	WrongAudience:        "WRONG_AUDIENCE",
	WrongType:            "WRONG_TYPE",
	MissingClaim:         "MISSING_CLAIM",
	MissingScope:         "MISSING_SCOPE",
	OrganizationMismatch: "ORGANIZATION_MISMATCH",
	KeysUnavailable:      "KEYS_UNAVAILABLE",
}

func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("Code(%d)", uint8(c))
}
