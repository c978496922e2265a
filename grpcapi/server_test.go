package grpcapi_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/rolecall/rolecall/decide"
	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
	"github.com/rolecall/rolecall/grpcapi"
	"github.com/rolecall/rolecall/internal/rctest"
	"github.com/rolecall/rolecall/pdp"
)

type testServer struct {
	engine *pdp.Engine
	srv    *grpcapi.Server
	conn   *grpc.ClientConn
	api    rolecallv1.PolicyDecisionServiceClient
	health healthpb.HealthClient
}

// start runs the whole server in process on the given listener (bufconn
// unless one is passed) and connects a client to it.
func start(t *testing.T, engine *pdp.Engine, lis net.Listener, target string) *testServer {
	t.Helper()
	return startWith(t, decide.New(engine, decide.Options{}), grpcapi.Options{GracePeriod: time.Second}, lis, target)
}

// startOpts runs the server on dec with opts over bufconn.
func startOpts(t *testing.T, dec *decide.Decider, opts grpcapi.Options) *testServer {
	t.Helper()
	return startWith(t, dec, opts, nil, "")
}

func startWith(t *testing.T, dec *decide.Decider, sopts grpcapi.Options, lis net.Listener, target string) *testServer {
	t.Helper()
	engine := dec.Engine()
	var srv *grpcapi.Server
	var conn *grpc.ClientConn
	if lis == nil {
		srv, conn = rctest.Bufconn(t, dec, sopts)
	} else {
		srv = rctest.Serve(t, dec, sopts, lis)
		conn = rctest.Dial(t, target)
	}
	return &testServer{engine: engine, srv: srv, conn: conn, api: rolecallv1.NewPolicyDecisionServiceClient(conn), health: healthpb.NewHealthClient(conn)}
}

const orders = "https://api.store.io/orders"

func TestCheck(t *testing.T) {
	ts := start(t, rctest.Bookstore(t), nil, "")
	tests := []struct {
		name string
		req  *rolecallv1.CheckRequest
		want *rolecallv1.CheckResponse
	}{
		{
			"allow names the role and revision",
			&rolecallv1.CheckRequest{Subject: "alice", Resource: orders, Action: "read:order"},
			&rolecallv1.CheckResponse{Allowed: true, Reason: rolecallv1.Reason_REASON_GRANTED, MatchedRole: "order_admin", PolicyRevision: "bookstore-2026-11-20.1"},
		},
		{
			"deny is an answer with a reason",
			&rolecallv1.CheckRequest{Subject: "bob", Resource: orders, Action: "read:order"},
			&rolecallv1.CheckResponse{Reason: rolecallv1.Reason_REASON_NO_PERMISSION, PolicyRevision: "bookstore-2026-11-20.1"},
		},
		{
			"organization roles apply inside the organization",
			&rolecallv1.CheckRequest{Subject: "dave", Org: "acme", Resource: "organization", Action: "invite:member"},
			&rolecallv1.CheckResponse{Allowed: true, Reason: rolecallv1.Reason_REASON_GRANTED, MatchedRole: "admin", PolicyRevision: "bookstore-2026-11-20.1"},
		},
		{
			"not a member",
			&rolecallv1.CheckRequest{Subject: "bob", Org: "acme", Resource: orders, Action: "read:order"},
			&rolecallv1.CheckResponse{Reason: rolecallv1.Reason_REASON_NOT_A_MEMBER, PolicyRevision: "bookstore-2026-11-20.1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ts.api.Check(t.Context(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("Check (-want +got):\n%s", diff)
			}
		})
	}
}

// The pdp and proto value spaces must agree, since the server converts by
// number.
func TestReasonsMatchProto(t *testing.T) {
	for r := pdp.ReasonUnspecified; r <= pdp.UnknownOrganization; r++ {
		if got, want := rolecallv1.Reason(r).String(), "REASON_"+r.String(); got != want {
			t.Errorf("pdp reason %d is %s in the proto, want %s", r, got, want)
		}
	}
	if n := len(rolecallv1.Reason_name); n != int(pdp.UnknownOrganization)+1 {
		t.Errorf("the proto has %d reasons, pdp %d", n, pdp.UnknownOrganization+1)
	}
}

