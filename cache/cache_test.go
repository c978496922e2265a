package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// openTest opens the cache at path and, when the test ends, closes it and
// runs bbolt's consistency check on the file.
func openTest(t *testing.T, path string) *Cache {
	t.Helper()
	c, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { closeAndCheck(t, c) })
	return c
}

// closeAndCheck closes c (a second Close is harmless) and fails t if the
// file does not pass bbolt's consistency check.
func closeAndCheck(t *testing.T, c *Cache) {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	db, err := bolt.Open(c.Path(), 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Errorf("reopen %s read-only: %v", c.Path(), err)
		return
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("%s: bbolt check: %v", c.Path(), err)
		}
		return nil
	})
	if err != nil {
		t.Errorf("%s: check transaction: %v", c.Path(), err)
	}
}

func tempPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "cache.db")
}

func samplePolicy(rev string) PolicyRecord {
	return PolicyRecord{
		Document:  []byte("roles:\n  - name: admin # " + rev + "\n"),
		Format:    "yaml",
		Revision:  rev,
		ETag:      `W/"` + rev + `"`,
		Source:    "file:/etc/rolecall/policy.yaml",
		FetchedAt: time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.FixedZone("CET", 3600)),
	}
}

func assertPolicy(t *testing.T, got PolicyRecord, want PolicyRecord) {
	t.Helper()
	if !bytes.Equal(got.Document, want.Document) {
		t.Errorf("Document = %q, want %q", got.Document, want.Document)
	}
	if got.Format != want.Format || got.Revision != want.Revision || got.ETag != want.ETag || got.Source != want.Source {
		t.Errorf("metadata = %q %q %q %q, want %q %q %q %q",
			got.Format, got.Revision, got.ETag, got.Source, want.Format, want.Revision, want.ETag, want.Source)
	}
	if !got.FetchedAt.Equal(want.FetchedAt) || got.FetchedAt.Location() != time.UTC {
		t.Errorf("FetchedAt = %v, want %v in UTC", got.FetchedAt, want.FetchedAt)
	}
}

func mustLoadPolicy(t *testing.T, c *Cache) (PolicyRecord, bool) {
	t.Helper()
	r, ok, err := c.LoadPolicy()
	if err != nil {
		t.Fatalf("LoadPolicy: %v", err)
	}
	return r, ok
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	c := openTest(t, tempPath(t))
	if c.MovedAside() != "" {
		t.Errorf("MovedAside() = %q on a new file", c.MovedAside())
	}
	info, err := os.Stat(c.Path())
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("file mode = %v, want no group or other access", perm)
	}
	if _, ok := mustLoadPolicy(t, c); ok {
		t.Error("LoadPolicy on a new cache: ok = true, want false")
	}
}

