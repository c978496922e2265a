// Package stytch is the upstream that reads a Stytch B2B project's RBAC
// policy and converts it to the canonical policy document.
package stytch

// The Stytch B2B upstream. The response shape decoded here follows Stytch's
// API reference and its own SDKs:
//
//   - Get Policy, GET /v1/b2b/rbac/policy (OpenAPI: request_id, status_code,
//     policy{roles, resources, scopes}):
//     https://stytch.com/docs/api-reference/b2b/api/rbac/get-policy
//   - Role object (role_id, description, permissions[{resource_id, actions}]):
//     https://stytch.com/docs/api-reference/b2b/api/rbac/role-object
//   - Scope object (scope, description, permissions[{resource_id, actions}]):
//     https://stytch.com/docs/api-reference/b2b/api/rbac/scope-object
//   - Resource object (resource_id, description, actions; "*" is reserved):
//     https://stytch.com/docs/b2b/api/rbac-resource-object
//   - Default resources and roles (stytch.self, stytch.organization,
//     stytch.member, stytch.sso, stytch.scim; stytch_member, stytch_admin):
//     https://stytch.com/docs/b2b/guides/rbac/stytch-default
//   - Error object (status_code, request_id, error_type, error_message,
//     error_url): https://stytch.com/docs/api-reference/b2b/api/errors/401
//   - SDK types Policy, PolicyResource, PolicyRole, PolicyRolePermission,
//     PolicyScope, PolicyScopePermission, PolicyResponse:
//     https://github.com/stytchauth/stytch-go/blob/main/stytch/b2b/rbac/types.go
//     https://github.com/stytchauth/stytch-node/blob/main/lib/b2b/rbac.ts

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/refresh"
	"github.com/rolecall/rolecall/refresh/internal/fetch"
)

// Config configures a Stytch B2B upstream.
type Config struct {
	// ProjectID is the Stytch project, such as "project-test-…" or
	// "project-live-…". Required; it is the basic-auth user and names the
	// upstream in status and logs.
	ProjectID string
	// Secret is the project's API secret, the basic-auth password. Required.
	// It is never logged, never in String() and never in an error.
	Secret string
	// BaseURL is the Stytch API: by default https://test.stytch.com for
	// project-test-… ids and https://api.stytch.com otherwise. It must be
	// https, except on a loopback host (tests); it may not carry user info, a
	// query or a fragment.
	BaseURL string
	// HTTPClient makes the requests. By default a client with a 30 s timeout
	// that does not follow redirects (the Get Policy endpoint never
	// redirects; a redirect is reported as an error, so the credentials are
	// never sent elsewhere).
	HTTPClient *http.Client
	// MaxBodyBytes bounds the response body. Default 64 MiB.
	MaxBodyBytes int64
}

const (
	stytchPolicyPath     = "/v1/b2b/rbac/policy"
	stytchTestBaseURL    = "https://test.stytch.com"
	stytchLiveBaseURL    = "https://api.stytch.com"
	stytchDefaultTimeout = 30 * time.Second
	// stytchScopeRolePrefix names the role a scope becomes.
	stytchScopeRolePrefix = "scope:"
	// stytchMaxErrorBody bounds what is read of a non-200 response.
	stytchMaxErrorBody = 64 << 10
	// stytchMaxProblems bounds the conversion problems listed in one error.
	stytchMaxProblems = 20
)

