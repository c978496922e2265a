package stytch_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
	"github.com/rolecall/rolecall/refresh"
	"github.com/rolecall/rolecall/refresh/internal/refreshtest"
	"github.com/rolecall/rolecall/refresh/stytch"
)

const (
	stytchProject = "project-test-6d2ba9a3-5a0c-4f0e-9b5e-2f1a7c6b1e42"
	stytchSecret  = "secret-test-Zk9vYmFyQmF6UXV4LXN1cGVyLXNlY3JldA="
	stytchRequest = "request-id-test-b05c992f-ebdc-489d-a754-c7e70ba13141"
)

// stytchPolicyJSON is a Get RBAC Policy response as Stytch documents it:
// https://stytch.com/docs/api-reference/b2b/api/rbac/get-policy (response:
// request_id, status_code, policy{roles, resources, scopes}),
// https://stytch.com/docs/api-reference/b2b/api/rbac/role-object,
// https://stytch.com/docs/api-reference/b2b/api/rbac/scope-object and
// https://stytch.com/docs/b2b/api/rbac-resource-object. The stytch.*
// resources carry the actions Stytch documents for them
// (https://stytch.com/docs/b2b/guides/rbac/stytch-default); "document" with
// create/update/delete/download is the custom resource of Stytch's RBAC
// getting-started guide.
const stytchPolicyJSON = `{
  "request_id": "` + stytchRequest + `",
  "status_code": 200,
  "policy": {
    "roles": [
      {
        "role_id": "stytch_member",
        "description": "Granted to all Members upon creation",
        "permissions": [
          {"resource_id": "stytch.self", "actions": ["*"]}
        ]
      },
      {
        "role_id": "stytch_admin",
        "description": "Granted to Members who create an Organization",
        "permissions": [
          {"resource_id": "stytch.organization", "actions": ["*"]},
          {"resource_id": "stytch.member", "actions": ["*"]},
          {"resource_id": "stytch.sso", "actions": ["*"]}
        ]
      },
      {
        "role_id": "limited_admin",
        "description": "Creates and downloads documents, renames the organization",
        "permissions": [
          {"resource_id": "document", "actions": ["create", "download"]},
          {"resource_id": "stytch.organization", "actions": ["update.info.name"]}
        ]
      }
    ],
    "resources": [
      {
        "resource_id": "stytch.organization",
        "description": "Stytch Organization",
        "actions": ["update.info.name", "update.info.slug", "update.info.untrusted_metadata", "update.info.email_jit_provisioning", "update.info.logo_url", "update.info.email_invites", "update.info.allowed_domains", "update.info.default_sso_connection", "update.info.sso_jit_provisioning", "update.info.mfa_policy", "update.info.implicit_roles", "delete"]
      },
      {
        "resource_id": "stytch.member",
        "description": "Stytch Members of the Organization",
        "actions": ["create", "update.info.name", "update.info.untrusted_metadata", "update.info.mfa-phone", "update.info.delete.mfa-phone", "update.settings.is-breakglass", "update.settings.mfa_enrolled", "update.settings.roles", "search", "delete"]
      },
      {
        "resource_id": "stytch.sso",
        "description": "Stytch SSO Connections",
        "actions": ["create", "update", "delete"]
      },
      {
        "resource_id": "stytch.self",
        "description": "The logged-in Member",
        "actions": ["update.info.name", "update.info.untrusted_metadata", "update.info.mfa-phone", "update.info.delete.mfa-phone", "update.info.delete.password", "update.settings.mfa_enrolled", "delete"]
      },
      {
        "resource_id": "document",
        "description": "Documents in an Organization",
        "actions": ["create", "update", "delete", "download"]
      }
    ],
    "scopes": [
      {
        "scope": "download:documents",
        "description": "Download the Organization's documents",
        "permissions": [
          {"resource_id": "document", "actions": ["download"]}
        ]
      }
    ]
  }
}`

