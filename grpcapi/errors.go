package grpcapi

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rolecall/rolecall/decide"
	"github.com/rolecall/rolecall/pdp"
)

// toStatus is the one place where errors become gRPC statuses. Callers get a
// clear message that is safe to show; anything unexpected is logged in full
// and answered as a bare INTERNAL, so no internal detail leaks.
func (s *Service) toStatus(ctx context.Context, err error) error {
	st := ErrorStatus(err)
	if st.Code() == codes.Internal {
		s.log.LogAttrs(ctx, slog.LevelError, "internal error", slog.Any("error", err))
	}
	return st.Err()
}

// ErrorStatus is the gRPC status answering err: a clear message that is
// safe to show, or a bare INTERNAL for anything unexpected (which the caller
// should log).
func ErrorStatus(err error) *status.Status {
	var qerr *pdp.QueryError
	var aerr *decide.ArgumentError
	var rerr *decide.RefusedError
	switch {
	case errors.As(err, &qerr):
		return status.New(codes.InvalidArgument, qerr.Error())
	case errors.As(err, &aerr):
		return status.New(codes.InvalidArgument, aerr.Error())
	case errors.As(err, &rerr):
		return status.New(codes.PermissionDenied, rerr.Error())
	case errors.Is(err, decide.ErrNoIssuers):
		return status.New(codes.FailedPrecondition, decide.ErrNoIssuers.Error())
	case errors.Is(err, pdp.ErrNoPolicy):
		return status.New(codes.Unavailable, "no policy loaded yet")
	case errors.Is(err, context.Canceled):
		return status.New(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.New(codes.DeadlineExceeded, "deadline exceeded")
	default:
		return status.New(codes.Internal, "internal error")
	}
}
