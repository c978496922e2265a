package decide

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/routes"
	"github.com/rolecall/rolecall/token"
)

// AuthzOptions configures the enforcement edges: Envoy ext_authz on the gRPC
// listener and the HTTP auth endpoint for nginx, Envoy and Traefik.
type AuthzOptions struct {
	// Routes map requests to checks. Required.
	Routes *routes.Table
	// DefaultAllow lets requests that match no route through; by default they
	// are denied (403).
	DefaultAllow bool
	// DryRun allows every request and logs the real decision, to try a route
	// table on live traffic.
	DryRun bool
	// Audience the bearer tokens must carry; empty: the issuer's audiences.
	Audience string
	// Identity headers set for the upstream on an allow (and removed from the
	// client's request). Defaults: x-rolecall-subject, x-rolecall-org,
	// x-rolecall-scopes.
	SubjectHeader, OrgHeader, ScopesHeader string
}

func (o *AuthzOptions) withDefaults() {
	if o.SubjectHeader == "" {
		o.SubjectHeader = "x-rolecall-subject"
	}
	if o.OrgHeader == "" {
		o.OrgHeader = "x-rolecall-org"
	}
	if o.ScopesHeader == "" {
		o.ScopesHeader = "x-rolecall-scopes"
	}
	o.SubjectHeader = strings.ToLower(o.SubjectHeader)
	o.OrgHeader = strings.ToLower(o.OrgHeader)
	o.ScopesHeader = strings.ToLower(o.ScopesHeader)
}

// Request is a proxied request as an enforcement edge sees it.
type Request struct {
	Method, URI string
	// Header returns the values of a header, by lower-case name.
	Header func(name string) []string
	// RequestID, when not empty, goes to the decision log.
	RequestID string
}

// Verdict is the answer to a proxied request, in HTTP terms that every edge
// translates.
type Verdict struct {
	Status int    // 200, 401, 403 or 503
	Reason string // GRANTED, a deny reason, PUBLIC, NO_ROUTE, BAD_PATH, INVALID_TOKEN, …
	Detail string
	// The identity, set when the request carried a valid token.
	Authenticated bool
	Subject, Org  string
	Scopes        []string
}

// Authorize decides a proxied request for the edge kind (a decisionlog
// kind): route, bearer token, then the check, as the token's issuer is
// configured to decide it. It needs Options.Authz.
func (d *Decider) Authorize(ctx context.Context, kind string, req Request) Verdict {
	o := d.authz
	m, err := o.Routes.Match(req.Method, req.URI)
	if err != nil {
		return d.dryRun(Verdict{Status: http.StatusForbidden, Reason: "BAD_PATH", Detail: err.Error()}, req)
	}
	if m.Route == nil {
		if o.DefaultAllow {
			return Verdict{Status: http.StatusOK, Reason: "NO_ROUTE"}
		}
		return d.dryRun(Verdict{Status: http.StatusForbidden, Reason: "NO_ROUTE", Detail: "no route matches " + strings.ToUpper(req.Method) + " " + m.Path}, req)
	}
	route := m.Route
	if route.Public {
		return Verdict{Status: http.StatusOK, Reason: "PUBLIC"}
	}
	tok, err := bearerToken(req.Header("authorization"))
	if err != nil {
		return d.dryRun(Verdict{Status: http.StatusUnauthorized, Reason: "INVALID_TOKEN", Detail: err.Error()}, req)
	}
	if d.tokens == nil {
		return d.dryRun(Verdict{Status: http.StatusUnauthorized, Reason: "INVALID_TOKEN", Detail: "no token issuer is configured"}, req)
	}
	org := ""
	switch {
	case route.Org.Header != "":
		if vs := req.Header(strings.ToLower(route.Org.Header)); len(vs) > 0 {
			org = vs[0]
		}
	case route.Org.PathParam != "":
		org = m.Param(route.Org.PathParam)
	}
	res := d.tokens.Validate(ctx, tok, token.Request{Audience: o.Audience, OrgHint: org})
	switch {
	case res.Error == token.KeysUnavailable:
		return d.dryRun(Verdict{Status: http.StatusServiceUnavailable, Reason: res.Error.String(), Detail: res.Detail}, req)
	case !res.Valid:
		return d.dryRun(Verdict{Status: http.StatusUnauthorized, Reason: "INVALID_TOKEN", Detail: res.Error.String() + ": " + res.Detail}, req)
	}
	if route.Org.Token {
		org = res.Claims.Org
	}
	v := Verdict{Authenticated: true, Subject: res.Claims.Subject, Org: org, Scopes: res.Claims.Scopes}
	start := d.now()
	dec, err := d.authorize(res, TokenCheck{Org: org, Resource: route.Resource, Action: route.Action})
	var qerr *pdp.QueryError
	switch {
	case errors.As(err, &qerr):
		v.Status, v.Reason, v.Detail = http.StatusForbidden, "BAD_REQUEST", qerr.Error()
		return d.dryRun(v, req)
	case err != nil:
		v.Status, v.Reason, v.Detail = http.StatusServiceUnavailable, "UNAVAILABLE", "no policy loaded"
		return d.dryRun(v, req)
	}
	d.record(kind, req.RequestID, pdp.Query{Subject: res.Claims.Subject, Org: org, Resource: route.Resource, Action: route.Action}, dec, start)
	v.Reason = dec.Reason.String()
	if dec.Allowed {
		v.Status = http.StatusOK
		return v
	}
	v.Status = http.StatusForbidden
	v.Detail = fmt.Sprintf("%s may not %s on %s", res.Claims.Subject, route.Action, route.Resource)
	return d.dryRun(v, req)
}

