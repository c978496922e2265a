// Package cache keeps rolecall's last accepted policy document (and, later,
// JWKS key sets) in a single bbolt file, so that the daemon can serve
// decisions immediately after a restart, even while the upstream policy
// source is unreachable.
//
// The file is opened once, at start, with [Open]. A [Cache] is safe for
// concurrent use.
//
// # What is stored
//
// The file holds three buckets:
//
//   - meta: the schema version ("1"), and the revision, ETag, fetch time,
//     format, source and SHA-256 digest of the stored policy document.
//   - policy: the last accepted policy document, byte for byte as fetched.
//   - jwks: one entry per issuer, holding that issuer's key set as fetched
//     and the time it was fetched.
//
// Times are stored in UTC as RFC 3339 with nanoseconds.
//
// # Crash safety
//
// Every write is a single bbolt transaction: [Cache.SavePolicy] writes the
// document and all its metadata together, so a crash or power loss leaves
// either the previous record or the new one, never a mix of the two.
// [Cache.SavePolicy] refuses an empty document, so a bug upstream of the
// cache cannot replace a good policy with nothing.
//
// bbolt checksums only its meta pages, not the data, so the policy document
// is stored with its SHA-256 digest and [Cache.LoadPolicy] returns
// [ErrCorrupt] rather than a document whose bytes changed on disk.
//
// # Corruption
//
// A file that cannot be opened or read as a rolecall cache is moved aside,
// never deleted: it is renamed to path + ".corrupt-" + the UTC time
// (for example "cache.db.corrupt-20260102T150405Z"), a warning naming both
// paths is logged, and a fresh, empty cache is created in its place.
// [Cache.MovedAside] reports the new name of the old file. This covers a
// file that is not a bbolt database, a truncated file, a file that fails
// bbolt's consistency check, and a file written with a schema version this
// build does not know.
//
// A file bbolt reads whose stored document or snapshot no longer matches its
// digest stays in use, since the next save replaces the record; the first
// such load copies the file, as it is, to the same ".corrupt-" name, so that
// the damaged bytes can still be inspected, and its [ErrCorrupt] error names
// the copy.
//
// Failures that say nothing about the file's contents are returned as
// errors and leave the file where it is: a file locked by another process
// ([ErrLocked]) and operating-system errors such as a permission denied or
// a missing directory.
package cache
