package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rolecall/rolecall/routes"
	"github.com/rolecall/rolecall/token"
)

// Environment variables holding the upstream secrets when no *_file key
// names a file for them.
const (
	// EnvStytchSecret holds the Stytch project secret, unless
	// policy.stytch.secret_file is set.
	EnvStytchSecret = "ROLECALL_STYTCH_SECRET"
	// EnvLogtoAppSecret holds the secret of the Logto machine-to-machine app,
	// unless policy.logto.app_secret_file is set.
	EnvLogtoAppSecret = "ROLECALL_LOGTO_APP_SECRET"
	// EnvLogtoWebhookKey holds the Logto webhook signing key, unless
	// policy.logto.webhook_key_file is set. Either enables
	// POST /v1/webhooks/logto.
	EnvLogtoWebhookKey = "ROLECALL_LOGTO_WEBHOOK_KEY"
)

// Config is every setting of rolecall serve. Its YAML form is the
// configuration file; examples/rolecall.yaml shows every key.
type Config struct {
	// GRPC is the decision API's listeners and limits.
	GRPC GRPC `yaml:"grpc"`
	// Admin is the admin HTTP listener.
	Admin Admin `yaml:"admin"`
	// Cache is the local store of the last accepted policy and key sets.
	Cache Cache `yaml:"cache"`
	// Policy is where the policy comes from and how it is kept fresh.
	Policy Policy `yaml:"policy"`
	// Issuers are the trusted token issuers of ValidateToken: the same
	// entries as the --issuers file. None by default (ValidateToken then
	// knows no issuer).
	Issuers []token.IssuerConfig `yaml:"issuers"`
	// Log is the process log.
	Log Log `yaml:"log"`
	// DecisionLog is the log of decisions.
	DecisionLog DecisionLog `yaml:"decision_log"`
	// Authz is the enforcement edges: Envoy ext_authz on the gRPC listener
	// and the HTTP auth endpoint for nginx, Traefik and Envoy.
	Authz Authz `yaml:"authz"`
}

// Authz configures the enforcement edges. The route-based ones (ext_authz
// and /v1/authz) are on only when routes are configured; the AuthZEN API is on
// whenever the HTTP edge listener is.
type Authz struct {
	// Address of the HTTP edge listener: the AuthZEN API (/access/v1/…) and,
	// with routes, the auth endpoint (GET/POST /v1/authz); "" disables it
	// (Envoy's gRPC ext_authz stays on the gRPC listener). Default
	// 127.0.0.1:50053.
	Address string `yaml:"address"`
	// Default is what a request matching no route gets: deny (403, the
	// default) or allow.
	Default string `yaml:"default"`
	// DryRun allows every request and logs the real decision.
	DryRun bool `yaml:"dry_run"`
	// Audience the bearer tokens must carry; "" accepts the issuer's
	// configured audiences.
	Audience string `yaml:"audience"`
	// IdentityHeaders name the headers set for the upstream on an allow.
	IdentityHeaders IdentityHeaders `yaml:"identity_headers"`
	// Routes map method and path to the resource and action to check, in
	// order; the first match wins.
	Routes []routes.Route `yaml:"routes"`
}

// IdentityHeaders name the headers carrying the caller's identity to the
// upstream. The client's own copies are always removed.
type IdentityHeaders struct {
	Subject string `yaml:"subject"`
	Org     string `yaml:"org"`
	Scopes  string `yaml:"scopes"`
}

