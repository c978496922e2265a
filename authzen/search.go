package authzen

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/rolecall/rolecall/decide"
	"github.com/rolecall/rolecall/pdp"
)

// searchRequest is a parsed and validated Subject Search request (§8.4.1).
type searchRequest struct {
	// subjectType is echoed into every result: the policy does not filter
	// subjects by an AuthZEN type.
	subjectType string
	query       pdp.SubjectQuery
}

// parseSearch parses a Subject Search request (§8.4.1) with its page object
// (§8.2.1) and validates it as the evaluation endpoints do theirs. The page
// token is the one this package handed out; its binding to the search is
// checked here and the engine's token inside it is returned in the query.
func parseSearch(body []byte) (*searchRequest, error) {
	top, err := topObject(body)
	if err != nil {
		return nil, err
	}
	var t tuple
	if v, ok := present(top, "subject"); ok {
		if t.subject, err = decodeSubject(v, "subject", true); err != nil {
			return nil, err
		}
	}
	if v, ok := present(top, "action"); ok {
		if t.action, err = decodeAction(v, "action"); err != nil {
			return nil, err
		}
	}
	if v, ok := present(top, "resource"); ok {
		if t.resource, err = decodeResource(v, "resource", true); err != nil {
			return nil, err
		}
	}
	if v, ok := present(top, "context"); ok {
		if t.context, err = decodeContext(v, "context"); err != nil {
			return nil, err
		}
	}
	// §8.4.1: subject (with its type), action and resource are REQUIRED.
	switch {
	case t.subject == nil:
		return nil, errors.New("subject: is required (with its type; its id is ignored)")
	case t.action == nil:
		return nil, errors.New("action: is required")
	case t.resource == nil:
		return nil, errors.New("resource: is required")
	}
	req := &searchRequest{subjectType: t.subject.typ}
	q := &req.query
	q.Resource, q.Action = t.resource.typ, t.action.name
	var orgPath string
	if q.Org, orgPath, err = organization(t); err != nil {
		return nil, err
	}
	var token string
	if v, ok := present(top, "page"); ok {
		if q.Limit, token, err = decodePage(v); err != nil {
			return nil, err
		}
	}
	if err := q.Validate(); err != nil {
		return nil, memberError(err, t, orgPath)
	}
	if token != "" {
		if q.PageToken, err = req.unwrapToken(token); err != nil {
			return nil, err
		}
	}
	if !utf8.Valid(body) {
		return nil, errors.New("request body is not valid UTF-8")
	}
	return req, nil
}

// decodePage reads a Search API Request's page object (§8.2.1): an OPTIONAL
// token string and an OPTIONAL non-negative integer limit. Its properties
// and other members are ignored (§10.1.1). A limit of 0 or none is
// pdp.DefaultPageSize; one over pdp.MaxPageSize is lowered to it, since the
// limit is a maximum and a PDP may answer fewer.
func decodePage(raw json.RawMessage) (limit int, token string, err error) {
	m, err := object(raw, "page")
	if err != nil {
		return 0, "", err
	}
	if v, ok := present(m, "token"); ok {
		if token, err = str(v, "page.token"); err != nil {
			return 0, "", err
		}
		if err := checkUnused(token, "page.token", false); err != nil {
			return 0, "", err
		}
	}
	if v, ok := present(m, "limit"); ok {
		if limit, err = nonNegativeInt(v, "page.limit"); err != nil {
			return 0, "", err
		}
		limit = min(limit, pdp.MaxPageSize)
	}
	if _, ok := present(m, "properties"); ok {
		if _, err := object(m["properties"], "page.properties"); err != nil {
			return 0, "", err
		}
	}
	return limit, token, nil
}

// nonNegativeInt reads a JSON number written as a non-negative integer
// (digits only: no sign, fraction or exponent). One too large for an int is
// returned as pdp.MaxPageSize + 1, which its only caller lowers anyway.
func nonNegativeInt(raw json.RawMessage, path string) (int, error) {
	lit := strings.TrimSpace(string(raw))
	if k := kind(raw); k != "a number" {
		return 0, fmt.Errorf("%s: must be a non-negative integer, not %s", path, k)
	}
	n, err := strconv.ParseUint(lit, 10, 31)
	switch {
	case err == nil:
		return int(n), nil
	case errors.Is(err, strconv.ErrRange) && strings.Trim(lit, "0123456789") == "":
		return pdp.MaxPageSize + 1, nil
	}
	return 0, fmt.Errorf("%s: %s is not a non-negative integer", path, lit)
}

