package grpcapi_test

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rolecall/rolecall/decide"
	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
	"github.com/rolecall/rolecall/grpcapi"
	"github.com/rolecall/rolecall/internal/rctest"
	"github.com/rolecall/rolecall/token"
	"github.com/rolecall/rolecall/token/devissuer"
)

const stytchProject = "project-test-1"

type tokenRig struct {
	*testServer
	logto, stytch, generic *devissuer.Issuer
}

// startWithIssuers runs the server with three issuers on real loopback JWKS
// servers, one per authorization mode, over the bookstore policy.
func startWithIssuers(t *testing.T) *tokenRig {
	t.Helper()
	issuer := func(alg string) (*devissuer.Issuer, string) {
		di, err := devissuer.New(devissuer.Options{Algorithm: alg})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(di.Handler())
		t.Cleanup(srv.Close)
		di.SetIssuer(srv.URL)
		return di, srv.URL
	}
	logto, logtoURL := issuer("ES384")
	stytch, stytchURL := issuer("RS256")
	stytch.SetIssuer("stytch.com/" + stytchProject)
	generic, _ := issuer("ES256")
	v, err := token.New([]token.IssuerConfig{
		{Issuer: logtoURL, Profile: token.Logto, Audiences: []string{orders}},
		{Issuer: stytch.Issuer(), Profile: token.Stytch, JWKSURL: stytchURL + "/jwks", Audiences: []string{stytchProject}},
		{Issuer: generic.Issuer(), Profile: token.Generic, Audiences: []string{"bookstore"}, Claims: token.ClaimNames{Org: "org"}},
	}, token.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.RefreshKeys(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	engine := rctest.Bookstore(t)
	ts := startOpts(t, decide.New(engine, decide.Options{Tokens: v}), grpcapi.Options{GracePeriod: time.Second})
	return &tokenRig{testServer: ts, logto: logto, stytch: stytch, generic: generic}
}

func mint(t *testing.T, di *devissuer.Issuer, claims map[string]any, opts ...devissuer.MintOption) string {
	t.Helper()
	if _, ok := claims["exp"]; !ok {
		claims["exp"] = time.Now().Add(time.Hour).Unix()
	}
	tok, err := di.Mint(claims, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestValidateTokenAuthorizationModes(t *testing.T) {
	r := startWithIssuers(t)
	logtoAlice := mint(t, r.logto, map[string]any{"sub": "alice", "client_id": "web", "aud": orders, "scope": "read:order"})
	logtoOrg := mint(t, r.logto, map[string]any{"sub": "dave", "client_id": "web", "aud": "urn:logto:organization:acme", "scope": "invite:member"})
	stytchErin := mint(t, r.stytch, map[string]any{
		"sub": "member-erin", "aud": []string{stytchProject},
		"https://stytch.com/session":      map[string]any{"roles": []string{"stytch_member", "limited_admin"}},
		"https://stytch.com/organization": map[string]any{"organization_id": "initech"},
	}, devissuer.WithType("JWT"))
	genericDave := mint(t, r.generic, map[string]any{"sub": "dave", "aud": "bookstore"})

	const rev = "bookstore-2026-11-20.1"
	tests := []struct {
		name  string
		token string
		check *rolecallv1.AuthorizationCheck
		want  *rolecallv1.CheckResponse
	}{
		{"scopes: the audience and scope grant", logtoAlice, &rolecallv1.AuthorizationCheck{Resource: orders, Action: "read:order"},
			&rolecallv1.CheckResponse{Allowed: true, Reason: rolecallv1.Reason_REASON_GRANTED, PolicyRevision: rev}},
		{"scopes: a scope the token lacks", logtoAlice, &rolecallv1.AuthorizationCheck{Resource: orders, Action: "write:order"},
			&rolecallv1.CheckResponse{Reason: rolecallv1.Reason_REASON_NO_PERMISSION, PolicyRevision: rev}},
		{"scopes: another resource than the audience", logtoAlice, &rolecallv1.AuthorizationCheck{Resource: "https://api.store.io/products", Action: "read:order"},
			&rolecallv1.CheckResponse{Reason: rolecallv1.Reason_REASON_NO_PERMISSION, PolicyRevision: rev}},
		{"scopes: an organization token's permissions", logtoOrg, &rolecallv1.AuthorizationCheck{Org: "acme", Resource: "organization", Action: "invite:member"},
			&rolecallv1.CheckResponse{Allowed: true, Reason: rolecallv1.Reason_REASON_GRANTED, PolicyRevision: rev}},
		{"token_roles: a carried role grants", stytchErin, &rolecallv1.AuthorizationCheck{Resource: "document", Action: "create"},
			&rolecallv1.CheckResponse{Allowed: true, Reason: rolecallv1.Reason_REASON_GRANTED, MatchedRole: "limited_admin", PolicyRevision: rev}},
		{"token_roles: no carried role grants", stytchErin, &rolecallv1.AuthorizationCheck{Org: "initech", Resource: "document", Action: "delete"},
			&rolecallv1.CheckResponse{Reason: rolecallv1.Reason_REASON_NO_PERMISSION, PolicyRevision: rev}},
		{"token_roles: the organization must be the token's", stytchErin, &rolecallv1.AuthorizationCheck{Org: "acme", Resource: "document", Action: "create"},
			&rolecallv1.CheckResponse{Reason: rolecallv1.Reason_REASON_NOT_A_MEMBER, PolicyRevision: rev}},
		{"policy: the subject's roles in the organization", genericDave, &rolecallv1.AuthorizationCheck{Org: "acme", Resource: "organization", Action: "invite:member"},
			&rolecallv1.CheckResponse{Allowed: true, Reason: rolecallv1.Reason_REASON_GRANTED, MatchedRole: "admin", PolicyRevision: rev}},
		{"policy: another organization, other roles", genericDave, &rolecallv1.AuthorizationCheck{Org: "globex", Resource: "organization", Action: "invite:member"},
			&rolecallv1.CheckResponse{Reason: rolecallv1.Reason_REASON_NO_PERMISSION, PolicyRevision: rev}},
	}
	// An organization token is for its own organization only.
	resp, err := r.api.ValidateToken(t.Context(), &rolecallv1.ValidateTokenRequest{Token: logtoOrg, AuthorizationCheck: &rolecallv1.AuthorizationCheck{Org: "globex", Resource: "organization", Action: "invite:member"}})
	if err != nil || resp.GetError() != rolecallv1.TokenError_TOKEN_ERROR_WRONG_AUDIENCE || resp.GetAuthorization() != nil {
		t.Errorf("acme's organization token used for globex: %v, %v", resp, err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := r.api.ValidateToken(t.Context(), &rolecallv1.ValidateTokenRequest{Token: tt.token, AuthorizationCheck: tt.check})
			if err != nil {
				t.Fatal(err)
			}
			if !resp.GetValid() {
				t.Fatalf("token invalid: %v %s", resp.GetError(), resp.GetErrorDetail())
			}
			got := resp.GetAuthorization()
			if got.GetAllowed() != tt.want.GetAllowed() || got.GetReason() != tt.want.GetReason() || got.GetMatchedRole() != tt.want.GetMatchedRole() || got.GetPolicyRevision() != tt.want.GetPolicyRevision() {
				t.Errorf("authorization = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestValidateTokenAnswers(t *testing.T) {
	r := startWithIssuers(t)
	tok := mint(t, r.logto, map[string]any{"sub": "svc", "client_id": "svc", "aud": orders, "scope": "read:order", "jti": "j1", "iat": time.Now().Unix()})
	resp, err := r.api.ValidateToken(t.Context(), &rolecallv1.ValidateTokenRequest{Token: tok, RequiredScopes: []string{"read:order"}})
	if err != nil {
		t.Fatal(err)
	}
	c := resp.GetClaims()
	if !resp.GetValid() || c.GetSubject() != "svc" || c.GetSubjectType() != rolecallv1.SubjectType_SUBJECT_TYPE_M2M || c.GetTokenId() != "j1" || c.GetExpiresAt() == nil || c.GetIssuedAt() == nil || resp.GetAuthorization() != nil {
		t.Errorf("response = %v", resp)
	}

	// An invalid token is an answer, without claims.
	resp, err = r.api.ValidateToken(t.Context(), &rolecallv1.ValidateTokenRequest{Token: tok, RequiredScopes: []string{"delete:order"}, AuthorizationCheck: &rolecallv1.AuthorizationCheck{Resource: orders, Action: "read:order"}})
	if err != nil || resp.GetValid() || resp.GetError() != rolecallv1.TokenError_TOKEN_ERROR_MISSING_SCOPE || resp.GetClaims() != nil || resp.GetAuthorization() != nil {
		t.Errorf("missing scope: %v, %v", resp, err)
	}
	resp, err = r.api.ValidateToken(t.Context(), &rolecallv1.ValidateTokenRequest{Token: "garbage"})
	if err != nil || resp.GetError() != rolecallv1.TokenError_TOKEN_ERROR_MALFORMED {
		t.Errorf("garbage: %v, %v", resp, err)
	}

	for _, tt := range []struct {
		name string
		req  *rolecallv1.ValidateTokenRequest
		msg  string
	}{
		{"no token", &rolecallv1.ValidateTokenRequest{}, "token: must not be empty"},
		{"a check without resource", &rolecallv1.ValidateTokenRequest{Token: tok, AuthorizationCheck: &rolecallv1.AuthorizationCheck{Action: "a"}}, "authorization_check.resource: must not be empty"},
		{"a long audience", &rolecallv1.ValidateTokenRequest{Token: tok, Audience: strings.Repeat("a", 2000)}, "audience: is 2000 bytes long"},
	} {
		_, err := r.api.ValidateToken(t.Context(), tt.req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tt.msg) {
			t.Errorf("%s: err = %v, want InvalidArgument %q", tt.name, err, tt.msg)
		}
	}

	st, err := r.api.GetPolicyStatus(t.Context(), &rolecallv1.GetPolicyStatusRequest{})
	if err != nil || len(st.GetIssuers()) != 3 || st.GetIssuers()[0].GetKeys() != 1 || st.GetIssuers()[0].GetFetchedAt() == nil {
		t.Errorf("issuer status = %v, %v", st.GetIssuers(), err)
	}
}

func TestValidateTokenWithoutIssuers(t *testing.T) {
	ts := start(t, rctest.Bookstore(t), nil, "")
	_, err := ts.api.ValidateToken(t.Context(), &rolecallv1.ValidateTokenRequest{Token: "a.b.c"})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("err = %v, want FailedPrecondition", err)
	}
}

func TestTokenCodesMatchProto(t *testing.T) {
	for c := token.OK + 1; c <= token.KeysUnavailable; c++ {
		if got, want := rolecallv1.TokenError(c).String(), "TOKEN_ERROR_"+c.String(); got != want {
			t.Errorf("token code %d is %s in the proto, want %s", c, got, want)
		}
	}
	if n := len(rolecallv1.TokenError_name); n != int(token.KeysUnavailable)+1 {
		t.Errorf("the proto has %d token errors, token %d", n, token.KeysUnavailable+1)
	}
}

// Health waits for keys: a policy alone is not enough when issuers are
// configured.
func TestHealthNeedsKeys(t *testing.T) {
	v, err := token.New([]token.IssuerConfig{{Issuer: "https://down.invalid", JWKSURL: "http://127.0.0.1:1/jwks", Audiences: []string{"a"}}}, token.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpcapi.New(decide.New(rctest.Bookstore(t), decide.Options{Tokens: v}), grpcapi.Options{})
	if serving := srv.Serving(); serving {
		t.Error("SERVING with an issuer that has no keys")
	}
	srv2 := grpcapi.New(decide.New(rctest.Bookstore(t), decide.Options{}), grpcapi.Options{})
	if !srv2.Serving() {
		t.Error("not SERVING with a policy and no issuers")
	}
}
