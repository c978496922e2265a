package authzen_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rolecall/rolecall/authzen"
	"github.com/rolecall/rolecall/decide"
	"github.com/rolecall/rolecall/internal/rctest"
	"github.com/rolecall/rolecall/pdp"
	"github.com/rolecall/rolecall/policyfile"
)

const revision = "bookstore-2026-11-20.1"

// bookstoreSnapshot compiles the example policy, optionally with another
// revision.
func bookstoreSnapshot(t testing.TB, rev string) *pdp.Snapshot {
	t.Helper()
	data, err := os.ReadFile(rctest.BookstorePath())
	if err != nil {
		t.Fatal(err)
	}
	if rev != "" {
		data = bytes.Replace(data, []byte(`revision: "`+revision+`"`), []byte(`revision: "`+rev+`"`), 1)
	}
	snap, err := policyfile.Compile(data, policyfile.YAML)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// decider answers from engine; observe, when set, sees every decision.
func decider(engine *pdp.Engine, observe func(pdp.Query, pdp.Decision)) *decide.Decider {
	var rec decide.Recorder
	if observe != nil {
		rec = observer(observe)
	}
	return decide.New(engine, decide.Options{Recorder: rec})
}

type observer func(pdp.Query, pdp.Decision)

func (o observer) Record(_, _ string, q pdp.Query, d pdp.Decision, _ time.Time) { o(q, d) }

func bookstore(t testing.TB) *pdp.Engine { return rctest.Bookstore(t) }

// call sends one request to h and returns the recorded response.
func call(h http.Handler, method, path, body string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if method == http.MethodPost {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		switch {
		case header[i] == "Host":
			r.Host = header[i+1]
		case header[i+1] == "":
			r.Header.Del(header[i])
		default:
			r.Header.Set(header[i], header[i+1])
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// post sends body to path on a real server.
func post(t *testing.T, srv *httptest.Server, path, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return rctest.Send(t, srv.Client(), req)
}

// jsonEqual compares JSON documents by value.
func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("response is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want: %v", err)
	}
	if diff := cmp.Diff(w, g); diff != "" {
		t.Errorf("response mismatch (-want +got):\n%s\ngot: %s", diff, got)
	}
}

func wantOK(t *testing.T, w *httptest.ResponseRecorder, want string) {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	jsonEqual(t, w.Body.Bytes(), want)
}

// The context rolecall puts in a decision.
func granted(role string) string {
	return `{"decision": true, "context": {"reason": "GRANTED", "matched_role": "` + role + `", "policy_revision": "` + revision + `"}}`
}

func denied(reason string) string {
	return `{"decision": false, "context": {"reason": "` + reason + `", "policy_revision": "` + revision + `"}}`
}

// The specification's own examples, with bookstore ids.
func TestSpecExamples(t *testing.T) {
	srv := httptest.NewServer(authzen.Handler(decider(bookstore(t), nil), authzen.Options{}))
	defer srv.Close()

	t.Run("§6.1 example request", func(t *testing.T) {
		resp, body := post(t, srv, "/access/v1/evaluation", `{
		  "subject": {"type": "user", "id": "alice"},
		  "resource": {"type": "https://api.store.io/orders", "id": "123"},
		  "action": {"name": "read:order", "properties": {"method": "GET"}},
		  "context": {"time": "1985-10-26T01:22-07:00"}
		}`)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		jsonEqual(t, body, granted("order_admin"))
	})

	t.Run("§10.1.4 HTTPS request with X-Request-ID", func(t *testing.T) {
		resp, body := post(t, srv, "/access/v1/evaluation", `{
		  "subject": {"type": "user", "id": "bob"},
		  "resource": {"type": "https://api.store.io/orders", "id": "1"},
		  "action": {"name": "read:order"},
		  "context": {"time": "1985-10-26T01:22-07:00"}
		}`, "Authorization", "Bearer <myoauthtoken>", "X-Request-ID", "bfe9eb29-ab87-4ca3-be83-a1d5d8305716")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		if got := resp.Header.Get("X-Request-ID"); got != "bfe9eb29-ab87-4ca3-be83-a1d5d8305716" {
			t.Errorf("X-Request-ID %q", got)
		}
		if got := resp.Header.Get("Content-Type"); got != "application/json" {
			t.Errorf("Content-Type %q", got)
		}
		jsonEqual(t, body, denied("NO_PERMISSION"))
	})

	t.Run("§7.1 three requests with no default values", func(t *testing.T) {
		item := func(action, id string) string {
			return `{"subject": {"type": "user", "id": "erin"}, "action": {"name": "` + action + `"},
			  "resource": {"type": "document", "id": "` + id + `"},
			  "context": {"time": "2024-05-31T15:22-07:00", "org": "initech"}}`
		}
		resp, body := post(t, srv, "/access/v1/evaluations", `{"evaluations": [`+
			item("download", "boxcarring.md")+`,`+item("create", "subject-search.md")+`,`+item("update", "resource-search.md")+`]}`)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		jsonEqual(t, body, `{"evaluations": [`+granted("limited_admin")+`,`+granted("limited_admin")+`,`+denied("NO_PERMISSION")+`]}`)
	})

	t.Run("§7.1.1 default subject and context", func(t *testing.T) {
		resp, body := post(t, srv, "/access/v1/evaluations", `{
		  "subject": {"type": "user", "id": "erin"},
		  "context": {"time": "2024-05-31T15:22-07:00", "org": "initech"},
		  "evaluations": [
		    {"action": {"name": "download"}, "resource": {"type": "document", "id": "boxcarring.md"}},
		    {"action": {"name": "delete"}, "resource": {"type": "document", "id": "subject-search.md"}},
		    {"action": {"name": "update.info.name"}, "resource": {"type": "stytch.organization", "id": "resource-search.md"}}
		  ]
		}`)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		jsonEqual(t, body, `{"evaluations": [`+granted("limited_admin")+`,`+denied("NO_PERMISSION")+`,`+granted("limited_admin")+`]}`)
	})

	t.Run("§7.1.1 default action overridden by the third request", func(t *testing.T) {
		resp, body := post(t, srv, "/access/v1/evaluations", `{
		  "subject": {"type": "user", "id": "erin"},
		  "context": {"time": "2024-05-31T15:22-07:00", "org": "initech"},
		  "action": {"name": "download"},
		  "evaluations": [
		    {"resource": {"type": "document", "id": "boxcarring.md"}},
		    {"resource": {"type": "document", "id": "subject-search.md"}},
		    {"action": {"name": "update"}, "resource": {"type": "document", "id": "resource-search.md"}}
		  ]
		}`)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		jsonEqual(t, body, `{"evaluations": [`+granted("limited_admin")+`,`+granted("limited_admin")+`,`+denied("NO_PERMISSION")+`]}`)
	})

	// §7.1.2.1: "Evaluate read action for three documents using all three
	// semantics": the first and third are permitted, the second denied.
	for _, tc := range []struct{ semantic, want string }{
		{"execute_all", `{"evaluations": [` + granted("product_admin") + `,` + denied("NO_PERMISSION") + `,` + granted("product_admin") + `]}`},
		{"deny_on_first_deny", `{"evaluations": [` + granted("product_admin") + `,` + denied("NO_PERMISSION") + `]}`},
		{"permit_on_first_permit", `{"evaluations": [` + granted("product_admin") + `]}`},
	} {
		t.Run("§7.1.2.1 "+tc.semantic, func(t *testing.T) {
			resp, body := post(t, srv, "/access/v1/evaluations", `{
			  "subject": {"type": "user", "id": "bob"},
			  "action": {"name": "read:product"},
			  "options": {"evaluations_semantic": "`+tc.semantic+`"},
			  "evaluations": [
			    {"resource": {"type": "https://api.store.io/products", "id": "1"}},
			    {"resource": {"type": "https://api.store.io/orders", "id": "2"}, "action": {"name": "read:order"}},
			    {"resource": {"type": "https://api.store.io/products", "id": "3"}}
			  ]
			}`)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			jsonEqual(t, body, tc.want)
		})
	}

	t.Run("§9.2.1 metadata request", func(t *testing.T) {
		resp, err := srv.Client().Get(srv.URL + "/.well-known/authzen-configuration")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		jsonEqual(t, body, `{
		  "policy_decision_point": "`+srv.URL+`",
		  "access_evaluation_endpoint": "`+srv.URL+`/access/v1/evaluation",
		  "access_evaluations_endpoint": "`+srv.URL+`/access/v1/evaluations",
		  "search_subject_endpoint": "`+srv.URL+`/access/v1/search/subject"
		}`)
	})
}

func evaluationBody(subject, org, resource, action string) string {
	ctx := `{}`
	if org != "" {
		ctx = `{"org": "` + org + `"}`
	}
	return `{"subject": {"type": "user", "id": "` + subject + `"}, "resource": {"type": "` + resource + `", "id": "x"},
	  "action": {"name": "` + action + `"}, "context": ` + ctx + `}`
}

func TestEvaluation(t *testing.T) {
	h := authzen.Handler(decider(bookstore(t), nil), authzen.Options{})
	for _, tc := range []struct {
		name                           string
		subject, org, resource, action string
		want                           string
	}{
		{"global role grants", "alice", "", "https://api.store.io/orders", "read:order", granted("order_admin")},
		{"wildcard grants", "alice", "", "https://api.store.io/orders", "delete:order", granted("order_admin")},
		{"no permission", "bob", "", "https://api.store.io/orders", "read:order", denied("NO_PERMISSION")},
		{"organization role", "alice", "acme", "https://api.store.io/products", "read:product", granted("member")},
		{"global roles do not apply in an organization", "alice", "acme", "https://api.store.io/orders", "read:order", denied("NO_PERMISSION")},
		{"not a member", "bob", "acme", "https://api.store.io/products", "read:product", denied("NOT_A_MEMBER")},
		{"unknown subject", "mallory", "", "https://api.store.io/orders", "read:order", denied("UNKNOWN_SUBJECT")},
		{"unknown resource", "alice", "", "https://api.store.io/invoices", "read:order", denied("UNKNOWN_RESOURCE")},
		{"unknown action", "alice", "", "https://api.store.io/orders", "read:product", denied("UNKNOWN_ACTION")},
		{"unknown organization", "dave", "umbrella", "organization", "read:member", denied("UNKNOWN_ORGANIZATION")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantOK(t, call(h, "POST", "/access/v1/evaluation", evaluationBody(tc.subject, tc.org, tc.resource, tc.action)), tc.want)
		})
	}

	t.Run("any subject type; the policy knows the subject", func(t *testing.T) {
		for _, typ := range []string{"application", "identity", "user", "service_account"} {
			wantOK(t, call(h, "POST", "/access/v1/evaluation", `{
			  "subject": {"type": "`+typ+`", "id": "svc-catalog-sync"},
			  "resource": {"type": "https://api.store.io/products", "id": ""},
			  "action": {"name": "write:product"}}`), granted("catalog_sync"))
		}
	})

	t.Run("unknown members are ignored", func(t *testing.T) {
		wantOK(t, call(h, "POST", "/access/v1/evaluation", `{
		  "subject": {"type": "user", "id": "alice", "properties": {"department": "Sales", "ip_address": "172.217.22.14"}, "extra": 1},
		  "resource": {"type": "https://api.store.io/orders", "id": "123", "properties": {"library_record": {"isbn": "978"}}},
		  "action": {"name": "read:order", "properties": {"method": "GET"}},
		  "context": {"time": "1985-10-26T01:22-07:00", "schema": "https://schema.example.com/x.json"},
		  "evaluations": "ignored here", "options": 5, "future": [1, 2]
		}`), granted("order_admin"))
	})

	t.Run("null is absent", func(t *testing.T) {
		wantOK(t, call(h, "POST", "/access/v1/evaluation", `{
		  "subject": {"type": "user", "id": "alice", "properties": null},
		  "resource": {"type": "https://api.store.io/orders", "id": "1", "properties": null},
		  "action": {"name": "read:order", "properties": null},
		  "context": null
		}`), granted("order_admin"))
	})

	t.Run("a valid surrogate pair is fine", func(t *testing.T) {
		wantOK(t, call(h, "POST", "/access/v1/evaluation", evaluationBody(`\ud83d\ude00`, "", "document", "download")), denied("UNKNOWN_SUBJECT"))
	})
}

func TestOrganization(t *testing.T) {
	h := authzen.Handler(decider(bookstore(t), nil), authzen.Options{})
	for _, tc := range []struct{ name, body, want string }{
		{"from context.org", `{
		  "subject": {"type": "user", "id": "dave"}, "context": {"org": "acme"},
		  "resource": {"type": "organization", "id": "acme"}, "action": {"name": "invite:member"}}`, granted("admin")},
		{"from subject.properties.org", `{
		  "subject": {"type": "user", "id": "dave", "properties": {"org": "acme"}},
		  "resource": {"type": "organization", "id": "acme"}, "action": {"name": "invite:member"}}`, granted("admin")},
		{"context.org wins over subject.properties.org", `{
		  "subject": {"type": "user", "id": "dave", "properties": {"org": "acme"}}, "context": {"org": "globex"},
		  "resource": {"type": "organization", "id": "globex"}, "action": {"name": "invite:member"}}`, denied("NO_PERMISSION")},
		{"a context without org falls back to subject.properties.org", `{
		  "subject": {"type": "user", "id": "dave", "properties": {"org": "globex"}}, "context": {"time": "now"},
		  "resource": {"type": "organization", "id": "globex"}, "action": {"name": "read:member"}}`, granted("member")},
		{"a null org is absent", `{
		  "subject": {"type": "user", "id": "dave", "properties": {"org": null}}, "context": {"org": null},
		  "resource": {"type": "organization", "id": "x"}, "action": {"name": "invite:member"}}`, denied("NO_PERMISSION")},
		{"none: global roles", `{
		  "subject": {"type": "user", "id": "dave"},
		  "resource": {"type": "organization", "id": "acme"}, "action": {"name": "invite:member"}}`, denied("NO_PERMISSION")},
		{"implicit role by email domain", `{
		  "subject": {"type": "user", "id": "erin"}, "context": {"org": "initech"},
		  "resource": {"type": "document", "id": "d1"}, "action": {"name": "create"}}`, granted("limited_admin")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantOK(t, call(h, "POST", "/access/v1/evaluation", tc.body), tc.want)
		})
	}
}