// GRPC configures the gRPC listeners (rolecall.v1.PolicyDecisionService,
// grpc.health.v1 and reflection).
type GRPC struct {
	// Address is the TCP host:port to serve on; "" disables TCP. Default
	// 127.0.0.1:50051.
	Address string `yaml:"address"`
	// UnixSocket is the path of a Unix socket to serve on as well; "" (the
	// default) for none. Address and UnixSocket may not both be empty.
	UnixSocket string `yaml:"unix_socket"`
	// UnixSocketMode is the socket file's permission bits, in octal.
	// Default "0660": the owner and the group (the service sharing the pod
	// or host) may connect, no one else.
	UnixSocketMode string `yaml:"unix_socket_mode"`
	// MaxRecvMsgBytes is the largest gRPC message a client may send.
	// Default 4194304 (4 MiB).
	MaxRecvMsgBytes int `yaml:"max_recv_msg_bytes"`
	// MaxConcurrentStreams bounds the concurrent calls of one connection.
	// Default 1024.
	MaxConcurrentStreams int `yaml:"max_concurrent_streams"`
	// KeepaliveMinTime is the keepalive enforcement policy: a client pinging
	// more often than this is disconnected. Default 10s.
	KeepaliveMinTime time.Duration `yaml:"keepalive_min_time"`
	// GracePeriod is how long in-flight calls (and admin requests) may
	// finish at shutdown. Default 10s.
	GracePeriod time.Duration `yaml:"grace_period"`
	// TLS, when CertFile is set, serves TLS on Address (the Unix socket
	// stays plaintext: its file mode guards it). Changed files are picked up
	// without a restart.
	TLS ServerTLS `yaml:"tls"`
}

// ServerTLS names the PEM files of a listener's TLS.
type ServerTLS struct {
	// CertFile is the certificate chain; it needs KeyFile.
	CertFile string `yaml:"cert_file"`
	// KeyFile is CertFile's private key.
	KeyFile string `yaml:"key_file"`
	// ClientCAFile, when set, requires clients to present a certificate
	// issued by one of these CAs (mutual TLS).
	ClientCAFile string `yaml:"client_ca_file"`
}

// Admin configures the admin HTTP listener: /healthz, /readyz, /v1/status,
// /v1/refresh and the webhooks.
type Admin struct {
	// Address is the TCP host:port to serve on; "" disables the admin
	// endpoints. Default 127.0.0.1:50052, loopback: anyone who reaches it can
	// read the status and trigger refreshes.
	Address string `yaml:"address"`
	// PProf serves /debug/pprof on the admin listener when true. Default
	// false.
	PProf bool `yaml:"pprof"`
}

// Cache configures the bbolt cache file.
type Cache struct {
	// Path of the bbolt file holding the last accepted policy and the
	// issuers' key sets, so that a restart serves at once. Default
	// rolecall.db.
	Path string `yaml:"path"`
}

// Policy configures the policy upstream and its refreshes.
type Policy struct {
	// Upstream is where policies come from: a file path (YAML or JSON),
	// file://PATH, an http:// or https:// URL of the canonical document,
	// stytch://PROJECT_ID (the project's RBAC policy) or logto://TENANT_HOST
	// (the tenant's Management API). Required.
	Upstream string `yaml:"upstream"`
	// RefreshInterval is how often the upstream is polled, spread by ±10%.
	// 0 (the default): 5s for a file, 5m otherwise.
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// MaxStale is how old the last successful refresh may be before the
	// policy is stale. 0 (the default): never stale.
	MaxStale time.Duration `yaml:"max_stale"`
	// OnStale is what a stale policy does: "serve" (the default; status and
	// readiness say it is stale) or "fail" (Check answers UNAVAILABLE and
	// health is NOT_SERVING until the upstream answers). fail needs MaxStale.
	OnStale string `yaml:"on_stale"`
	// HTTP configures an http(s) upstream.
	HTTP HTTP `yaml:"http"`
	// Stytch configures a stytch:// upstream.
	Stytch Stytch `yaml:"stytch"`
	// Logto configures a logto:// upstream and the Logto webhook.
	Logto Logto `yaml:"logto"`
}

