package config

import (
	"crypto/ed25519"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/rolecall/rolecall/bundle"
	"github.com/rolecall/rolecall/refresh"
	"github.com/rolecall/rolecall/refresh/file"
	"github.com/rolecall/rolecall/refresh/httpdoc"
	"github.com/rolecall/rolecall/refresh/logto"
	"github.com/rolecall/rolecall/refresh/stytch"
)

// upstreamKind is how one kind of policy.upstream is checked and built. The
// validation and the wiring both read upstreamKinds, so a kind is parsed in
// one place.
type upstreamKind struct {
	// validate reports what is wrong with the upstream whose text after
	// "scheme://" is rest, and with the settings its kind needs.
	validate func(p *Policy, rest string, bad func(path, format string, args ...any))
	// build constructs the upstream and returns its default refresh interval.
	build func(p Policy, rest string) (refresh.Upstream, time.Duration, error)
}

// fileScheme is the key of a bare path, which names a policy file.
const fileScheme = "file"

// fileInterval is how often a policy file is polled by default: a poll costs
// one stat.
const fileInterval = 5 * time.Second

// upstreamPath is the configuration key of the upstream.
const upstreamPath = "policy.upstream"

var upstreamKinds = map[string]upstreamKind{
	fileScheme: {
		validate: func(p *Policy, rest string, bad func(path, format string, args ...any)) {
			if rest == "" {
				bad(upstreamPath, "want file://PATH")
			}
		},
		build: func(_ Policy, rest string) (refresh.Upstream, time.Duration, error) {
			return file.New(rest), fileInterval, nil
		},
	},
	"http":   httpKind("http"),
	"https":  httpKind("https"),
	"stytch": {validate: validateStytch, build: buildStytch},
	"logto":  {validate: validateLogto, build: buildLogto},
}

// splitUpstream returns the kind of p.Upstream and the text after its
// "scheme://"; a bare path is a file.
func splitUpstream(src string) (scheme, rest string) {
	scheme, rest, hasScheme := strings.Cut(src, "://")
	if !hasScheme {
		return fileScheme, src
	}
	return scheme, rest
}

// validateUpstreamKind checks policy.upstream and what its kind needs. The
// upstream is never quoted in errors: an http(s) URL may carry credentials.
func (p *Policy) validateUpstreamKind(bad func(path, format string, args ...any)) {
	if strings.TrimSpace(p.Upstream) == "" {
		bad(upstreamPath, "required: a file path, file://PATH, http(s)://HOST/PATH, stytch://PROJECT_ID or logto://TENANT_HOST")
		return
	}
	scheme, rest := splitUpstream(p.Upstream)
	kind, ok := upstreamKinds[scheme]
	if !ok {
		bad(upstreamPath, "unknown scheme %q: want a file path, file://, http://, https://, stytch:// or logto://", scheme)
		return
	}
	kind.validate(p, rest, bad)
}

// NewUpstream builds the upstream p names and returns it with its refresh
// interval: p.RefreshInterval, or the kind's default when that is zero.
func (p Policy) NewUpstream() (refresh.Upstream, time.Duration, error) {
	scheme, rest := splitUpstream(p.Upstream)
	kind, ok := upstreamKinds[scheme]
	if !ok {
		return nil, 0, fmt.Errorf("upstream %q: unknown scheme %q (want a file path, http(s), stytch or logto)", p.Upstream, scheme)
	}
	up, interval, err := kind.build(p, rest)
	if err != nil {
		return nil, 0, err
	}
	if p.RefreshInterval > 0 {
		interval = p.RefreshInterval
	}
	return up, interval, nil
}

// PublicKey loads policy.public_key_file: nil when it is not set, an error
// naming the key when it does not hold an Ed25519 public key.
func (p Policy) PublicKey() (ed25519.PublicKey, error) {
	if p.PublicKeyFile == "" {
		return nil, nil
	}
	pub, err := bundle.LoadPublicKey(p.PublicKeyFile)
	if err != nil {
		return nil, fmt.Errorf("policy.public_key_file: %w", err)
	}
	return pub, nil
}

