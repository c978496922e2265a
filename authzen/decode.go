package authzen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/rolecall/rolecall/pdp"
)

// semantic is an evaluations semantic (§7.1.2.1).
type semantic uint8

const (
	executeAll semantic = iota
	denyOnFirstDeny
	permitOnFirstPermit
)

// request is a parsed and validated Access Evaluation(s) request.
type request struct {
	// batch: the response is an Access Evaluations Response (§7.2) holding
	// one result per evaluation; otherwise a single Decision (§6.2).
	batch       bool
	evaluations []pdp.Query
	semantic    semantic
}

// The entities of the information model (§5), reduced to what rolecall
// reads, each with its path in the request for error messages.
type (
	subject struct {
		path   string
		typ    string
		id     string
		org    string // properties.org
		hasOrg bool
	}
	resource struct {
		path string
		typ  string
	}
	action struct {
		path string
		name string
	}
	evalContext struct {
		path   string
		org    string
		hasOrg bool
	}
	// tuple is an Access Evaluation request (§6.1) or an item of
	// "evaluations" (§7.1); nil entities are absent.
	tuple struct {
		subject  *subject
		action   *action
		resource *resource
		context  *evalContext
	}
)

// parseRequest parses an Access Evaluation request (§6.1) or, when batch is
// set, an Access Evaluations request (§7.1), and validates every evaluation
// in it. Its errors are messages for the client, naming the offending member
// by its path, such as "evaluations[3].subject.id: must not be empty".
func parseRequest(body []byte, batch bool, maxEvaluations int) (*request, error) {
	top, err := topObject(body)
	if err != nil {
		return nil, err
	}
	defaults, err := decodeTuple(top, "")
	if err != nil {
		return nil, err
	}

	req := &request{batch: batch}
	var items []json.RawMessage
	if batch {
		if req.semantic, err = decodeOptions(top); err != nil {
			return nil, err
		}
		if v, ok := top["evaluations"]; ok && !isNull(v) {
			if items, err = array(v, "evaluations", maxEvaluations); err != nil {
				return nil, err
			}
		}
	}
	if len(items) == 0 {
		// §6.1, and §7.1: without items (absent or empty), an Access
		// Evaluations request is a single Access Evaluation request.
		req.batch = false
		q, err := evaluation(defaults, tuple{}, "")
		if err != nil {
			return nil, err
		}
		req.evaluations = []pdp.Query{q}
	} else {
		req.evaluations = make([]pdp.Query, 0, len(items))
		for i, raw := range items {
			prefix := "evaluations[" + strconv.Itoa(i) + "]"
			m, err := object(raw, prefix)
			if err != nil {
				return nil, err
			}
			item, err := decodeTuple(m, prefix+".")
			if err != nil {
				return nil, err
			}
			q, err := evaluation(defaults, item, prefix)
			if err != nil {
				return nil, err
			}
			req.evaluations = append(req.evaluations, q)
		}
	}
	// Strings rolecall reads were checked one by one, naming the member; this
	// covers the members it ignores (RFC 8259 §8.1, §11.5).
	if !utf8.Valid(body) {
		return nil, errors.New("request body is not valid UTF-8")
	}
	return req, nil
}

// topObject returns the members of a request body, which must be a JSON
// object without duplicate member names.
func topObject(body []byte) (map[string]json.RawMessage, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errors.New("request body is empty; want a JSON object")
	}
	var raw json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			return nil, fmt.Errorf("request body is not valid JSON: %v (at byte %d)", se, se.Offset)
		}
		return nil, fmt.Errorf("request body is not valid JSON: %v", err)
	}
	// §10.1.1: the top-level element of every body MUST be an object.
	if kind(raw) != "an object" {
		return nil, fmt.Errorf("request body must be a JSON object, not %s", kind(raw))
	}
	return object(raw, "request body")
}

