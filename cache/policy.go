package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/rolecall/rolecall/internal/atomicfile"
)

var (
	keyDocument  = []byte("document")
	keyRevision  = []byte("revision")
	keyETag      = []byte("etag")
	keyFetchedAt = []byte("fetched_at")
	keyFormat    = []byte("format")
	keySource    = []byte("source")
	keySHA256    = []byte("sha256")
	keySnapshot  = []byte("snapshot")
	keySnapSHA   = []byte("snapshot_sha256")
	// keyDocumentFile names the file holding a large document, in the
	// documents directory beside the cache file, instead of keyDocument.
	keyDocumentFile = []byte("document_file")
)

// LargeDocument is the size from which a document is stored in a file of
// its own beside the cache file (<cache>.documents/<sha256>.doc), written
// and synced before the transaction that names it: a bbolt commit would
// copy it into freshly allocated pages, a transient as large as the
// document, at the moment a refresh holds two policies already.
const LargeDocument = 1 << 20

// PolicyRecord is a policy document as fetched, with what is known about it.
type PolicyRecord struct {
	Document  []byte    // the policy document exactly as fetched
	Format    string    // "yaml" or "json"
	Revision  string    // the document's revision
	ETag      string    // the upstream's ETag, if any
	Source    string    // where it came from, e.g. "file:/etc/rolecall/policy.yaml"
	FetchedAt time.Time // stored in UTC with nanosecond precision
	// Snapshot is the compiled policy in binary form (pdp's MarshalBinary),
	// optional: it lets a restart skip compiling a very large document.
	// Saved and loaded with the document, under a digest of its own.
	Snapshot []byte
	// Staged is the document written by StageDocument, for SavePolicy to
	// name; Document may then be nil. SavePolicy ignores it on load.
	Staged *StagedDocument
}

// StagedDocument is a large document written to its file ahead of the
// SavePolicy that names it.
type StagedDocument struct {
	file string
	sum  [sha256.Size]byte
}

// StageDocument writes a document of LargeDocument bytes or more to its
// file, synced, ahead of SavePolicy: a caller can write it while it compiles
// the document, and let the bytes go before it marshals and stores the
// compiled snapshot, the moment a refresh holds the most. sum is the
// document's SHA-256, which the caller has at hand: hashing a hundred
// megabytes again costs a third of a second. A smaller document is not
// staged (nil, nil): SavePolicy stores it in its transaction. A staged file
// that no SavePolicy names is removed by the next one.
func (c *Cache) StageDocument(doc []byte, sum [sha256.Size]byte) (*StagedDocument, error) {
	if len(doc) < LargeDocument {
		return nil, nil
	}
	file, err := c.writeDocumentFile(sum, doc)
	if err != nil {
		return nil, fmt.Errorf("cache: stage policy document beside %s: %w", c.path, err)
	}
	return &StagedDocument{file: file, sum: sum}, nil
}