// Upstream is an upstream reading a Stytch B2B project's RBAC policy from the
// Get RBAC Policy endpoint (GET {BaseURL}/v1/b2b/rbac/policy, HTTP basic
// auth with the project id and secret) and converting it to rolecall's
// canonical policy document, written as JSON by policyfile.MarshalJSON.
//
// Conversion:
//
//   - Each Stytch resource becomes a resource with the same id, description
//     and actions. "*" in a resource's actions is Stytch's reserved wildcard,
//     not an action: it is dropped (in rolecall, too, "*" in a grant means
//     every action of the resource).
//   - Each Stytch role (stytch_member, stytch_admin and custom roles) becomes
//     an organization role with the same id and description, one grant per
//     permission entry. Stytch B2B roles are held inside organizations, and
//     rolecall pairs this upstream with the stytch token profile, whose
//     session JWT carries the member's roles (evaluated with DecideRoles).
//   - Each Stytch scope becomes one more organization role, "scope:" + the
//     scope, with the scope's description and permissions: scopes are what
//     Connected Apps (and M2M) access tokens carry, and a scope maps to
//     permissions exactly as a role does.
//   - A role or scope may reference a resource or an action the response does
//     not define (Stytch's predefined stytch.* resources, for one, need not
//     be listed). It is defined, from the union of the actions referenced:
//     the resource is added, or the action added to it. This is how Stytch's
//     own SDKs decide locally (a permission matches on resource_id and
//     action, whatever the resources list says), so rolecall answers as
//     Stytch would. "*" in a permission stays "*" and defines nothing.
//   - No organizations and no subjects: Stytch keeps role assignments in its
//     session JWTs, not in the policy.
//   - The policy is written in a canonical order (resources, roles and
//     actions sorted; grants sorted by resource), so a response that only
//     reorders the same policy is not a change.
//
// The response is rejected, never guessed at, when it has the wrong shape
// (a value of the wrong type, no policy, no roles or resources list, an empty
// id or action), when an id is defined twice (resource_id, role_id, scope, a
// scope whose "scope:" role id is also a role_id, an action listed twice on a
// resource or in a permission), or when the converted policy does not
// validate. Unknown fields are ignored, so that fields Stytch adds later do
// not stop the sync.
//
// The document's ETag is "sha256:" and the hex SHA-256 of the canonical
// bytes; Fetch returns refresh.ErrNotModified when it equals the etag asked about, so
// an unchanged policy costs one request and no compile or cache write. The
// document carries no revision: policyfile fills its content revision, which
// is the "sha256:" and the first 16 hex digits of the same hash.
//
// An Upstream is safe for concurrent use.
type Upstream struct {
	projectID string
	secret    string
	basic     string // base64 of "project:secret", redacted from errors too
	endpoint  string
	client    *http.Client
	maxBytes  int64
}

