package logto_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
	"github.com/rolecall/rolecall/refresh"
	"github.com/rolecall/rolecall/refresh/internal/refreshtest"
	"github.com/rolecall/rolecall/refresh/logto"
)

// ---- a fake Logto tenant ----
//
// logtoFake serves, on loopback, the OIDC token endpoint and the Management
// API routes the Logto upstream reads, with the real API's JSON shapes
// (camelCase, nullable fields as null, extra fields the upstream ignores),
// its pagination (page from 1, page_size at most 100 else 400, Total-Number
// header) and its authentication (client credentials with basic auth, the
// Management API indicator as resource, scope "all"; a bearer token on every
// API call, 401 otherwise). Shapes follow:
//
//	https://openapi.logto.io/authentication
//	https://docs.logto.io/integrate-logto/interact-with-management-api
//	https://github.com/logto-io/logto/blob/master/packages/core/src/middleware/koa-pagination.ts
//	https://openapi.logto.io/operation/operation-get-api-resources
//	https://openapi.logto.io/operation/operation-listresourcescopes
//	https://openapi.logto.io/operation/operation-listroles
//	https://openapi.logto.io/operation/operation-listrolescopes
//	https://github.com/logto-io/logto/blob/master/packages/core/src/routes/role.user.ts
//	https://openapi.logto.io/operation/operation-get-api-roles-parameter-applications
//	https://github.com/logto-io/logto/blob/master/packages/core/src/routes/organization-scope/index.ts
//	https://openapi.logto.io/dev/operation/operation-listorganizationroles.md
//	https://github.com/logto-io/logto/blob/master/packages/schemas/src/types/organization.ts
//	https://openapi.logto.io/operation/operation-get-api-organization-roles-parameter-scopes
//	https://openapi.logto.io/dev/operation/operation-get-api-organization-roles-parameter-resource-scopes
//	https://github.com/logto-io/logto/blob/master/packages/core/src/routes/organization/index.ts
//	https://openapi.logto.io/operation/operation-listorganizationusers
//	https://openapi.logto.io/dev/operation/operation-listorganizationapplications.md
//	https://openapi.logto.io/operation/operation-listorganizationjitemaildomains
//	https://github.com/logto-io/logto/blob/master/packages/core/src/routes/organization/jit/index.ts

type fakeLogtoScope struct{ ID, Name string }

type fakeLogtoResource struct {
	ID, Name, Indicator string
	Scopes              []fakeLogtoScope
}

type fakeLogtoRole struct {
	ID, Name, Description, Type string
	ScopeIDs                    []string
	UserIDs, AppIDs             []string
}

type fakeLogtoUser struct {
	ID, Username, Email string // "" email is null
	Suspended           bool
}

type fakeLogtoApp struct{ ID, Name string }

type fakeLogtoOrgRole struct {
	ID, Name, Description, Type string // "" description is null
	ScopeIDs, ResourceScopeIDs  []string
}

type fakeLogtoOrg struct {
	ID, Name, Description string
	// member id → organization role ids
	Users, Apps map[string][]string
	JITDomains  []string
	JITRoleIDs  []string
}

type fakeLogtoTenant struct {
	Resources []fakeLogtoResource
	Roles     []fakeLogtoRole
	Users     []fakeLogtoUser
	Apps      []fakeLogtoApp
	OrgScopes []fakeLogtoScope
	OrgRoles  []fakeLogtoOrgRole
	Orgs      []fakeLogtoOrg
}

// logtoPage records one list request and what it served.
type logtoPage struct {
	Path                      string
	Page, Size, Served, Total int
}

// logtoFault may answer a list request itself (returning true), given the
// whole list the fake would page through.
type logtoFault func(w http.ResponseWriter, r *http.Request, page, size int, items []any) bool

type logtoFake struct {
	t                       *testing.T
	srv                     *httptest.Server
	appID, secret, resource string

	mu     sync.Mutex
	tenant fakeLogtoTenant
	// legacyOrgRoles lists organization roles without embedded scopes, as
	// Logto versions before organization resource scopes did.
	legacyOrgRoles bool
	fault          logtoFault
	tokens         map[string]bool // valid access tokens
	issued         int
	tokenCalls     int
	pages          []logtoPage
}

const (
	logtoTestAppID  = "m2m-rolecall-sync"
	logtoTestSecret = "s3cr3t-Xq9vLw2Rk7"
	logtoOSSAPI     = "https://default.logto.app/api"
)

