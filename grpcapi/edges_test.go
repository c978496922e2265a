package grpcapi_test

import (
	"net"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rolecall/rolecall/grpcapi"
	"github.com/rolecall/rolecall/internal/rctest"
	"github.com/rolecall/rolecall/pdp"
)

type edgeRig struct {
	engine *pdp.Engine
	authz  authv3.AuthorizationClient
	mint   func(sub string) string
}

// startEdges serves Envoy ext_authz over loopback TCP.
func startEdges(t *testing.T, dryRun bool) *edgeRig {
	t.Helper()
	e := rctest.NewEnforcer(t, dryRun)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rctest.Serve(t, e.Decider, grpcapi.Options{}, l)
	conn := rctest.Dial(t, l.Addr().String())
	return &edgeRig{engine: e.Engine, authz: authv3.NewAuthorizationClient(conn), mint: e.Mint}
}

func envoyCheck(t *testing.T, r *edgeRig, method, path string, headers map[string]string) *authv3.CheckResponse {
	t.Helper()
	resp, err := r.authz.Check(t.Context(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: method, Path: path, Headers: headers}},
	}})
	if err != nil {
		t.Fatalf("ext_authz Check %s %s: %v", method, path, err)
	}
	return resp
}

func TestEnvoyExtAuthz(t *testing.T) {
	r := startEdges(t, false)
	alice, bob, dave := "Bearer "+r.mint("alice"), "Bearer "+r.mint("bob"), "Bearer "+r.mint("dave")
	tests := []struct {
		name          string
		method, path  string
		headers       map[string]string
		code          codes.Code
		httpStatus    int32
		subject, org  string
		inBody, wwwAu string
	}{
		{"a valid token on an allowed route", "GET", "/orders/7", map[string]string{"authorization": alice}, codes.OK, 0, "alice", "", "", ""},
		{"the organization from the path", "POST", "/orgs/acme/members", map[string]string{"authorization": dave}, codes.OK, 0, "dave", "acme", "", ""},
		{"a valid token on a denied route", "GET", "/orders/7", map[string]string{"authorization": bob}, codes.PermissionDenied, 403, "", "", `"reason":"NO_PERMISSION"`, ""},
		{"another organization", "POST", "/orgs/globex/members", map[string]string{"authorization": dave}, codes.PermissionDenied, 403, "", "", `"reason":"NO_PERMISSION"`, ""},
		{"no token", "GET", "/orders/7", nil, codes.Unauthenticated, 401, "", "", `"error":"unauthorized"`, `Bearer error="invalid_token"`},
		{"an invalid token", "GET", "/orders/7", map[string]string{"authorization": "Bearer not.a.token"}, codes.Unauthenticated, 401, "", "", "INVALID_TOKEN", `error="invalid_token"`},
		{"Basic credentials", "GET", "/orders/7", map[string]string{"authorization": "Basic YWxpY2U6cHc="}, codes.Unauthenticated, 401, "", "", "", "not a bearer token"},
		{"two Authorization headers, joined by Envoy", "GET", "/orders/7", map[string]string{"authorization": alice + "," + bob}, codes.Unauthenticated, 401, "", "", "", "more than one Authorization header"},
		{"a public route needs no token", "GET", "/healthz", nil, codes.OK, 0, "", "", "", ""},
		{"no route is denied", "GET", "/admin", map[string]string{"authorization": alice}, codes.PermissionDenied, 403, "", "", "NO_ROUTE", ""},
		{"a method in odd case", "gEt", "/orders/7", map[string]string{"authorization": alice}, codes.OK, 0, "alice", "", "", ""},
		{"no bypass through the public prefix", "GET", "/public/..%2Forders/7", map[string]string{"authorization": bob}, codes.PermissionDenied, 403, "", "", "BAD_PATH", ""},
		{"dot segments reach the protected route", "GET", "/public/../orders/7", map[string]string{"authorization": bob}, codes.PermissionDenied, 403, "", "", "NO_PERMISSION", ""},
		{"the query does not pick the route", "GET", "/orders/7?x=/public/", map[string]string{"authorization": bob}, codes.PermissionDenied, 403, "", "", "NO_PERMISSION", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := envoyCheck(t, r, tt.method, tt.path, tt.headers)
			if got := codes.Code(resp.GetStatus().GetCode()); got != tt.code {
				t.Fatalf("status %v (%s), want %v", got, resp.GetStatus().GetMessage(), tt.code)
			}
			if tt.code != codes.OK {
				d := resp.GetDeniedResponse()
				if int32(d.GetStatus().GetCode()) != tt.httpStatus || !strings.Contains(d.GetBody(), tt.inBody) {
					t.Errorf("denied %d %q, want %d containing %q", d.GetStatus().GetCode(), d.GetBody(), tt.httpStatus, tt.inBody)
				}
				if tt.wwwAu != "" && !strings.Contains(headerOf(d.GetHeaders(), "www-authenticate"), tt.wwwAu) {
					t.Errorf("WWW-Authenticate = %q, want it to contain %q", headerOf(d.GetHeaders(), "www-authenticate"), tt.wwwAu)
				}
				return
			}
			ok := resp.GetOkResponse()
			if got := headerOf(ok.GetHeaders(), "x-rolecall-subject"); got != tt.subject {
				t.Errorf("x-rolecall-subject = %q, want %q", got, tt.subject)
			}
			if got := headerOf(ok.GetHeaders(), "x-rolecall-org"); got != tt.org {
				t.Errorf("x-rolecall-org = %q, want %q", got, tt.org)
			}
		})
	}
}

