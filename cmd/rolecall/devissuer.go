package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rolecall/rolecall/token/devissuer"
)

const defaultDevIssuerAddr = "127.0.0.1:8400"

func devIssuer(ctx context.Context, args []string, sio stdio) error {
	if len(args) > 0 && args[0] == "token" {
		return devIssuerToken(ctx, args[1:], sio)
	}
	fs := newFlags("dev-issuer", "dev-issuer [--addr 127.0.0.1:8400] [--alg ES256] | dev-issuer token [flags]",
		`NOT FOR PRODUCTION. A development token issuer for demos and tests: it
generates a signing key in memory at start and, on loopback, serves its key
set (/jwks), an OIDC discovery document (/.well-known/openid-configuration)
and POST /token, which signs any claims it is given. Anyone who can reach it
can mint tokens, so it refuses to listen beyond loopback.

"rolecall dev-issuer token" asks a running dev issuer for a token.`,
		`  rolecall dev-issuer --addr 127.0.0.1:8400
  rolecall dev-issuer token --sub alice --client-id web --aud https://api.store.io/orders --scope read:order`,
		sio.err)
	addr := fs.String("addr", defaultDevIssuerAddr, "loopback `address` to listen on")
	alg := fs.String("alg", "ES256", "signing `algorithm`: "+strings.Join(devissuer.Algorithms(), ", "))
	iss := fs.String("issuer", "", "the iss of minted tokens (default: http://ADDR)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return usageError("--addr %q: %v", *addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return usageError("--addr %q: the development issuer listens on loopback only", *addr)
	}
	di, err := devissuer.New(devissuer.Options{Algorithm: *alg})
	if err != nil {
		return usageError("%v", err)
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	if *iss == "" {
		*iss = "http://" + l.Addr().String()
	}
	di.SetIssuer(*iss)
	fmt.Fprintf(sio.err, "rolecall dev-issuer: NOT FOR PRODUCTION. Issuer %s (%s, key %s); key set at http://%s/jwks\n",
		*iss, di.Algorithm(), di.KeyID(), l.Addr())

	return serveHTTP(ctx, &http.Server{Handler: di.Handler(), ReadHeaderTimeout: 5 * time.Second}, l, 5*time.Second)
}

func devIssuerToken(ctx context.Context, args []string, sio stdio) error {
	fs := newFlags("dev-issuer token", "dev-issuer token [flags]",
		`Ask a running development issuer for a token and print it. Claims come
from the flags and from --claims (a JSON object); flags win.`,
		`  rolecall dev-issuer token --sub alice --client-id web --aud https://api.store.io/orders --scope "read:order write:order"
  rolecall dev-issuer token --typ JWT --claims '{"sub": "erin", "https://stytch.com/session": {"roles": ["limited_admin"]}}'`,
		sio.err)
	addr := fs.String("addr", defaultDevIssuerAddr, "the dev issuer's `address`")
	sub := fs.String("sub", "", "subject")
	clientID := fs.String("client-id", "", "client_id")
	var auds stringList
	fs.Var(&auds, "aud", "audience; repeatable")
	scope := fs.String("scope", "", "space-separated scopes")
	org := fs.String("org", "", "organization_id")
	ttl := fs.Duration("ttl", time.Hour, "lifetime: exp = now + ttl")
	typ := fs.String("typ", "", `typ header (default "at+jwt")`)
	claimsJSON := fs.String("claims", "", "more claims, as a JSON `object`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	claims := map[string]any{}
	if *claimsJSON != "" {
		if err := json.Unmarshal([]byte(*claimsJSON), &claims); err != nil {
			return usageError("--claims: %v", err)
		}
	}
	for name, v := range map[string]string{"sub": *sub, "client_id": *clientID, "scope": *scope, "organization_id": *org} {
		if v != "" {
			claims[name] = v
		}
	}
	switch len(auds) {
	case 0:
	case 1:
		claims["aud"] = auds[0]
	default:
		claims["aud"] = []string(auds)
	}
	now := time.Now()
	if _, ok := claims["iat"]; !ok {
		claims["iat"] = now.Unix()
	}
	if _, ok := claims["exp"]; !ok {
		claims["exp"] = now.Add(*ttl).Unix()
	}
	body, err := json.Marshal(claims)
	if err != nil {
		return err
	}
	u := "http://" + *addr + "/token"
	if *typ != "" {
		u += "?typ=" + url.QueryEscape(*typ)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", u, resp.Status, strings.TrimSpace(string(out)))
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(out, &tr); err != nil || tr.AccessToken == "" {
		return fmt.Errorf("%s: unexpected answer %q", u, out)
	}
	_, err = fmt.Fprintln(sio.out, tr.AccessToken)
	return err
}