// New checks cfg, reporting every problem at once, and returns the
// upstream.
func New(cfg Config) (*Upstream, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("stytch upstream: "+format, args...))
	}

	switch {
	case cfg.ProjectID == "":
		bad("project id is required")
	case !utf8.ValidString(cfg.ProjectID) || strings.ContainsRune(cfg.ProjectID, ':') ||
		strings.IndexFunc(cfg.ProjectID, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		bad("project id %q: must not contain \":\", white space or control characters", cfg.ProjectID)
	}
	switch {
	case cfg.Secret == "":
		bad("secret is required")
	case strings.TrimSpace(cfg.Secret) != cfg.Secret || strings.IndexFunc(cfg.Secret, unicode.IsControl) >= 0:
		// Never echo the secret, not even in part.
		bad("secret has leading or trailing white space or a control character (a newline read from a file?)")
	}

	base := cfg.BaseURL
	if base == "" {
		base = stytchLiveBaseURL
		if strings.HasPrefix(cfg.ProjectID, "project-test-") {
			base = stytchTestBaseURL
		}
	}
	endpoint, err := stytchEndpoint(base)
	if err != nil {
		bad("%v", err)
	}

	maxBytes := cfg.MaxBodyBytes
	switch {
	case maxBytes == 0:
		maxBytes = refresh.DefaultMaxBytes
	case maxBytes < 0:
		bad("max body bytes %d: must not be negative", maxBytes)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{
			Timeout: stytchDefaultTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	return &Upstream{
		projectID: cfg.ProjectID,
		secret:    cfg.Secret,
		basic:     base64.StdEncoding.EncodeToString([]byte(cfg.ProjectID + ":" + cfg.Secret)),
		endpoint:  endpoint,
		client:    client,
		maxBytes:  maxBytes,
	}, nil
}

// stytchEndpoint checks a base URL and returns the Get Policy URL under it.
func stytchEndpoint(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("base URL %q: want an https URL such as %s", fetch.RedactURL(base), stytchLiveBaseURL)
	}
	var problems []string
	if u.User != nil {
		problems = append(problems, "must not carry user info (the credentials are the project id and secret)")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		problems = append(problems, "must not have a query or a fragment")
	}
	if u.Scheme == "http" && !fetch.LoopbackHost(u.Hostname()) {
		problems = append(problems, "must be https (plain http is allowed on a loopback host only): the secret would travel in clear text")
	}
	if len(problems) > 0 {
		return "", fmt.Errorf("base URL %q: %s", fetch.RedactURL(base), strings.Join(problems, "; "))
	}
	return strings.TrimSuffix(u.String(), "/") + stytchPolicyPath, nil
}

// String names the upstream without secrets: "stytch:" and the project id.
func (s *Upstream) String() string { return "stytch:" + s.projectID }

// GoString keeps %#v from printing the fields, the secret among them.
func (s *Upstream) GoString() string { return "refresh.Stytch(" + s.String() + ")" }

// Fetch gets the project's RBAC policy and converts it to a canonical policy
// document. It returns refresh.ErrNotModified when the converted document is the one
// tagged etag.
func (s *Upstream) Fetch(ctx context.Context, etag string) (refresh.Document, error) {
	p, err := s.fetchPolicy(ctx)
	if err != nil {
		return refresh.Document{}, s.scrub(fmt.Errorf("stytch: GET %s: %w", s.endpoint, err))
	}
	return refresh.CanonicalDocument("stytch", p, etag)
}

// scrub removes the secret (and the basic-auth token made from it) from an
// error, in case anything on the way echoed it.
func (s *Upstream) scrub(err error) error {
	msg := err.Error()
	if !strings.Contains(msg, s.secret) && !strings.Contains(msg, s.basic) {
		return err
	}
	return errors.New(fetch.Redact(msg, s.basic, s.secret))
}

func (s *Upstream) fetchPolicy(ctx context.Context) (*pdp.Policy, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.endpoint, nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(s.projectID, s.secret)
	req.Header.Set("Accept", "application/json")
	resp, body, err := fetch.Do(s.client, req, s.maxBytes)
	if resp == nil {
		return nil, err
	}

	if resp.StatusCode != http.StatusOK {
		detail := stytchErrorDetail(body[:min(len(body), stytchMaxErrorBody)])
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return nil, fmt.Errorf("%s: Stytch refused the credentials (project id %s and its secret)%s", resp.Status, s.projectID, detail)
		default:
			if ra := fetch.RetryAfter(resp); ra != nil {
				return nil, fmt.Errorf("%w%s", ra, detail)
			}
			return nil, fmt.Errorf("%s%s", resp.Status, detail)
		}
	}
	switch {
	case errors.Is(err, fetch.ErrTooLarge):
		return nil, fmt.Errorf("the response is over the %d-byte limit", s.maxBytes)
	case err != nil:
		return nil, fmt.Errorf("reading the response: %w", err)
	}
	var r stytchPolicyResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("decoding the response: %w", err)
	}
	if r.StatusCode != 0 && r.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the response is 200 OK but its body says status_code %d", r.StatusCode)
	}
	if r.Policy == nil {
		return nil, errors.New("the response has no policy")
	}
	p, err := convertStytchPolicy(r.Policy)
	if err != nil {
		if r.RequestID != "" {
			return nil, fmt.Errorf("%w (request_id %s)", err, stytchText(r.RequestID))
		}
		return nil, err
	}
	return p, nil
}

// The response, as documented (see the top of this file). Pointers tell a
// missing list from an empty one.
type (
	stytchPolicyResponse struct {
		RequestID  string        `json:"request_id"`
		StatusCode int           `json:"status_code"`
		Policy     *stytchPolicy `json:"policy"`
	}
	stytchPolicy struct {
		Resources *[]stytchResource `json:"resources"`
		Roles     *[]stytchRole     `json:"roles"`
		// Scopes came later than roles and resources (older SDKs lack
		// them): a missing list is no scopes.
		Scopes []stytchScope `json:"scopes"`
	}
	stytchResource struct {
		ResourceID  string   `json:"resource_id"`
		Description string   `json:"description"`
		Actions     []string `json:"actions"`
	}
	stytchRole struct {
		RoleID      string             `json:"role_id"`
		Description string             `json:"description"`
		Permissions []stytchPermission `json:"permissions"`
	}
	stytchScope struct {
		Scope       string             `json:"scope"`
		Description string             `json:"description"`
		Permissions []stytchPermission `json:"permissions"`
	}
	stytchPermission struct {
		ResourceID string   `json:"resource_id"`
		Actions    []string `json:"actions"`
	}
	stytchErrorBody struct {
		RequestID    string `json:"request_id"`
		ErrorType    string `json:"error_type"`
		ErrorMessage string `json:"error_message"`
	}
)

