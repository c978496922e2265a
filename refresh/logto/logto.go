// Package logto is the upstream that reads a Logto tenant's RBAC state and
// converts it to the canonical policy document, and the handler of Logto's
// webhooks that asks for a refresh when that state changes.
package logto

// The Logto upstream reads a tenant's whole RBAC state through the Logto
// Management API and converts it to the canonical policy document.
//
// What it relies on, as checked against Logto's API reference and source:
//
//   - Authentication: OAuth 2.0 client credentials at <endpoint>/oidc/token,
//     client authenticated with HTTP basic auth, form parameters
//     grant_type=client_credentials, resource=<Management API indicator> and
//     scope=all; the indicator is https://<tenant-id>.logto.app/api on Logto
//     Cloud and https://default.logto.app/api on Logto OSS.
//     https://openapi.logto.io/authentication
//     https://docs.logto.io/integrate-logto/interact-with-management-api
//   - Pagination: every list below takes page (from 1) and page_size (at most
//     100; more is a 400) and answers the total count in the Total-Number
//     header (packages/core/src/middleware/koa-pagination.ts).
//     https://github.com/logto-io/logto/blob/master/packages/core/src/middleware/koa-pagination.ts
//   - GET /api/resources: [{id, name, indicator, ...}]
//     https://openapi.logto.io/operation/operation-get-api-resources
//     GET /api/resources/{resourceId}/scopes: [{id, resourceId, name, ...}]
//     https://openapi.logto.io/operation/operation-listresourcescopes
//     https://github.com/logto-io/logto/blob/master/packages/core/src/routes/resource.ts
//   - GET /api/roles: [{id, name, description, type: "User"|"MachineToMachine", ...}]
//     https://openapi.logto.io/operation/operation-listroles
//     https://github.com/logto-io/logto/blob/master/packages/core/src/routes/role.ts
//     GET /api/roles/{id}/scopes: [{id, resourceId, name, resource: {id, indicator, ...}}]
//     https://openapi.logto.io/operation/operation-listrolescopes
//     https://github.com/logto-io/logto/blob/master/packages/core/src/routes/role.scope.ts
//     GET /api/roles/{id}/users: [{id, primaryEmail, isSuspended, ...}]
//     https://github.com/logto-io/logto/blob/master/packages/core/src/routes/role.user.ts
//     GET /api/roles/{id}/applications: [{id, name, type, ...}] (M2M apps only)
//     https://openapi.logto.io/operation/operation-get-api-roles-parameter-applications
//     https://github.com/logto-io/logto/blob/master/packages/core/src/routes/role.application.ts
//   - GET /api/organization-scopes: [{id, name, description}]
//     https://github.com/logto-io/logto/blob/master/packages/core/src/routes/organization-scope/index.ts
//   - GET /api/organization-roles: [{id, name, description, type, scopes: [{id, name}],
//     resourceScopes: [{id, name, resource: {id, name}}]}]; the embedded lists
//     are complete (json_agg over the relation tables). Versions that do not
//     embed them are read through GET /api/organization-roles/{id}/scopes
//     ([{id, name, ...}]) and /resource-scopes ([{id, resourceId, name, ...}]).
//     https://openapi.logto.io/dev/operation/operation-listorganizationroles.md
//     https://openapi.logto.io/operation/operation-get-api-organization-roles-parameter-scopes
//     https://openapi.logto.io/dev/operation/operation-get-api-organization-roles-parameter-resource-scopes
//     https://github.com/logto-io/logto/blob/master/packages/core/src/routes/organization-role/index.ts
//     https://github.com/logto-io/logto/blob/master/packages/schemas/src/types/organization.ts
//   - GET /api/organizations: [{id, name, description, ...}]
//     https://github.com/logto-io/logto/blob/master/packages/core/src/routes/organization/index.ts
//     GET /api/organizations/{id}/users: [{id, primaryEmail, isSuspended, ..., organizationRoles: [{id, name}]}]
//     https://openapi.logto.io/operation/operation-listorganizationusers
//     GET /api/organizations/{id}/applications: [{id, name, type, ..., organizationRoles: [{id, name}]}]
//     https://openapi.logto.io/dev/operation/operation-listorganizationapplications.md
//     https://github.com/logto-io/logto/blob/master/packages/core/src/routes/organization/application/index.ts
//   - GET /api/organizations/{id}/jit/email-domains: [{organizationId, emailDomain}]
//     https://openapi.logto.io/operation/operation-listorganizationjitemaildomains
//     GET /api/organizations/{id}/jit/roles: [{id, name, description, type}]
//     (relation route over organization_roles)
//     https://github.com/logto-io/logto/blob/master/packages/core/src/routes/organization/jit/index.ts
//     https://github.com/logto-io/logto/blob/master/packages/core/src/utils/SchemaRouter.ts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/refresh"
	"github.com/rolecall/rolecall/refresh/internal/fetch"
)

