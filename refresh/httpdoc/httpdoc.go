// Package httpdoc is the upstream that fetches the canonical policy document
// over HTTP(S).
package httpdoc

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/rolecall/rolecall/policyfile"
	"github.com/rolecall/rolecall/refresh"
	"github.com/rolecall/rolecall/refresh/internal/fetch"
)

// Config configures an HTTP(S) upstream serving the canonical policy
// document.
type Config struct {
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

// Upstream is an upstream fetching the canonical policy document over HTTP(S)
// with If-None-Match, so that an unchanged document costs a 304 and nothing
// else.
type Upstream struct {
	cfg    Config
	client *http.Client
	name   string
}

// New checks cfg, reporting every problem at once, and builds the client.
func New(cfg Config) (*Upstream, error) {
	var errs []error
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("upstream URL %q: want an http(s) URL", fetch.RedactURL(cfg.URL)))
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
		cfg.MaxBytes = refresh.DefaultMaxBytes
	}
	if cfg.Timeout < 0 || cfg.MaxBytes < 0 {
		errs = append(errs, errors.New("upstream: timeout and maximum size must be positive"))
	}
	transport := cfg.Transport
	if transport == nil {
		tlsCfg, err := fetch.TLSConfig(fetch.TLSFiles{CAFile: cfg.CAFile, ClientCertFile: cfg.ClientCertFile, ClientKeyFile: cfg.ClientKeyFile})
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
	return &Upstream{
		cfg:    cfg,
		client: &http.Client{Timeout: cfg.Timeout, Transport: transport},
		name:   fetch.RedactURL(cfg.URL),
	}, nil
}

func (h *Upstream) String() string { return h.name }

// Fetch GETs the document, sending etag as If-None-Match.
func (h *Upstream) Fetch(ctx context.Context, etag string) (refresh.Document, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.cfg.URL, nil)
	if err != nil {
		return refresh.Document{}, err
	}
	req.Header.Set("Accept", "application/json, application/yaml;q=0.9, */*;q=0.1")
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	if err := h.authorize(req); err != nil {
		return refresh.Document{}, err
	}
	resp, data, err := fetch.Do(h.client, req, h.cfg.MaxBytes)
	if resp == nil {
		return refresh.Document{}, fmt.Errorf("GET %s: %w", h.name, fetch.Scrub(err, h.cfg.URL, h.name))
	}
	switch {
	case resp.StatusCode == http.StatusNotModified:
		if etag == "" {
			return refresh.Document{}, fmt.Errorf("GET %s: 304 Not Modified, but no document was asked about", h.name)
		}
		return refresh.Document{}, refresh.ErrNotModified
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return refresh.Document{}, fmt.Errorf("GET %s: %s: the upstream refused rolecall's credentials", h.name, resp.Status)
	case resp.StatusCode != http.StatusOK:
		if ra := fetch.RetryAfter(resp); ra != nil {
			return refresh.Document{}, fmt.Errorf("GET %s: %w", h.name, ra)
		}
		return refresh.Document{}, fmt.Errorf("GET %s: %s", h.name, resp.Status)
	case errors.Is(err, fetch.ErrTooLarge):
		return refresh.Document{}, fmt.Errorf("GET %s: the document is over the %d-byte limit", h.name, h.cfg.MaxBytes)
	case err != nil:
		return refresh.Document{}, fmt.Errorf("GET %s: reading the body: %w", h.name, fetch.Scrub(err, h.cfg.URL, h.name))
	}
	return refresh.Document{Data: data, Format: h.format(resp, data), ETag: resp.Header.Get("ETag")}, nil
}

func (h *Upstream) format(resp *http.Response, data []byte) policyfile.Format {
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

func (h *Upstream) authorize(req *http.Request) error {
	switch {
	case h.cfg.BearerTokenFile != "" || h.cfg.BearerTokenEnv != "":
		tok, err := refresh.ReadSecret(h.cfg.BearerTokenFile, h.cfg.BearerTokenEnv)
		if err != nil {
			return fmt.Errorf("upstream bearer token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	case h.cfg.BasicUser != "":
		pw, err := refresh.ReadSecret(h.cfg.BasicPasswordFile, h.cfg.BasicPasswordEnv)
		if err != nil {
			return fmt.Errorf("upstream basic auth password: %w", err)
		}
		req.SetBasicAuth(h.cfg.BasicUser, pw)
	}
	return nil
}
