package main

import (
	"strings"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/rolecall/rolecall/internal/testcerts"
)

// TestServeMutualTLS serves gRPC over mutual TLS on loopback and asks it
// with "rolecall check": with the client certificate the answer comes back,
// without one, or without trusting the server's CA, the call fails.
func TestServeMutualTLS(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA := testcerts.NewCA(t, "server CA"), testcerts.NewCA(t, "client CA")
	crt, key, _ := serverCA.Issue(t, "rolecall", false)
	ccrt, ckey, _ := clientCA.Issue(t, "app", true)
	f := func(name string, data []byte) string { return testcerts.WriteFile(t, dir, name, data) }
	srvCert, srvKey, clientCAFile := f("tls.crt", crt), f("tls.key", key), f("client-ca.crt", clientCA.PEM)
	serverCAFile, appCert, appKey := f("server-ca.crt", serverCA.PEM), f("app.crt", ccrt), f("app.key", ckey)

	addr := freeAddr(t)
	d := startServe(t, dir, "--policy", bookstore, "--grpc-addr", addr,
		"--grpc-tls-cert", srvCert, "--grpc-tls-key", srvKey, "--grpc-tls-client-ca", clientCAFile)
	defer d.stop()
	d.waitHealth(t, healthpb.HealthCheckResponse_SERVING) // over the plaintext Unix socket
	if !strings.Contains(d.logs.String(), `security="mutual TLS"`) {
		t.Errorf("the log does not say the TCP listener is mutual TLS:\n%s", d.logs)
	}

	q := []string{"check", "--addr", addr, "--subject", "carol", "--resource", "https://api.store.io/orders", "--action", "delete:order", "--timeout", "3s"}
	code, out, errOut := runCmd(t, append(q, "--tls-ca", serverCAFile, "--tls-cert", appCert, "--tls-key", appKey)...)
	if code != 0 || !strings.HasPrefix(out, "allowed:") {
		t.Fatalf("check over mutual TLS: exit %d, out %q, err %q", code, out, errOut)
	}
	for _, tt := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"plaintext", nil, "server preface"},
		// TLS 1.3 refuses the missing client certificate after the client's
		// handshake is done, so the client sees the alert or a broken pipe.
		{"no client certificate", []string{"--tls-ca", serverCAFile}, ": Unavailable: "},
		{"server CA not trusted", []string{"--tls-ca", clientCAFile, "--tls-cert", appCert, "--tls-key", appKey}, "certificate signed by unknown authority"},
		{"a key without its certificate", []string{"--tls-ca", serverCAFile, "--tls-key", appKey}, "--tls-cert and --tls-key go together"},
	} {
		code, out, errOut := runCmd(t, append(q, tt.extra...)...)
		if code == 0 || strings.Contains(out, "allowed:") || !strings.Contains(errOut, tt.want) {
			t.Errorf("%s: exit %d, out %q, err %q; want a failure saying %q", tt.name, code, out, errOut, tt.want)
		}
	}
}
