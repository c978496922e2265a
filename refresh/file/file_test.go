package file_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rolecall/rolecall/bundle"
	"github.com/rolecall/rolecall/refresh"
	"github.com/rolecall/rolecall/refresh/file"
)

func TestFileUpstreamTagsContent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.json")
	if err := os.WriteFile(path, []byte(`{"revision": "j"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	up := file.New(path)
	doc, err := up.Fetch(t.Context(), "")
	if err != nil || doc.Format != "json" || string(doc.Data) != `{"revision": "j"}` {
		t.Fatalf("Fetch = %+v, %v", doc, err)
	}
	// The digest the refresher takes instead of hashing again is the data's.
	if sum := sha256.Sum256(doc.Data); doc.SHA256 == nil || *doc.SHA256 != sum || doc.ETag != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("SHA256 %x and ETag %s for data whose digest is %x", doc.SHA256, doc.ETag, sum)
	}
	if _, err := up.Fetch(t.Context(), doc.ETag); !errors.Is(err, refresh.ErrNotModified) {
		t.Errorf("Fetch of the same content: err = %v, want ErrNotModified", err)
	}
	// Rewriting identical bytes moves the modification time but is no change.
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, future, future); err != nil {
		t.Fatal(err)
	}
	if _, err := up.Fetch(t.Context(), doc.ETag); !errors.Is(err, refresh.ErrNotModified) {
		t.Errorf("Fetch after touching the file: err = %v, want ErrNotModified", err)
	}
	if _, err := file.New(dir).Fetch(t.Context(), ""); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Fetch of a directory: err = %v", err)
	}
}

// A published bundle is a snapshot whatever the file is called: the file
// upstream knows it by its magic bytes.
func TestFileUpstreamReportsABundleAsASnapshot(t *testing.T) {
	data, err := bundle.Seal([]byte("RCSNAP\x00\x01 pretend compiled policy"), bundle.Meta{Revision: "r1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"policy.snap", "policy.yaml", "policy"} {
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		doc, err := file.New(path).Fetch(t.Context(), "")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if doc.Format != refresh.FormatSnapshot || !bytes.Equal(doc.Data, data) {
			t.Errorf("%s: Fetch = format %q, %d bytes; want %q and the bundle's %d bytes", name, doc.Format, len(doc.Data), refresh.FormatSnapshot, len(data))
		}
	}
}
