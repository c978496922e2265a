package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestNginxAuthRequest puts a real nginx, configured with
// deploy/nginx/nginx.conf, in front of a tiny upstream, with rolecall's HTTP
// auth endpoint deciding every request: 200 with the identity the upstream
// sees, 401 without a token, 403 for a token without permission.
func TestNginxAuthRequest(t *testing.T) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("nginx is not installed; .ci/run installs it")
		}
		t.Skip("nginx is not installed (apt-get install nginx-light); CI installs it and runs this test")
	}
	dir := t.TempDir()

	// The development issuer and a token per user.
	devAddr := startDevIssuer(t, freeAddr(t))
	mint := func(sub string) string {
		code, tok, errOut := runCmd(t, "dev-issuer", "token", "--addr", devAddr, "--sub", sub, "--aud", "bookstore", "--scope", "read:order")
		if code != 0 {
			t.Fatalf("mint: %s", errOut)
		}
		return strings.TrimSpace(tok)
	}

	// rolecall with a route table, its HTTP auth endpoint on a free port.
	authzAddr := freeAddr(t)
	cfg := filepath.Join(dir, "rolecall.yaml")
	abs, _ := filepath.Abs(bookstore)
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
policy:
  upstream: %s
issuers:
  - issuer: http://%s
    audiences: [bookstore]
authz:
  address: %s
  routes:
    - methods: [GET]
      path: /orders/{id}
      resource: https://api.store.io/orders
      action: read:order
    - path: /healthz
      public: true
`, abs, devAddr, authzAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startServe(t, dir, "--config", cfg, "--admin-addr", "")
	defer d.stop()
	d.waitHealth(t, healthpb.HealthCheckResponse_SERVING)

	// The upstream answers with the identity headers it received.
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "subject=%s scopes=%s", r.Header.Get("X-Rolecall-Subject"), r.Header.Get("X-Rolecall-Scopes"))
	}))
	defer app.Close()

	// nginx with the repository's config, moved to free ports.
	conf, err := os.ReadFile("../../deploy/nginx/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	nginxAddr := freeAddr(t)
	conf = []byte(strings.NewReplacer(
		"127.0.0.1:8080", nginxAddr,
		"127.0.0.1:8081", strings.TrimPrefix(app.URL, "http://"),
		"127.0.0.1:50053", authzAddr,
	).Replace(string(conf)))
	prefix := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(filepath.Join(prefix, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(prefix, "nginx.conf"), conf, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-e", "stderr", "-p", prefix, "-c", "nginx.conf", "-g", "daemon off;")
	nginxLogs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = nginxLogs, nginxLogs
	// nginx forks workers that share its output: run it in a process group of
	// its own and stop the whole group, and never wait long for its output.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			errLog, _ := os.ReadFile(filepath.Join(prefix, "logs", "error.log"))
			t.Logf("nginx output:\n%s\nerror.log:\n%s", nginxLogs, errLog)
		}
	}()
	waitListening(t, nginxAddr)

	alice, bob := mint("alice"), mint("bob")
	client := &http.Client{Timeout: 10 * time.Second}
	tests := []struct {
		name    string
		path    string
		headers map[string]string
		status  int
		body    string
		www     string
	}{
		{"a permitted token reaches the app with its identity", "/orders/7", map[string]string{"Authorization": "Bearer " + alice}, 200, "subject=alice scopes=read:order", ""},
		{"a forged identity header is replaced", "/orders/7", map[string]string{"Authorization": "Bearer " + alice, "X-Rolecall-Subject": "root"}, 200, "subject=alice", ""},
		{"no token", "/orders/7", nil, 401, "", `Bearer error="invalid_token"`},
		{"a token without permission", "/orders/7", map[string]string{"Authorization": "Bearer " + bob}, 403, "", ""},
		{"a public route needs no token", "/healthz", nil, 200, "subject= scopes=", ""},
		{"a forged identity on a public route is dropped", "/healthz", map[string]string{"X-Rolecall-Subject": "root"}, 200, "subject= scopes=", ""},
		{"no route", "/admin", map[string]string{"Authorization": "Bearer " + alice}, 403, "", ""},
		{"no bypass through an encoded path", "/healthz/..%2Forders/7", nil, 403, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, "http://"+nginxAddr+tt.path, nil)
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tt.status, body)
			}
			if tt.body != "" && !strings.Contains(string(body), tt.body) {
				t.Errorf("the app saw %q, want %q", body, tt.body)
			}
			if tt.www != "" && !strings.Contains(resp.Header.Get("WWW-Authenticate"), tt.www) {
				t.Errorf("WWW-Authenticate = %q, want %q", resp.Header.Get("WWW-Authenticate"), tt.www)
			}
		})
	}
}
