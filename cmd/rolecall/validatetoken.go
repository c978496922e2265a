package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
	"github.com/rolecall/rolecall/grpcapi"
	"github.com/rolecall/rolecall/internal/v1conv"
	"github.com/rolecall/rolecall/token"
)

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func validateToken(ctx context.Context, args []string, sio stdio) error {
	fs := newFlags("validate-token", "validate-token [flags] TOKEN|-",
		`Check a JWT access token: its signature against the issuer's key set, its
expiry, audience, type, scopes and organization. By default the question goes
to a running server (--addr or --unix-socket); with --issuers FILE it is
answered locally. "-" reads the token from standard input.

With --resource and --action, also decide that authorization check for the
token, as its issuer is configured (scopes, token roles or the policy).

Prints the claims or why the token is not valid. Exit code: 0 valid (and
allowed, with a check), 1 invalid or denied, 2 error.`,
		`  rolecall validate-token --scope read:order eyJhbGciOi...
  rolecall dev-issuer token --sub alice | rolecall validate-token -`,
		sio.err)
	req := &rolecallv1.ValidateTokenRequest{}
	fs.StringVar(&req.Audience, "audience", "", "expected `audience` (default: the issuer's configured ones)")
	var scopes stringList
	fs.Var(&scopes, "scope", "required `scope`; repeatable")
	fs.StringVar(&req.Org, "org", "", "the `organization` the token must be for")
	check := &rolecallv1.AuthorizationCheck{}
	fs.StringVar(&check.Resource, "resource", "", "also check this `resource` (with --action)")
	fs.StringVar(&check.Action, "action", "", "the `action` of the check")
	fs.StringVar(&check.Org, "check-org", "", "the `organization` of the check (default: the token's)")
	srv := registerServerFlags(fs)
	var issuers issuerFlags
	issuers.registerFile(fs)
	policyPath := fs.String("policy", "", "with local issuers: the policy `FILE` for checks in the token_roles and policy modes")
	asJSON := fs.Bool("json", false, "print the response as JSON")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError("give the token as one argument, or - to read it from standard input")
	}
	tok := fs.Arg(0)
	if tok == "-" {
		b, err := io.ReadAll(io.LimitReader(sio.in, token.MaxTokenBytes+2))
		if err != nil {
			return err
		}
		tok = string(b)
	}
	req.Token = strings.TrimPrefix(strings.TrimSpace(tok), "Bearer ")
	req.RequiredScopes = scopes
	if check.Resource != "" || check.Action != "" {
		req.AuthorizationCheck = check
	}
	cfgs, err := issuers.configs()
	if err != nil {
		return usageError("%v", err)
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var resp *rolecallv1.ValidateTokenResponse
	if len(cfgs) > 0 {
		resp, err = validateLocal(ctx, cfgs, *policyPath, req)
	} else {
		resp, err = validateRemote(ctx, srv, req)
	}
	if err != nil {
		return err
	}
	if err := printValidation(sio, resp, *asJSON); err != nil {
		return err
	}
	if !resp.GetValid() || (resp.GetAuthorization() != nil && !resp.GetAuthorization().GetAllowed()) {
		return &exitErr{code: exitDeny, err: errSilent}
	}
	return nil
}

// validateLocal validates with a validator of its own. Authorization checks in
// the token_roles and policy modes need policyPath.
func validateLocal(ctx context.Context, cfgs []token.IssuerConfig, policyPath string, req *rolecallv1.ValidateTokenRequest) (*rolecallv1.ValidateTokenResponse, error) {
	v, err := token.New(cfgs, token.Options{})
	if err != nil {
		return nil, usageError("%v", err)
	}
	if err := v.RefreshKeys(ctx, true); err != nil {
		return nil, err
	}
	dec, err := localDecider(policyPath, v)
	if err != nil {
		return nil, err
	}
	res, err := dec.CheckToken(ctx, v1conv.TokenRequest(req))
	if err != nil {
		// Worded as the server would answer, so that both paths read alike.
		st := grpcapi.ErrorStatus(err)
		return nil, fmt.Errorf("%s: %s", st.Code(), st.Message())
	}
	return v1conv.TokenResponse(res), nil
}

func validateRemote(ctx context.Context, srv *serverFlags, req *rolecallv1.ValidateTokenRequest) (*rolecallv1.ValidateTokenResponse, error) {
	conn, target, err := srv.dial()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	resp, err := rolecallv1.NewPolicyDecisionServiceClient(conn).ValidateToken(ctx, req)
	if err != nil {
		st := status.Convert(err)
		return nil, fmt.Errorf("%s: %s: %s", target, st.Code(), st.Message())
	}
	return resp, nil
}

func printValidation(sio stdio, resp *rolecallv1.ValidateTokenResponse, asJSON bool) error {
	if asJSON {
		b, err := protojson.Marshal(resp)
		if err != nil {
			return err
		}
		var out json.RawMessage = b
		return json.NewEncoder(sio.out).Encode(out)
	}
	if !resp.GetValid() {
		_, err := fmt.Fprintf(sio.out, "invalid: %s: %s\n", strings.TrimPrefix(resp.GetError().String(), "TOKEN_ERROR_"), resp.GetErrorDetail())
		return err
	}
	c := resp.GetClaims()
	var b strings.Builder
	b.WriteString("valid\n")
	line := func(name, value string) {
		if value != "" {
			fmt.Fprintf(&b, "  %-11s %s\n", name+":", value)
		}
	}
	line("subject", fmt.Sprintf("%s (%s)", c.GetSubject(), strings.ToLower(strings.TrimPrefix(c.GetSubjectType().String(), "SUBJECT_TYPE_"))))
	line("issuer", c.GetIssuer())
	line("audiences", strings.Join(c.GetAudiences(), " "))
	line("client_id", c.GetClientId())
	line("scopes", strings.Join(c.GetScopes(), " "))
	line("org", c.GetOrg())
	line("roles", strings.Join(c.GetRoles(), " "))
	line("expires_at", c.GetExpiresAt().AsTime().UTC().Format(time.RFC3339))
	if a := resp.GetAuthorization(); a != nil {
		reason := strings.TrimPrefix(a.GetReason().String(), "REASON_")
		switch {
		case a.GetAllowed() && a.GetMatchedRole() != "":
			line("check", fmt.Sprintf("allowed: %s by role %s", reason, a.GetMatchedRole()))
		case a.GetAllowed():
			line("check", "allowed: "+reason+" by the token's scopes")
		default:
			line("check", "denied: "+reason)
		}
	}
	_, err := io.WriteString(sio.out, b.String())
	return err
}
