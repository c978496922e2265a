package cache

import (
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// schemaVersion is the layout this build reads and writes. A file holding
// any other version is moved aside rather than guessed at.
const schemaVersion = "1"

// movedAsideLayout is the UTC timestamp appended to a moved-aside file.
const movedAsideLayout = "20060102T150405Z"

const defaultTimeout = time.Second

var (
	bucketMeta   = []byte("meta")
	bucketPolicy = []byte("policy")
	bucketJWKS   = []byte("jwks")

	keySchemaVersion = []byte("schema_version")
)

// Options configures [Open]. The zero value is ready to use.
type Options struct {
	// Timeout is how long to wait for the file lock; zero or negative means
	// one second. A file still locked after that is an error ([ErrLocked]),
	// not a reason to move the file aside: the lock means another rolecall
	// is using it.
	Timeout time.Duration

	// Logger receives the warning when a file is moved aside. Nil discards.
	Logger *slog.Logger
}

// Cache is an open cache file. It is safe for concurrent use.
type Cache struct {
	db         *bolt.DB
	path       string
	movedAside string
	// keptCopy is set once a damaged record's file has been copied aside.
	keptCopy atomic.Bool
}

// Open opens the cache file at path, creating it (mode 0600) and its buckets
// if needed. A file that cannot be read as a rolecall cache is moved aside
// and replaced by an empty one; see the package documentation.
func Open(path string, opts Options) (*Cache, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = defaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}

	db, err := openDB(path, opts.Timeout)
	if err == nil {
		return &Cache{db: db, path: path}, nil
	}
	if !errors.Is(err, errUnreadable) {
		return nil, err
	}

	moved, mvErr := moveAside(path)
	if mvErr != nil {
		return nil, errors.Join(err, mvErr)
	}
	opts.Logger.Warn("cache file unreadable, moved aside; starting with an empty cache",
		"path", path, "moved_to", moved, "error", err)

	// Only one retry: a fresh file that is unreadable at once points at a
	// problem that moving more files aside would not fix.
	db, err = openDB(path, opts.Timeout)
	if err != nil {
		return nil, fmt.Errorf("cache: after moving unreadable file to %s: %w", moved, err)
	}
	return &Cache{db: db, path: path, movedAside: moved}, nil
}

// Path returns the path the cache was opened with.
func (c *Cache) Path() string { return c.path }

// MovedAside returns the path an unreadable file was moved to by [Open], or
// "" if the file was opened as it was.
func (c *Cache) MovedAside() string { return c.movedAside }

// Close closes the file and releases its lock.
func (c *Cache) Close() error {
	if err := c.db.Close(); err != nil {
		return fmt.Errorf("cache: close %s: %w", c.path, err)
	}
	return nil
}

// errUnreadable marks errors from openDB that mean the file's contents are
// bad, which is what makes Open move the file aside.
var errUnreadable = errors.New("unreadable cache file")

// openDB opens and verifies the file, then creates whatever buckets are
// missing.
//
// bbolt reads the file through a memory map and trusts what it finds: a
// damaged file makes it panic, and a page beyond the end of a truncated file
// makes the process take a fault, which Go would otherwise treat as fatal.
// Both are turned into errUnreadable here so that a bad file costs a moved
// file, not a daemon that crashes on every start.
func openDB(path string, timeout time.Duration) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))

	// Kept so that a panic inside bolt.Open, which returns no *DB to close,
	// does not leave the file descriptor, and with it the lock, behind. The
	// memory map bbolt made by then cannot be released without the *DB; that
	// small leak happens only for a bad file, at most twice per Open.
	var file *os.File
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if db != nil {
			_ = db.Close()
		} else if file != nil {
			_ = file.Close()
		}
		db, err = nil, fmt.Errorf("cache: open %s: %w: bbolt panicked: %v", path, errUnreadable, r)
	}()

	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout: timeout,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			file = f
			return f, err
		},
	})
	if err != nil {
		return nil, fmt.Errorf("cache: open %s: %w", path, classifyOpenError(err))
	}

	if err := verify(db, path); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("cache: open %s: %w", path, err)
	}
	if err := db.Update(initBuckets); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("cache: initialise %s: %w", path, err)
	}
	// Verifying read every page of the memory map, which would otherwise
	// stay counted in the process's resident memory: reopen, so that only
	// the pages rolecall reads later are mapped in. The kernel keeps its page
	// cache either way.
	if err := db.Close(); err != nil {
		return nil, fmt.Errorf("cache: reopen %s: %w", path, err)
	}
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("cache: reopen %s: %w", path, classifyOpenError(err))
	}
	return db, nil
}

