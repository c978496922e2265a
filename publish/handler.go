package publish

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rolecall/rolecall/bundle"
	"github.com/rolecall/rolecall/refresh"
)

// Handler serves GET and HEAD /v1/policy.
func (p *Publisher) Handler() http.Handler { return http.HandlerFunc(p.serveHTTP) }

func (p *Publisher) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != Path {
		p.plain(w, http.StatusNotFound, formatNone, "404 page not found: the policy is at "+Path)
		return
	}
	if p.token != nil {
		if err := p.token.check(r); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rolecall"`)
			p.log.Debug("publish: request refused", "remote", r.RemoteAddr, "reason", err.Error())
			p.plain(w, http.StatusUnauthorized, formatNone, "401 unauthorized: send Authorization: Bearer with the publish token")
			return
		}
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		p.plain(w, http.StatusMethodNotAllowed, formatNone, "405 method not allowed: use GET or HEAD")
		return
	}

	accept := parseAccept(r.Header.Values("Accept"))
	useGzip := acceptsGzip(r.Header.Values("Accept-Encoding"))
	inm := r.Header.Values("If-None-Match")
	waitSeconds := p.waitPreference(r.Header.Values("Prefer"))
	h := w.Header()
	// Prefer too: a cache must not answer a long poll with a stored answer
	// to a request that did not wait (RFC 7240, section 2).
	h.Set("Vary", "Accept, Accept-Encoding, Prefer")
	if waitSeconds > 0 {
		h.Set("Preference-Applied", "wait="+strconv.Itoa(waitSeconds))
	}

	// Negotiate against the current state; when the client holds it and
	// asked to wait, hold the request until a state it does not hold is
	// published (negotiated again: a policy republished with the same
	// content keeps it waiting), or the wait ends.
	st := p.state.Load()
	var rep *representation
	var timer *time.Timer
	for !st.withheld {
		if st.loaded() {
			var code int
			var msg string
			rep, code, msg = negotiate(st, accept)
			if rep == nil {
				h.Del("Preference-Applied")
				p.plain(w, code, formatNone, msg)
				return
			}
			if !matches(inm, rep) {
				break
			}
		}
		if waitSeconds == 0 {
			break
		}
		if timer == nil {
			timer = time.NewTimer(min(time.Duration(waitSeconds)*time.Second, p.opts.MaxWait))
			defer timer.Stop()
		}
		if !p.wait(r, st, timer) {
			break
		}
		st = p.state.Load()
	}

	if st.withheld {
		h.Del("Preference-Applied")
		h.Set("Retry-After", "5")
		p.plain(w, http.StatusServiceUnavailable, formatNone, "503 the policy is stale (older than this rolecall's policy.max_stale, with on_stale: fail) and withheld until its upstream answers again")
		return
	}
	if !st.loaded() {
		h.Set("Retry-After", "1")
		p.plain(w, http.StatusServiceUnavailable, formatNone, "503 no policy loaded yet: this rolecall publishes its policy once it has one")
		return
	}
	h.Set("Cache-Control", "no-cache")
	h.Set(refresh.PublishedAtHeader, st.publishedAtText)
	h.Set(RevisionHeader, st.revision)
	etag, body := rep.etag, rep.body
	if useGzip {
		etag = rep.gzipTag()
	}
	h.Set("ETag", etag)
	if matches(inm, rep) {
		p.count(http.StatusNotModified, rep.format, 0)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if useGzip {
		body = rep.gzip()
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Type", rep.mediaType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		p.count(http.StatusOK, rep.format, 0)
		return
	}
	n, _ := w.Write(body)
	p.count(http.StatusOK, rep.format, n)
}

// wait holds the request until st is replaced (true), or the timer fires or
// the client goes away or the server shuts down (false).
func (p *Publisher) wait(r *http.Request, st *state, timer *time.Timer) bool {
	p.waiting.Add(1)
	defer p.waiting.Add(-1)
	select {
	case <-st.changed:
		return true
	case <-timer.C:
	case <-r.Context().Done():
	}
	return false
}

func (p *Publisher) plain(w http.ResponseWriter, code int, format, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	n, _ := w.Write([]byte(msg + "\n"))
	p.count(code, format, n)
}

func (p *Publisher) count(code int, format string, n int) {
	if p.metrics == nil {
		return
	}
	p.metrics.requests.WithLabelValues(strconv.Itoa(code), format).Inc()
	if n > 0 && format != formatNone {
		p.metrics.sent.WithLabelValues(format).Add(float64(n))
	}
}

