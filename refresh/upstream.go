// Package refresh keeps the served policy fresh: it fetches documents from an
// upstream, validates and compiles them off to the side, persists each
// accepted one to the cache, and swaps it into the engine. A document that
// fails is never served; the last good policy stays.
package refresh

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
)

// Upstream is a source of whole policy documents.
type Upstream interface {
	// Fetch returns the current document. When it is the one tagged etag
	// (the tag of the last document accepted, "" for none), it may return
	// ErrNotModified instead.
	Fetch(ctx context.Context, etag string) (Document, error)
	// String names the source for status and logs, without secrets, such as
	// "file:/etc/rolecall/policy.yaml".
	String() string
}

// Document is a policy document as fetched.
type Document struct {
	Data   []byte
	Format policyfile.Format
	// ETag is the upstream's version tag for this content.
	ETag string
}

// ErrNotModified is returned by Upstream.Fetch when the document has not
// changed since the one tagged with the given etag.
var ErrNotModified = errors.New("policy not modified")

// ContentTag is the ETag of a document rolecall tags itself: its SHA-256.
func ContentTag(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// CanonicalDocument writes p, converted from the upstream name, as the
// canonical JSON document tagged with its content, or returns
// ErrNotModified when that tag is etag: a reordered answer upstream is no
// new policy.
func CanonicalDocument(name string, p *pdp.Policy, etag string) (Document, error) {
	data, err := policyfile.MarshalJSON(p)
	if err != nil {
		return Document{}, fmt.Errorf("%s: writing the canonical policy: %w", name, err)
	}
	tag := ContentTag(data)
	if tag == etag {
		return Document{}, ErrNotModified
	}
	return Document{Data: data, Format: policyfile.JSON, ETag: tag}, nil
}
