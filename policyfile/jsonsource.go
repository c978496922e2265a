package policyfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/rolecall/rolecall/pdp"
)

// jsonSource reads a JSON policy document as a pdp.Source, one value at a
// time, straight from the document's bytes: no tree and no tokens in
// between, and no allocation for anything but escaped strings, so that a
// document of gigabytes reads at the speed of a scan and leaves no garbage.
// It checks the whole JSON grammar, refuses a repeated key in any mapping and
// nesting deeper than maxDepth, and places every error at a line and column.
//
// A string without escapes, and every number, is returned as a string that
// shares memory with the document (unsafe.String over its bytes), as the
// pdp.Source contract allows: the document must stay unchanged while they are
// in use. A string with escapes is decoded into a fresh allocation.
type jsonSource struct {
	all    []byte        // the whole document: error positions count from its start
	pos    int           // index of the next unread byte
	end    int           // reading stops here: len(all), or the end of a captured value
	err    error         // the first error; every later call returns it
	want   bool          // a value is due next: at the start, and after Next reports an element
	frames []jsonFrame   // the lists and mappings entered and not yet closed
	keys   []mappingKeys // the keys met in the mapping open at each depth, reused
}

var _ pdp.Source = (*jsonSource)(nil)

// maxDepth bounds nesting. The policy schema is five levels deep; anything far
// deeper is garbage or an attack on the reader's stack.
const maxDepth = 64

// jsonFrame is a list or a mapping being read.
type jsonFrame struct {
	mapping bool
	more    bool // an element has been met, so the next one needs a ','
}

// newJSONSource reads data, a whole JSON document.
func newJSONSource(data []byte) *jsonSource {
	// The policy schema nests five levels deep: room for eight means the
	// stacks never grow for a policy document.
	return &jsonSource{
		all: data, end: len(data), want: true,
		frames: make([]jsonFrame, 0, 8),
		keys:   make([]mappingKeys, 0, 8),
	}
}

// Peek reports the kind of the next value, without reading it.
func (s *jsonSource) Peek() (pdp.Kind, error) {
	c, err := s.valueStart()
	if err != nil {
		return pdp.Null, err
	}
	kind, ok := kindOf(c)
	if !ok {
		return pdp.Null, s.badByte(s.pos, "looking for beginning of value")
	}
	return kind, nil
}

// Scalar reads a string, returning its decoded text, a number, returning its
// literal text, or a boolean, returning "true" or "false".
func (s *jsonSource) Scalar() (string, error) {
	c, err := s.valueStart()
	if err != nil {
		return "", err
	}
	kind, ok := kindOf(c)
	switch {
	case !ok:
		return "", s.badByte(s.pos, "looking for beginning of value")
	case kind == pdp.String:
		s.want = false
		return s.readString()
	case kind == pdp.Number:
		s.want = false
		return s.readNumber()
	case kind == pdp.Bool:
		lit := "false"
		if c == 't' {
			lit = "true"
		}
		if err := s.readLiteral(lit); err != nil {
			return "", err
		}
		s.want = false
		return lit, nil
	}
	return "", s.misuse("want a string, a number or a boolean, found " + kind.String())
}

// Skip reads the next value whole, checking it as strictly as reading it
// would, repeated keys included. It walks the value with Enter and Next, so
// that the depth limit and the key checks are the same code.
func (s *jsonSource) Skip() error {
	base := len(s.frames)
	for {
		c, err := s.valueStart()
		if err != nil {
			return err
		}
		if c == '[' || c == '{' {
			err = s.Enter()
		} else {
			err = s.skipScalar(c)
		}
		if err != nil {
			return err
		}
		// Close what ends here, up to the next value due inside the skipped one.
		for len(s.frames) > base {
			_, ok, err := s.Next()
			if err != nil {
				return err
			}
			if ok {
				break
			}
		}
		if len(s.frames) == base {
			return nil
		}
	}
}

