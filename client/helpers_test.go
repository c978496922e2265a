package client_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/rolecall/rolecall/client"
	"github.com/rolecall/rolecall/decide"
	"github.com/rolecall/rolecall/grpcapi"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
)

const (
	orders   = "https://api.store.io/orders"
	revision = "bookstore-2026-11-20.1"
)

// loadBookstore returns an engine serving examples/bookstore.yaml.
func loadBookstore() (*pdp.Engine, error) {
	data, err := os.ReadFile(filepath.Join("..", "examples", "bookstore.yaml"))
	if err != nil {
		return nil, err
	}
	snap, err := policyfile.Compile(data, policyfile.YAML)
	if err != nil {
		return nil, err
	}
	e := &pdp.Engine{}
	e.Swap(snap)
	return e, nil
}

func bookstore(t testing.TB) *pdp.Engine {
	t.Helper()
	e, err := loadBookstore()
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// serve runs a whole rolecall server in process on lis until stop is
// called; stop returns what Serve returned.
func serve(engine *pdp.Engine, lis net.Listener) (stop func() error) {
	srv := grpcapi.New(decide.New(engine, decide.Options{}), grpcapi.Options{GracePeriod: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	return func() error {
		cancel()
		return <-done
	}
}

// serveT is serve with the server stopped, and its error reported, at the
// end of the test.
func serveT(t *testing.T, engine *pdp.Engine, lis net.Listener) {
	t.Helper()
	stop := serve(engine, lis)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

// startBufconn runs a rolecall server on an in-memory listener and returns a
// Client of it, made with New over a connection the test owns.
func startBufconn(t *testing.T, engine *pdp.Engine) *client.Client {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	serveT(t, engine, lis)
	conn := bufconnClient(t, lis)
	return client.New(conn)
}

func bufconnClient(t *testing.T, lis *bufconn.Listener) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// startUnixSidecar runs rolecall with the bookstore policy on a Unix socket
// in a new temporary directory, for the examples, which have no testing.T.
func startUnixSidecar() (socket string, stop func()) {
	dir, err := os.MkdirTemp("", "rolecall-example")
	if err != nil {
		panic(err)
	}
	engine, err := loadBookstore()
	if err != nil {
		panic(err)
	}
	socket = filepath.Join(dir, "rolecall.sock")
	lis, err := net.Listen("unix", socket)
	if err != nil {
		panic(err)
	}
	stopServer := serve(engine, lis)
	return socket, func() {
		if err := stopServer(); err != nil {
			fmt.Println("Serve:", err)
		}
		_ = os.RemoveAll(dir)
	}
}

// downClient returns a Client whose connection is closed: rolecall is gone.
func downClient(t *testing.T) *client.Client {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	conn := bufconnClient(t, lis)
	_ = conn.Close()
	_ = lis.Close()
	return client.New(conn)
}
