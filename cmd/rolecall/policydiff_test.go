package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// diffCase is one case of testdata/policydiff.yaml.
type diffCase struct {
	Name           string
	Old, New       yaml.Node
	OldFile        string `yaml:"old_file"`
	NewFile        string `yaml:"new_file"`
	Args           []string
	Code           int
	Stdout, Stderr string
}

func TestPolicyDiffCases(t *testing.T) {
	data, err := os.ReadFile("testdata/policydiff.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct{ Cases []diffCase }
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range file.Cases {
		t.Run(c.Name, func(t *testing.T) {
			dir := t.TempDir()
			path := func(name, rel string, inline any) string {
				if rel != "" {
					return filepath.Join("testdata", rel)
				}
				out, err := yaml.Marshal(inline)
				if err != nil {
					t.Fatal(err)
				}
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, out, 0o644); err != nil {
					t.Fatal(err)
				}
				return p
			}
			args := append([]string{"policy", "diff", path("old.yaml", c.OldFile, c.Old), path("new.yaml", c.NewFile, c.New)}, c.Args...)
			code, stdout, stderr := runCmd(t, args...)
			stderr = strings.ReplaceAll(stderr, dir+string(filepath.Separator), "")
			if code != c.Code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, c.Code, stderr)
			}
			if stdout != c.Stdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, c.Stdout)
			}
			if stderr != c.Stderr {
				t.Errorf("stderr:\n%s\nwant:\n%s", stderr, c.Stderr)
			}
		})
	}
}

// TestPolicyDiffAgainst compares with a policy fetched over HTTP, as from
// a publish listener: a bundle (built by policy build, signed) and a
// document.
func TestPolicyDiffAgainst(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "sign.pem"), filepath.Join(dir, "sign.pub.pem")
	snap := filepath.Join(dir, "policy.snap")
	for _, args := range [][]string{
		{"policy", "keygen", "--private", priv, "--public", pub},
		{"policy", "build", bookstore, "-o", snap, "--sign-key", priv},
	} {
		if code, _, stderr := runCmd(t, args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
	}
	bundleBytes, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	var gotToken []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotToken = append(gotToken, r.Header.Get("Authorization"))
		if r.URL.Path != "/v1/policy" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.rolecall.snapshot")
		w.Write(bundleBytes)
	}))
	defer srv.Close()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runCmd(t, "policy", "diff", "--against", srv.URL, "--bearer-token-file", tokenFile, "--public-key", pub, "--summary", "../../examples/bookstore-next.yaml")
	if code != 1 || !strings.Contains(stdout, "grants: 8 gained, 8 lost (31 before, 31 after)") {
		t.Fatalf("against the published bundle: exit %d\n%s%s", code, stdout, stderr)
	}
	if len(gotToken) != 1 || gotToken[0] != "Bearer s3cret" {
		t.Errorf("the publish listener was asked with Authorization %q, want one request with the bearer token", gotToken)
	}
	// --public-key accepts only bundles signed with it.
	unsigned := filepath.Join(dir, "unsigned.snap")
	if code, _, stderr := runCmd(t, "policy", "build", bookstore, "-o", unsigned); code != 0 {
		t.Fatalf("policy build: exit %d: %s", code, stderr)
	}
	code, _, stderr = runCmd(t, "policy", "diff", "--against", srv.URL, "--public-key", pub, unsigned)
	if code != 2 || !strings.Contains(stderr, "unsigned.snap: ") || !strings.Contains(stderr, "signed") {
		t.Errorf("an unsigned bundle with --public-key: exit %d, stderr %s", code, stderr)
	}
	code, stdout, _ = runCmd(t, "policy", "diff", "--against", srv.URL, unsigned)
	if code != 0 || !strings.Contains(stdout, "grants: 0 gained, 0 lost") {
		t.Errorf("the published bundle against the same policy unsigned: exit %d\n%s", code, stdout)
	}
	code, _, stderr = runCmd(t, "policy", "diff", "--against", srv.URL+"/elsewhere", bookstore)
	if code != 2 || !strings.Contains(stderr, "404") {
		t.Errorf("a missing policy: exit %d, stderr %s", code, stderr)
	}
	code, _, stderr = runCmd(t, "policy", "diff", "--against", srv.URL, bookstore, bookstore)
	if code != 2 || !strings.Contains(stderr, "with --against, name one policy file") {
		t.Errorf("two files with --against: exit %d, stderr %s", code, stderr)
	}
	code, _, stderr = runCmd(t, "policy", "diff", bookstore)
	if code != 2 || !strings.Contains(stderr, "name two policy files") {
		t.Errorf("one file: exit %d, stderr %s", code, stderr)
	}
}
