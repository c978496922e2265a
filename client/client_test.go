package client_test

import (
	"context"
	"errors"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthgrpc "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/rolecall/rolecall/client"
	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
	"github.com/rolecall/rolecall/internal/rctest"
	"github.com/rolecall/rolecall/pdp"
)

func TestCheck(t *testing.T) {
	rc := startBufconn(t, rctest.Bookstore(t))
	tests := []struct {
		name string
		q    client.Query
		want client.Decision
	}{
		{
			"allow names the role and revision",
			client.Query{Subject: "alice", Resource: orders, Action: "read:order"},
			client.Decision{Allowed: true, Reason: client.ReasonGranted, MatchedRole: "order_admin", Revision: revision},
		},
		{
			"deny is an answer with a reason",
			client.Query{Subject: "bob", Resource: orders, Action: "read:order"},
			client.Decision{Reason: client.ReasonNoPermission, Revision: revision},
		},
		{
			"organization roles apply inside the organization",
			client.Query{Subject: "dave", Org: "acme", Resource: "organization", Action: "invite:member"},
			client.Decision{Allowed: true, Reason: client.ReasonGranted, MatchedRole: "admin", Revision: revision},
		},
		{
			"not a member",
			client.Query{Subject: "bob", Org: "acme", Resource: orders, Action: "read:order"},
			client.Decision{Reason: client.ReasonNotAMember, Revision: revision},
		},
		{
			"unknown subject",
			client.Query{Subject: "mallory", Resource: orders, Action: "read:order"},
			client.Decision{Reason: client.ReasonUnknownSubject, Revision: revision},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rc.Check(t.Context(), tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Check (-want +got):\n%s", diff)
			}
			allowed, err := rc.Allowed(t.Context(), tt.q)
			if err != nil || allowed != tt.want.Allowed {
				t.Errorf("Allowed = %v, %v; want %v, nil", allowed, err, tt.want.Allowed)
			}
		})
	}
}

func TestCheckErrorKeepsTheStatus(t *testing.T) {
	rc := startBufconn(t, rctest.Bookstore(t))
	q := client.Query{Subject: "alice", Resource: orders}
	_, err := rc.Check(t.Context(), q)
	if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != "rolecall check: rpc error: code = InvalidArgument desc = action: must not be empty" {
		t.Errorf("Check without action: err = %v, want InvalidArgument naming the field", err)
	}
	if client.IsUnavailable(err) {
		t.Errorf("IsUnavailable(%v) = true", err)
	}
	if ok, err := rc.Allowed(t.Context(), q); ok || status.Code(err) != codes.InvalidArgument {
		t.Errorf("Allowed without action = %v, %v; want false, InvalidArgument", ok, err)
	}
}

func TestCheckBatchAnswersInOrder(t *testing.T) {
	rc := startBufconn(t, rctest.Bookstore(t))
	qs := []client.Query{
		{Subject: "bob", Resource: orders, Action: "read:order"},
		{Subject: "alice", Resource: orders, Action: "read:order"},
		{Subject: "dave", Org: "globex", Resource: "organization", Action: "invite:member"},
		{Subject: "dave", Org: "acme", Resource: "organization", Action: "invite:member"},
		{Subject: "alice", Resource: orders, Action: "fly"},
	}
	want := []client.Decision{
		{Reason: client.ReasonNoPermission, Revision: revision},
		{Allowed: true, Reason: client.ReasonGranted, MatchedRole: "order_admin", Revision: revision},
		{Reason: client.ReasonNoPermission, Revision: revision},
		{Allowed: true, Reason: client.ReasonGranted, MatchedRole: "admin", Revision: revision},
		{Reason: client.ReasonUnknownAction, Revision: revision},
	}
	got, err := rc.CheckBatch(t.Context(), qs)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CheckBatch (-want +got):\n%s", diff)
	}

	if got, err := rc.CheckBatch(t.Context(), nil); got != nil || err != nil {
		t.Errorf("CheckBatch(nil) = %v, %v; want no decisions and no error", got, err)
	}
	bad := append(qs[:2:2], client.Query{Subject: "alice", Resource: orders})
	if _, err := rc.CheckBatch(t.Context(), bad); status.Code(err) != codes.InvalidArgument || !strings.HasSuffix(err.Error(), "checks[2].action: must not be empty") {
		t.Errorf("CheckBatch with a bad query: err = %v", err)
	}
	many := make([]client.Query, 1001)
	for i := range many {
		many[i] = qs[0]
	}
	if _, err := rc.CheckBatch(t.Context(), many); status.Code(err) != codes.InvalidArgument {
		t.Errorf("CheckBatch of 1,001: err = %v, want InvalidArgument", err)
	}
}