func newLogtoFake(t *testing.T, tenant fakeLogtoTenant) *logtoFake {
	t.Helper()
	f := &logtoFake{t: t, appID: logtoTestAppID, secret: logtoTestSecret, resource: logtoOSSAPI, tenant: tenant, tokens: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oidc/token", f.token)
	api := func(pattern string, list func(r *http.Request, tn *fakeLogtoTenant) ([]any, bool)) {
		mux.HandleFunc("GET "+pattern, func(w http.ResponseWriter, r *http.Request) {
			if !f.authorized(r) {
				logtoJSON(w, http.StatusUnauthorized, nil, map[string]any{"code": "auth.unauthorized", "message": "Unauthorized."})
				return
			}
			f.mu.Lock()
			items, found := list(r, &f.tenant)
			f.mu.Unlock()
			if !found {
				logtoJSON(w, http.StatusNotFound, nil, map[string]any{"code": "entity.not_exists_with_id", "message": "The entity does not exist."})
				return
			}
			f.list(w, r, items)
		})
	}
	api("/api/resources", func(_ *http.Request, tn *fakeLogtoTenant) ([]any, bool) {
		var out []any
		for _, res := range tn.Resources {
			out = append(out, logtoResourceJSON(res))
		}
		return out, true
	})
	api("/api/resources/{id}/scopes", func(r *http.Request, tn *fakeLogtoTenant) ([]any, bool) {
		res := tn.resource(r.PathValue("id"))
		if res == nil {
			return nil, false
		}
		var out []any
		for _, s := range res.Scopes {
			out = append(out, logtoScopeJSON(res.ID, s))
		}
		return out, true
	})
	api("/api/roles", func(_ *http.Request, tn *fakeLogtoTenant) ([]any, bool) {
		var out []any
		for _, role := range tn.Roles {
			out = append(out, map[string]any{
				"tenantId": "default", "id": role.ID, "name": role.Name, "description": role.Description,
				"type": role.Type, "isDefault": false,
				"usersCount": len(role.UserIDs), "featuredUsers": []any{},
				"applicationsCount": len(role.AppIDs), "featuredApplications": []any{},
			})
		}
		return out, true
	})
	api("/api/roles/{id}/scopes", func(r *http.Request, tn *fakeLogtoTenant) ([]any, bool) {
		role := tn.role(r.PathValue("id"))
		if role == nil {
			return nil, false
		}
		var out []any
		for _, sid := range role.ScopeIDs {
			res, s := tn.scope(sid)
			m := logtoScopeJSON(res.ID, s)
			m["resource"] = logtoResourceJSON(*res)
			out = append(out, m)
		}
		return out, true
	})
	api("/api/roles/{id}/users", func(r *http.Request, tn *fakeLogtoTenant) ([]any, bool) {
		role := tn.role(r.PathValue("id"))
		if role == nil {
			return nil, false
		}
		var out []any
		for _, id := range role.UserIDs {
			m := logtoUserJSON(tn.user(id))
			m["hasPassword"] = true
			out = append(out, m)
		}
		return out, true
	})
	api("/api/roles/{id}/applications", func(r *http.Request, tn *fakeLogtoTenant) ([]any, bool) {
		role := tn.role(r.PathValue("id"))
		if role == nil {
			return nil, false
		}
		var out []any
		for _, id := range role.AppIDs {
			out = append(out, logtoAppJSON(tn.app(id)))
		}
		return out, true
	})
	api("/api/organization-scopes", func(_ *http.Request, tn *fakeLogtoTenant) ([]any, bool) {
		var out []any
		for _, s := range tn.OrgScopes {
			out = append(out, map[string]any{"tenantId": "default", "id": s.ID, "name": s.Name, "description": nil})
		}
		return out, true
	})
	api("/api/organization-roles", func(_ *http.Request, tn *fakeLogtoTenant) ([]any, bool) {
		var out []any
		for _, role := range tn.OrgRoles {
			m := logtoOrgRoleJSON(role)
			if !f.legacyOrgRoles {
				scopes, resourceScopes := []any{}, []any{}
				for _, sid := range role.ScopeIDs {
					scopes = append(scopes, map[string]any{"id": sid, "name": tn.orgScope(sid).Name})
				}
				for _, sid := range role.ResourceScopeIDs {
					res, s := tn.scope(sid)
					resourceScopes = append(resourceScopes, map[string]any{"id": s.ID, "name": s.Name, "resource": map[string]any{"id": res.ID, "name": res.Name}})
				}
				m["scopes"], m["resourceScopes"] = scopes, resourceScopes
			}
			out = append(out, m)
		}
		return out, true
	})
	api("/api/organization-roles/{id}/scopes", func(r *http.Request, tn *fakeLogtoTenant) ([]any, bool) {
		role := tn.orgRole(r.PathValue("id"))
		if role == nil {
			return nil, false
		}
		var out []any
		for _, sid := range role.ScopeIDs {
			out = append(out, map[string]any{"tenantId": "default", "id": sid, "name": tn.orgScope(sid).Name, "description": nil})
		}
		return out, true
	})
	api("/api/organization-roles/{id}/resource-scopes", func(r *http.Request, tn *fakeLogtoTenant) ([]any, bool) {
		role := tn.orgRole(r.PathValue("id"))
		if role == nil {
			return nil, false
		}
		var out []any
		for _, sid := range role.ResourceScopeIDs {
			res, s := tn.scope(sid)
			out = append(out, logtoScopeJSON(res.ID, s))
		}
		return out, true
	})
	api("/api/organizations", func(_ *http.Request, tn *fakeLogtoTenant) ([]any, bool) {
		var out []any
		for _, o := range tn.Orgs {
			out = append(out, map[string]any{
				"tenantId": "default", "id": o.ID, "name": o.Name, "description": logtoNullable(o.Description),
				"customData": map[string]any{}, "isMfaRequired": false, "branding": map[string]any{}, "createdAt": 1700000000000,
			})
		}
		return out, true
	})
	members := func(kind string) func(r *http.Request, tn *fakeLogtoTenant) ([]any, bool) {
		return func(r *http.Request, tn *fakeLogtoTenant) ([]any, bool) {
			o := tn.org(r.PathValue("id"))
			if o == nil {
				return nil, false
			}
			m := o.Users
			if kind == "apps" {
				m = o.Apps
			}
			var out []any
			for _, id := range slices.Sorted(maps.Keys(m)) {
				var entity map[string]any
				if kind == "apps" {
					entity = logtoAppJSON(tn.app(id))
				} else {
					entity = logtoUserJSON(tn.user(id))
				}
				roles := []any{}
				for _, rid := range m[id] {
					roles = append(roles, map[string]any{"id": rid, "name": tn.orgRole(rid).Name})
				}
				entity["organizationRoles"] = roles
				out = append(out, entity)
			}
			return out, true
		}
	}
	api("/api/organizations/{id}/users", members("users"))
	api("/api/organizations/{id}/applications", members("apps"))
	api("/api/organizations/{id}/jit/email-domains", func(r *http.Request, tn *fakeLogtoTenant) ([]any, bool) {
		o := tn.org(r.PathValue("id"))
		if o == nil {
			return nil, false
		}
		var out []any
		for _, d := range o.JITDomains {
			out = append(out, map[string]any{"tenantId": "default", "organizationId": o.ID, "emailDomain": d})
		}
		return out, true
	})
	api("/api/organizations/{id}/jit/roles", func(r *http.Request, tn *fakeLogtoTenant) ([]any, bool) {
		o := tn.org(r.PathValue("id"))
		if o == nil {
			return nil, false
		}
		var out []any
		for _, rid := range o.JITRoleIDs {
			out = append(out, logtoOrgRoleJSON(*tn.orgRole(rid)))
		}
		return out, true
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("fake Logto: unexpected request %s %s", r.Method, r.URL)
		logtoJSON(w, http.StatusNotFound, nil, map[string]any{"code": "router.not_found"})
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// token is the client credentials grant of Logto's OIDC provider.
func (f *logtoFake) token(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokenCalls++
	if ua := r.Header.Get("User-Agent"); ua != "rolecall" {
		f.t.Errorf("token request User-Agent %q, want rolecall", ua)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		f.t.Errorf("token request Content-Type %q", ct)
	}
	if err := r.ParseForm(); err != nil {
		f.t.Errorf("token request form: %v", err)
	}
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	}
	if !ok || id != f.appID || secret != f.secret {
		logtoJSON(w, http.StatusUnauthorized, nil, map[string]any{"error": "invalid_client", "error_description": "client authentication failed"})
		return
	}
	if g := r.PostForm.Get("grant_type"); g != "client_credentials" {
		f.t.Errorf("grant_type %q", g)
		logtoJSON(w, http.StatusBadRequest, nil, map[string]any{"error": "unsupported_grant_type"})
		return
	}
	if res := r.PostForm.Get("resource"); res != f.resource {
		logtoJSON(w, http.StatusBadRequest, nil, map[string]any{"error": "invalid_target", "error_description": "resource indicator is missing, or unknown"})
		return
	}
	if s := r.PostForm.Get("scope"); s != "all" {
		f.t.Errorf("scope %q, want all", s)
	}
	f.issued++
	tok := fmt.Sprintf("at-%d", f.issued)
	f.tokens[tok] = true
	logtoJSON(w, http.StatusOK, nil, map[string]any{"access_token": tok, "expires_in": 3600, "token_type": "Bearer", "scope": "all"})
}

func (f *logtoFake) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	defer f.mu.Unlock()
	return ok && f.tokens[tok]
}

// revokeTokens invalidates every access token issued so far.
func (f *logtoFake) revokeTokens() {
	f.mu.Lock()
	f.tokens = map[string]bool{}
	f.mu.Unlock()
}

// list pages through items as koaPagination does.
func (f *logtoFake) list(w http.ResponseWriter, r *http.Request, items []any) {
	page, size := 1, 20
	q := r.URL.Query()
	var err error
	if v := q.Get("page"); v != "" {
		if page, err = strconv.Atoi(v); err != nil || page < 1 {
			logtoJSON(w, http.StatusBadRequest, nil, map[string]any{"code": "guard.invalid_pagination"})
			return
		}
	}
	if v := q.Get("page_size"); v != "" {
		if size, err = strconv.Atoi(v); err != nil || size < 1 || size > 100 {
			logtoJSON(w, http.StatusBadRequest, nil, map[string]any{"code": "guard.invalid_pagination"})
			return
		}
	}
	f.mu.Lock()
	fault := f.fault
	f.mu.Unlock()
	if fault != nil && fault(w, r, page, size, items) {
		return
	}
	served := logtoWritePage(w, items, page, size, len(items))
	f.mu.Lock()
	f.pages = append(f.pages, logtoPage{Path: r.URL.Path, Page: page, Size: size, Served: served, Total: len(items)})
	f.mu.Unlock()
}

// logtoWritePage writes one page of items with total as Total-Number.
func logtoWritePage(w http.ResponseWriter, items []any, page, size, total int) int {
	lo := min((page-1)*size, len(items))
	hi := min(lo+size, len(items))
	body := items[lo:hi]
	if body == nil {
		body = []any{}
	}
	logtoJSON(w, http.StatusOK, http.Header{"Total-Number": {strconv.Itoa(total)}}, body)
	return len(body)
}

func logtoJSON(w http.ResponseWriter, status int, h http.Header, v any) {
	for k, vs := range h {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *logtoFake) update(change func(tn *fakeLogtoTenant)) {
	f.mu.Lock()
	change(&f.tenant)
	f.mu.Unlock()
}

func (f *logtoFake) setFault(fault logtoFault) {
	f.mu.Lock()
	f.fault = fault
	f.mu.Unlock()
}

func (f *logtoFake) pageLog() []logtoPage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.pages)
}

func (f *logtoFake) tokenRequests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokenCalls
}