func TestPolicyRoundTrip(t *testing.T) {
	first, second := samplePolicy("r1"), samplePolicy("r2")
	second.Format, second.ETag, second.Source = "json", "", "https://policy.example/rolecall"
	second.FetchedAt = time.Now()

	tests := []struct {
		name  string
		saves []PolicyRecord
	}{
		{"one save", []PolicyRecord{first}},
		{"second save replaces the first", []PolicyRecord{first, second}},
		{"zero fetch time", []PolicyRecord{{Document: []byte("{}"), Format: "json"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := openTest(t, tempPath(t))
			for _, r := range tt.saves {
				if err := c.SavePolicy(r); err != nil {
					t.Fatalf("SavePolicy: %v", err)
				}
			}
			got, ok := mustLoadPolicy(t, c)
			if !ok {
				t.Fatal("LoadPolicy: ok = false after SavePolicy")
			}
			assertPolicy(t, got, tt.saves[len(tt.saves)-1])
		})
	}
}

func TestLoadPolicyReturnsCopy(t *testing.T) {
	c := openTest(t, tempPath(t))
	want := samplePolicy("r1")
	if err := c.SavePolicy(want); err != nil {
		t.Fatal(err)
	}
	got, _ := mustLoadPolicy(t, c)
	clear(got.Document)
	again, _ := mustLoadPolicy(t, c)
	if !bytes.Equal(again.Document, want.Document) {
		t.Errorf("changing a loaded document changed the cache: %q", again.Document)
	}
}

func TestWarmStart(t *testing.T) {
	path := tempPath(t)
	want := samplePolicy("r1")
	ks := KeySetRecord{Issuer: "https://idp.example", JWKS: []byte(`{"keys":[]}`), FetchedAt: time.Now()}

	c := openTest(t, path)
	if err := c.SavePolicy(want); err != nil {
		t.Fatal(err)
	}
	if err := c.SaveKeySet(ks); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c = openTest(t, path)
	if c.MovedAside() != "" {
		t.Fatalf("MovedAside() = %q after a clean close", c.MovedAside())
	}
	got, ok := mustLoadPolicy(t, c)
	if !ok {
		t.Fatal("policy lost across close and reopen")
	}
	assertPolicy(t, got, want)
	if _, ok, err := c.LoadKeySet(ks.Issuer); err != nil || !ok {
		t.Fatalf("LoadKeySet after reopen: ok = %v, err = %v", ok, err)
	}
}

func TestSavePolicyRefusesEmptyDocument(t *testing.T) {
	for _, doc := range [][]byte{nil, {}} {
		c := openTest(t, tempPath(t))
		want := samplePolicy("good")
		if err := c.SavePolicy(want); err != nil {
			t.Fatal(err)
		}
		empty := samplePolicy("bad")
		empty.Document = doc
		if err := c.SavePolicy(empty); !errors.Is(err, ErrEmptyDocument) {
			t.Errorf("SavePolicy(%#v document) = %v, want ErrEmptyDocument", doc, err)
		}
		got, ok := mustLoadPolicy(t, c)
		if !ok {
			t.Fatal("refused save removed the stored policy")
		}
		assertPolicy(t, got, want)
	}
}

func TestLoadPolicyDetectsChangedDocument(t *testing.T) {
	c := openTest(t, tempPath(t))
	if err := c.SavePolicy(samplePolicy("r1")); err != nil {
		t.Fatal(err)
	}
	// Stands in for bytes changing on disk, which bbolt would not notice.
	err := c.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPolicy).Put(keyDocument, []byte("roles: [everyone-is-admin]\n"))
	})
	if err != nil {
		t.Fatal(err)
	}
	_, ok, err := c.LoadPolicy()
	if !errors.Is(err, ErrCorrupt) || ok {
		t.Fatalf("LoadPolicy = ok %v, err %v; want ErrCorrupt", ok, err)
	}
	// A copy of the damaged file is kept, once, before a save replaces the
	// record; the file itself stays in use.
	copies, _ := filepath.Glob(c.Path() + ".corrupt-*")
	if len(copies) != 1 || !strings.Contains(err.Error(), "a copy of the file is kept at "+copies[0]) {
		t.Fatalf("copies %v; error %v", copies, err)
	}
	kept, err := Open(copies[0], Options{})
	if err != nil {
		t.Fatalf("the kept copy is not a readable cache: %v", err)
	}
	if _, _, err := kept.LoadPolicy(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("the kept copy does not hold the damaged record: %v", err)
	}
	_ = kept.Close()
	if _, _, err := c.LoadPolicy(); !errors.Is(err, ErrCorrupt) || strings.Contains(err.Error(), "kept") {
		t.Errorf("second LoadPolicy: %v; want ErrCorrupt without a second copy", err)
	}
	if err := c.SavePolicy(samplePolicy("r2")); err != nil {
		t.Fatal(err)
	}
	if r, ok, err := c.LoadPolicy(); err != nil || !ok || r.Revision != "r2" {
		t.Errorf("after a save: %v %v %v", r.Revision, ok, err)
	}
}

