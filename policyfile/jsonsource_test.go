package policyfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policygen"
)

// walk and walkDocument are the package's readTree and jsonDocumentTree.
var (
	walk         = readTree
	walkDocument = jsonDocumentTree
)

// drain reads src with Peek, Enter, Next, Scalar and Skip, keeping nothing:
// how the policy decoder reads, without its own allocations.
func drain(src pdp.Source) error {
	kind, err := src.Peek()
	if err != nil {
		return err
	}
	switch kind {
	case pdp.String, pdp.Number:
		_, err := src.Scalar()
		return err
	case pdp.List, pdp.Mapping:
		if err := src.Enter(); err != nil {
			return err
		}
		for {
			_, ok, err := src.Next()
			if err != nil || !ok {
				return err
			}
			if err := drain(src); err != nil {
				return err
			}
		}
	}
	return src.Skip()
}

// referenceTree decodes data with encoding/json's Decoder.Token, refusing
// repeated keys and nesting deeper than maxDepth: what jsonSource must agree
// with.
func referenceTree(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := referenceValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the top-level value")
	}
	return v, nil
}

func referenceValue(dec *json.Decoder, depth int) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	if delim != '{' && delim != '[' {
		return nil, fmt.Errorf("a closing %v where a value is due", delim)
	}
	if depth >= maxDepth {
		return nil, errors.New("too deep")
	}
	var v any
	if delim == '{' {
		m := map[string]any{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			key, ok := kt.(string)
			if !ok {
				return nil, fmt.Errorf("key %v", kt)
			}
			if _, dup := m[key]; dup {
				return nil, fmt.Errorf("duplicate key %q", key)
			}
			if m[key], err = referenceValue(dec, depth+1); err != nil {
				return nil, err
			}
		}
		v = m
	} else {
		l := []any{}
		for dec.More() {
			e, err := referenceValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			l = append(l, e)
		}
		v = l
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return v, nil
}

// generatedJSON is a generated policy document of the given number of
// subjects, marshaled once per size for all the tests that read it.
func generatedJSON(tb testing.TB, subjects int) []byte {
	tb.Helper()
	generatedMu.Lock()
	defer generatedMu.Unlock()
	if data, ok := generated[subjects]; ok {
		return data
	}
	o := policygen.Options{Seed: 1, Subjects: subjects, Orgs: 5, Roles: 8, MembershipsPerSubject: 2}
	if subjects >= 100000 {
		o.Orgs, o.Roles = 1000, 200
	}
	data, err := MarshalJSON(policygen.Generate(o))
	if err != nil {
		tb.Fatal(err)
	}
	generated[subjects] = data
	return data
}

var (
	generatedMu sync.Mutex
	generated   = map[int][]byte{}
)

// handWritten are small documents that cover what a generated policy does
// not: every kind of value, escapes, white space, numbers in all forms.
var handWritten = []string{
	`{}`,
	`[]`,
	`"text"`,
	` 0 `,
	`-12.5e+3`,
	`true`,
	`null`,
	`[1, -0, 0.5, 1E9, 2e-3, 1.5E+10, "a", true, false, null, [], {}, [[[]]]]`,
	"{\n\t\"a\": {\"b\": [1, 2, {\"c\": null}]},\r\n \"d\": \"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u4e16\\ud83d\\ude00\"\n}",
	`{"id": "x", "\u0069dx": 1, "é": "ü", "": ""}`,
	`{"roles": [{"id": "reader", "type": "user", "permissions": [{"resource": "r", "actions": ["read"]}]}], "subjects": [{"id": "alice", "memberships": {"org-1": ["admin"], "org-2": []}}]}`,
}

func TestJSONSourceErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"a repeated key names the key after it", `{"roles": [], "roles": []}`, `invalid JSON at line 1, column 22: duplicate key "roles"`},
		{"a second comma is placed at its line and column", "{\n  \"a\": [1,,]\n}", `invalid JSON at line 2, column 11: invalid character ',' looking for beginning of value`},
		{"an unterminated list is an unexpected EOF", `{"a": [`, `invalid JSON at line 1, column 8: unexpected EOF`},
		{"the 65th open list is refused", strings.Repeat("[", 100) + strings.Repeat("]", 100), `invalid JSON at line 1, column 66: nested deeper than 64 levels`},
		{"64 open lists are fine", strings.Repeat("[", 64) + strings.Repeat("]", 64), ``},
		{"data after the value", `{} {}`, `invalid JSON at line 1, column 4: unexpected data after the top-level value`},
		{"a closing after the value", `{"a":1}}`, `invalid JSON at line 1, column 8: unexpected data after the top-level value`},
		{"empty", ``, `invalid JSON at line 1, column 1: unexpected EOF`},
		{"only white space", " \n ", `invalid JSON at line 2, column 2: unexpected EOF`},
		{"a byte that starts no value", `x`, `invalid JSON at line 1, column 1: invalid character 'x' looking for beginning of value`},
		{"a control character outside a string", "[\x01]", `invalid JSON at line 1, column 2: invalid character '\x01' looking for beginning of value`},
		{"a later line", "[\n1,\n2\n,x]", `invalid JSON at line 4, column 2: invalid character 'x' looking for beginning of value`},
		{"a missing colon", `{"a" 1}`, `invalid JSON at line 1, column 6: invalid character '1' after object key`},
		{"a missing comma between pairs", `{"a":1 "b":2}`, `invalid JSON at line 1, column 8: invalid character '"' after object key:value pair`},
		{"a missing comma between elements", `[1 2]`, `invalid JSON at line 1, column 4: invalid character '2' after array element`},
		{"a key that is not a string", `{1:2}`, `invalid JSON at line 1, column 2: invalid character '1' looking for beginning of object key string`},
		{"a leading comma in a mapping", `{,}`, `invalid JSON at line 1, column 2: invalid character ',' looking for beginning of object key string`},
		{"a trailing comma in a mapping", `{"a":1,}`, `invalid JSON at line 1, column 8: invalid character '}' looking for beginning of object key string`},
		{"a trailing comma in a list", `[1,]`, `invalid JSON at line 1, column 4: invalid character ']' looking for beginning of value`},
		{"a leading comma in a list", `[,1]`, `invalid JSON at line 1, column 2: invalid character ',' looking for beginning of value`},
		{"a mismatched closing", `[1}`, `invalid JSON at line 1, column 3: invalid character '}' after array element`},
		{"a raw newline in a string", "\"a\nb\"", `invalid JSON at line 1, column 3: invalid character '\n' in string literal`},
		{"a raw control byte in a string", "\"a\x01\"", `invalid JSON at line 1, column 3: invalid character '\x01' in string literal`},
		{"a raw tab in a key", "{\"a\tb\":1}", `invalid JSON at line 1, column 4: invalid character '\t' in string literal`},
		{"an unknown escape", `"\x"`, `invalid JSON at line 1, column 3: invalid character 'x' in string escape code`},
		{"an escaped single quote", `"\'"`, `invalid JSON at line 1, column 3: invalid character '\'' in string escape code`},
		{"a bad hexadecimal digit", `"\u12g4"`, `invalid JSON at line 1, column 6: invalid character 'g' in \u hexadecimal character escape`},
		{"a short \\u escape", `"\u12"`, `invalid JSON at line 1, column 6: invalid character '"' in \u hexadecimal character escape`},
		{"EOF inside a string", `"abc`, `invalid JSON at line 1, column 5: unexpected EOF`},
		{"EOF inside an escape", `"\`, `invalid JSON at line 1, column 3: unexpected EOF`},
		{"EOF inside a \\u escape", `"\u00`, `invalid JSON at line 1, column 6: unexpected EOF`},
		{"EOF after a key", `{"a"`, `invalid JSON at line 1, column 5: unexpected EOF`},
		{"EOF after a colon", `{"a":`, `invalid JSON at line 1, column 6: unexpected EOF`},
		{"EOF after a value in a mapping", `{"a":1`, `invalid JSON at line 1, column 7: unexpected EOF`},
		{"EOF inside a number", `[12`, `invalid JSON at line 1, column 4: unexpected EOF`},
		{"a leading zero", `[01]`, `invalid JSON at line 1, column 3: invalid character '1' after array element`},
		{"a leading zero at the top", `01`, `invalid JSON at line 1, column 2: unexpected data after the top-level value`},
		{"a point without digits", `[1.]`, `invalid JSON at line 1, column 4: invalid character ']' after decimal point in numeric literal`},
		{"a point at the end", `1.`, `invalid JSON at line 1, column 3: unexpected EOF`},
		{"a lone minus", `-`, `invalid JSON at line 1, column 2: unexpected EOF`},
		{"a minus without digits", `[-]`, `invalid JSON at line 1, column 3: invalid character ']' in numeric literal`},
		{"a minus before a letter", `-x`, `invalid JSON at line 1, column 2: invalid character 'x' in numeric literal`},
		{"an exponent without digits", `[1e]`, `invalid JSON at line 1, column 4: invalid character ']' in exponent of numeric literal`},
		{"an exponent sign without digits", `[1e+]`, `invalid JSON at line 1, column 5: invalid character ']' in exponent of numeric literal`},
		{"an exponent at the end", `1e`, `invalid JSON at line 1, column 3: unexpected EOF`},
		{"a plus sign", `+1`, `invalid JSON at line 1, column 1: invalid character '+' looking for beginning of value`},
		{"a bad true", `[trux]`, `invalid JSON at line 1, column 5: invalid character 'x' in literal true (expecting 'e')`},
		{"a bad false", `[fals]`, `invalid JSON at line 1, column 6: invalid character ']' in literal false (expecting 'e')`},
		{"a bad null", `[nulL]`, `invalid JSON at line 1, column 5: invalid character 'L' in literal null (expecting 'l')`},
		{"a capitalized literal", `True`, `invalid JSON at line 1, column 1: invalid character 'T' looking for beginning of value`},
		{"a cut literal", `tru`, `invalid JSON at line 1, column 4: unexpected EOF`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := walkDocument([]byte(tt.in))
			if got := fmt.Sprint(err); (tt.want == "" && err != nil) || (tt.want != "" && got != tt.want) {
				t.Errorf("walking %q: error = %v, want %q", tt.in, err, tt.want)
			}
			// Skip checks a document as strictly as a walk, at the same place.
			src := newJSONSource([]byte(tt.in))
			err = src.Skip()
			if err == nil {
				err = src.End()
			}
			if got := fmt.Sprint(err); (tt.want == "" && err != nil) || (tt.want != "" && got != tt.want) {
				t.Errorf("skipping %q: error = %v, want %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestJSONSourceUnexpectedEOFIsErrUnexpectedEOF(t *testing.T) {
	_, err := walkDocument([]byte(`{"a": [`))
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("error = %v, want one that wraps io.ErrUnexpectedEOF", err)
	}
}

func TestJSONSourceCallsOutOfTurn(t *testing.T) {
	tests := []struct {
		name string
		in   string
		call func(s *jsonSource) error
		want string
	}{
		{"Scalar on a list", `[1]`, func(s *jsonSource) error { _, err := s.Scalar(); return err }, "want a string, a number or a boolean, found a list"},
		{"Scalar on null", `null`, func(s *jsonSource) error { _, err := s.Scalar(); return err }, "want a string, a number or a boolean, found null"},
		{"Enter on a string", `"a"`, func(s *jsonSource) error { return s.Enter() }, "want a list or a mapping, found a string"},
		{"Enter on null", `null`, func(s *jsonSource) error { return s.Enter() }, "want a list or a mapping, found null"},
		{"Next outside a list", `1`, func(s *jsonSource) error { _, _, err := s.Next(); return err }, "Next called"},
		{"Next before the element is read", `[1]`, func(s *jsonSource) error {
			s.Enter()
			s.Next()
			_, _, err := s.Next()
			return err
		}, "Next called"},
		{"Peek after the value", `1`, func(s *jsonSource) error { s.Skip(); _, err := s.Peek(); return err }, "no value is due here"},
		{"End before the value", `1`, func(s *jsonSource) error { return s.End() }, "End called before"},
		{"End inside a list", `[1]`, func(s *jsonSource) error { s.Enter(); return s.End() }, "End called before"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newJSONSource([]byte(tt.in))
			err := tt.call(s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
			// The error stays: every later call reports it.
			if _, err2 := s.Peek(); err2 != err {
				t.Errorf("Peek after the error = %v, want %v", err2, err)
			}
			if err2 := s.Skip(); err2 != err {
				t.Errorf("Skip after the error = %v, want %v", err2, err)
			}
			if _, _, err2 := s.Next(); err2 != err {
				t.Errorf("Next after the error = %v, want %v", err2, err)
			}
			if err2 := s.End(); err2 != err {
				t.Errorf("End after the error = %v, want %v", err2, err)
			}
		})
	}
}

func TestJSONSourceDuplicateKeys(t *testing.T) {
	var many strings.Builder
	many.WriteString("{")
	for i := range 40 {
		fmt.Fprintf(&many, `"k%d": %d, `, i, i)
	}
	many.WriteString(`"k0": 0}`)
	tests := []struct {
		name, in, key string
	}{
		{"at depth 1", `{"a": 1, "b": 2, "a": 3}`, "a"},
		{"at depth 3", `{"x": {"y": {"k": 1, "k": 2}}}`, "k"},
		{"in a list of mappings", `[{"a": 1}, {"a": 1, "b": 2, "b": 3}]`, "b"},
		{"spelt with an escape", `{"id": 1, "\u0069d": 2}`, "id"},
		{"spelt with two escapes", `{"\u00e9": 1, "\u00E9": 2}`, "é"},
		{"escaped and raw", `{"\/": 1, "/": 2}`, "/"},
		{"in a mapping of 40 keys, the first again at the end", many.String(), "k0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := fmt.Sprintf("duplicate key %q", tt.key)
			if _, err := walkDocument([]byte(tt.in)); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("walk: error = %v, want %q", err, want)
			}
			skipped := fmt.Sprintf(`{"before": [%s]}`, tt.in)
			s := newJSONSource([]byte(skipped))
			s.Enter()
			if k, _, _ := s.Next(); k != "before" {
				t.Fatalf("Next = %q, want before", k)
			}
			if err := s.Skip(); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Skip: error = %v, want %q", err, want)
			}
			s = newJSONSource([]byte(skipped))
			s.Enter()
			s.Next()
			if _, err := s.Capture(); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Capture: error = %v, want %q", err, want)
			}
		})
	}
}