func TestBadInputIsInvalidArgument(t *testing.T) {
	ts := start(t, rctest.Bookstore(t), nil, "")
	long := strings.Repeat("x", pdp.MaxIDLen+1)
	ok := func() *rolecallv1.CheckRequest {
		return &rolecallv1.CheckRequest{Subject: "alice", Resource: orders, Action: "read:order"}
	}
	many := make([]*rolecallv1.CheckRequest, 5000)
	for i := range many {
		many[i] = ok()
	}
	tests := []struct {
		name string
		call func() error
		msg  string
	}{
		{"empty subject", func() error { r := ok(); r.Subject = ""; _, err := ts.api.Check(t.Context(), r); return err }, "subject: must not be empty"},
		{"empty resource", func() error { r := ok(); r.Resource = ""; _, err := ts.api.Check(t.Context(), r); return err }, "resource: must not be empty"},
		{"empty action", func() error { r := ok(); r.Action = ""; _, err := ts.api.Check(t.Context(), r); return err }, "action: must not be empty"},
		{"subject over 1 KiB", func() error { r := ok(); r.Subject = long; _, err := ts.api.Check(t.Context(), r); return err }, "subject: is 1025 bytes long; the limit is 1024"},
		{"invalid UTF-8 org", func() error { r := ok(); r.Org = "acme\xff"; _, err := ts.api.Check(t.Context(), r); return err }, "org: is not valid UTF-8"},
		{"invalid UTF-8 action", func() error { r := ok(); r.Action = "\xc3("; _, err := ts.api.Check(t.Context(), r); return err }, "action: is not valid UTF-8"},
		{"empty batch", func() error { _, err := ts.api.CheckBatch(t.Context(), &rolecallv1.CheckBatchRequest{}); return err }, "checks: must hold at least one check"},
		{"5,000-check batch", func() error {
			_, err := ts.api.CheckBatch(t.Context(), &rolecallv1.CheckBatchRequest{Checks: many})
			return err
		}, "checks: holds 5000 checks; the limit is 1000"},
		{"one bad check in a batch", func() error {
			bad := ok()
			bad.Action = ""
			_, err := ts.api.CheckBatch(t.Context(), &rolecallv1.CheckBatchRequest{Checks: []*rolecallv1.CheckRequest{ok(), ok(), bad}})
			return err
		}, "checks[2].action: must not be empty"},
		{"ListPermissions without subject", func() error {
			_, err := ts.api.ListPermissions(t.Context(), &rolecallv1.ListPermissionsRequest{})
			return err
		}, "subject: must not be empty"},
		{"ListPermissions with a long resource", func() error {
			_, err := ts.api.ListPermissions(t.Context(), &rolecallv1.ListPermissionsRequest{Subject: "a", Resource: long})
			return err
		}, "resource: is 1025 bytes long; the limit is 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != tt.msg {
				t.Errorf("err = %v, want InvalidArgument %q", err, tt.msg)
			}
		})
	}
}

func TestCheckBatchAnswersInOrder(t *testing.T) {
	ts := start(t, rctest.Bookstore(t), nil, "")
	reqs := []*rolecallv1.CheckRequest{
		{Subject: "bob", Resource: orders, Action: "read:order"},
		{Subject: "alice", Resource: orders, Action: "read:order"},
		{Subject: "mallory", Resource: orders, Action: "read:order"},
		{Subject: "dave", Org: "globex", Resource: "organization", Action: "read:member"},
	}
	resp, err := ts.api.CheckBatch(t.Context(), &rolecallv1.CheckBatchRequest{Checks: reqs})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range resp.GetResults() {
		got = append(got, r.GetReason().String()+"/"+r.GetMatchedRole())
	}
	want := []string{"REASON_NO_PERMISSION/", "REASON_GRANTED/order_admin", "REASON_UNKNOWN_SUBJECT/", "REASON_GRANTED/member"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	for _, r := range resp.GetResults() {
		if r.GetPolicyRevision() != "bookstore-2026-11-20.1" {
			t.Errorf("result from revision %q", r.GetPolicyRevision())
		}
	}
}

func TestListPermissions(t *testing.T) {
	ts := start(t, rctest.Bookstore(t), nil, "")
	got, err := ts.api.ListPermissions(t.Context(), &rolecallv1.ListPermissionsRequest{Subject: "dave", Org: "acme", Resource: "organization"})
	if err != nil {
		t.Fatal(err)
	}
	want := &rolecallv1.ListPermissionsResponse{
		Permissions: []*rolecallv1.Permission{
			{Resource: "organization", Action: "invite:member"},
			{Resource: "organization", Action: "manage:billing"},
			{Resource: "organization", Action: "read:member"},
			{Resource: "organization", Action: "remove:member"},
		},
		Roles:          []string{"admin"},
		PolicyRevision: "bookstore-2026-11-20.1",
		Reason:         rolecallv1.Reason_REASON_GRANTED,
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("ListPermissions (-want +got):\n%s", diff)
	}
}

func TestNoPolicyIsUnavailableAndNotServing(t *testing.T) {
	engine := &pdp.Engine{}
	ts := start(t, engine, nil, "")
	_, err := ts.api.Check(t.Context(), &rolecallv1.CheckRequest{Subject: "alice", Resource: orders, Action: "read:order"})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("Check without policy: err = %v, want Unavailable", err)
	}
	_, err = ts.api.CheckBatch(t.Context(), &rolecallv1.CheckBatchRequest{Checks: []*rolecallv1.CheckRequest{{Subject: "a", Resource: "b", Action: "c"}}})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("CheckBatch without policy: err = %v, want Unavailable", err)
	}
	st, err := ts.api.GetPolicyStatus(t.Context(), &rolecallv1.GetPolicyStatusRequest{})
	if err != nil || st.GetLoaded() {
		t.Errorf("GetPolicyStatus without policy = %v, %v", st, err)
	}
	for _, svc := range []string{"", grpcapi.ServiceName} {
		h, err := ts.health.Check(t.Context(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("health(%q) before load = %v, %v; want NOT_SERVING", svc, h, err)
		}
	}

	engine.Swap(rctest.Bookstore(t).Snapshot())
	ts.srv.UpdateHealth()
	h, err := ts.health.Check(t.Context(), &healthpb.HealthCheckRequest{Service: grpcapi.ServiceName})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health after load = %v, %v; want SERVING", h, err)
	}
	if _, err := ts.api.Check(t.Context(), &rolecallv1.CheckRequest{Subject: "alice", Resource: orders, Action: "read:order"}); err != nil {
		t.Errorf("Check after load: %v", err)
	}
}