// LongPollWait is policy.http.long_poll_wait for an http(s) upstream, the
// only kind whose server can hold a fetch, and 0 for the others.
func (p Policy) LongPollWait() time.Duration {
	switch scheme, _ := splitUpstream(p.Upstream); scheme {
	case "http", "https":
		return p.HTTP.LongPollWait
	}
	return 0
}

func httpKind(scheme string) upstreamKind {
	return upstreamKind{
		validate: func(p *Policy, _ string, bad func(path, format string, args ...any)) {
			u, err := url.Parse(p.Upstream)
			switch {
			case err != nil || u.Host == "":
				bad(upstreamPath, "want %s://HOST/PATH", scheme)
			case u.User != nil:
				bad(upstreamPath, "credentials belong in policy.http (a *_file or *_env key), not in the URL")
			}
		},
		build: func(p Policy, _ string) (refresh.Upstream, time.Duration, error) {
			h := p.HTTP
			up, err := httpdoc.New(httpdoc.Config{
				URL: p.Upstream, Timeout: h.Timeout, MaxBytes: h.MaxBytes,
				BearerTokenFile: h.BearerTokenFile, BearerTokenEnv: h.BearerTokenEnv,
				BasicUser: h.BasicUser, BasicPasswordFile: h.BasicPasswordFile, BasicPasswordEnv: h.BasicPasswordEnv,
				CAFile: h.CAFile, ClientCertFile: h.ClientCertFile, ClientKeyFile: h.ClientKeyFile,
			})
			return up, refresh.DefaultInterval, err
		},
	}
}

func validateStytch(_ *Policy, rest string, bad func(path, format string, args ...any)) {
	if strings.Trim(rest, "/") == "" {
		bad(upstreamPath, "want stytch://PROJECT_ID")
	}
}

func buildStytch(p Policy, rest string) (refresh.Upstream, time.Duration, error) {
	secret, err := refresh.ReadSecret(p.Stytch.SecretFile, EnvStytchSecret)
	if err != nil {
		return nil, 0, fmt.Errorf("stytch upstream: the project secret: %w (set it, or name --stytch-secret-file)", err)
	}
	up, err := stytch.New(stytch.Config{ProjectID: strings.Trim(rest, "/"), Secret: secret, BaseURL: p.Stytch.BaseURL})
	return up, refresh.DefaultInterval, err
}

// logtoEndpoint is the Management API base a logto:// upstream names.
func logtoEndpoint(rest string) (string, bool) {
	endpoint := "https://" + strings.TrimSuffix(rest, "/")
	u, err := url.Parse(endpoint)
	return endpoint, err == nil && u.Host != "" && u.User == nil
}

func validateLogto(p *Policy, rest string, bad func(path, format string, args ...any)) {
	if _, ok := logtoEndpoint(rest); !ok {
		bad(upstreamPath, "want logto://TENANT_HOST")
	}
	if p.Logto.AppID == "" {
		bad("policy.logto.app_id", "required by a logto:// upstream: the id of a machine-to-machine app with Management API access")
	}
}

func buildLogto(p Policy, rest string) (refresh.Upstream, time.Duration, error) {
	secret, err := refresh.ReadSecret(p.Logto.AppSecretFile, EnvLogtoAppSecret)
	if err != nil {
		return nil, 0, fmt.Errorf("logto upstream: the app secret: %w (set it, or name --logto-app-secret-file)", err)
	}
	endpoint, ok := logtoEndpoint(rest)
	if !ok {
		return nil, 0, fmt.Errorf("logto upstream %q: want logto://TENANT_HOST", p.Upstream)
	}
	up, err := logto.New(logto.Config{Endpoint: endpoint, AppID: p.Logto.AppID, AppSecret: secret, Resource: p.Logto.Resource})
	return up, refresh.DefaultInterval, err
}
