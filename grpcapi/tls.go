package grpcapi

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// TLSFiles names the PEM files of the gRPC listener's TLS: its certificate
// chain and key, and, for mutual TLS, the CAs whose client certificates it
// accepts.
type TLSFiles struct {
	CertFile     string
	KeyFile      string
	ClientCAFile string // "" for server-only TLS
}

// tlsReloadCheck is how often, at most, a handshake looks for changed files.
const tlsReloadCheck = time.Second

// TLSListener serves TLS on l with the certificates in files. The files are
// read now, and again when they change: a handshake notices a change within
// a second, so a renewed certificate (cert-manager, a rotated secret) is used
// by the next connection without a restart. A change that does not load
// (half-written files, a key that does not match) is logged and the last
// good certificates stay in use.
func TLSListener(l net.Listener, files TLSFiles, log *slog.Logger) (net.Listener, error) {
	r, err := newTLSReloader(files, log)
	if err != nil {
		return nil, err
	}
	// Every handshake gets its settings from the current certificates.
	return tls.NewListener(l, &tls.Config{GetConfigForClient: r.configForClient}), nil
}

type tlsState struct {
	config  *tls.Config
	stamp   string // the files' sizes and modification times
	loadErr string // the last failed load's error, logged once
}

type tlsReloader struct {
	files     TLSFiles
	log       *slog.Logger
	mu        sync.Mutex // serializes reloads
	state     atomic.Pointer[tlsState]
	lastCheck atomic.Int64 // unix nanoseconds
}

func newTLSReloader(files TLSFiles, log *slog.Logger) (*tlsReloader, error) {
	if files.CertFile == "" || files.KeyFile == "" {
		return nil, errors.New("grpc tls: cert_file and key_file are both required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &tlsReloader{files: files, log: log}
	st, err := r.load()
	if err != nil {
		return nil, err
	}
	r.state.Store(st)
	r.lastCheck.Store(time.Now().UnixNano())
	return r, nil
}

func (r *tlsReloader) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	now := time.Now().UnixNano()
	last := r.lastCheck.Load()
	if now-last >= int64(tlsReloadCheck) && r.lastCheck.CompareAndSwap(last, now) {
		r.reloadIfChanged()
	}
	return r.state.Load().config, nil
}

func (r *tlsReloader) reloadIfChanged() {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.state.Load()
	stamp, err := r.stamp()
	if err != nil || stamp == cur.stamp {
		return // a missing file mid-rotation: the next check sees the new one
	}
	st, err := r.load()
	if err != nil {
		if err.Error() != cur.loadErr {
			r.log.Error("gRPC TLS certificates changed but do not load; still serving the previous ones", "error", err)
		}
		next := *cur
		next.loadErr = err.Error()
		r.state.Store(&next)
		return
	}
	r.state.Store(st)
	r.log.Info("gRPC TLS certificates reloaded", "cert_file", r.files.CertFile, "not_after", st.config.Certificates[0].Leaf.NotAfter)
}

// stamp sums up the files' sizes and modification times.
func (r *tlsReloader) stamp() (string, error) {
	var s string
	for _, name := range []string{r.files.CertFile, r.files.KeyFile, r.files.ClientCAFile} {
		if name == "" {
			continue
		}
		fi, err := os.Stat(name)
		if err != nil {
			return "", err
		}
		s += fmt.Sprintf("%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return s, nil
}

func (r *tlsReloader) load() (*tlsState, error) {
	stamp, err := r.stamp()
	if err != nil {
		return nil, fmt.Errorf("grpc tls: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(r.files.CertFile, r.files.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("grpc tls: cert_file %s and key_file %s: %w", r.files.CertFile, r.files.KeyFile, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2"},
		Certificates: []tls.Certificate{cert},
	}
	if r.files.ClientCAFile != "" {
		pem, err := os.ReadFile(r.files.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("grpc tls: client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("grpc tls: client_ca_file %s holds no PEM certificate", r.files.ClientCAFile)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return &tlsState{config: cfg, stamp: stamp}, nil
}
