// Package httpdoc is the upstream that fetches the policy over HTTP(S): a
// rolecall publisher's snapshot bundle, or the canonical document from any
// server or object store. A publisher may hold a fetch open until its policy
// changes (FetchWait, long polling).
package httpdoc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/rolecall/rolecall/bundle"
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
	// Timeout bounds a whole fetch, body included. Default 30 s. A long poll
	// (FetchWait) may take its wait longer.
	Timeout time.Duration
	// MaxBytes bounds the document (after decompression). Default 64 MiB.
	MaxBytes int64
	// Transport, when set, replaces the one built from the TLS settings;
	// tests use it.
	Transport http.RoundTripper
}

// Upstream is an upstream fetching a snapshot bundle or the canonical policy
// document over HTTP(S) with If-None-Match, so that an unchanged policy costs
// a 304 and nothing else.
type Upstream struct {
	cfg    Config
	client *http.Client
	name   string
}

var _ refresh.LongPollUpstream = (*Upstream)(nil)

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
		cfg: cfg,
		// No client Timeout: each request has a context deadline, longer
		// for a long poll.
		client: &http.Client{Transport: transport},
		name:   fetch.RedactURL(cfg.URL),
	}, nil
}

func (h *Upstream) String() string { return h.name }

// accept asks for a published snapshot first, then the canonical document in
// either syntax; a plain server or object store answers with what it has.
const accept = bundle.MediaType + ", application/json;q=0.9, application/yaml;q=0.8, */*;q=0.1"

// Fetch GETs the policy, sending etag as If-None-Match.
func (h *Upstream) Fetch(ctx context.Context, etag string) (refresh.Document, error) {
	doc, _, err := h.get(ctx, etag, 0)
	return doc, err
}

// FetchWait is Fetch with Prefer: wait, so that a rolecall publisher holds
// the request until its policy is no longer the one tagged etag, or wait
// has passed. Without an etag there is nothing to wait on and a publisher
// answers at once, but still says Preference-Applied: a first fetch learns
// that the server long-polls. The request may take wait plus the
// configured timeout.
func (h *Upstream) FetchWait(ctx context.Context, etag string, wait time.Duration) (refresh.Document, bool, error) {
	return h.get(ctx, etag, wait)
}

// get is the one request path of Fetch and FetchWait: wait 0 sends no
// Prefer.
func (h *Upstream) get(ctx context.Context, etag string, wait time.Duration) (refresh.Document, bool, error) {
	var prefer int64
	if wait > 0 {
		// Prefer: wait takes whole seconds.
		prefer = max(1, int64(wait/time.Second))
	}
	limit := h.cfg.Timeout + time.Duration(prefer)*time.Second
	reqCtx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, h.cfg.URL, nil)
	if err != nil {
		return refresh.Document{}, false, err
	}
	req.Header.Set("Accept", accept)
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	if prefer > 0 {
		req.Header.Set("Prefer", "wait="+strconv.FormatInt(prefer, 10))
	}
	if err := h.authorize(req); err != nil {
		return refresh.Document{}, false, err
	}
	resp, data, err := fetch.Do(h.client, req, h.cfg.MaxBytes)
	if err != nil && !errors.Is(err, fetch.ErrTooLarge) {
		if err := ctx.Err(); err != nil {
			return refresh.Document{}, false, fmt.Errorf("GET %s: %w", h.name, err)
		}
		if reqCtx.Err() != nil {
			return refresh.Document{}, false, fmt.Errorf("GET %s: no complete answer within %v: %w", h.name, limit, context.DeadlineExceeded)
		}
	}
	if resp == nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			during := "before answering"
			if prefer > 0 {
				during = "while holding the request (long poll)"
			}
			return refresh.Document{}, false, fmt.Errorf("GET %s: the upstream closed the connection %s: %w", h.name, during, h.scrub(err))
		}
		return refresh.Document{}, false, fmt.Errorf("GET %s: %w", h.name, h.scrub(err))
	}
	held := prefer > 0 && waitApplied(resp.Header)
	switch {
	case resp.StatusCode == http.StatusNotModified:
		if etag == "" {
			return refresh.Document{}, false, fmt.Errorf("GET %s: 304 Not Modified, but no document was asked about", h.name)
		}
		return refresh.Document{}, held, refresh.ErrNotModified
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return refresh.Document{}, false, fmt.Errorf("GET %s: %s: the upstream refused rolecall's credentials", h.name, resp.Status)
	case resp.StatusCode != http.StatusOK:
		if ra := fetch.RetryAfter(resp); ra != nil {
			return refresh.Document{}, false, fmt.Errorf("GET %s: %w", h.name, ra)
		}
		return refresh.Document{}, false, fmt.Errorf("GET %s: %s", h.name, resp.Status)
	case errors.Is(err, fetch.ErrTooLarge):
		return refresh.Document{}, false, fmt.Errorf("GET %s: the document is over the %d-byte limit", h.name, h.cfg.MaxBytes)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return refresh.Document{}, false, fmt.Errorf("GET %s: reading the body: the body was cut short: %w", h.name, err)
	case err != nil:
		return refresh.Document{}, false, fmt.Errorf("GET %s: reading the body: %w", h.name, h.scrub(err))
	case len(data) == 0:
		return refresh.Document{}, false, fmt.Errorf("GET %s: the upstream answered 200 with an empty body, not a policy", h.name)
	}
	format, err := h.format(resp, data)
	if err != nil {
		return refresh.Document{}, false, err
	}
	return refresh.Document{
		Data:        data,
		Format:      format,
		ETag:        resp.Header.Get("ETag"),
		PublishedAt: publishedAt(resp.Header),
	}, held, nil
}

