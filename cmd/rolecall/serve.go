package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/rolecall/rolecall/authzen"
	"github.com/rolecall/rolecall/bundle"
	"github.com/rolecall/rolecall/cache"
	"github.com/rolecall/rolecall/config"
	"github.com/rolecall/rolecall/decide"
	"github.com/rolecall/rolecall/decisionlog"
	"github.com/rolecall/rolecall/grpcapi"
	"github.com/rolecall/rolecall/httpapi"
	"github.com/rolecall/rolecall/metrics"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/publish"
	"github.com/rolecall/rolecall/refresh"
	"github.com/rolecall/rolecall/routes"
	"github.com/rolecall/rolecall/token"
)

const (
	defaultAddr      = "127.0.0.1:50051"
	defaultAdminAddr = "127.0.0.1:50052"
)

func serve(ctx context.Context, args []string, sio stdio) error {
	// The config file is read before the flags are parsed, so that every
	// flag's default is the file's value and a flag given overrides it.
	cfg := config.Default()
	cfgPath, err := configFlag(args)
	if err != nil {
		return usageError("%v", err)
	}
	if cfgPath != "" {
		if err := cfg.LoadFile(cfgPath); err != nil {
			return usageError("--config: %v", err)
		}
	}

	fs := newFlags("serve", "serve [--config FILE] (--policy FILE | --upstream URL) [flags]",
		`Serve decisions over gRPC (rolecall.v1.PolicyDecisionService, grpc.health.v1,
reflection) on TCP and/or a Unix socket, from a policy kept fresh from its
upstream: a file (re-read when it changes), an HTTP(S) URL (If-None-Match), a
Stytch project (its RBAC policy) or a Logto tenant (its Management API).

Every accepted policy is stored in the cache file first, so after a restart the
cached policy answers at once, even when the upstream is down. A document that
fails validation is logged with every problem and never served; the last good
policy keeps serving. Health is NOT_SERVING and Check answers UNAVAILABLE until
a policy is loaded. SIGHUP, POST /v1/refresh on the admin listener and signed
Logto webhooks refresh at once.

With token issuers (--issuers FILE, or --issuer with its --jwks-url, --audience
and --profile), ValidateToken checks JWT access tokens against their key sets,
which are cached too; health also waits until every issuer has keys.

Every setting can come from one YAML file (--config; see examples/rolecall.yaml);
flags given on the command line override it.`,
		`  rolecall serve --policy examples/bookstore.yaml
  rolecall serve --config /etc/rolecall/rolecall.yaml
  rolecall serve --upstream https://policy.internal/rolecall.json --upstream-bearer-token-file /var/run/secrets/policy-token
  rolecall serve --policy policy.yaml --publish-addr 0.0.0.0:50054 --publish-token-file /var/run/secrets/publish-token --publish-tls-cert tls.crt --publish-tls-key tls.key
  ROLECALL_STYTCH_SECRET=... rolecall serve --upstream stytch://project-live-... --issuers issuers.yaml`,
		sio.err)
	fs.String("config", cfgPath, "YAML config `file` holding every setting (flags override it)")
	var policyFile string
	registerPolicyFlags(fs, &cfg.Policy, &policyFile)
	fs.StringVar(&cfg.GRPC.Address, "grpc-addr", cfg.GRPC.Address, "TCP `address` for gRPC; empty to disable TCP")
	fs.StringVar(&cfg.GRPC.UnixSocket, "unix-socket", cfg.GRPC.UnixSocket, "also serve gRPC on a Unix socket at `PATH`")
	fs.StringVar(&cfg.GRPC.UnixSocketMode, "unix-socket-mode", cfg.GRPC.UnixSocketMode, "permission bits of the Unix socket, in octal")
	fs.StringVar(&cfg.GRPC.TLS.CertFile, "grpc-tls-cert", cfg.GRPC.TLS.CertFile, "serve TLS on --grpc-addr with this PEM certificate chain `file` (reloaded when it changes)")
	fs.StringVar(&cfg.GRPC.TLS.KeyFile, "grpc-tls-key", cfg.GRPC.TLS.KeyFile, "PEM private key `file` of --grpc-tls-cert")
	fs.StringVar(&cfg.GRPC.TLS.ClientCAFile, "grpc-tls-client-ca", cfg.GRPC.TLS.ClientCAFile, "require client certificates issued by these PEM CAs (`file`): mutual TLS")
	fs.DurationVar(&cfg.GRPC.GracePeriod, "grace-period", cfg.GRPC.GracePeriod, "how long in-flight calls may finish at shutdown")
	fs.StringVar(&cfg.Admin.Address, "admin-addr", cfg.Admin.Address, "HTTP `address` of the admin endpoints (/healthz, /readyz, /metrics, /v1/status, /v1/refresh, webhooks); empty to disable")
	fs.BoolVar(&cfg.Admin.PProf, "pprof", cfg.Admin.PProf, "serve /debug/pprof on the admin listener")
	fs.StringVar(&cfg.Authz.Address, "authz-addr", cfg.Authz.Address, "HTTP `address` of the edge listener: AuthZEN (/access/v1/…) and, with routes, /v1/authz; empty to disable")
	fs.StringVar(&cfg.Publish.Address, "publish-addr", cfg.Publish.Address, "HTTP `address` of the publish listener, which serves this policy to other rolecalls (GET /v1/policy); empty (the default) to disable")
	fs.StringVar(&cfg.Publish.BearerTokenFile, "publish-token-file", cfg.Publish.BearerTokenFile, "publish listener: require this bearer token (`file`, read again when it changes)")
	fs.StringVar(&cfg.Publish.TLS.CertFile, "publish-tls-cert", cfg.Publish.TLS.CertFile, "publish listener: serve TLS with this PEM certificate chain `file` (reloaded when it changes)")
	fs.StringVar(&cfg.Publish.TLS.KeyFile, "publish-tls-key", cfg.Publish.TLS.KeyFile, "publish listener: PEM private key `file` of --publish-tls-cert")
	fs.StringVar(&cfg.Publish.TLS.ClientCAFile, "publish-tls-client-ca", cfg.Publish.TLS.ClientCAFile, "publish listener: require client certificates issued by these PEM CAs (`file`): mutual TLS")
	fs.StringVar(&cfg.Publish.SignKeyFile, "publish-sign-key", cfg.Publish.SignKeyFile, "publish listener: sign bundles with this PEM Ed25519 private key `file`")
	fs.StringVar(&cfg.Publish.Name, "publish-name", cfg.Publish.Name, "publish listener: the publisher `name` in its bundles, shown in consumers' status (default: the host name)")
	fs.DurationVar(&cfg.Publish.MaxWait, "publish-max-wait", cfg.Publish.MaxWait, "publish listener: the longest a long poll (Prefer: wait) is held, at most 5m")
	fs.StringVar(&cfg.WhoCan, "who-can", cfg.WhoCan, "who may list the subjects allowed an action (ListSubjects, AuthZEN subject search): local (Unix socket and loopback callers), any, or off")
	fs.StringVar(&cfg.Cache.Path, "cache", cfg.Cache.Path, "bbolt cache `file` holding the last accepted policy and key sets")
	fs.StringVar(&cfg.Log.Level, "log-level", cfg.Log.Level, "log level: debug, info, warn, error")
	fs.StringVar(&cfg.Log.Format, "log-format", cfg.Log.Format, "log format: text or json")
	fs.BoolVar(&cfg.DecisionLog.Enabled, "decision-log", cfg.DecisionLog.Enabled, "log every decision as a JSON line")
	fs.StringVar(&cfg.DecisionLog.Output, "decision-log-output", cfg.DecisionLog.Output, "where decisions are logged: stdout, stderr or a file `path`")
	var issuers issuerFlags
	issuers.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected arguments %q", fs.Args())
	}
	if policyFile != "" {
		if cfg.Policy.Upstream != "" && flagGiven(fs, "upstream") {
			return usageError("use --policy or --upstream, not both")
		}
		cfg.Policy.Upstream = policyFile
	}
	extra, err := issuers.configs()
	if err != nil {
		return usageError("%v", err)
	}
	cfg.Issuers = append(cfg.Issuers, extra...)
	if err := cfg.Validate(); err != nil {
		return usageError("%v", err)
	}
	return runServer(ctx, cfg, sio)
}