// HTTP configures an http(s) upstream. Credentials are read again at every
// fetch, so they can rotate, and never appear in logs or status.
type HTTP struct {
	// Timeout bounds one fetch, body included. Default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxBytes is the largest document accepted, after decompression.
	// Default 67108864 (64 MiB).
	MaxBytes int64 `yaml:"max_bytes"`
	// BearerTokenFile names a file holding a bearer token.
	BearerTokenFile string `yaml:"bearer_token_file"`
	// BearerTokenEnv names an environment variable holding a bearer token
	// (its name, not the token). Not with BearerTokenFile.
	BearerTokenEnv string `yaml:"bearer_token_env"`
	// BasicUser is the basic auth user; its password comes from
	// BasicPasswordFile or BasicPasswordEnv. Not with a bearer token.
	BasicUser string `yaml:"basic_user"`
	// BasicPasswordFile names a file holding the basic auth password.
	BasicPasswordFile string `yaml:"basic_password_file"`
	// BasicPasswordEnv names an environment variable holding the basic auth
	// password (its name, not the password).
	BasicPasswordEnv string `yaml:"basic_password_env"`
	// CAFile names a PEM file of CA certificates to trust instead of the
	// system roots.
	CAFile string `yaml:"ca_file"`
	// ClientCertFile names a PEM client certificate file for mutual TLS;
	// it needs ClientKeyFile.
	ClientCertFile string `yaml:"client_cert_file"`
	// ClientKeyFile names the PEM file of ClientCertFile's private key.
	ClientKeyFile string `yaml:"client_key_file"`
}

// Stytch configures a stytch://PROJECT_ID upstream.
type Stytch struct {
	// SecretFile names a file holding the project secret; "" reads
	// $ROLECALL_STYTCH_SECRET.
	SecretFile string `yaml:"secret_file"`
	// BaseURL of Stytch's API; "" picks it by project: test.stytch.com for
	// test projects, api.stytch.com for live ones.
	BaseURL string `yaml:"base_url"`
}

// Logto configures a logto://TENANT_HOST upstream, read through the
// Management API as a machine-to-machine app, and the Logto webhook.
type Logto struct {
	// AppID is the id of a machine-to-machine app with Management API
	// access. Required by a logto:// upstream.
	AppID string `yaml:"app_id"`
	// AppSecretFile names a file holding the app's secret; "" reads
	// $ROLECALL_LOGTO_APP_SECRET.
	AppSecretFile string `yaml:"app_secret_file"`
	// Resource is the Management API resource indicator; "" picks the
	// tenant's default.
	Resource string `yaml:"resource"`
	// WebhookKeyFile names a file holding the Logto webhook signing key;
	// "" reads $ROLECALL_LOGTO_WEBHOOK_KEY. Either enables
	// POST /v1/webhooks/logto on the admin listener.
	WebhookKeyFile string `yaml:"webhook_key_file"`
}

// Log configures the process log, written to standard error.
type Log struct {
	// Level is the least severe level logged: debug, info (the default),
	// warn or error.
	Level string `yaml:"level"`
	// Format is text (the default) or json.
	Format string `yaml:"format"`
}

// DecisionLog configures the log of decisions, one JSON object per line.
type DecisionLog struct {
	// Enabled turns the decision log on. Default false.
	Enabled bool `yaml:"enabled"`
	// Output is stdout (the default), stderr or the path of a file, which is
	// appended to.
	Output string `yaml:"output"`
	// AllowSampleRate is the fraction of allowed decisions logged, from 0 to
	// 1; denied decisions are always logged. Default 1.
	AllowSampleRate float64 `yaml:"allow_sample_rate"`
	// QueueSize is how many entries are buffered. When the queue is full,
	// entries are dropped and counted: logging never blocks a decision.
	// Default 10000.
	QueueSize int `yaml:"queue_size"`
}

// Default returns a Config with every default filled in. Its
// Policy.Upstream is empty: an upstream is required.
func Default() *Config {
	return &Config{
		GRPC: GRPC{
			Address:              "127.0.0.1:50051",
			UnixSocketMode:       "0660",
			MaxRecvMsgBytes:      4 << 20,
			MaxConcurrentStreams: 1024,
			KeepaliveMinTime:     10 * time.Second,
			GracePeriod:          10 * time.Second,
		},
		Admin: Admin{Address: "127.0.0.1:50052"},
		Cache: Cache{Path: "rolecall.db"},
		Policy: Policy{
			OnStale: "serve",
			HTTP: HTTP{
				Timeout:  30 * time.Second,
				MaxBytes: 64 << 20,
			},
		},
		Log: Log{Level: "info", Format: "text"},
		DecisionLog: DecisionLog{
			Output:          "stdout",
			AllowSampleRate: 1,
			QueueSize:       10000,
		},
		Authz: Authz{
			Address: "127.0.0.1:50053",
			Default: "deny",
			IdentityHeaders: IdentityHeaders{
				Subject: "x-rolecall-subject",
				Org:     "x-rolecall-org",
				Scopes:  "x-rolecall-scopes",
			},
		},
	}
}