func TestKeySet(t *testing.T) {
	c := openTest(t, tempPath(t))
	a := KeySetRecord{Issuer: "https://a.example", JWKS: []byte(`{"keys": [ {"kty":"OKP"} ]}`), FetchedAt: time.Now()}
	b := KeySetRecord{Issuer: "https://b.example", JWKS: []byte{0xff, 0x00, '\n'}, FetchedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}
	for _, r := range []KeySetRecord{a, b} {
		if err := c.SaveKeySet(r); err != nil {
			t.Fatalf("SaveKeySet(%s): %v", r.Issuer, err)
		}
	}

	tests := []struct {
		issuer string
		want   *KeySetRecord
	}{
		{a.Issuer, &a},
		{b.Issuer, &b},
		{"https://missing.example", nil},
		{"", nil},
	}
	for _, tt := range tests {
		got, ok, err := c.LoadKeySet(tt.issuer)
		if err != nil {
			t.Errorf("LoadKeySet(%q): %v", tt.issuer, err)
			continue
		}
		if tt.want == nil {
			if ok {
				t.Errorf("LoadKeySet(%q): ok = true for a missing issuer", tt.issuer)
			}
			continue
		}
		if !ok || got.Issuer != tt.want.Issuer || !bytes.Equal(got.JWKS, tt.want.JWKS) ||
			!got.FetchedAt.Equal(tt.want.FetchedAt) || got.FetchedAt.Location() != time.UTC {
			t.Errorf("LoadKeySet(%q) = %+v, %v; want %+v in UTC", tt.issuer, got, ok, *tt.want)
		}
	}

	for _, bad := range []KeySetRecord{{Issuer: "", JWKS: a.JWKS}, {Issuer: a.Issuer}} {
		if err := c.SaveKeySet(bad); !errors.Is(err, ErrEmptyKeySet) {
			t.Errorf("SaveKeySet(%+v) = %v, want ErrEmptyKeySet", bad, err)
		}
	}
	if got, _, _ := c.LoadKeySet(a.Issuer); !bytes.Equal(got.JWKS, a.JWKS) {
		t.Errorf("refused save changed the stored key set to %q", got.JWKS)
	}
}

