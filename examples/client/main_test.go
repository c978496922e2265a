package main

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rolecall/rolecall/client"
	"github.com/rolecall/rolecall/decide"
	"github.com/rolecall/rolecall/grpcapi"
	"github.com/rolecall/rolecall/internal/rctest"
)

// startRolecall serves examples/bookstore.yaml in process and returns a
// Client of it.
func startRolecall(t *testing.T) *client.Client {
	t.Helper()
	_, conn := rctest.Bufconn(t, decide.New(rctest.Bookstore(t), decide.Options{}), grpcapi.Options{})
	return client.New(conn)
}

func TestCheck(t *testing.T) {
	rc := startRolecall(t)
	for _, tt := range []struct {
		subject string
		code    int
		out     string
	}{
		{"alice", 0, "allowed: GRANTED by role order_admin (policy revision bookstore-2026-11-20.1)\n"},
		{"bob", 1, "denied: NO_PERMISSION (policy revision bookstore-2026-11-20.1)\n"},
		{"", 2, "error: rolecall check: rpc error: code = InvalidArgument desc = subject: must not be empty\n"},
	} {
		var out strings.Builder
		code := check(t.Context(), rc, client.Query{Subject: tt.subject, Resource: ordersResource, Action: "read:order"}, &out)
		if code != tt.code || out.String() != tt.out {
			t.Errorf("check(%q) = %d %q, want %d %q", tt.subject, code, out.String(), tt.code, tt.out)
		}
	}
}

func TestOrdersAPI(t *testing.T) {
	api := ordersAPI(startRolecall(t))
	for _, tt := range []struct {
		method, path, user string
		code               int
		body               string
	}{
		{"GET", "/orders/42", "alice", 200, "order 42\n"},
		{"GET", "/orders/42", "bob", 403, `{"error":"forbidden","reason":"NO_PERMISSION"}` + "\n"},
		{"POST", "/orders", "carol", 201, "order created\n"},
		{"POST", "/orders", "alice", 201, "order created\n"},
		{"POST", "/orders", "bob", 403, `{"error":"forbidden","reason":"NO_PERMISSION"}` + "\n"},
		{"GET", "/orders/42", "", 401, `{"error":"unauthenticated"}` + "\n"},
		{"GET", "/healthz", "", 200, "ok\n"},
		{"GET", "/nowhere", "", 404, "404 page not found\n"},
		{"DELETE", "/orders/42", "alice", 405, "Method Not Allowed\n"},
	} {
		req := httptest.NewRequest(tt.method, tt.path, nil)
		if tt.user != "" {
			req.Header.Set("X-User", tt.user)
		}
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		if rec.Code != tt.code || rec.Body.String() != tt.body {
			t.Errorf("%s %s as %q = %d %q, want %d %q", tt.method, tt.path, tt.user, rec.Code, rec.Body.String(), tt.code, tt.body)
		}
	}
}

func TestLoopback(t *testing.T) {
	for in, want := range map[string]string{":8080": "127.0.0.1:8080", "0.0.0.0:8080": "0.0.0.0:8080", "[::1]:8080": "[::1]:8080"} {
		if got := loopback(in); got != want {
			t.Errorf("loopback(%q) = %q, want %q", in, got, want)
		}
	}
}