// configFlag finds --config in args without parsing the others.
func configFlag(args []string) (string, error) {
	for i, a := range args {
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			continue
		}
		if hasValue {
			return value, nil
		}
		if i+1 >= len(args) {
			return "", errors.New("--config needs a file")
		}
		return args[i+1], nil
	}
	return "", nil
}

func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// runServer runs rolecall serve with a validated configuration.
func runServer(ctx context.Context, cfg *config.Config, sio stdio) error {
	var level slog.LevelVar
	if err := level.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		return usageError("log level %q: %v", cfg.Log.Level, err)
	}
	log := newLogger(sio.err, &level, cfg.Log.Format)
	upstream, interval, err := cfg.Policy.NewUpstream()
	if err != nil {
		return usageError("%v", err)
	}
	publicKey, err := cfg.Policy.PublicKey()
	if err != nil {
		return usageError("%v", err)
	}
	var webhookKey []byte
	if cfg.Policy.Logto.WebhookKeyFile != "" || os.Getenv(config.EnvLogtoWebhookKey) != "" {
		key, err := refresh.ReadSecret(cfg.Policy.Logto.WebhookKeyFile, config.EnvLogtoWebhookKey)
		if err != nil {
			return usageError("Logto webhook key: %v", err)
		}
		webhookKey = []byte(key)
	}

	if limit := setMemoryLimit(os.DirFS("/")); limit > 0 {
		log.Info("memory limit set from the cgroup (GOMEMLIMIT overrides)", "bytes", limit)
	}

	db, err := cache.Open(cfg.Cache.Path, cache.Options{Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if err := db.Close(); err != nil {
			log.Error("closing the cache", "error", err)
		}
	}()

	reg := prometheus.NewRegistry()
	pub, err := newPublisher(cfg.Publish, log, reg)
	if err != nil {
		return err
	}
	var onInstall func(refresh.Installed)
	if pub != nil {
		onInstall = pub.Publish
	}

	engine := &pdp.Engine{}
	var srv *grpcapi.Server
	var ref *refresh.Refresher
	onChange := func() {
		srv.UpdateHealth()
		if pub != nil {
			pub.Withhold(ref.Status().Withheld)
		}
	}
	ref, err = refresh.New(refresh.Config{
		Upstream:       upstream,
		Engine:         engine,
		Cache:          db,
		Interval:       interval,
		MaxStale:       cfg.Policy.MaxStale,
		FailWhenStale:  cfg.Policy.OnStale == "fail",
		MaxRevokeRatio: cfg.Policy.MaxRevokeRatio,
		PublicKey:      publicKey,
		LongPollWait:   cfg.Policy.LongPollWait(),
		Logger:         log,
		OnChange:       onChange,
		OnInstall:      onInstall,
	})
	if err != nil {
		return err
	}
	var tokens *token.Validator
	if len(cfg.Issuers) > 0 {
		tokens, err = token.New(cfg.Issuers, token.Options{Cache: db, Logger: log, OnChange: func() { srv.UpdateHealth() }})
		if err != nil {
			return usageError("%v", err)
		}
	}
	dlog, closeDlog, err := openDecisionLog(cfg.DecisionLog, sio)
	if err != nil {
		return err
	}
	defer closeDlog()
	src := metrics.Sources{Policy: ref.Status, Tokens: tokenStats(tokens)}
	if dlog != nil {
		src.DecisionLog = func() (uint64, uint64) { return dlog.Written(), dlog.Dropped() }
	}
	m, err := metrics.New(reg, src)
	if err != nil {
		return err
	}
	var authz *decide.AuthzOptions
	if len(cfg.Authz.Routes) > 0 {
		table, err := routes.Compile(cfg.Authz.Routes)
		if err != nil {
			return usageError("authz.%v", err)
		}
		authz = &decide.AuthzOptions{
			Routes: table, DefaultAllow: cfg.Authz.Default == "allow", DryRun: cfg.Authz.DryRun, Audience: cfg.Authz.Audience,
			SubjectHeader: cfg.Authz.IdentityHeaders.Subject, OrgHeader: cfg.Authz.IdentityHeaders.Org, ScopesHeader: cfg.Authz.IdentityHeaders.Scopes,
		}
	}
	whoCan, err := decide.ParseWhoCan(cfg.WhoCan)
	if err != nil {
		return usageError("who_can: %v", err)
	}
	dec := decide.New(engine, decide.Options{Tokens: tokens, Recorder: decide.NewRecorder(m, dlog), Authz: authz, WhoCan: whoCan, Logger: log})
	srv = grpcapi.New(dec, grpcapi.Options{
		Status: ref, Logger: log, Metrics: m,
		GracePeriod:          cfg.GRPC.GracePeriod,
		MaxRecvMsgBytes:      cfg.GRPC.MaxRecvMsgBytes,
		MaxConcurrentStreams: uint32(cfg.GRPC.MaxConcurrentStreams),
		KeepaliveMinTime:     cfg.GRPC.KeepaliveMinTime,
	})
	// Serve what the cache holds before the upstream is asked, so that a
	// restart answers at once even when the upstream is down or slow.
	if _, err := ref.WarmStart(); err != nil {
		log.Warn("cached policy not used", "error", err)
	}
	// Loading made garbage (a large policy's blob, decoding buffers): give
	// it back now rather than as the scavenger gets to it.
	debug.FreeOSMemory()
	if tokens != nil {
		tokens.LoadCachedKeys()
	}

	sockMode, err := config.ParseFileMode(cfg.GRPC.UnixSocketMode)
	if err != nil {
		return fmt.Errorf("grpc.unix_socket_mode: %w", err)
	}
	listeners, err := grpcapi.Listen(cfg.GRPC.Address, cfg.GRPC.UnixSocket, sockMode)
	if err != nil {
		return err
	}
	if tl := cfg.GRPC.TLS; tl.CertFile != "" {
		for i, l := range listeners {
			if l.Addr().Network() != "tcp" {
				continue
			}
			if listeners[i], err = grpcapi.TLSListener(l, grpcapi.TLSFiles{CertFile: tl.CertFile, KeyFile: tl.KeyFile, ClientCAFile: tl.ClientCAFile}, log); err != nil {
				closeAll(listeners, nil)
				return err
			}
		}
	}
	for _, l := range listeners {
		security := "plaintext"
		if l.Addr().Network() == "tcp" && cfg.GRPC.TLS.CertFile != "" {
			security = "TLS"
			if cfg.GRPC.TLS.ClientCAFile != "" {
				security = "mutual TLS"
			}
		}
		log.Info("serving gRPC", "network", l.Addr().Network(), "address", l.Addr().String(), "security", security)
	}
	var adminSrv *http.Server
	var adminListener net.Listener
	if cfg.Admin.Address != "" {
		l, err := listenHTTP(cfg.Admin.Address, "admin", log)
		if err != nil {
			closeAll(listeners, nil)
			return err
		}
		adminSrv = &http.Server{
			Handler: httpapi.AdminHandler(dec, httpapi.AdminOptions{
				Refresher: ref, Ready: func() (bool, string) { return srv.Readiness(ref) }, LogtoWebhookKey: webhookKey, Logger: log,
				Gatherer: reg, Pprof: cfg.Admin.PProf, LogLevel: &level,
			}),
			ReadHeaderTimeout: 5 * time.Second,
		}
		adminListener = l
	}

	// The HTTP edge listener: the AuthZEN API, and the auth endpoint for
	// nginx, Traefik and Envoy when routes are configured.
	var authzSrv *http.Server
	var authzListener net.Listener
	if cfg.Authz.Address != "" {
		l, err := listenHTTP(cfg.Authz.Address, "authz", log)
		if err != nil {
			closeAll(listeners, adminListener)
			return err
		}
		mux := http.NewServeMux()
		if h := httpapi.AuthzHandler(dec); h != nil {
			mux.Handle("/v1/authz", h)
			mux.Handle("/v1/authz/", h)
		}
		az := authzen.Handler(dec, authzen.Options{})
		mux.Handle("/access/v1/", az)
		mux.Handle(authzen.MetadataPath, az)
		authzSrv, authzListener = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, l
	}

	// The publish listener: this policy, for other rolecalls.
	var pubSrv *http.Server
	var pubListener net.Listener
	if pub != nil {
		l, err := listenPublish(cfg.Publish, pub, log)
		if err != nil {
			closeAll(listeners, adminListener)
			if authzListener != nil {
				_ = authzListener.Close()
			}
			return err
		}
		pubSrv = &http.Server{
			Handler:           pub.Handler(),
			ReadHeaderTimeout: 5 * time.Second,
			// Room for the longest long poll, then for sending a large
			// bundle to a slow consumer.
			WriteTimeout: cfg.Publish.MaxWait + 2*time.Minute,
			IdleTimeout:  2 * time.Minute,
		}
		pubListener = l
	}

	// Registered before anything is served, so that a SIGHUP sent once the
	// server answers is never the default action (exit).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	g, gctx := errgroup.WithContext(ctx)
	// The decision log drains after the gRPC server stops, so that decisions
	// made while in-flight calls finish are logged too.
	dlogCtx, stopDlog := context.WithCancel(context.Background())
	defer stopDlog()
	g.Go(func() error {
		defer stopDlog()
		return srv.Serve(gctx, listeners...)
	})
	if dlog != nil {
		g.Go(func() error { return dlog.Run(dlogCtx) })
	}
	g.Go(func() error { return ref.Run(gctx) })
	if tokens != nil {
		g.Go(func() error { return tokens.Run(gctx) })
	}
	if adminSrv != nil {
		g.Go(func() error { return serveHTTP(gctx, adminSrv, adminListener, cfg.GRPC.GracePeriod) })
	}
	if authzSrv != nil {
		g.Go(func() error { return serveHTTP(gctx, authzSrv, authzListener, cfg.GRPC.GracePeriod) })
	}
	if pubSrv != nil {
		// Held long polls end with the server: they answer 304 at once,
		// and their consumers ask again (another replica, or this one
		// restarted) instead of holding the shutdown for the grace period.
		pubSrv.BaseContext = func(net.Listener) context.Context { return gctx }
		g.Go(func() error { return serveHTTP(gctx, pubSrv, pubListener, cfg.GRPC.GracePeriod) })
	}
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-hup:
				log.Info("SIGHUP: refreshing the policy")
				ref.Trigger()
			}
		}
	})
	err = g.Wait()
	log.Info("stopped")
	return err
}

