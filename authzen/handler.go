package authzen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/rolecall/rolecall/decide"
	"github.com/rolecall/rolecall/pdp"
)

// The default paths of the HTTPS binding (§10.1) and the well-known
// metadata location (§9.2).
const (
	EvaluationPath  = "/access/v1/evaluation"
	EvaluationsPath = "/access/v1/evaluations"
	// SearchSubjectPath is the Subject Search API (§8.4).
	SearchSubjectPath = "/access/v1/search/subject"
	MetadataPath      = "/.well-known/authzen-configuration"
)

// DefaultMaxEvaluations bounds one Access Evaluations request when
// Options.MaxEvaluations is not set.
const DefaultMaxEvaluations = 1000

// maxBodyBytes bounds a request body (§11.7).
const maxBodyBytes = 1 << 20

// Options configure Handler.
type Options struct {
	// BaseURL is this PDP's base URL for the metadata document
	// (policy_decision_point, §9.1.1), such as "https://pdp.example.com":
	// an absolute URL without query or fragment; a trailing "/" is dropped.
	// The endpoints are advertised under it, so if it has a path, mount the
	// handler there with http.StripPrefix. Empty: derived from each request
	// (scheme and Host).
	BaseURL string
	// MaxEvaluations bounds the items of one Access Evaluations request;
	// zero or less means DefaultMaxEvaluations. More is a 400.
	MaxEvaluations int
}

// Handler serves the AuthZEN Authorization API from dec: POST
// /access/v1/evaluation, POST /access/v1/evaluations, POST
// /access/v1/search/subject (to the callers dec's WhoCan admits) and GET
// /.well-known/authzen-configuration. See the package documentation for the
// mapping and the behaviour. Every decision made goes to dec's recorder, in
// order, before the response is written; evaluations skipped by a
// short-circuit semantic are not decisions. It panics if dec is nil or
// BaseURL is not an absolute URL without query or fragment: both are wiring
// mistakes.
func Handler(dec *decide.Decider, opts Options) http.Handler {
	if dec == nil {
		panic("authzen: Handler needs a Decider")
	}
	h := &handler{dec: dec, maxEvaluations: opts.MaxEvaluations}
	if h.maxEvaluations <= 0 {
		h.maxEvaluations = DefaultMaxEvaluations
	}
	if opts.BaseURL != "" {
		u, err := url.Parse(opts.BaseURL)
		if err != nil || !u.IsAbs() || u.Host == "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
			panic(fmt.Sprintf("authzen: BaseURL %q must be an absolute URL without query or fragment (§9.1.1)", opts.BaseURL))
		}
		h.baseURL = strings.TrimRight(opts.BaseURL, "/")
	}
	return h
}

type handler struct {
	dec            *decide.Decider
	baseURL        string
	maxEvaluations int
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// §10.1.3: a request identifier in the request MUST come back, the same,
	// in the response; X-Request-ID is the RECOMMENDED header. It is set
	// before anything else so that errors carry it too.
	if ids := r.Header.Values("X-Request-ID"); len(ids) > 0 {
		w.Header()["X-Request-Id"] = append([]string(nil), ids...)
	}
	switch r.URL.Path {
	case EvaluationPath:
		h.serveEvaluation(w, r, false)
	case EvaluationsPath:
		h.serveEvaluation(w, r, true)
	case SearchSubjectPath:
		h.serveSearch(w, r)
	case MetadataPath:
		h.serveMetadata(w, r)
	default:
		writeError(w, http.StatusNotFound, "no AuthZEN endpoint at "+r.URL.Path)
	}
}

// serveEvaluation answers an Access Evaluation (§6) or, when batch is set,
// an Access Evaluations (§7) request.
func (h *handler) serveEvaluation(w http.ResponseWriter, r *http.Request, batch bool) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	req, err := parseRequest(body, batch, h.maxEvaluations)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}

	// One snapshot answers the whole request, so every result comes from one
	// policy even if a new one is swapped in meanwhile.
	snap, err := h.dec.Snapshot()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, pdp.ErrNoPolicy.Error())
		return
	}
	if !req.batch {
		writeJSON(w, http.StatusOK, h.decide(snap, req.evaluations[0]))
		return
	}
	results := make([]decision, 0, len(req.evaluations))
	for _, q := range req.evaluations {
		d := h.decide(snap, q)
		results = append(results, d)
		// §7.1.2.1: the short-circuit semantics return on the first deny
		// (like &&) or the first permit (like ||); that result is the last.
		if req.semantic == denyOnFirstDeny && !d.Decision ||
			req.semantic == permitOnFirstPermit && d.Decision {
			break
		}
	}
	// §7.2: the results in request order; the top-level "decision" is
	// omitted, as RECOMMENDED.
	writeJSON(w, http.StatusOK, evaluationsResponse{Evaluations: results})
}

