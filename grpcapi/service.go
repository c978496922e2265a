// Package grpcapi is the gRPC edge: the rolecall.v1.PolicyDecisionService,
// Envoy's ext_authz, grpc.health.v1 (SERVING once a policy is loaded) and
// server reflection, on TCP, TLS and Unix socket listeners. It decodes each
// call, asks a decide.Decider and encodes the answer.
package grpcapi

import (
	"context"
	"log/slog"
	"net"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/rolecall/rolecall/decide"
	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
	"github.com/rolecall/rolecall/internal/v1conv"
	"github.com/rolecall/rolecall/pdp"
)

// MaxBatch is the most checks one CheckBatch call may carry.
const MaxBatch = decide.MaxBatch

// Service implements rolecall.v1.PolicyDecisionService on a decide.Decider.
type Service struct {
	rolecallv1.UnimplementedPolicyDecisionServiceServer
	dec    *decide.Decider
	status decide.StatusSource
	log    *slog.Logger
}

var _ rolecallv1.PolicyDecisionServiceServer = (*Service)(nil)

// NewService returns the decision service. status may be nil when nothing
// reports refresh state (GetPolicyStatus then describes the engine alone).
func NewService(dec *decide.Decider, status decide.StatusSource, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{dec: dec, status: status, log: log}
}

func (s *Service) Check(ctx context.Context, req *rolecallv1.CheckRequest) (*rolecallv1.CheckResponse, error) {
	d, err := s.dec.Check(ctx, query(req), s.requestID(ctx))
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	resp := &rolecallv1.CheckResponse{}
	v1conv.FillCheck(resp, d)
	return resp, nil
}

func (s *Service) CheckBatch(ctx context.Context, req *rolecallv1.CheckBatchRequest) (*rolecallv1.CheckBatchResponse, error) {
	checks := req.GetChecks()
	qs := make([]pdp.Query, len(checks))
	for i, c := range checks {
		qs[i] = query(c)
	}
	ds, err := s.dec.Batch(ctx, qs, s.requestID(ctx))
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	results := make([]rolecallv1.CheckResponse, len(ds))
	resp := &rolecallv1.CheckBatchResponse{Results: make([]*rolecallv1.CheckResponse, len(ds))}
	for i, d := range ds {
		v1conv.FillCheck(&results[i], d)
		resp.Results[i] = &results[i]
	}
	return resp, nil
}

func (s *Service) ListPermissions(ctx context.Context, req *rolecallv1.ListPermissionsRequest) (*rolecallv1.ListPermissionsResponse, error) {
	ps, err := s.dec.ListPermissions(ctx, req.GetSubject(), req.GetOrg(), req.GetResource())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	resp := &rolecallv1.ListPermissionsResponse{
		Roles:          ps.Roles,
		PolicyRevision: ps.Revision,
		Reason:         rolecallv1.Reason(ps.Reason),
		Permissions:    make([]*rolecallv1.Permission, len(ps.Permissions)),
	}
	for i, p := range ps.Permissions {
		resp.Permissions[i] = &rolecallv1.Permission{Resource: p.Resource, Action: p.Action}
	}
	return resp, nil
}

// ListSubjects answers who may perform an action. Its answer lists subject
// ids in bulk, so the Decider's WhoCan option decides which callers get it;
// this edge tells it whether the caller is on this host.
func (s *Service) ListSubjects(ctx context.Context, req *rolecallv1.ListSubjectsRequest) (*rolecallv1.ListSubjectsResponse, error) {
	page, err := s.dec.ListSubjects(ctx, v1conv.SubjectQuery(req), localPeer(ctx))
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return v1conv.SubjectsResponse(page), nil
}

// localPeer reports whether the caller is on this host: connected over a
// Unix socket or from a loopback address. Anything else, an in-process
// listener included, is not.
func localPeer(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return false
	}
	switch a := p.Addr.(type) {
	case *net.UnixAddr:
		return true
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	}
	return false
}

func (s *Service) GetPolicyStatus(context.Context, *rolecallv1.GetPolicyStatusRequest) (*rolecallv1.GetPolicyStatusResponse, error) {
	return v1conv.StatusResponse(s.dec.PolicyStatus(s.status)), nil
}

func query(r *rolecallv1.CheckRequest) pdp.Query {
	return pdp.Query{Subject: r.GetSubject(), Org: r.GetOrg(), Resource: r.GetResource(), Action: r.GetAction()}
}

// requestID is the caller's x-request-id, for the decision log; it is read
// only when decisions are recorded.
func (s *Service) requestID(ctx context.Context) string {
	if !s.dec.KeepsRequestIDs() {
		return ""
	}
	if ids := metadata.ValueFromIncomingContext(ctx, "x-request-id"); len(ids) > 0 {
		return ids[0]
	}
	return ""
}
