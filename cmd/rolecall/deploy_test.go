package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Every rolecall config in the Kubernetes examples is one "rolecall config
// check" accepts. (deploy/ tests the manifests around them; config/ tests
// rolecall-sidecar.yaml's config and policy in more detail.)
func TestDeployManifestConfigsCheck(t *testing.T) {
	manifests, err := filepath.Glob("../../deploy/kubernetes/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, file := range manifests {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc struct {
				Kind     string
				Metadata struct{ Name string }
				Data     map[string]string
			}
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			text, ok := doc.Data["rolecall.yaml"]
			if doc.Kind != "ConfigMap" || !ok {
				continue
			}
			found++
			cfg := filepath.Join(t.TempDir(), "rolecall.yaml")
			if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			if code, out, errOut := runCmd(t, "config", "check", cfg); code != 0 {
				t.Errorf("%s, ConfigMap %s: config check exit %d:\n%s%s", filepath.Base(file), doc.Metadata.Name, code, out, errOut)
			}
		}
	}
	if found < 3 {
		t.Errorf("found %d rolecall configs in deploy/kubernetes, want one per manifest (3)", found)
	}
}