// classifyOpenError tells a lock held elsewhere, and operating-system errors
// that say nothing about the file's contents (permission denied, missing
// directory, path is a directory), apart from everything else bbolt reports
// about a file it cannot use: invalid or mismatched meta pages, a file too
// small to be a database, and so on.
func classifyOpenError(err error) error {
	if errors.Is(err, berrors.ErrTimeout) {
		return fmt.Errorf("%w: %w", ErrLocked, err)
	}
	if _, ok := errors.AsType[syscall.Errno](err); ok {
		return err
	}
	return fmt.Errorf("%w: %w", errUnreadable, err)
}

// verify checks, read-only, that db is a rolecall cache this build can use.
// An empty database (a new file) passes; initBuckets then sets it up.
func verify(db *bolt.DB, path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	return db.View(func(tx *bolt.Tx) error {
		// Checked first because reading a page past the end of the file
		// faults instead of failing.
		if tx.Size() > info.Size() {
			return fmt.Errorf("%w: truncated: file has %d bytes, database needs %d",
				errUnreadable, info.Size(), tx.Size())
		}

		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			if k, _ := tx.Cursor().First(); k != nil {
				return fmt.Errorf("%w: bbolt file without a %q bucket is not a rolecall cache", errUnreadable, bucketMeta)
			}
			return nil
		}
		if v := meta.Get(keySchemaVersion); string(v) != schemaVersion {
			return fmt.Errorf("%w: unknown schema version %q (this build reads %q)", errUnreadable, v, schemaVersion)
		}

		// Touch every page in this goroutine, where a fault is recovered,
		// before tx.Check reads them again in a goroutine of its own.
		_ = touchAll(tx.Cursor(), 0)
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return fmt.Errorf("%w: consistency check failed: %w", errUnreadable, errors.Join(errs...))
		}
		return nil
	})
}

// touchAll reads every key and value reachable from c, descending into
// nested buckets. The checksum is only there so the reads are real work the
// compiler keeps; the caller drops it.
func touchAll(c *bolt.Cursor, sum uint32) uint32 {
	for k, v := c.First(); k != nil; k, v = c.Next() {
		sum = crc32.Update(sum, crc32.IEEETable, k)
		if v != nil {
			sum = crc32.Update(sum, crc32.IEEETable, v)
		} else if b := c.Bucket().Bucket(k); b != nil {
			sum = touchAll(b.Cursor(), sum)
		}
	}
	return sum
}

// initBuckets creates the buckets and schema version a new file lacks. It
// changes nothing in a file that already has them.
func initBuckets(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	for _, name := range [][]byte{bucketPolicy, bucketJWKS} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	if meta.Get(keySchemaVersion) == nil {
		return meta.Put(keySchemaVersion, []byte(schemaVersion))
	}
	return nil
}

// moveAside renames the file at path to a ".corrupt-" name that does not
// exist yet, so that a second bad file in the same second does not replace
// the first.
func moveAside(path string) (string, error) {
	dst := corruptName(path)
	if err := os.Rename(path, dst); err != nil {
		return "", fmt.Errorf("cache: move unreadable %s aside: %w", path, err)
	}
	return dst, nil
}

// corruptName returns a ".corrupt-<time>" name next to path that does not
// exist yet.
func corruptName(path string) string {
	base := path + ".corrupt-" + time.Now().UTC().Format(movedAsideLayout)
	dst := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(dst); err != nil {
			return dst
		}
		dst = fmt.Sprintf("%s.%d", base, i)
	}
}

// corrupt reports a damaged record found in tx: bbolt reads the file, but a
// stored record's bytes changed. The first time, it copies the file as tx
// sees it to a ".corrupt-<time>" name, so that the evidence outlives the
// next save, which replaces the record. The returned error wraps
// [ErrCorrupt] and names the copy.
func (c *Cache) corrupt(tx *bolt.Tx, what string) error {
	err := fmt.Errorf("%w: %s", ErrCorrupt, what)
	if !c.keptCopy.CompareAndSwap(false, true) {
		return err
	}
	dst := corruptName(c.path)
	f, ferr := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if ferr == nil {
		_, ferr = tx.WriteTo(f)
		if cerr := f.Close(); ferr == nil {
			ferr = cerr
		}
	}
	if ferr != nil {
		_ = os.Remove(dst)
		return fmt.Errorf("%w (a copy for inspection could not be kept: %v)", err, ferr)
	}
	return fmt.Errorf("%w; a copy of the file is kept at %s", err, dst)
}