// LoadFile decodes the YAML file at path over c: keys present in the file
// replace c's values, absent keys keep them. Decoding is strict: unknown and
// duplicate keys, values of the wrong kind and keys without a value are
// errors naming the file, the line and the key, all reported together. An
// empty file changes nothing. On error, c is unchanged.
//
// LoadFile does not validate the result; call Validate once everything
// (such as flags) has been applied.
func (c *Config) LoadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return c.load(path, data)
}

// load decodes data, read from the file name, over c.
func (c *Config) load(name string, data []byte) error {
	fail := func(err error) error {
		return fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		return nil // empty: nothing to change
	case err != nil:
		return fail(err)
	}
	for { // further documents may only be empty, as after a trailing ---
		var more yaml.Node
		err := dec.Decode(&more)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail(err)
		}
		if len(more.Content) > 0 && more.Content[0].ShortTag() != "!!null" {
			return fmt.Errorf("%s: line %d: a second YAML document; want one", name, more.Line)
		}
	}

	var k checker
	if len(doc.Content) == 1 {
		k.value(doc.Content[0], reflect.TypeFor[Config](), "", true)
	}
	if len(k.problems) > 0 {
		errs := make([]error, len(k.problems))
		for i, p := range k.problems {
			errs[i] = fmt.Errorf("%s: %s", name, p)
		}
		return errors.Join(errs...)
	}

	// The checker found nothing wrong; decode for real, still strictly.
	next := *c
	dec = yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&next); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			errs := make([]error, len(te.Errors))
			for i, e := range te.Errors {
				errs[i] = fmt.Errorf("%s: %s", name, e)
			}
			return errors.Join(errs...)
		}
		return fail(err)
	}
	*c = next
	return nil
}

var durationType = reflect.TypeFor[time.Duration]()

// checker walks a YAML node tree along the Go type it is decoded into and
// records every problem, each as "line N: " and what is wrong with which key.
type checker struct {
	problems []string
}

func (k *checker) bad(n *yaml.Node, format string, args ...any) {
	p := fmt.Sprintf("line %d: ", n.Line) + fmt.Sprintf(format, args...)
	if !slices.Contains(k.problems, p) { // a merged anchor is checked where it is used
		k.problems = append(k.problems, p)
	}
}

// value checks n, at the key path path, as a value of type t. strictNull
// makes a key without a value an error for scalars: it would silently keep
// a default where the author likely meant an empty value.
func (k *checker) value(n *yaml.Node, t reflect.Type, path string, strictNull bool) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	isNull := n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
	switch {
	case t.Kind() == reflect.Struct:
		if isNull {
			return // an empty section keeps its values
		}
		if n.Kind != yaml.MappingNode {
			k.bad(n, "%s: want a mapping of keys, found %s", label(path), describe(n))
			return
		}
		k.mapping(n, t, path, strictNull, map[string]int{})
	case t.Kind() == reflect.Slice:
		if isNull {
			return
		}
		if n.Kind != yaml.SequenceNode {
			k.bad(n, "%s: want a list, found %s", label(path), describe(n))
			return
		}
		// The elements of a list start from zero values: a null is a zero.
		for i, e := range n.Content {
			k.value(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), false)
		}
	default:
		k.scalar(n, t, path, isNull, strictNull)
	}
}

