package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/rolecall/rolecall/cache"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/server"
	policysync "github.com/rolecall/rolecall/sync"
	"github.com/rolecall/rolecall/token"
)

const (
	defaultAddr      = "127.0.0.1:50051"
	defaultAdminAddr = "127.0.0.1:50052"
)

func serve(ctx context.Context, args []string, sio stdio) error {
	fs := newFlags("serve", "serve (--policy FILE | --upstream URL) [flags]",
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
which are cached too; health also waits until every issuer has keys.`,
		`  rolecall serve --policy examples/bookstore.yaml
  rolecall serve --upstream https://policy.internal/rolecall.json --upstream-bearer-token-file /var/run/secrets/policy-token
  ROLECALL_STYTCH_SECRET=... rolecall serve --upstream stytch://project-live-... --issuers issuers.yaml
  rolecall serve --policy /etc/rolecall/policy.yaml --grpc-addr "" --unix-socket /run/rolecall/rolecall.sock`,
		sio.err)
	var up upstreamFlags
	up.register(fs)
	grpcAddr := fs.String("grpc-addr", defaultAddr, "TCP `address` for gRPC; empty to disable TCP")
	unixSocket := fs.String("unix-socket", "", "also serve gRPC on a Unix socket at `PATH` (created 0660)")
	adminAddr := fs.String("admin-addr", defaultAdminAddr, "HTTP `address` of the admin endpoints (/healthz, /readyz, /v1/status, /v1/refresh, webhooks); empty to disable")
	cachePath := fs.String("cache", "rolecall.db", "bbolt cache `file` holding the last accepted policy and key sets")
	maxStale := fs.Duration("max-stale", 0, "how old the last successful refresh may be before the policy is stale (0: never)")
	onStale := fs.String("on-stale", "serve", "what a stale policy does: serve (and say so in status and readiness) or fail (Check answers UNAVAILABLE)")
	webhookKeyFile := fs.String("logto-webhook-key-file", "", "`file` holding the Logto webhook signing key (default: $"+envWebhookSecret+"); enables POST /v1/webhooks/logto")
	grace := fs.Duration("grace-period", 10*time.Second, "how long in-flight calls may finish at shutdown")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	var issuers issuerFlags
	issuers.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}

	var problems []string
	problem := func(err error) {
		if err != nil {
			problems = append(problems, err.Error())
		}
	}
	upstream, defaultInterval, err := up.build()
	problem(err)
	if *grpcAddr == "" && *unixSocket == "" {
		problem(errors.New("set --grpc-addr, --unix-socket or both"))
	}
	if up.refresh < 0 {
		problem(errors.New("--refresh-interval must be positive"))
	}
	if *onStale != "serve" && *onStale != "fail" {
		problem(fmt.Errorf("--on-stale %q: want serve or fail", *onStale))
	} else if *onStale == "fail" && *maxStale <= 0 {
		problem(errors.New("--on-stale fail needs --max-stale"))
	}
	log, err := newLogger(sio.err, *logLevel, *logFormat)
	problem(err)
	if fs.NArg() > 0 {
		problem(fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	issuerCfgs, err := issuers.configs()
	problem(err)
	if len(issuerCfgs) > 0 {
		issuerCfgs, err = token.ValidateConfigs(issuerCfgs)
		problem(err)
	}
	var webhookKey []byte
	if *webhookKeyFile != "" || os.Getenv(envWebhookSecret) != "" {
		key, err := policysync.ReadSecret(*webhookKeyFile, envWebhookSecret)
		problem(err)
		webhookKey = []byte(key)
	}
	if len(problems) > 0 {
		return usageError("%s", strings.Join(problems, "; "))
	}
	interval := up.refresh
	if interval == 0 {
		interval = defaultInterval
	}

	if limit := setMemoryLimit(os.DirFS("/")); limit > 0 {
		log.Info("memory limit set from the cgroup (GOMEMLIMIT overrides)", "bytes", limit)
	}

	db, err := cache.Open(*cachePath, cache.Options{Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if err := db.Close(); err != nil {
			log.Error("closing the cache", "error", err)
		}
	}()

	engine := &pdp.Engine{}
	var srv *server.Server
	ref, err := policysync.New(policysync.Config{
		Upstream:      upstream,
		Engine:        engine,
		Cache:         db,
		Interval:      interval,
		MaxStale:      *maxStale,
		FailWhenStale: *onStale == "fail",
		Logger:        log,
		OnChange:      func() { srv.UpdateHealth() },
	})
	if err != nil {
		return err
	}
	var tokens *token.Validator
	if len(issuerCfgs) > 0 {
		tokens, err = token.New(issuerCfgs, token.Options{Cache: db, Logger: log, OnChange: func() { srv.UpdateHealth() }})
		if err != nil {
			return usageError("%v", err)
		}
	}
	srv = server.New(engine, server.Options{Status: ref, Tokens: tokens, Logger: log, GracePeriod: *grace})
	// Serve what the cache holds before the upstream is asked, so that a
	// restart answers at once even when the upstream is down or slow.
	if _, err := ref.WarmStart(); err != nil {
		log.Warn("cached policy not used", "error", err)
	}
	if tokens != nil {
		tokens.LoadCachedKeys()
	}

	listeners, err := server.Listen(*grpcAddr, *unixSocket)
	if err != nil {
		return err
	}
	for _, l := range listeners {
		log.Info("serving gRPC", "network", l.Addr().Network(), "address", l.Addr().String())
	}
	var adminSrv *http.Server
	var adminListener net.Listener
	if *adminAddr != "" {
		l, err := net.Listen("tcp", *adminAddr)
		if err != nil {
			for _, gl := range listeners {
				_ = gl.Close()
			}
			return fmt.Errorf("admin listener: %w", err)
		}
		if host, _, _ := net.SplitHostPort(l.Addr().String()); !net.ParseIP(host).IsLoopback() {
			log.Warn("the admin endpoints listen beyond loopback; anyone who reaches them can read status and trigger refreshes", "address", l.Addr().String())
		}
		adminSrv = &http.Server{
			Handler:           srv.AdminHandler(server.AdminOptions{Refresher: ref, LogtoWebhookKey: webhookKey, Logger: log}),
			ReadHeaderTimeout: 5 * time.Second,
		}
		log.Info("serving admin HTTP", "address", l.Addr().String())
		adminListener = l
	}

	// Registered before anything is served, so that a SIGHUP sent once the
	// server answers is never the default action (exit).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(gctx, listeners...) })
	g.Go(func() error { return ref.Run(gctx) })
	if tokens != nil {
		g.Go(func() error { return tokens.Run(gctx) })
	}
	if adminSrv != nil {
		g.Go(func() error { return serveHTTP(gctx, adminSrv, adminListener, *grace) })
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

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
}
