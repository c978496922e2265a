package devissuer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// maxTokenRequest bounds the POST /token body; claims for a demo token are a
// few hundred bytes, and the bound keeps a stray client from exhausting memory.
const maxTokenRequest = 64 << 10

// Handler serves the issuer over HTTP for demos and tests. It has no
// authentication at all: anyone who can reach it can mint tokens, which is
// why it must only listen on loopback or inside a test.
//
//	GET  /jwks                              the JWKS, cacheable for 300 s
//	GET  /.well-known/openid-configuration  issuer, jwks_uri and the algorithm
//	POST /token                             JSON object of claims in, {"access_token","token_type"} out;
//	                                        ?typ=JWT sets the typ header (?typ= omits it)
//
// Other paths get 404 and other methods on these paths 405.
func (i *Issuer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jwks", i.serveJWKS)
	mux.HandleFunc("GET /.well-known/openid-configuration", i.serveDiscovery)
	mux.HandleFunc("POST /token", i.serveToken)
	return mux
}

func (i *Issuer) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	// A real issuer lets verifiers cache the JWKS; keeping that here lets
	// demos exercise rolecall's caching and refresh-on-unknown-kid paths.
	w.Header().Set("Cache-Control", "max-age=300")
	_, _ = w.Write(i.JWKS())
}

func (i *Issuer) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	// The base URL comes from the request so the document is right whatever
	// address the listener or httptest picked.
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	writeJSON(w, map[string]any{
		"issuer":                                i.Issuer(),
		"jwks_uri":                              scheme + "://" + r.Host + "/jwks",
		"id_token_signing_alg_values_supported": []string{i.Algorithm()},
	})
}

func (i *Issuer) serveToken(w http.ResponseWriter, r *http.Request) {
	claims, err := decodeClaims(http.MaxBytesReader(w, r.Body, maxTokenRequest))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var opts []MintOption
	if q := r.URL.Query(); q.Has("typ") {
		opts = append(opts, WithType(q.Get("typ")))
	}
	tok, err := i.Mint(claims, opts...)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// RFC 6749 §5.1: token responses must not be cached.
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, map[string]string{"access_token": tok, "token_type": "Bearer"})
}

func decodeClaims(body io.Reader) (map[string]any, error) {
	dec := json.NewDecoder(body)
	// Keep numbers verbatim so large integer claims survive the round trip
	// instead of passing through float64.
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		return nil, bodyError(err, "request body must be a JSON object of claims")
	}
	// "null" decodes into a nil map without error, but is not an object.
	if claims == nil {
		return nil, errors.New("request body must be a JSON object of claims, got null")
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, bodyError(err, "request body must hold a single JSON object of claims")
	}
	return claims, nil
}

// bodyError reports an oversized body as such rather than as the JSON
// syntax error the truncation causes.
func bodyError(err error, msg string) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return fmt.Errorf("request body exceeds %d bytes: %w", tooBig.Limit, err)
	}
	if err == nil {
		return errors.New(msg)
	}
	return fmt.Errorf("%s: %w", msg, err)
}

func writeJSON(w http.ResponseWriter, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		http.Error(w, fmt.Sprintf("encode response: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(buf.Bytes())
}