// stytchErrorDetail describes Stytch's error object in a non-200 body, or
// returns "" when the body is not one.
func stytchErrorDetail(body []byte) string {
	var e stytchErrorBody
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	var parts []string
	if t := stytchText(e.ErrorType); t != "" {
		parts = append(parts, t)
	}
	if m := stytchText(e.ErrorMessage); m != "" {
		parts = append(parts, m)
	}
	detail := strings.Join(parts, ": ")
	if id := stytchText(e.RequestID); id != "" {
		if detail != "" {
			detail += " "
		}
		detail += "(request_id " + id + ")"
	}
	if detail == "" {
		return ""
	}
	return ": " + detail
}

// stytchText makes text from Stytch safe to put in an error: valid UTF-8, no
// control characters (no forged log lines), at most 300 bytes.
func stytchText(s string) string {
	const limit = 300
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s))
	if len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// stytchConverter builds the canonical policy and collects problems, each
// located by its path in Stytch's response.
type stytchConverter struct {
	p         pdp.Policy
	resources map[string]int             // resource id → index in p.Resources
	actions   map[string]map[string]bool // resource id → its actions
	defined   map[string]string          // resource id → path of its definition
	roles     map[string]string          // role id → path of its definition
	problems  []string
}

func (c *stytchConverter) add(path, format string, args ...any) {
	c.problems = append(c.problems, path+": "+fmt.Sprintf(format, args...))
}

// convertStytchPolicy converts Stytch's policy as Stytch documents it; see
// the Upstream type for the rules.
func convertStytchPolicy(sp *stytchPolicy) (*pdp.Policy, error) {
	c := &stytchConverter{
		resources: map[string]int{},
		actions:   map[string]map[string]bool{},
		defined:   map[string]string{},
		roles:     map[string]string{},
	}
	if sp.Resources == nil {
		c.add("policy", "has no resources list")
	}
	if sp.Roles == nil {
		c.add("policy", "has no roles list")
	}
	if sp.Resources != nil {
		for i, r := range *sp.Resources {
			c.resource(fmt.Sprintf("policy.resources[%d]", i), r)
		}
	}
	if sp.Roles != nil {
		for i, r := range *sp.Roles {
			path := fmt.Sprintf("policy.roles[%d]", i)
			c.role(path, "role_id", r.RoleID, r.RoleID, r.Description, r.Permissions)
		}
	}
	for i, sc := range sp.Scopes {
		path := fmt.Sprintf("policy.scopes[%d]", i)
		id := ""
		if sc.Scope != "" {
			id = stytchScopeRolePrefix + sc.Scope
		}
		c.role(path, "scope", sc.Scope, id, sc.Description, sc.Permissions)
	}
	if len(c.problems) > 0 {
		return nil, stytchProblems(c.problems)
	}

	p := &c.p
	for i := range p.Resources {
		slices.Sort(p.Resources[i].Actions)
	}
	slices.SortFunc(p.Resources, func(a, b pdp.Resource) int { return strings.Compare(a.ID, b.ID) })
	for i := range p.Roles {
		for j := range p.Roles[i].Permissions {
			slices.Sort(p.Roles[i].Permissions[j].Actions)
		}
		slices.SortStableFunc(p.Roles[i].Permissions, func(a, b pdp.Grant) int { return strings.Compare(a.Resource, b.Resource) })
	}
	slices.SortFunc(p.Roles, func(a, b pdp.Role) int { return strings.Compare(a.ID, b.ID) })

	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("the policy converted from Stytch's does not validate: %w", err)
	}
	return p, nil
}

