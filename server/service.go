// Package server exposes the decision engine over gRPC: the
// rolecall.v1.PolicyDecisionService, grpc.health.v1 (SERVING once a policy is
// loaded) and server reflection, on TCP and Unix socket listeners.
package server

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/rolecall/rolecall/decisionlog"
	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
	"github.com/rolecall/rolecall/metrics"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/refresh"
	"github.com/rolecall/rolecall/token"
)

// MaxBatch is the most checks one CheckBatch call may carry.
const MaxBatch = 1000

// StatusSource reports the state of the policy being served.
type StatusSource interface {
	Status() refresh.Status
}

// Service implements rolecall.v1.PolicyDecisionService on a pdp.Engine.
type Service struct {
	rolecallv1.UnimplementedPolicyDecisionServiceServer
	engine *pdp.Engine
	status StatusSource
	tokens *token.Validator // nil when no issuer is configured
	log    *slog.Logger

	metrics *metrics.Metrics    // nil when not measured
	dlog    *decisionlog.Logger // nil when decisions are not logged
	authz   *AuthzOptions       // nil without enforcement edges
}

var _ rolecallv1.PolicyDecisionServiceServer = (*Service)(nil)

// NewService returns the decision service. status may be nil when nothing
// reports refresh state (GetPolicyStatus then describes the engine alone);
// tokens may be nil when no token issuer is configured.
func NewService(engine *pdp.Engine, status StatusSource, tokens *token.Validator, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{engine: engine, status: status, tokens: tokens, log: log}
}

func (s *Service) Check(ctx context.Context, req *rolecallv1.CheckRequest) (*rolecallv1.CheckResponse, error) {
	start := s.now()
	q := query(req)
	d, err := s.engine.Decide(q)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	s.decided(ctx, decisionlog.KindCheck, q, d, start)
	resp := &rolecallv1.CheckResponse{}
	fillCheck(resp, d)
	return resp, nil
}

func (s *Service) CheckBatch(ctx context.Context, req *rolecallv1.CheckBatchRequest) (*rolecallv1.CheckBatchResponse, error) {
	checks := req.GetChecks()
	switch {
	case len(checks) == 0:
		return nil, status.Error(codes.InvalidArgument, "checks: must hold at least one check")
	case len(checks) > MaxBatch:
		return nil, status.Errorf(codes.InvalidArgument, "checks: holds %d checks; the limit is %d", len(checks), MaxBatch)
	}
	for i, c := range checks {
		if err := query(c).Validate(); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "checks[%d].%v", i, err)
		}
	}
	// One snapshot for the whole batch: every result comes from one policy.
	snap := s.engine.Snapshot()
	if snap == nil {
		return nil, s.toStatus(ctx, pdp.ErrNoPolicy)
	}
	results := make([]rolecallv1.CheckResponse, len(checks))
	resp := &rolecallv1.CheckBatchResponse{Results: make([]*rolecallv1.CheckResponse, len(checks))}
	for i, c := range checks {
		start := s.now()
		q := query(c)
		d := snap.Decide(q)
		s.decided(ctx, decisionlog.KindCheckBatch, q, d, start)
		fillCheck(&results[i], d)
		resp.Results[i] = &results[i]
	}
	return resp, nil
}

func (s *Service) ListPermissions(ctx context.Context, req *rolecallv1.ListPermissionsRequest) (*rolecallv1.ListPermissionsResponse, error) {
	ps, err := s.engine.ListPermissions(req.GetSubject(), req.GetOrg(), req.GetResource())
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

func (s *Service) GetPolicyStatus(context.Context, *rolecallv1.GetPolicyStatusRequest) (*rolecallv1.GetPolicyStatusResponse, error) {
	var st refresh.Status
	if s.status != nil {
		st = s.status.Status()
	} else if snap := s.engine.Snapshot(); snap != nil {
		st = refresh.Status{Loaded: true, Revision: snap.Revision(), Counts: snap.Counts()}
	}
	resp := &rolecallv1.GetPolicyStatusResponse{
		Loaded:        st.Loaded,
		Revision:      st.Revision,
		Source:        st.Source,
		LastError:     st.LastError,
		FromCache:     st.FromCache,
		Etag:          st.ETag,
		Resources:     int32(st.Counts.Resources),
		Roles:         int32(st.Counts.Roles),
		Organizations: int32(st.Counts.Organizations),
		Subjects:      int32(st.Counts.Subjects),
	}
	resp.LoadedAt = optionalTime(st.LoadedAt)
	resp.FetchedAt = optionalTime(st.FetchedAt)
	resp.LastSuccess = optionalTime(st.LastSuccess)
	resp.LastErrorAt = optionalTime(st.LastErrorAt)
	resp.ConsecutiveFailures = int32(st.ConsecutiveFailures)
	resp.Stale = st.Stale
	resp.Withheld = st.Withheld
	if s.tokens != nil {
		resp.Issuers = issuersProto(s.tokens.Status())
	}
	return resp, nil
}

func query(r *rolecallv1.CheckRequest) pdp.Query {
	return pdp.Query{Subject: r.GetSubject(), Org: r.GetOrg(), Resource: r.GetResource(), Action: r.GetAction()}
}

func fillCheck(resp *rolecallv1.CheckResponse, d pdp.Decision) {
	resp.Allowed = d.Allowed
	resp.Reason = rolecallv1.Reason(d.Reason) // pdp.Reason values match the proto enum
	resp.MatchedRole = d.MatchedRole
	resp.PolicyRevision = d.Revision
}

// optionalTime leaves an unset time unset instead of sending 1970.
func optionalTime(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// now reads the clock only when a decision will be observed: on this path
// the clock costs more than the decision.
func (s *Service) now() time.Time {
	if s.metrics == nil && s.dlog == nil {
		return time.Time{}
	}
	return time.Now()
}

// decided records a decision made since start: in the metrics, and in the
// decision log when it is on.
func (s *Service) decided(ctx context.Context, kind string, q pdp.Query, d pdp.Decision, start time.Time) {
	if s.metrics == nil && s.dlog == nil {
		return
	}
	latency := time.Since(start)
	if s.metrics != nil {
		s.metrics.ObserveDecision(d, latency)
	}
	if s.dlog != nil {
		e := decisionlog.Entry{
			Time: start, Kind: kind,
			Subject: q.Subject, Org: q.Org, Resource: q.Resource, Action: q.Action,
			Allowed: d.Allowed, Reason: d.Reason.String(), MatchedRole: d.MatchedRole, Revision: d.Revision,
			Latency: latency,
		}
		if ids := metadata.ValueFromIncomingContext(ctx, "x-request-id"); len(ids) > 0 {
			e.RequestID = ids[0]
		}
		s.dlog.Log(e)
	}
}

// ObserveDecision records a decision made outside the gRPC handlers (by the
// AuthZEN API), in the metrics and the decision log.
func (s *Server) ObserveDecision(kind string, q pdp.Query, d pdp.Decision) {
	s.svc.decided(context.Background(), kind, q, d, s.svc.now())
}