func (tn *fakeLogtoTenant) resource(id string) *fakeLogtoResource {
	for i := range tn.Resources {
		if tn.Resources[i].ID == id {
			return &tn.Resources[i]
		}
	}
	return nil
}

func (tn *fakeLogtoTenant) scope(id string) (*fakeLogtoResource, fakeLogtoScope) {
	for i := range tn.Resources {
		for _, s := range tn.Resources[i].Scopes {
			if s.ID == id {
				return &tn.Resources[i], s
			}
		}
	}
	panic("fake Logto: no scope " + id)
}

func (tn *fakeLogtoTenant) role(id string) *fakeLogtoRole {
	for i := range tn.Roles {
		if tn.Roles[i].ID == id {
			return &tn.Roles[i]
		}
	}
	return nil
}

func (tn *fakeLogtoTenant) user(id string) fakeLogtoUser {
	for _, u := range tn.Users {
		if u.ID == id {
			return u
		}
	}
	panic("fake Logto: no user " + id)
}

func (tn *fakeLogtoTenant) app(id string) fakeLogtoApp {
	for _, a := range tn.Apps {
		if a.ID == id {
			return a
		}
	}
	panic("fake Logto: no application " + id)
}

func (tn *fakeLogtoTenant) orgScope(id string) fakeLogtoScope {
	for _, s := range tn.OrgScopes {
		if s.ID == id {
			return s
		}
	}
	panic("fake Logto: no organization scope " + id)
}

func (tn *fakeLogtoTenant) orgRole(id string) *fakeLogtoOrgRole {
	for i := range tn.OrgRoles {
		if tn.OrgRoles[i].ID == id {
			return &tn.OrgRoles[i]
		}
	}
	return nil
}

func (tn *fakeLogtoTenant) org(id string) *fakeLogtoOrg {
	for i := range tn.Orgs {
		if tn.Orgs[i].ID == id {
			return &tn.Orgs[i]
		}
	}
	return nil
}

func logtoNullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func logtoResourceJSON(r fakeLogtoResource) map[string]any {
	return map[string]any{"tenantId": "default", "id": r.ID, "name": r.Name, "indicator": r.Indicator, "isDefault": false, "accessTokenTtl": 3600}
}

func logtoScopeJSON(resourceID string, s fakeLogtoScope) map[string]any {
	return map[string]any{"tenantId": "default", "id": s.ID, "resourceId": resourceID, "name": s.Name, "description": nil, "createdAt": 1700000000000}
}

func logtoUserJSON(u fakeLogtoUser) map[string]any {
	return map[string]any{
		"id": u.ID, "username": u.Username, "primaryEmail": logtoNullable(u.Email), "primaryPhone": nil,
		"name": nil, "avatar": nil, "customData": map[string]any{}, "identities": map[string]any{},
		"lastSignInAt": nil, "createdAt": 1700000000000, "updatedAt": 1700000000000,
		"profile": map[string]any{}, "applicationId": nil, "isSuspended": u.Suspended,
	}
}

// logtoAppJSON carries the internal client secret, as the real API does; it
// must never reach the policy document.
func logtoAppJSON(a fakeLogtoApp) map[string]any {
	return map[string]any{
		"tenantId": "default", "id": a.ID, "name": a.Name, "secret": "internal-app-secret-" + a.ID,
		"description": nil, "type": "MachineToMachine",
		"oidcClientMetadata":   map[string]any{"redirectUris": []any{}, "postLogoutRedirectUris": []any{}},
		"customClientMetadata": map[string]any{}, "protectedAppMetadata": nil, "customData": map[string]any{},
		"isThirdParty": false, "createdAt": 1700000000000,
	}
}

func logtoOrgRoleJSON(r fakeLogtoOrgRole) map[string]any {
	return map[string]any{"tenantId": "default", "id": r.ID, "name": r.Name, "description": logtoNullable(r.Description), "type": r.Type}
}

// ---- Logto's bookstore example ----

