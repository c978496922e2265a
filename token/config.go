package token

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/rolecall/rolecall/internal/strictyaml"
)

// Profile selects how an issuer's tokens are shaped.
type Profile string

const (
	// Logto access tokens: typ at+jwt, client_id required, scope claim,
	// organization from organization_id or a urn:logto:organization audience.
	Logto Profile = "logto"
	// Stytch B2B session JWTs: iss stytch.com/<project>, aud the project id,
	// organization and roles in Stytch's namespaced claims.
	Stytch Profile = "stytch"
	// Generic RFC 9068 issuers, with configurable claim names.
	Generic Profile = "generic"
)

// Mode says how ValidateToken's authorization_check is decided for an
// issuer's tokens.
type Mode string

const (
	// ModeScopes allows iff the token's audience is the resource and the
	// action is among its scopes (the Logto model).
	ModeScopes Mode = "scopes"
	// ModeTokenRoles evaluates the roles the token carries against the
	// policy's role definitions (the Stytch model).
	ModeTokenRoles Mode = "token_roles"
	// ModePolicy runs Check for the token's subject against the policy.
	ModePolicy Mode = "policy"
)

// ClaimNames name the claims of a generic issuer's tokens. Empty names take
// the defaults: sub, client_id, scope (or scp), no organization, no roles.
type ClaimNames struct {
	Subject  string `yaml:"subject"`
	ClientID string `yaml:"client_id"`
	Scope    string `yaml:"scope"`
	Org      string `yaml:"org"`
	Roles    string `yaml:"roles"`
}

// IssuerConfig configures one trusted issuer.
type IssuerConfig struct {
	// Issuer is the exact iss claim, such as https://tenant.logto.app/oidc or
	// stytch.com/project-live-….
	Issuer string `yaml:"issuer"`
	// Profile: logto, stytch or generic. Default generic.
	Profile Profile `yaml:"profile"`
	// JWKSURL is where the key set is. Empty: found through OIDC discovery
	// at Issuer + "/.well-known/openid-configuration" (Issuer must be a URL).
	JWKSURL string `yaml:"jwks_url"`
	// Audiences the tokens must be meant for (the API's resource indicator;
	// for Stytch, the project id), used when a request names none. Required.
	Audiences []string `yaml:"audiences"`
	// Algorithms allowed; defaults per profile. "none" is never allowed;
	// HS256/384/512 only with HMACSecretFile.
	Algorithms []string `yaml:"algorithms"`
	// ClockSkew tolerated on exp, nbf and iat. Default 60 s.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// Type is the required typ header for generic issuers ("" accepts any);
	// the logto and stytch profiles fix it.
	Type string `yaml:"type"`
	// Claims name the claims of generic issuers.
	Claims ClaimNames `yaml:"claims"`
	// Authorization is how authorization_check is decided. Default: scopes
	// for logto, token_roles for stytch, policy for generic.
	Authorization Mode `yaml:"authorization"`
	// JWKSRefresh is the key set refresh interval when the issuer sends no
	// Cache-Control. Default 1 h.
	JWKSRefresh time.Duration `yaml:"jwks_refresh"`
	// OrganizationResource is the policy resource that stands for the
	// organization itself (Logto's organization permissions, such as
	// invite:member). In scopes mode, a Logto organization token's scopes grant
	// their actions on this resource. Default "organization".
	OrganizationResource string `yaml:"organization_resource"`
	// HMACSecretFile holds a shared secret; only then may HS* algorithms be
	// allowed. Shared secrets are a weaker design than key sets: prefer them.
	HMACSecretFile string `yaml:"hmac_secret_file"`

	hmacSecret []byte
}

// DefaultClockSkew and DefaultJWKSRefresh are the defaults of IssuerConfig.
const (
	DefaultClockSkew   = 60 * time.Second
	DefaultJWKSRefresh = time.Hour
)

var asymmetric = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

var profileAlgorithms = map[Profile][]string{
	Logto:   {"ES384", "ES256", "ES512", "RS256", "PS256"},
	Stytch:  {"RS256"},
	Generic: asymmetric,
}