// stytchWantPolicy is stytchPolicyJSON in the canonical model: sorted, the
// scope as the role "scope:download:documents", no organizations or subjects.
func stytchWantPolicy() *pdp.Policy {
	sorted := func(s ...string) []string { return slices.Sorted(slices.Values(s)) }
	org := pdp.RoleOrganization
	return &pdp.Policy{
		Resources: []pdp.Resource{
			{ID: "document", Description: "Documents in an Organization", Actions: []string{"create", "delete", "download", "update"}},
			{ID: "stytch.member", Description: "Stytch Members of the Organization", Actions: sorted("create", "update.info.name", "update.info.untrusted_metadata", "update.info.mfa-phone", "update.info.delete.mfa-phone", "update.settings.is-breakglass", "update.settings.mfa_enrolled", "update.settings.roles", "search", "delete")},
			{ID: "stytch.organization", Description: "Stytch Organization", Actions: sorted("update.info.name", "update.info.slug", "update.info.untrusted_metadata", "update.info.email_jit_provisioning", "update.info.logo_url", "update.info.email_invites", "update.info.allowed_domains", "update.info.default_sso_connection", "update.info.sso_jit_provisioning", "update.info.mfa_policy", "update.info.implicit_roles", "delete")},
			{ID: "stytch.self", Description: "The logged-in Member", Actions: sorted("update.info.name", "update.info.untrusted_metadata", "update.info.mfa-phone", "update.info.delete.mfa-phone", "update.info.delete.password", "update.settings.mfa_enrolled", "delete")},
			{ID: "stytch.sso", Description: "Stytch SSO Connections", Actions: []string{"create", "delete", "update"}},
		},
		Roles: []pdp.Role{
			{ID: "limited_admin", Type: org, Description: "Creates and downloads documents, renames the organization", Permissions: []pdp.Grant{
				{Resource: "document", Actions: []string{"create", "download"}},
				{Resource: "stytch.organization", Actions: []string{"update.info.name"}},
			}},
			{ID: "scope:download:documents", Type: org, Description: "Download the Organization's documents", Permissions: []pdp.Grant{
				{Resource: "document", Actions: []string{"download"}},
			}},
			{ID: "stytch_admin", Type: org, Description: "Granted to Members who create an Organization", Permissions: []pdp.Grant{
				{Resource: "stytch.member", Actions: []string{"*"}},
				{Resource: "stytch.organization", Actions: []string{"*"}},
				{Resource: "stytch.sso", Actions: []string{"*"}},
			}},
			{ID: "stytch_member", Type: org, Description: "Granted to all Members upon creation", Permissions: []pdp.Grant{
				{Resource: "stytch.self", Actions: []string{"*"}},
			}},
		},
	}
}

// stytchPolicyWith returns a Get RBAC Policy response holding policy, a JSON
// object.
func stytchPolicyWith(policy string) string {
	return `{"request_id": "` + stytchRequest + `", "status_code": 200, "policy": ` + policy + `}`
}

// fakeStytch is a loopback Stytch API serving GET /v1/b2b/rbac/policy with
// basic auth, as https://stytch.com/docs/api-reference/b2b/api/rbac/get-policy
// documents it. Errors use Stytch's error object
// (https://stytch.com/docs/api-reference/b2b/api/errors/401).
type fakeStytch struct {
	mu   sync.Mutex
	body string
	seen []*http.Request
}

func newFakeStytch(t *testing.T, body string) (*fakeStytch, *httptest.Server) {
	t.Helper()
	f := &fakeStytch{body: body}
	ts := httptest.NewServer(f)
	t.Cleanup(ts.Close)
	return f, ts
}

