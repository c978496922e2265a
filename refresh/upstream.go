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
	"time"

	"github.com/rolecall/rolecall/bundle"
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

// Document is a policy document, or a published snapshot bundle, as fetched.
type Document struct {
	Data []byte
	// Format is the document's syntax, or FormatSnapshot for a bundle
	// (package bundle), which is installed without parsing or compiling.
	Format policyfile.Format
	// ETag is the upstream's version tag for this content.
	ETag string
	// PublishedAt is when a rolecall publisher first served this policy, as
	// its Rolecall-Published-At header said; zero when unknown. A bundle
	// carries its own, which wins.
	PublishedAt time.Time
	// SHA256 is the digest of Data when the upstream computed it already
	// (ContentSum), or nil: hashing a hundred megabytes again costs a fifth
	// of a second.
	SHA256 *[sha256.Size]byte
}

// FormatSnapshot is the Format of a published snapshot bundle
// (bundle.MediaType): a compiled policy, installed without compiling.
const FormatSnapshot policyfile.Format = "snapshot"

// DetectFormat is policyfile.DetectFormat that also knows bundles, by their
// magic bytes: a policy.snap file or object is a bundle whatever its name.
func DetectFormat(name string, data []byte) policyfile.Format {
	if bundle.IsBundle(data) {
		return FormatSnapshot
	}
	return policyfile.DetectFormat(name, data)
}

// PublishedAtHeader is the response header in which a rolecall publisher
// says when it first served the policy it answers with (RFC 3339, UTC,
// nanoseconds); consumers measure propagation delay from it.
const PublishedAtHeader = "Rolecall-Published-At"

// LongPollUpstream is an Upstream whose server can hold a fetch open until
// its policy changes (a rolecall publisher, with Prefer: wait=N).
type LongPollUpstream interface {
	Upstream
	// FetchWait is Fetch asking the server to answer only once the policy is
	// no longer the one tagged etag, or wait has passed. held reports whether
	// the server honoured the wait (it said Preference-Applied), with a
	// document or with ErrNotModified: then the refresher asks again at once
	// instead of sleeping its interval.
	FetchWait(ctx context.Context, etag string, wait time.Duration) (doc Document, held bool, err error)
}

// ErrNotModified is returned by Upstream.Fetch when the document has not
// changed since the one tagged with the given etag.
var ErrNotModified = errors.New("policy not modified")

// ContentTag is the ETag of a document rolecall tags itself: its SHA-256.
func ContentTag(data []byte) string {
	_, tag := ContentSum(data)
	return tag
}

// ContentSum returns the SHA-256 of data and the ContentTag that spells it,
// for upstreams that set Document.SHA256.
func ContentSum(data []byte) ([sha256.Size]byte, string) {
	sum := sha256.Sum256(data)
	return sum, "sha256:" + hex.EncodeToString(sum[:])
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
	sum, tag := ContentSum(data)
	if tag == etag {
		return Document{}, ErrNotModified
	}
	return Document{Data: data, Format: policyfile.JSON, ETag: tag, SHA256: &sum}, nil
}