const (
	lgOrders   = "https://api.store.io/orders"
	lgProducts = "https://api.store.io/products"

	lgResOrders, lgResProducts                    = "res7orders0000000001", "res7products00000001"
	lgReadOrder, lgWriteOrder, lgDeleteOrder      = "scp-read-order", "scp-write-order", "scp-delete-order"
	lgReadProduct, lgWriteProduct, lgDelProduct   = "scp-read-product", "scp-write-product", "scp-delete-product"
	lgOrderAdmin, lgProductAdmin, lgCatalogSync   = "rol-k2h8orderadmin01", "rol-p9x1productadm01", "rol-m4c7catalogsync1"
	lgAlice, lgCarol, lgDave, lgErin, lgFrank     = "u-alice", "u-carol", "u-dave", "u-erin", "u-frank"
	lgSvcSync                                     = "app-svc-sync"
	lgReadMember, lgInviteMember                  = "osc-read-member", "osc-invite-member"
	lgOrgAdmin, lgOrgMember, lgOrgIntegration     = "orl-admin-7d2k", "orl-member-3f8q", "orl-integration-9z"
	lgAcme, lgGlobex                              = "org-acme-4k2p", "org-globex-9x1z"
	lgOrganization                                = "organization"
	lgOrgPermissionsDescription                   = "Logto organization permissions (organization template scopes)"
	lgUserRole, lgM2MRole                         = "User", "MachineToMachine"
	lgAliceEmail, lgCarolEmail, lgDaveEmail       = "alice@acme.com", "carol@globex.com", "dave@acme.com"
	lgOrderAdminDesc, lgProductAdminDesc, lgCSDes = "Manages orders", "Manages products", "Syncs the catalog"
)

func logtoBookstore() fakeLogtoTenant {
	return fakeLogtoTenant{
		Resources: []fakeLogtoResource{
			{ID: lgResOrders, Name: "Orders API", Indicator: lgOrders, Scopes: []fakeLogtoScope{
				{lgReadOrder, "read:order"}, {lgWriteOrder, "write:order"}, {lgDeleteOrder, "delete:order"}}},
			{ID: lgResProducts, Name: "Products API", Indicator: lgProducts, Scopes: []fakeLogtoScope{
				{lgReadProduct, "read:product"}, {lgWriteProduct, "write:product"}, {lgDelProduct, "delete:product"}}},
		},
		Roles: []fakeLogtoRole{
			{ID: lgOrderAdmin, Name: "order_admin", Description: lgOrderAdminDesc, Type: lgUserRole,
				ScopeIDs: []string{lgReadOrder, lgWriteOrder, lgDeleteOrder, lgReadProduct}, UserIDs: []string{lgAlice, lgCarol}},
			{ID: lgProductAdmin, Name: "product_admin", Description: lgProductAdminDesc, Type: lgUserRole,
				ScopeIDs: []string{lgReadProduct, lgWriteProduct, lgDelProduct}, UserIDs: []string{lgCarol, lgFrank}},
			{ID: lgCatalogSync, Name: "catalog_sync", Description: lgCSDes, Type: lgM2MRole,
				ScopeIDs: []string{lgReadProduct, lgWriteProduct}, AppIDs: []string{lgSvcSync}},
		},
		Users: []fakeLogtoUser{
			{ID: lgAlice, Username: "alice", Email: lgAliceEmail},
			{ID: lgCarol, Username: "carol", Email: lgCarolEmail},
			{ID: lgDave, Username: "dave", Email: lgDaveEmail},
			{ID: lgErin, Username: "erin"},
			{ID: lgFrank, Username: "frank", Email: "frank@acme.com", Suspended: true},
		},
		Apps:      []fakeLogtoApp{{ID: lgSvcSync, Name: "svc-sync"}},
		OrgScopes: []fakeLogtoScope{{lgReadMember, "read:member"}, {lgInviteMember, "invite:member"}},
		OrgRoles: []fakeLogtoOrgRole{
			{ID: lgOrgAdmin, Name: "admin", Description: "Organization administrator", Type: lgUserRole,
				ScopeIDs: []string{lgReadMember, lgInviteMember}, ResourceScopeIDs: []string{lgReadOrder, lgWriteOrder}},
			{ID: lgOrgMember, Name: "member", Description: "Organization member", Type: lgUserRole,
				ScopeIDs: []string{lgReadMember}},
			{ID: lgOrgIntegration, Name: "integration", Type: lgM2MRole, ResourceScopeIDs: []string{lgReadOrder}},
		},
		Orgs: []fakeLogtoOrg{
			{ID: lgAcme, Name: "Acme", Description: "Acme Corp",
				Users:      map[string][]string{lgDave: {lgOrgAdmin}},
				Apps:       map[string][]string{lgSvcSync: {lgOrgIntegration}},
				JITDomains: []string{"acme.com"}, JITRoleIDs: []string{lgOrgMember}},
			{ID: lgGlobex, Name: "Globex",
				Users: map[string][]string{lgDave: {lgOrgMember}, lgErin: {}}},
		},
	}
}

// logtoBookstorePolicy is the canonical policy of logtoBookstore.
func logtoBookstorePolicy() *pdp.Policy {
	return &pdp.Policy{
		Resources: []pdp.Resource{
			{ID: lgOrders, Description: "Orders API", Actions: []string{"delete:order", "read:order", "write:order"}},
			{ID: lgProducts, Description: "Products API", Actions: []string{"delete:product", "read:product", "write:product"}},
			{ID: lgOrganization, Description: lgOrgPermissionsDescription, Actions: []string{"invite:member", "read:member"}},
		},
		Roles: []pdp.Role{
			{ID: "admin", Type: pdp.RoleOrganization, Description: "Organization administrator", Permissions: []pdp.Grant{
				{Resource: lgOrders, Actions: []string{"read:order", "write:order"}},
				{Resource: lgOrganization, Actions: []string{"invite:member", "read:member"}}}},
			{ID: "catalog_sync", Type: pdp.RoleM2M, Description: lgCSDes, Permissions: []pdp.Grant{
				{Resource: lgProducts, Actions: []string{"read:product", "write:product"}}}},
			{ID: "integration", Type: pdp.RoleOrganization, Permissions: []pdp.Grant{
				{Resource: lgOrders, Actions: []string{"read:order"}}}},
			{ID: "member", Type: pdp.RoleOrganization, Description: "Organization member", Permissions: []pdp.Grant{
				{Resource: lgOrganization, Actions: []string{"read:member"}}}},
			{ID: "order_admin", Type: pdp.RoleUser, Description: lgOrderAdminDesc, Permissions: []pdp.Grant{
				{Resource: lgOrders, Actions: []string{"delete:order", "read:order", "write:order"}},
				{Resource: lgProducts, Actions: []string{"read:product"}}}},
			{ID: "product_admin", Type: pdp.RoleUser, Description: lgProductAdminDesc, Permissions: []pdp.Grant{
				{Resource: lgProducts, Actions: []string{"delete:product", "read:product", "write:product"}}}},
		},
		Organizations: []pdp.Organization{
			{ID: lgAcme, Name: "Acme", Description: "Acme Corp"},
			{ID: lgGlobex, Name: "Globex"},
		},
		Subjects: []pdp.Subject{
			{ID: lgSvcSync, Type: pdp.SubjectM2M, Roles: []string{"catalog_sync"}, Memberships: map[string][]string{lgAcme: {"integration"}}},
			{ID: lgAlice, Type: pdp.SubjectUser, Email: lgAliceEmail, Roles: []string{"order_admin"}},
			{ID: lgCarol, Type: pdp.SubjectUser, Email: lgCarolEmail, Roles: []string{"order_admin", "product_admin"}},
			{ID: lgDave, Type: pdp.SubjectUser, Email: lgDaveEmail, Memberships: map[string][]string{lgAcme: {"admin"}, lgGlobex: {"member"}}},
			// A member without roles; frank, suspended, is left out.
			{ID: lgErin, Type: pdp.SubjectUser, Memberships: map[string][]string{lgGlobex: {}}},
		},
	}
}

