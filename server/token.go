package server

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/rolecall/rolecall/decisionlog"
	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/token"
)

func (s *Service) ValidateToken(ctx context.Context, req *rolecallv1.ValidateTokenRequest) (*rolecallv1.ValidateTokenResponse, error) {
	if req.GetToken() == "" {
		return nil, status.Error(codes.InvalidArgument, "token: must not be empty")
	}
	check := req.GetAuthorizationCheck()
	if check != nil {
		q := pdp.Query{Subject: "token", Org: check.GetOrg(), Resource: check.GetResource(), Action: check.GetAction()}
		if err := q.Validate(); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "authorization_check.%v", err)
		}
	}
	for _, f := range [...]struct{ name, value string }{{"audience", req.GetAudience()}, {"org", req.GetOrg()}} {
		if len(f.value) > pdp.MaxIDLen {
			return nil, status.Errorf(codes.InvalidArgument, "%s: is %d bytes long; the limit is %d", f.name, len(f.value), pdp.MaxIDLen)
		}
	}
	if s.tokens == nil {
		return nil, status.Error(codes.FailedPrecondition, "no token issuers are configured")
	}

	res := s.tokens.Validate(ctx, req.GetToken(), token.Request{
		Audience:       req.GetAudience(),
		RequiredScopes: req.GetRequiredScopes(),
		Org:            req.GetOrg(),
		OrgHint:        check.GetOrg(),
	})
	resp := &rolecallv1.ValidateTokenResponse{
		Valid:       res.Valid,
		Error:       rolecallv1.TokenError(res.Error), // token.Code values match the proto enum
		ErrorDetail: res.Detail,
	}
	if !res.Valid {
		return resp, nil
	}
	resp.Claims = claimsProto(res.Claims)
	if check != nil {
		start := s.now()
		d, err := s.authorize(res, check)
		if err != nil {
			return nil, s.toStatus(ctx, err)
		}
		s.decided(ctx, decisionlog.KindValidateToken, pdp.Query{Subject: res.Claims.Subject, Org: check.GetOrg(), Resource: check.GetResource(), Action: check.GetAction()}, d, start)
		resp.Authorization = &rolecallv1.CheckResponse{}
		fillCheck(resp.Authorization, d)
	}
	return resp, nil
}

// authorize decides an authorization check for a valid token the way its
// issuer is configured to.
func (s *Service) authorize(res token.Result, check *rolecallv1.AuthorizationCheck) (pdp.Decision, error) {
	c := res.Claims
	org := check.GetOrg()
	// In the token models the token speaks for one organization only.
	if res.Authorization != token.ModePolicy && org != "" && org != c.Org {
		d := pdp.Decision{Reason: pdp.NotAMember}
		if snap := s.engine.Snapshot(); snap != nil {
			d.Revision = snap.Revision()
		}
		return d, nil
	}
	switch res.Authorization {
	case token.ModeScopes:
		d := pdp.Decision{Reason: pdp.NoPermission}
		if c.GrantsScope(check.GetResource(), check.GetAction()) {
			d = pdp.Decision{Allowed: true, Reason: pdp.Granted}
		}
		if snap := s.engine.Snapshot(); snap != nil {
			d.Revision = snap.Revision()
		}
		return d, nil
	case token.ModeTokenRoles:
		snap := s.engine.Snapshot()
		if snap == nil {
			return pdp.Decision{}, pdp.ErrNoPolicy
		}
		return snap.DecideRoles(c.Roles, check.GetResource(), check.GetAction()), nil
	case token.ModePolicy:
		if org == "" {
			org = c.Org
		}
		return s.engine.Decide(pdp.Query{Subject: c.Subject, Org: org, Resource: check.GetResource(), Action: check.GetAction()})
	default:
		return pdp.Decision{}, fmt.Errorf("unknown authorization mode %q", res.Authorization)
	}
}

func claimsProto(c *token.Claims) *rolecallv1.TokenClaims {
	p := &rolecallv1.TokenClaims{
		Subject:     c.Subject,
		SubjectType: rolecallv1.SubjectType_SUBJECT_TYPE_USER,
		Issuer:      c.Issuer,
		Audiences:   c.Audiences,
		ClientId:    c.ClientID,
		Scopes:      c.Scopes,
		Org:         c.Org,
		Roles:       c.Roles,
		ExpiresAt:   timestamppb.New(c.ExpiresAt),
		TokenId:     c.TokenID,
	}
	if c.SubjectType == "m2m" {
		p.SubjectType = rolecallv1.SubjectType_SUBJECT_TYPE_M2M
	}
	if !c.IssuedAt.IsZero() {
		p.IssuedAt = timestamppb.New(c.IssuedAt)
	}
	return p
}

func issuersProto(ss []token.IssuerStatus) []*rolecallv1.IssuerStatus {
	out := make([]*rolecallv1.IssuerStatus, len(ss))
	for i, st := range ss {
		out[i] = &rolecallv1.IssuerStatus{Issuer: st.Issuer, Keys: int32(st.Keys), FromCache: st.FromCache, LastError: st.LastError, FetchedAt: optionalTime(st.FetchedAt)}
	}
	return out
}
