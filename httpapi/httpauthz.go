package httpapi

import (
	"net/http"
	"strings"

	"github.com/rolecall/rolecall/decide"
)

// authzPath is the HTTP auth endpoint.
const authzPath = "/v1/authz"

// AuthzHandler serves the HTTP auth endpoint, GET or POST /v1/authz, for
// nginx auth_request, Envoy's HTTP ext_authz and Traefik forwardAuth:
//
//   - the original request comes from X-Original-Method and X-Original-URI
//     (nginx) or X-Forwarded-Method and X-Forwarded-Uri (Traefik); without
//     them, from the request itself below /v1/authz (Envoy's path_prefix:
//     GET /v1/authz/orders/7 is GET /orders/7);
//   - the token comes from Authorization.
//
// It answers 200 with the identity headers, 401 with WWW-Authenticate, 403
// with a small JSON body, or 503 when rolecall cannot decide. It returns nil
// when dec has no enforcement options (decide.Options.Authz).
func AuthzHandler(dec *decide.Decider) http.Handler {
	if dec.Authz() == nil {
		return nil
	}
	return &authzHandler{dec: dec}
}

type authzHandler struct {
	dec *decide.Decider
}

func (h *authzHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost && r.Method != http.MethodHead {
		// Envoy's HTTP ext_authz forwards the original method below /v1/authz/.
		if !strings.HasPrefix(r.URL.Path, authzPath+"/") {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
	}
	method := firstHeader(r, "X-Original-Method", "X-Forwarded-Method")
	uri := firstHeader(r, "X-Original-URI", "X-Forwarded-Uri")
	if uri == "" {
		if rest, ok := strings.CutPrefix(r.URL.RequestURI(), authzPath); ok && strings.HasPrefix(rest, "/") {
			uri, method = rest, r.Method
		}
	}
	if method == "" {
		method = r.Method
	}
	v := decide.Verdict{Status: http.StatusForbidden, Reason: "BAD_REQUEST", Detail: "the request names no original URI (X-Original-URI or X-Forwarded-Uri)"}
	if uri != "" {
		v = h.dec.Authorize(r.Context(), "http_authz", decide.Request{
			Method: method,
			URI:    uri,
			Header: func(name string) []string { return r.Header.Values(name) },
		})
	}
	o := h.dec.Authz()
	switch v.Status {
	case http.StatusOK:
		// Every identity header is sent, empty when unknown: proxies such as
		// Traefik replace only the headers the answer carries, so an absent one
		// would leave the client's forged copy in place.
		set, remove := o.IdentityHeaders(v)
		for name, value := range set {
			w.Header().Set(name, value)
		}
		for _, name := range remove {
			w.Header()[http.CanonicalHeaderKey(name)] = []string{""}
		}
		w.WriteHeader(http.StatusOK)
		return
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", v.Challenge())
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(v.Status)
	_, _ = w.Write([]byte(v.DenyBody() + "\n"))
}

func firstHeader(r *http.Request, names ...string) string {
	for _, n := range names {
		if v := r.Header.Get(n); v != "" {
			return v
		}
	}
	return ""
}
