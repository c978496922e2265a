// Package sync keeps the served policy fresh: it fetches documents from an
// upstream, validates and compiles them off to the side, persists each
// accepted one to the cache, and swaps it into the engine. A document that
// fails is never served; the last good policy stays.
//
// The package shadows the standard library's sync; callers that need both
// import it as policysync.
package sync

import (
	"context"
	"errors"

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
