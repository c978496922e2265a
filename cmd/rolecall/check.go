package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rolecall/rolecall/decide"
	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
	"github.com/rolecall/rolecall/internal/v1conv"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
	"github.com/rolecall/rolecall/token"
)

func check(ctx context.Context, args []string, sio stdio) error {
	fs := newFlags("check", "check --subject S [--org O] --resource R --action A [flags]",
		`Ask whether a subject may perform an action on a resource, inside an
organization when --org is set. By default the question goes to a running
server (--addr or --unix-socket); with --policy FILE it is answered locally.

Prints the decision and its reason. Exit code: 0 allowed, 1 denied, 2 error.`,
		`  rolecall check --subject alice --resource https://api.store.io/orders --action read:order
  rolecall check --subject dave --org acme --resource organization --action invite:member --policy examples/bookstore.yaml`,
		sio.err)
	var q pdp.Query
	fs.StringVar(&q.Subject, "subject", "", "subject `id` (user or m2m application); required")
	fs.StringVar(&q.Org, "org", "", "organization `id`; empty for the subject's global roles")
	fs.StringVar(&q.Resource, "resource", "", "resource `id`; required")
	fs.StringVar(&q.Action, "action", "", "`action` on the resource; required")
	srv := registerServerFlags(fs)
	policyPath := fs.String("policy", "", "decide locally from this policy `FILE` instead of asking a server")
	asJSON := fs.Bool("json", false, "print the decision as JSON")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the server")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected arguments %q", fs.Args())
	}
	if err := q.Validate(); err != nil {
		return usageError("--%v", err)
	}

	var d pdp.Decision
	var err error
	if *policyPath != "" {
		d, err = checkLocal(ctx, *policyPath, q)
	} else {
		d, err = checkRemote(ctx, srv, *timeout, q)
	}
	if err != nil {
		return err
	}
	if err := printDecision(sio, d, *asJSON); err != nil {
		return err
	}
	if !d.Allowed {
		return &exitErr{code: exitDeny, err: errSilent}
	}
	return nil
}

// compilePolicyFile reads and compiles a policy file, naming it in errors.
func compilePolicyFile(path string) (*pdp.Snapshot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	snap, err := policyfile.Compile(data, policyfile.DetectFormat(path, data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return snap, nil
}

// localDecider decides from the policy file at path; with no path, from no
// policy at all.
func localDecider(path string, tokens *token.Validator) (*decide.Decider, error) {
	engine := &pdp.Engine{}
	if path != "" {
		snap, err := compilePolicyFile(path)
		if err != nil {
			return nil, err
		}
		engine.Swap(snap)
	}
	return decide.New(engine, decide.Options{Tokens: tokens}), nil
}

func checkLocal(ctx context.Context, path string, q pdp.Query) (pdp.Decision, error) {
	dec, err := localDecider(path, nil)
	if err != nil {
		return pdp.Decision{}, err
	}
	return dec.Check(ctx, q, "")
}

func checkRemote(ctx context.Context, srv *serverFlags, timeout time.Duration, q pdp.Query) (pdp.Decision, error) {
	conn, target, err := srv.dial()
	if err != nil {
		return pdp.Decision{}, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := rolecallv1.NewPolicyDecisionServiceClient(conn).Check(ctx, &rolecallv1.CheckRequest{
		Subject: q.Subject, Org: q.Org, Resource: q.Resource, Action: q.Action,
	})
	if err != nil {
		st := status.Convert(err)
		return pdp.Decision{}, fmt.Errorf("%s: %s: %s", target, st.Code(), st.Message())
	}
	return v1conv.Decision(resp), nil
}

// serverFlags say how the client commands reach a running server.
type serverFlags struct {
	addr, unixSocket       string
	tlsCA, tlsCert, tlsKey string
}

func registerServerFlags(fs *flag.FlagSet) *serverFlags {
	s := &serverFlags{}
	fs.StringVar(&s.addr, "addr", defaultAddr, "server TCP `address`")
	fs.StringVar(&s.unixSocket, "unix-socket", "", "server Unix socket `path` (instead of --addr)")
	fs.StringVar(&s.tlsCA, "tls-ca", "", "connect over TLS, trusting the server certificate's PEM CAs in `file`")
	fs.StringVar(&s.tlsCert, "tls-cert", "", "PEM client certificate `file` for mutual TLS (with --tls-ca and --tls-key)")
	fs.StringVar(&s.tlsKey, "tls-key", "", "PEM private key `file` of --tls-cert")
	return s
}

// dial connects to the server at the TCP address or the Unix socket path,
// over TLS when --tls-ca is set.
func (s *serverFlags) dial() (*grpc.ClientConn, string, error) {
	target := s.addr
	if s.unixSocket != "" {
		target = "unix://" + s.unixSocket
	}
	creds := insecure.NewCredentials()
	if s.tlsCA != "" || s.tlsCert != "" || s.tlsKey != "" {
		cfg, err := s.tlsConfig()
		if err != nil {
			return nil, target, err
		}
		creds = credentials.NewTLS(cfg)
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
	return conn, target, err
}

func (s *serverFlags) tlsConfig() (*tls.Config, error) {
	if s.tlsCA == "" {
		return nil, usageError("--tls-cert and --tls-key need --tls-ca")
	}
	if (s.tlsCert == "") != (s.tlsKey == "") {
		return nil, usageError("--tls-cert and --tls-key go together")
	}
	pem, err := os.ReadFile(s.tlsCA)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: x509.NewCertPool()}
	if !cfg.RootCAs.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--tls-ca: %s holds no PEM certificate", s.tlsCA)
	}
	if s.tlsCert != "" {
		pair, err := tls.LoadX509KeyPair(s.tlsCert, s.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert, --tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

func printDecision(sio stdio, d pdp.Decision, asJSON bool) error {
	reason := d.Reason.String()
	if asJSON {
		enc := json.NewEncoder(sio.out)
		return enc.Encode(struct {
			Allowed        bool   `json:"allowed"`
			Reason         string `json:"reason"`
			MatchedRole    string `json:"matched_role,omitempty"`
			PolicyRevision string `json:"policy_revision"`
		}{d.Allowed, reason, d.MatchedRole, d.Revision})
	}
	if d.Allowed {
		_, err := fmt.Fprintf(sio.out, "allowed: %s by role %s (policy revision %s)\n", reason, d.MatchedRole, d.Revision)
		return err
	}
	_, err := fmt.Fprintf(sio.out, "denied: %s (policy revision %s)\n", reason, d.Revision)
	return err
}
