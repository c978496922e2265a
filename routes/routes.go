// Package routes maps HTTP requests to authorization checks for rolecall's
// enforcement edges (Envoy ext_authz, nginx auth_request, Traefik forwardAuth,
// and the Go client's middleware). A table of routes names, for a method and
// a path, the resource and action to check, where the organization comes
// from, or that the route is public. The first matching route wins.
//
// # Paths
//
// A request path is made canonical before it is matched, as the server behind
// the proxy will read it: the query and fragment are dropped, empty segments
// collapse ("//"), each segment is percent-decoded once, and "." and ".."
// segments (also when encoded, "%2e%2e") are resolved. Anything a server
// could read differently is refused rather than guessed: an encoded slash or
// backslash, a literal backslash, control characters, invalid UTF-8, a ".."
// above the root, and "..;" style segments that some servers treat as "..".
// So no encoding makes a protected path match a public route.
package routes

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Route is one entry of a route table, as configured.
type Route struct {
	// Methods the route applies to, case-insensitive; empty means any.
	Methods []string `yaml:"methods"`
	// Path is an exact path ("/orders") or a pattern whose "{name}"
	// segments match any one segment ("/orders/{id}"); a last segment
	// "{name...}" matches the rest of the path. Set Path or Prefix.
	Path string `yaml:"path"`
	// Prefix matches every path under it, segment by segment ("/static/"
	// matches "/static/app.js", not "/staticfiles").
	Prefix string `yaml:"prefix"`
	// Resource and Action are what is checked; required unless Public.
	Resource string `yaml:"resource"`
	Action   string `yaml:"action"`
	// Org says where the organization comes from; none: global roles.
	Org OrgSource `yaml:"org"`
	// Public routes need no token and no check.
	Public bool `yaml:"public"`
}

// OrgSource names where a route's organization comes from: at most one of a
// request header, a path parameter of the route's pattern, or the token's
// organization claim.
type OrgSource struct {
	Header    string `yaml:"header"`
	PathParam string `yaml:"path_param"`
	Token     bool   `yaml:"token"`
}

// Table is a compiled, immutable route table.
type Table struct {
	routes []compiled
}

type compiled struct {
	Route
	index    int
	methods  map[string]bool // nil: any
	segments []segment       // of Path or Prefix
	prefix   bool
	rest     string // name of a trailing "{name...}", if any
}

// segment is a literal or, when param is set, a "{name}" wildcard.
type segment struct {
	literal string
	param   string
}

// Match is the route a request matched.
type Match struct {
	// Route is the matched route; nil when none matched.
	Route *Route
	// Index is the route's position in the table.
	Index int
	// Path is the canonical request path the route matched, its segments
	// escaped where needed, so that matching it again gives the same match.
	Path   string
	params []Param
}

// Param is a path parameter's value.
type Param struct{ Name, Value string }