func (f *fakeStytch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.seen = append(f.seen, r.Clone(r.Context()))
	body := f.body
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if user, pass, ok := r.BasicAuth(); !ok || user != stytchProject || pass != stytchSecret {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, stytchError(401, "unauthorized_credentials", "Unauthorized credentials."))
		return
	}
	if r.Method != http.MethodGet || r.URL.Path != "/v1/b2b/rbac/policy" {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, stytchError(404, "route_not_found", "Route not found."))
		return
	}
	io.WriteString(w, body)
}

func (f *fakeStytch) set(body string) {
	f.mu.Lock()
	f.body = body
	f.mu.Unlock()
}

func (f *fakeStytch) requests() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.seen)
}

func stytchError(status int, typ, msg string) string {
	b, _ := json.Marshal(map[string]any{
		"status_code":   status,
		"request_id":    stytchRequest,
		"error_type":    typ,
		"error_message": msg,
		"error_url":     fmt.Sprintf("https://stytch.com/docs/api-reference/b2b/api/errors/%d#%s", status, typ),
	})
	return string(b)
}

func newStytch(t *testing.T, cfg stytch.Config) *stytch.Upstream {
	t.Helper()
	if cfg.ProjectID == "" {
		cfg.ProjectID = stytchProject
	}
	if cfg.Secret == "" {
		cfg.Secret = stytchSecret
	}
	s, err := stytch.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// assertNoSecret fails if s shows the secret or the basic-auth token made
// from it.
func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	basic := base64.StdEncoding.EncodeToString([]byte(stytchProject + ":" + stytchSecret))
	if strings.Contains(s, stytchSecret) || strings.Contains(s, basic) || strings.Contains(s, stytchSecret[7:20]) {
		t.Errorf("%s shows the secret: %s", what, s)
	}
}

func TestStytchConvertsPolicy(t *testing.T) {
	_, ts := newFakeStytch(t, stytchPolicyJSON)
	up := newStytch(t, stytch.Config{BaseURL: ts.URL})
	doc, err := up.Fetch(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}

	got := refreshtest.ParseDoc(t, doc)
	want := stytchWantPolicy()
	// The document carries no revision; policyfile names it by content,
	// which is a prefix of the ETag.
	want.Revision = policyfile.ContentRevision(doc.Data)
	if !strings.HasPrefix(doc.ETag, want.Revision) {
		t.Errorf("revision %q is not a prefix of etag %q", want.Revision, doc.ETag)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("canonical policy (-want +got):\n%s", diff)
	}

	snap, err := policyfile.Compile(doc.Data, doc.Format)
	if err != nil {
		t.Fatalf("the document does not compile: %v", err)
	}
	if c := snap.Counts(); c != (pdp.Counts{Resources: 5, Roles: 4}) {
		t.Errorf("counts = %+v, want 5 resources, 4 roles, no organizations or subjects", c)
	}
	for _, tc := range []struct {
		roles            []string
		resource, action string
		allowed          bool
		reason           pdp.Reason
		matched          string
	}{
		{[]string{"limited_admin"}, "document", "create", true, pdp.Granted, "limited_admin"},
		{[]string{"limited_admin"}, "document", "download", true, pdp.Granted, "limited_admin"},
		{[]string{"limited_admin"}, "document", "delete", false, pdp.NoPermission, ""},
		{[]string{"limited_admin"}, "stytch.organization", "update.info.name", true, pdp.Granted, "limited_admin"},
		{[]string{"limited_admin"}, "stytch.organization", "update.info.slug", false, pdp.NoPermission, ""},
		{[]string{"limited_admin"}, "document", "share", false, pdp.UnknownAction, ""},
		{[]string{"stytch_admin"}, "stytch.member", "search", true, pdp.Granted, "stytch_admin"},
		{[]string{"stytch_admin"}, "stytch.sso", "delete", true, pdp.Granted, "stytch_admin"},
		{[]string{"stytch_admin"}, "document", "download", false, pdp.NoPermission, ""},
		{[]string{"stytch_member"}, "stytch.self", "update.info.name", true, pdp.Granted, "stytch_member"},
		{[]string{"stytch_member"}, "stytch.member", "delete", false, pdp.NoPermission, ""},
		{[]string{"stytch_member", "limited_admin"}, "document", "create", true, pdp.Granted, "limited_admin"},
		{[]string{"scope:download:documents"}, "document", "download", true, pdp.Granted, "scope:download:documents"},
		{[]string{"scope:download:documents"}, "document", "create", false, pdp.NoPermission, ""},
		{[]string{"limited_admin"}, "invoice", "read", false, pdp.UnknownResource, ""},
	} {
		d := snap.DecideRoles(tc.roles, tc.resource, tc.action)
		if d.Allowed != tc.allowed || d.Reason != tc.reason || d.MatchedRole != tc.matched {
			t.Errorf("DecideRoles(%v, %s, %s) = allowed %v, %v, role %q; want %v, %v, %q",
				tc.roles, tc.resource, tc.action, d.Allowed, d.Reason, d.MatchedRole, tc.allowed, tc.reason, tc.matched)
		}
	}
}