// DefaultLogtoOrganizationResource is the canonical resource id that carries
// Logto's organization permissions (organization template scopes).
const DefaultLogtoOrganizationResource = "organization"

const (
	logtoMaxPageSize = 100 // Logto answers 400 above this
	// logtoMaxListItems bounds one list. A Total-Number above it is refused
	// before anything else is read, so a server that claims an endless list
	// costs one request.
	logtoMaxListItems = 1_000_000
	logtoMaxBody      = 32 << 20 // one page of at most 100 entities
	logtoParallel     = 4        // concurrent Management API requests
)

// Config configures a Logto upstream.
type Config struct {
	// Endpoint is the tenant URL, such as https://your-tenant.logto.app or a
	// self-hosted https://auth.example.com. Required. Plain http is accepted
	// only for loopback hosts.
	Endpoint string
	// AppID and AppSecret are the credentials of a machine-to-machine
	// application holding a role with the Management API permission "all".
	// Required. The secret is never logged, never in String() and never in
	// errors.
	AppID     string
	AppSecret string
	// Resource is the Management API resource indicator. Default:
	// https://<tenant-id>.logto.app/api for https://<tenant-id>.logto.app
	// endpoints, https://default.logto.app/api otherwise (Logto OSS). Logto
	// Cloud tenants reached through a custom domain must set it.
	Resource string
	// TokenEndpoint defaults to Endpoint + "/oidc/token".
	TokenEndpoint string
	// PageSize is the page_size of list requests: default 100, at most 100.
	PageSize int
	// OrganizationResource is the canonical resource id that carries the
	// organization permissions (organization scopes). Default "organization".
	OrganizationResource string
	// JITImplicitRules maps each organization's just-in-time provisioning
	// settings (email domains and default JIT roles) to implicit rules
	// {email_domain: d, roles: JIT roles}. Off by default: Logto applies JIT
	// once, when a user signs up or is added, and the membership it creates
	// is read anyway; as an implicit rule it would also admit users with a
	// matching email whom Logto never provisioned or whom an administrator
	// removed from the organization. Organizations with no JIT roles give no
	// rule (a rule needs roles).
	JITImplicitRules bool
	// HTTPClient defaults to &http.Client{Timeout: 30 * time.Second}.
	HTTPClient *http.Client
}

// Upstream is an upstream reading a Logto tenant's RBAC state through the
// Management API and converting it to the canonical policy document.
//
// Every Fetch reads the whole state (Logto sends no event when a role is
// assigned, so there is nothing cheaper to poll), page by page, and fails if
// any request fails, any page is missing or any answer is not what the API
// documents: it never returns half a policy. The conversion:
//
//   - Each API resource becomes a resource whose id is its indicator (the
//     audience of its tokens), whose description is its name and whose
//     actions are its scope names. The organization scopes become the actions
//     of one more resource, OrganizationResource ("organization").
//   - User roles become roles of type user, MachineToMachine roles of type
//     m2m, organization roles of type organization (whatever their Logto
//     type). Role ids are Logto role names, which people read and tokens
//     show. Permissions are grouped by resource and listed action by action,
//     never as "*", so an action added later is not granted silently. Logto
//     keeps user/m2m role names unique, and organization role names unique,
//     but not across the two: an organization role whose name is also a
//     user or m2m role's is renamed "organization:" + name; if that name is
//     taken too, Fetch fails.
//   - Organizations become organizations with their id, name and description.
//   - A user holding a role or a member of an organization becomes a subject
//     of type user with its Logto user id (the sub of its tokens), its
//     primary email, its global roles and its memberships (organization id →
//     organization role names; a member without roles has an empty list).
//     Suspended users are left out, so any check for them is denied
//     (UNKNOWN_SUBJECT). Users with neither roles nor memberships are not
//     listed: they are unknown to the policy, which denies them the same way.
//   - An m2m application holding a role or belonging to an organization
//     becomes a subject of type m2m with its application id (its client_id,
//     the sub of its tokens), roles and memberships.
//   - With JITImplicitRules, see Config.
//
// Everything is sorted, so equal tenant state gives byte-identical documents;
// the document has no revision (loaders name it by its content), and its
// ETag is "sha256:" + the hex SHA-256 of the document.
type Upstream struct {
	endpoint    string // without a trailing slash
	tokenURL    string
	appID       string
	secret      string
	resource    string
	pageSize    int
	orgResource string
	jit         bool
	client      *http.Client

	mu       sync.Mutex // guards the cached access token
	token    string
	tokenExp time.Time // zero: until the API refuses it
}