// newPublisher builds the publisher of the publish listener, nil when it is
// off.
func newPublisher(c config.Publish, log *slog.Logger, reg prometheus.Registerer) (*publish.Publisher, error) {
	if c.Address == "" {
		return nil, nil
	}
	var key ed25519.PrivateKey
	if c.SignKeyFile != "" {
		var err error
		if key, err = bundle.LoadPrivateKey(c.SignKeyFile); err != nil {
			return nil, usageError("publish.sign_key_file: %v", err)
		}
	}
	pub, err := publish.New(publish.Options{
		Name: c.Name, SignKey: key, BearerTokenFile: c.BearerTokenFile, MaxWait: c.MaxWait,
		Logger: log, Registerer: reg,
	})
	if err != nil {
		return nil, usageError("%v", err)
	}
	return pub, nil
}

// listenPublish opens the publish listener, with TLS when configured, and
// logs how it is secured.
func listenPublish(c config.Publish, pub *publish.Publisher, log *slog.Logger) (net.Listener, error) {
	l, err := listenHTTP(c.Address, "publish", log)
	if err != nil {
		return nil, err
	}
	security := "plaintext"
	if tl := c.TLS; tl.CertFile != "" {
		if l, err = grpcapi.TLSListener(l, grpcapi.TLSFiles{CertFile: tl.CertFile, KeyFile: tl.KeyFile, ClientCAFile: tl.ClientCAFile}, log); err != nil {
			return nil, fmt.Errorf("publish listener: %w", err)
		}
		security = "TLS"
		if tl.ClientCAFile != "" {
			security = "mutual TLS"
		}
	}
	auth, signing := "none", "none (bundles are unsigned)"
	if c.BearerTokenFile != "" {
		auth = "bearer"
	}
	if pub.KeyID() != "" {
		signing = pub.KeyID()
	}
	log.Info("publishing the policy on "+publish.Path, "address", l.Addr().String(), "security", security, "auth", auth, "signing_key", signing, "max_wait", c.MaxWait)
	if host, _, _ := net.SplitHostPort(l.Addr().String()); security == "plaintext" && auth == "bearer" && !net.ParseIP(host).IsLoopback() {
		log.Warn("the publish bearer token and the policy travel in plaintext beyond loopback; set publish.tls")
	}
	return l, nil
}