func TestEvaluationsDefaultsAndOverrides(t *testing.T) {
	h := authzen.Handler(decider(bookstore(t), nil), authzen.Options{})

	t.Run("results in request order", func(t *testing.T) {
		wantOK(t, call(h, "POST", "/access/v1/evaluations", `{
		  "subject": {"type": "user", "id": "carol"},
		  "resource": {"type": "https://api.store.io/products", "id": "p"},
		  "evaluations": [
		    {"action": {"name": "write:product"}},
		    {"action": {"name": "read:order"}, "resource": {"type": "https://api.store.io/orders", "id": "o"}},
		    {"action": {"name": "read:order"}},
		    {"action": {"name": "read:order"}, "subject": {"type": "user", "id": "bob"}, "resource": {"type": "https://api.store.io/orders", "id": "o"}},
		    {"action": {"name": "read"}, "resource": {"type": "https://api.store.io/invoices", "id": "i"}},
		    {"action": {"name": "read:member"}, "resource": {"type": "organization", "id": "x"}, "subject": {"type": "user", "id": "dave"}, "context": {"org": "globex"}}
		  ]
		}`), `{"evaluations": [`+strings.Join([]string{
			granted("product_admin"), granted("order_admin"), denied("UNKNOWN_ACTION"),
			denied("NO_PERMISSION"), denied("UNKNOWN_RESOURCE"), granted("member"),
		}, ",")+`]}`)
	})

	// §7.1.1: a key in an item overrides the default whole; objects are not
	// merged.
	t.Run("an item's subject replaces the default subject whole", func(t *testing.T) {
		wantOK(t, call(h, "POST", "/access/v1/evaluations", `{
		  "subject": {"type": "user", "id": "dave", "properties": {"org": "acme"}},
		  "action": {"name": "invite:member"},
		  "resource": {"type": "organization", "id": "acme"},
		  "evaluations": [{}, {"subject": {"type": "user", "id": "dave"}}]
		}`), `{"evaluations": [`+granted("admin")+`,`+denied("NO_PERMISSION")+`]}`)
	})
	t.Run("an item's context replaces the default context whole", func(t *testing.T) {
		wantOK(t, call(h, "POST", "/access/v1/evaluations", `{
		  "subject": {"type": "user", "id": "alice"},
		  "action": {"name": "read:order"},
		  "resource": {"type": "https://api.store.io/orders", "id": "o"},
		  "context": {"org": "acme"},
		  "evaluations": [{}, {"context": {"time": "2024-05-31T15:22-07:00"}}, {"context": {"org": "globex"}}]
		}`), `{"evaluations": [`+denied("NO_PERMISSION")+`,`+granted("order_admin")+`,`+denied("NOT_A_MEMBER")+`]}`)
	})
	t.Run("the top-level keys may be omitted when every item has them", func(t *testing.T) {
		wantOK(t, call(h, "POST", "/access/v1/evaluations", `{"evaluations": [
		  {"subject": {"type": "user", "id": "bob"}, "action": {"name": "write:product"}, "resource": {"type": "https://api.store.io/products", "id": "1"}}
		]}`), `{"evaluations": [`+granted("product_admin")+`]}`)
	})

	// §7.1: without items the request is a single Access Evaluation, and
	// the answer a single Decision.
	single := `"subject": {"type": "user", "id": "alice"}, "action": {"name": "read:order"}, "resource": {"type": "https://api.store.io/orders", "id": "1"}`
	for name, body := range map[string]string{
		"no evaluations":                 `{` + single + `}`,
		"empty evaluations":              `{` + single + `, "evaluations": []}`,
		"null evaluations":               `{` + single + `, "evaluations": null}`,
		"empty evaluations with options": `{` + single + `, "evaluations": [], "options": {"evaluations_semantic": "deny_on_first_deny"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			wantOK(t, call(h, "POST", "/access/v1/evaluations", body), granted("order_admin"))
		})
	}
}

func TestEvaluationsSemantics(t *testing.T) {
	// Items by outcome: T is permitted, F denied.
	items := map[byte]string{
		'T': `{"action": {"name": "read:order"}}`,
		'F': `{"action": {"name": "write:product"}, "resource": {"type": "https://api.store.io/products", "id": "p"}}`,
	}
	results := map[byte]string{'T': granted("order_admin"), 'F': denied("NO_PERMISSION")}
	for _, tc := range []struct {
		name, options, items, want string
	}{
		{"default is execute_all", ``, "TFTF", "TFTF"},
		{"empty options", `"options": {},`, "FTF", "FTF"},
		{"null semantic", `"options": {"evaluations_semantic": null},`, "FTF", "FTF"},
		{"execute_all", `"options": {"evaluations_semantic": "execute_all"},`, "TFTF", "TFTF"},
		{"other options are ignored", `"options": {"evaluations_semantic": "execute_all", "another_option": "value"},`, "FT", "FT"},
		{"deny_on_first_deny stops after the first deny", `"options": {"evaluations_semantic": "deny_on_first_deny"},`, "TTFTF", "TTF"},
		{"deny_on_first_deny on a first deny", `"options": {"evaluations_semantic": "deny_on_first_deny"},`, "FTT", "F"},
		{"deny_on_first_deny without a deny", `"options": {"evaluations_semantic": "deny_on_first_deny"},`, "TTT", "TTT"},
		{"permit_on_first_permit stops after the first permit", `"options": {"evaluations_semantic": "permit_on_first_permit"},`, "FFTFT", "FFT"},
		{"permit_on_first_permit on a first permit", `"options": {"evaluations_semantic": "permit_on_first_permit"},`, "TFF", "T"},
		{"permit_on_first_permit without a permit", `"options": {"evaluations_semantic": "permit_on_first_permit"},`, "FFF", "FFF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var observed []bool
			h := authzen.Handler(decider(bookstore(t), func(q pdp.Query, d pdp.Decision) {
				mu.Lock()
				defer mu.Unlock()
				observed = append(observed, d.Allowed)
			}), authzen.Options{})
			var req, want []string
			for i := range len(tc.items) {
				req = append(req, items[tc.items[i]])
			}
			for i := range len(tc.want) {
				want = append(want, results[tc.want[i]])
			}
			wantOK(t, call(h, "POST", "/access/v1/evaluations", `{`+tc.options+`
			  "subject": {"type": "user", "id": "alice"},
			  "resource": {"type": "https://api.store.io/orders", "id": "o"},
			  "evaluations": [`+strings.Join(req, ",")+`]}`),
				`{"evaluations": [`+strings.Join(want, ",")+`]}`)
			// Skipped evaluations are not decisions.
			if len(observed) != len(tc.want) {
				t.Errorf("observed %d decisions, want %d", len(observed), len(tc.want))
			}
		})
	}

	t.Run("a bad item after the short-circuit still fails the request", func(t *testing.T) {
		h := authzen.Handler(decider(bookstore(t), nil), authzen.Options{})
		w := call(h, "POST", "/access/v1/evaluations", `{
		  "options": {"evaluations_semantic": "deny_on_first_deny"},
		  "subject": {"type": "user", "id": "alice"}, "resource": {"type": "https://api.store.io/orders", "id": "o"},
		  "evaluations": [`+items['F']+`, {"action": {"name": ""}}]}`)
		wantError(t, w, http.StatusBadRequest, "evaluations[1].action.name: must not be empty")
	})
}

func TestObserve(t *testing.T) {
	var got []pdp.Query
	h := authzen.Handler(decider(bookstore(t), func(q pdp.Query, d pdp.Decision) {
		got = append(got, q)
		if d.Revision != revision {
			t.Errorf("revision %q", d.Revision)
		}
	}), authzen.Options{})
	w := call(h, "POST", "/access/v1/evaluations", `{
	  "subject": {"type": "user", "id": "dave", "properties": {"org": "globex"}},
	  "action": {"name": "read:member"},
	  "resource": {"type": "organization", "id": "x"},
	  "evaluations": [{}, {"context": {"org": "acme"}}]}`)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	want := []pdp.Query{
		{Subject: "dave", Org: "globex", Resource: "organization", Action: "read:member"},
		{Subject: "dave", Org: "acme", Resource: "organization", Action: "read:member"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("observed queries (-want +got):\n%s", diff)
	}
}

// A policy swapped in while a request is being answered does not answer
// the rest of that request.
func TestOneSnapshotPerRequest(t *testing.T) {
	engine := bookstore(t)
	next := bookstoreSnapshot(t, "bookstore-2026-11-21.1")
	h := authzen.Handler(decider(engine, func(pdp.Query, pdp.Decision) {
		engine.Swap(next)
	}), authzen.Options{})
	body := `{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read:order"},
	  "resource": {"type": "https://api.store.io/orders", "id": "o"}, "evaluations": [{}, {}, {}]}`
	wantOK(t, call(h, "POST", "/access/v1/evaluations", body),
		`{"evaluations": [`+granted("order_admin")+`,`+granted("order_admin")+`,`+granted("order_admin")+`]}`)
	w := call(h, "POST", "/access/v1/evaluations", body)
	if !strings.Contains(w.Body.String(), `"policy_revision":"bookstore-2026-11-21.1"`) {
		t.Errorf("the next request is not answered by the new policy: %s", w.Body)
	}
}

func TestMetadata(t *testing.T) {
	engine := bookstore(t)
	want := func(base string) string {
		return `{"policy_decision_point": "` + base + `",
		  "access_evaluation_endpoint": "` + base + `/access/v1/evaluation",
		  "access_evaluations_endpoint": "` + base + `/access/v1/evaluations",
		  "search_subject_endpoint": "` + base + `/access/v1/search/subject"}`
	}

	t.Run("configured base URL", func(t *testing.T) {
		h := authzen.Handler(decider(engine, nil), authzen.Options{BaseURL: "https://pdp.example.com/"})
		w := call(h, "GET", "/.well-known/authzen-configuration", "", "Host", "attacker.example")
		wantOK(t, w, want("https://pdp.example.com"))
		if w.Header().Get("Cache-Control") == "" {
			t.Error("no Cache-Control")
		}
	})
	t.Run("derived over TLS", func(t *testing.T) {
		srv := httptest.NewTLSServer(authzen.Handler(decider(engine, nil), authzen.Options{}))
		defer srv.Close()
		if !strings.HasPrefix(srv.URL, "https://") {
			t.Fatal(srv.URL)
		}
		resp, err := srv.Client().Get(srv.URL + "/.well-known/authzen-configuration")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		jsonEqual(t, body, want(srv.URL))
	})
	t.Run("derived from Host", func(t *testing.T) {
		h := authzen.Handler(decider(engine, nil), authzen.Options{})
		wantOK(t, call(h, "GET", "/.well-known/authzen-configuration", "", "Host", "pdp.internal:8080", "X-Forwarded-Proto", "https"),
			want("http://pdp.internal:8080"))
	})
	t.Run("served without a policy", func(t *testing.T) {
		h := authzen.Handler(decider(&pdp.Engine{}, nil), authzen.Options{BaseURL: "https://pdp.example.com"})
		wantOK(t, call(h, "GET", "/.well-known/authzen-configuration", ""), want("https://pdp.example.com"))
	})
	t.Run("HEAD", func(t *testing.T) {
		h := authzen.Handler(decider(engine, nil), authzen.Options{BaseURL: "https://pdp.example.com"})
		if w := call(h, "HEAD", "/.well-known/authzen-configuration", ""); w.Code != http.StatusOK {
			t.Errorf("status %d", w.Code)
		}
	})
	t.Run("POST", func(t *testing.T) {
		h := authzen.Handler(decider(engine, nil), authzen.Options{})
		w := call(h, "POST", "/.well-known/authzen-configuration", "{}")
		wantError(t, w, http.StatusMethodNotAllowed, "method POST not allowed; use GET")
		if got := w.Header().Get("Allow"); got != "GET, HEAD" {
			t.Errorf("Allow %q", got)
		}
	})
}

func TestHandlerPanicsOnWiringMistakes(t *testing.T) {
	for name, f := range map[string]func(){
		"nil engine":        func() { authzen.Handler(nil, authzen.Options{}) },
		"relative base URL": func() { authzen.Handler(decider(&pdp.Engine{}, nil), authzen.Options{BaseURL: "pdp.example.com"}) },
		"base URL query": func() {
			authzen.Handler(decider(&pdp.Engine{}, nil), authzen.Options{BaseURL: "https://pdp.example.com?x=1"})
		},
		"base URL fragment": func() {
			authzen.Handler(decider(&pdp.Engine{}, nil), authzen.Options{BaseURL: "https://pdp.example.com#x"})
		},
		"unparsable baseURL": func() { authzen.Handler(decider(&pdp.Engine{}, nil), authzen.Options{BaseURL: "https://[::1"}) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}

// wantError checks an error response: its status, a JSON object body
// holding the message, and never a 500.
func wantError(t *testing.T, w *httptest.ResponseRecorder, code int, msg string) {
	t.Helper()
	if w.Code != code {
		t.Errorf("status %d, want %d; body %s", w.Code, code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var body struct {
		Error *string `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error == nil {
		t.Fatalf("error body is not {\"error\": string}: %v: %s", err, w.Body)
	}
	if !strings.Contains(*body.Error, msg) {
		t.Errorf("error %q, want it to contain %q", *body.Error, msg)
	}
}

const (
	okSubject  = `"subject": {"type": "user", "id": "alice"}`
	okAction   = `"action": {"name": "read:order"}`
	okResource = `"resource": {"type": "https://api.store.io/orders", "id": "1"}`
)

// tuple builds a request body from members, replacing the default ones
// named in repl ("subject", "action", "resource") and adding extra.
func tuple(repl map[string]string, extra ...string) string {
	members := []string{okSubject, okAction, okResource}
	for i, k := range []string{"subject", "action", "resource"} {
		if v, ok := repl[k]; ok {
			if v == "" {
				members[i] = ""
			} else {
				members[i] = `"` + k + `": ` + v
			}
		}
	}
	var out []string
	for _, m := range append(members, extra...) {
		if m != "" {
			out = append(out, m)
		}
	}
	return "{" + strings.Join(out, ", ") + "}"
}

func TestBadRequests(t *testing.T) {
	long := strings.Repeat("a", pdp.MaxIDLen+1)
	type tc struct {
		name, path, body string
		code             int
		msg              string
	}
	cases := []tc{
		// Not JSON, not an object.
		{"empty body", "evaluation", ``, 400, "request body is empty"},
		{"blank body", "evaluations", " \n", 400, "request body is empty"},
		{"truncated JSON", "evaluation", `{"subject": `, 400, "request body is not valid JSON"},
		{"not JSON", "evaluations", `subject=alice`, 400, "request body is not valid JSON: invalid character 's'"},
		{"trailing data", "evaluation", tuple(nil) + ` {}`, 400, "request body is not valid JSON"},
		{"an array", "evaluations", `[]`, 400, "request body must be a JSON object, not an array"},
		{"a string", "evaluation", `"alice"`, 400, "request body must be a JSON object, not a string"},
		{"a number", "evaluation", `42`, 400, "request body must be a JSON object, not a number"},
		{"null", "evaluation", `null`, 400, "request body must be a JSON object, not null"},
		{"a boolean", "evaluations", `true`, 400, "request body must be a JSON object, not a boolean"},

		// Missing required members (§6.1, §10.1.1).
		{"missing subject", "evaluation", tuple(map[string]string{"subject": ""}), 400, "subject: is required"},
		{"missing action", "evaluation", tuple(map[string]string{"action": ""}), 400, "action: is required"},
		{"missing resource", "evaluation", tuple(map[string]string{"resource": ""}), 400, "resource: is required"},
		{"missing everything", "evaluations", `{}`, 400, "subject: is required"},
		{"null subject", "evaluation", tuple(map[string]string{"subject": "null"}), 400, "subject: is required"},
		{"missing subject.id", "evaluation", tuple(map[string]string{"subject": `{"type": "user"}`}), 400, "subject.id: is required"},
		{"missing subject.type", "evaluation", tuple(map[string]string{"subject": `{"id": "alice"}`}), 400, "subject.type: is required"},
		{"missing action.name", "evaluation", tuple(map[string]string{"action": `{}`}), 400, "action.name: is required"},
		{"missing resource.type", "evaluation", tuple(map[string]string{"resource": `{"id": "1"}`}), 400, "resource.type: is required"},
		{"null resource.type", "evaluation", tuple(map[string]string{"resource": `{"type": null, "id": "1"}`}), 400, "resource.type: is required"},
		{"missing resource.id", "evaluation", tuple(map[string]string{"resource": `{"type": "document"}`}), 400, "resource.id: is required"},
		{"missing in an item without a default", "evaluations", `{` + okSubject + `, ` + okResource + `, "evaluations": [{"action": {"name": "read:order"}}, {}]}`, 400,
			"evaluations[1].action: is required (in the item or as a top-level default)"},

		// Wrong types.
		{"subject a string", "evaluation", tuple(map[string]string{"subject": `"alice"`}), 400, "subject: must be an object, not a string"},
		{"subject an array", "evaluations", tuple(map[string]string{"subject": `[]`}), 400, "subject: must be an object, not an array"},
		{"subject.id a number", "evaluation", tuple(map[string]string{"subject": `{"type": "user", "id": 42}`}), 400, "subject.id: must be a string, not a number"},
		{"subject.type an object", "evaluation", tuple(map[string]string{"subject": `{"type": {}, "id": "alice"}`}), 400, "subject.type: must be a string, not an object"},
		{"subject.properties a string", "evaluation", tuple(map[string]string{"subject": `{"type": "user", "id": "alice", "properties": "x"}`}), 400, "subject.properties: must be an object, not a string"},
		{"subject.properties.org a number", "evaluation", tuple(map[string]string{"subject": `{"type": "user", "id": "alice", "properties": {"org": 7}}`}), 400, "subject.properties.org: must be a string, not a number"},
		{"action.name a boolean", "evaluation", tuple(map[string]string{"action": `{"name": true}`}), 400, "action.name: must be a string, not a boolean"},
		{"action.properties an array", "evaluation", tuple(map[string]string{"action": `{"name": "read:order", "properties": []}`}), 400, "action.properties: must be an object, not an array"},
		{"resource a number", "evaluation", tuple(map[string]string{"resource": `1`}), 400, "resource: must be an object, not a number"},
		{"resource.id a number", "evaluation", tuple(map[string]string{"resource": `{"type": "document", "id": 5}`}), 400, "resource.id: must be a string, not a number"},
		{"resource.properties a boolean", "evaluation", tuple(map[string]string{"resource": `{"type": "document", "id": "5", "properties": false}`}), 400, "resource.properties: must be an object, not a boolean"},
		{"context an array", "evaluation", tuple(nil, `"context": []`), 400, "context: must be an object, not an array"},
		{"context.org a number", "evaluation", tuple(nil, `"context": {"org": 1}`), 400, "context.org: must be a string, not a number"},
		{"context.org an object", "evaluations", tuple(nil, `"context": {"org": {"id": "acme"}}`), 400, "context.org: must be a string, not an object"},
		{"evaluations an object", "evaluations", tuple(nil, `"evaluations": {}`), 400, "evaluations: must be an array, not an object"},
		{"evaluations a string", "evaluations", tuple(nil, `"evaluations": "all"`), 400, "evaluations: must be an array, not a string"},
		{"an item a number", "evaluations", tuple(nil, `"evaluations": [{}, 1]`), 400, "evaluations[1]: must be an object, not a number"},
		{"an item null", "evaluations", tuple(nil, `"evaluations": [null]`), 400, "evaluations[0]: must be an object, not null"},
		{"an item's subject a string", "evaluations", tuple(nil, `"evaluations": [{"subject": "bob"}]`), 400, "evaluations[0].subject: must be an object, not a string"},
		{"an item's context.org a number", "evaluations", tuple(nil, `"evaluations": [{}, {}, {"context": {"org": 3}}]`), 400, "evaluations[2].context.org: must be a string, not a number"},
		{"options a string", "evaluations", tuple(nil, `"options": "fast"`, `"evaluations": [{}]`), 400, "options: must be an object, not a string"},
		{"semantic a number", "evaluations", tuple(nil, `"options": {"evaluations_semantic": 1}`, `"evaluations": [{}]`), 400, "options.evaluations_semantic: must be a string, not a number"},
		{"unknown semantic", "evaluations", tuple(nil, `"options": {"evaluations_semantic": "first_applicable"}`, `"evaluations": [{}]`), 400,
			`options.evaluations_semantic: "first_applicable" is not one of execute_all, deny_on_first_deny, permit_on_first_permit`},

		// Empty ids (pdp.Query.Validate) and the subject type.
		{"empty subject.id", "evaluation", tuple(map[string]string{"subject": `{"type": "user", "id": ""}`}), 400, "subject.id: must not be empty"},
		{"empty subject.type", "evaluation", tuple(map[string]string{"subject": `{"type": "", "id": "alice"}`}), 400, "subject.type: must not be empty"},
		{"empty resource.type", "evaluation", tuple(map[string]string{"resource": `{"type": "", "id": "1"}`}), 400, "resource.type: must not be empty"},
		{"empty action.name", "evaluation", tuple(map[string]string{"action": `{"name": ""}`}), 400, "action.name: must not be empty"},
		{"empty context.org", "evaluation", tuple(nil, `"context": {"org": ""}`), 400, "context.org: must not be empty; omit it to decide without an organization"},
		{"empty subject.properties.org", "evaluation", tuple(map[string]string{"subject": `{"type": "user", "id": "alice", "properties": {"org": ""}}`}), 400,
			"subject.properties.org: must not be empty"},
		{"an item's empty subject.id", "evaluations", tuple(nil, `"evaluations": [{}, {}, {}, {"subject": {"type": "user", "id": ""}}]`), 400,
			"evaluations[3].subject.id: must not be empty"},
		{"a default's empty id, used by an item", "evaluations", tuple(map[string]string{"action": `{"name": ""}`}, `"evaluations": [{"action": {"name": "read:order"}}, {}]`), 400,
			"action.name: must not be empty"},
		{"an item's empty resource.type", "evaluations", tuple(nil, `"evaluations": [{"resource": {"type": "", "id": "1"}}]`), 400,
			"evaluations[0].resource.type: must not be empty"},

		// Too long (over pdp.MaxIDLen, 1 KiB).
		{"long subject.id", "evaluation", tuple(map[string]string{"subject": `{"type": "user", "id": "` + long + `"}`}), 400, "subject.id: is 1025 bytes long; the limit is 1024"},
		{"long subject.type", "evaluation", tuple(map[string]string{"subject": `{"type": "` + long + `", "id": "alice"}`}), 400, "subject.type: is 1025 bytes long; the limit is 1024"},
		{"long resource.type", "evaluation", tuple(map[string]string{"resource": `{"type": "` + long + `", "id": "1"}`}), 400, "resource.type: is 1025 bytes long"},
		{"long resource.id", "evaluation", tuple(map[string]string{"resource": `{"type": "document", "id": "` + long + `"}`}), 400, "resource.id: is 1025 bytes long"},
		{"long action.name", "evaluation", tuple(map[string]string{"action": `{"name": "` + long + `"}`}), 400, "action.name: is 1025 bytes long"},
		{"long context.org", "evaluation", tuple(nil, `"context": {"org": "`+long+`"}`), 400, "context.org: is 1025 bytes long"},
		{"an item's long subject.id", "evaluations", tuple(nil, `"evaluations": [{"subject": {"type": "user", "id": "`+long+`"}}]`), 400,
			"evaluations[0].subject.id: is 1025 bytes long"},

		// Invalid UTF-8 and unpaired surrogates (§11.5).
		{"invalid UTF-8 in subject.id", "evaluation", tuple(map[string]string{"subject": "{\"type\": \"user\", \"id\": \"al\xffice\"}"}), 400, "subject.id: is not valid UTF-8"},
		{"invalid UTF-8 in action.name", "evaluations", tuple(nil, "\"evaluations\": [{\"action\": {\"name\": \"read\xc3\"}}]"), 400, "evaluations[0].action.name: is not valid UTF-8"},
		{"unpaired high surrogate", "evaluation", tuple(map[string]string{"subject": `{"type": "user", "id": "a\ud800"}`}), 400, "subject.id: is not valid UTF-8"},
		{"unpaired low surrogate", "evaluation", tuple(map[string]string{"resource": `{"type": "\udc00", "id": "1"}`}), 400, "resource.type: is not valid UTF-8"},
		{"reversed surrogates", "evaluation", tuple(nil, `"context": {"org": "\udc00\ud800"}`), 400, "context.org: is not valid UTF-8"},
		{"high surrogate then text", "evaluation", tuple(map[string]string{"action": `{"name": "\ud800\u0041"}`}), 400, "action.name: is not valid UTF-8"},
		{"invalid UTF-8 in an ignored member", "evaluation", tuple(nil, "\"note\": \"\xff\""), 400, "request body is not valid UTF-8"},

		// Duplicate member names (§11.5).
		{"duplicate subject", "evaluation", tuple(nil, `"subject": {"type": "user", "id": "carol"}`), 400, `request body: duplicate member "subject"`},
		{"duplicate subject.id", "evaluation", tuple(map[string]string{"subject": `{"type": "user", "id": "bob", "id": "alice"}`}), 400, `subject: duplicate member "id"`},
		{"duplicate in an item", "evaluations", tuple(nil, `"evaluations": [{"context": {"org": "acme", "org": "globex"}}]`), 400, `evaluations[0].context: duplicate member "org"`},
	}
	h := authzen.Handler(decider(bookstore(t), nil), authzen.Options{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := call(h, "POST", "/access/v1/"+c.path, c.body, "X-Request-ID", "req-1")
			wantError(t, w, c.code, c.msg)
			if got := w.Header().Get("X-Request-ID"); got != "req-1" {
				t.Errorf("X-Request-ID %q", got)
			}
		})
	}
}

