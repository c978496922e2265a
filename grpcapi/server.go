package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/rolecall/rolecall/decide"
	rolecallv1 "github.com/rolecall/rolecall/gen/rolecall/v1"
	"github.com/rolecall/rolecall/metrics"
)

// Options configures a Server. The zero value is usable.
type Options struct {
	// Status reports refresh state for GetPolicyStatus.
	Status decide.StatusSource
	// Logger defaults to discarding.
	Logger *slog.Logger
	// GracePeriod is how long Serve waits for in-flight calls when its
	// context ends before it cuts them off. Default 10 s.
	GracePeriod time.Duration
	// Metrics, when set, instruments every RPC (the Decider counts the
	// decisions).
	Metrics *metrics.Metrics
	// MaxRecvMsgBytes bounds a request. Default 4 MiB.
	MaxRecvMsgBytes int
	// MaxConcurrentStreams bounds the calls in flight on one connection.
	// Default 1024.
	MaxConcurrentStreams uint32
	// KeepaliveMinTime is the shortest ping interval a client may use before
	// it is disconnected. Default 10 s.
	KeepaliveMinTime time.Duration
}

// Server is the gRPC server: the decision service, health and reflection.
type Server struct {
	dec    *decide.Decider
	grpc   *grpc.Server
	health *health.Server
	log    *slog.Logger
	grace  time.Duration
	// stopping is set when shutdown starts, so that readiness turns false at
	// once, before in-flight calls have drained.
	stopping atomic.Bool
}

// ServiceName is the health service name of the decision service.
var ServiceName = rolecallv1.PolicyDecisionService_ServiceDesc.ServiceName

// New builds a Server answering from dec. Envoy ext_authz is served when dec
// has enforcement options (decide.Options.Authz). Health is SERVING once a
// policy is loaded and every token issuer has keys; call UpdateHealth when
// either changes.
func New(dec *decide.Decider, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.GracePeriod == 0 {
		opts.GracePeriod = 10 * time.Second
	}
	if opts.MaxRecvMsgBytes == 0 {
		opts.MaxRecvMsgBytes = 4 << 20
	}
	if opts.MaxConcurrentStreams == 0 {
		opts.MaxConcurrentStreams = 1024
	}
	if opts.KeepaliveMinTime == 0 {
		opts.KeepaliveMinTime = 10 * time.Second
	}
	serverOpts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(opts.MaxRecvMsgBytes),
		grpc.MaxConcurrentStreams(opts.MaxConcurrentStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: opts.KeepaliveMinTime, PermitWithoutStream: true}),
	}
	if opts.Metrics != nil {
		serverOpts = append(serverOpts,
			grpc.ChainUnaryInterceptor(opts.Metrics.GRPC().UnaryServerInterceptor()),
			grpc.ChainStreamInterceptor(opts.Metrics.GRPC().StreamServerInterceptor()))
	}
	gs := grpc.NewServer(serverOpts...)
	rolecallv1.RegisterPolicyDecisionServiceServer(gs, NewService(dec, opts.Status, opts.Logger))
	if dec.Authz() != nil {
		authv3.RegisterAuthorizationServer(gs, &extAuthz{dec: dec})
	}
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)
	if opts.Metrics != nil {
		opts.Metrics.GRPC().InitializeMetrics(gs)
	}
	s := &Server{dec: dec, grpc: gs, health: hs, log: opts.Logger, grace: opts.GracePeriod}
	s.UpdateHealth()
	return s
}

// Serving reports whether the server is ready: a policy is loaded and every
// token issuer has keys.
func (s *Server) Serving() bool {
	ok, _ := s.Readiness(nil)
	return ok
}

// Readiness reports whether the server is ready and, when it is not or when
// its policy is stale, why: see decide.Decider.Readiness; a server shutting
// down is not.
func (s *Server) Readiness(st decide.StatusSource) (bool, string) {
	if s.stopping.Load() {
		return false, "shutting down"
	}
	return s.dec.Readiness(st)
}

// UpdateHealth sets the health of the server and of the decision service:
// SERVING when a policy is loaded and every token issuer has keys.
func (s *Server) UpdateHealth() {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if s.Serving() {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(ServiceName, st)
}

// Serve answers on every listener until ctx ends or a listener fails, then
// shuts down: health turns NOT_SERVING, in-flight calls get GracePeriod to
// finish, and the rest are cut off. It closes the listeners.
func (s *Server) Serve(ctx context.Context, listeners ...net.Listener) error {
	if len(listeners) == 0 {
		return errors.New("grpcapi: no listener")
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, l := range listeners {
		g.Go(func() error {
			// ErrServerStopped means shutdown won the race with Serve: the
			// context ended before this listener started.
			if err := s.grpc.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				return fmt.Errorf("serve on %s: %w", l.Addr(), err)
			}
			return nil
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		s.shutdown()
		return nil
	})
	return g.Wait()
}

func (s *Server) shutdown() {
	s.stopping.Store(true)
	s.health.Shutdown()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(s.grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.log.Warn("in-flight calls did not finish in time; closing them", "grace_period", s.grace)
		s.grpc.Stop()
		<-done
	}
}

// Listen opens the listeners Serve needs: TCP on tcpAddr and a Unix socket at
// unixPath, each when not empty. A stale socket file left by a process that
// died is replaced; a live one, or any other file at the path, is an error.
// The socket file gets permission bits unixMode (0660 when zero) and is
// removed when the listener closes.
func Listen(tcpAddr, unixPath string, unixMode os.FileMode) ([]net.Listener, error) {
	if tcpAddr == "" && unixPath == "" {
		return nil, errors.New("no listener configured: set a TCP address, a Unix socket path, or both")
	}
	var ls []net.Listener
	closeAll := func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}
	if tcpAddr != "" {
		l, err := net.Listen("tcp", tcpAddr)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", tcpAddr, err)
		}
		ls = append(ls, l)
	}
	if unixPath != "" {
		l, err := listenUnix(unixPath, unixMode)
		if err != nil {
			closeAll()
			return nil, err
		}
		ls = append(ls, l)
	}
	return ls, nil
}

func listenUnix(path string, mode os.FileMode) (net.Listener, error) {
	if mode == 0 {
		mode = 0o660
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("listen on unix socket %s: the path exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("listen on unix socket %s: another process is serving there", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale unix socket %s: %w", path, err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on unix socket %s: %w", path, err)
	}
	if err := os.Chmod(path, mode); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("set mode of unix socket %s: %w", path, err)
	}
	return l, nil
}
