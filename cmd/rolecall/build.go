package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rolecall/rolecall/bundle"
	"github.com/rolecall/rolecall/internal/atomicfile"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
)

// defaultPublisher names bundles that rolecall policy build made, unless
// --publisher says otherwise.
const defaultPublisher = "rolecall policy build"

func buildBundle(args []string, sio stdio) error {
	fs := newFlags("policy build", "policy build FILE -o OUT [--sign-key KEY.pem] [--publisher NAME]",
		`Compile a policy document (YAML or JSON) into a bundle: the compiled snapshot
that sidecars install without compiling, in an envelope naming its revision,
when and by whom it was published, signed with --sign-key when given. Upload
the bundle to an object store or CDN and point sidecars at it with
--upstream https://…/policy.snap. The document is validated exactly as
"rolecall policy lint" does; an invalid one prints every problem (to standard
error), writes nothing and exits 1. OUT is replaced atomically; "-o -" writes
the bundle to standard output. A summary goes to standard error.`,
		`  rolecall policy build examples/bookstore.yaml -o policy.snap --sign-key sign.pem`,
		sio.err)
	var out string
	fs.StringVar(&out, "o", "", "write the bundle to this `file` (\"-\" for standard output); required")
	fs.StringVar(&out, "out", "", "write the bundle to this `file`: the same as -o")
	signKey := fs.String("sign-key", "", "sign the bundle with the Ed25519 private key in this PEM `file` (from rolecall policy keygen)")
	publisher := fs.String("publisher", defaultPublisher, "the publisher's `name` in the bundle, for the consumers' status and logs")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return usageError("name one policy file")
	}
	if out == "" {
		return usageError("-o: say where to write the bundle (\"-\" for standard output)")
	}
	path := files[0]
	// The key first: a bad key path should not wait for a large compile.
	var key ed25519.PrivateKey
	if *signKey != "" {
		if key, err = bundle.LoadPrivateKey(*signKey); err != nil {
			return err
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	snap, err := policyfile.Compile(data, policyfile.DetectFormat(path, data))
	if err != nil {
		printProblems(sio.err, path, err)
		return &exitErr{code: exitDeny, err: errSilent}
	}
	bin, err := snap.MarshalBinary()
	if err != nil {
		return err
	}
	sealed, err := bundle.Seal(bin, bundle.Meta{
		Revision:    snap.Revision(),
		PublishedAt: time.Now().UTC(),
		Publisher:   *publisher,
	}, key)
	if err != nil {
		return err
	}
	where := out
	if out == "-" {
		where = "the bundle to standard output"
		_, err = sio.out.Write(sealed)
	} else {
		err = writeFileAtomic(out, sealed, 0o644, true)
	}
	if err != nil {
		return err
	}
	signed := "unsigned"
	if key != nil {
		signed = "signed with " + bundle.KeyID(key.Public().(ed25519.PublicKey))
	}
	c := snap.Counts()
	fmt.Fprintf(sio.err, "wrote %s: revision %s (%s), %d bytes, %s\n",
		where, snap.Revision(), countsText(c), len(sealed), signed)
	return nil
}

func countsText(c pdp.Counts) string {
	return fmt.Sprintf("%d resources, %d roles, %d organizations, %d subjects", c.Resources, c.Roles, c.Organizations, c.Subjects)
}

func keygen(args []string, sio stdio) error {
	fs := newFlags("policy keygen", "policy keygen --private sign.pem --public verify.pem [--force]",
		`Make an Ed25519 key pair for signing policy bundles: the private key (PKCS #8
PEM, mode 0600) for "rolecall policy build --sign-key" and
"rolecall serve --publish-sign-key", the public key (PKIX PEM) for the
consumers' --policy-public-key. The same formats as
"openssl genpkey -algorithm ed25519". Existing files are never replaced
unless --force is given.`,
		`  rolecall policy keygen --private sign.pem --public verify.pem`,
		sio.err)
	privPath := fs.String("private", "", "write the private key to this `file`; required")
	pubPath := fs.String("public", "", "write the public key to this `file`; required")
	force := fs.Bool("force", false, "replace existing files")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected arguments %q", fs.Args())
	}
	if *privPath == "" || *pubPath == "" {
		return usageError("name both files: --private FILE --public FILE")
	}
	if filepath.Clean(*privPath) == filepath.Clean(*pubPath) {
		return usageError("--private and --public name the same file")
	}
	if !*force {
		// Check both before writing either, so a refusal leaves nothing
		// half done; writeFileAtomic still refuses a file created since.
		for _, p := range []string{*privPath, *pubPath} {
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("%s already exists; not replacing a key (use --force to replace it)", p)
			}
		}
	}
	priv, pub, err := bundle.GenerateKey()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(*privPath, priv, 0o600, *force); err != nil {
		return err
	}
	if err := writeFileAtomic(*pubPath, pub, 0o644, *force); err != nil {
		return err
	}
	k, err := bundle.LoadPublicKey(*pubPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(sio.err, "wrote private key %s and public key %s: key id %s\n", *privPath, *pubPath, bundle.KeyID(k))
	return nil
}