// A client's forged identity headers never reach the upstream: the ones
// rolecall sets overwrite them, the others are removed.
func TestEnvoyExtAuthzReplacesForgedIdentity(t *testing.T) {
	r := startEdges(t, false)
	resp := envoyCheck(t, r, "GET", "/orders/7", map[string]string{
		"authorization": "Bearer " + r.mint("alice"), "x-rolecall-subject": "root", "x-rolecall-org": "acme",
	})
	ok := resp.GetOkResponse()
	for _, h := range ok.GetHeaders() {
		if h.GetHeader().GetKey() == "x-rolecall-subject" && (h.GetHeader().GetValue() != "alice" || h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD) {
			t.Errorf("subject header %v does not overwrite the forged one", h)
		}
	}
	if !contains(ok.GetHeadersToRemove(), "x-rolecall-org") {
		t.Errorf("the forged org header is not removed: %v", ok.GetHeadersToRemove())
	}
	public := envoyCheck(t, r, "GET", "/healthz", map[string]string{"x-rolecall-subject": "root"})
	if !contains(public.GetOkResponse().GetHeadersToRemove(), "x-rolecall-subject") {
		t.Errorf("a public route keeps the forged subject: %v", public.GetOkResponse())
	}
}

func TestEnvoyExtAuthzUnavailableWithoutPolicy(t *testing.T) {
	r := startEdges(t, false)
	r.engine.Swap(nil)
	_, err := r.authz.Check(t.Context(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/orders/7", Headers: map[string]string{"authorization": "Bearer " + r.mint("alice")}}},
	}})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("without a policy: %v, want UNAVAILABLE (failure_mode_allow decides)", err)
	}
}

func TestDryRunAllowsAndLogs(t *testing.T) {
	r := startEdges(t, true)
	resp := envoyCheck(t, r, "GET", "/orders/7", map[string]string{"authorization": "Bearer " + r.mint("bob")})
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK || headerOf(resp.GetOkResponse().GetHeaders(), "x-rolecall-subject") != "bob" {
		t.Errorf("dry run: %v", resp)
	}
	resp = envoyCheck(t, r, "GET", "/orders/7", nil)
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Errorf("dry run without a token: %v", resp)
	}
}

func headerOf(hs []*corev3.HeaderValueOption, name string) string {
	for _, h := range hs {
		if h.GetHeader().GetKey() == name {
			return h.GetHeader().GetValue()
		}
	}
	return ""
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}
