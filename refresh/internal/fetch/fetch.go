// Package fetch is the one client rolecall's upstreams use for outbound
// HTTP: body size limits, gzip, Retry-After on 429 and 503, redaction of
// secrets in URLs and errors, the User-Agent, and TLS settings.
package fetch

import (
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rolecall/rolecall/refresh"
)

// UserAgent is sent with every request.
const UserAgent = "rolecall"

// ErrTooLarge is returned by Do when a body is over its limit.
var ErrTooLarge = errors.New("body over the size limit")

// Do sends req with rolecall's User-Agent, accepting gzip, and reads the
// decoded body, at most limit bytes of it. A transport error comes back with
// a nil response; a failed read comes back with the response, so that its
// status is known, and the error (ErrTooLarge beyond the limit). The body
// is closed either way.
func Do(client *http.Client, req *http.Request, limit int64) (*http.Response, []byte, error) {
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var body io.Reader = resp.Body
	if strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return resp, nil, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		body = zr
		resp.Header.Del("Content-Encoding")
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1 // the decoded length is unknown
	}
	var buf bytes.Buffer
	if n := resp.ContentLength; n > 0 && n <= limit {
		// The size is known: one allocation, not a run of growing copies
		// (a large policy's refresh is where memory peaks).
		buf.Grow(int(n) + bytes.MinRead)
	}
	_, err = buf.ReadFrom(io.LimitReader(body, limit+1))
	data := buf.Bytes()
	if err == nil && int64(len(data)) > limit {
		return resp, data[:limit], ErrTooLarge
	}
	return resp, data, err
}

// WithUserAgent returns a copy of client whose requests carry rolecall's
// User-Agent, for requests that other libraries send (the OAuth token
// request).
func WithUserAgent(client *http.Client) *http.Client {
	c := *client
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c.Transport = userAgent{base}
	return &c
}

type userAgent struct{ base http.RoundTripper }

func (u userAgent) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", UserAgent)
	return u.base.RoundTrip(r)
}

// RetryAfter returns a *refresh.RetryAfterError when resp is a 429 or 503
// that says when to come back, and nil otherwise.
func RetryAfter(resp *http.Response) error {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return nil
	}
	wait, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	if !ok {
		return nil
	}
	return &refresh.RetryAfterError{Status: resp.StatusCode, Wait: wait}
}

// Redact replaces every non-empty secret in s with "[redacted]".
func Redact(s string, secrets ...string) string {
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}

// TLSFiles names the PEM files of a client's TLS settings.
type TLSFiles struct {
	// CAFile holds certificates to trust instead of the system roots.
	CAFile string
	// ClientCertFile and ClientKeyFile hold a client certificate for
	// mutual TLS.
	ClientCertFile, ClientKeyFile string
}

// TLSConfig builds the client TLS settings: the CA file to trust instead of
// the system roots and the client certificate for mutual TLS, when given.
func TLSConfig(cfg TLSFiles) (*tls.Config, error) {
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

// LoopbackHost reports whether host names this machine: plain http is
// accepted only there.
func LoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// RedactURL keeps scheme, host and path: user info and query strings may hold
// secrets.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// Scrub replaces the full URL, which may carry a query with secrets, in an
// error from the HTTP client.
func Scrub(err error, full, redacted string) error {
	if full == redacted || !strings.Contains(err.Error(), full) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), full, redacted))
}

// parseRetryAfter parses a Retry-After value: seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
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
