// Package client is the Go client of rolecall, the sidecar policy decision
// point: it asks rolecall.v1.PolicyDecisionService whether a subject may
// perform an action on a resource, and enforces the answer in a gRPC or HTTP
// service.
//
// A service dials its sidecar once and shares the Client:
//
//	rc, err := client.Dial("unix:/run/rolecall/rolecall.sock") // or "127.0.0.1:50051"
//	if err != nil { ... }
//	defer rc.Close()
//	d, err := rc.Check(ctx, client.Query{Subject: "alice", Resource: "https://api.store.io/orders", Action: "read:order"})
//
// # Answers and errors
//
// A deny is an answer, not an error: Check returns a Decision with Allowed
// false and the Reason (NO_PERMISSION, NOT_A_MEMBER, ...). An error means
// rolecall did not decide: the error wraps the gRPC status, so status.Code
// works on it, and IsUnavailable reports the one a caller most often has to
// handle, rolecall not reachable or holding no policy yet. Callers must treat
// every error as a deny; Allowed does that for them.
//
// # Enforcement
//
// UnaryServerInterceptor and Middleware check every incoming gRPC call or
// HTTP request with a mapper the service provides, which says what the call
// is (subject, organization, resource, action) or that it needs no check.
// Both fail closed: a call goes through only when rolecall answered allow.
//
//	call or request                    gRPC                 HTTP
//	allowed                            handler runs         handler runs
//	denied                             PermissionDenied     403 {"error":"forbidden","reason":"NO_PERMISSION"}
//	mapper error wraps                 Unauthenticated      401 {"error":"unauthenticated"}
//	  ErrUnauthenticated
//	mapper error is a gRPC status      that status          403 {"error":"forbidden"}
//	other mapper error                 PermissionDenied     403 {"error":"forbidden"}
//	rolecall finds the query           PermissionDenied     403 {"error":"forbidden"}
//	  malformed (INVALID_ARGUMENT)
//	rolecall unreachable, without      Unavailable          503 {"error":"unavailable"}
//	  policy, or any other error
//
// The subject must come from something the service has verified, such as
// an access token (see ValidateToken), never from a value the caller can
// simply set.
//
// The package depends only on rolecall's generated API, gRPC, protobuf and
// the standard library.
package client
