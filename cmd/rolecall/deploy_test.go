package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// manifestDocs decodes every YAML document of the Kubernetes examples with
// decode, which gets the file's name and a function filling its argument.
func manifestDocs(t *testing.T, decode func(file string, into func(any))) {
	t.Helper()
	manifests, err := filepath.Glob("../../deploy/kubernetes/*.yaml")
	if err != nil || len(manifests) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes (%v)", err)
	}
	for _, file := range manifests {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var node yaml.Node
			if err := dec.Decode(&node); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			decode(filepath.Base(file), func(v any) {
				if err := node.Decode(v); err != nil {
					t.Fatalf("%s: %v", file, err)
				}
			})
		}
	}
}

// Every rolecall config in the Kubernetes examples is one "rolecall config
// check" accepts. (deploy/ tests the manifests around them; config/ tests
// rolecall-sidecar.yaml's config and policy in more detail.)
func TestDeployManifestConfigsCheck(t *testing.T) {
	found := 0
	manifestDocs(t, func(file string, into func(any)) {
		var doc struct {
			Kind     string
			Metadata struct{ Name string }
			Data     map[string]string
		}
		into(&doc)
		text, ok := doc.Data["rolecall.yaml"]
		if doc.Kind != "ConfigMap" || !ok {
			return
		}
		found++
		cfg := filepath.Join(t.TempDir(), "rolecall.yaml")
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if code, out, errOut := runCmd(t, "config", "check", cfg); code != 0 {
			t.Errorf("%s, ConfigMap %s: config check exit %d:\n%s%s", file, doc.Metadata.Name, code, out, errOut)
		}
	})
	if found < 3 {
		t.Errorf("found %d rolecall configs in deploy/kubernetes, want one per manifest (3)", found)
	}
}

// Every flag the rolecall containers of the Kubernetes examples pass is one
// "rolecall serve" defines.
func TestDeployManifestArgsAreServeFlags(t *testing.T) {
	code, _, help := runCmd(t, "serve", "--help")
	if code != 0 {
		t.Fatalf("serve --help: exit %d", code)
	}
	defined := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([\w-]+)`).FindAllStringSubmatch(help, -1) {
		defined[m[1]] = true
	}
	if !defined["config"] || !defined["upstream"] {
		t.Fatalf("could not read serve's flags from its help:\n%s", help)
	}
	containers := 0
	manifestDocs(t, func(file string, into func(any)) {
		var doc struct {
			Kind string
			Spec struct {
				Template struct {
					Spec struct {
						Containers []struct {
							Name string
							Args []string
						}
					}
				}
			}
		}
		into(&doc)
		if doc.Kind != "Deployment" {
			return
		}
		for _, c := range doc.Spec.Template.Spec.Containers {
			if c.Name != "rolecall" {
				continue
			}
			containers++
			if len(c.Args) == 0 || c.Args[0] != "serve" {
				t.Errorf("%s: rolecall's args %q do not start with serve", file, c.Args)
				continue
			}
			for _, a := range c.Args[1:] {
				name, ok := strings.CutPrefix(a, "--")
				if !ok {
					continue
				}
				name, _, _ = strings.Cut(name, "=")
				if !defined[name] {
					t.Errorf("%s: rolecall serve has no flag --%s", file, name)
				}
			}
		}
	})
	if containers < 3 {
		t.Errorf("found %d rolecall containers in deploy/kubernetes, want 3", containers)
	}
}
