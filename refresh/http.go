package refresh

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/rolecall/rolecall/policyfile"
)

// DefaultMaxBytes bounds a fetched policy document.
const DefaultMaxBytes = 64 << 20

// HTTPConfig configures an HTTP(S) upstream serving the canonical policy
// document.
type HTTPConfig struct {
	// URL of the document. Required; http or https.
	URL string
	// Bearer token, read from a file or an environment variable at every
	// fetch (so it can rotate). Never logged, never in status.
	BearerTokenFile string
	BearerTokenEnv  string
	// Basic auth user, with the password from a file or an environment
	// variable.
	BasicUser         string
	BasicPasswordFile string
	BasicPasswordEnv  string
	// CAFile holds PEM certificates to trust instead of the system roots.
	CAFile string
	// ClientCertFile and ClientKeyFile hold a PEM client certificate for
	// mutual TLS.
	ClientCertFile string
	ClientKeyFile  string
	// Timeout bounds a whole fetch, body included. Default 30 s.
	Timeout time.Duration
	// MaxBytes bounds the document (after decompression). Default 64 MiB.
	MaxBytes int64
	// Transport, when set, replaces the one built from the TLS settings;
	// tests use it.
	Transport http.RoundTripper
}

// HTTP is an upstream fetching the canonical policy document over HTTP(S)
// with If-None-Match, so that an unchanged document costs a 304 and nothing
// else.
type HTTP struct {
	cfg    HTTPConfig
	client *http.Client
	name   string
}

// RetryAfterError is a fetch failure the server asked to retry after Wait
// (503 or 429 with Retry-After).
type RetryAfterError struct {
	Status int
	Wait   time.Duration
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%d %s; retry after %v", e.Status, http.StatusText(e.Status), e.Wait)
}

// NewHTTP checks cfg, reporting every problem at once, and builds the client.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) {
	var errs []error
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("upstream URL %q: want an http(s) URL", redactURL(cfg.URL)))
	}
	if u != nil && u.User != nil {
		errs = append(errs, errors.New("upstream URL: put credentials in a file or environment variable, not in the URL"))
	}
	if (cfg.BearerTokenFile != "" || cfg.BearerTokenEnv != "") && cfg.BasicUser != "" {
		errs = append(errs, errors.New("upstream: choose a bearer token or basic auth, not both"))
	}
	if cfg.BearerTokenFile != "" && cfg.BearerTokenEnv != "" {
		errs = append(errs, errors.New("upstream: bearer token from a file or an environment variable, not both"))
	}
	if cfg.BasicUser != "" && cfg.BasicPasswordFile == "" && cfg.BasicPasswordEnv == "" {
		errs = append(errs, errors.New("upstream: basic auth needs a password file or environment variable"))
	}
	if (cfg.ClientCertFile == "") != (cfg.ClientKeyFile == "") {
		errs = append(errs, errors.New("upstream: a client certificate needs both its certificate and key files"))
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Timeout < 0 || cfg.MaxBytes < 0 {
		errs = append(errs, errors.New("upstream: timeout and maximum size must be positive"))
	}
	transport := cfg.Transport
	if transport == nil {
		tlsCfg, err := tlsConfig(cfg)
		if err != nil {
			errs = append(errs, err)
		}
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = tlsCfg
		transport = t
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &HTTP{
		cfg:    cfg,
		client: &http.Client{Timeout: cfg.Timeout, Transport: transport},
		name:   redactURL(cfg.URL),
	}, nil
}

func tlsConfig(cfg HTTPConfig) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("upstream CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("upstream CA file %s holds no PEM certificate", cfg.CAFile)
		}
		t.RootCAs = pool
	}
	if cfg.ClientCertFile != "" && cfg.ClientKeyFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.ClientCertFile, cfg.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("upstream client certificate: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// loopbackHost reports whether host names this machine: plain http is
// accepted only there.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redactURL keeps scheme, host and path: user info and query strings may hold
// secrets.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

func (h *HTTP) String() string { return h.name }

// Fetch GETs the document, sending etag as If-None-Match.
func (h *HTTP) Fetch(ctx context.Context, etag string) (Document, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.cfg.URL, nil)
	if err != nil {
		return Document{}, err
	}
	req.Header.Set("Accept", "application/json, application/yaml;q=0.9, */*;q=0.1")
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	if err := h.authorize(req); err != nil {
		return Document{}, err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return Document{}, fmt.Errorf("GET %s: %w", h.name, scrub(err, h.cfg.URL, h.name))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified:
		if etag == "" {
			return Document{}, fmt.Errorf("GET %s: 304 Not Modified, but no document was asked about", h.name)
		}
		return Document{}, ErrNotModified
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return Document{}, fmt.Errorf("GET %s: %s: the upstream refused rolecall's credentials", h.name, resp.Status)
	case resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests:
		if wait, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return Document{}, fmt.Errorf("GET %s: %w", h.name, &RetryAfterError{Status: resp.StatusCode, Wait: wait})
		}
		return Document{}, fmt.Errorf("GET %s: %s", h.name, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return Document{}, fmt.Errorf("GET %s: %s", h.name, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, h.cfg.MaxBytes+1))
	if err != nil {
		return Document{}, fmt.Errorf("GET %s: reading the body: %w", h.name, scrub(err, h.cfg.URL, h.name))
	}
	if int64(len(data)) > h.cfg.MaxBytes {
		return Document{}, fmt.Errorf("GET %s: the document is over the %d-byte limit", h.name, h.cfg.MaxBytes)
	}
	return Document{Data: data, Format: h.format(resp, data), ETag: resp.Header.Get("ETag")}, nil
}

func (h *HTTP) format(resp *http.Response, data []byte) policyfile.Format {
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil {
		switch {
		case strings.HasSuffix(mt, "json"):
			return policyfile.JSON
		case strings.HasSuffix(mt, "yaml"):
			return policyfile.YAML
		}
	}
	return policyfile.DetectFormat(path.Base(resp.Request.URL.Path), data)
}

func (h *HTTP) authorize(req *http.Request) error {
	switch {
	case h.cfg.BearerTokenFile != "" || h.cfg.BearerTokenEnv != "":
		tok, err := ReadSecret(h.cfg.BearerTokenFile, h.cfg.BearerTokenEnv)
		if err != nil {
			return fmt.Errorf("upstream bearer token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	case h.cfg.BasicUser != "":
		pw, err := ReadSecret(h.cfg.BasicPasswordFile, h.cfg.BasicPasswordEnv)
		if err != nil {
			return fmt.Errorf("upstream basic auth password: %w", err)
		}
		req.SetBasicAuth(h.cfg.BasicUser, pw)
	}
	return nil
}

// ReadSecret reads a secret from file or, when file is empty, from the
// environment variable env, trimmed of white space. Errors say where it was
// looked for, never what was found.
func ReadSecret(file, env string) (string, error) {
	var v string
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		v = string(b)
	} else {
		var ok bool
		if v, ok = os.LookupEnv(env); !ok {
			return "", fmt.Errorf("environment variable %s is not set", env)
		}
	}
	v = strings.TrimSpace(v)
	if v == "" {
		if file != "" {
			return "", fmt.Errorf("%s is empty", file)
		}
		return "", fmt.Errorf("environment variable %s is empty", env)
	}
	return v, nil
}

// scrub replaces the full URL, which may carry a query with secrets, in an
// error from the HTTP client.
func scrub(err error, full, redacted string) error {
	if full == redacted || !strings.Contains(err.Error(), full) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), full, redacted))
}

// retryAfter parses a Retry-After value: seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
