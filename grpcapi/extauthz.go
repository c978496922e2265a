package grpcapi

import (
	"context"
	"net/http"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rolecall/rolecall/decide"
)

// extAuthz is Envoy's external authorization service
// (envoy.service.auth.v3.Authorization) on the gRPC listener.
type extAuthz struct {
	dec *decide.Decider
}

var _ authv3.AuthorizationServer = (*extAuthz)(nil)

// Check answers Envoy: an allow adds the identity headers for the upstream
// and removes any the client sent; a missing or invalid token is 401 with
// WWW-Authenticate; a deny is 403 with a small JSON body; when rolecall
// cannot decide (no policy, no keys) the call fails with UNAVAILABLE, so
// that Envoy's failure_mode_allow stays the operator's choice.
func (e *extAuthz) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	h := req.GetAttributes().GetRequest().GetHttp()
	headers := envoyHeaders(h)
	req2 := decide.Request{
		Method: h.GetMethod(),
		URI:    h.GetPath(),
		Header: func(name string) []string { return headers[name] },
	}
	if e.dec.KeepsRequestIDs() {
		if ids := metadata.ValueFromIncomingContext(ctx, "x-request-id"); len(ids) > 0 {
			req2.RequestID = ids[0]
		}
	}
	v := e.dec.Authorize(ctx, "ext_authz", req2)
	o := e.dec.Authz()
	switch v.Status {
	case http.StatusOK:
		set, remove := o.IdentityHeaders(v)
		ok := &authv3.OkHttpResponse{HeadersToRemove: remove}
		for _, name := range []string{o.SubjectHeader, o.OrgHeader, o.ScopesHeader} {
			if value, found := set[name]; found {
				ok.Headers = append(ok.Headers, &corev3.HeaderValueOption{
					Header:       &corev3.HeaderValue{Key: name, Value: value},
					AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
				})
			}
		}
		return &authv3.CheckResponse{
			Status:       &rpcstatus.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
		}, nil
	case http.StatusServiceUnavailable:
		return nil, status.Error(codes.Unavailable, "rolecall cannot decide: "+v.Detail)
	}
	code, httpCode := codes.PermissionDenied, typev3.StatusCode_Forbidden
	denied := &authv3.DeniedHttpResponse{Headers: []*corev3.HeaderValueOption{jsonContentType()}}
	if v.Status == http.StatusUnauthorized {
		code, httpCode = codes.Unauthenticated, typev3.StatusCode_Unauthorized
		denied.Headers = append(denied.Headers, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: "www-authenticate", Value: v.Challenge()},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	denied.Status = &typev3.HttpStatus{Code: httpCode}
	denied.Body = v.DenyBody()
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(code), Message: v.Reason},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: denied},
	}, nil
}

// envoyHeaders reads the request headers Envoy sent, by lower-case name.
// Envoy sends either the header_map (repeated headers kept apart) or the
// headers map (repeated headers joined with commas).
func envoyHeaders(h *authv3.AttributeContext_HttpRequest) map[string][]string {
	out := map[string][]string{}
	if hm := h.GetHeaderMap(); hm != nil {
		for _, hv := range hm.GetHeaders() {
			value := hv.GetValue()
			if value == "" && len(hv.GetRawValue()) > 0 {
				value = string(hv.GetRawValue())
			}
			name := strings.ToLower(hv.GetKey())
			out[name] = append(out[name], value)
		}
		return out
	}
	for k, v := range h.GetHeaders() {
		name := strings.ToLower(k)
		out[name] = append(out[name], v)
	}
	return out
}

func jsonContentType() *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: "content-type", Value: "application/json"},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}