// ---- helpers ----

func newLogtoUpstream(t *testing.T, f *logtoFake, change func(*logto.Config)) *logto.Upstream {
	t.Helper()
	cfg := logto.Config{Endpoint: f.srv.URL, AppID: logtoTestAppID, AppSecret: logtoTestSecret, HTTPClient: f.srv.Client()}
	if change != nil {
		change(&cfg)
	}
	l, err := logto.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func logtoFetch(t *testing.T, l *logto.Upstream, etag string) refresh.Document {
	t.Helper()
	doc, err := l.Fetch(context.Background(), etag)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return doc
}

func logtoDiff(want, got *pdp.Policy) string {
	return cmp.Diff(want, got, cmpopts.IgnoreFields(pdp.Policy{}, "Revision"), cmpopts.EquateEmpty())
}

func logtoCompile(t *testing.T, doc refresh.Document) *pdp.Snapshot {
	t.Helper()
	snap, err := policyfile.Compile(doc.Data, doc.Format)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return snap
}

type logtoCheck struct {
	q      pdp.Query
	allow  bool
	reason pdp.Reason
	role   string
}

func logtoDecide(t *testing.T, snap *pdp.Snapshot, checks []logtoCheck) {
	t.Helper()
	for _, c := range checks {
		d := snap.Decide(c.q)
		if d.Allowed != c.allow || d.Reason != c.reason || d.MatchedRole != c.role {
			t.Errorf("Decide(%+v) = allowed %v, %v, role %q; want %v, %v, role %q", c.q, d.Allowed, d.Reason, d.MatchedRole, c.allow, c.reason, c.role)
		}
	}
}

// ---- tests ----

func TestLogtoConvertsBookstore(t *testing.T) {
	f := newLogtoFake(t, logtoBookstore())
	l := newLogtoUpstream(t, f, nil)
	doc := logtoFetch(t, l, "")
	if diff := logtoDiff(logtoBookstorePolicy(), refreshtest.ParseDoc(t, doc)); diff != "" {
		t.Errorf("policy (-want +got):\n%s", diff)
	}
	if strings.Contains(string(doc.Data), "internal-app-secret") {
		t.Error("an application's internal secret reached the document")
	}
	if n := f.tokenRequests(); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}

	snap := logtoCompile(t, doc)
	checks := []logtoCheck{
		{pdp.Query{Subject: lgDave, Org: lgAcme, Resource: lgOrganization, Action: "invite:member"}, true, pdp.Granted, "admin"},
		{pdp.Query{Subject: lgDave, Org: lgGlobex, Resource: lgOrganization, Action: "invite:member"}, false, pdp.NoPermission, ""},
		{pdp.Query{Subject: lgDave, Org: lgGlobex, Resource: lgOrganization, Action: "read:member"}, true, pdp.Granted, "member"},
		{pdp.Query{Subject: lgDave, Org: lgAcme, Resource: lgOrders, Action: "write:order"}, true, pdp.Granted, "admin"},
		{pdp.Query{Subject: lgDave, Org: lgAcme, Resource: lgOrders, Action: "delete:order"}, false, pdp.NoPermission, ""},
		{pdp.Query{Subject: lgDave, Resource: lgOrders, Action: "read:order"}, false, pdp.NoPermission, ""},
		{pdp.Query{Subject: lgSvcSync, Resource: lgProducts, Action: "write:product"}, true, pdp.Granted, "catalog_sync"},
		{pdp.Query{Subject: lgSvcSync, Resource: lgProducts, Action: "delete:product"}, false, pdp.NoPermission, ""},
		{pdp.Query{Subject: lgSvcSync, Org: lgAcme, Resource: lgOrders, Action: "read:order"}, true, pdp.Granted, "integration"},
		{pdp.Query{Subject: lgSvcSync, Org: lgGlobex, Resource: lgOrders, Action: "read:order"}, false, pdp.NotAMember, ""},
		{pdp.Query{Subject: lgAlice, Resource: lgProducts, Action: "write:product"}, false, pdp.NoPermission, ""},
		{pdp.Query{Subject: lgAlice, Org: lgAcme, Resource: lgOrganization, Action: "read:member"}, false, pdp.NotAMember, ""},
		{pdp.Query{Subject: lgErin, Org: lgGlobex, Resource: lgOrganization, Action: "read:member"}, false, pdp.NoPermission, ""},
		{pdp.Query{Subject: lgFrank, Resource: lgProducts, Action: "read:product"}, false, pdp.UnknownSubject, ""},
	}
	for _, res := range []string{lgOrders, lgProducts} {
		noun := strings.TrimSuffix(res[strings.LastIndex(res, "/")+1:], "s")
		for _, verb := range []string{"read", "write", "delete"} {
			role := "order_admin"
			if res == lgProducts && verb != "read" {
				role = "product_admin"
			}
			checks = append(checks, logtoCheck{pdp.Query{Subject: lgCarol, Resource: res, Action: verb + ":" + noun}, true, pdp.Granted, role})
		}
	}
	logtoDecide(t, snap, checks)

	// The cached access token serves the next fetch.
	logtoFetch(t, l, "")
	if n := f.tokenRequests(); n != 1 {
		t.Errorf("%d token requests after two fetches, want 1 (token cached)", n)
	}
}

// logtoBulk is the bookstore with more entries than a page of 2 holds.
func logtoBulk() fakeLogtoTenant {
	tn := logtoBookstore()
	for i := range 5 {
		id := fmt.Sprintf("u-bulk%d", i)
		tn.Users = append(tn.Users, fakeLogtoUser{ID: id, Username: "bulk" + strconv.Itoa(i), Email: "bulk" + strconv.Itoa(i) + "@globex.com"})
		tn.role(lgProductAdmin).UserIDs = append(tn.role(lgProductAdmin).UserIDs, id)
		tn.org(lgAcme).Users[id] = []string{lgOrgMember}
	}
	for i := range 3 {
		tn.Orgs = append(tn.Orgs, fakeLogtoOrg{ID: fmt.Sprintf("org-bulk%d", i), Name: fmt.Sprintf("Bulk %d", i)})
	}
	return tn
}

