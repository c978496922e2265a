package grpcapi_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rolecall/rolecall/decide"
	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
	"github.com/rolecall/rolecall/grpcapi"
	"github.com/rolecall/rolecall/internal/rctest"
	"github.com/rolecall/rolecall/metrics"
	"github.com/rolecall/rolecall/token"
	"github.com/rolecall/rolecall/token/devissuer"
)

// BenchmarkServiceCheck is the handler cost of Check in process: decoding
// aside, what the server adds to Decide.
func BenchmarkServiceCheck(b *testing.B) {
	req := &rolecallv1.CheckRequest{Subject: "dave", Org: "acme", Resource: "organization", Action: "invite:member"}
	svc := grpcapi.NewService(decide.New(rctest.Bookstore(b), decide.Options{}), nil, nil)
	b.ReportAllocs()
	for b.Loop() {
		if resp, err := svc.Check(b.Context(), req); err != nil || !resp.GetAllowed() {
			b.Fatal(resp, err)
		}
	}
}

// BenchmarkServiceValidateTokenWarm is a ValidateToken of a token seen
// before, in process: the verified-token cache hit plus building the
// response.
func BenchmarkServiceValidateTokenWarm(b *testing.B) {
	di, err := devissuer.New(devissuer.Options{Algorithm: "ES256"})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(di.Handler())
	defer srv.Close()
	di.SetIssuer(srv.URL)
	v, err := token.New([]token.IssuerConfig{{Issuer: srv.URL, Profile: token.Logto, Audiences: []string{orders}}}, token.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := v.RefreshKeys(b.Context(), true); err != nil {
		b.Fatal(err)
	}
	tok, err := di.Mint(map[string]any{"sub": "alice", "client_id": "web", "aud": orders, "scope": "read:order", "exp": time.Now().Add(time.Hour).Unix()})
	if err != nil {
		b.Fatal(err)
	}
	svc := grpcapi.NewService(decide.New(rctest.Bookstore(b), decide.Options{Tokens: v}), nil, nil)
	req := &rolecallv1.ValidateTokenRequest{Token: tok, RequiredScopes: []string{"read:order"}, AuthorizationCheck: &rolecallv1.AuthorizationCheck{Resource: orders, Action: "read:order"}}
	b.ReportAllocs()
	for b.Loop() {
		if resp, err := svc.ValidateToken(b.Context(), req); err != nil || !resp.GetValid() || !resp.GetAuthorization().GetAllowed() {
			b.Fatal(resp, err)
		}
	}
}

// BenchmarkCheckWithMetrics is Check's handler with decisions counted and
// timed: what the metrics add to BenchmarkServiceCheck.
func BenchmarkCheckWithMetrics(b *testing.B) {
	engine := rctest.Bookstore(b)
	m, err := metrics.New(prometheus.NewRegistry(), metrics.Sources{})
	if err != nil {
		b.Fatal(err)
	}
	svc := grpcapi.NewService(decide.New(engine, decide.Options{Recorder: decide.NewRecorder(m, nil)}), nil, nil)
	req := &rolecallv1.CheckRequest{Subject: "dave", Org: "acme", Resource: "organization", Action: "invite:member"}
	b.ReportAllocs()
	for b.Loop() {
		if resp, err := svc.Check(b.Context(), req); err != nil || !resp.GetAllowed() {
			b.Fatal(resp, err)
		}
	}
}
