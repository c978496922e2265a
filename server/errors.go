package server

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rolecall/rolecall/pdp"
)

// toStatus is the one place where errors become gRPC statuses. Callers get a
// clear message that is safe to show; anything unexpected is logged in full
// and answered as a bare INTERNAL, so no internal detail leaks.
func (s *Service) toStatus(ctx context.Context, err error) error {
	var qerr *pdp.QueryError
	switch {
	case errors.As(err, &qerr):
		return status.Error(codes.InvalidArgument, qerr.Error())
	case errors.Is(err, pdp.ErrNoPolicy):
		return status.Error(codes.Unavailable, "no policy loaded yet")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	default:
		s.log.LogAttrs(ctx, slog.LevelError, "internal error", slog.Any("error", err))
		return status.Error(codes.Internal, "internal error")
	}
}
