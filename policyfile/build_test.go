package policyfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policygen"
)

// reorder writes a JSON policy's top-level fields in the order given.
func reorder(t *testing.T, doc []byte, keys ...string) []byte {
	t.Helper()
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(doc, &fields); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%s", k, fields[k])
	}
	b.WriteByte('}')
	return b.Bytes()
}

// The lists of a document may come in any order, though each refers to the
// ones before it in the schema: the snapshot, and the problems of an
// invalid document, are the same.
func TestTopLevelOrderDoesNotMatter(t *testing.T) {
	canonical := []string{"revision", "resources", "roles", "organizations", "subjects"}
	orders := [][]string{
		{"subjects", "organizations", "roles", "resources", "revision"},
		{"organizations", "subjects", "revision", "resources", "roles"},
		{"roles", "subjects", "resources", "organizations", "revision"},
	}
	p := policygen.Generate(policygen.Options{Seed: 3, Subjects: 300, Orgs: 12, Roles: 16, MembershipsPerSubject: 2})
	doc, err := MarshalJSON(p)
	if err != nil {
		t.Fatal(err)
	}
	// The same document made invalid in every list.
	bad := doc
	for _, r := range []struct{ old, new string }{
		{`"act01"`, `"act01","act01"`},                                    // a resource repeats an action
		{`"type":"user"`, `"type":"usr"`},                                 // a role's type
		{`{"id":"` + orgOf(t, doc), `{"colour":1,"id":"` + orgOf(t, doc)}, // an unknown field
		{`"roles":["role-0001"`, `"roles":["ghost"`},                      // an undefined role
	} {
		changed := bytes.Replace(bad, []byte(r.old), []byte(r.new), 1)
		if bytes.Equal(changed, bad) {
			t.Fatalf("%s is not in the document", r.old)
		}
		bad = changed
	}
	want, err := Compile(reorder(t, doc, canonical...), JSON)
	if err != nil {
		t.Fatal(err)
	}
	wantBytes, _ := want.MarshalBinary()
	_, wantErr := Compile(reorder(t, bad, canonical...), JSON)
	var verr *pdp.ValidationError
	if !errors.As(wantErr, &verr) || len(verr.Problems) < 4 {
		t.Fatalf("the invalid document: %v; want four problems or more", wantErr)
	}
	for _, order := range orders {
		t.Run(strings.Join(order, ","), func(t *testing.T) {
			got, err := Compile(reorder(t, doc, order...), JSON)
			if err != nil {
				t.Fatal(err)
			}
			gotBytes, _ := got.MarshalBinary()
			if !bytes.Equal(gotBytes, wantBytes) {
				t.Error("the reordered document compiles to another snapshot")
			}
			if _, err := Compile(reorder(t, bad, order...), JSON); err == nil || err.Error() != wantErr.Error() {
				t.Errorf("the reordered invalid document:\n%v\nwant:\n%v", err, wantErr)
			}
		})
	}
}

// orgOf returns the id of the document's first organization.
func orgOf(t *testing.T, doc []byte) string {
	var p struct{ Organizations []struct{ ID string } }
	if err := json.Unmarshal(doc, &p); err != nil || len(p.Organizations) == 0 {
		t.Fatalf("no organization: %v", err)
	}
	return p.Organizations[0].ID
}

// Documents that are broken, huge or hostile get an error that says what is
// wrong and where, never a panic and never a policy.
func TestBadDocuments(t *testing.T) {
	doc, err := MarshalJSON(policygen.Generate(policygen.Options{Seed: 4, Subjects: 200, Orgs: 10, Roles: 8, MembershipsPerSubject: 2}))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("cut anywhere", func(t *testing.T) {
		for n := 1; n < len(doc); n += 97 {
			if _, err := Compile(doc[:n], JSON); err == nil || !strings.Contains(err.Error(), "invalid JSON at line") {
				t.Fatalf("the document cut at byte %d: %v", n, err)
			}
		}
	})
	t.Run("a huge list of the wrong things", func(t *testing.T) {
		huge := `{"subjects":[` + strings.Repeat(`1,`, 100_000) + `1]}`
		_, err := Compile([]byte(huge), JSON)
		var verr *pdp.ValidationError
		if !errors.As(err, &verr) {
			t.Fatalf("Compile = %v, want a ValidationError", err)
		}
		// Each element is no mapping, and then a subject without an id.
		if len(verr.Problems) != pdp.MaxProblems || verr.Omitted != 200_002-pdp.MaxProblems {
			t.Errorf("%d problems listed and %d omitted; want %d and %d", len(verr.Problems), verr.Omitted, pdp.MaxProblems, 200_002-pdp.MaxProblems)
		}
		if first := verr.Problems[0].String(); first != "subjects[0]: must be a mapping, got a number" {
			t.Errorf("first problem %q", first)
		}
		if !strings.HasPrefix(err.Error(), "invalid policy: 200002 problems, the first 1000 listed:") {
			t.Errorf("error %.80q", err.Error())
		}
	})
	for _, tc := range []struct{ name, doc, want string }{
		{"nested deep in an unknown field", `{"x":` + strings.Repeat("[", 10_000), "nested deeper than 64 levels"},
		{"nested deep in a known one", `{"subjects":[{"id":` + strings.Repeat("[", 100), "nested deeper than 64 levels"},
		{"repeated key deep down", `{"subjects":[{"id":"a","memberships":{"o":[],"o":[]}}]}`, `invalid JSON at line 1, column 49: duplicate key "o"`},
		{"invalid UTF-8 in an id", "{\"subjects\":[{\"id\":\"a\xffb\"}]}", "subjects[0].id: is not valid UTF-8"},
		{"a lone surrogate in an id", `{"subjects":[{"id":"a\ud800b"}]}`, "subjects[0].id: is not valid UTF-8"},
		{"invalid UTF-8 in a description", "{\"resources\":[{\"id\":\"r\",\"description\":\"\xc3\"}]}", "resources[0].description: is not valid UTF-8"},
		{"data after the document", `{"subjects":[]} {}`, "unexpected data after the top-level value"},
		{"syntax beats content", `{"subjects":[{"id":""}]} x`, "unexpected data after the top-level value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Compile([]byte(tc.doc), JSON); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Compile = %v; want %q", err, tc.want)
			}
		})
	}
}

// Compiling a document allocates per document, not per subject: the
// subjects go straight into the snapshot's arena.
func TestCompileAllocatesPerDocument(t *testing.T) {
	allocs := func(subjects int) float64 {
		doc, err := MarshalJSON(policygen.Generate(policygen.Options{Seed: 5, Subjects: subjects, Orgs: 10, Roles: 20, MembershipsPerSubject: 2}))
		if err != nil {
			t.Fatal(err)
		}
		return testing.AllocsPerRun(3, func() {
			if _, err := Compile(doc, JSON); err != nil {
				t.Fatal(err)
			}
		})
	}
	small, large := allocs(2_000), allocs(20_000)
	t.Logf("%.0f allocations for 2,000 subjects, %.0f for 20,000", small, large)
	if large-small > 100 {
		t.Errorf("18,000 more subjects cost %.0f more allocations; want them to cost next to none", large-small)
	}
}