// mapping checks the keys of n against the fields of the struct type t.
// seen holds the keys already set, with their lines.
func (k *checker) mapping(n *yaml.Node, t reflect.Type, path string, strictNull bool, seen map[string]int) {
	fields := yamlFields(t)
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if key.Kind != yaml.ScalarNode {
			k.bad(key, "%s: want a key name, found %s", label(path), describe(key))
			continue
		}
		if key.ShortTag() == "!!merge" {
			merges = append(merges, val)
			continue
		}
		full := join(path, key.Value)
		f, ok := fields[key.Value]
		if !ok {
			k.bad(key, "unknown key %s; %s", full, known(path, key.Value, fields))
			continue
		}
		if line, dup := seen[key.Value]; dup {
			k.bad(key, "%s is set twice (first at line %d)", full, line)
			continue
		}
		seen[key.Value] = key.Line
		k.value(val, f.Type, full, strictNull)
	}
	// Merged keys (<<: *anchor) apply where the mapping does not set them.
	for _, m := range merges {
		if m.Kind == yaml.AliasNode && m.Alias != nil {
			m = m.Alias
		}
		list := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			list = m.Content
		}
		for _, e := range list {
			if e.Kind == yaml.AliasNode && e.Alias != nil {
				e = e.Alias
			}
			if e.Kind != yaml.MappingNode {
				k.bad(e, "%s: a merge (<<) wants a mapping or a list of mappings, found %s", label(path), describe(e))
				continue
			}
			// A merged key may repeat one the mapping sets: it is overridden.
			k.mapping(e, t, path, strictNull, map[string]int{})
		}
	}
}

// scalar checks n as a scalar of type t.
func (k *checker) scalar(n *yaml.Node, t reflect.Type, path string, isNull, strictNull bool) {
	if isNull {
		if strictNull {
			if t.Kind() == reflect.String {
				k.bad(n, `%s has no value: write "" for an empty string, or leave the key out for its default`, path)
			} else {
				k.bad(n, "%s has no value: want %s, or leave the key out for its default", path, want(t))
			}
		}
		return
	}
	if n.Kind != yaml.ScalarNode {
		k.bad(n, "%s: want %s, found %s", label(path), want(t), describe(n))
		return
	}
	tag := n.ShortTag()
	ok := true
	switch {
	case t == durationType:
		ok = tag == "!!str"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		ok = tag == "!!int"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		ok = tag == "!!int" || tag == "!!float"
	}
	if ok {
		ok = n.Decode(reflect.New(t).Interface()) == nil
	}
	if !ok {
		k.bad(n, "%s: %q: want %s", path, n.Value, want(t))
	}
}

// want describes the values of type t.
func want(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration with its unit, such as 0s, 10s, 5m or 1h30m"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		return fmt.Sprintf("an integer (%d bits)", t.Bits())
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		return fmt.Sprintf("a non-negative integer (%d bits)", t.Bits())
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	case t.Kind() == reflect.String:
		return "a string"
	default:
		return "a " + t.String()
	}
}

// describe names the kind of n, for errors.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return strconv.Quote(n.Value)
	}
}

// label is path for messages; the top level is "the file".
func label(path string) string {
	if path == "" {
		return "the file"
	}
	return path
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// known lists the keys a mapping may have, suggesting the closest to the
// unknown key name.
func known(path, name string, fields map[string]reflect.StructField) string {
	keys := make([]string, 0, len(fields))
	for key := range fields {
		keys = append(keys, key)
	}
	slices.SortFunc(keys, func(a, b string) int { return fields[a].Index[0] - fields[b].Index[0] })
	var s strings.Builder
	best, bestDist := "", math.MaxInt
	for _, key := range keys {
		if d := distance(strings.ToLower(name), key); d < bestDist {
			best, bestDist = key, d
		}
	}
	if best != "" && bestDist <= max(1, len(best)/3) {
		fmt.Fprintf(&s, "did you mean %s? ", join(path, best))
	}
	fmt.Fprintf(&s, "%s has %s", label(path), strings.Join(keys, ", "))
	return s.String()
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// yamlFields maps the YAML keys of the struct type t to its fields, as
// yaml.v3 names them: the yaml tag's name, else the lowercased field name.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	fields := make(map[string]reflect.StructField, t.NumField())
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || len(f.Index) != 1 {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = strings.ToLower(f.Name)
		}
		fields[name] = f
	}
	return fields
}

