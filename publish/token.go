package publish

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rolecall/rolecall/refresh"
)

// tokenReread is how often, at most, the token file is read again.
const tokenReread = time.Second

// tokenFile is the bearer token, read from its file again at most once a
// second so that it can rotate. Only the token's SHA-256 is kept: comparing
// digests in constant time leaks neither the token nor its length.
type tokenFile struct {
	path string
	now  func() time.Time
	log  *slog.Logger

	sum      atomic.Pointer[[sha256.Size]byte]
	readAt   atomic.Int64 // unix nanoseconds of the last read
	mu       sync.Mutex   // serializes re-reads
	lastFail string       // the last failed read's error, logged once
}

func newTokenFile(path string, now func() time.Time, log *slog.Logger) (*tokenFile, error) {
	t := &tokenFile{path: path, now: now, log: log}
	sum, err := t.read()
	if err != nil {
		return nil, err
	}
	t.sum.Store(sum)
	t.readAt.Store(now().UnixNano())
	return t, nil
}

func (t *tokenFile) read() (*[sha256.Size]byte, error) {
	tok, err := refresh.ReadSecret(t.path, "")
	if err != nil {
		return nil, fmt.Errorf("publish bearer token file %w", err)
	}
	sum := sha256.Sum256([]byte(tok))
	return &sum, nil
}

// current is the token's digest, read again when the last read is more than
// tokenReread old. A file that no longer reads keeps the last good token.
func (t *tokenFile) current() *[sha256.Size]byte {
	now := t.now().UnixNano()
	if now-t.readAt.Load() < int64(tokenReread) || !t.mu.TryLock() {
		return t.sum.Load()
	}
	defer t.mu.Unlock()
	t.readAt.Store(now)
	sum, err := t.read()
	if err != nil {
		if msg := err.Error(); msg != t.lastFail {
			t.lastFail = msg
			t.log.Error("cannot read the publish bearer token again; the last good one stays in use", "error", err)
		}
		return t.sum.Load()
	}
	t.lastFail = ""
	t.sum.Store(sum)
	return sum
}

var errNoBearer = errors.New("no bearer token")

// check reports whether r presents the token.
func (t *tokenFile) check(r *http.Request) error {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return errNoBearer
	}
	got := sha256.Sum256([]byte(tok))
	want := t.current()
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return errors.New("wrong bearer token")
	}
	return nil
}