// Enter reads the start of the list or mapping that Peek reported.
func (s *jsonSource) Enter() error {
	c, err := s.valueStart()
	if err != nil {
		return err
	}
	if c != '[' && c != '{' {
		kind, ok := kindOf(c)
		if !ok {
			return s.badByte(s.pos, "looking for beginning of value")
		}
		return s.misuse("want a list or a mapping, found " + kind.String())
	}
	if len(s.frames) >= maxDepth {
		return s.errorAt(s.pos+1, fmt.Errorf("nested deeper than %d levels", maxDepth))
	}
	s.pos++
	s.want = false
	s.frames = append(s.frames, jsonFrame{mapping: c == '{'})
	if c == '{' {
		for len(s.keys) < len(s.frames) {
			s.keys = append(s.keys, mappingKeys{})
		}
		s.keys[len(s.frames)-1].reset()
	}
	return nil
}

// Next moves to the next element of the list or mapping entered last: it
// reads the ',' before the element, and in a mapping the element's key and
// ':', returning the key. At the closing ']' or '}' it leaves the list or
// mapping and reports ok == false.
func (s *jsonSource) Next() (key string, ok bool, err error) {
	if s.err != nil {
		return "", false, s.err
	}
	if len(s.frames) == 0 || s.want {
		return "", false, s.misuse("Next called where a value is due or outside a list or mapping")
	}
	f := &s.frames[len(s.frames)-1]
	c, more := s.skipSpace()
	if !more {
		return "", false, s.unexpectedEOF()
	}
	closing := byte(']')
	if f.mapping {
		closing = '}'
	}
	switch {
	case c == closing:
		s.pos++
		s.frames = s.frames[:len(s.frames)-1]
		return "", false, nil
	case f.more && c != ',':
		if f.mapping {
			return "", false, s.badByte(s.pos, "after object key:value pair")
		}
		return "", false, s.badByte(s.pos, "after array element")
	case f.more:
		s.pos++
	}
	f.more = true
	if f.mapping {
		if key, err = s.readKey(); err != nil {
			return "", false, err
		}
	}
	s.want = true
	return key, true, nil
}

// Capture reads the next value, checking it whole as Skip does, and returns
// a Source that reads that value again from its start. The new Source keeps
// the whole document, so that its error positions stay those of the
// document.
func (s *jsonSource) Capture() (pdp.Source, error) {
	if _, err := s.valueStart(); err != nil {
		return nil, err
	}
	start := s.pos
	if err := s.Skip(); err != nil {
		return nil, err
	}
	return &jsonSource{all: s.all, pos: start, end: s.pos, want: true}, nil
}

// End reports an error unless only white space follows the value read.
func (s *jsonSource) End() error {
	if s.err != nil {
		return s.err
	}
	if s.want || len(s.frames) > 0 {
		return s.misuse("End called before the top-level value was read whole")
	}
	if _, more := s.skipSpace(); more {
		return s.errorAt(s.pos, errors.New("unexpected data after the top-level value"))
	}
	return nil
}

// valueStart checks that a value is due, moves past white space and
// returns the value's first byte.
func (s *jsonSource) valueStart() (byte, error) {
	if s.err != nil {
		return 0, s.err
	}
	if !s.want {
		return 0, s.misuse("no value is due here")
	}
	c, more := s.skipSpace()
	if !more {
		return 0, s.unexpectedEOF()
	}
	return c, nil
}

// skipSpace moves past white space and returns the next byte; more is false
// at the end of the data. Most values follow no white space at all (a
// generated document has none), so that case returns first.
func (s *jsonSource) skipSpace() (c byte, more bool) {
	// i < len(s.all) always holds when i < s.end; saying so lets the compiler
	// drop the bounds check.
	if i := s.pos; i < s.end && i < len(s.all) && s.all[i] > ' ' {
		return s.all[i], true
	}
	data := s.all[:s.end]
	i := s.pos
	for ; i < len(data); i++ {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			continue
		}
		s.pos = i
		return data[i], true
	}
	s.pos = i
	return 0, false
}