func TestLogtoReadsEveryPage(t *testing.T) {
	f := newLogtoFake(t, logtoBulk())
	whole := logtoFetch(t, newLogtoUpstream(t, f, nil), "")
	f.update(func(*fakeLogtoTenant) { f.pages = nil })
	paged := logtoFetch(t, newLogtoUpstream(t, f, func(c *logto.Config) { c.PageSize = 2 }), "")
	if string(paged.Data) != string(whole.Data) {
		t.Fatalf("pages of 2 and of 100 give different documents:\n%s\n%s", paged.Data, whole.Data)
	}
	p := refreshtest.ParseDoc(t, paged)
	if len(p.Subjects) != 10 || len(p.Organizations) != 5 {
		t.Errorf("%d subjects and %d organizations, want 10 and 5", len(p.Subjects), len(p.Organizations))
	}

	// Every list was read page by page, each page once, up to its total.
	byPath := map[string][]logtoPage{}
	for _, pg := range f.pageLog() {
		if pg.Size != 2 {
			t.Errorf("%s page %d asked with page_size %d, want 2", pg.Path, pg.Page, pg.Size)
		}
		byPath[pg.Path] = append(byPath[pg.Path], pg)
	}
	multi := 0
	for path, pages := range byPath {
		slices.SortFunc(pages, func(a, b logtoPage) int { return a.Page - b.Page })
		total := pages[0].Total
		want := max(1, (total+1)/2)
		served := 0
		for i, pg := range pages {
			if pg.Page != i+1 {
				t.Errorf("%s: pages requested %v, want 1..%d each once", path, pages, want)
				break
			}
			served += pg.Served
		}
		if len(pages) != want || served != total {
			t.Errorf("%s: %d pages serving %d entries, want %d pages serving %d", path, len(pages), served, want, total)
		}
		if len(pages) > 2 {
			multi++
		}
	}
	if multi < 3 {
		t.Errorf("only %d lists took more than 2 pages; the test tenant is too small", multi)
	}
	for _, path := range []string{"/api/organizations", "/api/organizations/" + lgAcme + "/users", "/api/roles/" + lgProductAdmin + "/users"} {
		if len(byPath[path]) < 3 {
			t.Errorf("%s read in %d pages, want at least 3", path, len(byPath[path]))
		}
	}
}

func TestLogtoNotModifiedUntilTheTenantChanges(t *testing.T) {
	f := newLogtoFake(t, logtoBookstore())
	l := newLogtoUpstream(t, f, nil)
	first := logtoFetch(t, l, "")
	if _, err := l.Fetch(context.Background(), first.ETag); !errors.Is(err, refresh.ErrNotModified) {
		t.Fatalf("unchanged tenant: Fetch = %v, want ErrNotModified", err)
	}
	f.update(func(tn *fakeLogtoTenant) {
		tn.role(lgProductAdmin).UserIDs = append(tn.role(lgProductAdmin).UserIDs, lgAlice)
	})
	second := logtoFetch(t, l, first.ETag)
	if second.ETag == first.ETag {
		t.Fatal("the tenant changed but the ETag did not")
	}
	snap := logtoCompile(t, second)
	logtoDecide(t, snap, []logtoCheck{
		{pdp.Query{Subject: lgAlice, Resource: lgProducts, Action: "write:product"}, true, pdp.Granted, "product_admin"},
	})
	if _, err := l.Fetch(context.Background(), second.ETag); !errors.Is(err, refresh.ErrNotModified) {
		t.Fatalf("Fetch with the new tag = %v, want ErrNotModified", err)
	}
}

func TestLogtoPartialReadIsAnError(t *testing.T) {
	acmeUsers := "/api/organizations/" + lgAcme + "/users"
	for _, tc := range []struct {
		name, path string
		page       int // 0: every page
		answer     func(w http.ResponseWriter, page, size int, items []any)
		want       string
	}{
		{"page 2 of an organization's members fails", acmeUsers, 2,
			func(w http.ResponseWriter, _, _ int, _ []any) {
				logtoJSON(w, http.StatusInternalServerError, nil, map[string]any{"code": "unknown", "message": "Internal server error."})
			}, "GET " + acmeUsers + " page 2: HTTP 500"},
		{"a role is deleted while being read", "/api/roles/" + lgCatalogSync + "/scopes", 1,
			func(w http.ResponseWriter, _, _ int, _ []any) {
				logtoJSON(w, http.StatusNotFound, nil, map[string]any{"code": "entity.not_exists_with_id"})
			}, "HTTP 404"},
		{"not JSON", "/api/organizations", 1,
			func(w http.ResponseWriter, _, _ int, items []any) {
				w.Header().Set("Total-Number", strconv.Itoa(len(items)))
				_, _ = w.Write([]byte("<html>maintenance</html>"))
			}, "not a JSON array"},
		{"an object, not a list", "/api/roles", 1,
			func(w http.ResponseWriter, _, _ int, items []any) {
				logtoJSON(w, http.StatusOK, http.Header{"Total-Number": {strconv.Itoa(len(items))}}, map[string]any{"data": items})
			}, "not a JSON array"},
		{"entries of the wrong shape", "/api/resources", 1,
			func(w http.ResponseWriter, _, _ int, _ []any) {
				logtoJSON(w, http.StatusOK, http.Header{"Total-Number": {"1"}}, []any{map[string]any{"id": 7}})
			}, "unexpected JSON"},
		{"no Total-Number", "/api/resources", 1,
			func(w http.ResponseWriter, _, _ int, items []any) { logtoJSON(w, http.StatusOK, nil, items) },
			"no Total-Number"},
		{"a short page", "/api/roles/" + lgProductAdmin + "/users", 0,
			func(w http.ResponseWriter, page, size int, items []any) {
				logtoWritePage(w, items[:len(items)-1], page, size, len(items))
			}, "entries are missing"},
		{"the server ignores page", "/api/roles/" + lgProductAdmin + "/users", 0,
			func(w http.ResponseWriter, _, size int, items []any) { logtoWritePage(w, items, 1, size, len(items)) },
			"listed twice"},
		{"an endless list", "/api/organizations", 1,
			func(w http.ResponseWriter, page, size int, items []any) { logtoWritePage(w, items, page, size, 1<<40) },
			"over the limit"},
		{"the list grows while being read", acmeUsers, 2,
			func(w http.ResponseWriter, page, size int, items []any) {
				logtoWritePage(w, items, page, size, len(items)+1)
			}, "changed while being read"},
		{"members without their roles", acmeUsers, 0,
			func(w http.ResponseWriter, page, size int, items []any) {
				var stripped []any
				for _, it := range items {
					m := map[string]any{}
					for k, v := range it.(map[string]any) {
						if k != "organizationRoles" {
							m[k] = v
						}
					}
					stripped = append(stripped, m)
				}
				logtoWritePage(w, stripped, page, size, len(stripped))
			}, "without organizationRoles"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newLogtoFake(t, logtoBulk())
			var hits int
			f.setFault(func(w http.ResponseWriter, r *http.Request, page, size int, items []any) bool {
				if r.URL.Path != tc.path || (tc.page != 0 && page != tc.page) {
					return false
				}
				f.update(func(*fakeLogtoTenant) { hits++ })
				tc.answer(w, page, size, items)
				return true
			})
			l := newLogtoUpstream(t, f, func(c *logto.Config) { c.PageSize = 2 })
			doc, err := l.Fetch(context.Background(), "")
			if err == nil {
				t.Fatalf("Fetch succeeded on a partial read; document:\n%s", doc.Data)
			}
			if doc.Data != nil || doc.ETag != "" {
				t.Errorf("Fetch failed but returned a document: %+v", doc)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), logtoTestSecret) {
				t.Errorf("error %q contains the secret", err)
			}
			f.update(func(*fakeLogtoTenant) {
				if hits == 0 {
					t.Error("the fault was never reached")
				}
			})
		})
	}
}