// serveHTTP serves h on l until ctx ends, then shuts it down gracefully.
func serveHTTP(ctx context.Context, h *http.Server, l net.Listener, grace time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- h.Serve(l) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		_ = h.Shutdown(shutdown)
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}

// newLogger builds the process logger; level may change at run time.
func newLogger(w io.Writer, level *slog.LevelVar, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// tokenStats returns the validator's counts for metrics, or nil without one.
func tokenStats(v *token.Validator) func() token.Stats {
	if v == nil {
		return nil
	}
	return v.Stats
}

// openDecisionLog opens the decision log's output ("stdout" and "stderr" are
// the command's own); without a log it returns nil and a no-op close.
func openDecisionLog(c config.DecisionLog, sio stdio) (*decisionlog.Logger, func(), error) {
	if !c.Enabled {
		return nil, func() {}, nil
	}
	var w io.Writer
	closeFn := func() {}
	switch c.Output {
	case "stdout":
		w = sio.out
	case "stderr":
		w = sio.err
	default:
		f, err := os.OpenFile(c.Output, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("decision log: %w", err)
		}
		w, closeFn = f, func() { _ = f.Close() }
	}
	rate := c.AllowSampleRate
	l, err := decisionlog.New(decisionlog.Options{Writer: w, QueueSize: c.QueueSize, AllowSampleRate: &rate})
	if err != nil {
		closeFn()
		return nil, nil, fmt.Errorf("decision log: %w", err)
	}
	return l, closeFn, nil
}

// listenHTTP opens an HTTP listener, warning when it reaches beyond
// loopback.
func listenHTTP(addr, what string, log *slog.Logger) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener: %w", what, err)
	}
	if host, _, _ := net.SplitHostPort(l.Addr().String()); !net.ParseIP(host).IsLoopback() {
		log.Warn("an HTTP listener reaches beyond loopback; restrict who can reach it", "listener", what, "address", l.Addr().String())
	}
	log.Info("serving HTTP", "listener", what, "address", l.Addr().String())
	return l, nil
}

// closeAll closes listeners opened before a later one failed.
func closeAll(ls []net.Listener, extra net.Listener) {
	for _, l := range ls {
		_ = l.Close()
	}
	if extra != nil {
		_ = extra.Close()
	}
}
