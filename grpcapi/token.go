package grpcapi

import (
	"context"

	"github.com/rolecall/rolecall/decide"
	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
	"github.com/rolecall/rolecall/v1conv"
)

func (s *Service) ValidateToken(ctx context.Context, req *rolecallv1.ValidateTokenRequest) (*rolecallv1.ValidateTokenResponse, error) {
	treq := decide.TokenRequest{
		Token:          req.GetToken(),
		Audience:       req.GetAudience(),
		RequiredScopes: req.GetRequiredScopes(),
		Org:            req.GetOrg(),
		RequestID:      s.requestID(ctx),
	}
	if c := req.GetAuthorizationCheck(); c != nil {
		treq.Check, treq.HasCheck = decide.TokenCheck{Org: c.GetOrg(), Resource: c.GetResource(), Action: c.GetAction()}, true
	}
	res, err := s.dec.CheckToken(ctx, treq)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return v1conv.TokenResponse(res), nil
}