// SavePolicy replaces the stored policy record with r, document and
// metadata in one transaction. An empty document is refused with
// [ErrEmptyDocument] and the stored record is kept. A document staged by
// StageDocument is named rather than written.
func (c *Cache) SavePolicy(r PolicyRecord) error {
	var (
		sum  [sha256.Size]byte
		file string
	)
	switch {
	case r.Staged != nil:
		sum, file = r.Staged.sum, r.Staged.file
	case len(r.Document) == 0:
		return fmt.Errorf("cache: save policy to %s: %w", c.path, ErrEmptyDocument)
	default:
		sum = sha256.Sum256(r.Document)
		if len(r.Document) >= LargeDocument {
			var err error
			if file, err = c.writeDocumentFile(sum, r.Document); err != nil {
				return fmt.Errorf("cache: save policy to %s: %w", c.path, err)
			}
		}
	}
	err := c.db.Update(func(tx *bolt.Tx) error {
		meta, policy := tx.Bucket(bucketMeta), tx.Bucket(bucketPolicy)
		if file != "" {
			if err := policy.Delete(keyDocument); err != nil {
				return err
			}
			if err := meta.Put(keyDocumentFile, []byte(file)); err != nil {
				return err
			}
		} else {
			if err := policy.Put(keyDocument, r.Document); err != nil {
				return fmt.Errorf("put %s: %w", keyDocument, err)
			}
			if err := meta.Delete(keyDocumentFile); err != nil {
				return err
			}
		}
		puts := []struct {
			b    *bolt.Bucket
			k, v []byte
		}{
			{meta, keySHA256, sum[:]},
			{meta, keyFormat, []byte(r.Format)},
			{meta, keyRevision, []byte(r.Revision)},
			{meta, keyETag, []byte(r.ETag)},
			{meta, keySource, []byte(r.Source)},
			{meta, keyFetchedAt, []byte(r.FetchedAt.UTC().Format(time.RFC3339Nano))},
		}
		for _, p := range puts {
			if err := p.b.Put(p.k, p.v); err != nil {
				return fmt.Errorf("put %s: %w", p.k, err)
			}
		}
		// A snapshot belongs to this document only: without one, any older
		// snapshot goes.
		if len(r.Snapshot) == 0 {
			if err := policy.Delete(keySnapshot); err != nil {
				return err
			}
			return meta.Delete(keySnapSHA)
		}
		snapSum := sha256.Sum256(r.Snapshot)
		if err := policy.Put(keySnapshot, r.Snapshot); err != nil {
			return fmt.Errorf("put snapshot: %w", err)
		}
		return meta.Put(keySnapSHA, snapSum[:])
	})
	if err != nil {
		return fmt.Errorf("cache: save policy to %s: %w", c.path, err)
	}
	c.removeDocumentFiles(file)
	return nil
}

// LoadPolicy returns the stored policy record, or ok == false and a nil
// error if none has been saved. The record does not share memory with the
// cache. A document that does not match its stored digest, or metadata that
// cannot be decoded, is reported as [ErrCorrupt].
func (c *Cache) LoadPolicy() (r PolicyRecord, ok bool, err error) {
	err = c.db.View(func(tx *bolt.Tx) error {
		meta, policy := tx.Bucket(bucketMeta), tx.Bucket(bucketPolicy)
		doc := policy.Get(keyDocument)
		inline := doc != nil
		if !inline {
			name := meta.Get(keyDocumentFile)
			if name == nil {
				return nil
			}
			var err error
			if doc, err = c.readDocumentFile(string(name), meta.Get(keySHA256)); err != nil {
				return err
			}
		}
		if sum := sha256.Sum256(doc); inline && !bytes.Equal(meta.Get(keySHA256), sum[:]) {
			return c.corrupt(tx, "policy document does not match its SHA-256 digest")
		}
		if r, err = readMeta(meta); err != nil {
			return err
		}
		// bbolt's memory is only valid inside the transaction.
		if inline {
			doc = bytes.Clone(doc)
		}
		r.Document = doc
		ok = true
		return nil
	})
	if err != nil {
		return PolicyRecord{}, false, fmt.Errorf("cache: load policy from %s: %w", c.path, err)
	}
	return r, ok, nil
}

// LoadSnapshot decodes the stored binary snapshot with decode, straight from
// the cache's memory (decode must copy what it keeps), and returns the policy
// record without its document, so that a restart need not read and hash a
// large document it will not compile. ok is false when no snapshot is stored;
// a snapshot that does not match its digest is [ErrCorrupt]; decode's error
// is returned as it is.
func (c *Cache) LoadSnapshot(decode func(snapshot []byte) error) (r PolicyRecord, ok bool, err error) {
	err = c.db.View(func(tx *bolt.Tx) error {
		meta, policy := tx.Bucket(bucketMeta), tx.Bucket(bucketPolicy)
		snap := policy.Get(keySnapshot)
		if snap == nil || (policy.Get(keyDocument) == nil && meta.Get(keyDocumentFile) == nil) {
			return nil
		}
		if sum := sha256.Sum256(snap); !bytes.Equal(meta.Get(keySnapSHA), sum[:]) {
			return c.corrupt(tx, "policy snapshot does not match its SHA-256 digest")
		}
		if r, err = readMeta(meta); err != nil {
			return err
		}
		if err := decode(snap); err != nil {
			return err
		}
		ok = true
		return nil
	})
	if err != nil {
		return PolicyRecord{}, false, fmt.Errorf("cache: load policy snapshot from %s: %w", c.path, err)
	}
	return r, ok, nil
}

