package grpcapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rolecall/rolecall/decide"
	"github.com/rolecall/rolecall/pdp"
)

func TestToStatus(t *testing.T) {
	var logs bytes.Buffer
	s := NewService(decide.New(&pdp.Engine{}, decide.Options{}), nil, slog.New(slog.NewTextHandler(&logs, nil)))
	secret := errors.New("open /var/lib/rolecall/secret-token.txt: permission denied")
	tests := []struct {
		name string
		err  error
		code codes.Code
		msg  string
	}{
		{"malformed query", fmt.Errorf("wrapped: %w", &pdp.QueryError{Field: "subject", Reason: "must not be empty"}), codes.InvalidArgument, "subject: must not be empty"},
		{"no policy", pdp.ErrNoPolicy, codes.Unavailable, "no policy loaded yet"},
		{"canceled", context.Canceled, codes.Canceled, "request canceled"},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), codes.DeadlineExceeded, "deadline exceeded"},
		{"anything else leaks nothing", secret, codes.Internal, "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := status.Convert(s.toStatus(t.Context(), tt.err))
			if st.Code() != tt.code || st.Message() != tt.msg {
				t.Errorf("toStatus(%v) = %v %q, want %v %q", tt.err, st.Code(), st.Message(), tt.code, tt.msg)
			}
		})
	}
	if !strings.Contains(logs.String(), "secret-token.txt") {
		t.Errorf("the internal error's detail was not logged: %q", logs.String())
	}
}