// A page token of this endpoint is the engine's token and a tag of the
// search it continues, so that a token sent with another search is refused
// (§8.2: the entities and the limit MUST stay as they were, and the PDP
// SHOULD return an error when they change).
func (r *searchRequest) wrapToken(tok string) string {
	if tok == "" {
		return ""
	}
	return tok + "." + base64.RawURLEncoding.EncodeToString(binary.LittleEndian.AppendUint64(nil, r.tag()))
}

func (r *searchRequest) unwrapToken(tok string) (string, error) {
	inner, tag, ok := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(tag)
	if !ok || inner == "" || err != nil || len(b) != 8 {
		return "", errors.New("page.token: is not a page token of this PDP; start again without one")
	}
	if binary.LittleEndian.Uint64(b) != r.tag() {
		return "", errors.New("page.token: continues another search; subject.type, action, resource, the organization and page.limit must be as in the request that returned it")
	}
	return inner, nil
}

func (r *searchRequest) tag() uint64 {
	h := fnv.New64a()
	for _, s := range [...]string{r.subjectType, r.query.Org, r.query.Resource, r.query.Action, strconv.Itoa(r.query.Limit)} {
		h.Write(binary.AppendUvarint(nil, uint64(len(s))))
		h.Write([]byte(s))
	}
	return h.Sum64()
}

// searchResponse is a Search API Response (§8.3), page first as
// RECOMMENDED.
type searchResponse struct {
	Page    searchPage     `json:"page"`
	Context *searchContext `json:"context"`
	Results []foundSubject `json:"results"`
}

// searchPage is a Paginated Response's page object (§8.2.2). next_token is
// always sent, "" on the last page.
type searchPage struct {
	NextToken string `json:"next_token"`
	Count     int    `json:"count"`
}

// searchContext explains the results as a Decision's context does the
// decision: reason is GRANTED, or why there can be none (UNKNOWN_RESOURCE,
// UNKNOWN_ACTION, UNKNOWN_ORGANIZATION).
type searchContext struct {
	Reason         string `json:"reason"`
	PolicyRevision string `json:"policy_revision"`
}

// foundSubject is a Subject (§5.1) of the results.
type foundSubject struct {
	Type       string            `json:"type"`
	ID         string            `json:"id"`
	Properties subjectProperties `json:"properties"`
}

type subjectProperties struct {
	MatchedRole string `json:"matched_role"`
}

// serveSearch answers a Subject Search request (§8.4).
func (h *handler) serveSearch(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	req, err := parseSearch(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	page, err := h.dec.ListSubjects(r.Context(), req.query, loopback(r.RemoteAddr))
	if err != nil {
		var refused *decide.RefusedError
		var qerr *pdp.QueryError
		switch {
		case errors.As(err, &refused):
			writeError(w, http.StatusForbidden, refused.Error())
		case errors.Is(err, pdp.ErrNoPolicy):
			writeError(w, http.StatusServiceUnavailable, pdp.ErrNoPolicy.Error())
		case errors.As(err, &qerr):
			// The request was valid and the token continues this search,
			// but of a policy revision no longer served.
			writeError(w, http.StatusBadRequest, "page.token: "+qerr.Reason)
		default:
			writeError(w, http.StatusInternalServerError, "internal error")
		}
		return
	}
	resp := searchResponse{
		Page:    searchPage{NextToken: req.wrapToken(page.NextPageToken), Count: len(page.Subjects)},
		Context: &searchContext{Reason: page.Reason.String(), PolicyRevision: page.Revision},
		Results: make([]foundSubject, len(page.Subjects)),
	}
	for i, s := range page.Subjects {
		resp.Results[i] = foundSubject{Type: req.subjectType, ID: s.Subject, Properties: subjectProperties{MatchedRole: s.MatchedRole}}
	}
	writeJSON(w, http.StatusOK, resp)
}

// loopback reports whether a request's remote address is a loopback one:
// a caller on this host.
func loopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