func TestStytchSendsBasicAuthToPolicyEndpoint(t *testing.T) {
	f, ts := newFakeStytch(t, stytchPolicyJSON)
	up := newStytch(t, stytch.Config{BaseURL: ts.URL + "/"})
	if _, err := up.Fetch(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodGet || r.URL.Path != "/v1/b2b/rbac/policy" || r.URL.RawQuery != "" {
		t.Errorf("request = %s %s, want GET /v1/b2b/rbac/policy", r.Method, r.URL)
	}
	user, pass, ok := r.BasicAuth()
	if !ok || user != stytchProject || pass != stytchSecret {
		t.Errorf("basic auth = %q, %q, %v; want the project id and secret", user, "(hidden)", ok)
	}
	if got := r.Header.Get("Accept"); got != "application/json" {
		t.Errorf("Accept = %q, want application/json", got)
	}
}

func TestStytchETag(t *testing.T) {
	f, ts := newFakeStytch(t, stytchPolicyJSON)
	up := newStytch(t, stytch.Config{BaseURL: ts.URL})
	first, err := up.Fetch(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}

	// Unchanged: no document.
	if doc, err := up.Fetch(t.Context(), first.ETag); !errors.Is(err, refresh.ErrNotModified) {
		t.Fatalf("unchanged policy with its etag: doc %q, err %v; want ErrNotModified", doc.ETag, err)
	}
	// Without an etag, the same document again.
	again, err := up.Fetch(t.Context(), "")
	if err != nil || again.ETag != first.ETag || string(again.Data) != string(first.Data) {
		t.Fatalf("refetch without etag: etag %q, err %v; want the same document", again.ETag, err)
	}
	// The same policy in another order is not a change.
	f.set(reorderStytch(t, stytchPolicyJSON))
	if doc, err := up.Fetch(t.Context(), first.ETag); !errors.Is(err, refresh.ErrNotModified) {
		t.Fatalf("reordered policy with the previous etag: doc %q, err %v; want ErrNotModified", doc.ETag, err)
	}
	// A changed policy has a new etag.
	changed := strings.Replace(stytchPolicyJSON, `"actions": ["create", "download"]`, `"actions": ["create", "download", "update"]`, 1)
	if changed == stytchPolicyJSON {
		t.Fatal("the fixture did not change")
	}
	f.set(changed)
	doc, err := up.Fetch(t.Context(), first.ETag)
	if err != nil {
		t.Fatalf("changed policy: %v", err)
	}
	if doc.ETag == first.ETag || doc.ETag == "" {
		t.Fatalf("changed policy kept etag %q", doc.ETag)
	}
	snap, err := policyfile.Compile(doc.Data, doc.Format)
	if err != nil {
		t.Fatal(err)
	}
	if d := snap.DecideRoles([]string{"limited_admin"}, "document", "update"); !d.Allowed {
		t.Errorf("after the change, limited_admin may not update documents: %v", d.Reason)
	}
}

// reorderStytch reverses every list in a Get RBAC Policy response.
func reorderStytch(t *testing.T, body string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		case []any:
			slices.Reverse(v)
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(v)
	b, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if string(b) == body {
		t.Fatal("reordering changed nothing")
	}
	return string(b)
}

func TestStytchDefinesReferencedResourcesAndActions(t *testing.T) {
	// limited_admin grants "share", which the document resource does not
	// list; the roles reference stytch.scim, which the resources list lacks;
	// stytch.organization lists Stytch's reserved "*".
	body := stytchPolicyWith(`{
	  "resources": [
	    {"resource_id": "document", "description": "Documents", "actions": ["create", "download"]},
	    {"resource_id": "stytch.organization", "description": "Stytch Organization", "actions": ["*", "update.info.name", "delete"]}
	  ],
	  "roles": [
	    {"role_id": "stytch_admin", "description": "", "permissions": [
	      {"resource_id": "stytch.organization", "actions": ["*"]},
	      {"resource_id": "stytch.scim", "actions": ["*"]}
	    ]},
	    {"role_id": "limited_admin", "description": "", "permissions": [
	      {"resource_id": "document", "actions": ["share", "create"]},
	      {"resource_id": "stytch.scim", "actions": ["update"]}
	    ]},
	    {"role_id": "auditor", "description": "", "permissions": []}
	  ],
	  "scopes": [
	    {"scope": "read:reports", "description": "", "permissions": [
	      {"resource_id": "report", "actions": ["read", "export"]}
	    ]}
	  ]
	}`)
	_, ts := newFakeStytch(t, body)
	doc, err := newStytch(t, stytch.Config{BaseURL: ts.URL}).Fetch(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	got := refreshtest.ParseDoc(t, doc)
	wantResources := []pdp.Resource{
		{ID: "document", Description: "Documents", Actions: []string{"create", "download", "share"}},
		{ID: "report", Actions: []string{"export", "read"}},
		{ID: "stytch.organization", Description: "Stytch Organization", Actions: []string{"delete", "update.info.name"}},
		{ID: "stytch.scim", Actions: []string{"update"}},
	}
	if diff := cmp.Diff(wantResources, got.Resources, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("resources (-want +got):\n%s", diff)
	}
	if ids := roleIDs(got); !slices.Equal(ids, []string{"auditor", "limited_admin", "scope:read:reports", "stytch_admin"}) {
		t.Errorf("roles = %v", ids)
	}

	snap, err := policyfile.Compile(doc.Data, doc.Format)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		role, resource, action string
		allowed                bool
	}{
		{"limited_admin", "document", "share", true},
		{"limited_admin", "stytch.scim", "update", true},
		{"stytch_admin", "stytch.scim", "update", true},
		{"stytch_admin", "document", "share", false},
		{"scope:read:reports", "report", "export", true},
		{"auditor", "document", "create", false},
	} {
		if d := snap.DecideRoles([]string{tc.role}, tc.resource, tc.action); d.Allowed != tc.allowed {
			t.Errorf("DecideRoles(%s, %s, %s) = %v (%v), want %v", tc.role, tc.resource, tc.action, d.Allowed, d.Reason, tc.allowed)
		}
	}
}

func roleIDs(p *pdp.Policy) []string {
	var ids []string
	for _, r := range p.Roles {
		ids = append(ids, r.ID)
	}
	return ids
}

func TestStytchFetchErrors(t *testing.T) {
	basic := base64.StdEncoding.EncodeToString([]byte(stytchProject + ":" + stytchSecret))
	body := func(s string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, s)
		}
	}
	status := func(code int, s string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			io.WriteString(w, s)
		}
	}
	half := stytchPolicyJSON[:len(stytchPolicyJSON)/2]
	bigDescription := strings.Repeat("x", 4096)

	for _, tc := range []struct {
		name     string
		handler  http.HandlerFunc
		maxBytes int64
		want     []string
	}{
		{"401 credentials refused",
			status(401, stytchError(401, "unauthorized_credentials", "Unauthorized credentials.")),
			0, []string{"401 Unauthorized", "refused the credentials", "unauthorized_credentials", stytchRequest}},
		{"403 refused",
			status(403, stytchError(403, "use_https", "Please use https instead of http.")),
			0, []string{"403 Forbidden", "refused the credentials", "use_https"}},
		{"401 whose message echoes the secret and the authorization header",
			func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(401)
				io.WriteString(w, stytchError(401, "unauthorized_credentials", "bad secret "+stytchSecret+" in "+r.Header.Get("Authorization")))
			},
			0, []string{"401 Unauthorized", "[redacted]"}},
		{"500 internal error",
			status(500, stytchError(500, "internal_server_error", "Oops, something seems to have gone wrong, please reach out to support@stytch.com to let us know what went wrong.")),
			0, []string{"500 Internal Server Error", "internal_server_error"}},
		{"503 from a proxy, not JSON",
			func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(503)
				io.WriteString(w, "<html><body>Service Unavailable</body></html>")
			},
			0, []string{"503 Service Unavailable"}},
		{"429 rate limited",
			status(429, stytchError(429, "too_many_requests", "Too many requests have been made.")),
			0, []string{"429 Too Many Requests", "too_many_requests"}},
		{"error message with a forged log line",
			status(500, stytchError(500, "internal_server_error", "oops\nlevel=INFO msg=\"all good\"")),
			0, []string{"500 Internal Server Error", `oops level=INFO`}},
		{"redirect is not followed",
			func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "https://attacker.example/steal", http.StatusFound)
			},
			0, []string{"302 Found"}},
		{"invalid JSON", body(`{"request_id": "x", "policy": {`), 0, []string{"decoding the response"}},
		{"HTML instead of JSON", body(`<html>maintenance</html>`), 0, []string{"decoding the response"}},
		{"actions of the wrong type",
			body(stytchPolicyWith(`{"resources": [{"resource_id": "document", "actions": "create"}], "roles": [], "scopes": []}`)),
			0, []string{"decoding the response", "actions"}},
		{"trailing data", body(stytchPolicyJSON + `{}`), 0, []string{"decoding the response"}},
		{"no policy", body(`{"request_id": "` + stytchRequest + `", "status_code": 200}`), 0, []string{"has no policy"}},
		{"null policy", body(`{"request_id": "` + stytchRequest + `", "status_code": 200, "policy": null}`), 0, []string{"has no policy"}},
		{"no roles list",
			body(stytchPolicyWith(`{"resources": [{"resource_id": "document", "actions": ["read"]}]}`)),
			0, []string{"policy: has no roles list", stytchRequest}},
		{"no resources list",
			body(stytchPolicyWith(`{"roles": []}`)),
			0, []string{"policy: has no resources list"}},
		{"error body with status 200",
			body(stytchError(500, "internal_server_error", "Oops")),
			0, []string{"status_code 500"}},
		{"body over the limit",
			body(stytchPolicyWith(`{"resources": [{"resource_id": "document", "description": "` + bigDescription + `", "actions": ["read"]}], "roles": [], "scopes": []}`)),
			1024, []string{"over the 1024-byte limit"}},
		{"body shorter than its Content-Length",
			func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Length", strconv.Itoa(len(stytchPolicyJSON)))
				io.WriteString(w, half)
			},
			0, []string{"reading the response", "unexpected EOF"}},
		{"connection dropped mid-chunk",
			func(w http.ResponseWriter, r *http.Request) {
				conn, buf, err := w.(http.Hijacker).Hijack()
				if err != nil {
					panic(err)
				}
				defer conn.Close()
				buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
				fmt.Fprintf(buf, "%x\r\n%s\r\n", len(stytchPolicyJSON), half)
				buf.Flush()
			},
			0, []string{"reading the response", "unexpected EOF"}},
		{"duplicate resource_id",
			body(stytchPolicyWith(`{"resources": [
			  {"resource_id": "document", "actions": ["read"]},
			  {"resource_id": "document", "actions": ["write"]}], "roles": [], "scopes": []}`)),
			0, []string{`policy.resources[1].resource_id: duplicate resource_id "document" (first defined at policy.resources[0])`}},
		{"duplicate role_id",
			body(stytchPolicyWith(`{"resources": [], "roles": [
			  {"role_id": "limited_admin", "permissions": []},
			  {"role_id": "editor", "permissions": []},
			  {"role_id": "limited_admin", "permissions": []}], "scopes": []}`)),
			0, []string{`policy.roles[2].role_id: duplicate role_id "limited_admin" (first defined at policy.roles[0])`}},
		{"duplicate scope",
			body(stytchPolicyWith(`{"resources": [], "roles": [], "scopes": [
			  {"scope": "read:docs", "permissions": []},
			  {"scope": "read:docs", "permissions": []}]}`)),
			0, []string{`policy.scopes[1].scope: scope "read:docs" becomes role "scope:read:docs", which policy.scopes[0] already defines`}},
		{"scope whose role id a role already has",
			body(stytchPolicyWith(`{"resources": [], "roles": [{"role_id": "scope:read:docs", "permissions": []}],
			  "scopes": [{"scope": "read:docs", "permissions": []}]}`)),
			0, []string{`scope "read:docs" becomes role "scope:read:docs", which policy.roles[0] already defines`}},
		{"duplicate action on a resource",
			body(stytchPolicyWith(`{"resources": [{"resource_id": "document", "actions": ["read", "write", "read"]}], "roles": [], "scopes": []}`)),
			0, []string{`policy.resources[0].actions[2]: duplicate action "read" on resource "document"`}},
		{"duplicate action in a permission",
			body(stytchPolicyWith(`{"resources": [{"resource_id": "document", "actions": ["read"]}],
			  "roles": [{"role_id": "reader", "permissions": [{"resource_id": "document", "actions": ["read", "read"]}]}], "scopes": []}`)),
			0, []string{`policy.roles[0].permissions[0].actions[1]: duplicate action "read"`}},
		{"several problems at once",
			body(stytchPolicyWith(`{"resources": [{"resource_id": "", "actions": ["read"]}],
			  "roles": [{"role_id": "", "permissions": []}, {"role_id": "reader", "permissions": [{"resource_id": "document", "actions": []}]}],
			  "scopes": [{"scope": "", "permissions": []}]}`)),
			0, []string{"4 problems", "policy.resources[0].resource_id: is missing or empty", "policy.roles[0].role_id: is missing or empty",
				`policy.roles[1].permissions[0].actions: must list at least one action`, "policy.scopes[0].scope: is missing or empty"}},
		{"an id the canonical model rejects",
			body(stytchPolicyWith(`{"resources": [], "roles": [{"role_id": "admin ", "permissions": []}], "scopes": []}`)),
			0, []string{"does not validate", `"admin " has leading or trailing white space`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := httptest.NewServer(tc.handler)
			t.Cleanup(ts.Close)
			up := newStytch(t, stytch.Config{BaseURL: ts.URL, MaxBodyBytes: tc.maxBytes})
			doc, err := up.Fetch(t.Context(), "")
			if err == nil {
				t.Fatalf("Fetch succeeded with %d bytes; want an error", len(doc.Data))
			}
			if errors.Is(err, refresh.ErrNotModified) {
				t.Fatalf("err = %v, want a failure", err)
			}
			msg := err.Error()
			t.Log(msg)
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q\ndoes not contain %q", msg, w)
				}
			}
			if !strings.HasPrefix(msg, "stytch: GET "+ts.URL+"/v1/b2b/rbac/policy: ") {
				t.Errorf("error %q does not name the request", msg)
			}
			assertNoSecret(t, "error", msg)
			if strings.Contains(msg, basic) {
				t.Errorf("error shows the authorization header: %s", msg)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
		})
	}
}

func TestStytchConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  stytch.Config
		want []string
	}{
		{"nothing", stytch.Config{}, []string{"project id is required", "secret is required"}},
		{"secret with a trailing newline",
			stytch.Config{ProjectID: stytchProject, Secret: stytchSecret + "\n"},
			[]string{"secret has leading or trailing white space"}},
		{"project id with a colon",
			stytch.Config{ProjectID: "project:test", Secret: stytchSecret},
			[]string{`project id "project:test"`}},
		{"plain http to a remote host",
			stytch.Config{ProjectID: stytchProject, Secret: stytchSecret, BaseURL: "http://api.stytch.com"},
			[]string{"must be https"}},
		{"user info, query and a negative limit",
			stytch.Config{ProjectID: stytchProject, Secret: stytchSecret, BaseURL: "https://" + stytchProject + ":" + stytchSecret + "@api.stytch.com/?k=" + stytchSecret, MaxBodyBytes: -1},
			[]string{"must not carry user info", "must not have a query", "max body bytes -1"}},
		{"not a URL",
			stytch.Config{ProjectID: stytchProject, Secret: stytchSecret, BaseURL: "api.stytch.com"},
			[]string{`base URL "api.stytch.com": want an https URL`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up, err := stytch.New(tc.cfg)
			if err == nil {
				t.Fatalf("New succeeded: %v", up)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			assertNoSecret(t, "config error", err.Error())
		})
	}

	for _, base := range []string{"", "https://api.stytch.com", "https://stytch-proxy.internal/stytch/", "http://127.0.0.1:8080", "http://localhost:9", "http://[::1]:9"} {
		if _, err := stytch.New(stytch.Config{ProjectID: stytchProject, Secret: stytchSecret, BaseURL: base}); err != nil {
			t.Errorf("base URL %q: %v", base, err)
		}
	}
}

