package decide

import (
	"context"
	"fmt"

	"github.com/rolecall/rolecall/decisionlog"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/token"
)

// TokenCheck is a check decided for a bearer token's subject: the subject
// comes from the token.
type TokenCheck struct {
	Org, Resource, Action string
}

// TokenRequest asks CheckToken to validate a bearer token and, with Check,
// to decide a check for it.
type TokenRequest struct {
	Token          string
	Audience       string
	RequiredScopes []string
	Org            string
	// Check is decided for a valid token when HasCheck is set; a value, not a
	// pointer, so that building a request allocates nothing.
	Check    TokenCheck
	HasCheck bool
	// RequestID, when not empty, goes to the decision log.
	RequestID string
}

// TokenResult is the validation and, for a valid token with a check, the
// decision.
type TokenResult struct {
	token.Result
	// Checked says the token is valid and a check was asked: Decision is
	// its answer.
	Checked  bool
	Decision pdp.Decision
}

// CheckToken validates a bearer token and decides the request's check as the
// token's issuer is configured to (its authorization mode). An invalid token
// is a result, not an error.
func (d *Decider) CheckToken(ctx context.Context, req TokenRequest) (TokenResult, error) {
	if req.Token == "" {
		return TokenResult{}, argumentErrorf("token: must not be empty")
	}
	check := req.Check
	orgHint := ""
	if req.HasCheck {
		q := pdp.Query{Subject: "token", Org: check.Org, Resource: check.Resource, Action: check.Action}
		if err := q.Validate(); err != nil {
			return TokenResult{}, argumentErrorf("authorization_check.%v", err)
		}
		orgHint = check.Org
	}
	for _, f := range [...]struct{ name, value string }{{"audience", req.Audience}, {"org", req.Org}} {
		if len(f.value) > pdp.MaxIDLen {
			return TokenResult{}, argumentErrorf("%s: is %d bytes long; the limit is %d", f.name, len(f.value), pdp.MaxIDLen)
		}
	}
	if d.tokens == nil {
		return TokenResult{}, ErrNoIssuers
	}
	res := d.tokens.Validate(ctx, req.Token, token.Request{
		Audience:       req.Audience,
		RequiredScopes: req.RequiredScopes,
		Org:            req.Org,
		OrgHint:        orgHint,
	})
	out := TokenResult{Result: res}
	if !res.Valid || !req.HasCheck {
		return out, nil
	}
	start := d.now()
	dec, err := d.authorize(res, check)
	if err != nil {
		return TokenResult{}, err
	}
	d.record(decisionlog.KindValidateToken, req.RequestID, pdp.Query{Subject: res.Claims.Subject, Org: check.Org, Resource: check.Resource, Action: check.Action}, dec, start)
	out.Checked, out.Decision = true, dec
	return out, nil
}

// authorize decides a check for a valid token the way its issuer is
// configured to.
func (d *Decider) authorize(res token.Result, check TokenCheck) (pdp.Decision, error) {
	c := res.Claims
	org := check.Org
	// In the token models the token speaks for one organization only.
	if res.Authorization != token.ModePolicy && org != "" && org != c.Org {
		dec := pdp.Decision{Reason: pdp.NotAMember}
		if snap := d.engine.Snapshot(); snap != nil {
			dec.Revision = snap.Revision()
		}
		return dec, nil
	}
	switch res.Authorization {
	case token.ModeScopes:
		dec := pdp.Decision{Reason: pdp.NoPermission}
		if c.GrantsScope(check.Resource, check.Action) {
			dec = pdp.Decision{Allowed: true, Reason: pdp.Granted}
		}
		if snap := d.engine.Snapshot(); snap != nil {
			dec.Revision = snap.Revision()
		}
		return dec, nil
	case token.ModeTokenRoles:
		snap := d.engine.Snapshot()
		if snap == nil {
			return pdp.Decision{}, pdp.ErrNoPolicy
		}
		return snap.DecideRoles(c.Roles, check.Resource, check.Action), nil
	case token.ModePolicy:
		if org == "" {
			org = c.Org
		}
		return d.engine.Decide(pdp.Query{Subject: c.Subject, Org: org, Resource: check.Resource, Action: check.Action})
	default:
		return pdp.Decision{}, fmt.Errorf("unknown authorization mode %q", res.Authorization)
	}
}
