package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rolecall/rolecall/bundle"
	"github.com/rolecall/rolecall/pdp"
)

// keypair runs policy keygen into dir and returns the two files' paths.
func keypair(t *testing.T, dir, name string) (priv, pub string) {
	t.Helper()
	priv, pub = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".pub.pem")
	if code, _, errOut := runCmd(t, "policy", "keygen", "--private", priv, "--public", pub); code != 0 {
		t.Fatalf("keygen: exit %d, %s", code, errOut)
	}
	return priv, pub
}

func TestPolicyBuildThenInspect(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "policy.snap")
	before := time.Now()
	code, stdout, errOut := runCmd(t, "policy", "build", bookstore, "-o", out)
	if code != 0 || stdout != "" {
		t.Fatalf("build: exit %d, stdout %q, stderr %q", code, stdout, errOut)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	wantSummary := "wrote " + out + ": revision bookstore-2026-11-20.1 (5 resources, 8 roles, 3 organizations, 8 subjects), " +
		strconv.Itoa(len(data)) + " bytes, unsigned\n"
	if errOut != wantSummary {
		t.Errorf("build's summary:\n got %q\nwant %q", errOut, wantSummary)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("the bundle's mode is %v (%v), want 0644", fi.Mode().Perm(), err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) != 0 {
		t.Errorf("build left temporary files: %q", left)
	}

	// What the bundle holds is the compiled bookstore, as published now by
	// the default publisher.
	b, err := bundle.Open(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Revision != "bookstore-2026-11-20.1" || b.Publisher != "rolecall policy build" || b.KeyID != "" ||
		b.PublishedAt.Before(before.Add(-time.Second)) || b.PublishedAt.After(time.Now()) || b.PublishedAt.Location() != time.UTC {
		t.Errorf("bundle meta = %+v, key %q", b.Meta, b.KeyID)
	}
	snap, err := pdp.UnmarshalSnapshot(b.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.Counts(); got != (pdp.Counts{Resources: 5, Roles: 8, Organizations: 3, Subjects: 8}) {
		t.Errorf("counts = %+v", got)
	}

	// inspect says the same, as text and as JSON.
	code, stdout, errOut = runCmd(t, "policy", "inspect", out)
	for _, want := range []string{
		"revision:      bookstore-2026-11-20.1\n",
		"published_at:  " + b.PublishedAt.Format(time.RFC3339) + "\n",
		"publisher:     rolecall policy build\n",
		"key_id:        none (unsigned)\n",
		"verified:      no (unsigned)\n",
		"snapshot:      " + strconv.Itoa(len(b.Snapshot)) + " bytes\n",
		"counts:        5 resources, 8 roles, 3 organizations, 8 subjects\n",
	} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("inspect: exit %d, stderr %q, stdout:\n%s\nwant a line %q", code, errOut, stdout, want)
		}
	}
	code, stdout, _ = runCmd(t, "policy", "inspect", "--json", out)
	var info bundleInfo
	if err := json.Unmarshal([]byte(stdout), &info); code != 0 || err != nil {
		t.Fatalf("inspect --json: exit %d, %v: %q", code, err, stdout)
	}
	if info.Revision != b.Revision || info.Verified || info.KeyID != "" || info.SnapshotBytes != len(b.Snapshot) ||
		info.Counts.Subjects != 8 || !strings.HasPrefix(info.Digest, "sha256:") || len(info.Digest) != len("sha256:")+64 {
		t.Errorf("inspect --json = %+v", info)
	}
	if pa, err := time.Parse(time.RFC3339Nano, info.PublishedAt); err != nil || !pa.Equal(b.PublishedAt) {
		t.Errorf("inspect --json published_at = %q, want %v", info.PublishedAt, b.PublishedAt)
	}

	// The same policy compiles to the same snapshot: the digest is the
	// content's identity.
	again := filepath.Join(dir, "again.snap")
	if code, _, errOut := runCmd(t, "policy", "build", "--publisher", "ci", bookstore, "-o", again); code != 0 {
		t.Fatalf("second build: exit %d, %s", code, errOut)
	}
	data2, _ := os.ReadFile(again)
	b2, err := bundle.Open(data2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b2.Digest != b.Digest || b2.Publisher != "ci" {
		t.Errorf("a second build: digest %x publisher %q; want digest %x publisher ci", b2.Digest, b2.Publisher, b.Digest)
	}
}

func TestPolicyBuildSigned(t *testing.T) {
	dir := t.TempDir()
	priv, pub := keypair(t, dir, "sign")
	_, otherPub := keypair(t, dir, "other")
	out := filepath.Join(dir, "policy.snap")
	code, _, errOut := runCmd(t, "policy", "build", bookstore, "-o", out, "--sign-key", priv)
	if code != 0 {
		t.Fatalf("build --sign-key: exit %d, %s", code, errOut)
	}
	k, err := bundle.LoadPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if want := "signed with " + bundle.KeyID(k) + "\n"; !strings.HasSuffix(errOut, want) {
		t.Errorf("build's summary %q does not end in %q", errOut, want)
	}

	code, stdout, errOut := runCmd(t, "policy", "inspect", out, "--public-key", pub)
	if code != 0 || !strings.Contains(stdout, "verified:      yes\n") || !strings.Contains(stdout, "key_id:        "+bundle.KeyID(k)+"\n") {
		t.Errorf("inspect with the signing key's public key: exit %d, stderr %q, stdout:\n%s", code, errOut, stdout)
	}
	code, stdout, _ = runCmd(t, "policy", "inspect", out)
	if code != 0 || !strings.Contains(stdout, "verified:      no (signature not checked: no --public-key)\n") {
		t.Errorf("inspect without a public key: exit %d, stdout:\n%s", code, stdout)
	}
	code, stdout, errOut = runCmd(t, "policy", "inspect", out, "--public-key", otherPub)
	if code != 1 || stdout != "" || !strings.Contains(errOut, "signature does not verify") {
		t.Errorf("inspect with another key: exit %d, stdout %q, stderr %q; want exit 1 and the signature error", code, stdout, errOut)
	}

	// An unsigned bundle is refused when a public key is required.
	unsigned := filepath.Join(dir, "unsigned.snap")
	if code, _, errOut := runCmd(t, "policy", "build", bookstore, "-o", unsigned); code != 0 {
		t.Fatalf("build: exit %d, %s", code, errOut)
	}
	if code, _, errOut := runCmd(t, "policy", "inspect", unsigned, "--public-key", pub); code != 1 || !strings.Contains(errOut, "not signed") {
		t.Errorf("inspect of an unsigned bundle with a public key: exit %d, %q", code, errOut)
	}

	// A public key is no signing key.
	if code, _, errOut := runCmd(t, "policy", "build", bookstore, "-o", filepath.Join(dir, "x.snap"), "--sign-key", pub); code != 2 || !strings.Contains(errOut, `want "PRIVATE KEY"`) {
		t.Errorf("build --sign-key with a public key: exit %d, %q", code, errOut)
	}
}

func TestPolicyBuildInvalidPolicy(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(`
resources: [{id: orders, actions: [read]}]
roles:
  - {id: a, type: user, permissions: [{resource: orders, actions: [wrte]}]}
subjects: [{id: s, roles: [ghost]}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "policy.snap")
	code, stdout, errOut := runCmd(t, "policy", "build", bad, "-o", out)
	_, lintOut, _ := runCmd(t, "policy", "lint", bad)
	want := bad + `: roles[0].permissions[0].actions[0]: action "wrte" is not defined on resource "orders"
` + bad + `: subjects[0].roles[0]: role "ghost" is not defined
`
	if code != 1 || stdout != "" || errOut != want || lintOut != want {
		t.Errorf("build of an invalid policy: exit %d, stdout %q\n got: %s\nwant: %s\n(lint: %s)", code, stdout, errOut, want, lintOut)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("build of an invalid policy left files: %v", entries)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no output", []string{bookstore}, 2, "-o: say where"},
		{"no input", []string{"-o", out}, 2, "name one policy file"},
		{"two inputs", []string{bookstore, bookstore, "-o", out}, 2, "name one policy file"},
		{"missing input", []string{filepath.Join(dir, "missing.yaml"), "-o", out}, 2, "missing.yaml"},
		{"missing key", []string{bookstore, "-o", out, "--sign-key", filepath.Join(dir, "nokey.pem")}, 2, "nokey.pem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCmd(t, append([]string{"policy", "build"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errOut, tc.msg) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errOut, tc.code, tc.msg)
			}
		})
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed build wrote %s", out)
	}
}

func TestPolicyBuildToStdout(t *testing.T) {
	code, stdout, errOut := runCmd(t, "policy", "build", bookstore, "-o", "-")
	if code != 0 {
		t.Fatalf("build -o -: exit %d, %s", code, errOut)
	}
	b, err := bundle.Open([]byte(stdout), nil)
	if err != nil {
		t.Fatalf("standard output is not a bundle: %v", err)
	}
	if b.Revision != "bookstore-2026-11-20.1" {
		t.Errorf("revision %q", b.Revision)
	}
	if !strings.HasPrefix(errOut, "wrote the bundle to standard output: revision bookstore-2026-11-20.1 ") {
		t.Errorf("summary %q", errOut)
	}
}

func TestPolicyKeygen(t *testing.T) {
	dir := t.TempDir()
	priv, pub := keypair(t, dir, "sign")
	for path, mode := range map[string]os.FileMode{priv: 0o600, pub: 0o644} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode().Perm(), err, mode)
		}
	}
	k, err := bundle.LoadPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := bundle.LoadPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Equal(k.Public()) {
		t.Error("the public key is not the private key's")
	}
	privBefore, _ := os.ReadFile(priv)

	// Existing files stay, whichever of the two exists.
	for _, args := range [][]string{
		{"--private", priv, "--public", pub},
		{"--private", filepath.Join(dir, "new.pem"), "--public", pub},
		{"--private", priv, "--public", filepath.Join(dir, "new.pub.pem")},
	} {
		code, _, errOut := runCmd(t, append([]string{"policy", "keygen"}, args...)...)
		if code != 2 || !strings.Contains(errOut, "already exists") || !strings.Contains(errOut, "--force") {
			t.Errorf("keygen %q over an existing file: exit %d, %q", args, code, errOut)
		}
	}
	if got, _ := os.ReadFile(priv); !bytes.Equal(got, privBefore) {
		t.Error("a refused keygen changed the private key")
	}
	for _, name := range []string{"new.pem", "new.pub.pem"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("a refused keygen wrote %s", name)
		}
	}

	// --force replaces both.
	if code, _, errOut := runCmd(t, "policy", "keygen", "--private", priv, "--public", pub, "--force"); code != 0 {
		t.Fatalf("keygen --force: exit %d, %s", code, errOut)
	}
	if got, _ := os.ReadFile(priv); bytes.Equal(got, privBefore) {
		t.Error("keygen --force kept the old private key")
	}
	if fi, err := os.Stat(priv); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("after --force the private key's mode is %v (%v)", fi.Mode().Perm(), err)
	}

	if code, _, _ := runCmd(t, "policy", "keygen", "--private", priv); code != 2 {
		t.Errorf("keygen without --public: exit %d, want 2", code)
	}
}

func TestPolicyInspectDamagedBundle(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "policy.snap")
	if code, _, errOut := runCmd(t, "policy", "build", bookstore, "-o", out); code != 0 {
		t.Fatalf("build: exit %d, %s", code, errOut)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flipped := bytes.Clone(data)
	flipped[len(flipped)-10] ^= 0xff
	for _, tc := range []struct {
		name, file, msg string
	}{
		{"truncated", write("truncated.snap", data[:len(data)/2]), "invalid policy bundle: snapshot: truncated"},
		{"damaged", write("damaged.snap", flipped), "does not match its SHA-256 digest"},
		{"a policy document", bookstore, "not a rolecall policy bundle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, errOut := runCmd(t, "policy", "inspect", tc.file)
			if code != 1 || stdout != "" || !strings.Contains(errOut, tc.file+": ") || !strings.Contains(errOut, tc.msg) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 naming the file and %q", code, stdout, errOut, tc.msg)
			}
		})
	}
	if code, _, errOut := runCmd(t, "policy", "inspect", filepath.Join(dir, "missing.snap")); code != 2 || !strings.Contains(errOut, "missing.snap") {
		t.Errorf("inspect of a missing file: exit %d, %q", code, errOut)
	}
}