// dryRun lets a refused request through in dry-run mode, logging what would
// have happened.
func (d *Decider) dryRun(v Verdict, req Request) Verdict {
	if !d.authz.DryRun || v.Status == http.StatusOK {
		return v
	}
	d.log.Info("dry run: allowing a request rolecall would refuse",
		"method", req.Method, "uri", req.URI, "status", v.Status, "reason", v.Reason, "detail", v.Detail, "subject", v.Subject)
	v.Status = http.StatusOK
	return v
}

// bearerToken takes the token from the Authorization header: exactly one,
// with the Bearer scheme. Envoy joins repeated headers with commas, which a
// token never contains.
func bearerToken(values []string) (string, error) {
	switch {
	case len(values) == 0 || values[0] == "":
		return "", errors.New("no Authorization header")
	case len(values) > 1 || strings.Contains(values[0], ","):
		return "", errors.New("more than one Authorization header")
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(values[0]), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", fmt.Errorf("the Authorization header is not a bearer token")
	}
	if tok == "" || strings.ContainsAny(tok, " \t") {
		return "", errors.New("the bearer token is empty or malformed")
	}
	return tok, nil
}

// IdentityHeaders are the headers an allow sets for the upstream; empty
// values are left out (and removed).
func (o *AuthzOptions) IdentityHeaders(v Verdict) (set map[string]string, remove []string) {
	set = map[string]string{}
	add := func(name, value string) {
		if v.Authenticated && value != "" {
			set[name] = value
		} else {
			remove = append(remove, name)
		}
	}
	add(o.SubjectHeader, v.Subject)
	add(o.OrgHeader, v.Org)
	add(o.ScopesHeader, strings.Join(v.Scopes, " "))
	return set, remove
}

// DenyBody is the small JSON body of a refusal: what, and why.
func (v Verdict) DenyBody() string {
	what := "forbidden"
	if v.Status == http.StatusUnauthorized {
		what = "unauthorized"
	}
	b, _ := json.Marshal(struct {
		Error  string `json:"error"`
		Reason string `json:"reason"`
	}{what, v.Reason})
	return string(b)
}

// Challenge is the WWW-Authenticate value of a 401: the RFC 6750 challenge
// for a missing or invalid token. The description is reduced to characters a
// quoted-string may hold.
func (v Verdict) Challenge() string {
	clean := strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, v.Detail)
	if len(clean) > 200 {
		clean = clean[:200]
	}
	return `Bearer error="invalid_token", error_description="` + clean + `"`
}
