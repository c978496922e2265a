package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rolecall/rolecall/bundle"
	"github.com/rolecall/rolecall/routes"
	"github.com/rolecall/rolecall/token"
)

// Validate checks c as a whole and reports every problem at once, joined
// with errors.Join, each naming its key path. It does not change c, reads
// no secret and checks no file's existence, except the issuers'
// hmac_secret_file, which token.ValidateConfigs reads, and
// policy.public_key_file and publish.sign_key_file, which it loads.
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
	if !(p.MaxRevokeRatio >= 0 && p.MaxRevokeRatio <= 1) {
		bad("policy.max_revoke_ratio", "%v: want 0 (off) to 1, the largest share of the served policy's grants a new policy may remove", p.MaxRevokeRatio)
	}
	if p.PublicKeyFile != "" {
		if _, err := p.PublicKey(); err != nil {
			errs = append(errs, err)
		}
	}
	h := p.HTTP
	nonNegative("policy.http.timeout", h.Timeout)
	switch w := h.LongPollWait; {
	case w < 0:
		bad("policy.http.long_poll_wait", "%v: must not be negative", w)
	case w > MaxLongPollWait:
		bad("policy.http.long_poll_wait", "%v: at most %v", w, MaxLongPollWait)
	case w > 0 && w < time.Second:
		bad("policy.http.long_poll_wait", "%v: want 0 (off) or at least 1s (Prefer: wait counts whole seconds)", w)
	}
	// A held long poll confirms the policy only when it ends: a policy could
	// turn stale in a healthy wait.
	if w := p.LongPollWait(); w > 0 && p.MaxStale > 0 && p.MaxStale <= w+h.Timeout {
		bad("policy.max_stale", "%v: must be longer than policy.http.long_poll_wait plus policy.http.timeout (%v), or a healthy long poll makes the policy stale", p.MaxStale, w+h.Timeout)
	}
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

	c.validatePublish(bad, address)

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

	if w := c.WhoCan; w != "local" && w != "any" && w != "off" {
		bad("who_can", "%q: want local, any or off", w)
	}
	return errors.Join(errs...)
}

// validatePublish checks the publish section. It loads the signing key, so
// that a key that does not load stops the start, not the first publish.
func (c *Config) validatePublish(bad func(path, format string, args ...any), address func(path, addr string)) {
	p := c.Publish
	address("publish.address", p.Address)
	if tl := p.TLS; tl.CertFile != "" || tl.KeyFile != "" || tl.ClientCAFile != "" {
		switch {
		case tl.CertFile == "":
			bad("publish.tls.cert_file", "must be set when publish.tls has key_file or client_ca_file")
		case tl.KeyFile == "":
			bad("publish.tls.key_file", "must be set with cert_file")
		}
	}
	if p.MaxWait <= 0 || p.MaxWait > maxPublishWait {
		bad("publish.max_wait", "%v: want more than 0s and at most %v", p.MaxWait, maxPublishWait)
	}
	if p.SignKeyFile != "" {
		if _, err := bundle.LoadPrivateKey(p.SignKeyFile); err != nil {
			bad("publish.sign_key_file", "%v", err)
		}
	}
	_, _, malformed := net.SplitHostPort(p.Address)
	if p.Address != "" && malformed == nil && !loopback(p.Address) && p.BearerTokenFile == "" && p.TLS.ClientCAFile == "" {
		bad("publish.address", "%q reaches beyond loopback without authentication: set publish.bearer_token_file or publish.tls.client_ca_file (mutual TLS), since a published policy holds every subject's id and email", p.Address)
	}
}

// maxPublishWait is the longest publish.max_wait, publish.MaxWait.
const maxPublishWait = 5 * time.Minute

// loopback reports whether addr (HOST:PORT) listens on loopback only: a
// loopback IP or localhost. An empty host is every interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
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