// writeValidCache leaves a closed cache at path holding a policy of about
// docSize bytes.
func writeValidCache(t *testing.T, path string, docSize int) {
	t.Helper()
	c, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := samplePolicy("r1")
	r.Document = bytes.Repeat([]byte("x"), docSize)
	if err := c.SavePolicy(r); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenMovesUnreadableFileAside(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
	}{
		{"garbage", func(t *testing.T, path string) {
			writeFile(t, path, bytes.Repeat([]byte{0xAB}, 8<<10))
		}},
		{"truncated to 100 bytes", func(t *testing.T, path string) {
			writeValidCache(t, path, 1<<10)
			truncate(t, path, 100)
		}},
		{"truncated to its meta pages", func(t *testing.T, path string) {
			writeValidCache(t, path, 1<<10)
			truncate(t, path, 2*int64(os.Getpagesize()))
		}},
		{"truncated inside the document", func(t *testing.T, path string) {
			writeValidCache(t, path, 64<<10)
			truncate(t, path, 32<<10)
		}},
		{"zeroed after the meta pages", func(t *testing.T, path string) {
			writeValidCache(t, path, 1<<10)
			data := readFile(t, path)
			clear(data[2*os.Getpagesize():])
			writeFile(t, path, data)
		}},
		{"unknown schema version", func(t *testing.T, path string) {
			writeValidCache(t, path, 1<<10)
			updateBolt(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(keySchemaVersion, []byte("2"))
			})
		}},
		{"bbolt file of another program", func(t *testing.T, path string) {
			updateBolt(t, path, func(tx *bolt.Tx) error {
				_, err := tx.CreateBucket([]byte("other"))
				return err
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tempPath(t)
			tt.setup(t, path)
			before := readFile(t, path)

			var logs bytes.Buffer
			c, err := Open(path, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() { closeAndCheck(t, c) })

			moved := c.MovedAside()
			if moved == "" {
				t.Fatal("MovedAside() = \"\", want the new name of the unreadable file")
			}
			if !strings.HasPrefix(moved, path+".corrupt-") {
				t.Errorf("MovedAside() = %q, want prefix %q", moved, path+".corrupt-")
			}
			stamp := strings.TrimPrefix(moved, path+".corrupt-")
			if _, err := time.Parse(movedAsideLayout, stamp); err != nil {
				t.Errorf("moved-aside suffix %q is not a %s timestamp: %v", stamp, movedAsideLayout, err)
			}
			if !bytes.Equal(readFile(t, moved), before) {
				t.Error("moved-aside file does not hold the original bytes")
			}
			if log := logs.String(); !strings.Contains(log, "level=WARN") ||
				!strings.Contains(log, path) || !strings.Contains(log, moved) {
				t.Errorf("log does not warn with both paths:\n%s", log)
			}
			if _, ok := mustLoadPolicy(t, c); ok {
				t.Error("LoadPolicy on the fresh cache: ok = true")
			}
			if err := c.SavePolicy(samplePolicy("r2")); err != nil {
				t.Errorf("SavePolicy on the fresh cache: %v", err)
			}
		})
	}
}

func TestMoveAsideKeepsEarlierFiles(t *testing.T) {
	path := tempPath(t)
	var moved []string
	for i := range 3 {
		writeFile(t, path, bytes.Repeat([]byte{byte(i)}, 8<<10))
		c, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		moved = append(moved, c.MovedAside())
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
	// Usually all three land in the same second; none may replace another.
	for i, m := range moved {
		if got := readFile(t, m); got[0] != byte(i) {
			t.Errorf("%s holds file %d, want file %d", m, got[0], i)
		}
	}
}

func TestOpenLocked(t *testing.T) {
	path := tempPath(t)
	c := openTest(t, path)
	if err := c.SavePolicy(samplePolicy("r1")); err != nil {
		t.Fatal(err)
	}

	// flock locks belong to the open file, not the process, so a second
	// open of the same path in this process contends like another process.
	start := time.Now()
	c2, err := Open(path, Options{Timeout: 50 * time.Millisecond})
	if err == nil {
		c2.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the path", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("second Open took %v with a 50ms timeout", d)
	}
	if aside, _ := filepath.Glob(path + ".corrupt-*"); len(aside) > 0 {
		t.Errorf("locked file was moved aside: %v", aside)
	}
	if _, ok := mustLoadPolicy(t, c); !ok {
		t.Error("first cache lost its policy")
	}
}

func TestOpenLeavesFileOnSystemErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, path string
	}{
		{"path is a directory", dir},
		{"missing directory", filepath.Join(dir, "missing", "cache.db")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := Open(tt.path, Options{}); err == nil {
				c.Close()
				t.Fatal("Open succeeded")
			} else if !strings.Contains(err.Error(), tt.path) {
				t.Errorf("error %q does not name the path", err)
			}
			if aside, _ := filepath.Glob(filepath.Join(dir, "*.corrupt-*")); len(aside) > 0 {
				t.Errorf("moved aside: %v", aside)
			}
		})
	}
}