// fakeRolecall answers CheckBatch with one result whatever was asked, and
// ValidateToken with a fixed answer, recording the request.
type fakeRolecall struct {
	rolecallv1.UnimplementedPolicyDecisionServiceServer
	mu  sync.Mutex
	got *rolecallv1.ValidateTokenRequest
}

func (f *fakeRolecall) CheckBatch(context.Context, *rolecallv1.CheckBatchRequest) (*rolecallv1.CheckBatchResponse, error) {
	return &rolecallv1.CheckBatchResponse{Results: []*rolecallv1.CheckResponse{{Allowed: true}}}, nil
}

var tokenAnswer = &rolecallv1.ValidateTokenResponse{
	Valid:         true,
	Claims:        &rolecallv1.TokenClaims{Subject: "alice", SubjectType: rolecallv1.SubjectType_SUBJECT_TYPE_USER, Scopes: []string{"read:order"}},
	Authorization: &rolecallv1.CheckResponse{Allowed: true, Reason: rolecallv1.Reason_REASON_GRANTED},
}

func (f *fakeRolecall) ValidateToken(_ context.Context, req *rolecallv1.ValidateTokenRequest) (*rolecallv1.ValidateTokenResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = proto.Clone(req).(*rolecallv1.ValidateTokenRequest)
	return tokenAnswer, nil
}

func startFake(t *testing.T) (*client.Client, *fakeRolecall) {
	t.Helper()
	fake := &fakeRolecall{}
	gs := grpc.NewServer()
	rolecallv1.RegisterPolicyDecisionServiceServer(gs, fake)
	lis := bufconn.Listen(1 << 20)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return client.New(rctest.DialBufconn(t, lis)), fake
}

func TestCheckBatchRejectsAMiscountedAnswer(t *testing.T) {
	rc, _ := startFake(t)
	qs := []client.Query{{Subject: "a", Resource: "b", Action: "c"}, {Subject: "a", Resource: "b", Action: "d"}}
	got, err := rc.CheckBatch(t.Context(), qs)
	if got != nil || status.Code(err) != codes.Internal {
		t.Errorf("CheckBatch with 1 result for 2 checks = %v, %v; want nil, Internal", got, err)
	}
}