// New checks cfg, reporting every problem at once, and returns the
// upstream.
func New(cfg Config) (*Upstream, error) {
	var errs []error
	endpoint, err := logtoCheckURL("Endpoint", cfg.Endpoint)
	if err != nil {
		errs = append(errs, err)
	}
	endpoint = strings.TrimRight(endpoint, "/")
	if cfg.AppID == "" {
		errs = append(errs, errors.New("logto: AppID is required"))
	} else if strings.TrimSpace(cfg.AppID) != cfg.AppID || strings.ContainsAny(cfg.AppID, ":\r\n") {
		errs = append(errs, fmt.Errorf("logto: AppID %q is not a valid client id", cfg.AppID))
	}
	if cfg.AppSecret == "" {
		errs = append(errs, errors.New("logto: AppSecret is required"))
	}
	tokenURL := cfg.TokenEndpoint
	if tokenURL == "" {
		if endpoint != "" {
			tokenURL = endpoint + "/oidc/token"
		}
	} else if tokenURL, err = logtoCheckURL("TokenEndpoint", tokenURL); err != nil {
		errs = append(errs, err)
	}
	resource := cfg.Resource
	if resource == "" {
		resource = logtoDefaultResource(endpoint)
	} else if strings.TrimSpace(resource) != resource || strings.ContainsAny(resource, " \t\r\n") {
		errs = append(errs, fmt.Errorf("logto: Resource %q must not contain white space", resource))
	}
	pageSize := cfg.PageSize
	switch {
	case pageSize == 0:
		pageSize = logtoMaxPageSize
	case pageSize < 0 || pageSize > logtoMaxPageSize:
		errs = append(errs, fmt.Errorf("logto: PageSize %d is out of range: 1 to %d", pageSize, logtoMaxPageSize))
	}
	orgResource := cfg.OrganizationResource
	if orgResource == "" {
		orgResource = DefaultLogtoOrganizationResource
	} else if strings.TrimSpace(orgResource) != orgResource || len(orgResource) > pdp.MaxIDLen {
		errs = append(errs, fmt.Errorf("logto: OrganizationResource %q is not a valid resource id", orgResource))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	return &Upstream{
		endpoint:    endpoint,
		tokenURL:    tokenURL,
		appID:       cfg.AppID,
		secret:      cfg.AppSecret,
		resource:    resource,
		pageSize:    pageSize,
		orgResource: orgResource,
		jit:         cfg.JITImplicitRules,
		client:      client,
	}, nil
}

// logtoCheckURL accepts an absolute https URL, or http on a loopback host,
// without user info, query or fragment.
func logtoCheckURL(name, raw string) (string, error) {
	if raw == "" {
		return "", fmt.Errorf("logto: %s is required", name)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("logto: %s is not a URL", name)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "":
		return "", fmt.Errorf("logto: %s must be an absolute https URL such as https://your-tenant.logto.app", name)
	case u.Scheme == "http" && !fetch.LoopbackHost(u.Hostname()):
		return "", fmt.Errorf("logto: %s must use https (plain http only on loopback)", name)
	case u.User != nil:
		return "", fmt.Errorf("logto: %s must not carry credentials; use AppID and AppSecret", name)
	case u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("logto: %s must not have a query or a fragment", name)
	}
	return raw, nil
}

// logtoDefaultResource is the Management API indicator: per tenant on Logto
// Cloud, fixed on Logto OSS.
func logtoDefaultResource(endpoint string) string {
	if u, err := url.Parse(endpoint); err == nil {
		host := strings.ToLower(u.Hostname())
		if tenant, ok := strings.CutSuffix(host, ".logto.app"); ok && tenant != "" && !strings.Contains(tenant, ".") {
			return "https://" + tenant + ".logto.app/api"
		}
	}
	return "https://default.logto.app/api"
}

func (l *Upstream) String() string { return "logto:" + l.endpoint }

// Fetch reads the tenant and returns its policy document, or refresh.ErrNotModified
// when the document is the one tagged etag.
func (l *Upstream) Fetch(ctx context.Context, etag string) (refresh.Document, error) {
	// Authenticate first, so that refused credentials are one clear error.
	if _, err := l.accessToken(ctx); err != nil {
		return refresh.Document{}, err
	}
	st, err := l.read(ctx)
	if err != nil {
		return refresh.Document{}, err
	}
	p, err := st.policy(l.orgResource, l.jit)
	if err != nil {
		return refresh.Document{}, err
	}
	if err := p.Validate(); err != nil {
		return refresh.Document{}, fmt.Errorf("logto: the policy converted from %s is invalid (a conversion bug or an unexpected tenant state): %w", l.endpoint, err)
	}
	return refresh.CanonicalDocument("logto", p, etag)
}

// ---- Management API shapes (only the fields used) ----

type logtoResource struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Indicator string `json:"indicator"`
}

// logtoScope is an API resource scope, as listed by a resource, a role
// (with the resource embedded) or an organization role (resourceScopes:
// resource {id, name} embedded, no resourceId).
type logtoScope struct {
	ID         string `json:"id"`
	ResourceID string `json:"resourceId"`
	Name       string `json:"name"`
	Resource   *struct {
		ID        string `json:"id"`
		Indicator string `json:"indicator"`
	} `json:"resource"`
}