func TestLogtoRefusedCredentials(t *testing.T) {
	f := newLogtoFake(t, logtoBookstore())
	l := newLogtoUpstream(t, f, func(c *logto.Config) { c.AppSecret = "wrong-" + logtoTestSecret })
	_, err := l.Fetch(context.Background(), "")
	if err == nil {
		t.Fatal("Fetch succeeded with a wrong secret")
	}
	msg := err.Error()
	if !strings.Contains(msg, "refused the credentials") || !strings.Contains(msg, logtoTestAppID) {
		t.Errorf("error %q should say the credentials of %s were refused", msg, logtoTestAppID)
	}
	if strings.Contains(msg, logtoTestSecret) {
		t.Errorf("error %q contains the secret", msg)
	}
	if pages := f.pageLog(); len(pages) != 0 {
		t.Errorf("the Management API was called without a token: %v", pages)
	}

	// A wrong resource indicator is a different, named problem.
	l = newLogtoUpstream(t, f, func(c *logto.Config) { c.Resource = "https://other.logto.app/api" })
	if _, err := l.Fetch(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "invalid_target") || strings.Contains(err.Error(), logtoTestSecret) {
		t.Errorf("wrong resource: error %v, want invalid_target without the secret", err)
	}
}

func TestLogtoRenewsARevokedToken(t *testing.T) {
	f := newLogtoFake(t, logtoBookstore())
	l := newLogtoUpstream(t, f, nil)
	first := logtoFetch(t, l, "")
	f.revokeTokens() // the API now answers 401 to the cached token
	second := logtoFetch(t, l, "")
	if string(second.Data) != string(first.Data) {
		t.Error("the document changed across a token renewal")
	}
	if n := f.tokenRequests(); n != 2 {
		t.Errorf("%d token requests, want 2: one, then one renewal", n)
	}

	// A server that refuses every token: one retry per request, then an error.
	f.setFault(func(w http.ResponseWriter, _ *http.Request, _, _ int, _ []any) bool {
		logtoJSON(w, http.StatusUnauthorized, nil, map[string]any{"code": "auth.unauthorized"})
		return true
	})
	before := f.tokenRequests()
	_, err := l.Fetch(context.Background(), "")
	if err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("Fetch = %v, want an HTTP 401 error", err)
	}
	// Five lists are read at once; each renews at most once.
	if n := f.tokenRequests() - before; n < 1 || n > 2*5 {
		t.Errorf("%d token requests for one failing fetch, want at most one renewal per refused request", n)
	}
}

func TestLogtoHonoursRetryAfter(t *testing.T) {
	f := newLogtoFake(t, logtoBookstore())
	f.setFault(func(w http.ResponseWriter, _ *http.Request, _, _ int, _ []any) bool {
		logtoJSON(w, http.StatusTooManyRequests, http.Header{"Retry-After": {"7"}}, map[string]any{"code": "too_many_requests"})
		return true
	})
	_, err := newLogtoUpstream(t, f, nil).Fetch(context.Background(), "")
	var ra *refresh.RetryAfterError
	if !errors.As(err, &ra) || ra.Wait != 7*time.Second {
		t.Errorf("Fetch = %v, want a RetryAfterError of 7s", err)
	}
}

func TestLogtoRoleNameCollision(t *testing.T) {
	tn := logtoBookstore()
	// A global user role named like the organization role "admin".
	tn.Roles = append(tn.Roles, fakeLogtoRole{ID: "rol-global-admin01", Name: "admin", Description: "Global admin",
		Type: lgUserRole, ScopeIDs: []string{lgReadOrder}, UserIDs: []string{lgAlice}})
	f := newLogtoFake(t, tn)
	doc := logtoFetch(t, newLogtoUpstream(t, f, nil), "")
	p := refreshtest.ParseDoc(t, doc)

	want := logtoBookstorePolicy()
	want.Roles[0].ID = "organization:admin"
	want.Roles = append(want.Roles, pdp.Role{ID: "admin", Type: pdp.RoleUser, Description: "Global admin",
		Permissions: []pdp.Grant{{Resource: lgOrders, Actions: []string{"read:order"}}}})
	slices.SortFunc(want.Roles, func(a, b pdp.Role) int { return strings.Compare(a.ID, b.ID) })
	want.Subjects[1].Roles = []string{"admin", "order_admin"}
	want.Subjects[3].Memberships[lgAcme] = []string{"organization:admin"}
	if diff := logtoDiff(want, p); diff != "" {
		t.Errorf("policy (-want +got):\n%s", diff)
	}
	logtoDecide(t, logtoCompile(t, doc), []logtoCheck{
		{pdp.Query{Subject: lgDave, Org: lgAcme, Resource: lgOrganization, Action: "invite:member"}, true, pdp.Granted, "organization:admin"},
		{pdp.Query{Subject: lgAlice, Resource: lgOrders, Action: "read:order"}, true, pdp.Granted, "admin"},
		{pdp.Query{Subject: lgAlice, Resource: lgOrders, Action: "delete:order"}, true, pdp.Granted, "order_admin"},
	})

	// Deterministic: the same tenant gives the same bytes.
	if again := logtoFetch(t, newLogtoUpstream(t, f, nil), ""); string(again.Data) != string(doc.Data) {
		t.Error("two reads of the same tenant differ")
	}

	// When the prefixed name is taken too, the fetch fails rather than guess.
	f.update(func(tn *fakeLogtoTenant) {
		tn.OrgRoles = append(tn.OrgRoles, fakeLogtoOrgRole{ID: "orl-taken", Name: "organization:admin", Type: lgUserRole})
	})
	if _, err := newLogtoUpstream(t, f, nil).Fetch(context.Background(), ""); err == nil || !strings.Contains(err.Error(), `"organization:admin"`) {
		t.Errorf("colliding prefixed name: Fetch = %v, want an error naming organization:admin", err)
	}
}

