package refresh_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
	"github.com/rolecall/rolecall/policygen"
	"github.com/rolecall/rolecall/refresh"
	"github.com/rolecall/rolecall/refresh/internal/refreshtest"
)

// A large document is written to the cache while it compiles, and the save
// names it: the cache then holds exactly the document, and a warm start
// serves it. One that fails to compile leaves its file unnamed, never
// served or loaded, and the next save removes it.
func TestLargeDocumentsAreStagedWhileTheyCompile(t *testing.T) {
	gen := func(seed uint64) []byte {
		data, err := policyfile.MarshalJSON(policygen.Generate(policygen.Options{Seed: seed, Subjects: 40_000, Orgs: 400, Roles: 40, MembershipsPerSubject: 2}))
		if err != nil {
			t.Fatal(err)
		}
		if len(data) < 4<<20 {
			t.Fatalf("the generated document is %d bytes: too small to be large", len(data))
		}
		return data
	}
	v1, v2 := gen(1), gen(2)
	dir := t.TempDir()
	r := &rig{dir: dir, policy: filepath.Join(dir, "policy.json"), engine: &pdp.Engine{}}
	r.cache = refreshtest.OpenCache(t, filepath.Join(dir, "rolecall.db"))
	r.ref = r.refresher(t)
	files := func() []string {
		names, _ := filepath.Glob(r.cache.Path() + ".documents/*.doc")
		for i, n := range names {
			names[i] = filepath.Base(n)
		}
		return names
	}
	docFile := func(data []byte) string {
		sum := sha256.Sum256(data)
		return hex.EncodeToString(sum[:]) + ".doc"
	}
	stored := func(want []byte) {
		t.Helper()
		rec, ok, err := r.cache.LoadPolicy()
		if err != nil || !ok || !bytes.Equal(rec.Document, want) {
			t.Fatalf("the cache holds %d bytes (ok=%v, err=%v), want the %d-byte document", len(rec.Document), ok, err, len(want))
		}
	}

	writeFile(t, r.policy, string(v1))
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	stored(v1)
	if got := files(); len(got) != 1 || got[0] != docFile(v1) {
		t.Fatalf("document files %v, want %s", got, docFile(v1))
	}

	bad := bytes.Replace(v2, []byte(`"type":"user"`), []byte(`"type":"usr"`), 1)
	writeFile(t, r.policy, string(bad))
	var verr *pdp.ValidationError
	if err := r.ref.RefreshOnce(t.Context()); !errors.As(err, &verr) {
		t.Fatalf("refresh of an invalid large document: %v", err)
	}
	if r.revision() != "generated-seed1-s40000-o400-r40-m2" {
		t.Fatalf("served %q after an invalid document", r.revision())
	}
	stored(v1)

	writeFile(t, r.policy, string(v2))
	if err := r.ref.RefreshOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	stored(v2)
	if got := files(); len(got) != 1 || got[0] != docFile(v2) {
		t.Fatalf("document files %v after the next save, want only %s", got, docFile(v2))
	}

	// A new process on the same cache, the upstream gone.
	if err := r.cache.Close(); err != nil {
		t.Fatal(err)
	}
	os.Remove(r.policy)
	r.engine = &pdp.Engine{}
	r.cache = refreshtest.OpenCache(t, filepath.Join(dir, "rolecall.db"))
	r.ref = r.refresher(t)
	if ok, err := r.ref.WarmStart(); err != nil || !ok || r.revision() != "generated-seed2-s40000-o400-r40-m2" {
		t.Fatalf("WarmStart = %v, %v, serving %q", ok, err, r.revision())
	}
}

// An upstream's canonical document carries the digest of its bytes, which
// the refresher takes instead of hashing them again, and is not modified
// when its tag is the one asked with.
func TestCanonicalDocumentCarriesItsDigest(t *testing.T) {
	p := policygen.Generate(policygen.Options{Seed: 1, Subjects: 10, Orgs: 2, Roles: 4})
	doc, err := refresh.CanonicalDocument("test", p, "")
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(doc.Data); doc.SHA256 == nil || *doc.SHA256 != sum || doc.ETag != refresh.ContentTag(doc.Data) {
		t.Fatalf("SHA256 %x, ETag %s; the data's digest is %x", doc.SHA256, doc.ETag, sum)
	}
	if _, err := refresh.CanonicalDocument("test", p, doc.ETag); !errors.Is(err, refresh.ErrNotModified) {
		t.Errorf("the same policy again: %v, want ErrNotModified", err)
	}
}
