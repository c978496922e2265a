// Package bundle is the distribution form of a compiled policy: the binary
// snapshot of package pdp inside an envelope that says which revision it is,
// when and by whom it was published, and, optionally, an Ed25519 signature
// over all of it.
//
// A publisher (rolecall serve with a publish listener, or rolecall policy
// build) seals bundles; a consumer (the http(s) and file upstreams) opens
// them, checks the digest and, when it holds the publisher's public key, the
// signature, and installs the snapshot without parsing or compiling a
// document. The envelope is plain bytes so that any HTTP cache, CDN or object
// store can carry it.
//
// Layout, version 1 (integers are uvarints, times varint Unix nanoseconds,
// strings and byte runs a uvarint length then the bytes):
//
//	"RCBNDL\x00" 0x01        magic, then the envelope format version
//	revision                 the snapshot's policy revision
//	published_at             when the publisher first served this revision
//	publisher                who published it (a host name or configured id)
//	key_id                   the signing key's id, "" when unsigned
//	sha256                   32 bytes: digest of the snapshot
//	snapshot                 the pdp binary snapshot ("RCSNAP…")
//	signature                64 bytes, only when key_id is set: Ed25519 over
//	                         every byte before it
//
// Nothing may follow. A bundle of a newer envelope version is refused with
// ErrNewerVersion, never guessed at.
package bundle
