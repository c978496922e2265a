package grpcapi_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rolecall/rolecall/decide"
	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
	"github.com/rolecall/rolecall/grpcapi"
	"github.com/rolecall/rolecall/internal/rctest"
	"github.com/rolecall/rolecall/internal/testcerts"
)

// lockedBuffer collects logs written by the server while the test reads them.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestGRPCMutualTLSWithReload serves gRPC over mutual TLS on a loopback
// listener: a client with a certificate from the client CA is answered, one
// without a certificate or with one from another CA is refused, and a
// server certificate replaced on disk is used by the next connection, while
// a broken replacement leaves the last good one in use.
func TestGRPCMutualTLSWithReload(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA, otherCA := testcerts.NewCA(t, "server CA"), testcerts.NewCA(t, "client CA"), testcerts.NewCA(t, "other CA")
	files := grpcapi.TLSFiles{CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key"), ClientCAFile: filepath.Join(dir, "ca.crt")}
	certPEM, keyPEM, firstSerial := serverCA.Issue(t, "rolecall", false)
	testcerts.WriteFile(t, "", files.CertFile, certPEM)
	testcerts.WriteFile(t, "", files.KeyFile, keyPEM)
	testcerts.WriteFile(t, "", files.ClientCAFile, clientCA.PEM)

	var logs lockedBuffer
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lis, err := grpcapi.TLSListener(tcp, files, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	addr := tcp.Addr().String()
	startWith(t, decide.New(rctest.Bookstore(t), decide.Options{}), grpcapi.Options{GracePeriod: time.Second}, lis, addr)

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(serverCA.PEM)
	clientPair := func(ca *testcerts.CA) []tls.Certificate {
		c, k, _ := ca.Issue(t, "app", true)
		pair, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{pair}
	}
	good := clientPair(clientCA)

	// check dials a fresh connection and makes one Check; it returns the
	// serial of the server certificate it saw.
	check := func(certs []tls.Certificate) (int64, error) {
		var serial int64
		cfg := &tls.Config{RootCAs: roots, Certificates: certs, VerifyConnection: func(cs tls.ConnectionState) error {
			serial = cs.PeerCertificates[0].SerialNumber.Int64()
			return nil
		}}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		resp, err := rolecallv1.NewPolicyDecisionServiceClient(conn).Check(t.Context(), &rolecallv1.CheckRequest{Subject: "carol", Resource: orders, Action: "delete:order"})
		if err == nil && !resp.GetAllowed() {
			t.Errorf("Check over TLS = %v, want allowed", resp)
		}
		return serial, err
	}

	if serial, err := check(good); err != nil || serial != firstSerial {
		t.Fatalf("client with a good certificate: serial %d, err %v; want %d, nil", serial, err, firstSerial)
	}
	if _, err := check(nil); err == nil {
		t.Error("a client without a certificate was answered")
	}
	if _, err := check(clientPair(otherCA)); err == nil {
		t.Error("a client with a certificate from another CA was answered")
	}
	plain, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := rolecallv1.NewPolicyDecisionServiceClient(plain).Check(ctx, &rolecallv1.CheckRequest{Subject: "carol", Resource: orders, Action: "delete:order"}); err == nil {
		t.Error("a plaintext client was answered")
	}

	// Rotate: a new certificate and key arrive on disk.
	certPEM, keyPEM, secondSerial := serverCA.Issue(t, "rolecall", false)
	testcerts.WriteFile(t, "", files.CertFile, certPEM)
	testcerts.WriteFile(t, "", files.KeyFile, keyPEM)
	deadline := time.Now().Add(10 * time.Second)
	for {
		serial, err := check(good)
		if err != nil {
			t.Fatalf("after rotation: %v", err)
		}
		if serial == secondSerial {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after rotation the server still presents serial %d, want %d", serial, secondSerial)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "gRPC TLS certificates reloaded") {
		t.Errorf("the reload is not logged:\n%s", logs.String())
	}

	// A broken replacement (a key that does not match) is refused and
	// reported; the server keeps presenting the last good certificate.
	_, otherKey, _ := serverCA.Issue(t, "rolecall", false)
	testcerts.WriteFile(t, "", files.KeyFile, otherKey)
	time.Sleep(1100 * time.Millisecond) // past the reload check interval
	for range 2 {
		if serial, err := check(good); err != nil || serial != secondSerial {
			t.Fatalf("after a broken rotation: serial %d, err %v; want %d, nil", serial, err, secondSerial)
		}
	}
	if !strings.Contains(logs.String(), "do not load; still serving the previous ones") {
		t.Errorf("the broken rotation is not logged:\n%s", logs.String())
	}
}

func TestTLSListenerBadFiles(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "ca")
	certPEM, keyPEM, _ := ca.Issue(t, "rolecall", false)
	cert, key, garbage := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "garbage")
	testcerts.WriteFile(t, "", cert, certPEM)
	testcerts.WriteFile(t, "", key, keyPEM)
	testcerts.WriteFile(t, "", garbage, []byte("not a certificate"))
	tests := []struct {
		name  string
		files grpcapi.TLSFiles
		want  string
	}{
		{"no key", grpcapi.TLSFiles{CertFile: cert}, "cert_file and key_file are both required"},
		{"missing cert", grpcapi.TLSFiles{CertFile: filepath.Join(dir, "nope.crt"), KeyFile: key}, "nope.crt: no such file"},
		{"cert is garbage", grpcapi.TLSFiles{CertFile: garbage, KeyFile: key}, "cert_file " + garbage},
		{"client CA is garbage", grpcapi.TLSFiles{CertFile: cert, KeyFile: key, ClientCAFile: garbage}, "client_ca_file " + garbage + " holds no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if _, err := grpcapi.TLSListener(l, tt.files, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