func TestJSONSourceKeysOfSeparateMappings(t *testing.T) {
	var many strings.Builder
	many.WriteString("{")
	for i := range 40 {
		fmt.Fprintf(&many, `"k%d": {"k%d": 1}, `, i, i)
	}
	many.WriteString(`"last": 0}`)
	for _, in := range []string{
		`[{"a": 1}, {"a": 1}]`,
		`{"a": {"a": 1}, "b": {"a": 2, "b": 3}}`,
		many.String(),
		"[" + many.String() + `, {"k0": 1, "last": 2}]`,
	} {
		if _, err := walkDocument([]byte(in)); err != nil {
			t.Errorf("walking %.40q: %v", in, err)
		}
	}
}

func TestJSONSourceStrings(t *testing.T) {
	tests := []struct {
		name, in, want string
		valid          bool // the text is valid UTF-8
	}{
		{"plain", `"abc"`, "abc", true},
		{"empty", `""`, "", true},
		{"every escape", `"\"\\\/\b\f\n\r\t\u00e9\u4E16"`, "\"\\/\b\f\n\r\té世", true},
		{"a surrogate pair is one rune", `"\ud83d\ude00"`, "😀", true},
		{"a lone high surrogate keeps its own bytes", `"\ud800"`, "\xed\xa0\x80", false},
		{"a lone low surrogate keeps its own bytes", `"\udc00x"`, "\xed\xb0\x80x", false},
		{"a high surrogate before a plain escape", `"\ud800\u0041"`, "\xed\xa0\x80A", false},
		{"two high surrogates", `"\uD800\uDBFF"`, "\xed\xa0\x80\xed\xaf\xbf", false},
		{"a high surrogate at the end", `"a\ud800"`, "a\xed\xa0\x80", false},
		{"raw invalid UTF-8 is kept", "\"a\xffb\xc3\"", "a\xffb\xc3", false},
		{"raw invalid UTF-8 beside an escape", "\"\xff\\n\"", "\xff\n", false},
		{"a number's text", `-1.50e+02`, "-1.50e+02", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newJSONSource([]byte(tt.in))
			got, err := s.Scalar()
			if err == nil {
				err = s.End()
			}
			if err != nil || got != tt.want {
				t.Fatalf("Scalar = %q, %v; want %q", got, err, tt.want)
			}
			if utf8.ValidString(got) != tt.valid {
				t.Errorf("utf8.ValidString(%q) = %v, want %v", got, !tt.valid, tt.valid)
			}
			// A key decodes as a string does.
			s = newJSONSource([]byte(`{` + tt.in + `: 1}`))
			s.Enter()
			if key, ok, err := s.Next(); tt.in[0] == '"' && (key != tt.want || !ok || err != nil) {
				t.Errorf("Next = %q, %v, %v; want the key %q", key, ok, err, tt.want)
			}
		})
	}
}