func (s *logtoScope) resourceID() string {
	if s.ResourceID == "" && s.Resource != nil {
		return s.Resource.ID
	}
	return s.ResourceID
}

type logtoRole struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	Description *string `json:"description"`
	Type        string  `json:"type"`
}

type logtoNamed struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type logtoOrgRole struct {
	logtoRole
	// Absent (nil) on Logto versions that do not embed them.
	Scopes         *[]logtoNamed `json:"scopes"`
	ResourceScopes *[]logtoScope `json:"resourceScopes"`
}

type logtoOrg struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	Description *string `json:"description"`
}

// logtoMember is a user or an application; OrganizationRoles is there when
// listed as an organization's member.
type logtoMember struct {
	ID                string        `json:"id"`
	PrimaryEmail      *string       `json:"primaryEmail"`
	IsSuspended       bool          `json:"isSuspended"`
	OrganizationRoles *[]logtoNamed `json:"organizationRoles"`
}

type logtoJITDomain struct {
	EmailDomain string `json:"emailDomain"`
}

// logtoState is everything one Fetch reads; slices indexed like their owners.
type logtoState struct {
	resources      []logtoResource
	resourceScopes [][]logtoScope
	roles          []logtoRole
	roleScopes     [][]logtoScope
	roleUsers      [][]logtoMember
	roleApps       [][]logtoMember
	orgScopes      []logtoNamed
	orgRoles       []logtoOrgRole
	orgs           []logtoOrg
	orgUsers       [][]logtoMember
	orgApps        [][]logtoMember
	jitDomains     [][]logtoJITDomain
	jitRoles       [][]logtoNamed
}

const (
	logtoUserRole = "User"
	logtoM2MRole  = "MachineToMachine"
)

