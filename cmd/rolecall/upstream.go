package main

import (
	"flag"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/rolecall/rolecall/config"
	"github.com/rolecall/rolecall/refresh"
	"github.com/rolecall/rolecall/refresh/file"
	"github.com/rolecall/rolecall/refresh/httpdoc"
	"github.com/rolecall/rolecall/refresh/logto"
	"github.com/rolecall/rolecall/refresh/stytch"
)

// registerPolicyFlags binds the policy flags to p, so that flags given on the
// command line override the config file.
func registerPolicyFlags(fs *flag.FlagSet, p *config.Policy, policyFile *string) {
	fs.StringVar(policyFile, "policy", "", "policy `FILE` (YAML or JSON); shorthand for --upstream FILE")
	fs.StringVar(&p.Upstream, "upstream", p.Upstream, "where policies come from: a file path, http(s)://…, stytch://PROJECT_ID or logto://TENANT_HOST")
	fs.DurationVar(&p.RefreshInterval, "refresh-interval", p.RefreshInterval, "how often to poll the upstream (0: 5s for a file, 5m otherwise; ±10% jitter)")
	fs.DurationVar(&p.MaxStale, "max-stale", p.MaxStale, "how old the last successful refresh may be before the policy is stale (0: never)")
	fs.StringVar(&p.OnStale, "on-stale", p.OnStale, "what a stale policy does: serve (and say so in status and readiness) or fail (Check answers UNAVAILABLE)")
	h := &p.HTTP
	fs.DurationVar(&h.Timeout, "upstream-timeout", h.Timeout, "http(s) upstream: timeout of one fetch")
	fs.Int64Var(&h.MaxBytes, "upstream-max-bytes", h.MaxBytes, "http(s) upstream: largest document accepted")
	fs.StringVar(&h.BearerTokenFile, "upstream-bearer-token-file", h.BearerTokenFile, "http(s) upstream: `file` holding a bearer token")
	fs.StringVar(&h.BearerTokenEnv, "upstream-bearer-token-env", h.BearerTokenEnv, "http(s) upstream: environment `variable` holding a bearer token")
	fs.StringVar(&h.BasicUser, "upstream-basic-user", h.BasicUser, "http(s) upstream: basic auth `user`")
	fs.StringVar(&h.BasicPasswordFile, "upstream-basic-password-file", h.BasicPasswordFile, "http(s) upstream: `file` holding the basic auth password")
	fs.StringVar(&h.BasicPasswordEnv, "upstream-basic-password-env", h.BasicPasswordEnv, "http(s) upstream: environment `variable` holding the basic auth password")
	fs.StringVar(&h.CAFile, "upstream-ca-file", h.CAFile, "http(s) upstream: PEM `file` of CA certificates to trust")
	fs.StringVar(&h.ClientCertFile, "upstream-client-cert", h.ClientCertFile, "http(s) upstream: PEM client certificate `file` (mutual TLS)")
	fs.StringVar(&h.ClientKeyFile, "upstream-client-key", h.ClientKeyFile, "http(s) upstream: PEM client key `file` (mutual TLS)")
	fs.StringVar(&p.Stytch.SecretFile, "stytch-secret-file", p.Stytch.SecretFile, "stytch upstream: `file` holding the project secret (default: $"+config.EnvStytchSecret+")")
	fs.StringVar(&p.Stytch.BaseURL, "stytch-base-url", p.Stytch.BaseURL, "stytch upstream: API base `URL` (default by project: test.stytch.com or api.stytch.com)")
	fs.StringVar(&p.Logto.AppID, "logto-app-id", p.Logto.AppID, "logto upstream: `id` of a machine-to-machine app with Management API access")
	fs.StringVar(&p.Logto.AppSecretFile, "logto-app-secret-file", p.Logto.AppSecretFile, "logto upstream: `file` holding the app secret (default: $"+config.EnvLogtoAppSecret+")")
	fs.StringVar(&p.Logto.Resource, "logto-resource", p.Logto.Resource, "logto upstream: Management API resource `indicator` (default by tenant)")
	fs.StringVar(&p.Logto.WebhookKeyFile, "logto-webhook-key-file", p.Logto.WebhookKeyFile, "`file` holding the Logto webhook signing key (default: $"+config.EnvLogtoWebhookKey+"); enables POST /v1/webhooks/logto")
}

// buildUpstream returns the upstream p names and its refresh interval.
func buildUpstream(p config.Policy) (refresh.Upstream, time.Duration, error) {
	interval := p.RefreshInterval
	orDefault := func(d time.Duration) time.Duration {
		if interval > 0 {
			return interval
		}
		return d
	}
	scheme, rest, hasScheme := strings.Cut(p.Upstream, "://")
	if !hasScheme {
		return file.New(p.Upstream), orDefault(5 * time.Second), nil
	}
	switch scheme {
	case "file":
		return file.New(rest), orDefault(5 * time.Second), nil
	case "http", "https":
		h := p.HTTP
		up, err := httpdoc.New(httpdoc.Config{
			URL: p.Upstream, Timeout: h.Timeout, MaxBytes: h.MaxBytes,
			BearerTokenFile: h.BearerTokenFile, BearerTokenEnv: h.BearerTokenEnv,
			BasicUser: h.BasicUser, BasicPasswordFile: h.BasicPasswordFile, BasicPasswordEnv: h.BasicPasswordEnv,
			CAFile: h.CAFile, ClientCertFile: h.ClientCertFile, ClientKeyFile: h.ClientKeyFile,
		})
		return up, orDefault(refresh.DefaultInterval), err
	case "stytch":
		secret, err := refresh.ReadSecret(p.Stytch.SecretFile, config.EnvStytchSecret)
		if err != nil {
			return nil, 0, fmt.Errorf("stytch upstream: the project secret: %w (set it, or name --stytch-secret-file)", err)
		}
		up, err := stytch.New(stytch.Config{ProjectID: strings.Trim(rest, "/"), Secret: secret, BaseURL: p.Stytch.BaseURL})
		return up, orDefault(refresh.DefaultInterval), err
	case "logto":
		secret, err := refresh.ReadSecret(p.Logto.AppSecretFile, config.EnvLogtoAppSecret)
		if err != nil {
			return nil, 0, fmt.Errorf("logto upstream: the app secret: %w (set it, or name --logto-app-secret-file)", err)
		}
		endpoint := "https://" + strings.TrimSuffix(rest, "/")
		if u, err := url.Parse(endpoint); err != nil || u.Host == "" {
			return nil, 0, fmt.Errorf("logto upstream %q: want logto://TENANT_HOST", p.Upstream)
		}
		up, err := logto.New(logto.Config{Endpoint: endpoint, AppID: p.Logto.AppID, AppSecret: secret, Resource: p.Logto.Resource})
		return up, orDefault(refresh.DefaultInterval), err
	default:
		return nil, 0, fmt.Errorf("upstream %q: unknown scheme %q (want a file path, http(s), stytch or logto)", p.Upstream, scheme)
	}
}