// evaluation applies the defaults to an item (§7.1.1) and validates the
// resulting query. item is empty and itemPath "" for a single evaluation.
func evaluation(defaults, item tuple, itemPath string) (pdp.Query, error) {
	// §7.1.1: a key present in the item overrides the top-level default
	// for that key, whole.
	t := defaults
	if item.subject != nil {
		t.subject = item.subject
	}
	if item.action != nil {
		t.action = item.action
	}
	if item.resource != nil {
		t.resource = item.resource
	}
	if item.context != nil {
		t.context = item.context
	}
	// §6.1: subject, action and resource are REQUIRED; §7.1.1: one omitted
	// from an item MUST be given as a top-level key; §10.1.1: a missing
	// required attribute is a Bad Request.
	missing := func(key string) error {
		if itemPath == "" {
			return fmt.Errorf("%s: is required", key)
		}
		return fmt.Errorf("%s.%s: is required (in the item or as a top-level default)", itemPath, key)
	}
	switch {
	case t.subject == nil:
		return pdp.Query{}, missing("subject")
	case t.action == nil:
		return pdp.Query{}, missing("action")
	case t.resource == nil:
		return pdp.Query{}, missing("resource")
	}

	q := pdp.Query{Subject: t.subject.id, Resource: t.resource.typ, Action: t.action.name}
	var orgPath string
	var err error
	if q.Org, orgPath, err = organization(t); err != nil {
		return pdp.Query{}, err
	}
	if err := q.Validate(); err != nil {
		return pdp.Query{}, memberError(err, t, orgPath)
	}
	return q, nil
}

// organization is the organization of t and the path it came from:
// context.org if present, else subject.properties.org if present, else none.
func organization(t tuple) (org, path string, err error) {
	switch {
	case t.context != nil && t.context.hasOrg:
		org, path = t.context.org, t.context.path+".org"
	case t.subject.hasOrg:
		org, path = t.subject.org, t.subject.path+".properties.org"
	}
	if path != "" && org == "" {
		// Not "no organization": that would decide on the global roles,
		// which may grant what the organization's roles do not.
		return "", "", fmt.Errorf("%s: must not be empty; omit it to decide without an organization", path)
	}
	return org, path, nil
}

// memberError restates a *pdp.QueryError about t with the path of the
// request member the field came from.
func memberError(err error, t tuple, orgPath string) error {
	qe, ok := errors.AsType[*pdp.QueryError](err)
	if !ok {
		return err
	}
	path := qe.Field
	switch qe.Field {
	case "subject":
		path = t.subject.path + ".id"
	case "org":
		path = orgPath
	case "resource":
		path = t.resource.path + ".type"
	case "action":
		path = t.action.path + ".name"
	case "page_size":
		path = "page.limit"
	case "page_token":
		path = "page.token"
	}
	return fmt.Errorf("%s: %s", path, qe.Reason)
}

// decodeTuple decodes the subject, action, resource and context members of
// an object; prefix is prepended to their paths ("" or "evaluations[3].").
// Other members are ignored (§10.1.1).
func decodeTuple(m map[string]json.RawMessage, prefix string) (tuple, error) {
	var t tuple
	var err error
	if v, ok := present(m, "subject"); ok {
		if t.subject, err = decodeSubject(v, prefix+"subject", false); err != nil {
			return t, err
		}
	}
	if v, ok := present(m, "action"); ok {
		if t.action, err = decodeAction(v, prefix+"action"); err != nil {
			return t, err
		}
	}
	if v, ok := present(m, "resource"); ok {
		if t.resource, err = decodeResource(v, prefix+"resource", false); err != nil {
			return t, err
		}
	}
	if v, ok := present(m, "context"); ok {
		if t.context, err = decodeContext(v, prefix+"context"); err != nil {
			return t, err
		}
	}
	return t, nil
}