func stytchProblems(ps []string) error {
	if len(ps) == 1 {
		return fmt.Errorf("cannot convert Stytch's policy: %s", ps[0])
	}
	shown := ps
	if len(shown) > stytchMaxProblems {
		shown = shown[:stytchMaxProblems]
	}
	msg := fmt.Sprintf("cannot convert Stytch's policy: %d problems: %s", len(ps), strings.Join(shown, "; "))
	if len(ps) > len(shown) {
		msg += fmt.Sprintf("; and %d more", len(ps)-len(shown))
	}
	return errors.New(msg)
}

// resource converts one entry of Stytch's resources list.
func (c *stytchConverter) resource(path string, r stytchResource) {
	if r.ResourceID == "" {
		c.add(path+".resource_id", "is missing or empty")
		return
	}
	if first, dup := c.defined[r.ResourceID]; dup {
		c.add(path+".resource_id", "duplicate resource_id %q (first defined at %s)", r.ResourceID, first)
		return
	}
	c.defined[r.ResourceID] = path
	res := pdp.Resource{ID: r.ResourceID, Description: r.Description, Actions: []string{}}
	seen := map[string]bool{}
	for k, a := range r.Actions {
		ap := fmt.Sprintf("%s.actions[%d]", path, k)
		switch {
		case a == "":
			c.add(ap, "is empty")
		case a == "*":
			// Stytch's reserved wildcard: not an action of its own.
		case seen[a]:
			c.add(ap, "duplicate action %q on resource %q", a, r.ResourceID)
		default:
			seen[a] = true
			res.Actions = append(res.Actions, a)
		}
	}
	c.resources[r.ResourceID] = len(c.p.Resources)
	c.actions[r.ResourceID] = seen
	c.p.Resources = append(c.p.Resources, res)
}

// role converts a Stytch role or scope (field names its id field, raw the id
// as Stytch gives it) into the organization role id.
func (c *stytchConverter) role(path, field, raw, id, description string, perms []stytchPermission) {
	if raw == "" {
		c.add(path+"."+field, "is missing or empty")
		return
	}
	if first, dup := c.roles[id]; dup {
		if field == "scope" {
			c.add(path+".scope", "scope %q becomes role %q, which %s already defines", raw, id, first)
		} else {
			c.add(path+".role_id", "duplicate role_id %q (first defined at %s)", raw, first)
		}
		return
	}
	c.roles[id] = path
	role := pdp.Role{ID: id, Type: pdp.RoleOrganization, Description: description}
	for j, perm := range perms {
		if g, ok := c.grant(fmt.Sprintf("%s.permissions[%d]", path, j), perm); ok {
			role.Permissions = append(role.Permissions, g)
		}
	}
	c.p.Roles = append(c.p.Roles, role)
}

// grant converts one permission entry, defining the resource and actions it
// references when the resources list does not.
func (c *stytchConverter) grant(path string, perm stytchPermission) (pdp.Grant, bool) {
	ok := true
	if perm.ResourceID == "" {
		c.add(path+".resource_id", "is missing or empty")
		ok = false
	}
	if len(perm.Actions) == 0 {
		c.add(path+".actions", `must list at least one action (or "*")`)
		ok = false
	}
	seen := map[string]bool{}
	for k, a := range perm.Actions {
		ap := fmt.Sprintf("%s.actions[%d]", path, k)
		switch {
		case a == "":
			c.add(ap, "is empty")
			ok = false
		case seen[a]:
			c.add(ap, "duplicate action %q", a)
			ok = false
		}
		seen[a] = true
	}
	if !ok {
		return pdp.Grant{}, false
	}

	i, known := c.resources[perm.ResourceID]
	if !known {
		i = len(c.p.Resources)
		c.resources[perm.ResourceID] = i
		c.actions[perm.ResourceID] = map[string]bool{}
		c.p.Resources = append(c.p.Resources, pdp.Resource{ID: perm.ResourceID, Actions: []string{}})
	}
	defined := c.actions[perm.ResourceID]
	for _, a := range perm.Actions {
		if a != "*" && !defined[a] {
			defined[a] = true
			c.p.Resources[i].Actions = append(c.p.Resources[i].Actions, a)
		}
	}
	return pdp.Grant{Resource: perm.ResourceID, Actions: slices.Clone(perm.Actions)}, true
}
