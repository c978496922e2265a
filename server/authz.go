package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
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

// edgeRequest is a proxied request as an edge sees it.
type edgeRequest struct {
	method, uri string
	// header returns the values of a header, by lower-case name.
	header func(name string) []string
}

// verdict is an edge's answer.
type verdict struct {
	status int    // 200, 401, 403 or 503
	reason string // GRANTED, a deny reason, PUBLIC, NO_ROUTE, BAD_PATH, INVALID_TOKEN, …
	detail string
	// identity, set when the request carried a valid token.
	authenticated bool
	subject, org  string
	scopes        []string
}

// authorizeRequest decides a proxied request: route, bearer token, then the
// check, as the token's issuer is configured to decide it.
func (s *Service) authorizeRequest(ctx context.Context, kind string, req edgeRequest) verdict {
	o := s.authz
	m, err := o.Routes.Match(req.method, req.uri)
	if err != nil {
		return s.dryRun(verdict{status: http.StatusForbidden, reason: "BAD_PATH", detail: err.Error()}, req)
	}
	if m.Route == nil {
		if o.DefaultAllow {
			return verdict{status: http.StatusOK, reason: "NO_ROUTE"}
		}
		return s.dryRun(verdict{status: http.StatusForbidden, reason: "NO_ROUTE", detail: "no route matches " + strings.ToUpper(req.method) + " " + m.Path}, req)
	}
	route := m.Route
	if route.Public {
		return verdict{status: http.StatusOK, reason: "PUBLIC"}
	}
	tok, err := bearerToken(req.header("authorization"))
	if err != nil {
		return s.dryRun(verdict{status: http.StatusUnauthorized, reason: "INVALID_TOKEN", detail: err.Error()}, req)
	}
	if s.tokens == nil {
		return s.dryRun(verdict{status: http.StatusUnauthorized, reason: "INVALID_TOKEN", detail: "no token issuer is configured"}, req)
	}
	org := ""
	switch {
	case route.Org.Header != "":
		if vs := req.header(strings.ToLower(route.Org.Header)); len(vs) > 0 {
			org = vs[0]
		}
	case route.Org.PathParam != "":
		org = m.Param(route.Org.PathParam)
	}
	res := s.tokens.Validate(ctx, tok, token.Request{Audience: o.Audience, OrgHint: org})
	switch {
	case res.Error == token.KeysUnavailable:
		return s.dryRun(verdict{status: http.StatusServiceUnavailable, reason: res.Error.String(), detail: res.Detail}, req)
	case !res.Valid:
		return s.dryRun(verdict{status: http.StatusUnauthorized, reason: "INVALID_TOKEN", detail: res.Error.String() + ": " + res.Detail}, req)
	}
	if route.Org.Token {
		org = res.Claims.Org
	}
	v := verdict{authenticated: true, subject: res.Claims.Subject, org: org, scopes: res.Claims.Scopes}
	start := s.now()
	d, err := s.authorize(res, &rolecallv1.AuthorizationCheck{Org: org, Resource: route.Resource, Action: route.Action})
	var qerr *pdp.QueryError
	switch {
	case errors.As(err, &qerr):
		v.status, v.reason, v.detail = http.StatusForbidden, "BAD_REQUEST", qerr.Error()
		return s.dryRun(v, req)
	case err != nil:
		v.status, v.reason, v.detail = http.StatusServiceUnavailable, "UNAVAILABLE", "no policy loaded"
		return s.dryRun(v, req)
	}
	s.decided(ctx, kind, pdp.Query{Subject: res.Claims.Subject, Org: org, Resource: route.Resource, Action: route.Action}, d, start)
	v.reason = d.Reason.String()
	if d.Allowed {
		v.status = http.StatusOK
		return v
	}
	v.status = http.StatusForbidden
	v.detail = fmt.Sprintf("%s may not %s on %s", res.Claims.Subject, route.Action, route.Resource)
	return s.dryRun(v, req)
}

// dryRun lets a refused request through in dry-run mode, logging what would
// have happened.
func (s *Service) dryRun(v verdict, req edgeRequest) verdict {
	if !s.authz.DryRun || v.status == http.StatusOK {
		return v
	}
	s.log.Info("dry run: allowing a request rolecall would refuse",
		"method", req.method, "uri", req.uri, "status", v.status, "reason", v.reason, "detail", v.detail, "subject", v.subject)
	v.status = http.StatusOK
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

// identityHeaders are the headers an allow sets for the upstream; empty
// values are left out (and removed).
func (o *AuthzOptions) identityHeaders(v verdict) (set map[string]string, remove []string) {
	set = map[string]string{}
	add := func(name, value string) {
		if v.authenticated && value != "" {
			set[name] = value
		} else {
			remove = append(remove, name)
		}
	}
	add(o.SubjectHeader, v.subject)
	add(o.OrgHeader, v.org)
	add(o.ScopesHeader, strings.Join(v.scopes, " "))
	return set, remove
}
