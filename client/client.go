package client

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
)

// Reasons a Decision gives: rolecall's rolecall.v1.Reason values without the
// REASON_ prefix.
const (
	// A role held by the subject grants the action on the resource.
	ReasonGranted = "GRANTED"
	// The subject is known but none of its effective roles grants the action.
	ReasonNoPermission = "NO_PERMISSION"
	// The subject is neither a member of the organization nor matched by one
	// of its implicit role rules.
	ReasonNotAMember = "NOT_A_MEMBER"
	// The policy has no subject with this id.
	ReasonUnknownSubject = "UNKNOWN_SUBJECT"
	// The policy has no resource with this id.
	ReasonUnknownResource = "UNKNOWN_RESOURCE"
	// The resource does not define this action.
	ReasonUnknownAction = "UNKNOWN_ACTION"
	// The policy has no organization with this id.
	ReasonUnknownOrganization = "UNKNOWN_ORGANIZATION"
)

// Client asks a rolecall sidecar for decisions. It is safe for concurrent
// use; create one per process and share it.
type Client struct {
	api  rolecallv1.PolicyDecisionServiceClient
	conn *grpc.ClientConn // set when Dial made the connection, which Close closes
}

// Dial returns a Client of the rolecall sidecar at target, which is one of
//
//	host:port          TCP, such as "127.0.0.1:50051" or "[::1]:50051"
//	unix:PATH          a Unix socket, such as "unix:/run/rolecall/rolecall.sock";
//	                   a relative PATH is taken from the working directory now
//	unix:///PATH       the same, in URL form
//
// The path is taken literally, not URL-decoded. Other forms, including gRPC
// resolver schemes such as dns:///, are an error: use New with a connection
// of your own for those.
//
// The connection uses insecure transport credentials, as fits a sidecar on
// the same host or pod; opts are applied after that default, so that a
// caller can set TLS credentials, interceptors or any other option. Dial does
// not connect: the first call does, and a call fails with UNAVAILABLE while
// rolecall cannot be reached. Close releases the connection.
func Dial(target string, opts ...grpc.DialOption) (*Client, error) {
	t, err := grpcTarget(target)
	if err != nil {
		return nil, err
	}
	all := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	conn, err := grpc.NewClient(t, all...)
	if err != nil {
		return nil, fmt.Errorf("rolecall: dial %s: %w", target, err)
	}
	return &Client{api: rolecallv1.NewPolicyDecisionServiceClient(conn), conn: conn}, nil
}

// New returns a Client calling rolecall over conn, which the caller manages:
// Close leaves it open.
func New(conn grpc.ClientConnInterface) *Client {
	return &Client{api: rolecallv1.NewPolicyDecisionServiceClient(conn)}
}

// Close closes the connection if Dial made it; for a Client from New it does
// nothing.
func (c *Client) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// API returns the generated client of the whole service, for the calls this
// package does not wrap (ListPermissions, ListSubjects, GetPolicyStatus).
// ListSubjects lists subject ids, so by default rolecall answers it only over
// its Unix socket or from loopback (PERMISSION_DENIED otherwise).
func (c *Client) API() rolecallv1.PolicyDecisionServiceClient { return c.api }

// Query asks whether Subject may perform Action on Resource. Subject,
// Resource and Action are required; Org, when set, restricts the decision to
// the roles Subject holds in that organization (global roles do not apply
// there). Every field is at most 1 KiB of valid UTF-8.
type Query struct {
	// The user or machine-to-machine application id.
	Subject string
	// The organization the request acts in, or empty.
	Org string
	// The resource id, such as "https://api.store.io/orders".
	Resource string
	// The action, such as "read:order".
	Action string
}

// Decision is rolecall's answer to a Query.
type Decision struct {
	Allowed bool
	// Why: one of the Reason constants, such as ReasonGranted or
	// ReasonNoPermission.
	Reason string
	// The role that granted the action; empty on a deny.
	MatchedRole string
	// The revision of the policy that decided.
	Revision string
}

// Check asks rolecall to decide q. A deny is a Decision with Allowed false,
// not an error. An error means there is no decision; it wraps the gRPC
// status (status.Code works on it): INVALID_ARGUMENT for a malformed query,
// UNAVAILABLE (see IsUnavailable) when rolecall cannot be reached or has no
// policy yet. Treat every error as a deny.
func (c *Client) Check(ctx context.Context, q Query) (Decision, error) {
	resp, err := c.api.Check(ctx, q.proto())
	if err != nil {
		return Decision{}, fmt.Errorf("rolecall check: %w", err)
	}
	return decision(resp), nil
}