// withDefaults returns c with every default filled in.
func (c IssuerConfig) withDefaults() IssuerConfig {
	if c.Profile == "" {
		c.Profile = Generic
	}
	if len(c.Algorithms) == 0 {
		c.Algorithms = profileAlgorithms[c.Profile]
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = DefaultClockSkew
	}
	if c.JWKSRefresh == 0 {
		c.JWKSRefresh = DefaultJWKSRefresh
	}
	if c.Authorization == "" {
		switch c.Profile {
		case Logto:
			c.Authorization = ModeScopes
		case Stytch:
			c.Authorization = ModeTokenRoles
		default:
			c.Authorization = ModePolicy
		}
	}
	switch c.Profile {
	case Logto:
		c.Type = "at+jwt"
	case Stytch:
		c.Type = "JWT"
	}
	if c.OrganizationResource == "" {
		c.OrganizationResource = "organization"
	}
	if c.Claims.Subject == "" {
		c.Claims.Subject = "sub"
	}
	if c.Claims.ClientID == "" {
		c.Claims.ClientID = "client_id"
	}
	return c
}

// validate reports every problem with c (already defaulted), prefixed with
// where it is.
func (c *IssuerConfig) validate(where string) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{where}, args...)...))
	}
	if c.Issuer == "" {
		bad("issuer is required")
	}
	switch c.Profile {
	case Logto, Stytch, Generic:
	default:
		bad("profile %q: want logto, stytch or generic", c.Profile)
	}
	switch c.Authorization {
	case ModeScopes, ModeTokenRoles, ModePolicy:
	default:
		bad("authorization %q: want scopes, token_roles or policy", c.Authorization)
	}
	if len(c.Audiences) == 0 {
		bad("audiences: at least one is required (the API's resource indicator; for Stytch, the project id)")
	}
	if c.JWKSURL == "" {
		if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("jwks_url is required when the issuer %q is not an http(s) URL to discover it from", c.Issuer)
		}
	} else if u, err := url.Parse(c.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad("jwks_url %q must be an http(s) URL", c.JWKSURL)
	}
	for _, alg := range c.Algorithms {
		switch {
		case strings.EqualFold(alg, "none"):
			bad(`algorithms: "none" is never allowed`)
		case strings.HasPrefix(alg, "HS"):
			if c.HMACSecretFile == "" {
				bad("algorithms: %s needs hmac_secret_file; without a shared secret only asymmetric algorithms are allowed", alg)
			}
		case !slices.Contains(asymmetric, alg):
			bad("algorithms: unknown algorithm %q (want %s)", alg, strings.Join(asymmetric, ", "))
		}
	}
	if c.HMACSecretFile != "" {
		secret, err := os.ReadFile(c.HMACSecretFile)
		switch {
		case err != nil:
			bad("hmac_secret_file: %v", err)
		case len(bytes.TrimSpace(secret)) < 32:
			bad("hmac_secret_file: the secret must be at least 32 bytes")
		default:
			c.hmacSecret = bytes.TrimSpace(secret)
		}
	}
	if c.ClockSkew < 0 || c.ClockSkew > 10*time.Minute {
		bad("clock_skew %v: want 0 to 10m", c.ClockSkew)
	}
	if c.JWKSRefresh < time.Minute {
		bad("jwks_refresh %v: want at least 1m", c.JWKSRefresh)
	}
	return errs
}

// ValidateConfigs fills defaults into every issuer and reports all problems
// at once, including duplicate issuers.
func ValidateConfigs(cfgs []IssuerConfig) ([]IssuerConfig, error) {
	var errs []error
	out := make([]IssuerConfig, len(cfgs))
	seen := make(map[string]int, len(cfgs))
	for i, c := range cfgs {
		c = c.withDefaults()
		where := fmt.Sprintf("issuers[%d]", i)
		if c.Issuer != "" {
			where += " (" + c.Issuer + ")"
			if j, dup := seen[c.Issuer]; dup {
				errs = append(errs, fmt.Errorf("%s: duplicate of issuers[%d]", where, j))
			}
			seen[c.Issuer] = i
		}
		errs = append(errs, c.validate(where)...)
		out[i] = c
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// LoadIssuersFile reads a YAML file of the form
//
//	issuers:
//	  - issuer: https://tenant.logto.app/oidc
//	    profile: logto
//	    audiences: [https://api.example.com]
//
// It is decoded as strictly as the configuration file: unknown and duplicate
// keys, values of the wrong kind and keys without a value are errors naming
// the file, the line and the key, with a did-you-mean, all reported together.
func LoadIssuersFile(path string) ([]IssuerConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Issuers []IssuerConfig `yaml:"issuers"`
	}
	if err := strictyaml.Decode(path, data, &doc); err != nil {
		return nil, err
	}
	if len(doc.Issuers) == 0 {
		return nil, fmt.Errorf("%s: no issuers", path)
	}
	return doc.Issuers, nil
}
