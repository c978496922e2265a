// Package refreshtest holds the helpers the tests of refresh and of its
// upstream packages share.
package refreshtest

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/rolecall/rolecall/cache"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
	"github.com/rolecall/rolecall/refresh"
)

// GoodV1 is a small valid policy document, revision v1.
const GoodV1 = `
revision: v1
resources: [{id: orders, actions: [read, write]}]
roles: [{id: reader, type: user, permissions: [{resource: orders, actions: [read]}]}]
subjects: [{id: alice, roles: [reader]}]
`

// OpenCache opens the cache at path and closes it when the test ends.
func OpenCache(t *testing.T, path string) *cache.Cache {
	t.Helper()
	c, err := cache.Open(path, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// ParseDoc checks that doc is a canonical JSON document tagged with its
// SHA-256 and returns the policy it holds.
func ParseDoc(t *testing.T, doc refresh.Document) *pdp.Policy {
	t.Helper()
	if doc.Format != policyfile.JSON {
		t.Errorf("format = %q, want json", doc.Format)
	}
	sum := sha256.Sum256(doc.Data)
	if want := "sha256:" + hex.EncodeToString(sum[:]); doc.ETag != want {
		t.Errorf("etag = %q, want %q (the SHA-256 of the document)", doc.ETag, want)
	}
	p, err := policyfile.Parse(doc.Data, doc.Format)
	if err != nil {
		t.Fatalf("the document does not parse: %v\n%s", err, doc.Data)
	}
	return p
}
