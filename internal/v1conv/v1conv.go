// Package v1conv writes decide's results as rolecall.v1 messages, for every
// edge that speaks them: the gRPC service, the admin status endpoint and the
// CLI's local answers.
package v1conv

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/rolecall/rolecall/decide"
	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/token"
)

// FillCheck sets resp to the decision d.
func FillCheck(resp *rolecallv1.CheckResponse, d pdp.Decision) {
	resp.Allowed = d.Allowed
	resp.Reason = rolecallv1.Reason(d.Reason) // pdp.Reason values match the proto enum
	resp.MatchedRole = d.MatchedRole
	resp.PolicyRevision = d.Revision
}

// Decision reads a decision back from a CheckResponse.
func Decision(resp *rolecallv1.CheckResponse) pdp.Decision {
	return pdp.Decision{
		Allowed:     resp.GetAllowed(),
		Reason:      pdp.Reason(resp.GetReason()),
		MatchedRole: resp.GetMatchedRole(),
		Revision:    resp.GetPolicyRevision(),
	}
}

// SubjectQuery reads a ListSubjects request.
func SubjectQuery(req *rolecallv1.ListSubjectsRequest) pdp.SubjectQuery {
	return pdp.SubjectQuery{
		Org:       req.GetOrg(),
		Resource:  req.GetResource(),
		Action:    req.GetAction(),
		Limit:     int(req.GetPageSize()),
		PageToken: req.GetPageToken(),
	}
}

// SubjectsRequest is the ListSubjects request asking q.
func SubjectsRequest(q pdp.SubjectQuery) *rolecallv1.ListSubjectsRequest {
	return &rolecallv1.ListSubjectsRequest{Org: q.Org, Resource: q.Resource, Action: q.Action, PageSize: int32(q.Limit), PageToken: q.PageToken}
}

// SubjectsResponse is the ListSubjects answer for page.
func SubjectsResponse(page pdp.SubjectPage) *rolecallv1.ListSubjectsResponse {
	resp := &rolecallv1.ListSubjectsResponse{
		Subjects:       make([]*rolecallv1.AllowedSubject, len(page.Subjects)),
		NextPageToken:  page.NextPageToken,
		PolicyRevision: page.Revision,
		Reason:         rolecallv1.Reason(page.Reason), // pdp.Reason values match the proto enum
	}
	subjects := make([]rolecallv1.AllowedSubject, len(page.Subjects))
	for i, a := range page.Subjects {
		subjects[i].Subject, subjects[i].MatchedRole = a.Subject, a.MatchedRole
		resp.Subjects[i] = &subjects[i]
	}
	return resp
}

// SubjectPage reads a page back from a ListSubjectsResponse.
func SubjectPage(resp *rolecallv1.ListSubjectsResponse) pdp.SubjectPage {
	page := pdp.SubjectPage{
		Subjects:      make([]pdp.AllowedSubject, len(resp.GetSubjects())),
		NextPageToken: resp.GetNextPageToken(),
		Reason:        pdp.Reason(resp.GetReason()),
		Revision:      resp.GetPolicyRevision(),
	}
	for i, a := range resp.GetSubjects() {
		page.Subjects[i] = pdp.AllowedSubject{Subject: a.GetSubject(), MatchedRole: a.GetMatchedRole()}
	}
	return page
}

// TokenRequest reads a ValidateToken request.
func TokenRequest(req *rolecallv1.ValidateTokenRequest) decide.TokenRequest {
	treq := decide.TokenRequest{
		Token:          req.GetToken(),
		Audience:       req.GetAudience(),
		RequiredScopes: req.GetRequiredScopes(),
		Org:            req.GetOrg(),
	}
	if c := req.GetAuthorizationCheck(); c != nil {
		treq.Check, treq.HasCheck = decide.TokenCheck{Org: c.GetOrg(), Resource: c.GetResource(), Action: c.GetAction()}, true
	}
	return treq
}

// TokenResponse is the ValidateToken answer for r.
func TokenResponse(r decide.TokenResult) *rolecallv1.ValidateTokenResponse {
	resp := &rolecallv1.ValidateTokenResponse{
		Valid:       r.Valid,
		Error:       rolecallv1.TokenError(r.Error), // token.Code values match the proto enum
		ErrorDetail: r.Detail,
	}
	if !r.Valid {
		return resp
	}
	resp.Claims = claims(r.Claims)
	if r.Checked {
		resp.Authorization = &rolecallv1.CheckResponse{}
		FillCheck(resp.Authorization, r.Decision)
	}
	return resp
}

// StatusResponse is the GetPolicyStatus answer for st.
func StatusResponse(st decide.Status) *rolecallv1.GetPolicyStatusResponse {
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
	resp.Format = st.Format
	resp.PublishedAt = optionalTime(st.PublishedAt)
	resp.Publisher = st.Publisher
	if st.PropagationDelay > 0 {
		resp.PropagationDelay = durationpb.New(st.PropagationDelay)
	}
	resp.SigningKey = st.SigningKey
	resp.Verified = st.Verified
	resp.LongPolling = st.LongPolling
	if st.LastChange != nil {
		c := st.LastChange
		resp.LastChange = policyChange(c.From, c.To, c.Totals, c.At)
	}
	if h := st.Held; h != nil {
		c := h.Change
		resp.Held = &rolecallv1.HeldPolicy{Revision: h.Revision, Change: policyChange(c.From, c.To, c.Totals, c.At), Reason: h.Reason, Since: optionalTime(h.Since)}
	}
	if st.Issuers != nil {
		resp.Issuers = issuers(st.Issuers)
	}
	return resp
}

// policyChange is a refresh.Change: the change from one revision to the
// other, computed at at.
func policyChange(from, to string, t pdp.Totals, at time.Time) *rolecallv1.PolicyChange {
	return &rolecallv1.PolicyChange{
		FromRevision: from, ToRevision: to,
		GrantsBefore: t.GrantsBefore, GrantsAfter: t.GrantsAfter, GrantsGained: t.GrantsGained, GrantsLost: t.GrantsLost,
		SubjectsAdded: t.SubjectsAdded, SubjectsRemoved: t.SubjectsRemoved, SubjectsChanged: t.SubjectsChanged,
		At: optionalTime(at),
	}
}

func claims(c *token.Claims) *rolecallv1.TokenClaims {
	p := &rolecallv1.TokenClaims{
		Subject:     c.Subject,
		SubjectType: rolecallv1.SubjectType_SUBJECT_TYPE_USER,
		Issuer:      c.Issuer,
		Audiences:   c.Audiences,
		ClientId:    c.ClientID,
		Scopes:      c.Scopes,
		Org:         c.Org,
		Roles:       c.Roles,
		ExpiresAt:   timestamppb.New(c.ExpiresAt),
		TokenId:     c.TokenID,
	}
	if c.SubjectType == "m2m" {
		p.SubjectType = rolecallv1.SubjectType_SUBJECT_TYPE_M2M
	}
	if !c.IssuedAt.IsZero() {
		p.IssuedAt = timestamppb.New(c.IssuedAt)
	}
	return p
}

func issuers(ss []token.IssuerStatus) []*rolecallv1.IssuerStatus {
	out := make([]*rolecallv1.IssuerStatus, len(ss))
	for i, st := range ss {
		out[i] = &rolecallv1.IssuerStatus{Issuer: st.Issuer, Keys: int32(st.Keys), FromCache: st.FromCache, LastError: st.LastError, FetchedAt: optionalTime(st.FetchedAt)}
	}
	return out
}

// optionalTime leaves an unset time unset instead of sending 1970.
func optionalTime(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