// Validate checks c as a whole and reports every problem at once, joined
// with errors.Join, each naming its key path. It does not change c, reads
// no secret and checks no file's existence, except the issuers'
// hmac_secret_file, which token.ValidateConfigs reads.
func (c *Config) Validate() error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{path}, args...)...))
	}
	nonNegative := func(path string, d time.Duration) {
		if d < 0 {
			bad(path, "%v: must not be negative", d)
		}
	}
	address := func(path, addr string) {
		if addr == "" {
			return
		}
		_, port, err := net.SplitHostPort(addr)
		if err == nil {
			_, err = strconv.ParseUint(port, 10, 16)
		}
		if err != nil {
			bad(path, "%q: want HOST:PORT, such as 127.0.0.1:50051 or :50051", addr)
		}
	}

	// grpc
	g := c.GRPC
	if g.Address == "" && g.UnixSocket == "" {
		bad("grpc", "address and unix_socket are both empty: set one or both")
	}
	address("grpc.address", g.Address)
	if _, err := ParseFileMode(g.UnixSocketMode); err != nil {
		bad("grpc.unix_socket_mode", "%v", err)
	}
	if tl := g.TLS; tl.CertFile != "" || tl.KeyFile != "" || tl.ClientCAFile != "" {
		switch {
		case tl.CertFile == "":
			bad("grpc.tls.cert_file", "must be set when grpc.tls has key_file or client_ca_file")
		case tl.KeyFile == "":
			bad("grpc.tls.key_file", "must be set with cert_file")
		case g.Address == "":
			bad("grpc.tls", "needs grpc.address: TLS is served on the TCP listener only")
		}
	}
	if g.MaxRecvMsgBytes < 1 {
		bad("grpc.max_recv_msg_bytes", "%d: want at least 1", g.MaxRecvMsgBytes)
	}
	if g.MaxConcurrentStreams < 1 || int64(g.MaxConcurrentStreams) > math.MaxUint32 {
		bad("grpc.max_concurrent_streams", "%d: want 1 to %d", g.MaxConcurrentStreams, uint32(math.MaxUint32))
	}
	nonNegative("grpc.keepalive_min_time", g.KeepaliveMinTime)
	nonNegative("grpc.grace_period", g.GracePeriod)

	// admin, cache
	address("admin.address", c.Admin.Address)
	if c.Cache.Path == "" {
		bad("cache.path", "required: the cache file")
	}

	// policy
	p := c.Policy
	c.validateUpstream(bad)
	nonNegative("policy.refresh_interval", p.RefreshInterval)
	nonNegative("policy.max_stale", p.MaxStale)
	switch p.OnStale {
	case "serve":
	case "fail":
		if p.MaxStale <= 0 {
			bad("policy.on_stale", "fail needs policy.max_stale")
		}
	default:
		bad("policy.on_stale", "%q: want serve or fail", p.OnStale)
	}
	h := p.HTTP
	nonNegative("policy.http.timeout", h.Timeout)
	if h.MaxBytes < 1 {
		bad("policy.http.max_bytes", "%d: want at least 1", h.MaxBytes)
	}
	if h.BearerTokenFile != "" && h.BearerTokenEnv != "" {
		bad("policy.http", "bearer_token_file and bearer_token_env are both set: choose one")
	}
	if (h.BearerTokenFile != "" || h.BearerTokenEnv != "") && h.BasicUser != "" {
		bad("policy.http", "a bearer token and basic_user are both set: choose a bearer token or basic auth")
	}
	if h.BasicPasswordFile != "" && h.BasicPasswordEnv != "" {
		bad("policy.http", "basic_password_file and basic_password_env are both set: choose one")
	}
	if h.BasicUser != "" && h.BasicPasswordFile == "" && h.BasicPasswordEnv == "" {
		bad("policy.http.basic_user", "needs basic_password_file or basic_password_env")
	}
	if h.BasicUser == "" && (h.BasicPasswordFile != "" || h.BasicPasswordEnv != "") {
		bad("policy.http", "a basic auth password is set without basic_user")
	}
	if h.ClientCertFile != "" && h.ClientKeyFile == "" {
		bad("policy.http.client_cert_file", "needs client_key_file")
	}
	if h.ClientKeyFile != "" && h.ClientCertFile == "" {
		bad("policy.http.client_key_file", "needs client_cert_file")
	}
	envName("policy.http.bearer_token_env", h.BearerTokenEnv, bad)
	envName("policy.http.basic_password_env", h.BasicPasswordEnv, bad)
	if u := p.Stytch.BaseURL; u != "" && !httpURL(u) {
		bad("policy.stytch.base_url", "%q: want an http(s) URL", u)
	}

	// log
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Log.Level)); err != nil {
		bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	if f := c.Log.Format; f != "text" && f != "json" {
		bad("log.format", "%q: want text or json", f)
	}

	// decision_log
	d := c.DecisionLog
	if d.Output == "" {
		bad("decision_log.output", "required: stdout, stderr or a file path")
	}
	if !(d.AllowSampleRate >= 0 && d.AllowSampleRate <= 1) {
		bad("decision_log.allow_sample_rate", "%v: want 0 to 1", d.AllowSampleRate)
	}
	if d.QueueSize < 1 {
		bad("decision_log.queue_size", "%d: want at least 1", d.QueueSize)
	}

	// authz
	a := c.Authz
	if a.Default != "deny" && a.Default != "allow" {
		bad("authz.default", "%q: want deny or allow", a.Default)
	}
	if a.Address != "" {
		if _, _, err := net.SplitHostPort(a.Address); err != nil {
			bad("authz.address", "%q: want HOST:PORT", a.Address)
		}
	}
	for name, h := range map[string]string{"subject": a.IdentityHeaders.Subject, "org": a.IdentityHeaders.Org, "scopes": a.IdentityHeaders.Scopes} {
		if h == "" || strings.ContainsAny(h, " :\t\r\n") {
			bad("authz.identity_headers."+name, "%q is not a header name", h)
		}
	}
	if _, err := routes.Compile(a.Routes); err != nil {
		list := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			list = j.Unwrap()
		}
		for _, e := range list {
			errs = append(errs, fmt.Errorf("authz.%w", e))
		}
	}
	checked := false
	for _, r := range a.Routes {
		checked = checked || !r.Public
	}
	if checked && len(c.Issuers) == 0 {
		bad("authz.routes", "routes that check requests need issuers to validate their bearer tokens")
	}

	// issuers
	if _, err := token.ValidateConfigs(c.Issuers); err != nil {
		list := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			list = j.Unwrap()
		}
		for _, e := range list {
			if !strings.HasPrefix(e.Error(), "issuers") {
				e = fmt.Errorf("issuers: %w", e)
			}
			errs = append(errs, e)
		}
	}
	return errors.Join(errs...)
}

// validateUpstream checks policy.upstream and what its kind needs. The
// upstream is never quoted in errors: an http(s) URL may carry credentials.
func (c *Config) validateUpstream(bad func(path, format string, args ...any)) {
	c.Policy.validateUpstreamKind(bad)
}

// envName checks that name, when set, is the name of an environment
// variable. The value is never quoted: it may be a secret put there by
// mistake.
func envName(path, name string, bad func(path, format string, args ...any)) {
	if name == "" {
		return
	}
	ok := true
	for i, r := range name {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			ok = false
			break
		}
	}
	if !ok {
		bad(path, "not an environment variable name: want the variable's NAME (letters, digits, _), not $NAME or the secret itself")
	}
}

func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// ParseFileMode parses permission bits written in octal, such as "0660".
func ParseFileMode(s string) (os.FileMode, error) {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("%q: want octal permission bits from 0000 to 0777, such as 0660", s)
	}
	return os.FileMode(m), nil
}