func BenchmarkLoadPolicy(b *testing.B) {
	c, err := Open(filepath.Join(b.TempDir(), "cache.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := samplePolicy("r1")
	r.Document = bytes.Repeat([]byte("- {role: reader, allow: [get]}\n"), (100<<10)/31)
	if err := c.SavePolicy(r); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(r.Document)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := c.LoadPolicy(); err != nil || !ok {
			b.Fatalf("LoadPolicy: ok = %v, err = %v", ok, err)
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// updateBolt changes the file at path with bbolt directly, bypassing Open.
func updateBolt(t *testing.T, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotTravelsWithItsDocument(t *testing.T) {
	c := openTest(t, filepath.Join(t.TempDir(), "rolecall.db"))
	rec := PolicyRecord{Document: []byte("revision: r1\n"), Format: "yaml", Revision: "r1", Source: "file:/p", FetchedAt: time.Unix(1, 0).UTC(), Snapshot: []byte("binary snapshot")}
	if err := c.SavePolicy(rec); err != nil {
		t.Fatal(err)
	}
	var blob string
	got, ok, err := c.LoadSnapshot(func(b []byte) error { blob = string(b); return nil })
	if err != nil || !ok || blob != "binary snapshot" || got.Document != nil || got.Revision != "r1" {
		t.Fatalf("LoadSnapshot = %+v, %v, %v (blob %q)", got, ok, err, blob)
	}
	sum, err := c.PolicyDigest()
	if err != nil || sum != sha256.Sum256(rec.Document) {
		t.Errorf("PolicyDigest = %x, %v", sum, err)
	}
	// A document saved without a snapshot drops the old one.
	rec.Snapshot, rec.Document, rec.Revision = nil, []byte("revision: r2\n"), "r2"
	if err := c.SavePolicy(rec); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.LoadSnapshot(func([]byte) error { return nil }); ok || err != nil {
		t.Errorf("a snapshot of an older document survived: %v, %v", ok, err)
	}
}

// largePolicy is a record whose document is stored in a file of its own.
func largePolicy(rev string) PolicyRecord {
	r := samplePolicy(rev)
	r.Document = bytes.Repeat([]byte("# "+rev+" padding\n"), LargeDocument/10)
	r.Snapshot = []byte("snapshot of " + rev)
	return r
}

// documentFiles lists the files in the cache's documents directory.
func documentFiles(t *testing.T, c *Cache) []string {
	t.Helper()
	entries, err := os.ReadDir(c.documentsDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// A large document lives in one file beside the cache, named by its digest;
// replacing it, by a large or a small one, leaves no other file behind, and
// the snapshot still travels with it.
func TestLargeDocumentInItsOwnFile(t *testing.T) {
	c := openTest(t, tempPath(t))
	big1, big2, small := largePolicy("r1"), largePolicy("r2"), samplePolicy("r3")
	for _, step := range []struct {
		rec   PolicyRecord
		files int
	}{{big1, 1}, {big2, 1}, {small, 0}, {big1, 1}} {
		if err := c.SavePolicy(step.rec); err != nil {
			t.Fatal(err)
		}
		got, ok := mustLoadPolicy(t, c)
		if !ok {
			t.Fatal("nothing loaded")
		}
		assertPolicy(t, got, step.rec)
		files := documentFiles(t, c)
		if len(files) != step.files {
			t.Fatalf("after saving %s: document files %v, want %d", step.rec.Revision, files, step.files)
		}
		if step.files == 1 {
			sum := sha256.Sum256(step.rec.Document)
			if want := hex.EncodeToString(sum[:]) + ".doc"; files[0] != want {
				t.Fatalf("document file %s, want %s", files[0], want)
			}
		}
		var snap []byte
		if _, ok, err := c.LoadSnapshot(func(b []byte) error { snap = bytes.Clone(b); return nil }); err != nil || ok != (step.rec.Snapshot != nil) || !bytes.Equal(snap, step.rec.Snapshot) {
			t.Fatalf("LoadSnapshot = %q, %v, %v", snap, ok, err)
		}
	}
	// The document is not in the bbolt file.
	closeAndCheck(t, c)
	info, err := os.Stat(c.Path())
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() >= LargeDocument {
		t.Fatalf("the bbolt file is %d bytes: the large document went into it", info.Size())
	}
}

// A document file that changed or went missing is ErrCorrupt, never served;
// a changed one is kept for inspection; the next save replaces it.
func TestLargeDocumentFileDamaged(t *testing.T) {
	for _, damage := range []string{"changed", "missing", "truncated"} {
		t.Run(damage, func(t *testing.T) {
			c := openTest(t, tempPath(t))
			rec := largePolicy("r1")
			if err := c.SavePolicy(rec); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(c.documentsDir(), documentFiles(t, c)[0])
			switch damage {
			case "changed":
				b, _ := os.ReadFile(path)
				b[len(b)/2] ^= 1
				os.WriteFile(path, b, 0o600)
			case "missing":
				os.Remove(path)
			case "truncated":
				os.Truncate(path, 100)
			}
			if _, _, err := c.LoadPolicy(); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("LoadPolicy with the document file %s: %v, want ErrCorrupt", damage, err)
			}
			if damage != "missing" {
				if files := documentFiles(t, c); len(files) != 1 || !strings.Contains(files[0], ".corrupt-") {
					t.Fatalf("files after a damaged read: %v; want the damaged file kept aside", files)
				}
			}
			next := largePolicy("r2")
			if err := c.SavePolicy(next); err != nil {
				t.Fatal(err)
			}
			got, ok := mustLoadPolicy(t, c)
			if !ok {
				t.Fatal("nothing loaded after the replacing save")
			}
			assertPolicy(t, got, next)
		})
	}
}

// A document file a crash left behind without the transaction naming it
// (written, not yet committed) is never read, and the next save removes it.
func TestLargeDocumentOrphanFile(t *testing.T) {
	c := openTest(t, tempPath(t))
	old := samplePolicy("r1")
	if err := c.SavePolicy(old); err != nil {
		t.Fatal(err)
	}
	orphan := largePolicy("r9")
	if _, err := c.writeDocumentFile(sha256.Sum256(orphan.Document), orphan.Document); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(c.documentsDir(), "x.doc.tmp-123"), []byte("half"), 0o600)
	got, _ := mustLoadPolicy(t, c)
	assertPolicy(t, got, old)
	if err := c.SavePolicy(largePolicy("r2")); err != nil {
		t.Fatal(err)
	}
	if files := documentFiles(t, c); len(files) != 1 {
		t.Fatalf("files after a save: %v, want only the new document", files)
	}
}

// A document staged ahead of its save is named, not written again, and
// loads as if saved whole; a staged one no save named goes at the next
// save; a small one is not staged.
func TestStagedDocument(t *testing.T) {
	c := openTest(t, tempPath(t))
	rec := largePolicy("r1")
	st, err := c.StageDocument(rec.Document, sha256.Sum256(rec.Document))
	if err != nil || st == nil {
		t.Fatalf("StageDocument = %v, %v", st, err)
	}
	if files := documentFiles(t, c); len(files) != 1 {
		t.Fatalf("files after staging: %v, want the staged document", files)
	}
	staged := rec
	staged.Document, staged.Staged = nil, st
	if err := c.SavePolicy(staged); err != nil {
		t.Fatal(err)
	}
	got, ok := mustLoadPolicy(t, c)
	if !ok {
		t.Fatal("nothing loaded")
	}
	assertPolicy(t, got, rec)

	// Staged, then never saved: the next save removes it.
	unnamed := largePolicy("r2")
	if _, err := c.StageDocument(unnamed.Document, sha256.Sum256(unnamed.Document)); err != nil {
		t.Fatal(err)
	}
	if err := c.SavePolicy(largePolicy("r3")); err != nil {
		t.Fatal(err)
	}
	if files := documentFiles(t, c); len(files) != 1 {
		t.Fatalf("files after the next save: %v, want only its document", files)
	}
	small := samplePolicy("r4")
	if st, err := c.StageDocument(small.Document, sha256.Sum256(small.Document)); st != nil || err != nil {
		t.Errorf("StageDocument of a small document = %v, %v; want nothing staged", st, err)
	}
}