// bundleInfo is what inspect prints.
type bundleInfo struct {
	Revision      string `json:"revision"`
	PublishedAt   string `json:"published_at"`
	Publisher     string `json:"publisher"`
	KeyID         string `json:"key_id"`
	Verified      bool   `json:"verified"`
	SnapshotBytes int    `json:"snapshot_bytes"`
	Digest        string `json:"digest"`
	Counts        struct {
		Resources     int `json:"resources"`
		Roles         int `json:"roles"`
		Organizations int `json:"organizations"`
		Subjects      int `json:"subjects"`
	} `json:"counts"`
}

func inspectBundle(args []string, sio stdio) error {
	fs := newFlags("policy inspect", "policy inspect FILE.snap [--public-key verify.pem] [--json]",
		`Open a policy bundle (from rolecall policy build, or a hub's GET /v1/policy
with Accept: application/vnd.rolecall.snapshot), check its digest and decode
its snapshot, and print its revision, when and by whom it was published, the
signing key, whether the signature was verified, its size, digest and counts.
With --public-key the bundle must be signed by that key, as a consumer with
--policy-public-key requires. Exit code: 0 when it opens (and verifies), 1 when
it does not, 2 when the file cannot be read.`,
		`  rolecall policy inspect policy.snap --public-key verify.pem`,
		sio.err)
	pubPath := fs.String("public-key", "", "require a signature by the Ed25519 public key in this PEM `file`")
	asJSON := fs.Bool("json", false, "print as JSON")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return usageError("name one bundle file")
	}
	var pub ed25519.PublicKey
	if *pubPath != "" {
		if pub, err = bundle.LoadPublicKey(*pubPath); err != nil {
			return err
		}
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		return err
	}
	b, snap, err := openBundle(files[0], data, pub)
	if err != nil {
		return &exitErr{code: exitDeny, err: err}
	}
	info := bundleInfo{
		Revision:      b.Revision,
		PublishedAt:   b.PublishedAt.Format(time.RFC3339Nano),
		Publisher:     b.Publisher,
		KeyID:         b.KeyID,
		Verified:      b.Verified,
		SnapshotBytes: len(b.Snapshot),
		Digest:        "sha256:" + hex.EncodeToString(b.Digest[:]),
	}
	c := snap.Counts()
	info.Counts.Resources, info.Counts.Roles, info.Counts.Organizations, info.Counts.Subjects = c.Resources, c.Roles, c.Organizations, c.Subjects
	if *asJSON {
		enc := json.NewEncoder(sio.out)
		return enc.Encode(info)
	}
	keyID, verified := b.KeyID, "yes"
	switch {
	case b.KeyID == "":
		keyID, verified = "none (unsigned)", "no (unsigned)"
	case !b.Verified:
		verified = "no (signature not checked: no --public-key)"
	}
	fmt.Fprintf(sio.out, `revision:      %s
published_at:  %s
publisher:     %s
key_id:        %s
verified:      %s
snapshot:      %d bytes
digest:        %s
counts:        %s
`, info.Revision, b.PublishedAt.Format(time.RFC3339), info.Publisher, keyID, verified, info.SnapshotBytes, info.Digest, countsText(c))
	return nil
}

// openBundle opens the bundle in data, checking its signature with pub when
// given, and decodes its snapshot; errors name the bundle by name.
func openBundle(name string, data []byte, pub ed25519.PublicKey) (*bundle.Bundle, *pdp.Snapshot, error) {
	b, err := bundle.Open(data, pub)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	snap, err := pdp.UnmarshalSnapshot(b.Snapshot)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: the bundle's snapshot: %w", name, err)
	}
	if snap.Revision() != b.Revision {
		return nil, nil, fmt.Errorf("%s: the envelope says revision %q, its snapshot %q", name, b.Revision, snap.Revision())
	}
	return b, snap, nil
}

// writeFileAtomic writes data to path atomically; with replace false an
// existing path is refused.
func writeFileAtomic(path string, data []byte, perm os.FileMode, replace bool) error {
	err := atomicfile.Write(path, data, perm, replace)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s already exists; not replacing it (use --force to replace it)", path)
	}
	return err
}