func TestTooManyEvaluations(t *testing.T) {
	items := strings.TrimSuffix(strings.Repeat(`{"resource": {"type": "document", "id": "1"}},`, 10000), ",")
	body := `{` + okSubject + `, ` + okAction + `, "evaluations": [` + items + `]}`
	if len(body) >= 1<<20 {
		t.Fatalf("the body is %d bytes, over the size limit", len(body))
	}
	h := authzen.Handler(decider(bookstore(t), nil), authzen.Options{})
	wantError(t, call(h, "POST", "/access/v1/evaluations", body), http.StatusBadRequest,
		"evaluations: more than 1000 items; this PDP evaluates at most 1000 per request")

	small := authzen.Handler(decider(bookstore(t), nil), authzen.Options{MaxEvaluations: 2})
	wantError(t, call(small, "POST", "/access/v1/evaluations", tuple(nil, `"evaluations": [{}, {}, {}]`)), http.StatusBadRequest,
		"evaluations: more than 2 items; this PDP evaluates at most 2 per request")
	wantOK(t, call(small, "POST", "/access/v1/evaluations", tuple(nil, `"evaluations": [{}, {}]`)),
		`{"evaluations": [`+granted("order_admin")+`,`+granted("order_admin")+`]}`)
}

func TestHTTPErrors(t *testing.T) {
	h := authzen.Handler(decider(bookstore(t), nil), authzen.Options{})
	ok := tuple(nil)

	t.Run("body over 1 MiB", func(t *testing.T) {
		big := tuple(nil, `"context": {"note": "`+strings.Repeat("x", 1<<20)+`"}`)
		for _, path := range []string{"/access/v1/evaluation", "/access/v1/evaluations"} {
			wantError(t, call(h, "POST", path, big), http.StatusRequestEntityTooLarge, "request body is over 1048576 bytes")
		}
	})
	t.Run("body of exactly 1 MiB", func(t *testing.T) {
		body := tuple(nil, `"context": {"note": "`)
		body += strings.Repeat("x", 1<<20-len(body)-3) + `"}}`
		if len(body) != 1<<20 {
			t.Fatal(len(body))
		}
		wantOK(t, call(h, "POST", "/access/v1/evaluation", body), granted("order_admin"))
	})
	for _, m := range []string{"GET", "PUT", "DELETE", "HEAD"} {
		t.Run(m+" on evaluation", func(t *testing.T) {
			w := call(h, m, "/access/v1/evaluation", "")
			if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "POST" {
				t.Errorf("status %d, Allow %q", w.Code, w.Header().Get("Allow"))
			}
			if m != "HEAD" {
				wantError(t, w, http.StatusMethodNotAllowed, "method "+m+" not allowed; use POST")
			}
		})
	}
	t.Run("GET on evaluations", func(t *testing.T) {
		wantError(t, call(h, "GET", "/access/v1/evaluations", ""), http.StatusMethodNotAllowed, "use POST")
	})
	for ct, want := range map[string]int{
		"application/json":                  200,
		"application/json; charset=utf-8":   200,
		"Application/JSON; charset=UTF-8":   200,
		"text/plain":                        415,
		"application/x-www-form-urlencoded": 415,
		"application/json; charset=latin1":  415,
		"application/jsonx":                 415,
		"":                                  415,
	} {
		t.Run("Content-Type "+ct, func(t *testing.T) {
			w := call(h, "POST", "/access/v1/evaluation", ok, "Content-Type", ct)
			if want == 200 {
				wantOK(t, w, granted("order_admin"))
			} else {
				wantError(t, w, want, "Content-Type")
			}
		})
	}
	t.Run("unknown path", func(t *testing.T) {
		for _, p := range []string{"/", "/access/v1/evaluation/", "/access/v1/search/resource", "/access/v1/search/action", "/.well-known/authzen-configuration/tenant1"} {
			wantError(t, call(h, "POST", p, ok), http.StatusNotFound, "no AuthZEN endpoint")
		}
	})
	t.Run("no policy loaded", func(t *testing.T) {
		empty := authzen.Handler(decider(&pdp.Engine{}, nil), authzen.Options{})
		for _, tc := range []struct{ path, body string }{
			{"/access/v1/evaluation", ok},
			{"/access/v1/evaluations", ok},
			{"/access/v1/evaluations", tuple(nil, `"evaluations": [{}, {}]`)},
		} {
			w := call(empty, "POST", tc.path, tc.body, "X-Request-ID", "r-503")
			wantError(t, w, http.StatusServiceUnavailable, "no policy loaded")
			if w.Header().Get("X-Request-ID") != "r-503" {
				t.Error("no X-Request-ID on a 503")
			}
		}
	})
	t.Run("no X-Request-ID is made up", func(t *testing.T) {
		if w := call(h, "POST", "/access/v1/evaluation", ok); w.Header().Get("X-Request-ID") != "" {
			t.Errorf("X-Request-ID %q", w.Header().Get("X-Request-ID"))
		}
	})
}