// decodeSubject decodes a Subject (§5.1): type and id are REQUIRED strings,
// properties an OPTIONAL object. rolecall reads properties.org. The subject
// of a Subject Search (searched) has no id: if present it MUST be ignored
// (§8.4.1), and it is, whatever its value.
func decodeSubject(raw json.RawMessage, path string, searched bool) (*subject, error) {
	m, err := object(raw, path)
	if err != nil {
		return nil, err
	}
	typ, err := requiredString(m, "type", path)
	if err != nil {
		return nil, err
	}
	if err := checkUnused(typ, path+".type", true); err != nil {
		return nil, err
	}
	s := &subject{path: path, typ: typ}
	if !searched {
		if s.id, err = requiredString(m, "id", path); err != nil {
			return nil, err
		}
	}
	props, err := properties(m, path)
	if err != nil || props == nil {
		return s, err
	}
	if v, ok := present(props, "org"); ok {
		if s.org, err = str(v, path+".properties.org"); err != nil {
			return nil, err
		}
		s.hasOrg = true
	}
	return s, nil
}

// decodeResource decodes a Resource (§5.2): type and id are REQUIRED
// strings, properties an OPTIONAL object. The type is rolecall's resource
// id; the id is not used. In a search (idOptional) the id may be absent, as
// in the examples of §8.2.3: a type-level question has no instance to name.
func decodeResource(raw json.RawMessage, path string, idOptional bool) (*resource, error) {
	m, err := object(raw, path)
	if err != nil {
		return nil, err
	}
	r := &resource{path: path}
	if r.typ, err = requiredString(m, "type", path); err != nil {
		return nil, err
	}
	if _, ok := present(m, "id"); ok || !idOptional {
		id, err := requiredString(m, "id", path)
		if err != nil {
			return nil, err
		}
		if err := checkUnused(id, path+".id", false); err != nil {
			return nil, err
		}
	}
	if _, err := properties(m, path); err != nil {
		return nil, err
	}
	return r, nil
}

// decodeAction decodes an Action (§5.3): name is a REQUIRED string,
// properties an OPTIONAL object.
func decodeAction(raw json.RawMessage, path string) (*action, error) {
	m, err := object(raw, path)
	if err != nil {
		return nil, err
	}
	a := &action{path: path}
	if a.name, err = requiredString(m, "name", path); err != nil {
		return nil, err
	}
	if _, err := properties(m, path); err != nil {
		return nil, err
	}
	return a, nil
}

// decodeContext decodes a Context (§5.4), an object. rolecall reads org.
func decodeContext(raw json.RawMessage, path string) (*evalContext, error) {
	m, err := object(raw, path)
	if err != nil {
		return nil, err
	}
	c := &evalContext{path: path}
	if v, ok := present(m, "org"); ok {
		if c.org, err = str(v, path+".org"); err != nil {
			return nil, err
		}
		c.hasOrg = true
	}
	return c, nil
}

// decodeOptions reads options.evaluations_semantic (§7.1.2, §7.1.2.1).
// Other options are ignored.
func decodeOptions(top map[string]json.RawMessage) (semantic, error) {
	v, ok := present(top, "options")
	if !ok {
		return executeAll, nil
	}
	m, err := object(v, "options")
	if err != nil {
		return executeAll, err
	}
	v, ok = present(m, "evaluations_semantic")
	if !ok {
		return executeAll, nil
	}
	s, err := str(v, "options.evaluations_semantic")
	if err != nil {
		return executeAll, err
	}
	switch s {
	case "execute_all":
		return executeAll, nil
	case "deny_on_first_deny":
		return denyOnFirstDeny, nil
	case "permit_on_first_permit":
		return permitOnFirstPermit, nil
	}
	return executeAll, fmt.Errorf("options.evaluations_semantic: %q is not one of execute_all, deny_on_first_deny, permit_on_first_permit", s)
}

// properties checks the OPTIONAL properties member of an entity (§5.1-5.3)
// and returns its members, nil when absent.
func properties(m map[string]json.RawMessage, path string) (map[string]json.RawMessage, error) {
	v, ok := present(m, "properties")
	if !ok {
		return nil, nil
	}
	return object(v, path+".properties")
}