func TestLogtoReportsEveryProblemAtOnce(t *testing.T) {
	tn := logtoBookstore()
	tn.Roles = append(tn.Roles,
		fakeLogtoRole{ID: "rol-no-name", Type: lgUserRole},
		fakeLogtoRole{ID: "rol-odd-type", Name: "odd", Type: "Robot"})
	f := newLogtoFake(t, tn)
	_, err := newLogtoUpstream(t, f, nil).Fetch(context.Background(), "")
	for _, want := range []string{"role rol-no-name has no name", `role rol-odd-type ("odd") has type "Robot"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Fetch = %v, want an error containing %q", err, want)
		}
	}
}

func TestLogtoOrganizationRolesWithoutEmbeddedScopes(t *testing.T) {
	f := newLogtoFake(t, logtoBookstore())
	embedded := logtoFetch(t, newLogtoUpstream(t, f, nil), "")
	f.update(func(*fakeLogtoTenant) { f.legacyOrgRoles = true; f.pages = nil })
	legacy := logtoFetch(t, newLogtoUpstream(t, f, nil), "")
	if string(legacy.Data) != string(embedded.Data) {
		t.Errorf("organization roles read one by one give another document:\n%s\n%s", legacy.Data, embedded.Data)
	}
	read := map[string]bool{}
	for _, pg := range f.pageLog() {
		read[pg.Path] = true
	}
	for _, p := range []string{"/api/organization-roles/" + lgOrgAdmin + "/scopes", "/api/organization-roles/" + lgOrgAdmin + "/resource-scopes"} {
		if !read[p] {
			t.Errorf("%s was not read", p)
		}
	}
}

func TestLogtoJITImplicitRules(t *testing.T) {
	f := newLogtoFake(t, logtoBookstore())
	// Off by default: the JIT settings are not even read.
	logtoFetch(t, newLogtoUpstream(t, f, nil), "")
	for _, pg := range f.pageLog() {
		if strings.Contains(pg.Path, "/jit/") {
			t.Errorf("%s read without JITImplicitRules", pg.Path)
		}
	}

	doc := logtoFetch(t, newLogtoUpstream(t, f, func(c *logto.Config) { c.JITImplicitRules = true }), "")
	want := logtoBookstorePolicy()
	want.Organizations[0].ImplicitRoles = []pdp.ImplicitRule{{EmailDomain: "acme.com", Roles: []string{"member"}}}
	if diff := logtoDiff(want, refreshtest.ParseDoc(t, doc)); diff != "" {
		t.Errorf("policy (-want +got):\n%s", diff)
	}
	logtoDecide(t, logtoCompile(t, doc), []logtoCheck{
		// alice@acme.com is no member of acme, but the JIT domain admits her.
		{pdp.Query{Subject: lgAlice, Org: lgAcme, Resource: lgOrganization, Action: "read:member"}, true, pdp.Granted, "member"},
		{pdp.Query{Subject: lgCarol, Org: lgAcme, Resource: lgOrganization, Action: "read:member"}, false, pdp.NotAMember, ""},
	})
}

func TestLogtoConfig(t *testing.T) {
	_, err := logto.New(logto.Config{})
	if err == nil {
		t.Fatal("New accepted an empty config")
	}
	for _, want := range []string{"Endpoint is required", "AppID is required", "AppSecret is required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	_, err = logto.New(logto.Config{
		Endpoint: "http://auth.example.com", AppID: "app", AppSecret: logtoTestSecret,
		TokenEndpoint: "https://user:pw@auth.example.com/oidc/token", PageSize: 101, OrganizationResource: " org",
	})
	if err == nil {
		t.Fatal("New accepted a bad config")
	}
	for _, want := range []string{"Endpoint must use https", "TokenEndpoint must not carry credentials", "PageSize 101", "OrganizationResource"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), logtoTestSecret) {
		t.Errorf("error %q contains the secret", err)
	}

	l, err := logto.New(logto.Config{Endpoint: "https://auth.example.com/", AppID: "app", AppSecret: logtoTestSecret})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.String(); got != "logto:https://auth.example.com" {
		t.Errorf("String() = %q", got)
	}
	if got := fmt.Sprintf("%v %+v", l, l); strings.Contains(got, logtoTestSecret) {
		t.Errorf("formatting the upstream shows the secret: %s", got)
	}
}

// logtoLoopbackTransport sends every request, whatever its URL, to the fake
// on loopback: it lets a test use a Logto Cloud endpoint with no traffic
// leaving the machine.
type logtoLoopbackTransport struct {
	addr  string
	hosts *[]string
	mu    *sync.Mutex
}

func (t logtoLoopbackTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.mu.Lock()
	*t.hosts = append(*t.hosts, r.URL.Host)
	t.mu.Unlock()
	out := r.Clone(r.Context())
	out.URL = &url.URL{Scheme: "http", Host: t.addr, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	out.Host = t.addr
	out.RequestURI = ""
	return http.DefaultTransport.RoundTrip(out)
}

func TestLogtoCloudDefaults(t *testing.T) {
	f := newLogtoFake(t, logtoBookstore())
	f.update(func(*fakeLogtoTenant) { f.resource = "https://rolecall-test.logto.app/api" }) // Logto Cloud's per-tenant indicator
	var hosts []string
	tr := logtoLoopbackTransport{addr: f.srv.Listener.Addr().String(), hosts: &hosts, mu: &sync.Mutex{}}
	l, err := logto.New(logto.Config{
		Endpoint: "https://rolecall-test.logto.app", AppID: logtoTestAppID, AppSecret: logtoTestSecret,
		HTTPClient: &http.Client{Transport: tr},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.String(); got != "logto:https://rolecall-test.logto.app" {
		t.Errorf("String() = %q", got)
	}
	doc := logtoFetch(t, l, "")
	if diff := logtoDiff(logtoBookstorePolicy(), refreshtest.ParseDoc(t, doc)); diff != "" {
		t.Errorf("policy (-want +got):\n%s", diff)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, h := range hosts {
		if h != "rolecall-test.logto.app" {
			t.Errorf("request for host %q, want rolecall-test.logto.app only", h)
		}
	}
	if f.tokenRequests() != 1 {
		t.Errorf("%d token requests at <endpoint>/oidc/token, want 1", f.tokenRequests())
	}
}
