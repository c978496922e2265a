package config_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rolecall/rolecall/config"
	"github.com/rolecall/rolecall/policyfile"
)

// The Kubernetes manifest's config and policy must be ones rolecall accepts.
func TestDeployManifestCarriesAValidConfig(t *testing.T) {
	data, err := os.ReadFile("../deploy/kubernetes/rolecall-sidecar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	maps := map[string]map[string]string{}
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
			t.Fatal(err)
		}
		if doc.Kind == "ConfigMap" {
			maps[doc.Metadata.Name] = doc.Data
		}
	}
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "rolecall.yaml")
	if err := os.WriteFile(cfgFile, []byte(maps["rolecall-config"]["rolecall.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	if err := cfg.LoadFile(cfgFile); err != nil {
		t.Fatalf("the manifest's config does not load: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the manifest's config is invalid: %v", err)
	}
	if cfg.Policy.Upstream != "/etc/rolecall/policy/policy.yaml" || cfg.GRPC.UnixSocket == "" {
		t.Errorf("unexpected config: %+v", cfg.Policy)
	}
	if _, err := policyfile.Compile([]byte(maps["rolecall-policy"]["policy.yaml"]), policyfile.YAML); err != nil {
		t.Errorf("the manifest's policy does not compile: %v", err)
	}
}
