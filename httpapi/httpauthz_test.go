package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rolecall/rolecall/httpapi"
	"github.com/rolecall/rolecall/internal/rctest"
)

func TestHTTPAuthzEndpoint(t *testing.T) {
	e := rctest.NewEnforcer(t, false)
	hs := httptest.NewServer(httpapi.AuthzHandler(e.Decider))
	t.Cleanup(hs.Close)
	alice, bob := "Bearer "+e.Mint("alice"), "Bearer "+e.Mint("bob")
	tests := []struct {
		name, method, path string
		headers            map[string]string
		status             int
		subject            string
	}{
		{"nginx headers, allowed", "GET", "/v1/authz", map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/orders/7", "Authorization": alice}, 200, "alice"},
		{"nginx headers, denied", "GET", "/v1/authz", map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/orders/7", "Authorization": bob}, 403, ""},
		{"Traefik headers", "GET", "/v1/authz", map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/orders/7", "Authorization": alice}, 200, "alice"},
		{"Envoy path prefix", "GET", "/v1/authz/orders/7", map[string]string{"Authorization": alice}, 200, "alice"},
		{"Envoy path prefix with another method", "POST", "/v1/authz/orgs/acme/members", map[string]string{"Authorization": "Bearer " + e.Mint("dave")}, 200, "dave"},
		{"no token", "GET", "/v1/authz", map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/orders/7"}, 401, ""},
		{"a public route", "GET", "/v1/authz", map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/healthz"}, 200, ""},
		{"no original URI", "GET", "/v1/authz", map[string]string{"Authorization": alice}, 403, ""},
		{"a forged subject is not echoed", "GET", "/v1/authz", map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/healthz", "X-Rolecall-Subject": "root"}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, hs.URL+tt.path, nil)
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != tt.status || resp.Header.Get("X-Rolecall-Subject") != tt.subject {
				t.Errorf("%d subject %q, want %d %q", resp.StatusCode, resp.Header.Get("X-Rolecall-Subject"), tt.status, tt.subject)
			}
			if _, sent := resp.Header["X-Rolecall-Org"]; tt.status == 200 && !sent {
				t.Error("an allow does not send every identity header (empty when unknown)")
			}
			if tt.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Bearer error="invalid_token"`) {
				t.Errorf("401 without a Bearer challenge: %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}
