package cache

import "errors"

// Errors returned by this package. They are wrapped, with the file's path,
// so test for them with [errors.Is].
var (
	// ErrLocked is returned by [Open] when another process (or another
	// [Cache] in this process) holds the file's lock for longer than
	// [Options.Timeout]. The file is left untouched.
	ErrLocked = errors.New("cache file is locked by another process")

	// ErrEmptyDocument is returned by [Cache.SavePolicy] for a record with
	// an empty document; the stored record is left unchanged.
	ErrEmptyDocument = errors.New("refusing to store an empty policy document")

	// ErrEmptyKeySet is returned by [Cache.SaveKeySet] for a record with an
	// empty issuer or an empty key set; the stored record is left unchanged.
	ErrEmptyKeySet = errors.New("refusing to store a key set with an empty issuer or JWKS")

	// ErrCorrupt is returned when a stored record cannot be decoded or its
	// document does not match its stored digest.
	ErrCorrupt = errors.New("cache record is corrupt")
)
