package policyfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/rolecall/rolecall/pdp"
)

func TestTree(t *testing.T) {
	tests := []struct {
		name   string
		format Format
		in     string
		want   any
	}{
		{"json numbers keep their text", JSON, `{"a": [1, "x", true, null], "b": 2.50}`,
			map[string]any{"a": []any{json.Number("1"), "x", true, nil}, "b": json.Number("2.50")}},
		{"yaml scalars", YAML, "a: [1, x, true, null, ~]\nb: 2026-11-20\nc: '42'\n",
			map[string]any{"a": []any{json.Number("1"), "x", true, nil, nil}, "b": "2026-11-20", "c": "42"}},
		{"yaml aliases expand", YAML, "a: &r [x, y]\nb: *r\n",
			map[string]any{"a": []any{"x", "y"}, "b": []any{"x", "y"}}},
		{"yaml accepts JSON", YAML, `{"a": ["b"]}`, map[string]any{"a": []any{"b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Tree([]byte(tt.in), tt.format)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Tree (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTreeRejects(t *testing.T) {
	bomb := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	for i := 'b'; i <= 'j'; i++ {
		prev := string(i - 1)
		bomb += string(i) + ": &" + string(i) + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
	}
	tests := []struct {
		name   string
		format Format
		in     string
		want   string
	}{
		{"empty", YAML, " \n", "policy document is empty"},
		{"empty json", JSON, "", "policy document is empty"},
		{"json duplicate key", JSON, `{"roles": [], "roles": []}`, `invalid JSON at line 1, column 22: duplicate key "roles"`},
		{"json trailing data", JSON, `{} {}`, "unexpected data after the top-level value"},
		{"json syntax error names line and column", JSON, "{\n  \"a\": [1,,]\n}", "invalid JSON at line 2, column 11"},
		{"json unterminated", JSON, `{"a": [`, "unexpected EOF"},
		{"json too deep", JSON, strings.Repeat("[", 100) + strings.Repeat("]", 100), "nested deeper than 64 levels"},
		{"yaml duplicate key", YAML, "roles: []\nroles: []\n", `invalid YAML at line 2: duplicate key "roles"`},
		{"yaml two documents", YAML, "a: 1\n---\nb: 2\n", "more than one document"},
		{"yaml syntax error", YAML, "a: [\n", "invalid YAML"},
		{"yaml merge keys", YAML, "base: &b {x: 1}\nother:\n  <<: *b\n", `merge keys "<<" are not supported`},
		{"yaml alias bomb", YAML, bomb, "aliases expand to more than"},
		{"unknown format", Format("toml"), "a = 1", `unknown policy format "toml"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Tree([]byte(tt.in), tt.format)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Tree(%q) error = %v, want it to contain %q", tt.in, err, tt.want)
			}
		})
	}
	if _, err := Tree(nil, YAML); !errors.Is(err, ErrEmpty) {
		t.Errorf("Tree(nil) = %v, want ErrEmpty", err)
	}
}

func TestDetectFormat(t *testing.T) {
	tests := []struct {
		name, file, data string
		want             Format
	}{
		{"json extension", "p.JSON", "a: b", JSON},
		{"yaml extension", "p.yml", "{}", YAML},
		{"json content", "policy", "\n  {\"a\": 1}", JSON},
		{"yaml content", "policy", "a: 1", YAML},
	}
	for _, tt := range tests {
		if got := DetectFormat(tt.file, []byte(tt.data)); got != tt.want {
			t.Errorf("%s: DetectFormat = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestParseFillsContentRevision(t *testing.T) {
	doc := []byte("resources: [{id: r, actions: [read]}]\n")
	p, err := Parse(doc, YAML)
	if err != nil {
		t.Fatal(err)
	}
	if p.Revision != ContentRevision(doc) || !strings.HasPrefix(p.Revision, "sha256:") || len(p.Revision) != len("sha256:")+16 {
		t.Errorf("revision = %q, want the content revision", p.Revision)
	}
	p, err = Parse([]byte("revision: 42\n"), YAML)
	if err != nil || p.Revision != "42" {
		t.Errorf("numeric revision = %q, %v; want \"42\"", p.Revision, err)
	}
}

// The same document in YAML and JSON compiles to the same decisions.
func TestYAMLAndJSONAgree(t *testing.T) {
	y := "revision: r\nresources: [{id: d, actions: [read]}]\nroles: [{id: x, type: user, permissions: [{resource: d, actions: ['*']}]}]\nsubjects: [{id: s, roles: [x]}]\n"
	j := `{"revision": "r", "resources": [{"id": "d", "actions": ["read"]}], "roles": [{"id": "x", "type": "user", "permissions": [{"resource": "d", "actions": ["*"]}]}], "subjects": [{"id": "s", "roles": ["x"]}]}`
	py, err := Parse([]byte(y), YAML)
	if err != nil {
		t.Fatal(err)
	}
	pj, err := Parse([]byte(j), JSON)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(py, pj); diff != "" {
		t.Errorf("YAML and JSON policies differ (-yaml +json):\n%s", diff)
	}
}

// bookstorePolicy parses examples/bookstore.yaml.
func bookstorePolicy(t *testing.T) *pdp.Policy {
	t.Helper()
	data, err := os.ReadFile("../examples/bookstore.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(data, YAML)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A policy written with MarshalJSON reads back equal, and compiles to the
// same decisions.
func TestMarshalJSONRoundTrips(t *testing.T) {
	p := bookstorePolicy(t)
	out, err := MarshalJSON(p)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(out, JSON)
	if err != nil {
		t.Fatalf("the written document does not parse: %v\n%s", err, out)
	}
	if diff := cmp.Diff(p, back, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("round trip (-yaml +json):\n%s", diff)
	}
	again, _ := MarshalJSON(back)
	if string(again) != string(out) {
		t.Error("writing the same policy twice gave different bytes")
	}
	if _, err := Compile(out, JSON); err != nil {
		t.Errorf("the written document does not compile: %v", err)
	}
}

// A document compiled as it is read (Build) compiles to the very snapshot
// that its Policy does, and a problem in it is named by its path.
func TestCompileAsRead(t *testing.T) {
	p, big := paddedJSON(t, "acme")
	read, err := Compile(big, JSON)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := Parse(big, JSON)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, parsed, cmpopts.EquateEmpty(), cmpopts.IgnoreFields(pdp.Policy{}, "Revision")); diff != "" {
		t.Fatalf("Parse differs from the marshalled policy (-want +got):\n%s", diff)
	}
	compiled, err := pdp.Compile(parsed)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := read.MarshalBinary()
	b, _ := compiled.MarshalBinary()
	if !bytes.Equal(a, b) {
		t.Fatal("the document compiled as read and its Policy compiled are different snapshots")
	}
	bad := bytes.Replace(big, []byte(`"id":"padding-user-000007"`), []byte(`"id":"padding-user-000007","colour":"blue"`), 1)
	_, err = Compile(bad, JSON)
	var verr *pdp.ValidationError
	if !errors.As(err, &verr) || !strings.Contains(err.Error(), `subjects[15]: unknown field "colour"`) {
		t.Errorf("a document with an unknown field: %v", err)
	}
}

// A document repeating a key, at any depth and however the key is spelt, is
// refused with the key's position.
func TestJSONDuplicateKeys(t *testing.T) {
	_, big := paddedJSON(t, "acme")
	if _, err := Compile(big, JSON); err != nil {
		t.Fatalf("the padded document does not compile: %v", err)
	}
	for _, tc := range []struct {
		name, old, new, key string
	}{
		{"top level", `{"revision":`, `{"revision":"x","revision":`, "revision"},
		{"in a subject", `"id":"padding-user-000500"`, `"id":"padding-user-000500","id":"padding-user-000500"`, "id"},
		{"in a membership map", `"id":"padding-user-000700","roles":["order_admin"],"memberships":{"acme":["member"]`, `"id":"padding-user-000700","roles":["order_admin"],"memberships":{"acme":["member"],"acme":["member"]`, "acme"},
		{"escaped spelling", `"id":"padding-user-000900"`, `"id":"padding-user-000900","\u0069d":"padding-user-000900"`, "id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := bytes.Replace(big, []byte(tc.old), []byte(tc.new), 1)
			if bytes.Equal(bad, big) {
				t.Fatalf("%q is not in the document", tc.old)
			}
			_, err := Compile(bad, JSON)
			if err == nil || !strings.Contains(err.Error(), `duplicate key "`+tc.key+`"`) || !strings.Contains(err.Error(), "line 1, column") {
				t.Errorf("Compile = %v; want duplicate key %q with its position", err, tc.key)
			}
		})
	}
}

// Field names are matched exactly, as they are spelt: "Revision" is not
// revision. Organization ids in memberships may be spelt any way.
func TestJSONFieldNameCase(t *testing.T) {
	_, big := paddedJSON(t, "Big-Co")
	if _, err := Compile(big, JSON); err != nil {
		t.Fatalf("a document with upper-case organization ids in memberships: %v", err)
	}
	for _, tc := range []struct{ old, new, field string }{
		{`{"revision":`, `{"Revision":`, "Revision"},
		{`"id":"padding-user-000500"`, `"ID":"padding-user-000500"`, "ID"},
		{`"id":"padding-user-000600"`, `"\u0049d":"padding-user-000600"`, "Id"},
	} {
		bad := bytes.Replace(big, []byte(tc.old), []byte(tc.new), 1)
		if bytes.Equal(bad, big) {
			t.Fatalf("%q is not in the document", tc.old)
		}
		if _, err := Compile(bad, JSON); err == nil || !strings.Contains(err.Error(), `unknown field "`+tc.field+`"`) {
			t.Errorf("%s: Compile = %v; want an unknown field", tc.field, err)
		}
	}
}

// paddedJSON is the bookstore policy padded with 1,000 subjects, each a
// member of org, as canonical JSON.
func paddedJSON(t *testing.T, org string) (*pdp.Policy, []byte) {
	t.Helper()
	p := bookstorePolicy(t)
	if !slices.ContainsFunc(p.Organizations, func(o pdp.Organization) bool { return o.ID == org }) {
		p.Organizations = append(p.Organizations, pdp.Organization{ID: org})
	}
	for i := 0; i < 1000; i++ {
		p.Subjects = append(p.Subjects, pdp.Subject{ID: fmt.Sprintf("padding-user-%06d", i), Roles: []string{"order_admin"}, Memberships: map[string][]string{org: {"member"}}})
	}
	big, err := MarshalJSON(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, big
}