// Client input never makes a 500, nor a response that is not a JSON object.
func FuzzHandler(f *testing.F) {
	// endpoint: 0 evaluation, 1 evaluations, 2 subject search.
	for _, s := range []string{
		tuple(nil),
		tuple(nil, `"context": {"org": "acme"}`),
		tuple(nil, `"evaluations": [{}, {"subject": {"type": "user", "id": "bob"}}], "options": {"evaluations_semantic": "deny_on_first_deny"}`),
		`{"evaluations": [{"subject": {"type": "u", "id": "\ud83d\ude00"}, "action": {"name": "a"}, "resource": {"type": "r", "id": ""}}]}`,
		`{"subject": {"type": "user", "id": "dave", "properties": {"org": "acme"}}, "evaluations": [null]}`,
		`[]`, `{`, `"\ud800"`, `{"a":1,"a":2}`,
	} {
		for endpoint := range uint8(3) {
			f.Add(s, endpoint)
		}
	}
	for _, s := range []string{
		`{"subject": {"type": "user"}, "action": {"name": "read:order"}, "resource": {"type": "https://api.store.io/orders", "id": "123"}}`,
		`{"subject": {"type": "user", "id": 5}, "action": {"name": "read:member"}, "resource": {"type": "organization"}, "context": {"org": "acme"}, "page": {"limit": 1}}`,
		`{"subject": {"type": "user", "properties": {"org": "initech"}}, "action": {"name": "download"}, "resource": {"type": "document"}, "page": {"limit": 1, "token": "AAAAAAAAAAAB.AAAAAAAAAAA"}}`,
		`{"subject": {"type": "user"}, "action": {"name": "read:product"}, "resource": {"type": "https://api.store.io/products"}, "page": {"limit": 99999999999999999999, "properties": {}}}`,
		`{"subject": {"type": "user"}, "action": {"name": "a"}, "resource": {"type": "r"}, "page": {"limit": -1e3, "token": ""}}`,
		`{"subject": {"type": ""}, "page": []}`,
	} {
		f.Add(s, uint8(2))
	}
	dec := decide.New(bookstore(f), decide.Options{WhoCan: decide.WhoCanAny})
	h := authzen.Handler(dec, authzen.Options{MaxEvaluations: 50})
	paths := [...]string{"/access/v1/evaluation", "/access/v1/evaluations", "/access/v1/search/subject"}
	f.Fuzz(func(t *testing.T, body string, endpoint uint8) {
		path := paths[int(endpoint)%len(paths)]
		w := call(h, "POST", path, body)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
		var v map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
			t.Fatalf("response is not a JSON object: %v: %s", err, w.Body)
		}
		if w.Code != http.StatusOK {
			return
		}
		if path == paths[2] {
			results, ok := v["results"].([]any)
			page, _ := v["page"].(map[string]any)
			if _, hasNext := page["next_token"].(string); !ok || !hasNext || page["count"] != float64(len(results)) {
				t.Fatalf("not a Search API Response with page.next_token and count: %s", w.Body)
			}
			return
		}
		_, single := v["decision"].(bool)
		_, many := v["evaluations"].([]any)
		if single == many {
			t.Fatalf("neither one decision nor evaluations: %s", w.Body)
		}
	})
}
