package client_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/test/bufconn"

	"github.com/rolecall/rolecall/client"
	"github.com/rolecall/rolecall/decide"
	"github.com/rolecall/rolecall/grpcapi"
	"github.com/rolecall/rolecall/internal/rctest"
	"github.com/rolecall/rolecall/pdp"
)

const (
	orders   = "https://api.store.io/orders"
	revision = "bookstore-2026-11-20.1"
)

// startBufconn runs a rolecall server on an in-memory listener and returns a
// Client of it, made with New over a connection the test owns.
func startBufconn(t *testing.T, engine *pdp.Engine) *client.Client {
	t.Helper()
	_, conn := rctest.Bufconn(t, decide.New(engine, decide.Options{}), grpcapi.Options{})
	return client.New(conn)
}

// serveT serves engine on lis until the end of the test.
func serveT(t *testing.T, engine *pdp.Engine, lis net.Listener) {
	t.Helper()
	rctest.Serve(t, decide.New(engine, decide.Options{}), grpcapi.Options{}, lis)
}

// startUnixSidecar runs rolecall with the bookstore policy on a Unix socket
// in a new temporary directory, for the examples, which have no testing.T.
func startUnixSidecar() (socket string, stop func()) {
	dir, err := os.MkdirTemp("", "rolecall-example")
	if err != nil {
		panic(err)
	}
	engine, err := rctest.LoadBookstore()
	if err != nil {
		panic(err)
	}
	socket = filepath.Join(dir, "rolecall.sock")
	lis, err := net.Listen("unix", socket)
	if err != nil {
		panic(err)
	}
	_, stopServer := rctest.Start(decide.New(engine, decide.Options{}), grpcapi.Options{}, lis)
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
	conn := rctest.DialBufconn(t, lis)
	_ = conn.Close()
	_ = lis.Close()
	return client.New(conn)
}
