package strictyaml_test

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rolecall/rolecall/internal/strictyaml"
)

type server struct {
	Name    string        `yaml:"name"`
	Timeout time.Duration `yaml:"timeout"`
	Tags    []string      `yaml:"tags"`
}

// Decode works on any struct: keys present replace values, absent ones keep
// them, and a failed decode leaves the value as it was.
func TestDecodeOverAValue(t *testing.T) {
	s := server{Name: "a", Timeout: time.Second}
	if err := strictyaml.Decode("s.yaml", []byte("timeout: 5s\n"), &s); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if s.Name != "a" || s.Timeout != 5*time.Second {
		t.Errorf("after Decode: %+v, want name a, timeout 5s", s)
	}

	before := s
	err := strictyaml.Decode("s.yaml", []byte("name: b\ntags: [x]\ntimout: 1s\n"), &s)
	if want := "s.yaml: line 3: unknown key timout; did you mean timeout? the file has name, timeout, tags"; err == nil || err.Error() != want {
		t.Errorf("Decode error = %v, want %q", err, want)
	}
	if s.Name != before.Name || s.Timeout != before.Timeout || s.Tags != nil {
		t.Errorf("a failed Decode changed the value: %+v, was %+v", s, before)
	}

	if err := strictyaml.Decode("s.yaml", nil, &s); err != nil {
		t.Errorf("Decode of an empty document = %v, want nil", err)
	}
}

func TestDecodeWantsAPointer(t *testing.T) {
	for _, v := range []any{server{}, (*server)(nil), nil} {
		if err := strictyaml.Decode("s.yaml", []byte("name: a\n"), v); err == nil || !strings.Contains(err.Error(), "non-nil pointer") {
			t.Errorf("Decode(%T) = %v, want an error asking for a non-nil pointer", v, err)
		}
	}
}

// A yaml.Node field takes any YAML, for its reader to check; a pointer field
// is checked as the type it points to, and stays nil when its key is absent.
func TestDecodeNodesAndPointers(t *testing.T) {
	type doc struct {
		Any     yaml.Node `yaml:"any"`
		Enabled *bool     `yaml:"enabled"`
		Label   *string   `yaml:"label"`
	}
	var d doc
	if err := strictyaml.Decode("d.yaml", []byte("any: {whatever: [1, {deep: true}]}\nenabled: false\n"), &d); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if d.Any.Kind != yaml.MappingNode || d.Enabled == nil || *d.Enabled || d.Label != nil {
		t.Errorf("after Decode: any %v, enabled %v, label %v; want a mapping, false, nil", d.Any.Kind, d.Enabled, d.Label)
	}
	err := strictyaml.Decode("d.yaml", []byte("enabled: maybe\n"), &d)
	if want := `d.yaml: line 1: enabled: "maybe": want true or false`; err == nil || err.Error() != want {
		t.Errorf("Decode error = %v, want %q", err, want)
	}
}
