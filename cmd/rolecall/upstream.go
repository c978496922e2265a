package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"time"

	policysync "github.com/rolecall/rolecall/sync"
)

// upstreamFlags select where policies come from: --upstream URL (or the
// --policy FILE shorthand) and the credentials each kind needs. Secrets come
// from files or ROLECALL_* environment variables, never from flags' values.
type upstreamFlags struct {
	upstream, policy string
	refresh          time.Duration
	http             policysync.HTTPConfig
	stytchSecretFile string
	stytchBaseURL    string
	logtoAppID       string
	logtoSecretFile  string
	logtoResource    string
}

// Environment variables holding upstream secrets, when no file is named.
const (
	envStytchSecret  = "ROLECALL_STYTCH_SECRET"
	envLogtoSecret   = "ROLECALL_LOGTO_APP_SECRET"
	envWebhookSecret = "ROLECALL_LOGTO_WEBHOOK_KEY"
)

func (f *upstreamFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.policy, "policy", "", "policy `FILE` (YAML or JSON); shorthand for --upstream FILE")
	fs.StringVar(&f.upstream, "upstream", "", "where policies come from: a file path, http(s)://…, stytch://PROJECT_ID or logto://TENANT_HOST")
	fs.DurationVar(&f.refresh, "refresh-interval", 0, "how often to poll the upstream (default 5s for a file, 5m otherwise; ±10% jitter)")
	fs.DurationVar(&f.http.Timeout, "upstream-timeout", 30*time.Second, "http(s) upstream: timeout of one fetch")
	fs.Int64Var(&f.http.MaxBytes, "upstream-max-bytes", policysync.DefaultMaxBytes, "http(s) upstream: largest document accepted")
	fs.StringVar(&f.http.BearerTokenFile, "upstream-bearer-token-file", "", "http(s) upstream: `file` holding a bearer token")
	fs.StringVar(&f.http.BearerTokenEnv, "upstream-bearer-token-env", "", "http(s) upstream: environment `variable` holding a bearer token")
	fs.StringVar(&f.http.BasicUser, "upstream-basic-user", "", "http(s) upstream: basic auth `user`")
	fs.StringVar(&f.http.BasicPasswordFile, "upstream-basic-password-file", "", "http(s) upstream: `file` holding the basic auth password")
	fs.StringVar(&f.http.BasicPasswordEnv, "upstream-basic-password-env", "", "http(s) upstream: environment `variable` holding the basic auth password")
	fs.StringVar(&f.http.CAFile, "upstream-ca-file", "", "http(s) upstream: PEM `file` of CA certificates to trust")
	fs.StringVar(&f.http.ClientCertFile, "upstream-client-cert", "", "http(s) upstream: PEM client certificate `file` (mutual TLS)")
	fs.StringVar(&f.http.ClientKeyFile, "upstream-client-key", "", "http(s) upstream: PEM client key `file` (mutual TLS)")
	fs.StringVar(&f.stytchSecretFile, "stytch-secret-file", "", "stytch upstream: `file` holding the project secret (default: $"+envStytchSecret+")")
	fs.StringVar(&f.stytchBaseURL, "stytch-base-url", "", "stytch upstream: API base `URL` (default by project: test.stytch.com or api.stytch.com)")
	fs.StringVar(&f.logtoAppID, "logto-app-id", "", "logto upstream: `id` of a machine-to-machine app with Management API access")
	fs.StringVar(&f.logtoSecretFile, "logto-app-secret-file", "", "logto upstream: `file` holding the app secret (default: $"+envLogtoSecret+")")
	fs.StringVar(&f.logtoResource, "logto-resource", "", "logto upstream: Management API resource `indicator` (default by tenant)")
}

// build returns the upstream and its default refresh interval.
func (f *upstreamFlags) build() (policysync.Upstream, time.Duration, error) {
	src := f.upstream
	switch {
	case src != "" && f.policy != "":
		return nil, 0, errors.New("use --policy or --upstream, not both")
	case src == "" && f.policy == "":
		return nil, 0, errors.New("--policy FILE or --upstream URL is required")
	case src == "":
		src = f.policy
	}
	scheme, rest, hasScheme := strings.Cut(src, "://")
	if !hasScheme {
		return policysync.NewFile(src), 5 * time.Second, nil
	}
	switch scheme {
	case "file":
		return policysync.NewFile(rest), 5 * time.Second, nil
	case "http", "https":
		cfg := f.http
		cfg.URL = src
		up, err := policysync.NewHTTP(cfg)
		return up, policysync.DefaultInterval, err
	case "stytch":
		secret, err := policysync.ReadSecret(f.stytchSecretFile, envStytchSecret)
		if err != nil {
			return nil, 0, fmt.Errorf("stytch upstream: the project secret: %w (set it, or name --stytch-secret-file)", err)
		}
		up, err := policysync.NewStytch(policysync.StytchConfig{ProjectID: strings.Trim(rest, "/"), Secret: secret, BaseURL: f.stytchBaseURL})
		return up, policysync.DefaultInterval, err
	case "logto":
		secret, err := policysync.ReadSecret(f.logtoSecretFile, envLogtoSecret)
		if err != nil {
			return nil, 0, fmt.Errorf("logto upstream: the app secret: %w (set it, or name --logto-app-secret-file)", err)
		}
		endpoint := "https://" + strings.TrimSuffix(rest, "/")
		if u, err := url.Parse(endpoint); err != nil || u.Host == "" {
			return nil, 0, fmt.Errorf("logto upstream %q: want logto://TENANT_HOST", src)
		}
		up, err := policysync.NewLogto(policysync.LogtoConfig{Endpoint: endpoint, AppID: f.logtoAppID, AppSecret: secret, Resource: f.logtoResource})
		return up, policysync.DefaultInterval, err
	default:
		return nil, 0, fmt.Errorf("--upstream %q: unknown scheme %q (want a file path, http(s), stytch or logto)", src, scheme)
	}
}
