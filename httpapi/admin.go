// Package httpapi is the HTTP edge: the auth endpoint /v1/authz for nginx,
// Envoy and Traefik, and the admin endpoints (health, readiness, status,
// refresh, log level, metrics, profiles). It asks a decide.Decider; the
// gRPC edge is grpcapi.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/rolecall/rolecall/decide"
	"github.com/rolecall/rolecall/internal/v1conv"
	"github.com/rolecall/rolecall/metrics"
	"github.com/rolecall/rolecall/refresh"
	"github.com/rolecall/rolecall/refresh/logto"
)

// Refresher is what the admin endpoints need of the policy refresher.
type Refresher interface {
	decide.StatusSource
	RefreshOnce(ctx context.Context) error
	// Accept installs the held policy of this revision despite the guard
	// (policy.max_revoke_ratio), fetching it again; *refresh.AcceptError
	// when nothing is held, another revision is, or the upstream no longer
	// has it.
	Accept(ctx context.Context, revision string) error
	Trigger()
}

// AdminOptions configures the admin HTTP handler.
type AdminOptions struct {
	// Refresher answers POST /v1/refresh and webhook triggers. Required.
	Refresher Refresher
	// Ready answers GET /readyz: whether the server is ready and, when it is
	// not or when its policy is stale, why. Default: the Decider's readiness
	// for the Refresher's policy (a server that shuts down should say so).
	Ready func() (ok bool, why string)
	// LogtoWebhookKey is the signing key of Logto webhooks; without it the
	// webhook endpoint answers 404.
	LogtoWebhookKey []byte
	// RefreshTimeout bounds POST /v1/refresh. Default 60 s.
	RefreshTimeout time.Duration
	// Gatherer, when set, is served on /metrics.
	Gatherer prometheus.Gatherer
	// Pprof serves /debug/pprof; off by default.
	Pprof bool
	// LogLevel, when set, is read by GET and set by PUT /v1/loglevel.
	LogLevel *slog.LevelVar
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// AdminHandler serves the admin endpoints, meant for loopback:
//
//	GET  /healthz              the process is alive
//	GET  /readyz               200 when a policy is served and every issuer has keys; 503 with the reason
//	GET  /v1/status            the policy and issuer status as JSON (GetPolicyStatus)
//	POST /v1/refresh           refresh the policy now; 200 with the status, 409 when the policy fetched is held back, 502 with the error
//	POST /v1/refresh?accept=R  install the held policy of revision R despite policy.max_revoke_ratio; 409 when R is not held
//	POST /v1/webhooks/logto    a signed Logto webhook: permission-relevant events trigger a refresh
//	GET  /metrics              Prometheus metrics (with a Gatherer)
//	GET, PUT /v1/loglevel      the log level, changeable at run time (with a LogLevel)
//	GET  /debug/pprof/...      profiles (only with Pprof)
//
// The status comes from dec.
func AdminHandler(dec *decide.Decider, opts AdminOptions) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RefreshTimeout == 0 {
		opts.RefreshTimeout = 60 * time.Second
	}
	if opts.Ready == nil {
		opts.Ready = func() (bool, string) { return dec.Readiness(opts.Refresher) }
	}
	a := &admin{dec: dec, opts: opts}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeText(w, http.StatusOK, "ok") })
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.HandleFunc("GET /v1/status", a.status)
	mux.HandleFunc("POST /v1/refresh", a.refresh)
	mux.Handle("POST /v1/webhooks/logto", logto.WebhookHandler(opts.LogtoWebhookKey, func() { opts.Refresher.Trigger() }, opts.Logger))
	if opts.Gatherer != nil {
		mux.Handle("GET /metrics", metrics.Handler(opts.Gatherer))
	}
	if opts.LogLevel != nil {
		mux.HandleFunc("GET /v1/loglevel", func(w http.ResponseWriter, _ *http.Request) {
			writeText(w, http.StatusOK, opts.LogLevel.Level().String())
		})
		mux.HandleFunc("PUT /v1/loglevel", a.setLogLevel)
	}
	if opts.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

type admin struct {
	dec  *decide.Decider
	opts AdminOptions
}

func (a *admin) readyz(w http.ResponseWriter, _ *http.Request) {
	ok, why := a.opts.Ready()
	switch {
	case !ok:
		writeText(w, http.StatusServiceUnavailable, "not ready: "+why)
	case why != "":
		writeText(w, http.StatusOK, "ready; "+why)
	default:
		writeText(w, http.StatusOK, "ready")
	}
}

func (a *admin) status(w http.ResponseWriter, r *http.Request) {
	a.writeStatus(w, r.Context(), http.StatusOK)
}

func (a *admin) writeStatus(w http.ResponseWriter, ctx context.Context, code int) {
	st := v1conv.StatusResponse(a.dec.PolicyStatus(a.opts.Refresher))
	b, err := protojson.MarshalOptions{EmitUnpopulated: true, UseProtoNames: true}.Marshal(st)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

func (a *admin) refresh(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.opts.RefreshTimeout)
	defer cancel()
	var err error
	if q := r.URL.Query(); q.Has("accept") {
		err = a.opts.Refresher.Accept(ctx, q.Get("accept"))
	} else {
		err = a.opts.Refresher.RefreshOnce(ctx)
	}
	var conflict *refresh.AcceptError
	switch {
	case errors.As(err, &conflict) || errors.Is(err, refresh.ErrHeld):
		// The upstream answered; what it has is not (or no longer) the
		// policy asked for, or is held back.
		writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
	case err != nil:
		// The refresher's errors name what failed, never credentials.
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
	default:
		a.writeStatus(w, r.Context(), http.StatusOK)
	}
}

func writeText(w http.ResponseWriter, code int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, text+"\n")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// setLogLevel sets the log level from the body: debug, info, warn or error.
func (a *admin) setLogLevel(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64))
	var lv slog.Level
	if err != nil || lv.UnmarshalText(bytes.TrimSpace(body)) != nil {
		writeText(w, http.StatusBadRequest, "want debug, info, warn or error")
		return
	}
	old := a.opts.LogLevel.Level()
	a.opts.LogLevel.Set(lv)
	a.opts.Logger.Info("log level changed", "from", old.String(), "to", lv.String())
	writeText(w, http.StatusOK, lv.String())
}