func TestReflectionListsTheService(t *testing.T) {
	ts := start(t, rctest.Bookstore(t), nil, "")
	stream, err := reflectionpb.NewServerReflectionClient(ts.conn).ServerReflectionInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"rolecall.v1.PolicyDecisionService", "grpc.health.v1.Health"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}
}

func TestOverLoopbackTCPAndUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "rolecall.sock")
	ls, err := grpcapi.Listen("127.0.0.1:0", sock, 0)
	if err != nil {
		t.Fatal(err)
	}
	engine := rctest.Bookstore(t)
	for _, target := range []struct {
		name string
		lis  net.Listener
		addr string
	}{
		{"tcp", ls[0], ls[0].Addr().String()},
		{"unix", ls[1], "unix://" + sock},
	} {
		t.Run(target.name, func(t *testing.T) {
			ts := start(t, engine, target.lis, target.addr)
			got, err := ts.api.Check(t.Context(), &rolecallv1.CheckRequest{Subject: "carol", Resource: orders, Action: "delete:order"})
			if err != nil || !got.GetAllowed() {
				t.Fatalf("Check over %s = %v, %v", target.name, got, err)
			}
		})
	}
	if fi, err := os.Stat(sock); err == nil {
		t.Errorf("socket file left behind after shutdown (mode %v)", fi.Mode())
	}
}

func TestListenUnixSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")

	ls, err := grpcapi.Listen("", sock, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode = %v, %v; want 0660", fi.Mode().Perm(), err)
	}
	if _, err := grpcapi.Listen("", sock, 0); err == nil || !strings.Contains(err.Error(), "another process is serving") {
		t.Errorf("second Listen on a live socket: err = %v", err)
	}
	// Leave a stale socket file behind, as a killed process would.
	ls[0].(*net.UnixListener).SetUnlinkOnClose(false)
	_ = ls[0].Close()
	ls, err = grpcapi.Listen("", sock, 0o600)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, %v; want the configured 0600", fi.Mode().Perm(), err)
	}
	_ = ls[0].Close()

	plain := filepath.Join(dir, "file")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := grpcapi.Listen("", plain, 0); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file: err = %v", err)
	}
	if _, err := grpcapi.Listen("", "", 0); err == nil {
		t.Error("Listen with nothing to listen on succeeded")
	}
}

func TestServeStopsWhenContextEnds(t *testing.T) {
	srv := grpcapi.New(decide.New(rctest.Bookstore(t), decide.Options{}), grpcapi.Options{GracePeriod: time.Second})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if c, err := net.Dial("tcp", l.Addr().String()); err == nil {
		_ = c.Close()
		t.Error("listener still accepts after shutdown")
	}
}