// kindOf reports the kind of the value whose first byte is c; ok is false
// for a byte that starts no value.
func kindOf(c byte) (kind pdp.Kind, ok bool) {
	switch {
	case c == '"':
		return pdp.String, true
	case c == '-' || ('0' <= c && c <= '9'):
		return pdp.Number, true
	case c == '{':
		return pdp.Mapping, true
	case c == '[':
		return pdp.List, true
	case c == 't' || c == 'f':
		return pdp.Bool, true
	case c == 'n':
		return pdp.Null, true
	}
	return pdp.Null, false
}

// skipScalar reads a value that is neither a list nor a mapping, whose first
// byte is c, without decoding it.
func (s *jsonSource) skipScalar(c byte) error {
	s.want = false
	switch c {
	case '"':
		_, err := s.scanString()
		return err
	case 't':
		return s.readLiteral("true")
	case 'f':
		return s.readLiteral("false")
	case 'n':
		return s.readLiteral("null")
	}
	if c == '-' || ('0' <= c && c <= '9') {
		_, err := s.readNumber()
		return err
	}
	return s.badByte(s.pos, "looking for beginning of value")
}

// readKey reads a mapping's key and the ':' after it, refusing a key the
// mapping already has.
func (s *jsonSource) readKey() (string, error) {
	c, more := s.skipSpace()
	if !more {
		return "", s.unexpectedEOF()
	}
	if c != '"' {
		return "", s.badByte(s.pos, "looking for beginning of object key string")
	}
	key, err := s.readString()
	if err != nil {
		return "", err
	}
	if s.keys[len(s.frames)-1].add(key) {
		return "", s.errorAt(s.pos, fmt.Errorf("duplicate key %q", key))
	}
	c, more = s.skipSpace()
	if !more {
		return "", s.unexpectedEOF()
	}
	if c != ':' {
		return "", s.badByte(s.pos, "after object key")
	}
	s.pos++
	return key, nil
}

// readString reads the string whose opening quote is at s.pos and returns
// its decoded text.
func (s *jsonSource) readString() (string, error) {
	start := s.pos + 1
	escaped, err := s.scanString()
	if err != nil {
		return "", err
	}
	raw := s.all[start : s.pos-1]
	if escaped {
		return unescape(raw), nil
	}
	return bytesString(raw), nil
}

// stringStop marks the bytes that end a run of plain string text: the
// closing quote, an escape, and the control characters JSON forbids raw.
var stringStop = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// scanString checks the string whose opening quote is at s.pos, moves past
// its closing quote and reports whether it holds escapes. Bytes that are not
// valid UTF-8 are left for the policy validator, which names the field.
func (s *jsonSource) scanString() (escaped bool, err error) {
	data := s.all[:s.end]
	i := s.pos + 1
	for {
		i = plainRun(data, i)
		if i >= len(data) {
			return false, s.unexpectedEOF()
		}
		switch data[i] {
		case '"':
			s.pos = i + 1
			return escaped, nil
		case '\\':
			n, err := s.checkEscape(data, i)
			if err != nil {
				return false, err
			}
			escaped = true
			i += n
		default:
			return false, s.badByte(i, "in string literal")
		}
	}
}