// checkUnused bounds a string rolecall accepts but does not decide on, as
// pdp.Query.Validate bounds the ones it does.
func checkUnused(s, path string, required bool) error {
	switch {
	case s == "" && required:
		return fmt.Errorf("%s: must not be empty", path)
	case len(s) > pdp.MaxIDLen:
		return fmt.Errorf("%s: is %d bytes long; the limit is %d", path, len(s), pdp.MaxIDLen)
	}
	return nil
}

// present returns the member key of m unless it is absent or null: a null
// member is treated as absent (§11.5 asks senders to omit them).
func present(m map[string]json.RawMessage, key string) (json.RawMessage, bool) {
	v, ok := m[key]
	if !ok || isNull(v) {
		return nil, false
	}
	return v, true
}

// requiredString returns the string member key of m.
func requiredString(m map[string]json.RawMessage, key, path string) (string, error) {
	v, ok := present(m, key)
	if !ok {
		return "", fmt.Errorf("%s.%s: is required", path, key)
	}
	return str(v, path+"."+key)
}

// object returns the members of the JSON object raw, rejecting duplicate
// member names (§11.5): two readers of a request must not see two
// different requests.
func object(raw json.RawMessage, path string) (map[string]json.RawMessage, error) {
	if k := kind(raw); k != "an object" {
		return nil, fmt.Errorf("%s: must be an object, not %s", path, k)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	m := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		key, _ := tok.(string)
		if _, dup := m[key]; dup {
			return nil, fmt.Errorf("%s: duplicate member %q", path, key)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%s.%s: %v", path, key, err)
		}
		m[key] = v
	}
	return m, nil
}

// array returns the elements of the JSON array raw, failing as soon as
// there are more than max of them.
func array(raw json.RawMessage, path string, max int) ([]json.RawMessage, error) {
	if k := kind(raw); k != "an array" {
		return nil, fmt.Errorf("%s: must be an array, not %s", path, k)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // [
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	var items []json.RawMessage
	for dec.More() {
		if len(items) == max {
			return nil, fmt.Errorf("%s: more than %d items; this PDP evaluates at most %d per request", path, max, max)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%s[%d]: %v", path, len(items), err)
		}
		items = append(items, v)
	}
	return items, nil
}

// str returns the JSON string raw. encoding/json would turn invalid UTF-8
// and unpaired surrogate escapes into U+FFFD without a word, so the raw
// text is checked first (§11.5: I-JSON, RFC 7493 §2.1).
func str(raw json.RawMessage, path string) (string, error) {
	if k := kind(raw); k != "a string" {
		return "", fmt.Errorf("%s: must be a string, not %s", path, k)
	}
	if !validString(raw) {
		return "", fmt.Errorf("%s: is not valid UTF-8", path)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%s: %v", path, err)
	}
	return s, nil
}

// validString reports whether the JSON string literal raw (syntactically
// valid) is valid UTF-8 and escapes no unpaired surrogate.
func validString(raw []byte) bool {
	if !utf8.Valid(raw) {
		return false
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++
		if raw[i] != 'u' {
			continue
		}
		r := hex4(raw[i+1 : i+5])
		i += 4
		switch {
		case r >= 0xD800 && r < 0xDC00: // high surrogate: a low one must follow
			if i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
				if lo := hex4(raw[i+3 : i+7]); lo >= 0xDC00 && lo < 0xE000 {
					i += 6
					continue
				}
			}
			return false
		case r >= 0xDC00 && r < 0xE000: // low surrogate alone
			return false
		}
	}
	return true
}

func hex4(b []byte) rune {
	n, err := strconv.ParseUint(string(b), 16, 16)
	if err != nil {
		return utf8.RuneError
	}
	return rune(n)
}

// kind names the JSON type of the (syntactically valid) value raw.
func kind(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func isNull(raw []byte) bool { return kind(raw) == "null" }