func TestJSONSourceCapture(t *testing.T) {
	data := []byte("{\n\"a\": [1, {\"b\": \"c\"}], \"d\": 2}")
	s := newJSONSource(data)
	if err := s.Enter(); err != nil {
		t.Fatal(err)
	}
	if k, _, err := s.Next(); k != "a" || err != nil {
		t.Fatalf("Next = %q, %v", k, err)
	}
	captured, err := s.Capture()
	if err != nil {
		t.Fatal(err)
	}
	if k, _, err := s.Next(); k != "d" || err != nil {
		t.Fatalf("Next after Capture = %q, %v; want d", k, err)
	}
	got, err := walk(captured)
	if err == nil {
		err = captured.(*jsonSource).End()
	}
	want := []any{json.Number("1"), map[string]any{"b": "c"}}
	if err != nil || !cmp.Equal(want, got) {
		t.Errorf("the captured value reads %v, %v; want %v", got, err, want)
	}

	// Errors in a captured value are placed in the whole document.
	s = newJSONSource(data)
	s.Enter()
	s.Next()
	captured, _ = s.Capture()
	_, err = captured.Scalar()
	if want := "invalid JSON at line 2, column 6: want a string, a number or a boolean, found a list"; fmt.Sprint(err) != want {
		t.Errorf("Scalar on the captured list: %v, want %q", err, want)
	}
}

