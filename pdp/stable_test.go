package pdp_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
	"github.com/rolecall/rolecall/policygen"
)

// The binary form of a compiled policy does not change between releases of
// rolecall that share a snapshot format version: a hub and its sidecars, or
// two hub replicas, running different releases during an upgrade must agree
// on a policy's digest, or every sidecar would see each replica's bundle as
// a new policy. The digests were taken from the first release that wrote
// format version 1.
func TestSnapshotBytesAreStable(t *testing.T) {
	for _, tc := range []struct {
		name, digest string
		snap         func(t *testing.T) *pdp.Snapshot
	}{
		{"bookstore", "2a64b0272df47ff1c570481e5290af11ef806dae67f3bf9c6d7a31d5dadf209e", func(t *testing.T) *pdp.Snapshot {
			return compileFile(t, "../examples/bookstore.yaml", "")
		}},
		{"rules", "fdd86eee1c6dd36317cb4eec702d2107e584453f5fd303dfbe9f822cf7300823", func(t *testing.T) *pdp.Snapshot { return compileFile(t, "testdata/rules.yaml", "policy") }},
		{"generated", "76f39a27d8640cf2d33627db8a66504128385b7345cddd4192e3c058ef0637ec", func(t *testing.T) *pdp.Snapshot {
			snap, err := pdp.Compile(policygen.Generate(policygen.Options{Seed: 5, Subjects: 3000, Orgs: 40, Roles: 30, MembershipsPerSubject: 4}))
			if err != nil {
				t.Fatal(err)
			}
			return snap
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := tc.snap(t).MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			if got := hex.EncodeToString(sum[:]); got != tc.digest {
				t.Errorf("snapshot digest %s, want %s", got, tc.digest)
			}
		})
	}
}

// compileFile compiles a policy file, or the policy under key in a cases
// file.
func compileFile(t *testing.T, path, key string) *pdp.Snapshot {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		var doc map[string]yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		n := doc[key]
		if data, err = yaml.Marshal(&n); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := policyfile.Compile(data, policyfile.YAML)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}
