package routes_test

import (
	"errors"
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/rolecall/rolecall/routes"
)

const orders = "https://api.store.io/orders"

func table(t testing.TB) *routes.Table {
	t.Helper()
	tbl, err := routes.Compile([]routes.Route{
		{Prefix: "/public/", Public: true},
		{Path: "/healthz", Public: true},
		{Methods: []string{"get"}, Path: "/orgs/{org}/orders/{id}", Resource: orders, Action: "read:order", Org: routes.OrgSource{PathParam: "org"}},
		{Methods: []string{"GET", "HEAD"}, Path: "/orders/{id}", Resource: orders, Action: "read:order"},
		{Methods: []string{"POST"}, Path: "/orders", Resource: orders, Action: "write:order", Org: routes.OrgSource{Header: "X-Org-Id"}},
		{Methods: []string{"DELETE"}, Path: "/orders/{id}", Resource: orders, Action: "delete:order", Org: routes.OrgSource{Token: true}},
		{Path: "/files/{path...}", Resource: "files", Action: "read"},
		{Prefix: "/", Resource: orders, Action: "read:order"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func TestMatch(t *testing.T) {
	tbl := table(t)
	tests := []struct {
		name, method, uri string
		index             int // -1: no route
		params            map[string]string
	}{
		{"a public prefix", "GET", "/public/app.js", 0, nil},
		{"an exact public path", "GET", "/healthz", 1, nil},
		{"a pattern with two parameters", "GET", "/orgs/acme/orders/42", 2, map[string]string{"org": "acme", "id": "42"}},
		{"methods are case-insensitive", "get", "/orders/7", 3, map[string]string{"id": "7"}},
		{"the first match wins", "GET", "/orders/7", 3, nil},
		{"another method, another route", "DELETE", "/orders/7", 5, nil},
		{"a method no route lists falls through", "PUT", "/orders/7", 7, nil},
		{"a rest parameter takes the rest", "GET", "/files/a/b/c.txt", 6, map[string]string{"path": "a/b/c.txt"}},
		{"the query is not the path", "GET", "/orders/7?next=/public/x", 3, nil},
		{"a fragment is not the path", "GET", "/orders/7#/public", 3, nil},
		{"double slashes collapse", "GET", "//orders//7", 3, map[string]string{"id": "7"}},
		{"a trailing slash is the same path", "GET", "/orders/7/", 3, nil},
		{"segments are decoded once", "GET", "/orders/a%20b", 3, map[string]string{"id": "a b"}},
		{"a prefix is segment-aligned", "GET", "/publicity", 7, nil},
		{"paths are case-sensitive", "GET", "/PUBLIC/app.js", 7, nil},
		{"dot segments resolve before matching", "GET", "/public/../orders/7", 3, map[string]string{"id": "7"}},
		{"encoded dot segments resolve too", "GET", "/public/%2e%2e/orders/7", 3, nil},
		{"upper-case encoded dots", "GET", "/public/%2E%2E/orders/7", 3, nil},
		{"a single dot is nothing", "GET", "/public/./../orders/7", 3, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tbl.Match(tt.method, tt.uri)
			if err != nil {
				t.Fatalf("Match: %v", err)
			}
			got := -1
			if m.Route != nil {
				got = m.Index
			}
			if got != tt.index {
				t.Fatalf("%s %s matched route %d, want %d", tt.method, tt.uri, got, tt.index)
			}
			for k, v := range tt.params {
				if m.Param(k) != v {
					t.Errorf("param %s = %q, want %q", k, m.Param(k), v)
				}
			}
		})
	}
	empty, _ := routes.Compile(nil)
	if m, err := empty.Match("GET", "/x"); err != nil || m.Route != nil {
		t.Errorf("an empty table matched %v, %v", m.Route, err)
	}
}

// Requests that try to reach a protected route through the public prefix:
// each is refused, or matches the protected route; none matches public.
func TestNoBypassByEncoding(t *testing.T) {
	tbl := table(t)
	for _, uri := range []string{
		"/public/..%2Forders/7",
		"/public%2F..%2Forders%2F7",
		"/public/%2e%2e%2forders/7",
		"/public/..;/orders/7",
		"/public/.;x/../orders/7",
		"/public\\..\\orders\\7",
		"/public/%5c..%5corders/7",
		"/public/%00/../orders/7",
		"/public/%zz",
		"/public/\xff",
		"/../public/x",
		"public/x",
		"/public/%2e%2e/%2e%2e/orders/7",
	} {
		m, err := tbl.Match("GET", uri)
		if err == nil && m.Route != nil && m.Route.Public {
			t.Errorf("%q matched the public route %d (canonical %q)", uri, m.Index, m.Path)
		}
		if err != nil && !errors.Is(err, routes.ErrBadPath) {
			t.Errorf("%q: error %v is not ErrBadPath", uri, err)
		}
	}
}

func TestCompileReportsEveryProblem(t *testing.T) {
	_, err := routes.Compile([]routes.Route{
		{Path: "orders", Resource: "r", Action: "a"},
		{Path: "/a", Prefix: "/b", Resource: "r", Action: "a"},
		{Resource: "r", Action: "a"},
		{Path: "/orders/{id}"},
		{Path: "/x", Public: true, Resource: "r"},
		{Methods: []string{"GE T"}, Path: "/x", Resource: "r", Action: "a"},
		{Path: "/orders/{id}/{id}", Resource: "r", Action: "a"},
		{Path: "/files/{rest...}/x", Resource: "r", Action: "a"},
		{Path: "/a{b}", Resource: "r", Action: "a"},
		{Path: "/orders", Resource: "r", Action: "a", Org: routes.OrgSource{PathParam: "org"}},
		{Path: "/orders", Resource: "r", Action: "a", Org: routes.OrgSource{Header: "X-Org", Token: true}},
		{Prefix: "/p/{x}", Public: true},
		{Path: "/a/../b", Resource: "r", Action: "a"},
		{Path: "/x", Public: true, Org: routes.OrgSource{Token: true}},
	})
	for _, want := range []string{
		`routes[0].path: "orders" must start with /`,
		"routes[1]: set path or prefix, not both",
		"routes[2]: set path or prefix",
		"routes[3].resource: required (or public: true)",
		"routes[3].action: required (or public: true)",
		"routes[4]: a public route checks nothing",
		`routes[5].methods[0]: "GE T" is not an HTTP method`,
		"routes[6].path: \"/orders/{id}/{id}\": parameter {id} appears twice",
		"routes[7].path: \"/files/{rest...}/x\": {rest...} must be the last segment",
		"routes[8].path: \"/a{b}\": braces must enclose a whole segment",
		"routes[9].org.path_param: the path has no parameter {org}",
		"routes[10].org: name one source",
		"routes[11].prefix: \"/p/{x}\": a prefix cannot have parameters",
		"routes[12].path: \"/a/../b\": dot segments are not allowed",
		"routes[13].org: a public route has no organization",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Compile error\n%v\nwant it to contain %q", err, want)
		}
	}
}

// FuzzMatch: no input panics, a canonical path is its own canonical form,
// and matching the canonical path gives the same route as the raw one, so
// the server behind the proxy and the route table see one path. And no input
// reaches a public route unless a backend that percent-decodes and cleans the
// path would also see a public path: encoded dots and slashes, dot segments
// and doubled slashes cannot carry a protected path through a public route.
func FuzzMatch(f *testing.F) {
	for _, seed := range []string{"/orders/7", "/public/../orders/7", "/public/%2e%2e/orders/7", "//a//b", "/files/a/b", "/orgs/acme/orders/1?x=y", "/public/..;/x", "/%2f", "/a/./b/../c", "/orders/a%3Fb", "/orders/%25", "/orders/a%23b"} {
		f.Add("GET", seed)
	}
	tbl := table(f)
	f.Fuzz(func(t *testing.T, method, uri string) {
		m, err := tbl.Match(method, uri)
		if err != nil {
			if !errors.Is(err, routes.ErrBadPath) {
				t.Fatalf("error %v is not ErrBadPath", err)
			}
			return
		}
		if m.Route != nil && m.Route.Public {
			raw, _, _ := strings.Cut(uri, "?")
			raw, _, _ = strings.Cut(raw, "#")
			if dec, err := url.PathUnescape(raw); err == nil {
				if seen := path.Clean("/" + dec); seen != "/healthz" && !strings.HasPrefix(seen+"/", "/public/") {
					t.Fatalf("%q matched public route %d, but a backend sees %q", uri, m.Index, seen)
				}
			}
		}
		again, err := tbl.Match(method, m.Path)
		if err != nil {
			t.Fatalf("the canonical path %q of %q is refused: %v", m.Path, uri, err)
		}
		if again.Path != m.Path || again.Index != m.Index || (again.Route == nil) != (m.Route == nil) {
			t.Fatalf("%q matched route %d as %q, its canonical path matched %d as %q", uri, m.Index, m.Path, again.Index, again.Path)
		}
	})
}
