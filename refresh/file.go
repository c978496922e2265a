package refresh

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	gosync "sync"
	"time"

	"github.com/rolecall/rolecall/policyfile"
)

// File is an upstream reading a YAML or JSON policy file. Its ETag is the
// SHA-256 of the content, so an edit that changes nothing is not a change.
// Between edits a poll costs one stat: the file is read again only when its
// size or modification time moved.
type File struct {
	path string

	mu       gosync.Mutex
	lastStat fileStamp
	lastETag string
}

type fileStamp struct {
	size    int64
	modTime time.Time
}

// NewFile returns an upstream for the policy file at path.
func NewFile(path string) *File {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return &File{path: path}
}

func (f *File) String() string { return "file:" + f.path }

// Fetch reads the file unless it is unchanged since the document tagged etag.
func (f *File) Fetch(_ context.Context, etag string) (Document, error) {
	fi, err := os.Stat(f.path)
	if err != nil {
		return Document{}, err
	}
	if !fi.Mode().IsRegular() {
		return Document{}, fmt.Errorf("%s is not a regular file", f.path)
	}
	stamp := fileStamp{size: fi.Size(), modTime: fi.ModTime()}
	f.mu.Lock()
	unchanged := etag != "" && etag == f.lastETag && stamp == f.lastStat
	f.mu.Unlock()
	if unchanged {
		return Document{}, ErrNotModified
	}

	// Hash first, streaming, so that confirming a large unchanged file does
	// not hold it in memory; read it only when it changed.
	tag, err := f.hash()
	if err != nil {
		return Document{}, err
	}
	f.mu.Lock()
	f.lastStat, f.lastETag = stamp, tag
	f.mu.Unlock()
	if tag == etag {
		return Document{}, ErrNotModified
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		return Document{}, err
	}
	if contentTag(data) != tag {
		return Document{}, fmt.Errorf("%s changed while it was read; the next poll reads it again", f.path)
	}
	return Document{Data: data, Format: policyfile.DetectFormat(f.path, data), ETag: tag}, nil
}

func (f *File) hash() (string, error) {
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