// PolicyDigest returns the SHA-256 of the stored document, as recorded when
// it was saved, without reading the document.
func (c *Cache) PolicyDigest() (sum [sha256.Size]byte, err error) {
	err = c.db.View(func(tx *bolt.Tx) error {
		if n := copy(sum[:], tx.Bucket(bucketMeta).Get(keySHA256)); n != sha256.Size {
			return fmt.Errorf("%w: no document digest", ErrCorrupt)
		}
		return nil
	})
	return sum, err
}

// readMeta reads the policy's metadata; string conversions copy out of
// bbolt's memory.
func readMeta(meta *bolt.Bucket) (PolicyRecord, error) {
	fetchedAt, err := time.Parse(time.RFC3339Nano, string(meta.Get(keyFetchedAt)))
	if err != nil {
		return PolicyRecord{}, fmt.Errorf("%w: policy fetched_at: %w", ErrCorrupt, err)
	}
	return PolicyRecord{
		Format:    string(meta.Get(keyFormat)),
		Revision:  string(meta.Get(keyRevision)),
		ETag:      string(meta.Get(keyETag)),
		Source:    string(meta.Get(keySource)),
		FetchedAt: fetchedAt,
	}, nil
}

// documentsDir is where large documents are kept.
func (c *Cache) documentsDir() string { return c.path + ".documents" }

// writeDocumentFile writes doc, named by its digest, to the documents
// directory, synced with the directory, so that the transaction naming it
// never names a file a crash left incomplete. It returns the file's name.
func (c *Cache) writeDocumentFile(sum [sha256.Size]byte, doc []byte) (string, error) {
	dir := c.documentsDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	name := hex.EncodeToString(sum[:]) + ".doc"
	return name, atomicfile.Write(filepath.Join(dir, name), doc, 0o600, true)
}

// readDocumentFile reads the named document file and checks it against its
// stored digest. A missing or changed file is ErrCorrupt; a changed one is
// renamed to a ".corrupt-<time>" name, kept for inspection.
func (c *Cache) readDocumentFile(name string, want []byte) ([]byte, error) {
	if name != filepath.Base(name) || !strings.HasSuffix(name, ".doc") {
		return nil, fmt.Errorf("%w: document file name %q", ErrCorrupt, name)
	}
	path := filepath.Join(c.documentsDir(), name)
	doc, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: policy document file: %w", ErrCorrupt, err)
	}
	if sum := sha256.Sum256(doc); !bytes.Equal(want, sum[:]) {
		kept := corruptName(path)
		if err := os.Rename(path, kept); err != nil {
			kept = path
		}
		return nil, fmt.Errorf("%w: policy document file %s does not match its SHA-256 digest; kept at %s", ErrCorrupt, path, kept)
	}
	return doc, nil
}

// removeDocumentFiles removes the document files other than keep (the one
// just stored, or none): replaced ones, and ones a crash left unnamed.
// Files kept as corrupt are left alone.
func (c *Cache) removeDocumentFiles(keep string) {
	entries, err := os.ReadDir(c.documentsDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		if n := e.Name(); n != keep && (strings.HasSuffix(n, ".doc") || strings.Contains(n, ".doc.tmp-")) {
			_ = os.Remove(filepath.Join(c.documentsDir(), n))
		}
	}
}
