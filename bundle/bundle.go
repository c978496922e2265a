package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// MediaType is the HTTP content type of a bundle.
const MediaType = "application/vnd.rolecall.snapshot"

// Version is the envelope format this package writes and reads.
const Version = 1

var magic = []byte("RCBNDL\x00")

// Errors that Open wraps, for errors.Is.
var (
	// ErrBad is every reason a bundle is malformed: truncated, damaged,
	// not a bundle at all.
	ErrBad = errors.New("invalid policy bundle")
	// ErrNewerVersion is a bundle written by a newer rolecall in an
	// envelope format this one cannot read.
	ErrNewerVersion = errors.New("policy bundle format is newer than this rolecall reads")
	// ErrUnsigned is an unsigned bundle opened with a public key.
	ErrUnsigned = errors.New("policy bundle is not signed")
	// ErrSignature is a bundle whose signature does not verify with the
	// public key: signed by another key, or altered after signing.
	ErrSignature = errors.New("policy bundle signature does not verify")
)

// Meta is what the envelope says about the snapshot it carries.
type Meta struct {
	// Revision is the policy revision, the same as the snapshot's.
	Revision string
	// PublishedAt is when the publisher first served this revision.
	// Consumers refuse a bundle older than the one they serve (a replay or
	// a stale cache) and measure propagation delay from it.
	PublishedAt time.Time
	// Publisher names who published the bundle, for status and logs.
	Publisher string
}

// Bundle is an opened bundle.
type Bundle struct {
	Meta
	// KeyID is the id of the key that signed the bundle, "" when unsigned.
	KeyID string
	// Verified is set when Open checked the signature with a public key.
	Verified bool
	// Snapshot is the pdp binary snapshot; it aliases the opened data.
	Snapshot []byte
	// Digest is the snapshot's SHA-256: the content's identity, equal for
	// every publisher that compiled the same policy.
	Digest [sha256.Size]byte
}

// IsBundle reports whether data starts like a bundle of any version.
func IsBundle(data []byte) bool { return bytes.HasPrefix(data, magic) }

// Seal wraps snapshot (pdp's MarshalBinary) in an envelope with m, signed
// with key when key is not nil.
func Seal(snapshot []byte, m Meta, key ed25519.PrivateKey) ([]byte, error) {
	if len(snapshot) == 0 {
		return nil, errors.New("bundle: empty snapshot")
	}
	if key != nil && len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("bundle: an Ed25519 private key is %d bytes, not %d", ed25519.PrivateKeySize, len(key))
	}
	keyID := ""
	if key != nil {
		keyID = KeyID(key.Public().(ed25519.PublicKey))
	}
	sum := sha256.Sum256(snapshot)
	out := make([]byte, 0, len(snapshot)+len(m.Revision)+len(m.Publisher)+len(keyID)+160)
	out = append(out, magic...)
	out = append(out, Version)
	out = appendString(out, m.Revision)
	out = binary.AppendVarint(out, m.PublishedAt.UnixNano())
	out = appendString(out, m.Publisher)
	out = appendString(out, keyID)
	out = append(out, sum[:]...)
	out = binary.AppendUvarint(out, uint64(len(snapshot)))
	out = append(out, snapshot...)
	if key != nil {
		out = append(out, ed25519.Sign(key, out)...)
	}
	return out, nil
}

// Open reads a bundle and checks its digest. With a public key it also
// requires a signature by that key: an unsigned bundle is ErrUnsigned, a
// wrong one ErrSignature. Without a key a signature is not checked. The
// snapshot itself is not decoded: that is pdp.UnmarshalSnapshot's job.
func Open(data []byte, pub ed25519.PublicKey) (*Bundle, error) {
	if !IsBundle(data) || len(data) == len(magic) {
		return nil, fmt.Errorf("%w: not a rolecall policy bundle", ErrBad)
	}
	if v := data[len(magic)]; v != Version {
		if v > Version {
			return nil, fmt.Errorf("%w: %w: envelope version %d, this rolecall reads version %d; upgrade rolecall", ErrBad, ErrNewerVersion, v, Version)
		}
		return nil, fmt.Errorf("%w: envelope version %d is not read by this rolecall (version %d)", ErrBad, v, Version)
	}
	r := reader{buf: data[len(magic)+1:]}
	b := &Bundle{}
	b.Revision = r.str("revision")
	nanos := r.varint("published_at")
	b.Publisher = r.str("publisher")
	b.KeyID = r.str("key_id")
	copy(b.Digest[:], r.bytes("sha256", sha256.Size))
	b.Snapshot = r.bytes("snapshot", int(min(r.uvarint("snapshot length"), uint64(len(data)))))
	signedLen := len(data) - len(r.buf)
	var sig []byte
	if b.KeyID != "" {
		sig = r.bytes("signature", ed25519.SignatureSize)
	}
	if r.err == nil && len(r.buf) != 0 {
		r.err = fmt.Errorf("%d bytes after the end", len(r.buf))
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBad, r.err)
	}
	if sha256.Sum256(b.Snapshot) != b.Digest {
		return nil, fmt.Errorf("%w: the snapshot does not match its SHA-256 digest (damaged in transit or storage)", ErrBad)
	}
	b.PublishedAt = time.Unix(0, nanos).UTC()
	if pub == nil {
		return b, nil
	}
	if b.KeyID == "" {
		return nil, fmt.Errorf("%w: a public key is configured, so only bundles signed with it (key %s) are accepted", ErrUnsigned, KeyID(pub))
	}
	if b.KeyID != KeyID(pub) {
		return nil, fmt.Errorf("%w: signed with key %s, but the configured public key is %s", ErrSignature, b.KeyID, KeyID(pub))
	}
	if !ed25519.Verify(pub, data[:signedLen], sig) {
		return nil, fmt.Errorf("%w: with key %s (altered after signing?)", ErrSignature, b.KeyID)
	}
	b.Verified = true
	return b, nil
}

// KeyID names a public key in bundles, logs and status: "ed25519:" and the
// first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return fmt.Sprintf("ed25519:%x", sum[:8])
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// reader decodes; the first problem sticks in err, naming the field.
type reader struct {
	buf []byte
	err error
}

func (r *reader) uvarint(field string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.err = fmt.Errorf("%s: truncated or overlong number", field)
		return 0
	}
	if n != len(binary.AppendUvarint(nil, v)) {
		r.err = fmt.Errorf("%s: a number not in its shortest form", field)
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *reader) varint(field string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.buf)
	if n <= 0 {
		r.err = fmt.Errorf("%s: truncated or overlong number", field)
		return 0
	}
	if n != len(binary.AppendVarint(nil, v)) {
		r.err = fmt.Errorf("%s: a number not in its shortest form", field)
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *reader) bytes(field string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.buf) {
		r.err = fmt.Errorf("%s: truncated (%d bytes, want %d)", field, len(r.buf), n)
		return nil
	}
	b := r.buf[:n:n]
	r.buf = r.buf[n:]
	return b
}

func (r *reader) str(field string) string {
	n := r.uvarint(field)
	if r.err == nil && n > 64<<10 {
		r.err = fmt.Errorf("%s: %d bytes is longer than any %s", field, n, field)
	}
	return string(r.bytes(field, int(n)))
}