// read fetches the tenant: the top-level lists first, then everything that
// hangs off them, logtoParallel requests at a time. The first failure
// cancels the rest and is the result.
func (l *Upstream) read(ctx context.Context) (*logtoState, error) {
	st := &logtoState{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(logtoParallel)
	g.Go(func() (err error) {
		st.resources, err = logtoList(gctx, l, "/api/resources", func(r *logtoResource) string { return r.ID })
		return err
	})
	g.Go(func() (err error) {
		st.roles, err = logtoList(gctx, l, "/api/roles", func(r *logtoRole) string { return r.ID })
		return err
	})
	g.Go(func() (err error) {
		st.orgScopes, err = logtoList(gctx, l, "/api/organization-scopes", func(s *logtoNamed) string { return s.ID })
		return err
	})
	g.Go(func() (err error) {
		st.orgRoles, err = logtoList(gctx, l, "/api/organization-roles", func(r *logtoOrgRole) string { return r.ID })
		return err
	})
	g.Go(func() (err error) {
		st.orgs, err = logtoList(gctx, l, "/api/organizations", func(o *logtoOrg) string { return o.ID })
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}

	scopeID := func(s *logtoScope) string { return s.ID }
	namedID := func(s *logtoNamed) string { return s.ID }
	memberID := func(m *logtoMember) string { return m.ID }
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(logtoParallel)
	st.resourceScopes = make([][]logtoScope, len(st.resources))
	for i, r := range st.resources {
		g.Go(func() (err error) {
			st.resourceScopes[i], err = logtoList(gctx, l, "/api/resources/"+url.PathEscape(r.ID)+"/scopes", scopeID)
			return err
		})
	}
	st.roleScopes = make([][]logtoScope, len(st.roles))
	st.roleUsers = make([][]logtoMember, len(st.roles))
	st.roleApps = make([][]logtoMember, len(st.roles))
	for i, r := range st.roles {
		base := "/api/roles/" + url.PathEscape(r.ID)
		g.Go(func() (err error) {
			st.roleScopes[i], err = logtoList(gctx, l, base+"/scopes", scopeID)
			return err
		})
		// Logto's role_type check keeps users off m2m roles and
		// applications off user roles, so only one list can hold anything.
		switch r.Type {
		case logtoUserRole:
			g.Go(func() (err error) {
				st.roleUsers[i], err = logtoList(gctx, l, base+"/users", memberID)
				return err
			})
		case logtoM2MRole:
			g.Go(func() (err error) {
				st.roleApps[i], err = logtoList(gctx, l, base+"/applications", memberID)
				return err
			})
		}
	}
	for i := range st.orgRoles {
		r := &st.orgRoles[i]
		base := "/api/organization-roles/" + url.PathEscape(r.ID)
		if r.Scopes == nil {
			g.Go(func() error {
				s, err := logtoList(gctx, l, base+"/scopes", namedID)
				r.Scopes = &s
				return err
			})
		}
		if r.ResourceScopes == nil {
			g.Go(func() error {
				s, err := logtoList(gctx, l, base+"/resource-scopes", scopeID)
				r.ResourceScopes = &s
				return err
			})
		}
	}
	st.orgUsers = make([][]logtoMember, len(st.orgs))
	st.orgApps = make([][]logtoMember, len(st.orgs))
	st.jitDomains = make([][]logtoJITDomain, len(st.orgs))
	st.jitRoles = make([][]logtoNamed, len(st.orgs))
	for i, o := range st.orgs {
		base := "/api/organizations/" + url.PathEscape(o.ID)
		g.Go(func() (err error) {
			st.orgUsers[i], err = logtoList(gctx, l, base+"/users", memberID)
			return err
		})
		g.Go(func() (err error) {
			st.orgApps[i], err = logtoList(gctx, l, base+"/applications", memberID)
			return err
		})
		if l.jit {
			g.Go(func() (err error) {
				st.jitDomains[i], err = logtoList(gctx, l, base+"/jit/email-domains", func(d *logtoJITDomain) string { return d.EmailDomain })
				return err
			})
			g.Go(func() (err error) {
				st.jitRoles[i], err = logtoList(gctx, l, base+"/jit/roles", namedID)
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return st, nil
}

// logtoList reads every page of a paginated list. It fails unless the pages
// add up exactly to Total-Number, with no id twice: a list that changes while
// it is read, or a server that ignores the page parameters, is an error
// (the refresher retries later), never a silently partial list.
func logtoList[T any](ctx context.Context, l *Upstream, path string, idOf func(*T) string) ([]T, error) {
	var all []T
	seen := make(map[string]bool)
	total := -1
	// Each page but the last holds exactly pageSize entries and total is
	// bounded, so this ends; maxPages only makes that obvious.
	maxPages := logtoMaxListItems/l.pageSize + 1
	for page := 1; page <= maxPages; page++ {
		q := url.Values{"page": {strconv.Itoa(page)}, "page_size": {strconv.Itoa(l.pageSize)}}
		where := fmt.Sprintf("GET %s page %d", path, page)
		body, header, err := l.get(ctx, path, q)
		if err != nil {
			return nil, fmt.Errorf("logto: %s: %w", where, err)
		}
		raw := header.Get("Total-Number")
		n, err := strconv.Atoi(raw)
		switch {
		case raw == "":
			return nil, fmt.Errorf("logto: %s: no Total-Number header: not a paginated Logto list", where)
		case err != nil || n < 0:
			return nil, fmt.Errorf("logto: %s: Total-Number %q is not a count", where, raw)
		case n > logtoMaxListItems:
			return nil, fmt.Errorf("logto: %s: Total-Number %d is over the limit of %d entries", where, n, logtoMaxListItems)
		case total >= 0 && n != total:
			return nil, fmt.Errorf("logto: %s: Total-Number went from %d to %d: the list changed while being read", where, total, n)
		}
		total = n
		if t := bytes.TrimSpace(body); len(t) == 0 || t[0] != '[' {
			return nil, fmt.Errorf("logto: %s: the answer is not a JSON array", where)
		}
		var items []T
		if err := json.Unmarshal(body, &items); err != nil {
			return nil, fmt.Errorf("logto: %s: unexpected JSON: %v", where, err)
		}
		if len(items) > l.pageSize {
			return nil, fmt.Errorf("logto: %s: %d entries on a page of %d", where, len(items), l.pageSize)
		}
		for i := range items {
			id := idOf(&items[i])
			if id == "" {
				return nil, fmt.Errorf("logto: %s: entry %d has no id", where, i)
			}
			if seen[id] {
				return nil, fmt.Errorf("logto: %s: %q is listed twice: the list changed while being read, or the server ignores pagination", where, id)
			}
			seen[id] = true
		}
		all = append(all, items...)
		switch {
		case len(all) == total:
			return all, nil
		case len(all) > total:
			return nil, fmt.Errorf("logto: %s: %d entries read, more than Total-Number %d", where, len(all), total)
		case len(items) < l.pageSize:
			return nil, fmt.Errorf("logto: %s: the page has %d entries; with %d of Total-Number %d read, entries are missing", where, len(items), len(all), total)
		}
	}
	return nil, fmt.Errorf("logto: GET %s: more than %d pages", path, maxPages)
}

// get performs one authenticated GET and returns a 200 answer's body. A 401
// drops the cached access token, and the request is tried once more with a
// new one.
func (l *Upstream) get(ctx context.Context, path string, q url.Values) ([]byte, http.Header, error) {
	target := l.endpoint + path + "?" + q.Encode()
	for attempt := 1; ; attempt++ {
		tok, err := l.accessToken(ctx)
		if err != nil {
			return nil, nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return nil, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Accept", "application/json")
		resp, body, err := fetch.Do(l.client, req, logtoMaxBody)
		if resp == nil {
			return nil, nil, err
		}
		if errors.Is(err, fetch.ErrTooLarge) {
			err = fmt.Errorf("the answer is larger than %d bytes", logtoMaxBody)
		}
		switch {
		case resp.StatusCode == http.StatusUnauthorized && attempt == 1:
			l.dropToken(tok) // expired or revoked: once more with a new token
			continue
		case resp.StatusCode == http.StatusUnauthorized:
			return nil, nil, fmt.Errorf("HTTP 401%s: the Management API refused a freshly issued access token; check that Resource %q is the tenant's Management API indicator", logtoAPIError(body), l.resource)
		case resp.StatusCode == http.StatusForbidden:
			return nil, nil, fmt.Errorf("HTTP 403%s: application %q needs a machine-to-machine role with the Management API permission \"all\"", logtoAPIError(body), l.appID)
		case resp.StatusCode != http.StatusOK:
			if ra := fetch.RetryAfter(resp); ra != nil {
				return nil, nil, fmt.Errorf("%w%s", ra, logtoAPIError(body))
			}
			return nil, nil, fmt.Errorf("HTTP %d%s", resp.StatusCode, logtoAPIError(body))
		case err != nil:
			return nil, nil, fmt.Errorf("reading the answer: %w", err)
		}
		return body, resp.Header, nil
	}
}

// logtoAPIError renders Logto's error body {"code", "message"} briefly.
func logtoAPIError(body []byte) string {
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) != nil || (e.Code == "" && e.Message == "") {
		return ""
	}
	s := strings.TrimSpace(e.Code + " " + e.Message)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return fmt.Sprintf(" (%s)", strconv.Quote(s))
}

// accessToken returns the cached access token, or requests a new one. The
// lock is held while requesting, so concurrent callers share one request.
func (l *Upstream) accessToken(ctx context.Context) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.token != "" && (l.tokenExp.IsZero() || time.Now().Before(l.tokenExp)) {
		return l.token, nil
	}
	tok, ttl, err := l.requestToken(ctx)
	if err != nil {
		return "", err
	}
	l.token, l.tokenExp = tok, time.Time{}
	if ttl > 0 {
		// Renew shortly before expiry: a minute early, or at half-life for
		// short-lived tokens.
		l.tokenExp = time.Now().Add(ttl - min(time.Minute, ttl/2))
	}
	return tok, nil
}

// dropToken forgets tok unless it has been replaced already.
func (l *Upstream) dropToken(tok string) {
	l.mu.Lock()
	if l.token == tok {
		l.token, l.tokenExp = "", time.Time{}
	}
	l.mu.Unlock()
}

// requestToken runs the client credentials grant for the Management API:
// client id and secret in HTTP basic auth, resource and scope "all" in the
// form.
func (l *Upstream) requestToken(ctx context.Context) (string, time.Duration, error) {
	cc := clientcredentials.Config{
		ClientID:       l.appID,
		ClientSecret:   l.secret,
		TokenURL:       l.tokenURL,
		Scopes:         []string{"all"},
		EndpointParams: url.Values{"resource": {l.resource}},
		AuthStyle:      oauth2.AuthStyleInHeader,
	}
	tok, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, fetch.WithUserAgent(l.client)))
	if err != nil {
		return "", 0, l.tokenError(err)
	}
	if t := tok.TokenType; t != "" && !strings.EqualFold(t, "Bearer") {
		return "", 0, fmt.Errorf("logto: token endpoint %s issued a %q token, not a bearer token", l.tokenURL, t)
	}
	var ttl time.Duration
	if !tok.Expiry.IsZero() {
		ttl = time.Until(tok.Expiry)
	}
	return tok.AccessToken, ttl, nil
}

// tokenError says why the token endpoint gave no token, never quoting the
// secret even should it appear in what the server says.
func (l *Upstream) tokenError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response == nil {
		msg := fetch.Redact(err.Error(), l.secret)
		if strings.Contains(msg, "missing access_token") {
			return fmt.Errorf("logto: token endpoint %s: the answer has no access_token", l.tokenURL)
		}
		return fmt.Errorf("logto: token request to %s: %s", l.tokenURL, msg)
	}
	detail := ""
	if re.ErrorCode != "" {
		detail = " " + re.ErrorCode
		if re.ErrorDescription != "" {
			detail += ": " + re.ErrorDescription
		}
	}
	detail = fetch.Redact(detail, l.secret)
	if len(detail) > 300 {
		detail = detail[:300] + "…"
	}
	status := re.Response.StatusCode
	if status == http.StatusUnauthorized || re.ErrorCode == "invalid_client" {
		return fmt.Errorf("logto: token endpoint %s refused the credentials of application %q (HTTP %d%s): check AppID and AppSecret", l.tokenURL, l.appID, status, detail)
	}
	return fmt.Errorf("logto: token endpoint %s answered HTTP %d%s (resource %q, scope \"all\")", l.tokenURL, status, detail, l.resource)
}

// ---- conversion ----

// policy converts the tenant state; see the Upstream type for the rules.
func (st *logtoState) policy(orgResource string, jit bool) (*pdp.Policy, error) {
	p := &pdp.Policy{}
	// Every problem is reported, not only the first: a tenant is fixed in one
	// pass. What a problem concerns is left out of the policy.
	var errs []error
	problem := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("logto: "+format, args...))
	}

	indicators := make(map[string]string, len(st.resources)) // resource id → indicator
	for i, r := range st.resources {
		if r.Indicator == "" {
			problem("API resource %s (%q) has no indicator", r.ID, r.Name)
			continue
		}
		if r.Indicator == orgResource {
			problem("API resource %s has the indicator %q, which OrganizationResource uses for organization permissions; set OrganizationResource to another id", r.ID, r.Indicator)
			continue
		}
		indicators[r.ID] = r.Indicator
		var actions []string
		for _, s := range st.resourceScopes[i] {
			if s.Name == "" {
				problem("a scope of API resource %s (%s) has no name", r.ID, r.Indicator)
				continue
			}
			actions = append(actions, s.Name)
		}
		slices.Sort(actions)
		p.Resources = append(p.Resources, pdp.Resource{ID: r.Indicator, Description: r.Name, Actions: actions})
	}
	var orgActions []string
	for _, s := range st.orgScopes {
		if s.Name == "" {
			problem("organization scope %s has no name", s.ID)
			continue
		}
		orgActions = append(orgActions, s.Name)
	}
	slices.Sort(orgActions)
	p.Resources = append(p.Resources, pdp.Resource{ID: orgResource, Description: "Logto organization permissions (organization template scopes)", Actions: orgActions})

	// resourceGrants groups API resource scopes by resource indicator.
	resourceGrants := func(owner string, scopes []logtoScope, g *logtoGrants) {
		for _, s := range scopes {
			rid := s.resourceID()
			ind, ok := indicators[rid]
			switch {
			case s.Name == "":
				problem("%s has a scope %s without a name", owner, s.ID)
				continue
			case !ok:
				problem("%s has scope %q of API resource %s, which GET /api/resources did not list (changed while being read?)", owner, s.Name, rid)
				continue
			case s.Resource != nil && s.Resource.Indicator != "" && s.Resource.Indicator != ind:
				problem("%s has scope %q on resource %s, whose indicator is %q here and %q in GET /api/resources", owner, s.Name, rid, s.Resource.Indicator, ind)
				continue
			}
			g.add(ind, s.Name)
		}
	}

	roleNames := make(map[string]string, len(st.roles)) // Logto role id → role id
	taken := make(map[string]string)                    // role id → what took it
	for i, r := range st.roles {
		var typ pdp.RoleType
		switch r.Type {
		case logtoUserRole:
			typ = pdp.RoleUser
		case logtoM2MRole:
			typ = pdp.RoleM2M
		default:
			problem("role %s (%q) has type %q; want User or MachineToMachine", r.ID, r.Name, r.Type)
			continue
		}
		if r.Name == "" {
			problem("role %s has no name", r.ID)
			continue
		}
		if by, dup := taken[r.Name]; dup {
			problem("roles %s and %s are both named %q", by, r.ID, r.Name)
			continue
		}
		taken[r.Name] = "role " + r.ID
		roleNames[r.ID] = r.Name
		var g logtoGrants
		resourceGrants(fmt.Sprintf("role %q", r.Name), st.roleScopes[i], &g)
		p.Roles = append(p.Roles, pdp.Role{ID: r.Name, Type: typ, Description: logtoStr(r.Description), Permissions: g.grants()})
	}
	globalNames := make(map[string]bool, len(taken))
	for name := range taken {
		globalNames[name] = true
	}

	orgRoleNames := make(map[string]string, len(st.orgRoles)) // Logto org role id → role id
	for _, r := range st.orgRoles {
		if r.Name == "" {
			problem("organization role %s has no name", r.ID)
			continue
		}
		id := r.Name
		if globalNames[id] {
			id = "organization:" + r.Name
		}
		if by, dup := taken[id]; dup {
			problem("organization role %s (%q) would be role %q, which %s already is; rename one of them in Logto", r.ID, r.Name, id, by)
			continue
		}
		taken[id] = "organization role " + r.ID
		orgRoleNames[r.ID] = id
		if r.Scopes == nil || r.ResourceScopes == nil {
			problem("organization role %s (%q): scopes not read", r.ID, r.Name)
			continue
		}
		var g logtoGrants
		for _, s := range *r.Scopes {
			if s.Name == "" {
				problem("organization role %q has an organization scope %s without a name", r.Name, s.ID)
				continue
			}
			g.add(orgResource, s.Name)
		}
		resourceGrants(fmt.Sprintf("organization role %q", r.Name), *r.ResourceScopes, &g)
		p.Roles = append(p.Roles, pdp.Role{ID: id, Type: pdp.RoleOrganization, Description: logtoStr(r.Description), Permissions: g.grants()})
	}
	slices.SortFunc(p.Resources, func(a, b pdp.Resource) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(p.Roles, func(a, b pdp.Role) int { return strings.Compare(a.ID, b.ID) })

	subjects := make(map[string]*pdp.Subject)
	suspended := make(map[string]bool)
	subject := func(m logtoMember, typ pdp.SubjectType) *pdp.Subject {
		s := subjects[m.ID]
		if s == nil {
			s = &pdp.Subject{ID: m.ID, Type: typ}
			subjects[m.ID] = s
		} else if s.Type != typ {
			problem("id %q is listed both as a user and as an application", m.ID)
			return nil
		}
		if email := logtoStr(m.PrimaryEmail); email != "" {
			if s.Email != "" && s.Email != email {
				problem("user %s has primary email %q in one list and %q in another (changed while being read?)", m.ID, s.Email, email)
				return nil
			}
			s.Email = email
		}
		if m.IsSuspended {
			suspended[m.ID] = true
		}
		return s
	}
	for i, r := range st.roles {
		for _, m := range st.roleUsers[i] {
			if s := subject(m, pdp.SubjectUser); s != nil {
				s.Roles = append(s.Roles, roleNames[r.ID])
			}
		}
		for _, m := range st.roleApps[i] {
			if s := subject(m, pdp.SubjectM2M); s != nil {
				s.Roles = append(s.Roles, roleNames[r.ID])
			}
		}
	}
	membership := func(org logtoOrg, m logtoMember, typ pdp.SubjectType) {
		kind := map[pdp.SubjectType]string{pdp.SubjectUser: "user", pdp.SubjectM2M: "application"}[typ]
		if m.OrganizationRoles == nil {
			problem("organization %s lists %s %s without organizationRoles", org.ID, kind, m.ID)
			return
		}
		s := subject(m, typ)
		if s == nil {
			return
		}
		if s.Memberships == nil {
			s.Memberships = make(map[string][]string)
		}
		roles := []string{}
		for _, ref := range *m.OrganizationRoles {
			id, ok := orgRoleNames[ref.ID]
			if !ok {
				problem("%s %s holds organization role %s (%q) in organization %s, which GET /api/organization-roles did not list (changed while being read?)", kind, m.ID, ref.ID, ref.Name, org.ID)
				continue
			}
			roles = append(roles, id)
		}
		s.Memberships[org.ID] = logtoSortedSet(roles)
	}
	for i, o := range st.orgs {
		org := pdp.Organization{ID: o.ID, Name: o.Name, Description: logtoStr(o.Description)}
		for _, m := range st.orgUsers[i] {
			membership(o, m, pdp.SubjectUser)
		}
		for _, m := range st.orgApps[i] {
			membership(o, m, pdp.SubjectM2M)
		}
		if jit && len(st.jitRoles[i]) > 0 {
			var roles []string
			for _, ref := range st.jitRoles[i] {
				id, ok := orgRoleNames[ref.ID]
				if !ok {
					problem("organization %s has JIT role %s (%q), which GET /api/organization-roles did not list", o.ID, ref.ID, ref.Name)
					continue
				}
				roles = append(roles, id)
			}
			roles = logtoSortedSet(roles)
			domains := make([]string, 0, len(st.jitDomains[i]))
			for _, d := range st.jitDomains[i] {
				domains = append(domains, strings.ToLower(d.EmailDomain))
			}
			for _, d := range logtoSortedSet(domains) {
				org.ImplicitRoles = append(org.ImplicitRoles, pdp.ImplicitRule{EmailDomain: d, Roles: slices.Clone(roles)})
			}
		}
		p.Organizations = append(p.Organizations, org)
	}
	slices.SortFunc(p.Organizations, func(a, b pdp.Organization) int { return strings.Compare(a.ID, b.ID) })

	for id, s := range subjects {
		if suspended[id] {
			continue
		}
		s.Roles = logtoSortedSet(s.Roles)
		p.Subjects = append(p.Subjects, *s)
	}
	slices.SortFunc(p.Subjects, func(a, b pdp.Subject) int { return strings.Compare(a.ID, b.ID) })
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// logtoGrants collects a role's actions by resource.
type logtoGrants map[string][]string

func (g *logtoGrants) add(resource, action string) {
	if *g == nil {
		*g = make(logtoGrants)
	}
	(*g)[resource] = append((*g)[resource], action)
}

// grants lists the collected actions, sorted by resource and action.
func (g logtoGrants) grants() []pdp.Grant {
	var out []pdp.Grant
	for res, actions := range g {
		out = append(out, pdp.Grant{Resource: res, Actions: logtoSortedSet(actions)})
	}
	slices.SortFunc(out, func(a, b pdp.Grant) int { return strings.Compare(a.Resource, b.Resource) })
	return out
}

func logtoSortedSet(l []string) []string {
	slices.Sort(l)
	return slices.Compact(l)
}

func logtoStr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