func TestStytchStringHidesSecret(t *testing.T) {
	up := newStytch(t, stytch.Config{BaseURL: "https://api.stytch.com"})
	if got := up.String(); got != "stytch:"+stytchProject {
		t.Errorf("String() = %q, want stytch:%s", got, stytchProject)
	}
	var u refresh.Upstream = up
	for _, s := range []string{fmt.Sprint(u), fmt.Sprintf("%v %+v %#v %s", up, up, up, up)} {
		assertNoSecret(t, "formatted upstream", s)
	}
}

// roundTrip records the request URL and answers with the fixture, so the
// default base URLs can be checked without the network.
type roundTrip struct {
	mu   sync.Mutex
	urls []string
}

func (rt *roundTrip) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	rt.urls = append(rt.urls, r.URL.String())
	rt.mu.Unlock()
	return &http.Response{
		StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{"Content-Type": {"application/json"}},
		Body:    io.NopCloser(strings.NewReader(stytchPolicyJSON)),
		Request: r,
	}, nil
}

func TestStytchDefaultBaseURL(t *testing.T) {
	for _, tc := range []struct{ project, want string }{
		{"project-test-6d2ba9a3", "https://test.stytch.com/v1/b2b/rbac/policy"},
		{"project-live-6d2ba9a3", "https://api.stytch.com/v1/b2b/rbac/policy"},
	} {
		rt := &roundTrip{}
		up, err := stytch.New(stytch.Config{ProjectID: tc.project, Secret: stytchSecret, HTTPClient: &http.Client{Transport: rt}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := up.Fetch(t.Context(), ""); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rt.urls, []string{tc.want}) {
			t.Errorf("%s: requested %v, want %s", tc.project, rt.urls, tc.want)
		}
	}
}
