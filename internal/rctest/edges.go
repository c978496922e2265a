package rctest

import (
	"net/http/httptest"
	"testing"

	"github.com/rolecall/rolecall/decide"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/routes"
	"github.com/rolecall/rolecall/token"
	"github.com/rolecall/rolecall/token/devissuer"
)

// Orders is the bookstore's orders API resource.
const Orders = "https://api.store.io/orders"

// Enforcer is a Decider for the enforcement edges: the bookstore policy, a
// development issuer with audience "bookstore", and a small route table
// (/healthz and /public/ are public; GET /orders/{id} is read:order on the
// orders API; POST /orgs/{org}/members is invite:member in that org).
type Enforcer struct {
	Decider *decide.Decider
	Engine  *pdp.Engine
	// Mint returns a token for sub with the scope read:order.
	Mint func(sub string) string
}

// NewEnforcer builds an Enforcer; with dryRun every refusal is let through
// and logged.
func NewEnforcer(t testing.TB, dryRun bool) *Enforcer {
	t.Helper()
	di, err := devissuer.New(devissuer.Options{Algorithm: "ES256"})
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(di.Handler())
	t.Cleanup(jwks.Close)
	di.SetIssuer(jwks.URL)
	v, err := token.New([]token.IssuerConfig{{Issuer: jwks.URL, Audiences: []string{"bookstore"}}}, token.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.RefreshKeys(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	table, err := routes.Compile([]routes.Route{
		{Path: "/healthz", Public: true},
		{Methods: []string{"GET"}, Path: "/orders/{id}", Resource: Orders, Action: "read:order"},
		{Methods: []string{"POST"}, Path: "/orgs/{org}/members", Resource: "organization", Action: "invite:member", Org: routes.OrgSource{PathParam: "org"}},
		{Prefix: "/public/", Public: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	engine := Bookstore(t)
	return &Enforcer{
		Decider: decide.New(engine, decide.Options{Tokens: v, Authz: &decide.AuthzOptions{Routes: table, DryRun: dryRun}}),
		Engine:  engine,
		Mint: func(sub string) string {
			tok, err := di.Mint(map[string]any{"sub": sub, "aud": "bookstore", "scope": "read:order"})
			if err != nil {
				t.Fatal(err)
			}
			return tok
		},
	}
}
