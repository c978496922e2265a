// Package file is the upstream that reads a YAML or JSON policy file from
// the local file system.
package file

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rolecall/rolecall/refresh"
)

// Upstream is an upstream reading a YAML or JSON policy file. Its ETag is the
// SHA-256 of the content, so an edit that changes nothing is not a change.
// Between edits a poll costs one stat: the file is read again only when its
// size or modification time moved.
type Upstream struct {
	path string

	mu       sync.Mutex
	lastStat fileStamp
	lastETag string
}

type fileStamp struct {
	size    int64
	modTime time.Time
}

// New returns an upstream for the policy file at path.
func New(path string) *Upstream {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return &Upstream{path: path}
}

func (f *Upstream) String() string { return "file:" + f.path }

// Fetch reads the file unless it is unchanged since the document tagged etag.
func (f *Upstream) Fetch(_ context.Context, etag string) (refresh.Document, error) {
	fi, err := os.Stat(f.path)
	if err != nil {
		return refresh.Document{}, err
	}
	if !fi.Mode().IsRegular() {
		return refresh.Document{}, fmt.Errorf("%s is not a regular file", f.path)
	}
	stamp := fileStamp{size: fi.Size(), modTime: fi.ModTime()}
	f.mu.Lock()
	unchanged := etag != "" && etag == f.lastETag && stamp == f.lastStat
	f.mu.Unlock()
	if unchanged {
		return refresh.Document{}, refresh.ErrNotModified
	}

	// Hash first, streaming, so that confirming a large unchanged file does
	// not hold it in memory; read it only when it changed.
	tag, err := f.hash()
	if err != nil {
		return refresh.Document{}, err
	}
	f.mu.Lock()
	f.lastStat, f.lastETag = stamp, tag
	f.mu.Unlock()
	if tag == etag {
		return refresh.Document{}, refresh.ErrNotModified
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		return refresh.Document{}, err
	}
	sum, read := refresh.ContentSum(data)
	if read != tag {
		return refresh.Document{}, fmt.Errorf("%s changed while it was read; the next poll reads it again", f.path)
	}
	return refresh.Document{Data: data, Format: refresh.DetectFormat(f.path, data), ETag: tag, SHA256: &sum}, nil
}

func (f *Upstream) hash() (string, error) {
	fh, err := os.Open(f.path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
