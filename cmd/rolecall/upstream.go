package main

import (
	"flag"

	"github.com/rolecall/rolecall/config"
)

// registerPolicyFlags binds the policy flags to p, so that flags given on the
// command line override the config file.
func registerPolicyFlags(fs *flag.FlagSet, p *config.Policy, policyFile *string) {
	fs.StringVar(policyFile, "policy", "", "policy `FILE` (YAML, JSON or a snapshot bundle); shorthand for --upstream FILE")
	fs.StringVar(&p.Upstream, "upstream", p.Upstream, "where policies come from: a file path, http(s)://…, stytch://PROJECT_ID or logto://TENANT_HOST")
	fs.DurationVar(&p.RefreshInterval, "refresh-interval", p.RefreshInterval, "how often to poll the upstream (0: 5s for a file, 5m otherwise; ±10% jitter)")
	fs.DurationVar(&p.MaxStale, "max-stale", p.MaxStale, "how old the last successful refresh may be before the policy is stale (0: never)")
	fs.StringVar(&p.PublicKeyFile, "policy-public-key", p.PublicKeyFile, "PEM `FILE` of the publisher's Ed25519 public key: accept only snapshot bundles signed with it")
	fs.StringVar(&p.OnStale, "on-stale", p.OnStale, "what a stale policy does: serve (and say so in status and readiness) or fail (Check answers UNAVAILABLE)")
	fs.Float64Var(&p.MaxRevokeRatio, "max-revoke-ratio", p.MaxRevokeRatio, "hold back a new policy that would remove more than this share of the served policy's grants, until POST /v1/refresh?accept=REVISION (0: off; at most 1)")
	h := &p.HTTP
	fs.DurationVar(&h.Timeout, "upstream-timeout", h.Timeout, "http(s) upstream: timeout of one fetch")
	fs.Int64Var(&h.MaxBytes, "upstream-max-bytes", h.MaxBytes, "http(s) upstream: largest document accepted")
	fs.DurationVar(&h.LongPollWait, "upstream-long-poll-wait", h.LongPollWait, "http(s) upstream: how long a rolecall publisher may hold a fetch until the policy changes (0: no long polling; at most 5m)")
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