func TestValidateTokenPassesThrough(t *testing.T) {
	rc, fake := startFake(t)
	req := &rolecallv1.ValidateTokenRequest{
		Token:              "a.b.c",
		Audience:           orders,
		RequiredScopes:     []string{"read:order"},
		Org:                "acme",
		AuthorizationCheck: &rolecallv1.AuthorizationCheck{Resource: orders, Action: "read:order"},
	}
	got, err := rc.ValidateToken(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tokenAnswer, got, protocmp.Transform()); diff != "" {
		t.Errorf("ValidateToken answer (-want +got):\n%s", diff)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if diff := cmp.Diff(req, fake.got, protocmp.Transform()); diff != "" {
		t.Errorf("ValidateToken request (-sent +received):\n%s", diff)
	}
}

func TestValidateTokenWithoutIssuers(t *testing.T) {
	rc := startBufconn(t, rctest.Bookstore(t))
	got, err := rc.ValidateToken(t.Context(), &rolecallv1.ValidateTokenRequest{Token: "a.b.c"})
	if got != nil || status.Code(err) != codes.FailedPrecondition || !strings.HasPrefix(err.Error(), "rolecall validate token: ") {
		t.Errorf("ValidateToken = %v, %v; want FailedPrecondition", got, err)
	}
}

func TestNoPolicyIsUnavailable(t *testing.T) {
	rc := startBufconn(t, &pdp.Engine{})
	q := client.Query{Subject: "alice", Resource: orders, Action: "read:order"}
	d, err := rc.Check(t.Context(), q)
	if !client.IsUnavailable(err) || d != (client.Decision{}) {
		t.Errorf("Check without policy = %+v, %v; want Unavailable", d, err)
	}
	ok, err := rc.Allowed(t.Context(), q)
	if ok || !client.IsUnavailable(err) {
		t.Errorf("Allowed without policy = %v, %v; want false, Unavailable", ok, err)
	}
	if ds, err := rc.CheckBatch(t.Context(), []client.Query{q}); ds != nil || !client.IsUnavailable(err) {
		t.Errorf("CheckBatch without policy = %v, %v; want Unavailable", ds, err)
	}
}

func TestIsUnavailable(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("boom"), false},
		{status.Error(codes.Unavailable, "no policy loaded yet"), true},
		{fmt.Errorf("wrapped twice: %w", fmt.Errorf("rolecall check: %w", status.Error(codes.Unavailable, "x"))), true},
		{status.Error(codes.PermissionDenied, "x"), false},
		{context.DeadlineExceeded, false},
	} {
		if got := client.IsUnavailable(tt.err); got != tt.want {
			t.Errorf("IsUnavailable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestDialUnixSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "rolecall.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	serveT(t, rctest.Bookstore(t), lis)
	t.Chdir(dir)
	for _, target := range []string{"unix:" + sock, "unix://" + sock, "unix:rolecall.sock"} {
		t.Run(target, func(t *testing.T) {
			rc, err := client.Dial(target)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			d, err := rc.Check(t.Context(), client.Query{Subject: "carol", Resource: orders, Action: "delete:order"})
			if err != nil || !d.Allowed {
				t.Errorf("Check over %s = %+v, %v", target, d, err)
			}
		})
	}
}

func TestDialTCP(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveT(t, rctest.Bookstore(t), lis)
	rc, err := client.Dial(lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	d, err := rc.Check(t.Context(), client.Query{Subject: "bob", Resource: orders, Action: "read:order"})
	if err != nil || d.Allowed || d.Reason != client.ReasonNoPermission {
		t.Errorf("Check over TCP = %+v, %v; want a NO_PERMISSION deny", d, err)
	}
	if err := rc.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	// Close closed the connection Dial made.
	if _, err := rc.Check(t.Context(), client.Query{Subject: "bob", Resource: orders, Action: "read:order"}); err == nil {
		t.Error("Check after Close succeeded")
	}
}

func TestCloseLeavesACallersConnectionOpen(t *testing.T) {
	lis := bufconn.Listen(1 << 20)
	serveT(t, rctest.Bookstore(t), lis)
	conn := rctest.DialBufconn(t, lis)
	if err := client.New(conn).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := client.New(conn).Check(t.Context(), client.Query{Subject: "alice", Resource: orders, Action: "read:order"}); err != nil {
		t.Errorf("Check on the caller's connection after Close: %v", err)
	}
}

func TestDialUnreachableIsUnavailable(t *testing.T) {
	rc, err := client.Dial("unix:" + filepath.Join(t.TempDir(), "nobody-here.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ok, err := rc.Allowed(ctx, client.Query{Subject: "alice", Resource: orders, Action: "read:order"})
	if ok || !client.IsUnavailable(err) {
		t.Errorf("Allowed with no sidecar = %v, %v; want false, Unavailable", ok, err)
	}
}

func TestDialTargets(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"127.0.0.1:50051", "dns:///127.0.0.1:50051"},
		{"localhost:50051", "dns:///localhost:50051"},
		{"rolecall.internal:1", "dns:///rolecall.internal:1"},
		{"[::1]:50051", "dns:///[::1]:50051"},
		{":50051", "dns:///localhost:50051"},
		// A host named like a resolver scheme stays a host.
		{"unix-abstract:50051", "dns:///unix-abstract:50051"},
		{"unix:/run/rolecall/rolecall.sock", "unix:///run/rolecall/rolecall.sock"},
		{"unix:///run/rolecall/rolecall.sock", "unix:///run/rolecall/rolecall.sock"},
		{"unix:/tmp/a b/100%?#.sock", "unix:///tmp/a%20b/100%25%3F%23.sock"},
	} {
		got, err := client.GRPCTarget(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("target %q = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	// gRPC reads the unix socket path back from the URL, literally.
	u, err := url.Parse("unix:///tmp/a%20b/100%25%3F%23.sock")
	if err != nil || u.Path != "/tmp/a b/100%?#.sock" {
		t.Errorf("path read back = %q, %v", u.Path, err)
	}

	for _, in := range []string{
		"",
		"127.0.0.1",
		"127.0.0.1:",
		"127.0.0.1:0",
		"127.0.0.1:65536",
		"127.0.0.1:grpc",
		"localhost:50051/x",
		"dns:///127.0.0.1:50051",
		"passthrough:///127.0.0.1:50051",
		"http://127.0.0.1:50051",
		"bad host:50051",
		"unix:",
		"unix://",
		"unix://host/run/rolecall.sock",
		"unix:/run/a\x00b",
	} {
		rc, err := client.Dial(in)
		if err == nil {
			_ = rc.Close()
			t.Errorf("Dial(%q) succeeded, want an error", in)
		} else if !strings.Contains(err.Error(), fmt.Sprintf("%q", in)) {
			t.Errorf("Dial(%q) error %q does not name the target", in, err)
		}
	}
}

// The reason constants are the proto's, without the prefix.
func TestReasonsMatchProto(t *testing.T) {
	consts := map[string]bool{
		client.ReasonGranted: true, client.ReasonNoPermission: true, client.ReasonNotAMember: true,
		client.ReasonUnknownSubject: true, client.ReasonUnknownResource: true, client.ReasonUnknownAction: true,
		client.ReasonUnknownOrganization: true,
	}
	for n, name := range rolecallv1.Reason_name {
		if n != 0 && !consts[strings.TrimPrefix(name, "REASON_")] {
			t.Errorf("no constant for %s", name)
		}
	}
	if len(consts) != len(rolecallv1.Reason_name)-1 {
		t.Errorf("%d constants for %d reasons", len(consts), len(rolecallv1.Reason_name)-1)
	}
}

// The package must pull nothing of rolecall into a service but the
// generated API.
func TestImportsOnlyTheAPI(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		first, _, _ := strings.Cut(imp, "/")
		switch {
		case !strings.Contains(first, "."): // standard library
		case strings.HasPrefix(imp, "google.golang.org/grpc"), strings.HasPrefix(imp, "google.golang.org/protobuf/"):
		case strings.HasPrefix(imp, "github.com/rolecall/rolecall/gen/"):
		default:
			t.Errorf("client imports %s", imp)
		}
	}
}

// userKey is the metadata key the test mappers take the subject from.
const userKey = "x-user"

// grpcMapper checks Health/Check as read:order for the x-user metadata,
// lets Health/List through, and fails any other method.
func grpcMapper(ctx context.Context, method string, _ any) (client.Query, bool, error) {
	switch method {
	case healthpb.Health_List_FullMethodName:
		return client.Query{}, true, nil
	case healthpb.Health_Check_FullMethodName:
		users := metadata.ValueFromIncomingContext(ctx, userKey)
		if len(users) != 1 {
			return client.Query{}, false, fmt.Errorf("no %s: %w", userKey, client.ErrUnauthenticated)
		}
		return client.Query{Subject: users[0], Resource: orders, Action: "read:order"}, false, nil
	case "/test/InvalidArgument":
		return client.Query{}, false, status.Error(codes.InvalidArgument, "order id must be a number")
	}
	return client.Query{}, false, fmt.Errorf("no rule for %s", method)
}

func TestUnaryServerInterceptor(t *testing.T) {
	up := startBufconn(t, rctest.Bookstore(t))
	noPolicy := startBufconn(t, &pdp.Engine{})
	down := downClient(t)
	unreachable, err := client.Dial("unix:" + filepath.Join(t.TempDir(), "gone.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer unreachable.Close()

	tests := []struct {
		name     string
		rc       *client.Client
		method   string
		user     string // empty: no metadata
		wantCode codes.Code
		wantMsg  string
	}{
		{"allowed reaches the handler", up, healthpb.Health_Check_FullMethodName, "alice", codes.OK, ""},
		{"denied", up, healthpb.Health_Check_FullMethodName, "bob", codes.PermissionDenied, "permission denied: NO_PERMISSION"},
		{"unknown subject", up, healthpb.Health_Check_FullMethodName, "mallory", codes.PermissionDenied, "permission denied: UNKNOWN_SUBJECT"},
		{"skipped", up, healthpb.Health_List_FullMethodName, "bob", codes.OK, ""},
		{"skipped even with rolecall down", down, healthpb.Health_List_FullMethodName, "", codes.OK, ""},
		{"unauthenticated", up, healthpb.Health_Check_FullMethodName, "", codes.Unauthenticated, "unauthenticated"},
		{"mapper status passes through", up, "/test/InvalidArgument", "alice", codes.InvalidArgument, "order id must be a number"},
		{"other mapper error", up, "/test/Unmapped", "alice", codes.PermissionDenied, "permission denied"},
		{"malformed query", up, healthpb.Health_Check_FullMethodName, strings.Repeat("a", 2000), codes.PermissionDenied, "permission denied"},
		{"rolecall has no policy", noPolicy, healthpb.Health_Check_FullMethodName, "alice", codes.Unavailable, "authorization unavailable"},
		{"rolecall connection closed", down, healthpb.Health_Check_FullMethodName, "alice", codes.Unavailable, "authorization unavailable"},
		{"rolecall unreachable", unreachable, healthpb.Health_Check_FullMethodName, "alice", codes.Unavailable, "authorization unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if tt.user != "" {
				ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(userKey, tt.user))
			}
			called := false
			handler := func(context.Context, any) (any, error) { called = true; return "answer", nil }
			resp, err := tt.rc.UnaryServerInterceptor(grpcMapper)(ctx, "request", &grpc.UnaryServerInfo{FullMethod: tt.method}, handler)
			if s := status.Convert(err); s.Code() != tt.wantCode || s.Message() != tt.wantMsg {
				t.Errorf("err = %v, want %v %q", err, tt.wantCode, tt.wantMsg)
			}
			if want := tt.wantCode == codes.OK; called != want || (resp == "answer") != want {
				t.Errorf("handler called = %v, response %v; want called %v", called, resp, want)
			}
		})
	}

	t.Run("caller gone", func(t *testing.T) {
		ctx, cancel := context.WithCancel(metadata.NewIncomingContext(t.Context(), metadata.Pairs(userKey, "alice")))
		cancel()
		_, err := up.UnaryServerInterceptor(grpcMapper)(ctx, nil, &grpc.UnaryServerInfo{FullMethod: healthpb.Health_Check_FullMethodName},
			func(context.Context, any) (any, error) { t.Error("handler called"); return nil, nil })
		if status.Code(err) != codes.Canceled {
			t.Errorf("err = %v, want Canceled", err)
		}
	})
}

// The interceptor installed in a real gRPC server, called over a real
// connection.
func TestUnaryServerInterceptorInAServer(t *testing.T) {
	rc := startBufconn(t, rctest.Bookstore(t))
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(rc.UnaryServerInterceptor(grpcMapper)))
	healthpb.RegisterHealthServer(gs, healthgrpc.NewServer())
	lis := bufconn.Listen(1 << 20)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	health := healthpb.NewHealthClient(rctest.DialBufconn(t, lis))

	as := func(user string) context.Context {
		return metadata.AppendToOutgoingContext(t.Context(), userKey, user)
	}
	if resp, err := health.Check(as("alice"), &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("Check as alice = %v, %v; want SERVING", resp, err)
	}
	if _, err := health.Check(as("bob"), &healthpb.HealthCheckRequest{}); status.Code(err) != codes.PermissionDenied || status.Convert(err).Message() != "permission denied: NO_PERMISSION" {
		t.Errorf("Check as bob: err = %v, want PermissionDenied NO_PERMISSION", err)
	}
	if _, err := health.Check(t.Context(), &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Check as nobody: err = %v, want Unauthenticated", err)
	}
	if _, err := health.List(as("bob"), &healthpb.HealthListRequest{}); err != nil {
		t.Errorf("List (skipped) as bob: %v", err)
	}
}

// httpMapper checks GET /orders/{id} as read:order and POST /orders as
// write:order for the X-User header, lets /healthz through, and fails any
// other request.
func httpMapper(r *http.Request) (client.Query, bool, error) {
	var action string
	switch {
	case r.URL.Path == "/healthz":
		return client.Query{}, true, nil
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/orders/"):
		action = "read:order"
	case r.Method == http.MethodPost && r.URL.Path == "/orders":
		action = "write:order"
	default:
		return client.Query{}, false, fmt.Errorf("no rule for %s %s", r.Method, r.URL.Path)
	}
	user := r.Header.Get("X-User")
	if user == "" {
		return client.Query{}, false, client.ErrUnauthenticated
	}
	return client.Query{Subject: user, Resource: orders, Action: action}, false, nil
}

func TestMiddleware(t *testing.T) {
	up := startBufconn(t, rctest.Bookstore(t))
	noPolicy := startBufconn(t, &pdp.Engine{})
	down := downClient(t)

	tests := []struct {
		name, method, path, user string
		rc                       *client.Client
		wantCode                 int
		wantBody                 string
	}{
		{"allowed", "GET", "/orders/42", "alice", up, 200, "ok\n"},
		{"allowed write", "POST", "/orders", "carol", up, 200, "ok\n"},
		{"denied", "GET", "/orders/42", "bob", up, 403, `{"error":"forbidden","reason":"NO_PERMISSION"}` + "\n"},
		{"denied write", "POST", "/orders", "dave", up, 403, `{"error":"forbidden","reason":"NO_PERMISSION"}` + "\n"},
		{"unknown subject", "GET", "/orders/42", "mallory", up, 403, `{"error":"forbidden","reason":"UNKNOWN_SUBJECT"}` + "\n"},
		{"unauthenticated", "GET", "/orders/42", "", up, 401, `{"error":"unauthenticated"}` + "\n"},
		{"unmapped request", "DELETE", "/orders/42", "alice", up, 403, `{"error":"forbidden"}` + "\n"},
		{"malformed query", "GET", "/orders/42", strings.Repeat("a", 2000), up, 403, `{"error":"forbidden"}` + "\n"},
		{"skipped", "GET", "/healthz", "", down, 200, "ok\n"},
		{"rolecall has no policy", "GET", "/orders/42", "alice", noPolicy, 503, `{"error":"unavailable"}` + "\n"},
		{"rolecall down", "GET", "/orders/42", "alice", down, 503, `{"error":"unavailable"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				called = true
				fmt.Fprintln(w, "ok")
			})
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			req := httptest.NewRequestWithContext(ctx, tt.method, tt.path, nil)
			if tt.user != "" {
				req.Header.Set("X-User", tt.user)
			}
			rec := httptest.NewRecorder()
			tt.rc.Middleware(httpMapper)(next).ServeHTTP(rec, req)
			if rec.Code != tt.wantCode || rec.Body.String() != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", rec.Code, rec.Body.String(), tt.wantCode, tt.wantBody)
			}
			if called != (tt.wantCode == 200) {
				t.Errorf("next called = %v", called)
			}
			if tt.wantCode != 200 {
				h := rec.Header()
				if h.Get("Content-Type") != "application/json" || h.Get("Cache-Control") != "no-store" {
					t.Errorf("headers = %v", h)
				}
			}
			if got, want := rec.Header().Get("WWW-Authenticate"), map[bool]string{true: "Bearer"}[tt.wantCode == 401]; got != want {
				t.Errorf("WWW-Authenticate = %q, want %q", got, want)
			}
		})
	}
}

func TestNilMapperPanics(t *testing.T) {
	rc := client.New(nil)
	for name, f := range map[string]func(){
		"UnaryServerInterceptor": func() { rc.UnaryServerInterceptor(nil) },
		"Middleware":             func() { rc.Middleware(nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s(nil) did not panic", name)
				}
			}()
			f()
		}()
	}
}

// ListSubjects goes through API(), as ListPermissions does; over a Unix
// socket it is a local caller, answered under the server's default.
func TestListSubjectsThroughAPI(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "rolecall.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	serveT(t, rctest.Bookstore(t), lis)
	rc, err := client.Dial("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var got []string
	req := &rolecallv1.ListSubjectsRequest{Resource: "https://api.store.io/products", Action: "read:product", PageSize: 3}
	for {
		resp, err := rc.API().ListSubjects(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range resp.GetSubjects() {
			got = append(got, s.GetSubject()+" "+s.GetMatchedRole())
		}
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	want := []string{"alice order_admin", "bob product_admin", "carol order_admin", "svc-catalog-sync catalog_sync"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("subjects (-want +got):\n%s", diff)
	}
}