// scrub removes the full URL, which may carry secrets in its query, from a
// client error, and the client's own "Get <url>:" wrapping, which the
// callers' "GET <name>:" says already.
func (h *Upstream) scrub(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return fetch.Scrub(err, h.cfg.URL, h.name)
}

// format decides the syntax of a 200's body: from its Content-Type when that
// names a snapshot, JSON or YAML; from the bytes otherwise (an object store's
// application/octet-stream, or no type at all). An HTML page is never a
// policy: it is a login page or a proxy's error, answered with 200.
func (h *Upstream) format(resp *http.Response, data []byte) (policyfile.Format, error) {
	ct := resp.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil {
		switch {
		case mt == bundle.MediaType:
			if !bundle.IsBundle(data) {
				return "", fmt.Errorf("GET %s: the content type says snapshot but the body is not a rolecall bundle", h.name)
			}
			return refresh.FormatSnapshot, nil
		case mt == "text/html" || mt == "application/xhtml+xml":
			return "", h.htmlError(mt)
		case strings.HasSuffix(mt, "json"):
			return policyfile.JSON, nil
		case strings.HasSuffix(mt, "yaml"):
			return policyfile.YAML, nil
		}
	}
	format := refresh.DetectFormat(path.Base(resp.Request.URL.Path), data)
	if format != refresh.FormatSnapshot && strings.HasPrefix(http.DetectContentType(data), "text/html") {
		return "", h.htmlError("an HTML page")
	}
	return format, nil
}

func (h *Upstream) htmlError(what string) error {
	return fmt.Errorf("GET %s: the upstream answered 200 with %s, not a policy (a login page or proxy error?)", h.name, what)
}

// waitApplied reports whether a Preference-Applied header holds the wait
// preference (RFC 7240), with or without its value.
func waitApplied(header http.Header) bool {
	for _, v := range header.Values("Preference-Applied") {
		for pref := range strings.SplitSeq(v, ",") {
			name, _, _ := strings.Cut(pref, "=")
			name, _, _ = strings.Cut(name, ";")
			if strings.EqualFold(strings.TrimSpace(name), "wait") {
				return true
			}
		}
	}
	return false
}

// publishedAt reads the Rolecall-Published-At header. A missing or
// malformed one is zero, unknown, and no error: it only measures
// propagation delay, and a bundle carries its own time.
func publishedAt(header http.Header) time.Time {
	t, err := time.Parse(time.RFC3339Nano, header.Get(refresh.PublishedAtHeader))
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
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
