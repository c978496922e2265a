package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
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

const defaultAddr = "127.0.0.1:50051"

func serve(ctx context.Context, args []string, sio stdio) error {
	fs := newFlags("serve", "serve --policy FILE [flags]",
		`Serve decisions over gRPC (rolecall.v1.PolicyDecisionService, grpc.health.v1,
reflection) from the policy in FILE, on TCP and/or a Unix socket.

The policy file is re-read when it changes (polled) and on SIGHUP; an invalid
edit is logged with every problem and the last good policy keeps serving.
Every accepted policy is stored in the cache file first, so after a restart the
cached policy answers at once, even when FILE is missing or invalid. Health is
NOT_SERVING and Check answers UNAVAILABLE until a policy is loaded.

With token issuers (--issuers FILE, or --issuer with its --jwks-url, --audience
and --profile), ValidateToken checks JWT access tokens against their key sets,
which are cached too; health also waits until every issuer has keys.`,
		`  rolecall serve --policy examples/bookstore.yaml
  rolecall serve --policy /etc/rolecall/policy.yaml --grpc-addr "" --unix-socket /run/rolecall/rolecall.sock
  rolecall serve --policy examples/bookstore.yaml --issuer https://tenant.logto.app/oidc --profile logto --audience https://api.store.io/orders`,
		sio.err)
	policyPath := fs.String("policy", "", "policy `FILE` (YAML or JSON); required")
	grpcAddr := fs.String("grpc-addr", defaultAddr, "TCP `address` for gRPC; empty to disable TCP")
	unixSocket := fs.String("unix-socket", "", "also serve gRPC on a Unix socket at `PATH` (created 0660)")
	cachePath := fs.String("cache", "rolecall.db", "bbolt cache `file` holding the last accepted policy")
	poll := fs.Duration("poll-interval", 5*time.Second, "how often to check the policy file for changes")
	grace := fs.Duration("grace-period", 10*time.Second, "how long in-flight calls may finish at shutdown")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	var issuers issuerFlags
	issuers.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var problems []string
	if *policyPath == "" {
		problems = append(problems, "--policy is required")
	}
	if *grpcAddr == "" && *unixSocket == "" {
		problems = append(problems, "set --grpc-addr, --unix-socket or both")
	}
	if *poll <= 0 {
		problems = append(problems, "--poll-interval must be positive")
	}
	log, err := newLogger(sio.err, *logLevel, *logFormat)
	if err != nil {
		problems = append(problems, err.Error())
	}
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected arguments %q", fs.Args()))
	}
	issuerCfgs, err := issuers.configs()
	if err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return usageError("%s", strings.Join(problems, "; "))
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
		Upstream: policysync.NewFile(*policyPath),
		Engine:   engine,
		Cache:    db,
		Interval: *poll,
		Logger:   log,
		OnLoad:   func(*pdp.Snapshot) { srv.UpdateHealth() },
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
