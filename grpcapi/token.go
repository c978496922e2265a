package grpcapi

import (
	"context"

	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
	"github.com/rolecall/rolecall/internal/v1conv"
)

func (s *Service) ValidateToken(ctx context.Context, req *rolecallv1.ValidateTokenRequest) (*rolecallv1.ValidateTokenResponse, error) {
	treq := v1conv.TokenRequest(req)
	treq.RequestID = s.requestID(ctx)
	res, err := s.dec.CheckToken(ctx, treq)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return v1conv.TokenResponse(res), nil
}