// plainRun returns the index of the first byte at or after i that ends a
// run of plain string text (see stringStop), or len(data). Strings are most
// of a policy document, so it looks at eight bytes at a time while it can.
func plainRun(data []byte, i int) int {
	for ; i+8 <= len(data); i += 8 {
		if m := stopMask(binary.LittleEndian.Uint64(data[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for i < len(data) && !stringStop[data[i]] {
		i++
	}
	return i
}

// stopMask sets the high bit of each byte of w (eight bytes of text, the
// first in the low byte) that is a quote, a backslash or below 0x20, using
// the word-at-a-time tests from "Bit Twiddling Hacks": x-0x01…01 & ^x &
// 0x80…80 flags the zero bytes of x, and x-0x20…20 & ^x & 0x80…80 the bytes
// below 0x20. A borrow can wrongly flag a byte above a flagged one, never
// below, so the lowest flag is always exact.
func stopMask(w uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	quote := w ^ (ones * '"')
	backslash := w ^ (ones * '\\')
	return ((quote-ones)&^quote | (backslash-ones)&^backslash | (w-ones*0x20)&^w) & highs
}

// checkEscape checks the escape whose backslash is at data[i] and returns
// its length.
func (s *jsonSource) checkEscape(data []byte, i int) (int, error) {
	if i+1 >= len(data) {
		return 0, s.unexpectedEOF()
	}
	switch data[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, nil
	case 'u':
		for j := i + 2; j < i+6; j++ {
			if j >= len(data) {
				return 0, s.unexpectedEOF()
			}
			if _, ok := hexValue(data[j]); !ok {
				return 0, s.badByte(j, `in \u hexadecimal character escape`)
			}
		}
		return 6, nil
	}
	return 0, s.badByte(i+1, "in string escape code")
}

// hexValue is the value of the hexadecimal digit c.
func hexValue(c byte) (rune, bool) {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0'), true
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10), true
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10), true
	}
	return 0, false
}

// unescape decodes the text of a string that scanString has checked. The
// text never grows in decoding (an escape of 2, 6 or 12 bytes becomes 1 to
// 4), so one allocation of raw's length holds it, and the string is made
// over that allocation, which nothing else holds.
func unescape(raw []byte) string {
	buf := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		if raw[i] != '\\' {
			buf = append(buf, raw[i])
			i++
			continue
		}
		if raw[i+1] != 'u' {
			buf = append(buf, unescapeByte(raw[i+1]))
			i += 2
			continue
		}
		r := hex4(raw[i+2 : i+6])
		i += 6
		if utf16IsHigh(r) && i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
			if low := hex4(raw[i+2 : i+6]); utf16IsLow(low) {
				r = 0x10000 + (r-0xD800)<<10 + (low - 0xDC00)
				i += 6
			}
		}
		buf = appendWTF8(buf, r)
	}
	return bytesString(buf)
}

// unescapeByte is the byte a one-letter escape stands for.
func unescapeByte(c byte) byte {
	switch c {
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	}
	return c // '"', '\\' and '/' stand for themselves
}

// hex4 is the value of four checked hexadecimal digits.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		v, _ := hexValue(c)
		r = r<<4 | v
	}
	return r
}

func utf16IsHigh(r rune) bool { return 0xD800 <= r && r < 0xDC00 }
func utf16IsLow(r rune) bool  { return 0xDC00 <= r && r < 0xE000 }