// Allowed reports whether rolecall answered allow for q. It fails closed:
// on any error it returns false with the error, so that
//
//	if ok, _ := rc.Allowed(ctx, q); !ok { deny }
//
// is safe. The error still tells a deny from rolecall being unavailable.
func (c *Client) Allowed(ctx context.Context, q Query) (bool, error) {
	d, err := c.Check(ctx, q)
	if err != nil {
		return false, err
	}
	return d.Allowed, nil
}

// CheckBatch decides up to 1,000 queries against one policy snapshot and
// returns the decisions in the order of qs. No queries is no decisions and
// no call; more than 1,000 is an INVALID_ARGUMENT error, as is one malformed
// query (the message names it, such as "checks[2].action: must not be
// empty"). Errors are as for Check.
func (c *Client) CheckBatch(ctx context.Context, qs []Query) ([]Decision, error) {
	if len(qs) == 0 {
		return nil, nil
	}
	req := &rolecallv1.CheckBatchRequest{Checks: make([]*rolecallv1.CheckRequest, len(qs))}
	for i, q := range qs {
		req.Checks[i] = q.proto()
	}
	resp, err := c.api.CheckBatch(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("rolecall check batch: %w", err)
	}
	results := resp.GetResults()
	if len(results) != len(qs) {
		// Never pair an answer with the wrong question.
		return nil, fmt.Errorf("rolecall check batch: %w", status.Errorf(codes.Internal, "got %d results for %d checks", len(results), len(qs)))
	}
	ds := make([]Decision, len(results))
	for i, r := range results {
		ds[i] = decision(r)
	}
	return ds, nil
}

// ValidateToken asks rolecall to validate a JWT access token and, when
// req.AuthorizationCheck is set, to decide that check for the token. An
// invalid token is an answer (Valid false, with Error and ErrorDetail), not
// an error. Errors wrap the gRPC status: INVALID_ARGUMENT for a missing
// token, FAILED_PRECONDITION when rolecall has no token issuer configured,
// UNAVAILABLE as for Check.
func (c *Client) ValidateToken(ctx context.Context, req *rolecallv1.ValidateTokenRequest) (*rolecallv1.ValidateTokenResponse, error) {
	resp, err := c.api.ValidateToken(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("rolecall validate token: %w", err)
	}
	return resp, nil
}

// IsUnavailable reports whether err carries the gRPC code UNAVAILABLE:
// rolecall could not be reached, or it has no policy loaded yet (or withholds
// a stale one). Such a call may succeed when retried later; either way it
// must be treated as a deny.
func IsUnavailable(err error) bool {
	return err != nil && status.Code(err) == codes.Unavailable
}

func (q Query) proto() *rolecallv1.CheckRequest {
	return &rolecallv1.CheckRequest{Subject: q.Subject, Org: q.Org, Resource: q.Resource, Action: q.Action}
}

func decision(r *rolecallv1.CheckResponse) Decision {
	return Decision{
		Allowed:     r.GetAllowed(),
		Reason:      strings.TrimPrefix(r.GetReason().String(), "REASON_"),
		MatchedRole: r.GetMatchedRole(),
		Revision:    r.GetPolicyRevision(),
	}
}

// grpcTarget turns a Dial target into a gRPC target with an explicit scheme,
// so that no host name is ever taken for a resolver scheme.
func grpcTarget(target string) (string, error) {
	bad := func(why string) error {
		return fmt.Errorf("rolecall: dial target %q: %s; want host:port, unix:PATH or unix:///PATH", target, why)
	}
	if rest, ok := strings.CutPrefix(target, "unix:"); ok {
		path := rest
		if after, ok := strings.CutPrefix(rest, "//"); ok {
			if !strings.HasPrefix(after, "/") {
				return "", bad("a unix target takes no host")
			}
			path = after
		}
		if path == "" {
			return "", bad("the socket path is empty")
		}
		if strings.ContainsRune(path, 0) {
			return "", bad("the socket path holds a NUL byte")
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return "", bad(err.Error())
		}
		// gRPC URL-decodes the path; encoding it keeps it literal.
		return (&url.URL{Scheme: "unix", Path: abs}).String(), nil
	}
	if target == "" {
		return "", bad("it is empty")
	}
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return "", bad("not host:port")
	}
	if strings.ContainsAny(host, "/@?#%\\ \t\r\n") {
		return "", bad(fmt.Sprintf("%q is not a host name or IP address", host))
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", bad(fmt.Sprintf("port %q is not a number from 1 to 65535", port))
	}
	if host == "" {
		host = "localhost"
	}
	return "dns:///" + net.JoinHostPort(host, port), nil
}