// negotiate picks the representation of st that accept prefers, or says why
// none is acceptable.
func negotiate(st *state, accept acceptList) (*representation, int, string) {
	snapQ := accept.q(bundle.MediaType) // a nil list accepts everything
	jsonQ := 0.0
	if st.hasJSON {
		jsonQ = accept.q(JSONMediaType)
	}
	switch {
	case snapQ > 0 && snapQ >= jsonQ:
		return st.snapshot, 0, ""
	case jsonQ > 0:
		rep, err := st.jsonRepresentation()
		if err != nil {
			return nil, http.StatusInternalServerError, "500 the policy could not be written as JSON: " + err.Error()
		}
		return rep, 0, ""
	case !st.hasJSON && accept.q(JSONMediaType) > 0:
		return nil, http.StatusNotAcceptable, "406 not acceptable: this policy came from a published snapshot bundle, so there is no document to serve as " +
			JSONMediaType + "; ask for " + bundle.MediaType
	default:
		offered := bundle.MediaType
		if st.hasJSON {
			offered += ", " + JSONMediaType
		}
		return nil, http.StatusNotAcceptable, "406 not acceptable: this publisher serves " + offered
	}
}

// matches reports whether If-None-Match (its header values) names rep, in
// either encoding, or is *. The comparison is weak, as RFC 9110 has it for
// If-None-Match.
func matches(inm []string, rep *representation) bool {
	if rep == nil {
		return false
	}
	for _, v := range inm {
		for tag := range strings.SplitSeq(v, ",") {
			tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
			if tag == "*" || tag == rep.etag || tag == rep.gzipTag() {
				return true
			}
		}
	}
	return false
}

// waitPreference is the wait=N of Prefer (RFC 7240), in seconds, capped at
// MaxWait (rounded up to a second); 0 when absent, malformed or 0. The
// first wait preference counts.
func (p *Publisher) waitPreference(prefer []string) int {
	capSeconds := int((p.opts.MaxWait + time.Second - 1) / time.Second)
	for _, v := range prefer {
		for pref := range strings.SplitSeq(v, ",") {
			pref, _, _ = strings.Cut(pref, ";")
			name, value, ok := strings.Cut(pref, "=")
			if !strings.EqualFold(strings.TrimSpace(name), "wait") {
				continue
			}
			value = strings.TrimSpace(value)
			if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
				value = value[1 : len(value)-1]
			}
			if !ok || value == "" || strings.Trim(value, "0123456789") != "" {
				return 0 // malformed: ignored
			}
			if len(value) > 9 {
				return capSeconds
			}
			n, _ := strconv.Atoi(value)
			return min(n, capSeconds)
		}
	}
	return 0
}

// mediaRange is one element of Accept.
type mediaRange struct {
	typ, sub string // lower case; "*" for a wildcard
	q        float64
}

// acceptList is a parsed Accept; nil when the request has none (or none that
// parses), which accepts everything.
type acceptList []mediaRange

// parseAccept parses Accept's values. Malformed elements are ignored.
func parseAccept(values []string) acceptList {
	var l acceptList
	for _, v := range values {
		for elem := range strings.SplitSeq(v, ",") {
			params := strings.Split(elem, ";")
			mt := strings.ToLower(strings.TrimSpace(params[0]))
			if mt == "" {
				continue
			}
			if mt == "*" {
				mt = "*/*" // what some clients send for */*
			}
			typ, sub, ok := strings.Cut(mt, "/")
			if !ok || typ == "" || sub == "" || (typ == "*" && sub != "*") {
				continue
			}
			q, good := 1.0, true
			for _, param := range params[1:] {
				name, value, _ := strings.Cut(param, "=")
				if !strings.EqualFold(strings.TrimSpace(name), "q") {
					continue
				}
				f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
				if err != nil || f < 0 || f > 1 {
					good = false
				}
				q = f
			}
			if good {
				l = append(l, mediaRange{typ, sub, q})
			}
		}
	}
	return l
}

// q is the quality of mediaType (lower case type/subtype): that of the most
// specific range matching it, 0 when none does, 1 when l is empty.
func (l acceptList) q(mediaType string) float64 {
	if l == nil {
		return 1
	}
	typ, sub, _ := strings.Cut(mediaType, "/")
	best, q := 0, 0.0
	for _, m := range l {
		spec := 0
		switch {
		case m.typ == typ && m.sub == sub:
			spec = 3
		case m.typ == typ && m.sub == "*":
			spec = 2
		case m.typ == "*":
			spec = 1
		}
		if spec > best {
			best, q = spec, m.q
		}
	}
	return q
}

// acceptsGzip reports whether Accept-Encoding's values accept gzip.
func acceptsGzip(values []string) bool {
	gzipQ, starQ := -1.0, -1.0
	for _, v := range values {
		for elem := range strings.SplitSeq(v, ",") {
			params := strings.Split(elem, ";")
			coding := strings.ToLower(strings.TrimSpace(params[0]))
			q := 1.0
			for _, param := range params[1:] {
				name, value, _ := strings.Cut(param, "=")
				if strings.EqualFold(strings.TrimSpace(name), "q") {
					if f, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
						q = f
					}
				}
			}
			switch coding {
			case "gzip", "x-gzip":
				gzipQ = max(gzipQ, q)
			case "*":
				starQ = max(starQ, q)
			}
		}
	}
	if gzipQ >= 0 {
		return gzipQ > 0
	}
	return starQ > 0
}
