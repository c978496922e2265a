package bundle_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rolecall/rolecall/bundle"
)

var (
	snapshot = []byte("RCSNAP\x00\x01 pretend compiled policy")
	meta     = bundle.Meta{Revision: "r7", PublishedAt: time.Date(2026, 12, 2, 10, 0, 0, 123456789, time.UTC), Publisher: "hub-0"}
)

func key(t testing.TB, seed byte) ed25519.PrivateKey {
	t.Helper()
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  ed25519.PrivateKey
	}{{"unsigned", nil}, {"signed", key(t, 1)}} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := bundle.Seal(snapshot, meta, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			if !bundle.IsBundle(data) {
				t.Fatal("IsBundle = false for a sealed bundle")
			}
			var pub ed25519.PublicKey
			if tc.key != nil {
				pub = tc.key.Public().(ed25519.PublicKey)
			}
			b, err := bundle.Open(data, pub)
			if err != nil {
				t.Fatal(err)
			}
			if b.Meta != meta || !bytes.Equal(b.Snapshot, snapshot) || b.Verified != (tc.key != nil) {
				t.Fatalf("Open = %+v, want meta %+v, the snapshot, verified %v", b, meta, tc.key != nil)
			}
			if (b.KeyID != "") != (tc.key != nil) {
				t.Fatalf("KeyID = %q", b.KeyID)
			}
		})
	}
}

// The digest names the content, not the envelope: two publishers of the
// same snapshot at different times give the same digest.
func TestDigestIsTheContents(t *testing.T) {
	a, _ := bundle.Seal(snapshot, meta, nil)
	later := meta
	later.PublishedAt = later.PublishedAt.Add(time.Second)
	later.Publisher = "hub-1"
	b, _ := bundle.Seal(snapshot, later, key(t, 2))
	ba, err := bundle.Open(a, nil)
	if err != nil {
		t.Fatal(err)
	}
	bb, err := bundle.Open(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ba.Digest != bb.Digest {
		t.Fatal("same snapshot, different digests")
	}
}

func TestRefused(t *testing.T) {
	k1, k2 := key(t, 1), key(t, 2)
	unsigned, _ := bundle.Seal(snapshot, meta, nil)
	signed, _ := bundle.Seal(snapshot, meta, k1)
	tampered := bytes.Clone(signed)
	tampered[len(magicAndVersion())+1] ^= 'x' // inside the revision: still well formed
	newer := bytes.Clone(unsigned)
	newer[7] = bundle.Version + 1
	damaged := bytes.Clone(unsigned)
	damaged[len(damaged)-3] ^= 0xff // inside the snapshot

	pub1, pub2 := k1.Public().(ed25519.PublicKey), k2.Public().(ed25519.PublicKey)
	for _, tc := range []struct {
		name string
		data []byte
		pub  ed25519.PublicKey
		is   error
		msg  string
	}{
		{"not a bundle", []byte("<html>hello</html>"), nil, bundle.ErrBad, "not a rolecall policy bundle"},
		{"empty", nil, nil, bundle.ErrBad, "not a rolecall policy bundle"},
		{"newer version", newer, nil, bundle.ErrNewerVersion, "envelope version 2, this rolecall reads version 1; upgrade rolecall"},
		{"damaged snapshot", damaged, nil, bundle.ErrBad, "does not match its SHA-256 digest"},
		{"trailing bytes", append(bytes.Clone(unsigned), 0), nil, bundle.ErrBad, "1 bytes after the end"},
		{"unsigned with a key", unsigned, pub1, bundle.ErrUnsigned, "only bundles signed with it"},
		{"another key", signed, pub2, bundle.ErrSignature, "signed with key " + bundle.KeyID(pub1)},
		{"altered after signing", tampered, pub1, bundle.ErrSignature, "altered after signing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := bundle.Open(tc.data, tc.pub)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Open = %v, want %v containing %q", err, tc.is, tc.msg)
			}
		})
	}
}

func magicAndVersion() []byte { return []byte("RCBNDL\x00\x01") }

// Every truncation is an error, never a panic or a shorter snapshot.
func TestTruncated(t *testing.T) {
	signed, _ := bundle.Seal(snapshot, meta, key(t, 1))
	for n := range len(signed) {
		if _, err := bundle.Open(signed[:n], nil); !errors.Is(err, bundle.ErrBad) {
			t.Fatalf("Open(first %d of %d bytes) = %v, want ErrBad", n, len(signed), err)
		}
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	priv, pub, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	privPath, pubPath := filepath.Join(dir, "sign.pem"), filepath.Join(dir, "verify.pem")
	os.WriteFile(privPath, priv, 0o600)
	os.WriteFile(pubPath, pub, 0o644)
	sk, err := bundle.LoadPrivateKey(privPath)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := bundle.LoadPublicKey(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := bundle.Seal(snapshot, meta, sk)
	if _, err := bundle.Open(data, pk); err != nil {
		t.Fatalf("a bundle signed with the generated key does not open with its public key: %v", err)
	}
	// Each loader names what it wanted when given the other file.
	if _, err := bundle.LoadPrivateKey(pubPath); err == nil || !strings.Contains(err.Error(), `want "PRIVATE KEY"`) {
		t.Fatalf("LoadPrivateKey(public key) = %v", err)
	}
	if _, err := bundle.LoadPublicKey(privPath); err == nil || !strings.Contains(err.Error(), `want "PUBLIC KEY"`) {
		t.Fatalf("LoadPublicKey(private key) = %v", err)
	}
	os.WriteFile(pubPath, []byte("not pem"), 0o644)
	if _, err := bundle.LoadPublicKey(pubPath); err == nil || !strings.Contains(err.Error(), "no PEM block") {
		t.Fatalf("LoadPublicKey(garbage) = %v", err)
	}
}

func FuzzOpen(f *testing.F) {
	unsigned, _ := bundle.Seal(snapshot, meta, nil)
	signed, _ := bundle.Seal(snapshot, meta, key(f, 1))
	f.Add(unsigned)
	f.Add(signed)
	f.Add([]byte("RCBNDL\x00\x01"))
	pub := key(f, 1).Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := bundle.Open(data, nil)
		if err != nil {
			return
		}
		// What opens re-seals to the same bytes when unsigned.
		if b.KeyID == "" {
			again, err := bundle.Seal(b.Snapshot, b.Meta, nil)
			if err != nil || !bytes.Equal(again, data) {
				t.Fatalf("re-sealing an opened bundle gave other bytes (%v)", err)
			}
		}
		if vb, err := bundle.Open(data, pub); err == nil && !vb.Verified {
			t.Fatal("opened with a key but not verified")
		}
	})
}
