// Command client shows rolecall's Go client package: it asks a running
// rolecall for one decision, or serves a tiny orders API that rolecall guards.
//
// Start the server of the README's quick start in one terminal:
//
//	go run ./cmd/rolecall serve --policy examples/bookstore.yaml
//
// Ask it for a decision (exit status 0 allowed, 1 denied, 2 error):
//
//	go run ./examples/client --addr 127.0.0.1:50051 --subject alice --resource https://api.store.io/orders --action read:order
//
// --addr also takes a Unix socket, as unix:/path/to/rolecall.sock. Or serve
// the orders API (a host-less address such as :8080 listens on loopback
// only) and call it from a third terminal:
//
//	go run ./examples/client --serve :8080
//	curl -i -H 'X-User: alice' http://127.0.0.1:8080/orders/42         # 200
//	curl -i -H 'X-User: bob' http://127.0.0.1:8080/orders/42           # 403 NO_PERMISSION
//	curl -i -H 'X-User: carol' -X POST http://127.0.0.1:8080/orders    # 201
//	curl -i http://127.0.0.1:8080/orders/42                            # 401
//
// The API takes the caller from the X-User header to keep the example short.
// A real service must take it from something it has verified, such as an
// access token (rolecall's ValidateToken checks one); anyone can set a
// header.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rolecall/rolecall/client"
)

const ordersResource = "https://api.store.io/orders"

func main() { os.Exit(run()) }

func run() int {
	addr := flag.String("addr", "127.0.0.1:50051", "rolecall's address: host:port or unix:PATH")
	serve := flag.String("serve", "", "serve the orders API on this address (`ADDR`; :8080 means 127.0.0.1:8080) instead of asking once")
	var q client.Query
	flag.StringVar(&q.Subject, "subject", "", "the subject to ask about")
	flag.StringVar(&q.Org, "org", "", "the organization, if any")
	flag.StringVar(&q.Resource, "resource", ordersResource, "the resource")
	flag.StringVar(&q.Action, "action", "", "the action")
	flag.Parse()

	rc, err := client.Dial(*addr)
	if err != nil {
		log.Print(err)
		return 2
	}
	defer rc.Close()
	if *serve != "" {
		if err := serveOrders(rc, loopback(*serve)); err != nil {
			log.Print(err)
			return 2
		}
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return check(ctx, rc, q, os.Stdout)
}

// check prints rolecall's decision on q as "rolecall check" does and returns
// the exit status: 0 allowed, 1 denied, 2 no decision.
func check(ctx context.Context, rc *client.Client, q client.Query, w io.Writer) int {
	d, err := rc.Check(ctx, q)
	switch {
	case client.IsUnavailable(err):
		fmt.Fprintf(w, "error: rolecall is unavailable (not running, or no policy loaded): %v\n", err)
		return 2
	case err != nil:
		fmt.Fprintf(w, "error: %v\n", err)
		return 2
	case d.Allowed:
		fmt.Fprintf(w, "allowed: %s by role %s (policy revision %s)\n", d.Reason, d.MatchedRole, d.Revision)
		return 0
	default:
		fmt.Fprintf(w, "denied: %s (policy revision %s)\n", d.Reason, d.Revision)
		return 1
	}
}

// ordersAPI returns the orders API with every request checked by rolecall.
func ordersAPI(rc *client.Client) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "order %s\n", r.PathValue("id"))
	})
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintln(w, "order created")
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})

	// What each route does, by the mux pattern the request matches.
	actions := map[string]string{
		"GET /orders/{id}": "read:order",
		"POST /orders":     "write:order",
	}
	mapper := func(r *http.Request) (client.Query, bool, error) {
		_, pattern := mux.Handler(r)
		switch pattern {
		case "", "GET /healthz":
			// No route (the mux answers 404 or 405, no handler runs), or
			// a public one.
			return client.Query{}, true, nil
		}
		action, ok := actions[pattern]
		if !ok {
			// A route nobody mapped: forbidden, never open.
			return client.Query{}, false, fmt.Errorf("no action for %s", pattern)
		}
		user := r.Header.Get("X-User") // a real service: the verified token's subject
		if user == "" {
			return client.Query{}, false, client.ErrUnauthenticated
		}
		return client.Query{Subject: user, Resource: ordersResource, Action: action}, false, nil
	}
	return rc.Middleware(mapper)(mux)
}

func serveOrders(rc *client.Client, addr string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: ordersAPI(rc), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Printf("orders API on http://%s, checked by rolecall; try: curl -i -H 'X-User: alice' http://%s/orders/42", lis.Addr(), lis.Addr())
	if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// loopback makes a host-less address such as ":8080" listen on loopback
// only, not on every interface.
func loopback(addr string) string {
	if host, port, err := net.SplitHostPort(addr); err == nil && host == "" {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}
