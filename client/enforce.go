package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrUnauthenticated is what a mapper returns, or wraps, when it cannot tell
// who the caller is (no token, an invalid one): UnaryServerInterceptor then
// answers UNAUTHENTICATED and Middleware 401 instead of a deny.
var ErrUnauthenticated = errors.New("unauthenticated")

// UnaryServerInterceptor returns a gRPC interceptor that checks every unary
// call with rolecall before its handler runs. For each call, mapper returns
// the Query (who does what on which resource), or skip true to let the call
// through unchecked (health checks, reflection), or an error. The handler
// runs only when rolecall answers allow; otherwise the call fails with
//
//   - PERMISSION_DENIED "permission denied: REASON" on a deny;
//   - UNAUTHENTICATED "unauthenticated" when the mapper's error wraps
//     ErrUnauthenticated;
//   - the mapper's own status when its error carries a gRPC status (made
//     with status.Error), to choose the code and message;
//   - PERMISSION_DENIED "permission denied" for any other mapper error (the
//     call could not be understood, so it is not allowed), and when rolecall
//     rejects the query as malformed (INVALID_ARGUMENT, such as an empty
//     subject): retrying would not help;
//   - UNAVAILABLE "authorization unavailable" when rolecall cannot be
//     reached, has no policy or fails otherwise (fail closed);
//   - CANCELED or DEADLINE_EXCEEDED when the call's own context ends first.
//
// The check runs with the call's context, so its deadline bounds it. Install
// it with grpc.ChainUnaryInterceptor. mapper must not be nil.
func (c *Client) UnaryServerInterceptor(mapper func(ctx context.Context, fullMethod string, req any) (q Query, skip bool, err error)) grpc.UnaryServerInterceptor {
	if mapper == nil {
		panic("client: UnaryServerInterceptor: nil mapper")
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		q, skip, err := mapper(ctx, info.FullMethod, req)
		switch {
		case err != nil:
			return nil, mapperStatus(err)
		case skip:
			return handler(ctx, req)
		}
		d, err := c.Check(ctx, q)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, status.FromContextError(ctx.Err()).Err()
		case err != nil && status.Code(err) == codes.InvalidArgument:
			return nil, status.Error(codes.PermissionDenied, "permission denied")
		case err != nil:
			return nil, status.Error(codes.Unavailable, "authorization unavailable")
		case !d.Allowed:
			return nil, status.Error(codes.PermissionDenied, "permission denied: "+d.Reason)
		}
		return handler(ctx, req)
	}
}

func mapperStatus(err error) error {
	if errors.Is(err, ErrUnauthenticated) {
		return status.Error(codes.Unauthenticated, "unauthenticated")
	}
	if s, ok := status.FromError(err); ok && s.Code() != codes.OK && s.Code() != codes.Unknown {
		return s.Err()
	}
	return status.Error(codes.PermissionDenied, "permission denied")
}

// Middleware returns HTTP middleware that checks every request with rolecall
// before next handles it. For each request, mapper returns the Query (who
// does what on which resource), or skip true to pass the request on
// unchecked (health probes, public pages), or an error. next runs only when
// rolecall answers allow; otherwise the middleware answers with a small JSON
// body:
//
//   - 403 {"error":"forbidden","reason":"NO_PERMISSION"} on a deny, with the
//     Decision's reason;
//   - 401 {"error":"unauthenticated"} and "WWW-Authenticate: Bearer" when
//     the mapper's error wraps ErrUnauthenticated;
//   - 403 {"error":"forbidden"} for any other mapper error (the request could
//     not be understood, so it is not allowed), and when rolecall rejects the
//     query as malformed (INVALID_ARGUMENT, such as an id over 1 KiB):
//     retrying would not help;
//   - 503 {"error":"unavailable"} when rolecall cannot be reached, has no
//     policy or fails otherwise (fail closed).
//
// The check runs with the request's context. mapper must not be nil.
func (c *Client) Middleware(mapper func(r *http.Request) (q Query, skip bool, err error)) func(http.Handler) http.Handler {
	if mapper == nil {
		panic("client: Middleware: nil mapper")
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			q, skip, err := mapper(r)
			switch {
			case errors.Is(err, ErrUnauthenticated):
				w.Header().Set("WWW-Authenticate", "Bearer")
				writeError(w, http.StatusUnauthorized, "unauthenticated", "")
				return
			case err != nil:
				writeError(w, http.StatusForbidden, "forbidden", "")
				return
			case skip:
				next.ServeHTTP(w, r)
				return
			}
			d, err := c.Check(r.Context(), q)
			switch {
			case err != nil && status.Code(err) == codes.InvalidArgument:
				writeError(w, http.StatusForbidden, "forbidden", "")
			case err != nil:
				writeError(w, http.StatusServiceUnavailable, "unavailable", "")
			case !d.Allowed:
				writeError(w, http.StatusForbidden, "forbidden", d.Reason)
			default:
				next.ServeHTTP(w, r)
			}
		})
	}
}

func writeError(w http.ResponseWriter, code int, msg, reason string) {
	body, _ := json.Marshal(struct {
		Error  string `json:"error"`
		Reason string `json:"reason,omitempty"`
	}{msg, reason})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}