func TestJSONSourcePrefixesFail(t *testing.T) {
	data := generatedJSON(t, 30)
	if _, err := walkDocument(data); err != nil {
		t.Fatalf("the whole document: %v", err)
	}
	for n := range len(data) {
		if _, err := walkDocument(data[:n]); err == nil {
			t.Fatalf("walking the first %d of %d bytes succeeds", n, len(data))
		}
		s := newJSONSource(data[:n])
		if err := s.Skip(); err == nil {
			t.Fatalf("skipping the first %d of %d bytes succeeds", n, len(data))
		}
	}
}

func TestJSONSourceMatchesEncodingJSON(t *testing.T) {
	docs := append([]string{string(generatedJSON(t, 30))}, handWritten...)
	for _, doc := range docs {
		dec := json.NewDecoder(strings.NewReader(doc))
		dec.UseNumber()
		var want any
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		got, err := walkDocument([]byte(doc))
		if err != nil {
			t.Errorf("walking %.60q: %v", doc, err)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("walking %.60q (-want +got):\n%s", doc, diff)
		}
	}
}

func TestJSONSourceAllocations(t *testing.T) {
	data := generatedJSON(t, 2000)
	allocs := testing.AllocsPerRun(5, func() {
		s := newJSONSource(data)
		if err := drain(s); err != nil {
			t.Fatal(err)
		}
		if err := s.End(); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("reading %d bytes allocates %v times", len(data), allocs)
	if allocs > 5 {
		t.Errorf("reading %d bytes allocates %v times, want at most 5", len(data), allocs)
	}
}

// surrogateEscape finds a \u escape of a UTF-16 surrogate, which
// encoding/json decodes to U+FFFD when it stands alone, so its trees and
// repeated keys differ from jsonSource's on purpose.
var surrogateEscape = regexp.MustCompile(`\\u[dD][89a-fA-F]`)

func FuzzJSONSource(f *testing.F) {
	for _, doc := range handWritten {
		f.Add([]byte(doc))
	}
	f.Add(generatedJSON(f, 30))
	for _, doc := range []string{`{"a": 1, "a": 2}`, `{"a": [`, "{\n  \"a\": [1,,]\n}", `[01]`, `"\ud800"`, strings.Repeat("[", 65) + strings.Repeat("]", 65)} {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := walkDocument(data)
		s := newJSONSource(data)
		skipErr := s.Skip()
		if skipErr == nil {
			skipErr = s.End()
		}
		if (err == nil) != (skipErr == nil) {
			t.Fatalf("walk: %v, but Skip: %v", err, skipErr)
		}
		if err == nil {
			s := newJSONSource(data)
			captured, err := s.Capture()
			if err != nil {
				t.Fatalf("Capture: %v", err)
			}
			again, err := walk(captured)
			// reflect.DeepEqual, not cmp: cmp's diff of nested slices takes
			// time exponential in their depth, and the fuzzer nests deeply.
			if err != nil || !reflect.DeepEqual(got, again) {
				t.Fatalf("the captured document reads %v, %v; want %v", again, err, got)
			}
		}
		if !utf8.Valid(data) || surrogateEscape.Match(data) {
			return
		}
		want, refErr := referenceTree(data)
		valid := json.Valid(data) && refErr == nil
		if (err == nil) != valid {
			t.Fatalf("jsonSource: %v; encoding/json: valid %v, %v", err, json.Valid(data), refErr)
		}
		if err == nil && !reflect.DeepEqual(want, got) {
			t.Fatalf("trees differ:\nencoding/json %#v\njsonSource    %#v", want, got)
		}
	})
}

func BenchmarkJSONSource(b *testing.B) {
	data := generatedJSON(b, 100000)
	b.Run("walk", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			s := newJSONSource(data)
			if err := drain(s); err != nil {
				b.Fatal(err)
			}
			if err := s.End(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("skip", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if err := newJSONSource(data).Skip(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json_Valid", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if !json.Valid(data) {
				b.Fatal("invalid")
			}
		}
	})
}

// TestPlainRun checks the eight-bytes-at-a-time scan against a byte at a
// time, for each stop byte at each place in a run of plain text, after each
// kind of plain byte.
func TestPlainRun(t *testing.T) {
	slow := func(data []byte, i int) int {
		for i < len(data) && !stringStop[data[i]] {
			i++
		}
		return i
	}
	for _, plain := range []byte{'a', ' ', '!', '#', '[', ']', 0x7f, 0x80, 0xc3, 0xff} {
		for _, stop := range []byte{'"', '\\', 0, '\n', 0x1f} {
			for n := range 20 {
				data := append(bytes.Repeat([]byte{plain}, n), stop)
				data = append(data, bytes.Repeat([]byte{plain}, 9)...)
				for i := range len(data) + 1 {
					if got, want := plainRun(data, i), slow(data, i); got != want {
						t.Fatalf("plainRun(%q, %d) = %d, want %d", data, i, got, want)
					}
				}
			}
		}
	}
}