// readBody reads the body of an API request, or answers the request with
// an error and returns false.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	// §10.1: every API request is an HTTPS POST.
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use POST")
		return nil, false
	}
	// §10.1: requests MUST include Content-Type: application/json.
	if msg := checkContentType(r.Header.Values("Content-Type")); msg != "" {
		writeError(w, http.StatusUnsupportedMediaType, msg)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over %d bytes (1 MiB)", maxBodyBytes))
			return nil, false
		}
		writeError(w, http.StatusBadRequest, "could not read the request body")
		return nil, false
	}
	return body, true
}

// kind names AuthZEN's decisions in the metrics and the decision log.
const decisionKind = "authzen"

func (h *handler) decide(snap *pdp.Snapshot, q pdp.Query) decision {
	d := h.dec.DecideIn(snap, decisionKind, "", q)
	return decision{
		Decision: d.Allowed,
		Context: &decisionContext{
			Reason:         d.Reason.String(),
			MatchedRole:    d.MatchedRole,
			PolicyRevision: d.Revision,
		},
	}
}

// decision is a Decision (§5.5) as sent in a response.
type decision struct {
	Decision bool             `json:"decision"`
	Context  *decisionContext `json:"context,omitempty"`
}

// decisionContext is rolecall's Decision context (§5.5.1, §5.5.2).
type decisionContext struct {
	Reason         string `json:"reason"`
	MatchedRole    string `json:"matched_role,omitempty"`
	PolicyRevision string `json:"policy_revision,omitempty"`
}

// evaluationsResponse is the Access Evaluations API Response (§7.2).
type evaluationsResponse struct {
	Evaluations []decision `json:"evaluations"`
}

// metadata is the PDP metadata document (§9.1.1). Endpoints this PDP does
// not serve are omitted: their absence tells the PEP so.
type metadata struct {
	PolicyDecisionPoint       string `json:"policy_decision_point"`
	AccessEvaluationEndpoint  string `json:"access_evaluation_endpoint"`
	AccessEvaluationsEndpoint string `json:"access_evaluations_endpoint"`
	SearchSubjectEndpoint     string `json:"search_subject_endpoint,omitempty"`
}

// serveMetadata answers the PDP metadata request (§9.2.1, §9.2.2).
func (h *handler) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use GET")
		return
	}
	base := h.baseURL
	if base == "" {
		if r.Host == "" {
			writeError(w, http.StatusBadRequest, "the request has no Host, so policy_decision_point cannot be derived; the PDP's BaseURL is not configured")
			return
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	// §11.9: let PEPs cache the metadata for a while.
	w.Header().Set("Cache-Control", "max-age=300")
	md := metadata{
		PolicyDecisionPoint:       base,
		AccessEvaluationEndpoint:  base + EvaluationPath,
		AccessEvaluationsEndpoint: base + EvaluationsPath,
	}
	// Subject Search is advertised unless it is off: local only, it still
	// answers the PEPs on this host, the ones a sidecar serves.
	if h.dec.WhoCan() != decide.WhoCanOff {
		md.SearchSubjectEndpoint = base + SearchSubjectPath
	}
	writeJSON(w, http.StatusOK, md)
}

// checkContentType returns why the Content-Type values are not JSON, or "".
func checkContentType(values []string) string {
	const want = "Content-Type must be application/json (AuthZEN 1.0 §10.1)"
	if len(values) != 1 {
		return want
	}
	mt, params, err := mime.ParseMediaType(values[0])
	if err != nil || mt != "application/json" {
		return want
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return "Content-Type charset must be utf-8 (RFC 8259 §8.1)"
	}
	return ""
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Unreachable: every value written here is plain data.
		code = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"internal error"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}
