// Package fetch is the one client rolecall's upstreams use for outbound
// HTTP: body size limits, gzip, Retry-After on 429 and 503, redaction of
// secrets in URLs and errors, the User-Agent, and TLS settings.
package fetch

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

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

// RetryAfter parses a Retry-After value: seconds or an HTTP date.
func RetryAfter(v string, now time.Time) (time.Duration, bool) {
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
