package config

import (
	"time"

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

// Bounds of policy.http.long_poll_wait.
const (
	// DefaultLongPollWait stays below the 60s idle timeout common to load
	// balancers, so that none of them cuts a held fetch.
	DefaultLongPollWait = 55 * time.Second
	// MaxLongPollWait bounds how long a fetch may be held.
	MaxLongPollWait = 5 * time.Minute
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
	// Publish is the publish listener, which serves this rolecall's policy
	// to other rolecalls (GET /v1/policy). Off by default.
	Publish Publish `yaml:"publish"`
	// WhoCan says who may ask "who can?" (ListSubjects on the gRPC
	// listeners, the AuthZEN Subject Search on the edge listener), whose
	// answer lists subject ids in bulk: local (the default) answers callers
	// over the Unix socket or from a loopback address, any answers every
	// caller that reaches the listener, off answers no one.
	WhoCan string `yaml:"who_can"`
}

// Publish configures the publish listener: GET /v1/policy serves the policy
// being served here, as a snapshot bundle or canonical JSON, to other
// rolecalls that name this one as their http(s) upstream, with long polling
// so that a change reaches them within moments. A published policy holds
// every subject's id and email: beyond loopback it needs a bearer token or
// mutual TLS.
type Publish struct {
	// Address is the TCP host:port to serve on; "" (the default) disables
	// publishing.
	Address string `yaml:"address"`
	// BearerTokenFile names a file holding the token every request must
	// present (Authorization: Bearer); it is read again at most once a
	// second, so it can rotate.
	BearerTokenFile string `yaml:"bearer_token_file"`
	// TLS, when CertFile is set, serves TLS; ClientCAFile requires client
	// certificates (mutual TLS). Changed files are picked up without a
	// restart.
	TLS ServerTLS `yaml:"tls"`
	// SignKeyFile names a PEM Ed25519 private key (PKCS #8) that signs every
	// bundle served; consumers holding its public key accept only bundles
	// signed with it. "" serves unsigned bundles.
	SignKeyFile string `yaml:"sign_key_file"`
	// Name identifies this publisher in its bundles; "" is the host name.
	Name string `yaml:"name"`
	// MaxWait caps how long a long poll (Prefer: wait=N) is held. Default
	// and at most 5m.
	MaxWait time.Duration `yaml:"max_wait"`
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
	// Upstream is where policies come from: a file path (YAML, JSON or a
	// published snapshot bundle), file://PATH, an http:// or https:// URL of
	// a rolecall publisher or of the canonical document,
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
	// MaxRevokeRatio holds back a fetched policy that would remove more
	// than this share of the served policy's grants (a subject, an
	// organization or none, a resource and an action that Check allows):
	// it is neither persisted nor served, the last good policy keeps
	// serving, and status, logs and metrics say so until it is accepted
	// (POST /v1/refresh?accept=REVISION) or the upstream changes again. 0
	// to 1; 0 (the default) is off.
	MaxRevokeRatio float64 `yaml:"max_revoke_ratio"`
	// PublicKeyFile names a PEM file holding the Ed25519 public key (PKIX,
	// "PUBLIC KEY") of the policy publisher. When set, only snapshot bundles
	// signed with it are accepted, from any upstream: documents, unsigned
	// bundles and bundles signed with another key are refused and the last
	// good policy keeps serving. "" (the default) checks no signature.
	PublicKeyFile string `yaml:"public_key_file"`
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
	// LongPollWait is how long a rolecall publisher may hold a fetch open
	// until its policy changes (Prefer: wait), so that changes arrive at
	// once; a server that does not hold is polled every refresh_interval.
	// Whole seconds, at most 5m; 0 disables long polling. Default 55s, below
	// the 60s idle timeout common to load balancers. A held fetch may take
	// LongPollWait + Timeout.
	LongPollWait time.Duration `yaml:"long_poll_wait"`
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
				Timeout:      30 * time.Second,
				MaxBytes:     64 << 20,
				LongPollWait: DefaultLongPollWait,
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
		Publish: Publish{MaxWait: 5 * time.Minute},
		WhoCan:  "local",
	}
}