// Param returns the value of a path parameter of the matched pattern.
func (m Match) Param(name string) string {
	for _, p := range m.params {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// ErrBadPath is returned for a request path that is refused rather than
// interpreted; callers deny the request.
var ErrBadPath = errors.New("refused request path")

// Compile checks every route, reporting all problems at once with the path
// of each in the table ("routes[2].path: …"), and builds the table.
func Compile(rs []Route) (*Table, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	t := &Table{}
	for i, r := range rs {
		at := fmt.Sprintf("routes[%d]", i)
		c := compiled{Route: r, index: i}
		if len(r.Methods) > 0 {
			c.methods = make(map[string]bool, len(r.Methods))
			for j, m := range r.Methods {
				if m == "" || strings.IndexFunc(m, func(c rune) bool { return !isTokenChar(c) }) >= 0 {
					bad("%s.methods[%d]: %q is not an HTTP method", at, j, m)
					continue
				}
				c.methods[strings.ToUpper(m)] = true
			}
		}
		switch {
		case r.Path != "" && r.Prefix != "":
			bad("%s: set path or prefix, not both", at)
		case r.Path == "" && r.Prefix == "":
			bad("%s: set path or prefix", at)
		case r.Path != "":
			c.segments, c.rest = parsePattern(r.Path, at+".path", bad)
		default:
			c.prefix = true
			c.segments, _ = parsePattern(r.Prefix, at+".prefix", bad)
			for _, s := range c.segments {
				if s.param != "" {
					bad("%s.prefix: %q: a prefix cannot have parameters", at, r.Prefix)
				}
			}
		}
		if r.Public {
			if r.Resource != "" || r.Action != "" {
				bad("%s: a public route checks nothing: remove resource and action", at)
			}
		} else {
			if r.Resource == "" {
				bad("%s.resource: required (or public: true)", at)
			}
			if r.Action == "" {
				bad("%s.action: required (or public: true)", at)
			}
		}
		sources := 0
		if r.Org.Header != "" {
			sources++
			if strings.IndexFunc(r.Org.Header, func(c rune) bool { return !isTokenChar(c) }) >= 0 {
				bad("%s.org.header: %q is not a header name", at, r.Org.Header)
			}
		}
		if r.Org.PathParam != "" {
			sources++
			if !c.hasParam(r.Org.PathParam) {
				bad("%s.org.path_param: the path has no parameter {%s}", at, r.Org.PathParam)
			}
		}
		if r.Org.Token {
			sources++
		}
		if sources > 1 {
			bad("%s.org: name one source: header, path_param or token", at)
		}
		if r.Public && sources > 0 {
			bad("%s.org: a public route has no organization", at)
		}
		t.routes = append(t.routes, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

func (c *compiled) hasParam(name string) bool {
	if c.rest == name {
		return true
	}
	for _, s := range c.segments {
		if s.param == name {
			return true
		}
	}
	return false
}

// parsePattern splits a configured path into segments.
func parsePattern(p, at string, bad func(string, ...any)) ([]segment, string) {
	if !strings.HasPrefix(p, "/") {
		bad("%s: %q must start with /", at, p)
		return nil, ""
	}
	var segs []segment
	rest := ""
	seen := map[string]bool{}
	parts := strings.Split(strings.Trim(p, "/"), "/")
	for k, part := range parts {
		switch {
		case part == "":
			if len(parts) > 1 {
				bad("%s: %q has an empty segment", at, p)
			}
		case strings.HasPrefix(part, "{") && strings.HasSuffix(part, "}"):
			name := part[1 : len(part)-1]
			if n, ok := strings.CutSuffix(name, "..."); ok {
				if k != len(parts)-1 {
					bad("%s: %q: {%s} must be the last segment", at, p, name)
				}
				name = n
				rest = n
			}
			if name == "" || strings.IndexFunc(name, func(c rune) bool { return !(unicode.IsLetter(c) || unicode.IsDigit(c) || c == '_') }) >= 0 {
				bad("%s: %q: {%s} is not a parameter name", at, p, name)
			} else if seen[name] {
				bad("%s: %q: parameter {%s} appears twice", at, p, name)
			}
			seen[name] = true
			if rest == "" || name != rest {
				segs = append(segs, segment{param: name})
			}
		case strings.ContainsAny(part, "{}"):
			bad("%s: %q: braces must enclose a whole segment", at, p)
		case part == "." || part == "..":
			bad("%s: %q: dot segments are not allowed", at, p)
		default:
			segs = append(segs, segment{literal: part})
		}
	}
	return segs, rest
}

// Match finds the first route for method and the request target uri (a path
// with an optional query, as in the request line). A path that is refused
// rather than interpreted returns ErrBadPath.
func (t *Table) Match(method, uri string) (Match, error) {
	segs, err := Canonical(uri)
	if err != nil {
		return Match{}, err
	}
	method = strings.ToUpper(method)
	path := canonicalPath(segs)
	for i := range t.routes {
		c := &t.routes[i]
		if c.methods != nil && !c.methods[method] {
			continue
		}
		if params, ok := c.match(segs); ok {
			return Match{Route: &c.Route, Index: c.index, Path: path, params: params}, nil
		}
	}
	return Match{Path: path}, nil
}

func (c *compiled) match(segs []string) ([]Param, bool) {
	switch {
	case c.prefix:
		if len(segs) < len(c.segments) {
			return nil, false
		}
	case c.rest != "":
		if len(segs) <= len(c.segments) {
			return nil, false
		}
	case len(segs) != len(c.segments):
		return nil, false
	}
	var params []Param
	for i, s := range c.segments {
		if s.param != "" {
			params = append(params, Param{Name: s.param, Value: segs[i]})
		} else if s.literal != segs[i] {
			return nil, false
		}
	}
	if c.rest != "" {
		params = append(params, Param{Name: c.rest, Value: strings.Join(segs[len(c.segments):], "/")})
	}
	return params, true
}

// Canonical returns the decoded segments of the path in a request target, or
// ErrBadPath for a path that could be read more than one way.
func Canonical(uri string) ([]string, error) {
	path := uri
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("%w: %q does not start with /", ErrBadPath, truncate(uri))
	}
	if strings.ContainsRune(path, '\\') {
		return nil, fmt.Errorf("%w: a backslash in the path", ErrBadPath)
	}
	var out []string
	for _, raw := range strings.Split(path, "/") {
		if raw == "" {
			continue
		}
		seg, err := url.PathUnescape(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: invalid percent-encoding", ErrBadPath)
		}
		switch {
		case strings.ContainsAny(seg, "/\\"):
			return nil, fmt.Errorf("%w: an encoded slash or backslash in the path", ErrBadPath)
		case !utf8.ValidString(seg) || strings.IndexFunc(seg, unicode.IsControl) >= 0:
			return nil, fmt.Errorf("%w: invalid UTF-8 or a control character in the path", ErrBadPath)
		}
		// "..;x" is ".." to some servers (path parameters): refuse it.
		if base, _, hasParams := strings.Cut(seg, ";"); hasParams && (base == "." || base == "..") {
			return nil, fmt.Errorf("%w: a dot segment with parameters", ErrBadPath)
		}
		switch seg {
		case ".":
		case "..":
			if len(out) == 0 {
				return nil, fmt.Errorf("%w: the path climbs above the root", ErrBadPath)
			}
			out = out[:len(out)-1]
		default:
			out = append(out, seg)
		}
	}
	return out, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// isTokenChar reports whether c may appear in an HTTP token (RFC 9110).
func isTokenChar(c rune) bool {
	return c < utf8.RuneSelf && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", c))
}

// canonicalPath joins decoded segments into a path, escaping what would
// otherwise read differently ("?", "%", "#", …).
func canonicalPath(segs []string) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}
