package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rolecall/rolecall/client"
)

func ExampleClient_Check() {
	// A rolecall sidecar serving examples/bookstore.yaml on a Unix socket,
	// as "rolecall serve --unix-socket PATH" would.
	socket, stop := startUnixSidecar()
	defer stop()

	rc, err := client.Dial("unix:" + socket)
	if err != nil {
		panic(err)
	}
	defer rc.Close()

	for _, subject := range []string{"alice", "bob"} {
		d, err := rc.Check(context.Background(), client.Query{
			Subject:  subject,
			Resource: "https://api.store.io/orders",
			Action:   "read:order",
		})
		if err != nil {
			// No decision: deny, and say why (client.IsUnavailable tells
			// rolecall being down or without a policy).
			fmt.Println("error:", err)
			continue
		}
		if d.Allowed {
			fmt.Printf("%s: allowed: %s by role %s (policy revision %s)\n", subject, d.Reason, d.MatchedRole, d.Revision)
		} else {
			fmt.Printf("%s: denied: %s (policy revision %s)\n", subject, d.Reason, d.Revision)
		}
	}
	// Output:
	// alice: allowed: GRANTED by role order_admin (policy revision bookstore-2026-11-20.1)
	// bob: denied: NO_PERMISSION (policy revision bookstore-2026-11-20.1)
}

func ExampleClient_Middleware() {
	socket, stop := startUnixSidecar()
	defer stop()
	rc, err := client.Dial("unix:" + socket)
	if err != nil {
		panic(err)
	}
	defer rc.Close()

	// The mapper says what a request does. The subject comes from the
	// X-User header to keep the example short; a real service takes it from
	// a token it has verified.
	mapper := func(r *http.Request) (client.Query, bool, error) {
		if r.URL.Path == "/healthz" {
			return client.Query{}, true, nil // no check
		}
		if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/orders/") {
			return client.Query{}, false, fmt.Errorf("no rule for %s %s", r.Method, r.URL.Path) // 403
		}
		user := r.Header.Get("X-User")
		if user == "" {
			return client.Query{}, false, client.ErrUnauthenticated // 401
		}
		return client.Query{Subject: user, Resource: "https://api.store.io/orders", Action: "read:order"}, false, nil
	}
	orders := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "order %s\n", strings.TrimPrefix(r.URL.Path, "/orders/"))
	})
	handler := rc.Middleware(mapper)(orders)

	for _, user := range []string{"alice", "bob", ""} {
		req := httptest.NewRequest("GET", "/orders/42", nil)
		req.Header.Set("X-User", user)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		fmt.Printf("%q: %d %s", user, rec.Code, rec.Body)
	}
	// Output:
	// "alice": 200 order 42
	// "bob": 403 {"error":"forbidden","reason":"NO_PERMISSION"}
	// "": 401 {"error":"unauthenticated"}
}

func ExampleClient_UnaryServerInterceptor() {
	socket, stop := startUnixSidecar()
	defer stop()
	rc, err := client.Dial("unix:" + socket)
	if err != nil {
		panic(err)
	}
	defer rc.Close()

	// The mapper says what a call does. The subject comes from the x-user
	// metadata to keep the example short; a real service takes it from a
	// token it has verified.
	mapper := func(ctx context.Context, method string, req any) (client.Query, bool, error) {
		switch method {
		case "/grpc.health.v1.Health/Check":
			return client.Query{}, true, nil // no check
		case "/bookstore.v1.Orders/GetOrder":
			users := metadata.ValueFromIncomingContext(ctx, "x-user")
			if len(users) != 1 {
				return client.Query{}, false, client.ErrUnauthenticated // UNAUTHENTICATED
			}
			return client.Query{Subject: users[0], Resource: "https://api.store.io/orders", Action: "read:order"}, false, nil
		}
		return client.Query{}, false, fmt.Errorf("no rule for %s", method) // PERMISSION_DENIED
	}
	intercept := rc.UnaryServerInterceptor(mapper)
	// A service installs it when it builds its server:
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(intercept))
	defer srv.Stop()

	// Here, calls go through it directly, as the server would make them.
	getOrder := func(ctx context.Context, req any) (any, error) { return "order 42", nil }
	info := &grpc.UnaryServerInfo{FullMethod: "/bookstore.v1.Orders/GetOrder"}
	for _, user := range []string{"alice", "bob"} {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-user", user))
		resp, err := intercept(ctx, "request", info, getOrder)
		if err != nil {
			s := status.Convert(err)
			fmt.Printf("%s: %s: %s\n", user, s.Code(), s.Message())
			continue
		}
		fmt.Printf("%s: %v\n", user, resp)
	}
	// Output:
	// alice: order 42
	// bob: PermissionDenied: permission denied: NO_PERMISSION
}