// appendWTF8 appends r in UTF-8, except that a surrogate, which a lone
// \uD800-\uDFFF escape yields, gets its own three-byte form (WTF-8) instead
// of U+FFFD: the text stays invalid UTF-8, so the policy validator still
// refuses it with the field's path instead of accepting a replaced text.
func appendWTF8(buf []byte, r rune) []byte {
	if 0xD800 <= r && r < 0xE000 {
		return append(buf, 0xE0|byte(r>>12), 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
	}
	return utf8.AppendRune(buf, r)
}

// readNumber reads the number at s.pos, following JSON's grammar
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, and returns its text.
func (s *jsonSource) readNumber() (string, error) {
	data := s.all[:s.end]
	start, i := s.pos, s.pos
	if data[i] == '-' {
		i++
	}
	if i >= len(data) {
		return "", s.unexpectedEOF()
	}
	switch c := data[i]; {
	case c == '0':
		i++
	case '1' <= c && c <= '9':
		i = skipDigits(data, i+1)
	default:
		return "", s.badByte(i, "in numeric literal")
	}
	if i < len(data) && data[i] == '.' {
		if i++; i >= len(data) {
			return "", s.unexpectedEOF()
		}
		if !isDigit(data[i]) {
			return "", s.badByte(i, "after decimal point in numeric literal")
		}
		i = skipDigits(data, i+1)
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		if i++; i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) {
			return "", s.unexpectedEOF()
		}
		if !isDigit(data[i]) {
			return "", s.badByte(i, "in exponent of numeric literal")
		}
		i = skipDigits(data, i+1)
	}
	s.pos = i
	return bytesString(data[start:i]), nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// skipDigits returns the index of the first byte at or after i that is not
// a decimal digit.
func skipDigits(data []byte, i int) int {
	for i < len(data) && isDigit(data[i]) {
		i++
	}
	return i
}

// readLiteral reads true, false or null, whose first byte is at s.pos.
func (s *jsonSource) readLiteral(lit string) error {
	data := s.all[:s.end]
	for k := 1; k < len(lit); k++ {
		i := s.pos + k
		if i >= len(data) {
			return s.unexpectedEOF()
		}
		if data[i] != lit[k] {
			return s.badByte(i, fmt.Sprintf("in literal %s (expecting %s)", lit, strconv.QuoteRune(rune(lit[k]))))
		}
	}
	s.pos += len(lit)
	return nil
}

// bytesString returns b as a string without copying it; b must not change
// while the string is in use.
func bytesString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// smallKeys is how many keys a mapping may have before mappingKeys moves
// them to a map: a linear compare over so few is faster than hashing, and
// needs no allocation.
const smallKeys = 16

// mappingKeys holds the keys met so far in one mapping, to refuse a
// repeated key. One mappingKeys serves every mapping at its depth in turn,
// so its storage is allocated once.
type mappingKeys struct {
	small [smallKeys]string
	n     int                 // keys in small, when big is not in use
	big   map[string]struct{} // every key, once the mapping outgrows small
	large bool                // big is in use
}

// bigKeepLimit bounds the map a mappingKeys keeps for the next mapping:
// clearing a map costs as much as its largest size, so one huge mapping must
// not tax every later one.
const bigKeepLimit = 1024

// reset empties the set for a new mapping.
func (k *mappingKeys) reset() {
	k.n = 0
	if k.large {
		if len(k.big) > bigKeepLimit {
			k.big = nil
		} else {
			clear(k.big)
		}
		k.large = false
	}
}

// add adds key and reports whether the set already held it.
func (k *mappingKeys) add(key string) (repeated bool) {
	if !k.large {
		for _, seen := range k.small[:k.n] {
			if seen == key {
				return true
			}
		}
		if k.n < smallKeys {
			k.small[k.n] = key
			k.n++
			return false
		}
		if k.big == nil {
			k.big = make(map[string]struct{}, 4*smallKeys)
		}
		for _, seen := range k.small {
			k.big[seen] = struct{}{}
		}
		k.large = true
	}
	if _, ok := k.big[key]; ok {
		return true
	}
	k.big[key] = struct{}{}
	return false
}

// badByte reports the byte at index i as unexpected, in the words of
// encoding/json ("invalid character 'x' after array element"). The offset
// is i, the bytes before it, as encoding/json's Decoder reports it to
// jsonError, so the column is the bad byte's own: "{\n  \"a\": [1,,]\n}"
// fails at line 2, column 11, the second comma, in both readers.
func (s *jsonSource) badByte(i int, context string) error {
	return s.errorAt(i, fmt.Errorf("invalid character %s %s", strconv.QuoteRune(rune(s.all[i])), context))
}

// unexpectedEOF reports that the data ends inside a value.
func (s *jsonSource) unexpectedEOF() error {
	return s.errorAt(s.end, io.ErrUnexpectedEOF)
}

// misuse reports a call out of turn, such as Scalar on a list: a fault of
// the reader, not of the document, but an error all the same, never a
// panic.
func (s *jsonSource) misuse(msg string) error {
	return s.errorAt(s.pos, errors.New(msg))
}

// errorAt records err as the source's first error, placed offset bytes into
// the document, and returns the first error.
func (s *jsonSource) errorAt(offset int, err error) error {
	if s.err == nil {
		s.err = jsonPositionError(s.all, offset, err)
	}
	return s.err
}

// jsonPositionError places err at the line and column of offset, counting
// as jsonError does, so that both JSON readers name the same places.
func jsonPositionError(data []byte, offset int, err error) error {
	offset = min(max(offset, 0), len(data))
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	col := offset - bytes.LastIndexByte(before, '\n')
	return fmt.Errorf("invalid JSON at line %d, column %d: %w", line, col, err)
}
