// Package rctest is the in-process test server the packages' tests share:
// the bookstore example policy, rolecall served over bufconn, and an HTTP
// request helper.
package rctest

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/rolecall/rolecall/decide"
	"github.com/rolecall/rolecall/grpcapi"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
)

// BookstorePath is the path of examples/bookstore.yaml.
func BookstorePath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "examples", "bookstore.yaml")
}

// LoadBookstore returns an engine serving the bookstore example policy, for
// callers without a testing.TB (examples).
func LoadBookstore() (*pdp.Engine, error) {
	data, err := os.ReadFile(BookstorePath())
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

// Bookstore is an engine serving the bookstore example policy.
func Bookstore(t testing.TB) *pdp.Engine {
	t.Helper()
	e, err := LoadBookstore()
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Serve runs a whole rolecall gRPC server on dec over lis until the end of
// the test, when an error from Serve fails the test.
func Serve(t testing.TB, dec *decide.Decider, opts grpcapi.Options, lis net.Listener) *grpcapi.Server {
	t.Helper()
	srv, stop := Start(dec, opts, lis)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv
}

// Start runs a whole rolecall gRPC server on dec over lis until stop is
// called; stop returns what Serve returned. GracePeriod defaults to a
// second.
func Start(dec *decide.Decider, opts grpcapi.Options, lis net.Listener) (srv *grpcapi.Server, stop func() error) {
	if opts.GracePeriod == 0 {
		opts.GracePeriod = time.Second
	}
	srv = grpcapi.New(dec, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	return srv, func() error {
		cancel()
		return <-done
	}
}

// Bufconn serves dec in process over an in-memory listener and returns the
// server and a connection to it; both end with the test, the connection
// first.
func Bufconn(t testing.TB, dec *decide.Decider, opts grpcapi.Options) (*grpcapi.Server, *grpc.ClientConn) {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := Serve(t, dec, opts, lis)
	return srv, DialBufconn(t, lis)
}

// DialBufconn connects to lis; the connection closes at the end of the
// test.
func DialBufconn(t testing.TB, lis *bufconn.Listener) *grpc.ClientConn {
	t.Helper()
	return Dial(t, "passthrough:///bufconn", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
}

// Dial connects to target without TLS; the connection closes at the end of
// the test.
func Dial(t testing.TB, target string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(target, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// Do sends an HTTP request with body and header and returns the answer's
// status and body.
func Do(t testing.TB, method, url string, body []byte, header map[string]string) (int, string) {
	t.Helper()
	resp, b := Send(t, http.DefaultClient, Request(t, method, url, body, header))
	return resp.StatusCode, string(b)
}

// Request builds an HTTP request with body and header, ended with the test.
func Request(t testing.TB, method, url string, body []byte, header map[string]string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return req
}

// Send sends req with client and returns the answer with its body read and
// closed.
func Send(t testing.TB, client *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}
